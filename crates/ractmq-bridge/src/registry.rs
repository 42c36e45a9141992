//! The node's bridges: which exist, their configuration and counters, and the operations ctl and REST offer
//! (create, delete, start, stop, restart, and kill for chaos tests).
//!
//! A running bridge is a child of the broker's `bridges` supervisor; a stopped one is only an entry here, its
//! buffer kept in its local session. The registry outlives every actor, so counters keep counting across
//! restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use ractmq_broker::{BrokerView, ChildSpec, Tree};
use ractmq_protocol::queue_rules::{Pattern, QueueRule};
use ractmq_protocol::OverflowPolicy;
use ractor::Actor;
use serde::Serialize;

use crate::actor::{BridgeActor, BridgeArgs};
use crate::config::{self, BridgeConfig, BridgesConfig, Overflow};
use crate::stats::{Counters, Stats};

/// The node's bridges. Cloning shares them.
#[derive(Clone)]
pub struct Bridges(Arc<Inner>);

struct Inner {
    view: BrokerView,
    tree: Tree,
    entries: Mutex<BTreeMap<String, Entry>>,
}

struct Entry {
    config: Arc<BridgeConfig>,
    stats: Arc<Counters>,
}

/// One bridge as ctl and REST show it.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeInfo {
    /// Its name.
    pub name: String,
    /// `mqtt`, `http` or `postgres`.
    pub kind: &'static str,
    /// Where it goes: the remote broker's address, the URL, the database (without its password).
    pub remote: String,
    /// `running` (its actor is up) or `stopped`.
    pub status: &'static str,
    /// Local topic filters going out.
    pub forward: Vec<String>,
    /// Remote topic filters coming in.
    pub subscribe: Vec<String>,
    /// Messages in its buffer (its local session's queue and in flight).
    pub queued: usize,
    /// Its counters.
    #[serde(flatten)]
    pub stats: Stats,
}

/// Why an operation on a bridge failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeError {
    /// No bridge has that name.
    NotFound(String),
    /// A bridge has that name already.
    Exists(String),
    /// The configuration is not valid (one line saying why).
    Invalid(String),
    /// The bridges supervisor is restarting; try again.
    Unavailable(String),
}

impl std::fmt::Display for BridgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeError::NotFound(name) => write!(f, "no bridge named {name:?}"),
            BridgeError::Exists(name) => write!(f, "a bridge named {name:?} exists already"),
            BridgeError::Invalid(why) | BridgeError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BridgeError {}

/// The queue rules that make each bridge's local session its buffer: its bound and overflow policy. The
/// node's configuration puts them first, before it starts.
pub fn queue_rules(config: &BridgesConfig) -> Vec<QueueRule> {
    config
        .mqtt
        .iter()
        .filter_map(|b| queue_rule(&b.name, b.buffer, b.overflow))
        .collect()
}

fn queue_rule(name: &str, buffer: usize, overflow: Overflow) -> Option<QueueRule> {
    let (policy, stall) = match overflow {
        Overflow::DropOldest => (OverflowPolicy::DropOldest, None),
        Overflow::DropNewest => (OverflowPolicy::DropNewest, None),
        // Publishers wait for as long as the bridge's remote takes: the session never counts as stalled.
        Overflow::Block => (
            OverflowPolicy::DropNewest,
            Some(std::time::Duration::from_secs(u32::MAX.into())),
        ),
    };
    Some(QueueRule {
        client_id: Some(Pattern::new(&config::local_client_id(name)).ok()?),
        max_len: Some(buffer),
        overflow: Some(policy),
        stall_timeout: stall,
        ..QueueRule::default()
    })
}

impl Bridges {
    /// Start every enabled bridge of `config` under `tree` (the broker's `bridges` supervisor).
    pub async fn start(view: BrokerView, tree: Tree, config: &BridgesConfig) -> Result<Bridges, String> {
        let bridges = Bridges(Arc::new(Inner {
            view,
            tree,
            entries: Mutex::new(BTreeMap::new()),
        }));
        for bridge in config.all() {
            bridges.create(bridge).await.map_err(|e| e.to_string())?;
        }
        Ok(bridges)
    }

