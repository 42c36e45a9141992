//! The OpenAPI 3 document of the API, served at `/api/v1/openapi.json`: every path, its parameters and what
//! it answers, for clients and tools that generate them.

use axum::Json;
use serde_json::{json, Value};

/// (method, path, summary, parameters as (name, in, required), request body schema if any).
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str, bool)],
    Option<Value>,
);

fn operations() -> Vec<Operation> {
    vec![
        (
            "get",
            "/status",
            "This node: version, uptime, clients, sessions, subscriptions, retained (503 once the broker stopped)",
            &[],
            None,
        ),
        (
            "get",
            "/health",
            "Liveness and readiness with the checks behind them; 200 when ready, else 503; no credentials needed",
            &[],
            None,
        ),
        (
            "get",
            "/health/live",
            "200 while the root supervisor runs, 503 once it gave up (restart the process); no credentials needed",
            &[],
            None,
        ),
        (
            "get",
            "/health/ready",
            "200 while every supervisor and listener runs and the node is neither draining nor evacuated, else 503; no credentials needed",
            &[],
            None,
        ),
        (
            "get",
            "/login",
            "What a login needs: {required, token (an --api-token is set), users (--api-user are set)}; no credentials needed",
            &[],
            None,
        ),
        (
            "post",
            "/login",
            "Log in with {username, password} (--api-user) or {token} (--api-token): {token, expires_in_s, user}; send the token as Authorization: Bearer TOKEN. It expires after expires_in_s unused (each use starts that again), at most 1000 are held (the least recently used goes), and a restart forgets them. 401 for bad credentials; after 20 failures in a minute every login is refused (429) until the minute ends. With no authentication configured, any body gets a token (user anonymous). No credentials needed",
            &[],
            Some(json!({"type": "object", "properties": {
                "username": {"type": "string"}, "password": {"type": "string"}, "token": {"type": "string"}}})),
        ),
        (
            "post",
            "/logout",
            "Forget the session token this request carries: {logged_out} (false when it carries none)",
            &[],
            None,
        ),
        (
            "get",
            "/nodes",
            "Every member of the cluster as this node sees it",
            &[],
            None,
        ),
        (
            "get",
            "/cluster",
            "Members, their state and link, and the counters of traffic between nodes",
            &[],
            None,
        ),
        (
            "post",
            "/cluster/leave",
            "Leave the cluster for good: evacuate (as POST /node/evacuate, at `rate` clients a second), wait for the clients to go, let the other nodes acknowledge what was queued for them, tell them this node left (they mark it `left`, stop dialling it, drop its routes), then stop the process with exit code 0. Answers {node, left, clients_connected, unconfirmed}. 409 when the node is not clustered or no other node is up",
            &[("rate", "query", false)],
            None,
        ),
        (
            "post",
            "/cluster/forget/{node}",
            "Forget a member that is down, on every node up: it is marked `left`, no longer dialled, its routes and queue dropped; a new run of it that dials in joins again. Answers {forgotten, unconfirmed}. 409 for this node or a member that is up, 404 for an unknown name",
            &[("node", "path", true)],
            None,
        ),
        (
            "post",
            "/node/evacuate",
            "Evacuate this node: refuse new clients (CONNACK 0x88), report not ready, and disconnect its clients at `rate` a second (default 500): MQTT 5 with DISCONNECT 0x9C Use another server and a Server Reference naming another up member, 3.x by closing the socket. Sessions move when their clients reconnect elsewhere. Answers the status; 409 when no other node is up",
            &[("rate", "query", false)],
            None,
        ),
        (
            "get",
            "/node/evacuate",
            "The evacuation: {evacuating, rate, started_s_ago, disconnected, clients_connected, done}",
            &[],
            None,
        ),
        (
            "delete",
            "/node/evacuate",
            "Stop evacuating: new clients are admitted again (a restart does this too)",
            &[],
            None,
        ),
        (
            "get",
            "/stats",
            "The broker's counters by name (connections, refusals, bans, authentication and authorization failures, drops by reason, restarts, messages by QoS), failed API logins, and on a node with rules their number and chains cut",
            &[],
            None,
        ),
        (
            "get",
            "/listeners",
            "The MQTT listeners: address, state, connections",
            &[],
            None,
        ),
        (
            "get",
            "/data",
            "The store in the data dir: file size, sessions, messages, retained and operator records, commits and ops, what waits for the writer; {\"durability\": \"memory\"} on a node without one",
            &[],
            None,
        ),
        (
            "post",
            "/publish",
            "Publish a message as the broker",
            &[],
            Some(json!({"type": "object", "required": ["topic"], "properties": {
                "topic": {"type": "string"}, "payload": {"type": "string"},
                "qos": {"type": "integer", "minimum": 0, "maximum": 2}, "retain": {"type": "boolean"}}})),
        ),
        (
            "get",
            "/clients",
            "Sessions of this node, paged and filtered: like (client id contains), username (exactly), q (client id, user name or peer address contains, whatever the case)",
            &[
                ("page", "query", false),
                ("limit", "query", false),
                ("connected", "query", false),
                ("like", "query", false),
                ("username", "query", false),
                ("q", "query", false),
            ],
            None,
        ),
        ("get", "/clients/{id}", "One session", &[("id", "path", true)], None),
        (
            "delete",
            "/clients/{id}",
            "Disconnect the client (0x98); its session stays",
            &[("id", "path", true)],
            None,
        ),
        (
            "get",
            "/subscriptions",
            "Subscriptions of this node's sessions",
            &[("client_id", "query", false)],
            None,
        ),
        (
            "get",
            "/topics",
            "Routes: filters with subscribers, by node (with client_id: that client's on this node)",
            &[("client_id", "query", false)],
            None,
        ),
        ("get", "/retained", "Retained messages", &[], None),
        (
            "get",
            "/retained/{topic}",
            "One retained message (the topic percent-encoded: `room 1/t?x` is `room%201%2Ft%3Fx`)",
            &[("topic", "path", true)],
            None,
        ),
        (
            "delete",
            "/retained/{topic}",
            "Clear a retained message, cluster-wide (the topic percent-encoded)",
            &[("topic", "path", true)],
            None,
        ),
        (
            "post",
            "/chaos/kill",
            "Kill an actor on purpose (needs --api-chaos)",
            &[],
            Some(json!({"type": "object", "required": ["kind", "target"], "properties": {
                "kind": {"type": "string", "enum": ["session", "shard", "cluster", "bridge", "rule"]},
                "target": {"type": "string"}}})),
        ),
        (
            "get",
            "/supervision",
            "The supervision tree as it runs now: {node, chaos, restarts: {session, shard, other}, tree}; each node {name, kind (supervisor, worker), status (running, starting, stopping, stopped), strategy, intensity {max_restarts, within_s}, restarts, children_count, children (at most 50, in start order), more, hibernated (sessions only), kill {kind, target} for POST /chaos/kill or null}. Answered within about a second: a supervisor busy restarting shows no children",
            &[],
            None,
        ),
        (
            "get",
            "/bridges",
            "Every bridge: kind, remote, status (running or stopped), buffer and counters (connected, sent, acked, failed, retried, dropped, dead_lettered, duplicates, received, restarts, latency_ms)",
            &[],
            None,
        ),
        (
            "post",
            "/bridges",
            "Create a bridge and start it (unless enabled is false): kind (mqtt, http, postgres, kafka) and its settings, as in a [[bridges.KIND]] table; 409 if the name is taken",
            &[],
            Some(json!({"type": "object", "required": ["name", "forward"], "properties": {
                "kind": {"type": "string", "enum": ["mqtt", "http", "postgres", "kafka"]},
                "name": {"type": "string"}, "forward": {"type": "array", "items": {"type": "string"}}}})),
        ),
        (
            "get",
            "/bridges/{name}",
            "One bridge with its configuration (passwords hidden)",
            &[("name", "path", true)],
            None,
        ),
        (
            "put",
            "/bridges/{name}",
            "Replace a bridge (body as POST /bridges; name may be left out): stopped, replaced, started again unless it was stopped or enabled is false; its buffer, counters and dead letters stay; a password shown as *** is kept; local filters dropped from forward are unsubscribed, remote ones dropped from subscribe stay in the bridge's session at the remote until it ends. Not atomic: nothing moves between the stop and the start",
            &[("name", "path", true)],
            Some(json!({"type": "object", "required": ["forward"], "properties": {
                "kind": {"type": "string", "enum": ["mqtt", "http", "postgres", "kafka"]},
                "name": {"type": "string"}, "forward": {"type": "array", "items": {"type": "string"}},
                "enabled": {"type": "boolean"}}})),
        ),
        (
            "delete",
            "/bridges/{name}",
            "Stop a bridge and forget it, with its buffer",
            &[("name", "path", true)],
            None,
        ),
        (
            "post",
            "/bridges/{name}/{action}",
            "start, stop or restart a bridge (a stopped bridge's buffer stays and keeps filling)",
            &[("name", "path", true), ("action", "path", true)],
            None,
        ),
        (
            "get",
            "/bridges/{name}/dlq",
            "The bridge's recent dead letters (id, topic, payload, reason, at_ms), oldest first",
            &[("name", "path", true)],
            None,
        ),
        (
            "post",
            "/bridges/{name}/dlq/replay",
            "Send dead letters again through the bridge: those of ids, or all",
            &[("name", "path", true)],
            Some(json!({"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}}}})),
        ),
        (
            "get",
            "/rules",
            "Every rule: sql, enabled, from, at_run_time, pending_retries, and counters (matched, passed, failed, no_result, restarts; per action kind, success, failed, retried)",
            &[],
            None,
        ),
        (
            "post",
            "/rules",
            "Create a rule and run it (unless enabled is false), as a [[rules]] table; 400 with the SQL error's position, 409 if the name is taken",
            &[],
            Some(json!({"type": "object", "required": ["name", "sql"], "properties": {
                "name": {"type": "string"}, "sql": {"type": "string"}, "enabled": {"type": "boolean"},
                "description": {"type": "string"}, "max_retries": {"type": "integer"},
                "retry_backoff_ms": {"type": "integer"}, "dlq_topic": {"type": "string"},
                "actions": {"type": "array", "items": {"type": "object", "description": "one of {republish: {topic, payload, qos, retain, user_properties}}, {bridge: {name, topic, payload, qos}}, {log: {message}}"}}}})),
        ),
        (
            "get",
            "/rules/{name}",
            "One rule with its configuration and counters",
            &[("name", "path", true)],
            None,
        ),
        (
            "put",
            "/rules/{name}",
            "Replace a rule (body as POST /rules; name may be left out), keeping its enabled flag unless enabled is given; a SQL error leaves the old rule. Its counters start again and the retries it held are dropped. A run-time rule's change is kept and, in a cluster, made on every node",
            &[("name", "path", true)],
            Some(json!({"type": "object", "required": ["sql"], "properties": {
                "name": {"type": "string"}, "sql": {"type": "string"}, "enabled": {"type": "boolean"},
                "description": {"type": "string"}, "actions": {"type": "array", "items": {"type": "object"}}}})),
        ),
        (
            "delete",
            "/rules/{name}",
            "Stop a rule and forget it",
            &[("name", "path", true)],
            None,
        ),
        (
            "post",
            "/rules/{name}/{action}",
            "enable or disable a rule (a disabled rule keeps its counters)",
            &[("name", "path", true), ("action", "path", true)],
            None,
        ),
        (
            "post",
            "/rule_test",
            "What a rule's SQL outputs for one message, without publishing anything: outcome (rows, no_result, failed), rows, error",
            &[],
            Some(json!({"type": "object", "required": ["sql"], "properties": {
                "sql": {"type": "string"}, "topic": {"type": "string"}, "payload": {"type": "string"},
                "clientid": {"type": "string"}, "username": {"type": "string"}, "qos": {"type": "integer"},
                "retain": {"type": "boolean"}, "event": {"type": "string", "description": "an event topic such as $events/client_connected"}}})),
        ),
        (
            "get",
            "/users",
            "The users of the built-in database (names and superuser flags, never hashes)",
            &[],
            None,
        ),
        (
            "post",
            "/users",
            "Add a user to the built-in database (stored as argon2id and SCRAM keys); 409 if it exists",
            &[],
            Some(json!({"type": "object", "required": ["name", "password"], "properties": {
                "name": {"type": "string"}, "password": {"type": "string"}, "superuser": {"type": "boolean"}}})),
        ),
        (
            "put",
            "/users/{name}",
            "Change a user's password",
            &[("name", "path", true)],
            Some(json!({"type": "object", "required": ["password"], "properties": {
                "password": {"type": "string"}}})),
        ),
        (
            "delete",
            "/users/{name}",
            "Remove a user from the built-in database",
            &[("name", "path", true)],
            None,
        ),
        ("get", "/banned", "The bans in force", &[], None),
        (
            "post",
            "/banned",
            "Ban a client id, a user name or an address (CIDR) for duration_s (absent: until deleted); its connected clients are kicked, new CONNECTs get 0x8A",
            &[],
            Some(json!({"type": "object", "required": ["as", "who"], "properties": {
                "as": {"type": "string", "enum": ["clientid", "username", "peerhost"]},
                "who": {"type": "string"}, "duration_s": {"type": "integer"}, "reason": {"type": "string"}}})),
        ),
        (
            "delete",
            "/banned/{as}/{who}",
            "Lift a ban",
            &[("as", "path", true), ("who", "path", true)],
            None,
        ),
        (
            "get",
            "/acl",
            "The ACL in force, read only: {file, format (mosquitto, native), no_match, deny_action, rules: [{text, who, permission, action, topic, topics, username, anonymous, clientid, ipaddr, listener, qos, retain}] in order (first match wins), count, page, limit (default 1000), http_authz, jwt_claims}",
            &[("page", "query", false), ("limit", "query", false)],
            None,
        ),
        (
            "get",
            "/flapping",
            "Flapping detection: {enabled, config {max_count, window_s, ban_s} or null, tracked (client ids counted now), banned (its bans in force, as GET /banned shows them)}",
            &[],
            None,
        ),
        (
            "post",
            "/acl/reload",
            "Read the ACL and password files again (connected clients get the new rules; an error keeps the old ones)",
            &[],
            None,
        ),
        (
            "get",
            "/trace/clients/{id}",
            "Stream one client's packets as lines of text",
            &[("id", "path", true)],
            None,
        ),
        ("get", "/metrics", "Prometheus exposition", &[], None),
        ("get", "/openapi.json", "This document", &[], None),
    ]
}

pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, params, body) in operations() {
        let parameters: Vec<Value> = params
            .iter()
            .map(|(name, place, required)| json!({"name": name, "in": place, "required": required, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK"},
                "401": {"description": "Authentication required"},
                "404": {"description": "Not found"}
            }
        });
        if let Some(schema) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        // Probes and logging in take no credentials.
        if path.starts_with("/health") || path == "/login" {
            op["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "ractmq REST API", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/api/v1"}],
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"}
        }},
        "security": [{"bearer": []}, {"basic": []}],
        "paths": paths,
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (method, path) of every route `server.rs` serves, read from its source: `/api/v1` dropped, axum's
    /// `:name` and `*name` written as OpenAPI's `{name}`.
    fn served() -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for piece in include_str!("server.rs").split(".route(").skip(1) {
            let (path, rest) = piece.trim_start().strip_prefix('"').unwrap().split_once('"').unwrap();
            let handlers = rest.split(';').next().unwrap().split(".route(").next().unwrap();
            let handlers = handlers.split(".layer(").next().unwrap();
            // The dashboard's pages and files are served beside the API, not part of it.
            if handlers.contains("dashboard::") {
                continue;
            }
            let path = path.strip_prefix("/api/v1").unwrap_or(path);
            let path: Vec<String> = path
                .split('/')
                .map(|seg| match seg.strip_prefix(':').or_else(|| seg.strip_prefix('*')) {
                    Some(name) => format!("{{{name}}}"),
                    None => seg.to_string(),
                })
                .collect();
            for method in ["get", "post", "put", "delete"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(at, _)| {
                    let before = handlers[..at].chars().next_back();
                    before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                });
                if called {
                    out.insert((method.to_string(), path.join("/")));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_served_is_documented_and_nothing_else() {
        let documented: BTreeSet<(String, String)> = super::operations()
            .into_iter()
            .map(|(method, path, ..)| (method.to_string(), path.to_string()))
            .collect();
        let served = served();
        assert!(served.contains(&("get".into(), "/data".into())), "{served:?}");
        assert!(
            served.contains(&("delete".into(), "/retained/{topic}".into())),
            "{served:?}"
        );
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in the OpenAPI document: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "in the OpenAPI document but not served: {unserved:?}"
        );
    }
}
