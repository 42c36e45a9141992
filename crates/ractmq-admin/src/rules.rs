//! `/api/v1/rules`: the node's rules with their counters; create, replace, delete, enable, disable; and
//! `/api/v1/rule_test`, what a rule's SQL outputs for one message without publishing anything.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_rule_engine::{RuleConfig, RuleError, TestMessage};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

fn no_rules() -> Response {
    error(StatusCode::NOT_FOUND, "this node runs no rule engine")
}

fn failed(e: RuleError) -> Response {
    let status = match &e {
        RuleError::NotFound(_) => StatusCode::NOT_FOUND,
        RuleError::Exists(_) => StatusCode::CONFLICT,
        RuleError::Invalid(_) => StatusCode::BAD_REQUEST,
        RuleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

/// `GET /rules`: every rule with its counters.
pub async fn list(State(s): State<AppState>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    Json(r.list()).into_response()
}

/// `GET /rules/{name}`: one rule, with its configuration.
pub async fn show(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    match (r.get(&name), r.config(&name)) {
        (Some(info), Some(config)) => {
            let mut v = serde_json::to_value(info).unwrap_or_default();
            v["config"] = serde_json::to_value(config).unwrap_or_default();
            Json(v).into_response()
        }
        _ => failed(RuleError::NotFound(name)),
    }
}

/// `POST /rules`: a new rule (`name`, `sql`, `actions`...), running unless `enabled` is false. A SQL error is
/// a 400 whose message names the position.
pub async fn create(State(s): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    let config = match RuleConfig::from_json(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let name = config.name.clone();
    match r.create(config).await {
        Ok(()) => (StatusCode::CREATED, Json(r.get(&name))).into_response(),
        Err(e) => failed(e),
    }
}

/// `PUT /rules/{name}`: replace the rule of that name (body as `POST /rules`; `name` may be left out, and must
/// be the path's when given), keeping its enabled flag unless the body gives `enabled`. See
/// `Rules::replace` for what carries over.
pub async fn replace(State(s): State<AppState>, Path(name): Path<String>, Json(mut body): Json<Value>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    if let Err(e) = name_from_path(&mut body, &name) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let enabled = body.get("enabled").and_then(Value::as_bool);
    let config = match RuleConfig::from_json(body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match r.replace(config, enabled).await {
        Ok(()) => Json(r.get(&name)).into_response(),
        Err(e) => failed(e),
    }
}

/// The body of a `PUT` names what the path names: `name` is filled in when missing, and a different one is an
/// error (renaming is deleting and creating).
pub fn name_from_path(body: &mut Value, name: &str) -> Result<(), String> {
    let Some(fields) = body.as_object_mut() else {
        return Err("the body must be a JSON object".into());
    };
    match fields.get("name") {
        None => {
            fields.insert("name".into(), Value::String(name.into()));
            Ok(())
        }
        Some(Value::String(given)) if given == name => Ok(()),
        Some(given) => Err(format!(
            "the body names {given}, the path {name:?}: to rename, delete and create"
        )),
    }
}

/// `DELETE /rules/{name}`.
pub async fn delete(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    match r.delete(&name).await {
        Ok(()) => Json(json!({ "name": name, "deleted": true })).into_response(),
        Err(e) => failed(e),
    }
}

/// `POST /rules/{name}/{enable|disable}`.
pub async fn act(State(s): State<AppState>, Path((name, action)): Path<(String, String)>) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action '{other}': use enable or disable"),
            )
        }
    };
    match r.set_enabled(&name, enabled).await {
        Ok(()) => Json(r.get(&name)).into_response(),
        Err(e) => failed(e),
    }
}

/// The body of `POST /rule_test`: the SQL and the message to try it on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    sql: String,
    #[serde(flatten)]
    message: TestMessage,
}

/// `POST /rule_test`: what `sql` outputs for the message, without publishing anything.
pub async fn test(
    State(s): State<AppState>,
    body: Result<Json<TestBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(r) = s.rules.as_ref() else {
        return no_rules();
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a rule test: {e}")),
    };
    match r.test(&body.sql, &body.message) {
        Ok(out) => Json(out).into_response(),
        Err(e) => failed(e),
    }
}
