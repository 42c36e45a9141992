//! Rules created at run time on one node run on every node: the glue between the rule engine
//! ([`Rules`], which must not depend on the cluster) and the cluster's replicated map ([`ReplicatedMap`],
//! which must not depend on the rule engine). Each rule is kept in the map as its configuration in JSON.

use std::sync::Arc;

use ractmq_cluster::{Cluster, ReplicatedMap};
use ractmq_rule_engine::{RuleConfig, RuleReplica, Rules};

/// The cluster's replicated map, as the rule engine's [`RuleReplica`].
struct MapReplica(Arc<ReplicatedMap>);

impl RuleReplica for MapReplica {
    fn changed(&self, name: &str, config: Option<&RuleConfig>) {
        let value = match config.map(serde_json::to_vec).transpose() {
            Ok(value) => value,
            Err(e) => {
                tracing::error!(rule = %name, "a rule cannot be encoded for the other nodes, not replicated: {e}");
                return;
            }
        };
        self.0.put(name, value);
    }

    fn current(&self, name: &str) -> Option<Option<RuleConfig>> {
        match self.0.get(name)? {
            None => Some(None),
            Some(json) => match serde_json::from_slice(&json)
                .map_err(|e| e.to_string())
                .and_then(RuleConfig::from_json)
            {
                Ok(config) => Some(Some(config)),
                Err(e) => {
                    tracing::error!(rule = %name, "a rule from another node cannot be read here, skipped: {e}");
                    None
                }
            },
        }
    }

    fn names(&self) -> Vec<String> {
        self.0.entries().into_iter().map(|(name, _)| name).collect()
    }
}

/// Replicate `rules`' run-time rules across `cluster` from now on: apply what the cluster holds (read from
/// the store at start, and what peers said since), publish this node's changes, and apply the other nodes'
/// as they arrive, one at a time in arrival order. Call it once the rules have started.
pub async fn replicate_rules(cluster: &Cluster, rules: &Rules) {
    let map = cluster.replicated_rules();
    // Subscribed first, so that nothing merged while the rules catch up is missed: a name applied twice is
    // applied once (it is read from the map each time).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    map.subscribe(Arc::new(move |name, _| {
        let _ = tx.send(name.to_string());
    }));
    rules.replicate(Arc::new(MapReplica(map))).await;
    let rules = rules.clone();
    tokio::spawn(async move {
        while let Some(name) = rx.recv().await {
            rules.apply_remote(&name).await;
        }
    });
}
