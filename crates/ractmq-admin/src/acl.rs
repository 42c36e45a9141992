//! `GET /api/v1/acl`: the ACL in force, read only: the file and the format it was read as, its rules in order
//! (first match wins), what happens when none matches, and whether an HTTP service or JWT claims authorize
//! too. Changing rules is editing the file and `POST /api/v1/acl/reload`; this shows what that left in force.
//!
//! A file may hold a million rules, so they come a page at a time (`page`, `limit`, as `/clients`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ractmq_auth::acl::{DenyAction, Rule, UserMatch};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::error;
use crate::state::AppState;

/// Most rules one page may hold.
pub const MAX_LIMIT: usize = 10_000;

/// Rules on a page when the request does not say.
const DEFAULT_LIMIT: usize = 1_000;

#[derive(Deserialize)]
pub struct Page {
    /// 1-based.
    page: Option<usize>,
    limit: Option<usize>,
}

/// One rule: its one-line text, and its fields for a table.
fn rule_json(rule: &Rule) -> Value {
    let topics: Vec<&str> = rule.topics.iter().map(|t| t.as_str()).collect();
    let who = &rule.who;
    json!({
        "text": rule.to_string(),
        "who": who.to_string(),
        "permission": rule.permission.name(),
        "action": rule.action.name(),
        "topic": topics.join(" "),
        "topics": topics,
        "username": match &who.user { Some(UserMatch::Name(n)) => Some(n.as_str()), _ => None },
        "anonymous": who.user == Some(UserMatch::Anonymous),
        "clientid": who.client_id,
        "ipaddr": who.ipaddr.map(|n| n.to_string()),
        "listener": who.listener,
        "qos": rule.qos.levels(),
        "retain": rule.retain,
    })
}

/// `GET /acl`: `{file, format, no_match, deny_action, rules, count, page, limit, http_authz, jwt_claims}`.
pub async fn list(State(s): State<AppState>, Query(q): Query<Page>) -> Response {
    let page = q.page.unwrap_or(1);
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if page == 0 || limit == 0 || limit > MAX_LIMIT {
        return error(
            StatusCode::BAD_REQUEST,
            format!("page starts at 1 and limit is 1 to {MAX_LIMIT}"),
        );
    }
    let acl = s.broker.acl();
    let rules = acl.acl.as_ref().map_or(&[][..], |a| a.rules());
    let shown: Vec<Value> = rules
        .iter()
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(rule_json)
        .collect();
    let settings = acl.acl.as_ref().map(|a| a.settings());
    Json(json!({
        "file": acl.file.map(|f| f.display().to_string()),
        "format": acl.format.map(|f| f.name()),
        // Without a file, what no rule decides is allowed (the HTTP service, if any, is asked first).
        "no_match": settings.map_or("allow", |st| st.no_match.name()),
        "deny_action": settings.map_or("ignore", |st| match st.deny_action {
            DenyAction::Ignore => "ignore",
            DenyAction::Disconnect => "disconnect",
        }),
        "rules": shown,
        "count": rules.len(),
        "page": page,
        "limit": limit,
        "http_authz": acl.http_authz,
        "jwt_claims": acl.jwt_claims,
    }))
    .into_response()
}
