//! How clustering plugs into the broker without the broker depending on it.
//!
//! Dependencies point one way (codec <- protocol <- broker <- cluster), so the broker cannot name the cluster
//! crate. Instead the cluster crate implements [`ClusterHook`] and the program puts it in
//! `BrokerConfig::cluster`; the broker then runs the hook's child under its root supervisor and asks the
//! hook which nodes are up when it publishes `$SYS/brokers`. Without a hook the broker is a single node.
//!
//! The cluster layer sees the node through [`Node`], a narrow handle (implemented in `node.rs`), not the
//! whole kernel.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::remote_sessions::{RemoteSessions, SessionHandover};
use crate::router::Router;
use crate::supervisor::ChildSpec;

/// What a clustering layer may use of the node it runs in.
pub trait Node: Send + Sync + 'static {
    /// The node's router: where forwarded messages are routed and remote routes are installed.
    fn router(&self) -> &Arc<Router>;
    /// The node's counters.
    fn metrics(&self) -> &Arc<Metrics>;
    /// The address the MQTT listener is bound to, once it is.
    fn mqtt_addr(&self) -> Option<SocketAddr>;
    /// Name what kept the node from starting (one line for the operator); `Broker::start` returns it.
    fn report_start_failure(&self, line: String);
    /// Install the cluster's side of session takeovers.
    fn set_remote_sessions(&self, remote: Arc<dyn RemoteSessions>);
    /// Give this node's session of `client_id` up to node `to` (see `handover.rs`).
    fn hand_over<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
        to: Arc<str>,
    ) -> Pin<Box<dyn Future<Output = Option<SessionHandover>> + Send + 'a>>;
    /// Publish `$SYS/brokers` now (the cluster's membership changed).
    fn publish_brokers(&self);
    /// What the node's store held in `space` when the node started (empty without a store), as
    /// `BrokerView::stored_state`: read before the cluster's actors start, so state kept there is back before
    /// the node talks to its peers.
    fn stored_state(&self, space: &str) -> Vec<(String, Vec<u8>)>;
    /// Keep `value` under `key` in `space` (`None` forgets it), as `BrokerView::keep_state`, but the write is
    /// queued before this returns (writes land in call order); the future waits for its commit.
    fn keep_state(&self, space: &'static str, key: &str, value: Option<Vec<u8>>) -> StateWrite;
}

/// The wait for a write of [`Node::keep_state`] to be committed.
pub type StateWrite = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// What a clustering layer gives the broker.
pub trait ClusterHook: Send + Sync + 'static {
    /// The root supervisor's `cluster` child (started after the broker's own actors, before the MQTT
    /// listener, and restarted by the root like any other child).
    fn child_spec(&self, node: &Arc<dyn Node>) -> ChildSpec;

    /// The names of the nodes that are up, this one included, sorted.
    fn nodes_up(&self) -> Vec<String>;
}

/// A [`ClusterHook`] as configuration holds it.
#[derive(Clone)]
pub struct ClusterPlug(pub Arc<dyn ClusterHook>);

impl std::fmt::Debug for ClusterPlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterPlug")
    }
}
