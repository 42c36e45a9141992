//! `/api/v1/health`, `/api/v1/health/live` and `/api/v1/health/ready`: what load balancers and Kubernetes
//! probes ask. Answered without authentication (they say nothing a probe may not know), 200 when the answer
//! is yes and 503 when it is no, with the checks behind it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_broker::Health;
use serde_json::json;

use crate::state::AppState;

fn answer(yes: bool, health: &Health) -> Response {
    let checks: serde_json::Map<String, serde_json::Value> = health
        .checks
        .iter()
        .map(|(name, up)| (name.clone(), json!(up)))
        .collect();
    let body = json!({
        "live": health.live,
        "ready": health.ready,
        "down": health.down,
        "checks": checks,
    });
    let status = if yes {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Both answers; 200 only when ready.
pub async fn health(State(s): State<AppState>) -> Response {
    let health = s.broker.health().await;
    answer(health.ready, &health)
}

/// Liveness: 503 once the root supervisor has given up (restart the process).
pub async fn live(State(s): State<AppState>) -> Response {
    let health = s.broker.health().await;
    answer(health.live, &health)
}

/// Readiness: 503 while a supervisor or listener is down or the node drains (send clients elsewhere).
pub async fn ready(State(s): State<AppState>) -> Response {
    let health = s.broker.health().await;
    answer(health.ready, &health)
}
