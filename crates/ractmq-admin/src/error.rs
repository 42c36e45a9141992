//! The REST API's error answer, one shape for every handler: a status and `{"error": "..."}` whose message says
//! what is wrong and how to fix it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An error answer: the status and `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}
