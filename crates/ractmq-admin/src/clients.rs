//! Clients: the list (paged, filtered, searched), one client, and kicking one (0x98, its session stays).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_broker::ClientInfo;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

/// Most clients one page may hold.
pub const MAX_LIMIT: usize = 10_000;

#[derive(Deserialize)]
pub struct ListQuery {
    /// 1-based.
    pub page: Option<usize>,
    pub limit: Option<usize>,
    /// Only connected (true) or disconnected (false) sessions.
    pub connected: Option<bool>,
    /// Only client ids containing this.
    pub like: Option<String>,
    pub username: Option<String>,
    /// A search: client ids, user names or peer addresses containing this, whatever the case.
    pub q: Option<String>,
}

/// Does `c` match the search `needle` (already lowercase)?
fn found(c: &ClientInfo, needle: &str) -> bool {
    let has = |hay: &str| hay.to_lowercase().contains(needle);
    has(&c.client_id) || c.username.as_deref().is_some_and(has) || c.peer.as_deref().is_some_and(has)
}

pub fn to_json(c: &ClientInfo) -> Value {
    json!({
        "client_id": c.client_id,
        "connected": c.connected,
        "peer": c.peer,
        "protocol": c.protocol,
        "keep_alive": c.keep_alive,
        "username": c.username,
        "connected_at": c.connected_at,
        "subscriptions": c.subscriptions,
        "queued": c.queued,
        "queued_bytes": c.queued_bytes,
        "inflight": c.inflight,
        "expiry_interval": c.expiry_interval,
    })
}

pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let page = q.page.unwrap_or(1);
    let limit = q.limit.unwrap_or(100);
    if page == 0 || limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("page starts at 1 and limit is 1 to {MAX_LIMIT}"),
        );
    }
    let needle = q.q.as_deref().map(str::to_lowercase);
    let matching: Vec<ClientInfo> = s
        .broker
        .clients()
        .into_iter()
        .filter(|c| q.connected.is_none_or(|want| c.connected == want))
        .filter(|c| q.like.as_ref().is_none_or(|l| c.client_id.contains(l.as_str())))
        .filter(|c| {
            q.username
                .as_ref()
                .is_none_or(|u| c.username.as_deref() == Some(u.as_str()))
        })
        .filter(|c| needle.as_deref().is_none_or(|n| found(c, n)))
        .collect();
    let count = matching.len();
    let data: Vec<Value> = matching
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(to_json)
        .collect();
    Json(json!({ "data": data, "meta": { "page": page, "limit": limit, "count": count } })).into_response()
}

pub async fn show(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match s.broker.client(&id) {
        Some(c) => Json(to_json(&c)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no session of client '{id}' on this node"),
        ),
    }
}

pub async fn kick(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    if s.broker.kick(&id).await {
        Json(json!({ "client_id": id, "kicked": true })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("no session of client '{id}' on this node"),
        )
    }
}
