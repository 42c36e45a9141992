//! The security endpoints: the built-in user database (`/users`), the banned list (`/banned`), flapping
//! detection and the bans it made (`/flapping`) and reloading the ACL and password files (`/acl/reload`).
//! `ractmq ctl users|banned|flapping|acl` call these (the ACL in force is `acl.rs`).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_auth::banned::Ban;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

/// `GET /users`: every user of the built-in database (never a hash).
pub async fn users(State(s): State<AppState>) -> Json<Value> {
    let users: Vec<Value> = s
        .broker
        .users()
        .into_iter()
        .map(|u| json!({ "name": u.name, "superuser": u.superuser, "scram": u.scram }))
        .collect();
    Json(json!({ "data": users, "persisted": s.broker.users_persisted() }))
}

/// The body of `POST /users`.
#[derive(Deserialize)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    superuser: bool,
}

/// `POST /users`: add a user; 409 if the name exists.
pub async fn add_user(State(s): State<AppState>, Json(body): Json<NewUser>) -> Response {
    match s.broker.add_user(&body.name, &body.password, body.superuser).await {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({ "name": body.name, "superuser": body.superuser, "persisted": s.broker.users_persisted() })),
        )
            .into_response(),
        Err(e) if e.contains("already exists") => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// The body of `PUT /users/{name}`.
#[derive(Deserialize)]
pub struct UserChange {
    password: String,
}

/// `PUT /users/{name}`: a new password.
pub async fn set_password(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<UserChange>,
) -> Response {
    match s.broker.set_password(&name, &body.password).await {
        Ok(()) => Json(json!({ "name": name, "password_changed": true })).into_response(),
        Err(e) => not_found_or_bad(e),
    }
}

/// `DELETE /users/{name}`.
pub async fn delete_user(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.broker.delete_user(&name) {
        Ok(()) => Json(json!({ "name": name, "deleted": true })).into_response(),
        Err(e) => not_found_or_bad(e),
    }
}

fn not_found_or_bad(e: String) -> Response {
    let status = if e.starts_with("no user") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, e)
}

/// A ban as the API shows it (EMQX's field names: `as`, `who`).
fn ban_json(b: &Ban) -> Value {
    let (kind, who) = b.who.name();
    json!({ "as": kind, "who": who, "reason": b.reason, "by": b.by, "at": b.at, "until": b.until })
}

/// The bans in force that `keep` keeps, as the API shows them, by kind then target.
fn bans_json(s: &AppState, keep: impl Fn(&Ban) -> bool) -> Vec<Value> {
    let mut all: Vec<Value> = s.broker.bans().iter().filter(|b| keep(b)).map(ban_json).collect();
    all.sort_by_key(|b| (b["as"].to_string(), b["who"].to_string()));
    all
}

/// `GET /banned`: the bans in force.
pub async fn bans(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "data": bans_json(&s, |_| true) }))
}

/// `GET /flapping`: whether flapping detection is on, its settings, how many client ids it counts now, and
/// the bans it made that are in force (shaped as `/banned`'s).
pub async fn flapping(State(s): State<AppState>) -> Json<Value> {
    let detection = s.broker.flapping();
    let config = detection.map(
        |(c, _)| json!({ "max_count": c.max_count, "window_s": c.window.as_secs(), "ban_s": c.ban_time.as_secs() }),
    );
    let banned = bans_json(&s, |b| b.by == ractmq_auth::flapping::BANNED_BY);
    Json(json!({
        "enabled": detection.is_some(),
        "config": config,
        "tracked": detection.map_or(0, |(_, tracked)| tracked),
        "banned": banned,
    }))
}

/// The body of `POST /banned`.
#[derive(Deserialize)]
pub struct NewBan {
    /// `clientid`, `username` or `peerhost`.
    #[serde(rename = "as")]
    kind: String,
    who: String,
    /// Seconds; absent: until deleted.
    duration_s: Option<u64>,
    #[serde(default)]
    reason: String,
}

/// `POST /banned`: ban a client id, a user name or an address (CIDR); its connected clients are kicked.
pub async fn ban(State(s): State<AppState>, Json(body): Json<NewBan>) -> Response {
    let duration = body.duration_s.map(Duration::from_secs);
    match s.broker.ban(&body.kind, &body.who, duration, &body.reason).await {
        Ok(b) => (StatusCode::CREATED, Json(ban_json(&b))).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `DELETE /banned/{as}/{who}`.
pub async fn unban(State(s): State<AppState>, Path((kind, who)): Path<(String, String)>) -> Response {
    match s.broker.unban(&kind, &who).await {
        Ok(true) => Json(json!({ "as": kind, "who": who, "deleted": true })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no ban of {kind} '{who}'")),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// `POST /acl/reload`: read the ACL and password files again; 400 (old rules kept) if one has an error.
pub async fn reload(State(s): State<AppState>) -> Response {
    match s.broker.reload_security() {
        Ok(what) => Json(json!({ "reloaded": what })).into_response(),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            format!("{e} (the rules in force are unchanged)"),
        ),
    }
}
