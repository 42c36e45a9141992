//! The node as a whole: status, the cluster's members and their links, the counters, the listeners, and
//! publishing over HTTP.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ractmq_broker::Metrics;
use ractmq_codec::{topic, QoS};
use ractmq_protocol::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

pub async fn status(State(s): State<AppState>) -> Response {
    let b = &s.broker;
    if let Some(down) = b.down() {
        return error(StatusCode::SERVICE_UNAVAILABLE, down);
    }
    Json(json!({
        "node": s.node_name(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": b.uptime().as_secs(),
        "mqtt_listen": b.mqtt_addr().map(|a| a.to_string()),
        "clients_connected": Metrics::get(&b.metrics().clients_connected),
        "sessions": b.session_count(),
        "subscriptions": b.subscription_count(),
        "retained": b.retained_count(),
        "clustered": s.cluster.is_some(),
    }))
    .into_response()
}

/// Every member as this node sees it (this node alone when not clustered).
fn members(s: &AppState) -> Vec<Value> {
    let Some(cluster) = &s.cluster else {
        return vec![json!({
            "name": s.node_name(), "state": "up", "is_self": true, "linked": true,
            "mqtt_addr": s.broker.mqtt_addr().map(|a| a.to_string()),
        })];
    };
    cluster
        .members()
        .into_iter()
        .map(|m| {
            json!({
                "name": m.name,
                "cluster_addr": m.cluster_addr.to_string(),
                "mqtt_addr": m.mqtt_addr.map(|a| a.to_string()),
                "state": m.state.to_string(),
                "is_self": m.is_self,
                "linked": m.linked,
                "seed": m.seed,
                "last_heard_ms_ago": m.last_heard.map(|t| t.elapsed().as_millis() as u64),
                "queued_to": if m.is_self { 0 } else { cluster.queued_for(&m.name) },
                "sees": m.sees,
                "queues": m.queues.iter().map(|(node, n)| (node.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect()
}

pub async fn nodes(State(s): State<AppState>) -> Json<Value> {
    Json(json!(members(&s)))
}

pub async fn cluster(State(s): State<AppState>) -> Json<Value> {
    let stats = s.cluster.as_ref().map(|c| {
        let st = c.stats();
        let get = ractmq_cluster::ClusterStats::get;
        json!({
            "forwarded": get(&st.forwarded),
            "received": get(&st.received),
            "duplicates_skipped": get(&st.duplicates_skipped),
            "dropped_queue_full": get(&st.dropped_queue_full),
            "dropped_node_restarted": get(&st.dropped_node_restarted),
            "dropped_too_large": get(&st.dropped_too_large),
            "sessions_taken_over": get(&st.sessions_taken_over),
            "sessions_handed_over": get(&st.sessions_handed_over),
            "relayed_out": get(&st.relayed_out),
            "relayed_in": get(&st.relayed_in),
        })
    });
    Json(json!({ "node": s.node_name(), "clustered": s.cluster.is_some(), "members": members(&s), "stats": stats }))
}

/// The broker's counters by name.
pub fn counters(m: &Metrics) -> Vec<(&'static str, u64)> {
    let g = Metrics::get;
    vec![
        ("connections_accepted", g(&m.connections_accepted)),
        ("dropped_at_accept", g(&m.dropped_at_accept)),
        ("connections_refused", g(&m.connections_refused)),
        ("refused_banned", g(&m.refused_banned)),
        ("authn_failed", g(&m.authn_failed)),
        ("authz_denied", g(&m.authz_denied)),
        ("banned_flapping", g(&m.banned_flapping)),
        ("overload_episodes", g(&m.overload_episodes)),
        ("dropped_overload", g(&m.dropped_overload)),
        ("rate_limited", g(&m.rate_limited)),
        ("accept_rate_limited", g(&m.accept_rate_limited)),
        ("clients_connected", g(&m.clients_connected)),
        ("messages_received", g(&m.messages_received)),
        ("messages_sent", g(&m.messages_sent)),
        ("bytes_received", g(&m.bytes_received)),
        ("bytes_sent", g(&m.bytes_sent)),
        ("dropped_queue_full", g(&m.dropped_queue_full)),
        ("dropped_offline_queue_full", g(&m.dropped_offline_queue_full)),
        ("dropped_expired", g(&m.dropped_expired)),
        ("dropped_too_large", g(&m.dropped_too_large)),
        ("dropped_local_subscriber", g(&m.dropped_local_subscriber)),
        ("dropped_retained_full", g(&m.dropped_retained_full)),
        ("dropped_forward", g(&m.dropped_forward)),
        ("disconnected_slow_subscribers", g(&m.disconnected_slow_subscribers)),
        ("publishers_held", g(&m.publishers_held)),
        ("subscribers_stalled", g(&m.subscribers_stalled)),
        ("messages_no_subscribers", g(&m.messages_no_subscribers)),
        ("session_restarts", g(&m.session_restarts)),
        ("shard_restarts", g(&m.shard_restarts)),
        ("other_restarts", g(&m.other_restarts)),
        ("shared_handed_off", g(&m.shared_handed_off)),
        ("sessions_hibernated", g(&m.sessions_hibernated)),
        ("sessions_woken", g(&m.sessions_woken)),
        ("protocol_errors", g(&m.protocol_errors)),
        ("routed_qos0", g(&m.routed_by_qos[0])),
        ("routed_qos1", g(&m.routed_by_qos[1])),
        ("routed_qos2", g(&m.routed_by_qos[2])),
        ("sent_qos0", g(&m.sent_by_qos[0])),
        ("sent_qos1", g(&m.sent_by_qos[1])),
        ("sent_qos2", g(&m.sent_by_qos[2])),
    ]
}

/// The broker's counters, then the API's own (failed logins) and, on a node with rules, the rule engine's
/// (per-rule counters are `GET /rules`).
pub async fn stats(State(s): State<AppState>) -> Json<Value> {
    let mut map: serde_json::Map<String, Value> = counters(s.broker.metrics())
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    map.insert(
        "api_logins_failed".into(),
        json!(s.login.failed.load(std::sync::atomic::Ordering::Relaxed)),
    );
    if let Some(rules) = &s.rules {
        map.insert("rules".into(), json!(rules.list().len()));
        map.insert("rules_chains_cut".into(), json!(rules.chains_cut()));
    }
    Json(Value::Object(map))
}

/// Every listener: the plain TCP one, then the TLS and WebSocket ones in configuration order, each with its
/// open connections (`max_connections` is the node's, over all of them).
pub async fn listeners(State(s): State<AppState>) -> Json<Value> {
    let max_connections = s.broker.max_connections();
    let all = s.broker.listeners().into_iter().map(|l| {
        json!({
            "name": l.name,
            "protocol": "mqtt",
            "transport": l.transport,
            "configured": l.configured,
            "bound": l.bound.map(|a| a.to_string()),
            "running": l.bound.is_some(),
            "websocket_path": l.websocket_path,
            "max_connections": max_connections,
            "connections": l.connections,
        })
    });
    Json(Value::Array(all.collect()))
}

#[derive(Deserialize)]
pub struct PublishBody {
    pub topic: String,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

/// Publish as the broker itself would (no client id: no No Local applies).
pub async fn publish(State(s): State<AppState>, Json(body): Json<PublishBody>) -> Response {
    if !topic::valid_name(&body.topic) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("'{}' is not a valid topic name", body.topic),
        );
    }
    let Some(qos) = QoS::from_u8(body.qos) else {
        return error(StatusCode::BAD_REQUEST, format!("qos {} is not 0, 1 or 2", body.qos));
    };
    let message = Message::new(body.topic.as_str(), Bytes::from(body.payload), qos, body.retain);
    // Answered once the message is queued, and the queues it filled have room, as a client's PUBACK is.
    let delivered = s.broker.publish(message).await;
    Json(json!({ "topic": body.topic, "delivered": delivered })).into_response()
}
