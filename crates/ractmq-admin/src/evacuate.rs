//! Taking a node out of service (EMQX's node evacuation) and out of the cluster:
//!
//! - `POST /api/v1/node/evacuate[?rate=N]`: the node refuses new clients (CONNACK 0x88) and reports itself not
//!   ready (`/api/v1/health/ready` 503), then disconnects its connected clients at most `rate` a second
//!   (default [`DEFAULT_RATE`]): MQTT 5 clients with DISCONNECT 0x9C Use another server and a Server
//!   Reference naming another up member's MQTT address (round robin over them), 3.x clients by closing the
//!   socket. Sessions stay where they are until their clients reconnect elsewhere, when the cluster's
//!   takeover moves them (messages queued and in flight included). Clients that manage to connect meanwhile
//!   are disconnected in the next round. `GET` says how far it got; `DELETE` stops it (a restart does too).
//! - `POST /api/v1/cluster/leave[?rate=N]`: evacuate, wait until the clients are gone, tell the other nodes
//!   this node left for good, then stop the process (exit code 0).
//! - `POST /api/v1/cluster/forget/{node}`: forget a member that is down, on every node.
//!
//! The evacuation is this process's state only: nothing of it is stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use ractmq_broker::BrokerView;
use ractmq_cluster::{Cluster, MemberState};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::error::error;
use crate::state::AppState;

/// Clients disconnected per second when no rate is given (EMQX's default too).
pub const DEFAULT_RATE: u32 = 500;
/// Longest `cluster leave` waits for the clients to go before it leaves anyway.
pub const LEAVE_EVACUATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest `cluster leave` waits for the sessions of the clients it sent away to be taken over by other nodes.
pub const LEAVE_SESSIONS_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `cluster leave` waits for the other nodes to acknowledge what this node queued for them.
pub const LEAVE_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The evacuation of this node, if one runs.
#[derive(Default)]
pub struct Evacuation {
    running: Mutex<Option<Running>>,
}

