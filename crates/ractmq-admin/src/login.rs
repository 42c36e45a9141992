//! `/api/v1/login` and `/api/v1/logout`: how a dashboard in a browser logs in. It sends a user's name and
//! password (`--api-user`) or the node's token (`--api-token`) once, and gets a session token to send as
//! `Authorization: Bearer TOKEN` from then on, which expires after an hour unused and which logging out
//! revokes (see `login_state.rs`).
//!
//! Both login routes answer without authentication: `GET` says what a login needs, `POST` is the login. On a
//! node whose API needs no authentication, `POST` hands out a token whatever it is sent (user `anonymous`):
//! a dashboard then has one way to log in everywhere, and the token opens nothing that was closed.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_protocol::log_limit::more;
use serde::Deserialize;
use serde_json::json;

use crate::config::ApiConfig;
use crate::error::error;
use crate::login_state::{constant_time_eq, IDLE, MAX_FAILURES};
use crate::state::AppState;

/// `GET /login`: whether requests must authenticate, and with what.
pub async fn info(State(s): State<AppState>) -> Response {
    let c = &s.config;
    Json(json!({ "required": c.needs_auth(), "token": c.token.is_some(), "users": !c.users.is_empty() }))
        .into_response()
}

/// The body of `POST /login`: a user's name and password, or the node's token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// Who `given` proves to be: a user's name, `token` for the node's token, `None` for nobody.
fn who(config: &ApiConfig, given: &Credentials) -> Option<String> {
    if let Some(token) = &given.token {
        let ok = config.token.as_ref().is_some_and(|t| constant_time_eq(t, token));
        return ok.then(|| "token".to_string());
    }
    let (name, password) = (given.username.as_ref()?, given.password.as_ref()?);
    // Every user is compared, with no early exit: the timing does not say which names exist.
    let mut found = None;
    for (user, pw) in &config.users {
        if constant_time_eq(user, name) & constant_time_eq(pw, password) {
            found = Some(user.clone());
        }
    }
    found
}

/// `POST /login`: a session token for good credentials; 401 for bad ones, 429 after too many bad ones.
pub async fn login(State(s): State<AppState>, body: Result<Json<Credentials>, JsonRejection>) -> Response {
    let now = Instant::now();
    let user = if !s.config.needs_auth() {
        Some("anonymous".to_string())
    } else {
        if let Some(wait) = s.login.locked_for(now) {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins (more than {MAX_FAILURES} a minute): try again in {} s, or use the node's token or basic credentials",
                    wait.as_secs().max(1)
                ),
            );
        }
        let Json(given) = match body {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("not a login: send {{\"username\", \"password\"}} or {{\"token\"}} ({e})"),
                )
            }
        };
        who(&s.config, &given)
    };
    let Some(user) = user else {
        s.login.failed(now);
        if let Some(left_out) = s.login.log.check(now) {
            tracing::warn!("a login to the REST API failed{}", more(left_out));
        }
        return error(
            StatusCode::UNAUTHORIZED,
            "login failed: wrong user name, password or token",
        );
    };
    match s.login.issue(&user, now) {
        Ok(token) => Json(json!({ "token": token, "expires_in_s": IDLE.as_secs(), "user": user })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The session token a request carries, if it carries a bearer token.
pub fn bearer(request: &Request) -> Option<&str> {
    let given = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    given.strip_prefix("Bearer ")
}

/// `POST /logout`: forget the session token this request carries; `logged_out` is false when it carries
/// none (basic credentials, the node's token).
pub async fn logout(State(s): State<AppState>, request: Request) -> Response {
    let revoked = bearer(&request).is_some_and(|t| s.login.revoke(t));
    Json(json!({ "logged_out": revoked })).into_response()
}
