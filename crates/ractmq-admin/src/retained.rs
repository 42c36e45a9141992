//! Retained messages: the list, one by topic, and clearing one (cluster-wide, as a client clearing it does).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_protocol::Message;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

fn to_json(m: &Message) -> Value {
    json!({
        "topic": m.topic.to_string(),
        "qos": m.qos as u8,
        "payload": String::from_utf8_lossy(&m.payload),
        "payload_bytes": m.payload.len(),
        "publisher": m.publisher.as_deref(),
    })
}

pub async fn list(State(s): State<AppState>) -> Json<Value> {
    Json(json!(s
        .broker
        .retained()
        .iter()
        .map(|m| to_json(m))
        .collect::<Vec<_>>()))
}

pub async fn show(State(s): State<AppState>, Path(topic): Path<String>) -> Response {
    let found = s.broker.retained_message(&topic);
    match found {
        Some(m) => Json(to_json(&m)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no retained message on '{topic}'")),
    }
}

pub async fn remove(State(s): State<AppState>, Path(topic): Path<String>) -> Response {
    if s.broker.delete_retained(&topic).await {
        Json(json!({ "topic": topic, "deleted": true })).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no retained message on '{topic}'"))
    }
}
