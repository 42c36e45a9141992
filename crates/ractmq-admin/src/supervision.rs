//! `/api/v1/supervision`: the node's supervision tree as it runs now, from the root supervisor down (the
//! walk is the broker's, `BrokerView::supervision_tree`), with what `POST /api/v1/chaos/kill` takes to kill
//! each actor it can. It exists so that operators and the dashboard see supervision.md running: which actors
//! run, how each supervisor restarts, and how often each actor was restarted.

use axum::extract::State;
use axum::Json;
use ractmq_broker::{Metrics, TreeNode};
use serde_json::{json, Value};

use crate::chaos;
use crate::state::AppState;

/// `GET /supervision`: `{node, chaos, restarts: {session, shard, other}, tree}`.
pub async fn tree(State(s): State<AppState>) -> Json<Value> {
    let tree = s.broker.supervision_tree().await;
    let m = s.broker.metrics();
    Json(json!({
        "node": s.node_name(),
        "chaos": s.config.chaos,
        "restarts": {
            "session": Metrics::get(&m.session_restarts),
            "shard": Metrics::get(&m.shard_restarts),
            "other": Metrics::get(&m.other_restarts),
        },
        "tree": to_json(&tree, &[]),
    }))
}

/// One node and what is listed below it; `above` is the path from the root to its supervisor.
fn to_json(node: &TreeNode, above: &[&str]) -> Value {
    let path: Vec<&str> = above.iter().copied().chain([node.name.as_str()]).collect();
    let children: Vec<Value> = node.children.iter().map(|c| to_json(c, &path)).collect();
    // Chaos kills only what the root's own children (shards, sessions, cluster, bridges, rules) supervise.
    let kill = match above {
        [_root, parent] => chaos::target_of(parent, &node.name),
        _ => None,
    };
    let mut v = json!({
        "name": node.name,
        "kind": if node.supervisor { "supervisor" } else { "worker" },
        "status": node.status,
        "strategy": node.strategy.map(|st| st.name()),
        "intensity": node.intensity.map(|p| json!({"max_restarts": p.max_restarts(), "within_s": p.window().as_secs()})),
        "restarts": node.restarts,
        "children_count": node.children_count,
        "more": node.children_count.saturating_sub(children.len()),
        "children": children,
        "kill": kill.map(|(kind, target)| json!({"kind": kind, "target": target})),
    });
    if let Some(hibernated) = node.hibernated {
        v["hibernated"] = json!(hibernated);
    }
    v
}
