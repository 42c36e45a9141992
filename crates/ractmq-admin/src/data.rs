//! `/api/v1/data`: what the node keeps in its data dir (sizes, records by kind) and how its group commits go;
//! `{"durability": "memory"}` on a node that keeps nothing on disk.

use axum::extract::State;
use axum::Json;
use ractmq_broker::StoreStats;
use serde_json::{json, Value};

use crate::state::AppState;

/// The store's numbers as the API answers them.
pub fn to_json(stats: Option<&StoreStats>) -> Value {
    let Some(st) = stats else {
        return json!({ "durability": "memory" });
    };
    json!({
        "durability": "disk",
        "dir": st.dir.display().to_string(),
        "file_bytes": st.file_bytes,
        "sessions": st.sessions,
        "messages": st.messages,
        "retained": st.retained,
        "operator": st.operator,
        "commits": st.commits,
        "ops": st.ops,
        "cancelled": st.cancelled,
        "pending_ops": st.pending_ops,
        "pending_bytes": st.pending_bytes,
        "last_commit_us": st.last_commit_us,
    })
}

pub async fn stats(State(s): State<AppState>) -> Json<Value> {
    Json(to_json(s.broker.data_stats().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_a_store_says_memory_and_nothing_else() {
        assert_eq!(to_json(None), json!({"durability": "memory"}));
    }

    #[test]
    fn a_node_with_a_store_gives_every_number() {
        let stats = StoreStats {
            dir: "/var/lib/ractmq".into(),
            file_bytes: 4096,
            sessions: 2,
            messages: 3,
            commits: 7,
            last_commit_us: 850,
            ..StoreStats::default()
        };
        let v = to_json(Some(&stats));
        assert_eq!(v["durability"], "disk");
        assert_eq!(v["dir"], "/var/lib/ractmq");
        assert_eq!(
            (&v["file_bytes"], &v["sessions"], &v["messages"]),
            (&json!(4096), &json!(2), &json!(3))
        );
        assert_eq!((&v["commits"], &v["last_commit_us"]), (&json!(7), &json!(850)));
        assert_eq!(v.as_object().unwrap().len(), 13, "{v}");
    }
}
