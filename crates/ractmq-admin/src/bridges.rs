//! `/api/v1/bridges`: the node's bridges, their counters and dead letters; create, replace, delete, start,
//! stop, restart and replay.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_bridge::{BridgeConfig, BridgeError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::rules::name_from_path;
use crate::state::AppState;

fn no_bridges() -> Response {
    error(StatusCode::NOT_FOUND, "this node runs no bridges")
}

fn failed(e: BridgeError) -> Response {
    let status = match &e {
        BridgeError::NotFound(_) => StatusCode::NOT_FOUND,
        BridgeError::Exists(_) => StatusCode::CONFLICT,
        BridgeError::Invalid(_) => StatusCode::BAD_REQUEST,
        BridgeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

/// `GET /bridges`: every bridge with its status and counters.
pub async fn list(State(s): State<AppState>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    Json(b.list()).into_response()
}

/// `GET /bridges/{name}`: one bridge, with its configuration (passwords hidden).
pub async fn show(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    match (b.get(&name), b.config(&name)) {
        (Some(info), Some(config)) => {
            let mut v = serde_json::to_value(info).unwrap_or_default();
            v["config"] = serde_json::to_value(config.redacted()).unwrap_or_default();
            Json(v).into_response()
        }
        _ => failed(BridgeError::NotFound(name)),
    }
}

/// `POST /bridges`: a new bridge (`kind`: mqtt, http, postgres or kafka, and its settings), started unless
/// `enabled` is false.
pub async fn create(State(s): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    let config = match BridgeConfig::from_json(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a bridge: {e}")),
    };
    let name = config.name().to_string();
    match b.create(config).await {
        Ok(()) => (StatusCode::CREATED, Json(b.get(&name))).into_response(),
        Err(e) => failed(e),
    }
}

/// `PUT /bridges/{name}`: replace the bridge of that name (body as `POST /bridges`; `name` may be left out);
/// it is stopped, replaced and started again, unless it was stopped or the body says `enabled: false`. A
/// password shown as `***` by `GET` is kept.
pub async fn replace(State(s): State<AppState>, Path(name): Path<String>, Json(mut body): Json<Value>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    if let Err(e) = name_from_path(&mut body, &name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let enabled = body.get("enabled").and_then(Value::as_bool);
    let config = match BridgeConfig::from_json(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a bridge: {e}")),
    };
    match b.replace(config, enabled).await {
        Ok(()) => Json(b.get(&name)).into_response(),
        Err(e) => failed(e),
    }
}

/// `DELETE /bridges/{name}`: stop it and forget it, with its buffer.
pub async fn delete(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    match b.delete(&name).await {
        Ok(()) => Json(json!({ "name": name, "deleted": true })).into_response(),
        Err(e) => failed(e),
    }
}

/// `POST /bridges/{name}/{start|stop|restart}`.
pub async fn act(State(s): State<AppState>, Path((name, action)): Path<(String, String)>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    let done = match action.as_str() {
        "start" => b.start_bridge(&name).await,
        "stop" => b.stop_bridge(&name).await,
        "restart" => b.restart(&name).await,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action '{other}': use start, stop or restart"),
            )
        }
    };
    match done {
        Ok(()) => Json(b.get(&name)).into_response(),
        Err(e) => failed(e),
    }
}

/// `GET /bridges/{name}/dlq`: its recent dead letters, oldest first.
pub async fn dead_letters(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    match b.dead_letters(&name) {
        Ok(letters) => Json(letters).into_response(),
        Err(e) => failed(e),
    }
}

/// The body of `POST /bridges/{name}/dlq/replay`: which letters (all when absent).
#[derive(Deserialize, Default)]
pub struct Replay {
    ids: Option<Vec<u64>>,
}

/// `POST /bridges/{name}/dlq/replay`: send dead letters again through the bridge.
pub async fn replay(State(s): State<AppState>, Path(name): Path<String>, body: Option<Json<Replay>>) -> Response {
    let ids = body.and_then(|Json(r)| r.ids);
    let Some(b) = s.bridges.as_ref() else {
        return no_bridges();
    };
    match b.replay(&name, ids.as_deref()) {
        Ok(n) => Json(json!({ "name": name, "replayed": n })).into_response(),
        Err(e) => failed(e),
    }
}
