//! How clustering plugs into the broker without the broker depending on it.
//!
//! Dependencies point one way (codec <- protocol <- broker <- cluster), so the broker cannot name the cluster
//! crate. Instead the cluster crate implements [`ClusterHook`] and the program puts it in
//! `BrokerConfig::cluster`; the broker then runs the hook's child under its root supervisor and asks the
//! hook which nodes are up when it publishes `$SYS/brokers`. Without a hook the broker is a single node.

use std::sync::Arc;

use crate::kernel::Kernel;
use crate::supervisor::ChildSpec;

/// What a clustering layer gives the broker.
pub trait ClusterHook: Send + Sync + 'static {
    /// The root supervisor's `cluster` child (started after the broker's own actors, before the MQTT
    /// listener, and restarted by the root like any other child).
    fn child_spec(&self, kernel: &Arc<Kernel>) -> ChildSpec;

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
