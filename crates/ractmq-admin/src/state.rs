//! What every handler of the API reads: the broker's read-only view, the cluster, the bridges and the rules (if
//! any), the settings, and the logins.

use std::sync::Arc;

use ractmq_bridge::Bridges;
use ractmq_broker::BrokerView;
use ractmq_cluster::Cluster;
use ractmq_rule_engine::Rules;

use crate::config::ApiConfig;
use crate::login_state::LoginState;

#[derive(Clone)]
pub struct AppState {
    pub broker: BrokerView,
    pub cluster: Option<Cluster>,
    pub bridges: Option<Bridges>,
    pub rules: Option<Rules>,
    pub config: Arc<ApiConfig>,
    /// Session tokens handed out by `POST /login`, and failed logins.
    pub login: Arc<LoginState>,
    /// The node's evacuation, if one runs (see `evacuate.rs`).
    pub evacuation: Arc<crate::evacuate::Evacuation>,
    /// Set once the node left its cluster: the process stops (see [`crate::ApiServer::left`]).
    pub leave: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// This node's name: its cluster name, or "local" for a single node.
    pub fn node_name(&self) -> String {
        self.cluster
            .as_ref()
            .map_or_else(|| "local".to_string(), |c| c.node_name().to_string())
    }
}
