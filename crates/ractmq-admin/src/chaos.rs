//! Killing actors on purpose, through the same supervision paths as real failures: a session, a topic shard,
//! one of the cluster's actors. Off unless the node was started with `--api-chaos`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::error;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct KillBody {
    /// "session", "shard", "cluster" (an actor of the cluster: node-server, agent, forwarder, connector) or
    /// "bridge" or "rule".
    pub kind: String,
    pub target: String,
}

/// The cluster's actors `kind: "cluster"` kills, by their names in the cluster supervisor.
const CLUSTER_ACTORS: [&str; 4] = ["node-server", "agent", "forwarder", "connector"];

/// What `POST /chaos/kill` takes to kill the actor named `name` whose supervisor is the root's child
/// `parent`, as (kind, target); `None` where chaos has no kind for it (the supervision tree shows it).
pub fn target_of(parent: &str, name: &str) -> Option<(&'static str, String)> {
    let kind = match parent {
        "sessions" => "session",
        "shards" => return name.strip_prefix("shard-").map(|i| ("shard", i.to_string())),
        "cluster" if CLUSTER_ACTORS.contains(&name) => "cluster",
        "bridges" => "bridge",
        "rules" => "rule",
        _ => return None,
    };
    Some((kind, name.to_string()))
}

pub async fn kill(State(s): State<AppState>, Json(body): Json<KillBody>) -> Response {
    if !s.config.chaos {
        return error(
            StatusCode::FORBIDDEN,
            "the chaos API is off on this node: start it with --api-chaos to use it",
        );
    }
    let killed = match body.kind.as_str() {
        "session" => s.broker.kill_session(&body.target).await,
        "shard" => body.target.parse::<usize>().is_ok_and(|i| s.broker.kill_shard(i)),
        "cluster" => match &s.cluster {
            Some(c) => c.kill_actor(&body.target).await,
            None => false,
        },
        "bridge" => s.bridges.as_ref().is_some_and(|b| b.kill(&body.target)),
        "rule" => s.rules.as_ref().is_some_and(|r| r.kill(&body.target)),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown kind '{other}': session, shard, cluster, bridge or rule"),
            )
        }
    };
    if killed {
        Json(json!({ "kind": body.kind, "target": body.target, "killed": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no {} '{}' on this node", body.kind, body.target),
        )
    }
}
