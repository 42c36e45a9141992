//! Serving the API: binding (one line when the address is taken), the routes, authentication, and errors as
//! JSON. The server runs as a task beside the broker's tree; the only state it holds is its logins (session
//! tokens, see `login_state.rs`), which a restart of the node drops on purpose; every other answer is read
//! from the broker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use axum::Router;
use base64::Engine;
use ractmq_bridge::Bridges;
use ractmq_broker::BrokerView;
use ractmq_cluster::Cluster;
use ractmq_rule_engine::Rules;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::ApiConfig;
use crate::error::error;
use crate::login_state::constant_time_eq;
use crate::state::AppState;
use crate::{
    acl, bridges, chaos, clients, dashboard, data, evacuate, health, login, node, openapi, prometheus, retained, rules,
    security, supervision, topics, trace,
};

/// A running API.
pub struct ApiServer {
    /// The address the API is bound to (useful with port 0).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    left: tokio::sync::watch::Receiver<bool>,
}

impl ApiServer {
    /// Stop serving. Dropping the handle instead leaves the API running.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Resolves once the node left its cluster (`POST /api/v1/cluster/leave`): the process should stop, with
    /// success. Never resolves otherwise.
    pub async fn left(&self) {
        let mut left = self.left.clone();
        if left.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Bind `config.listen` and serve the API of this node.
pub async fn start(
    config: ApiConfig,
    broker: BrokerView,
    cluster: Option<Cluster>,
    bridges: Option<Bridges>,
    rules: Option<Rules>,
) -> Result<ApiServer, String> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        format!(
            "--api-listen {}: cannot listen there ({e}); pick another address with --api-listen, or turn the API off with --no-api",
            config.listen
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (leave, left) = tokio::sync::watch::channel(false);
    let state = AppState {
        evacuation: Arc::default(),
        leave: Arc::new(leave),
        broker,
        cluster,
        bridges,
        rules,
        config: Arc::new(config),
        login: Arc::default(),
    };
    let app = routes(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the REST API stopped: {e}");
        }
    });
    tracing::info!(
        "REST API listening on http://{addr} (dashboard at http://{addr}/, OpenAPI document at /api/v1/openapi.json)"
    );
    Ok(ApiServer { addr, task, left })
}

/// Every route of the API, behind authentication when it is configured.
pub fn routes(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/status", get(node::status))
        .route("/nodes", get(node::nodes))
        .route("/cluster", get(node::cluster))
        .route("/cluster/leave", post(evacuate::leave))
        .route("/cluster/forget/:node", post(evacuate::forget))
        .route(
            "/node/evacuate",
            get(evacuate::status).post(evacuate::start).delete(evacuate::stop),
        )
        .route("/stats", get(node::stats))
        .route("/listeners", get(node::listeners))
        .route("/data", get(data::stats))
        .route("/publish", post(node::publish))
        .route("/clients", get(clients::list))
        .route("/clients/:id", get(clients::show).delete(clients::kick))
        .route("/subscriptions", get(topics::subscriptions))
        .route("/topics", get(topics::routes))
        .route("/retained", get(retained::list))
        .route("/retained/*topic", get(retained::show).delete(retained::remove))
        .route("/chaos/kill", post(chaos::kill))
        .route("/supervision", get(supervision::tree))
        .route("/logout", post(login::logout))
        .route("/bridges", get(bridges::list).post(bridges::create))
        .route("/bridges/:name", get(bridges::show).delete(bridges::delete))
        .route("/bridges/:name", put(bridges::replace))
        .route("/bridges/:name/dlq", get(bridges::dead_letters))
        .route("/bridges/:name/dlq/replay", post(bridges::replay))
        .route("/bridges/:name/:action", post(bridges::act))
        .route("/rules", get(rules::list).post(rules::create))
        .route("/rules/:name", get(rules::show).delete(rules::delete))
        .route("/rules/:name", put(rules::replace))
        .route("/rules/:name/:action", post(rules::act))
        .route("/rule_test", post(rules::test))
        .route("/users", get(security::users).post(security::add_user))
        .route(
            "/users/:name",
            put(security::set_password).delete(security::delete_user),
        )
        .route("/banned", get(security::bans).post(security::ban))
        .route("/banned/:as/:who", delete(security::unban))
        .route("/acl", get(acl::list))
        .route("/acl/reload", post(security::reload))
        .route("/flapping", get(security::flapping))
        .route("/trace/clients/:id", get(trace::client))
        .route("/metrics", get(prometheus::metrics))
        .route("/openapi.json", get(openapi::document));
    // Probes do not authenticate: health is answered outside the authentication layer. Nor do the
    // dashboard's files, which hold no data: the page logs in to read the API.
    let probes = Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/health/live", get(health::live))
        .route("/api/v1/health/ready", get(health::ready))
        // Nor does logging in: it is how a dashboard gets the token it then sends.
        .route("/api/v1/login", get(login::info).post(login::login))
        .route("/", get(dashboard::index))
        .route("/assets/*path", get(dashboard::asset))
        .route("/:page", get(dashboard::page));
    Router::new()
        .nest("/api/v1", v1)
        .route("/metrics", get(prometheus::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(probes)
        .with_state(state)
}

/// With a token or users configured, every request must carry one of them, or a session token from
/// `POST /api/v1/login`.
async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = &state.config;
    if !config.needs_auth() {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let by_token = config
        .token
        .as_ref()
        .is_some_and(|t| given.strip_prefix("Bearer ").is_some_and(|g| constant_time_eq(g, t)));
    let by_user = given
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|up| up.split_once(':').map(|(u, p)| (u.to_string(), p.to_string())))
        .is_some_and(|(u, p)| {
            config
                .users
                .iter()
                .any(|(name, pw)| name == &u && constant_time_eq(pw, &p))
        });
    // Only asked when nothing else matched: comparing with every session token held costs a little.
    let by_session = !(by_token || by_user)
        && login::bearer(&request).is_some_and(|t| state.login.check(t, Instant::now()).is_some());
    if by_token || by_user || by_session {
        next.run(request).await
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "authentication required: send Authorization: Bearer TOKEN (--api-token, or a session token from POST /api/v1/login) or basic credentials (--api-user)",
        )
    }
}
