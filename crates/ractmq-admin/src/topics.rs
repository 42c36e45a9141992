//! Subscriptions (per client) and routes (which filters have subscribers on which node), each list optionally
//! narrowed to one client's.

use axum::extract::{Query, State};
use axum::Json;
use ractmq_cluster::WireRoute;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;

/// `?client_id=`: only that client's.
#[derive(Deserialize)]
pub struct SubscriptionQuery {
    pub client_id: Option<String>,
}

pub async fn subscriptions(State(s): State<AppState>, Query(q): Query<SubscriptionQuery>) -> Json<Value> {
    let all: Vec<Value> = s
        .broker
        .subscriptions()
        .into_iter()
        .filter(|sub| q.client_id.as_ref().is_none_or(|c| &sub.client_id == c))
        .map(|sub| {
            json!({
                "client_id": sub.client_id,
                "filter": sub.filter,
                "qos": sub.qos,
                "no_local": sub.no_local,
                "retain_as_published": sub.retain_as_published,
                "subscription_id": sub.subscription_id,
            })
        })
        .collect();
    Json(json!(all))
}

/// Every route: the filters with subscribers on this node, and those the other nodes announced. With a
/// client id, the routes of that client's subscriptions on this node (the other nodes' routes do not say whose
/// they are).
pub async fn routes(State(s): State<AppState>, Query(q): Query<SubscriptionQuery>) -> Json<Value> {
    let me = s.node_name();
    if let Some(client_id) = &q.client_id {
        let routes: Vec<Value> = s
            .broker
            .subscriptions()
            .into_iter()
            .filter(|sub| &sub.client_id == client_id)
            .map(|sub| json!({ "topic": sub.filter, "node": me }))
            .collect();
        return Json(json!(routes));
    }
    let mut all: Vec<Value> = s
        .broker
        .local_routes()
        .into_iter()
        .map(|filter| json!({ "topic": filter, "node": me }))
        .collect();
    if let Some(cluster) = &s.cluster {
        for (node, route) in cluster.remote_routes() {
            let topic = match route {
                WireRoute::Filter(f) => f,
                WireRoute::Shared { group, .. } => group,
            };
            let entry = json!({ "topic": topic, "node": node.to_string() });
            if !all.contains(&entry) {
                all.push(entry);
            }
        }
    }
    Json(json!(all))
}