    /// Every bridge, by name.
    pub fn list(&self) -> Vec<BridgeInfo> {
        let names: Vec<String> = self.0.entries.lock().keys().cloned().collect();
        names.iter().filter_map(|n| self.get(n)).collect()
    }

    /// One bridge.
    pub fn get(&self, name: &str) -> Option<BridgeInfo> {
        let (config, stats) = {
            let entries = self.0.entries.lock();
            let entry = entries.get(name)?;
            (entry.config.clone(), entry.stats.snapshot())
        };
        let queued = (self.0.view)
            .client(&config::local_client_id(name))
            .map_or(0, |c| c.queued);
        Some(BridgeInfo {
            name: config.name().to_string(),
            kind: config.kind(),
            remote: config.remote(),
            status: if self.0.tree.cell(name).is_some() {
                "running"
            } else {
                "stopped"
            },
            forward: config.forward().to_vec(),
            subscribe: config.subscribe().to_vec(),
            queued,
            stats,
        })
    }

    /// The configuration of a bridge.
    pub fn config(&self, name: &str) -> Option<BridgeConfig> {
        self.0.entries.lock().get(name).map(|e| (*e.config).clone())
    }

    /// Add a bridge and start it, unless its configuration says `enabled = false`.
    pub async fn create(&self, config: BridgeConfig) -> Result<(), BridgeError> {
        config.validate().map_err(BridgeError::Invalid)?;
        let name = config.name().to_string();
        let enabled = config.enabled();
        {
            let mut entries = self.0.entries.lock();
            if entries.contains_key(&name) {
                return Err(BridgeError::Exists(name));
            }
            entries.insert(
                name.clone(),
                Entry {
                    config: Arc::new(config),
                    stats: Arc::default(),
                },
            );
        }
        if enabled {
            if let Err(e) = self.start_bridge(&name).await {
                self.0.entries.lock().remove(&name);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Start a stopped bridge (a running one is left as it is).
    pub async fn start_bridge(&self, name: &str) -> Result<(), BridgeError> {
        let (config, stats) = {
            let entries = self.0.entries.lock();
            let entry = entries.get(name).ok_or_else(|| BridgeError::NotFound(name.into()))?;
            (entry.config.clone(), entry.stats.clone())
        };
        if self.0.tree.cell(name).is_some() {
            return Ok(());
        }
        let args = BridgeArgs {
            config,
            view: self.0.view.clone(),
            stats: stats.clone(),
        };
        let spec = ChildSpec::new(name.to_string(), move |sup| {
            let args = args.clone();
            async move { Ok(Actor::spawn_linked(None, BridgeActor, args, sup).await?.0.get_cell()) }
        })
        .on_restart(move || Counters::add(&stats.restarts, 1));
        self.0
            .tree
            .start_child(spec)
            .await
            .map(|_| ())
            .map_err(|e| BridgeError::Unavailable(format!("bridge {name}: {e}")))
    }

    /// Stop a bridge: it disconnects from both sides; its buffer stays and keeps filling (by its policy).
    pub async fn stop_bridge(&self, name: &str) -> Result<(), BridgeError> {
        if !self.0.entries.lock().contains_key(name) {
            return Err(BridgeError::NotFound(name.into()));
        }
        (self.0.tree.stop_child(name).await).map_err(|e| BridgeError::Unavailable(format!("bridge {name}: {e}")))?;
        Ok(())
    }

    /// Stop and start a bridge again.
    pub async fn restart(&self, name: &str) -> Result<(), BridgeError> {
        self.stop_bridge(name).await?;
        self.start_bridge(name).await
    }

    /// Stop a bridge and forget it, with its buffer.
    pub async fn delete(&self, name: &str) -> Result<(), BridgeError> {
        self.stop_bridge(name).await?;
        self.0.entries.lock().remove(name);
        crate::local_session::forget(&self.0.view, name)
            .await
            .map_err(|e| BridgeError::Unavailable(format!("bridge {name}: deleted, but its buffer was not: {e}")))
    }

    /// Kill a bridge's actor, as a crash would (chaos tests): its supervisor restarts it.
    pub fn kill(&self, name: &str) -> bool {
        match self.0.tree.cell(name) {
            Some(cell) => {
                cell.kill();
                true
            }
            None => false,
        }
    }
}