struct Running {
    rate: u32,
    started: Instant,
    disconnected: Arc<AtomicU64>,
    /// The clients sent away, whose sessions may still be here.
    sent: Arc<Mutex<std::collections::HashSet<String>>>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Evacuation {
    /// Start evacuating (or, when it runs already, carry on at the rate it has).
    fn start(&self, broker: &BrokerView, cluster: Option<&Cluster>, rate: u32) -> Result<(), String> {
        let mut running = self.running.lock();
        if running.is_some() {
            return Ok(());
        }
        let Some(cluster) = cluster else {
            return Err(
                "this node is not part of a cluster, so there is no other node to move its clients to; stop it with SIGTERM instead".into(),
            );
        };
        if targets(cluster).is_empty() {
            return Err("no other node of the cluster is up with an MQTT listener to take this node's clients: start one first (`ractmq ctl cluster status` shows the members)".into());
        }
        if rate == 0 {
            return Err("rate 0: give the clients to disconnect per second, at least 1 (default 500)".into());
        }
        broker.set_evacuating(true);
        let disconnected = Arc::new(AtomicU64::new(0));
        let sent: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let task = tokio::spawn(evacuate(
            broker.clone(),
            cluster.clone(),
            rate,
            disconnected.clone(),
            sent.clone(),
        ));
        tracing::info!(
            "evacuating: new clients are refused and this node is not ready; disconnecting its clients ({rate}/s) towards the other nodes"
        );
        *running = Some(Running {
            rate,
            started: Instant::now(),
            disconnected,
            sent,
            task,
        });
        Ok(())
    }

    /// Stop evacuating: new clients are admitted again. False if it was not evacuating.
    fn stop(&self, broker: &BrokerView) -> bool {
        let stopped = self.running.lock().take().is_some();
        broker.set_evacuating(false);
        if stopped {
            tracing::info!("evacuation stopped: this node admits clients again");
        }
        stopped
    }

    /// How many of the clients sent away still have their session here (not yet taken over elsewhere).
    fn sessions_here(&self, broker: &BrokerView) -> usize {
        let running = self.running.lock();
        let Some(r) = running.as_ref() else { return 0 };
        let mut sent = r.sent.lock();
        sent.retain(|id| broker.client(id).is_some_and(|c| !c.connected));
        sent.len()
    }

    fn status(&self, broker: &BrokerView) -> Value {
        let connected = broker.connected_client_ids().len();
        match &*self.running.lock() {
            Some(r) => json!({
                "evacuating": true,
                "rate": r.rate,
                "started_s_ago": r.started.elapsed().as_secs(),
                "disconnected": r.disconnected.load(Ordering::Relaxed),
                "clients_connected": connected,
                "done": connected == 0,
            }),
            None => json!({ "evacuating": false, "clients_connected": connected, "done": false }),
        }
    }
}

/// The MQTT addresses of the other members up, by name.
fn targets(cluster: &Cluster) -> Vec<String> {
    cluster
        .members()
        .into_iter()
        .filter(|m| !m.is_self && m.state == MemberState::Up)
        .filter_map(|m| m.mqtt_addr.map(|a| a.to_string()))
        .collect()
}

/// Disconnect the connected clients, `rate` a second, each towards the next member up; then keep looking for
/// stragglers (a CONNECT admitted just before the evacuation began) until stopped.
async fn evacuate(
    broker: BrokerView,
    cluster: Cluster,
    rate: u32,
    disconnected: Arc<AtomicU64>,
    sent: Arc<Mutex<std::collections::HashSet<String>>>,
) {
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    loop {
        let clients = broker.connected_client_ids();
        for client_id in &clients {
            let to = targets(&cluster);
            // No member up any more: the client is still sent away (it reconnects wherever it can).
            let reference = (!to.is_empty()).then(|| to[next % to.len()].clone());
            next = next.wrapping_add(1);
            pace.tick().await;
            if broker
                .disconnect(client_id, ractmq_codec::reason::USE_ANOTHER_SERVER, reference)
                .await
            {
                disconnected.fetch_add(1, Ordering::Relaxed);
                sent.lock().insert(client_id.clone());
            }
        }
        // Give the connections just told time to close before looking again, so none is told twice.
        tokio::time::sleep(Duration::from_millis(if clients.is_empty() { 200 } else { 500 })).await;
    }
}

#[derive(Deserialize)]
pub struct RateQuery {
    rate: Option<u32>,
}

/// `POST /node/evacuate`: start (or carry on with) the evacuation; answers its status.
pub async fn start(State(s): State<AppState>, Query(q): Query<RateQuery>) -> Response {
    match s
        .evacuation
        .start(&s.broker, s.cluster.as_ref(), q.rate.unwrap_or(DEFAULT_RATE))
    {
        Ok(()) => Json(s.evacuation.status(&s.broker)).into_response(),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

/// `GET /node/evacuate`: whether the node is evacuating, and the clients still connected.
pub async fn status(State(s): State<AppState>) -> Json<Value> {
    Json(s.evacuation.status(&s.broker))
}

/// `DELETE /node/evacuate`: stop evacuating.
pub async fn stop(State(s): State<AppState>) -> Json<Value> {
    let was = s.evacuation.stop(&s.broker);
    let mut status = s.evacuation.status(&s.broker);
    status["stopped"] = json!(was);
    Json(status)
}

/// `POST /cluster/leave`: evacuate, wait for the clients to go, tell the other nodes, then stop the process.
pub async fn leave(State(s): State<AppState>, Query(q): Query<RateQuery>) -> Response {
    let Some(cluster) = s.cluster.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this node is not part of a cluster, so it cannot leave one; stop it with SIGTERM instead",
        );
    };
    if let Err(e) = s
        .evacuation
        .start(&s.broker, Some(&cluster), q.rate.unwrap_or(DEFAULT_RATE))
    {
        return error(StatusCode::CONFLICT, e);
    }
    let deadline = Instant::now() + LEAVE_EVACUATE_TIMEOUT;
    while !s.broker.connected_client_ids().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let clients_left = s.broker.connected_client_ids().len();
    // The clients sent away resume their sessions elsewhere: those are taken over from here before the
    // other nodes stop asking this one. A session whose client does not come back in time ends with the node.
    let deadline = Instant::now() + LEAVE_SESSIONS_TIMEOUT;
    while s.evacuation.sessions_here(&s.broker) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sessions_left = s.evacuation.sessions_here(&s.broker);
    let unconfirmed = cluster.leave(LEAVE_DRAIN_TIMEOUT).await;
    if unconfirmed.is_empty() {
        tracing::info!("left the cluster; stopping");
    } else {
        tracing::warn!(
            "left the cluster, but {} did not confirm; they mark this node down and keep dialling it until forgotten (`ractmq ctl cluster forget`); stopping",
            unconfirmed.join(", ")
        );
    }
    // Stop once this answer is on its way.
    let leave = s.leave.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = leave.send(true);
    });
    Json(json!({
        "node": cluster.node_name(),
        "left": true,
        "clients_connected": clients_left,
        "sessions_not_taken_over": sessions_left,
        "unconfirmed": unconfirmed,
    }))
    .into_response()
}

/// `POST /cluster/forget/{node}`: forget a member that is down, on every node.
pub async fn forget(State(s): State<AppState>, Path(node): Path<String>) -> Response {
    let Some(cluster) = &s.cluster else {
        return error(
            StatusCode::CONFLICT,
            "this node is not part of a cluster: there is no member to forget",
        );
    };
    match cluster.forget(&node).await {
        Ok(unconfirmed) => Json(json!({ "forgotten": node, "unconfirmed": unconfirmed })).into_response(),
        Err(e) if e.starts_with("no member") => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}
