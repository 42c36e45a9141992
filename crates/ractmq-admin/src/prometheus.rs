//! The Prometheus exposition (`/metrics`), written by the prometheus-client crate from the broker's counters
//! at scrape time: recording stays a relaxed atomic add on the hot path, and nothing is kept twice. The metrics
//! are a table ([`SCALARS`], [`FAMILIES`], [`CLUSTER_COUNTERS`], [`STORE_SCALARS`]): a new one is a line, not
//! code.

use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use ractmq_bridge::BridgeInfo;
use ractmq_broker::ROUTE_BUCKETS_NS;
use ractmq_broker::{BrokerView, Metrics, StoreStats};
use ractmq_cluster::ClusterStats;
use ractmq_cluster::MemberState;
use ractmq_rule_engine::RuleInfo;

use crate::state::AppState;

/// Reads the broker (and cluster) at every scrape.
#[derive(Clone)]
struct BrokerCollector(AppState);

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

/// Whether a metric only goes up.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric with one value: its name, help, kind, and how to read it from the node (`T`: the broker, or its
/// store's numbers).
struct Scalar<T> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    read: fn(&T) -> u64,
}

/// One counter family with a label: its values read together from the node.
struct Family {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    read: fn(&Metrics) -> Vec<(&'static str, u64)>,
}

/// One cluster counter.
struct ClusterCounter {
    name: &'static str,
    help: &'static str,
    read: fn(&ClusterStats) -> u64,
}

const fn scalar<T>(name: &'static str, help: &'static str, kind: Kind, read: fn(&T) -> u64) -> Scalar<T> {
    Scalar { name, help, kind, read }
}

fn g(counter: &AtomicU64) -> u64 {
    Metrics::get(counter)
}

/// Every single-valued metric of a node, in exposition order.
const SCALARS: &[Scalar<BrokerView>] = &[
    scalar("ractmq_connections", "Clients connected now", Kind::Gauge, |k| {
        g(&k.metrics().clients_connected)
    }),
    scalar("ractmq_connections_accepted", "Sockets accepted", Kind::Counter, |k| {
        g(&k.metrics().connections_accepted)
    }),
    scalar(
        "ractmq_sessions",
        "Sessions on this node (connected or not)",
        Kind::Gauge,
        |k| k.session_count() as u64,
    ),
    scalar("ractmq_subscriptions", "Subscriptions on this node", Kind::Gauge, |k| {
        k.subscription_count() as u64
    }),
    scalar("ractmq_retained_messages", "Retained messages kept", Kind::Gauge, |k| {
        k.retained_count() as u64
    }),
    scalar(
        "ractmq_queued_messages",
        "Messages queued for clients, summed over sessions",
        Kind::Gauge,
        |k| k.queued().0,
    ),
    scalar(
        "ractmq_queued_bytes",
        "Bytes queued for clients, summed over sessions",
        Kind::Gauge,
        |k| k.queued().1,
    ),
    scalar(
        "ractmq_publishers_held",
        "Times a publisher was held because a queue it filled was full",
        Kind::Counter,
        |k| g(&k.metrics().publishers_held),
    ),
    scalar(
        "ractmq_subscribers_stalled",
        "Subscribers whose full queue did not drain within the stall timeout",
        Kind::Counter,
        |k| g(&k.metrics().subscribers_stalled),
    ),
    scalar(
        "ractmq_messages_received",
        "PUBLISH packets received from clients",
        Kind::Counter,
        |k| g(&k.metrics().messages_received),
    ),
    scalar(
        "ractmq_messages_sent",
        "PUBLISH packets sent to clients",
        Kind::Counter,
        |k| g(&k.metrics().messages_sent),
    ),
    scalar(
        "ractmq_messages_no_subscribers",
        "Messages that matched no subscriber",
        Kind::Counter,
        |k| g(&k.metrics().messages_no_subscribers),
    ),
    scalar("ractmq_bytes_received", "Bytes read from clients", Kind::Counter, |k| {
        g(&k.metrics().bytes_received)
    }),
    scalar("ractmq_bytes_sent", "Bytes written to clients", Kind::Counter, |k| {
        g(&k.metrics().bytes_sent)
    }),
    scalar(
        "ractmq_connections_waiting",
        "Sockets accepted and waiting for their CONNECT to be handled",
        Kind::Gauge,
        |k| k.waiting_for_connect() as u64,
    ),
    scalar(
        "ractmq_connections_dropped_at_accept",
        "Sockets closed at accept because too many were waiting for their CONNECT, overall or from their address",
        Kind::Counter,
        |k| g(&k.metrics().dropped_at_accept),
    ),
    scalar(
        "ractmq_connections_refused",
        "CONNECTs refused with a CONNACK failure (credentials, authorization, bans, limits)",
        Kind::Counter,
        |k| g(&k.metrics().connections_refused),
    ),
    scalar(
        "ractmq_connections_refused_banned",
        "CONNECTs refused because a ban holds for the client id, user name or address",
        Kind::Counter,
        |k| g(&k.metrics().refused_banned),
    ),
    scalar(
        "ractmq_authentication_failed",
        "CONNECTs whose credentials the authentication chain refused",
        Kind::Counter,
        |k| g(&k.metrics().authn_failed),
    ),
    scalar(
        "ractmq_banned_flapping",
        "Client ids banned by flapping detection",
        Kind::Counter,
        |k| g(&k.metrics().banned_flapping),
    ),
    scalar("ractmq_bans", "Bans in force", Kind::Gauge, |k| k.bans().len() as u64),
    scalar(
        "ractmq_overload_episodes",
        "Times the node went above its memory high watermark",
        Kind::Counter,
        |k| g(&k.metrics().overload_episodes),
    ),
    scalar(
        "ractmq_overloaded",
        "1 while resident memory is above the high watermark (new connections refused)",
        Kind::Gauge,
        |k| u64::from(k.memory_high_watermark().1),
    ),
    scalar(
        "ractmq_client_rate_limited",
        "Times a client's reader waited because the client went over its inbound rate",
        Kind::Counter,
        |k| g(&k.metrics().rate_limited),
    ),
    scalar(
        "ractmq_accept_rate_limited",
        "Times a listener waited before accepting because of its connection rate",
        Kind::Counter,
        |k| g(&k.metrics().accept_rate_limited),
    ),
    scalar(
        "ractmq_authorization_denied",
        "Publishes, subscription filters and wills refused by authorization",
        Kind::Counter,
        |k| g(&k.metrics().authz_denied),
    ),
    scalar(
        "ractmq_protocol_errors",
        "Connections closed for a protocol error",
        Kind::Counter,
        |k| g(&k.metrics().protocol_errors),
    ),
];

/// Every labelled counter family of a node.
const FAMILIES: &[Family] = &[
    Family {
        name: "ractmq_messages_routed",
        help: "Messages routed, by QoS",
        label: "qos",
        read: |m| per_qos(&m.routed_by_qos),
    },
    Family {
        name: "ractmq_messages_delivered",
        help: "PUBLISH packets sent to clients, by QoS",
        label: "qos",
        read: |m| per_qos(&m.sent_by_qos),
    },
    Family {
        name: "ractmq_messages_dropped",
        help: "Messages dropped, by reason",
        label: "reason",
        read: |m| {
            vec![
                ("queue_full", g(&m.dropped_queue_full)),
                ("offline_queue_full", g(&m.dropped_offline_queue_full)),
                ("expired", g(&m.dropped_expired)),
                ("too_large", g(&m.dropped_too_large)),
                ("local_subscriber", g(&m.dropped_local_subscriber)),
                ("retained_full", g(&m.dropped_retained_full)),
                ("forward", g(&m.dropped_forward)),
                ("overload", g(&m.dropped_overload)),
            ]
        },
    },
    Family {
        name: "ractmq_actor_restarts",
        help: "Actors restarted by their supervisor, by kind",
        label: "kind",
        read: |m| {
            vec![
                ("session", g(&m.session_restarts)),
                ("shard", g(&m.shard_restarts)),
                ("other", g(&m.other_restarts)),
            ]
        },
    },
];

/// The cluster's counters, on a clustered node.
const CLUSTER_COUNTERS: &[ClusterCounter] = &[
    ClusterCounter {
        name: "ractmq_cluster_forwarded",
        help: "Messages queued towards other nodes",
        read: |s| ClusterStats::get(&s.forwarded),
    },
    ClusterCounter {
        name: "ractmq_cluster_received",
        help: "Messages received from other nodes",
        read: |s| ClusterStats::get(&s.received),
    },
    ClusterCounter {
        name: "ractmq_cluster_relayed_out",
        help: "Messages passed on to a session that moved from here to another node",
        read: |s| ClusterStats::get(&s.relayed_out),
    },
    ClusterCounter {
        name: "ractmq_cluster_relayed_in",
        help: "Messages passed on here by the node a session moved from",
        read: |s| ClusterStats::get(&s.relayed_in),
    },
];

/// The store's numbers, on a node with one (`--durability disk`); `ractmq_store_last_commit_seconds` follows
/// them.
const STORE_SCALARS: &[Scalar<StoreStats>] = &[
    scalar(
        "ractmq_store_file_bytes",
        "Bytes of the store file in the data dir",
        Kind::Gauge,
        |s| s.file_bytes,
    ),
    scalar(
        "ractmq_store_sessions",
        "Persistent sessions stored",
        Kind::Gauge,
        |s| s.sessions,
    ),
    scalar(
        "ractmq_store_messages",
        "Message copies stored (queued or in flight to persistent sessions)",
        Kind::Gauge,
        |s| s.messages,
    ),
    scalar("ractmq_store_retained", "Retained messages stored", Kind::Gauge, |s| {
        s.retained
    }),
    scalar(
        "ractmq_store_pending_ops",
        "Ops waiting for the store's writer",
        Kind::Gauge,
        |s| s.pending_ops,
    ),
    scalar(
        "ractmq_store_commits",
        "Commits of the store since it opened",
        Kind::Counter,
        |s| s.commits,
    ),
    scalar(
        "ractmq_store_ops",
        "Ops written to the store since it opened",
        Kind::Counter,
        |s| s.ops,
    ),
    scalar(
        "ractmq_store_cancelled",
        "Copies queued and completed within one commit, so never written",
        Kind::Counter,
        |s| s.cancelled,
    ),
];

/// A counter per QoS level, labelled "0", "1", "2".
fn per_qos(counters: &[AtomicU64; 3]) -> Vec<(&'static str, u64)> {
    vec![("0", g(&counters[0])), ("1", g(&counters[1])), ("2", g(&counters[2]))]
}

fn encode_scalar(e: &mut DescriptorEncoder, name: &str, help: &str, kind: Kind, v: u64) -> std::fmt::Result {
    match kind {
        Kind::Counter => ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?),
        Kind::Gauge => ConstGauge::new(v as i64).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?),
    }
}

