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
    /// Created at run time (REST, ctl): kept in the node's store, not in the configuration file.
    at_run_time: bool,
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

/// The store space of bridges created at run time: their configuration as JSON, by name.
const SPACE: &str = "bridges";

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

/// A bridge's buffer is its local session's queue: its bound and overflow policy.
fn set_buffer(view: &BrokerView, name: &str, buffer: usize, overflow: Overflow) {
    // A full buffer drops at once: its bridge not reading is the remote being down, not a client slow for a
    // moment that publishers should wait for.
    let now = Some(std::time::Duration::ZERO);
    let (policy, stall) = match overflow {
        Overflow::DropOldest => (OverflowPolicy::DropOldest, now),
        Overflow::DropNewest => (OverflowPolicy::DropNewest, now),
        // Publishers wait for as long as the bridge's remote takes: the session never counts as stalled.
        Overflow::Block => (
            OverflowPolicy::DropNewest,
            Some(std::time::Duration::from_secs(u32::MAX.into())),
        ),
    };
    view.set_in_process_queue(&config::local_client_id(name), buffer, policy, stall);
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
            bridges.add(bridge, false).await.map_err(|e| e.to_string())?;
        }
        // Bridges created at run time before a restart, as the store kept them.
        for (name, json) in bridges.0.view.stored_state(SPACE) {
            let config = serde_json::from_slice(&json)
                .map_err(|e| e.to_string())
                .and_then(BridgeConfig::from_json);
            match config {
                Ok(c) if bridges.0.entries.lock().contains_key(c.name()) => tracing::warn!(
                    bridge = %name,
                    "a bridge created at run time has the name of one in the configuration file; the file's is used"
                ),
                // A kept bridge that no longer starts must not keep the node from starting: it is logged, and
                // `ractmq ctl bridges create` can make it again.
                Ok(c) => {
                    if let Err(e) = bridges.add(c, true).await {
                        tracing::error!(bridge = %name, "a bridge kept from run time did not start: {e}");
                    }
                }
                Err(e) => tracing::error!(bridge = %name, "a bridge kept from run time cannot be read, skipped: {e}"),
            }
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
        let session = self.0.view.client(&config::local_client_id(name));
        let queued = session.as_ref().map_or(0, |c| c.queued);
        let mut stats = stats;
        // What the buffer's overflow policy dropped, beside what the bridge itself dropped.
        stats.dropped += session.map_or(0, |c| c.dropped);
        let running = self.0.tree.cell(name).is_some();
        // A stopped bridge moves nothing, whatever its last send said.
        stats.connected &= running;
        Some(BridgeInfo {
            name: config.name().to_string(),
            kind: config.kind(),
            remote: config.remote(),
            status: if running { "running" } else { "stopped" },
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

    /// Add a bridge and start it, unless its configuration says `enabled = false`. It is kept in the node's
    /// store, so that a restart brings it back.
    pub async fn create(&self, config: BridgeConfig) -> Result<(), BridgeError> {
        self.add(config, true).await
    }

    async fn add(&self, config: BridgeConfig, at_run_time: bool) -> Result<(), BridgeError> {
        config.validate().map_err(BridgeError::Invalid)?;
        let (buffer, overflow) = config.buffer();
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
                    config: Arc::new(config.clone()),
                    at_run_time,
                    stats: Arc::default(),
                },
            );
        }
        set_buffer(&self.0.view, &name, buffer, overflow);
        if enabled {
            if let Err(e) = self.start_bridge(&name).await {
                self.0.entries.lock().remove(&name);
                return Err(e);
            }
        }
        if at_run_time {
            self.keep(&config).await?;
        }
        Ok(())
    }

    /// Write a run-time bridge's configuration to the store (a stop or start changes `enabled`).
    async fn keep(&self, config: &BridgeConfig) -> Result<(), BridgeError> {
        let json = serde_json::to_vec(config).map_err(|e| BridgeError::Invalid(e.to_string()))?;
        (self.0.view.keep_state(SPACE, config.name(), Some(json)).await)
            .map_err(|e| BridgeError::Unavailable(format!("bridge {}: not kept in the store: {e}", config.name())))
    }

    /// A run-time bridge's `enabled`, as a stop or start left it, kept for the next restart.
    async fn keep_enabled(&self, name: &str, enabled: bool) -> Result<(), BridgeError> {
        let changed = {
            let mut entries = self.0.entries.lock();
            let Some(entry) = entries.get_mut(name).filter(|e| e.at_run_time) else {
                return Ok(());
            };
            let mut config = (*entry.config).clone();
            config.set_enabled(enabled);
            entry.config = Arc::new(config.clone());
            config
        };
        self.keep(&changed).await
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
            .map_err(|e| BridgeError::Unavailable(format!("bridge {name}: {e}")))?;
        self.keep_enabled(name, true).await
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

    /// Replace the bridge named `config.name()` with `config` (a password shown as `***` is kept, see
    /// [`BridgeConfig::with_secrets_of`]), running afterwards as `enabled` says or, when `None`, as it was.
    /// Not atomic: the bridge is stopped, its configuration replaced, then started again, and in between it
    /// moves nothing; its buffer (its local session), counters and dead letters are kept, so what arrives
    /// meanwhile waits. Local filters dropped from `forward` are unsubscribed when it starts again (see
    /// `local_session::stale`); remote filters dropped from an MQTT bridge's `subscribe` stay in its session at
    /// the remote broker until that session ends (with `clean_start` it ends at each connection). A
    /// configuration that is not valid leaves the bridge as it was. A run-time bridge's new configuration is
    /// kept in the store; one of the configuration file is replaced until the node restarts.
    pub async fn replace(&self, config: BridgeConfig, enabled: Option<bool>) -> Result<(), BridgeError> {
        let name = config.name().to_string();
        let old = self.config(&name).ok_or_else(|| BridgeError::NotFound(name.clone()))?;
        let mut config = config.with_secrets_of(&old);
        let start = enabled.unwrap_or_else(|| self.0.tree.cell(&name).is_some());
        config.set_enabled(start);
        config.validate().map_err(BridgeError::Invalid)?;
        self.stop_bridge(&name).await?;
        let at_run_time = {
            let mut entries = self.0.entries.lock();
            let entry = entries
                .get_mut(&name)
                .ok_or_else(|| BridgeError::NotFound(name.clone()))?;
            entry.config = Arc::new(config.clone());
            entry.at_run_time
        };
        let (buffer, overflow) = config.buffer();
        set_buffer(&self.0.view, &name, buffer, overflow);
        if start {
            self.start_bridge(&name).await?;
        }
        if at_run_time {
            self.keep(&config).await?;
        }
        Ok(())
    }

    /// Stop a bridge and forget it, with its buffer.
    pub async fn delete(&self, name: &str) -> Result<(), BridgeError> {
        self.stop_bridge(name).await?;
        let removed = self.0.entries.lock().remove(name);
        if removed.is_some_and(|e| e.at_run_time) {
            (self.0.view.keep_state(SPACE, name, None).await)
                .map_err(|e| BridgeError::Unavailable(format!("bridge {name}: deleted, but the store kept it: {e}")))?;
        }
        crate::local_session::forget(&self.0.view, name)
            .await
            .map_err(|e| BridgeError::Unavailable(format!("bridge {name}: deleted, but its buffer was not: {e}")))
    }

    /// A bridge's recent dead letters, oldest first.
    pub fn dead_letters(&self, name: &str) -> Result<Vec<crate::DeadLetter>, BridgeError> {
        let entries = self.0.entries.lock();
        let entry = entries.get(name).ok_or_else(|| BridgeError::NotFound(name.into()))?;
        Ok(entry.stats.letters.list())
    }

    /// Hand dead letters (`ids`, or all of them) back to the bridge to send again; how many. A stopped bridge
    /// sends them when it starts.
    pub fn replay(&self, name: &str, ids: Option<&[u64]>) -> Result<usize, BridgeError> {
        let entries = self.0.entries.lock();
        let entry = entries.get(name).ok_or_else(|| BridgeError::NotFound(name.into()))?;
        Ok(entry.stats.letters.replay(ids))
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
