//! The Prometheus exposition (`/metrics`), written by the prometheus-client crate from the broker's counters
//! at scrape time: recording stays a relaxed atomic add on the hot path, and nothing is kept twice.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use ractmq_broker::metrics::ROUTE_BUCKETS_NS;
use ractmq_broker::Metrics;
use ractmq_cluster::stats::ClusterStats;
use ractmq_cluster::MemberState;

use crate::node::listener_connections;
use crate::state::AppState;

/// Reads the broker (and cluster) at every scrape.
#[derive(Clone)]
struct BrokerCollector(AppState);

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One counter with a label, several values.
fn labelled(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, v) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter per QoS level, labelled "0", "1", "2".
fn per_qos(counters: &[std::sync::atomic::AtomicU64; 3]) -> [(&'static str, u64); 3] {
    [
        ("0", Metrics::get(&counters[0])),
        ("1", Metrics::get(&counters[1])),
        ("2", Metrics::get(&counters[2])),
    ]
}

impl Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let k = &self.0.kernel;
        let m = &k.metrics;
        let g = Metrics::get;
        gauge(
            &mut e,
            "ractmq_connections",
            "Clients connected now",
            g(&m.clients_connected) as i64,
        )?;
        counter(
            &mut e,
            "ractmq_connections_accepted",
            "Sockets accepted",
            g(&m.connections_accepted),
        )?;
        gauge(
            &mut e,
            "ractmq_sessions",
            "Sessions on this node (connected or not)",
            k.store.len() as i64,
        )?;
        gauge(
            &mut e,
            "ractmq_subscriptions",
            "Subscriptions on this node",
            k.router.subscription_count() as i64,
        )?;
        gauge(
            &mut e,
            "ractmq_retained_messages",
            "Retained messages kept",
            k.router.retained.read().len() as i64,
        )?;
        let (queued, queued_bytes) = k
            .store
            .all()
            .iter()
            .map(|s| s.queued())
            .fold((0, 0), |a, q| (a.0 + q.0, a.1 + q.1));
        gauge(
            &mut e,
            "ractmq_queued_messages",
            "Messages queued for clients, summed over sessions",
            queued as i64,
        )?;
        gauge(
            &mut e,
            "ractmq_queued_bytes",
            "Bytes queued for clients, summed over sessions",
            queued_bytes as i64,
        )?;
        counter(
            &mut e,
            "ractmq_publishers_held",
            "Times a publisher was held because a queue it filled was full",
            g(&m.publishers_held),
        )?;
        counter(
            &mut e,
            "ractmq_subscribers_stalled",
            "Subscribers whose full queue did not drain within the stall timeout",
            g(&m.subscribers_stalled),
        )?;
        counter(
            &mut e,
            "ractmq_messages_received",
            "PUBLISH packets received from clients",
            g(&m.messages_received),
        )?;
        counter(
            &mut e,
            "ractmq_messages_sent",
            "PUBLISH packets sent to clients",
            g(&m.messages_sent),
        )?;
        labelled(
            &mut e,
            "ractmq_messages_routed",
            "Messages routed, by QoS",
            "qos",
            &per_qos(&m.routed_by_qos),
        )?;
        labelled(
            &mut e,
            "ractmq_messages_delivered",
            "PUBLISH packets sent to clients, by QoS",
            "qos",
            &per_qos(&m.sent_by_qos),
        )?;
        let dropped = [
            ("queue_full", g(&m.dropped_queue_full)),
            ("offline_queue_full", g(&m.dropped_offline_queue_full)),
            ("expired", g(&m.dropped_expired)),
            ("too_large", g(&m.dropped_too_large)),
            ("local_subscriber", g(&m.dropped_local_subscriber)),
            ("retained_full", g(&m.dropped_retained_full)),
            ("forward", g(&m.dropped_forward)),
        ];
        labelled(
            &mut e,
            "ractmq_messages_dropped",
            "Messages dropped, by reason",
            "reason",
            &dropped,
        )?;
        counter(
            &mut e,
            "ractmq_messages_no_subscribers",
            "Messages that matched no subscriber",
            g(&m.messages_no_subscribers),
        )?;
        counter(
            &mut e,
            "ractmq_bytes_received",
            "Bytes read from clients",
            g(&m.bytes_received),
        )?;
        counter(
            &mut e,
            "ractmq_bytes_sent",
            "Bytes written to clients",
            g(&m.bytes_sent),
        )?;
        let restarts = [
            ("session", g(&m.session_restarts)),
            ("shard", g(&m.shard_restarts)),
            ("other", g(&m.other_restarts)),
        ];
        labelled(
            &mut e,
            "ractmq_actor_restarts",
            "Actors restarted by their supervisor, by kind",
            "kind",
            &restarts,
        )?;
        counter(
            &mut e,
            "ractmq_protocol_errors",
            "Connections closed for a protocol error",
            g(&m.protocol_errors),
        )?;
        // prometheus-client takes the count of each bucket (it adds them up) and f64::MAX for +Inf.
        let (sum_ns, count, per_bucket) = m.route_latency.snapshot();
        let bounds = ROUTE_BUCKETS_NS.iter().map(|ns| *ns as f64 / 1e9).chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(per_bucket).collect();
        e.encode_descriptor(
            "ractmq_route_latency_seconds",
            "Time to route one message on the node it was published on",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<()>(sum_ns as f64 / 1e9, count, &buckets, None)?;
        let mut open = e.encode_descriptor(
            "ractmq_listener_connections",
            "Open client connections by listener",
            None,
            MetricType::Gauge,
        )?;
        for (listener, n) in listener_connections(&self.0.kernel) {
            let labels = [("listener", listener.as_str())];
            ConstGauge::new(n as i64).encode(open.encode_family(&labels)?)?;
        }
        if let Some(cluster) = &self.0.cluster {
            let s = cluster.stats();
            let c = ClusterStats::get;
            counter(
                &mut e,
                "ractmq_cluster_forwarded",
                "Messages queued towards other nodes",
                c(&s.forwarded),
            )?;
            counter(
                &mut e,
                "ractmq_cluster_received",
                "Messages received from other nodes",
                c(&s.received),
            )?;
            counter(
                &mut e,
                "ractmq_cluster_relayed_out",
                "Messages passed on to a session that moved from here to another node",
                c(&s.relayed_out),
            )?;
            counter(
                &mut e,
                "ractmq_cluster_relayed_in",
                "Messages passed on here by the node a session moved from",
                c(&s.relayed_in),
            )?;
            let mut up = e.encode_descriptor(
                "ractmq_cluster_member_up",
                "1 if the member is up (heard within --down-after-ms), else 0",
                None,
                MetricType::Gauge,
            )?;
            let members = cluster.members();
            for member in &members {
                let labels = [("node", member.name.as_str())];
                ConstGauge::new(i64::from(member.state == MemberState::Up)).encode(up.encode_family(&labels)?)?;
            }
            let mut linked = e.encode_descriptor(
                "ractmq_cluster_link_up",
                "1 if a link to the member is open, else 0",
                None,
                MetricType::Gauge,
            )?;
            for member in members.iter().filter(|m| !m.is_self) {
                let labels = [("node", member.name.as_str())];
                ConstGauge::new(i64::from(member.linked)).encode(linked.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
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