/// One gauge per label value.
fn encode_gauges<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, i64)>,
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, v) in values {
        ConstGauge::new(v).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

impl Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let k = &self.0.broker;
        for s in SCALARS {
            encode_scalar(&mut e, s.name, s.help, s.kind, (s.read)(k))?;
        }
        for f in FAMILIES {
            let mut family = e.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
            for (value, v) in (f.read)(k.metrics()) {
                ConstCounter::new(v).encode(family.encode_family(&[(f.label, value)])?)?;
            }
        }
        // prometheus-client takes the count of each bucket (it adds them up) and f64::MAX for +Inf.
        let (sum_ns, count, per_bucket) = k.metrics().route_latency.snapshot();
        let bounds = ROUTE_BUCKETS_NS.iter().map(|ns| *ns as f64 / 1e9).chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(per_bucket).collect();
        e.encode_descriptor(
            "ractmq_route_latency_seconds",
            "Time to route one message on the node it was published on",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<()>(sum_ns as f64 / 1e9, count, &buckets, None)?;
        let open = k.listeners();
        let open = open.iter().map(|l| (l.name.as_str(), l.connections as i64));
        encode_gauges(
            &mut e,
            "ractmq_listener_connections",
            "Open client connections by listener",
            "listener",
            open,
        )?;
        if let Some(store) = k.data_stats() {
            for s in STORE_SCALARS {
                encode_scalar(&mut e, s.name, s.help, s.kind, (s.read)(&store))?;
            }
            let last = store.last_commit_us as f64 / 1e6;
            ConstGauge::new(last).encode(e.encode_descriptor(
                "ractmq_store_last_commit_seconds",
                "Time the store's last commit took, fsync included",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Some(bridges) = &self.0.bridges {
            encode_bridges(&mut e, &bridges.list())?;
        }
        if let Some(rules) = &self.0.rules {
            encode_rules(&mut e, &rules.list())?;
            encode_scalar(
                &mut e,
                "ractmq_rules_chains_cut",
                "Rule evaluations not run because rules fed each other deeper than 8",
                Kind::Counter,
                rules.chains_cut(),
            )?;
        }
        if let Some(cluster) = &self.0.cluster {
            for c in CLUSTER_COUNTERS {
                encode_scalar(&mut e, c.name, c.help, Kind::Counter, (c.read)(cluster.stats()))?;
            }
            let members = cluster.members();
            let up = members
                .iter()
                .map(|m| (m.name.as_str(), i64::from(m.state == MemberState::Up)));
            let help = "1 if the member is up (heard within --down-after-ms), else 0";
            encode_gauges(&mut e, "ractmq_cluster_member_up", help, "node", up)?;
            let linked = members
                .iter()
                .filter(|m| !m.is_self)
                .map(|m| (m.name.as_str(), i64::from(m.linked)));
            encode_gauges(
                &mut e,
                "ractmq_cluster_link_up",
                "1 if a link to the member is open, else 0",
                "node",
                linked,
            )?;
        }
        Ok(())
    }
}

/// One bridge metric: name, help, kind, and how to read it from a bridge.
type BridgeMetric = (&'static str, &'static str, Kind, fn(&BridgeInfo) -> u64);

/// Per-bridge metrics, labelled `bridge` and `kind`.
const BRIDGE_METRICS: &[BridgeMetric] = &[
    (
        "ractmq_bridge_connected",
        "1 if the bridge's messages flow (remote connected, subscriptions in place)",
        Kind::Gauge,
        |b| u64::from(b.stats.connected),
    ),
    (
        "ractmq_bridge_running",
        "1 if the bridge's actor runs",
        Kind::Gauge,
        |b| u64::from(b.status == "running"),
    ),
    (
        "ractmq_bridge_queued",
        "Messages in the bridge's buffer",
        Kind::Gauge,
        |b| b.queued as u64,
    ),
    (
        "ractmq_bridge_sent",
        "Messages handed to the remote",
        Kind::Counter,
        |b| b.stats.sent,
    ),
    (
        "ractmq_bridge_acked",
        "Messages the remote acknowledged",
        Kind::Counter,
        |b| b.stats.acked,
    ),
    (
        "ractmq_bridge_failed",
        "Messages refused by the remote or failed past their retries",
        Kind::Counter,
        |b| b.stats.failed,
    ),
    ("ractmq_bridge_retried", "Sends tried again", Kind::Counter, |b| {
        b.stats.retried
    }),
    (
        "ractmq_bridge_dropped",
        "Messages the bridge dropped while its remote was down",
        Kind::Counter,
        |b| b.stats.dropped,
    ),
    (
        "ractmq_bridge_dead_lettered",
        "Messages published to the dead-letter topic",
        Kind::Counter,
        |b| b.stats.dead_lettered,
    ),
    (
        "ractmq_bridge_duplicates",
        "Messages received again after a restart of the bridge (possibly sent twice)",
        Kind::Counter,
        |b| b.stats.duplicates,
    ),
    (
        "ractmq_bridge_received",
        "Messages brought in from the remote",
        Kind::Counter,
        |b| b.stats.received,
    ),
    (
        "ractmq_bridge_restarts",
        "Restarts of the bridge's actor",
        Kind::Counter,
        |b| b.stats.restarts,
    ),
];

fn encode_bridges(e: &mut DescriptorEncoder, bridges: &[BridgeInfo]) -> std::fmt::Result {
    if bridges.is_empty() {
        return Ok(());
    }
    for (name, help, kind, read) in BRIDGE_METRICS {
        let metric_type = match kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        };
        let mut family = e.encode_descriptor(name, help, None, metric_type)?;
        for b in bridges {
            let labels = [("bridge", b.name.as_str()), ("kind", b.kind)];
            match kind {
                Kind::Counter => ConstCounter::new(read(b)).encode(family.encode_family(&labels)?)?,
                Kind::Gauge => ConstGauge::new(read(b) as i64).encode(family.encode_family(&labels)?)?,
            }
        }
    }
    let mut family = e.encode_descriptor(
        "ractmq_bridge_latency_seconds",
        "Smoothed time from taking a message to the remote's acknowledgement",
        None,
        MetricType::Gauge,
    )?;
    for b in bridges {
        let labels = [("bridge", b.name.as_str()), ("kind", b.kind)];
        ConstGauge::new(b.stats.latency_ms / 1000.0).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One rule metric: name, help, and how to read it from a rule.
type RuleMetric = (&'static str, &'static str, fn(&RuleInfo) -> u64);

/// Per-rule counters, labelled `rule`.
const RULE_METRICS: &[RuleMetric] = &[
    (
        "ractmq_rule_matched",
        "Messages and events the rule's FROM matched",
        |r| r.stats.matched,
    ),
    ("ractmq_rule_passed", "Evaluations that gave output", |r| r.stats.passed),
    ("ractmq_rule_failed", "Evaluations that failed (no output)", |r| {
        r.stats.failed
    }),
    (
        "ractmq_rule_no_result",
        "Evaluations whose WHERE was false, or whose payload was not the JSON the rule reads",
        |r| r.stats.no_result,
    ),
    ("ractmq_rule_restarts", "Restarts of the rule's actor", |r| {
        r.stats.restarts
    }),
];

/// One action metric: name, help, and how to read it from an action.
type ActionMetric = (&'static str, &'static str, fn(&ractmq_rule_engine::ActionStats) -> u64);

/// Per-action counters, labelled `rule`, `action` (its position, from 1) and `kind`.
const ACTION_METRICS: &[ActionMetric] = &[
    ("ractmq_rule_action_success", "Outputs the action carried out", |a| {
        a.success
    }),
    (
        "ractmq_rule_action_failed",
        "Outputs the action failed for good (dead-lettered)",
        |a| a.failed,
    ),
    ("ractmq_rule_action_retried", "Tries again after a failure", |a| {
        a.retried
    }),
];

fn encode_rules(e: &mut DescriptorEncoder, rules: &[RuleInfo]) -> std::fmt::Result {
    if rules.is_empty() {
        return Ok(());
    }
    let mut family = e.encode_descriptor("ractmq_rule_enabled", "1 if the rule runs", None, MetricType::Gauge)?;
    for r in rules {
        ConstGauge::new(i64::from(r.enabled)).encode(family.encode_family(&[("rule", r.name.as_str())])?)?;
    }
    for (name, help, read) in RULE_METRICS {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for r in rules {
            ConstCounter::new(read(r)).encode(family.encode_family(&[("rule", r.name.as_str())])?)?;
        }
    }
    for (name, help, read) in ACTION_METRICS {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for r in rules {
            for (i, a) in r.stats.actions.iter().enumerate() {
                let position = (i + 1).to_string();
                let labels = [
                    ("rule", r.name.as_str()),
                    ("action", position.as_str()),
                    ("kind", a.kind),
                ];
                ConstCounter::new(read(a)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

/// The whole exposition, as Prometheus text.
pub fn render(state: &AppState) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector(state.clone())));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String does not fail");
    out
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(&s),
    )
        .into_response()
}
