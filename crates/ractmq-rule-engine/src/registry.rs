//! The node's rules: which exist, their configuration and counters, and what ctl and REST do with them
//! (create, delete, enable, disable, test, and kill for chaos tests).
//!
//! Rules from the configuration file come first; rules created at run time are kept in the node's store
//! (space `rules`) and come back at the next start. Every change rebuilds the hook's index of enabled rules.
//!
//! In a cluster, run-time rules are the cluster's: [`Rules::replicate`] hands this node's changes to a
//! [`RuleReplica`] (the cluster's replicated map, wired by the binary) and [`Rules::apply_remote`] applies
//! the changes other nodes made, without handing them back. Rules of the configuration file stay this node's.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use ractmq_broker::{BrokerView, ChildSpec, Tree};
use ractor::Actor;
use serde::Serialize;

use crate::actor::{RuleActor, RuleArgs};
use crate::compiled::RuleRuntime;
use crate::config::{RuleConfig, RulesConfig};
use crate::hook::{RuleHook, RuleSet};
use crate::live::LiveRule;
use crate::stats::{RuleCounters, RuleStats};

/// The store space of rules created at run time: their configuration as JSON, by name.
const SPACE: &str = "rules";

/// The node's rules. Cloning shares them.
#[derive(Clone)]
pub struct Rules(Arc<Inner>);

struct Inner {
    view: BrokerView,
    tree: Tree,
    hook: Arc<RuleHook>,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Where run-time changes are replicated to, once the node is clustered.
    replica: RwLock<Option<Arc<dyn RuleReplica>>>,
    /// Held by every run-time change, local or remote, from reading what it changes to handing it to the
    /// replica: a remote change is applied as the replica holds it when its turn comes, so a local change
    /// made meanwhile is never undone by an older remote one (see [`Rules::apply_remote`]).
    changes: tokio::sync::Mutex<()>,
}

/// Where a node's run-time rule changes go to be replicated to the other nodes, and what the other nodes
/// made of them: the cluster's replicated map, seen from the rule engine (which does not depend on the
/// cluster crate).
pub trait RuleReplica: Send + Sync {
    /// A run-time rule was created, replaced, enabled or disabled here (`Some`), or deleted (`None`).
    fn changed(&self, name: &str, config: Option<&RuleConfig>);
    /// What the cluster holds for `name` now: `None` if it never heard of it, `Some(None)` if it was deleted.
    /// A value that cannot be read is logged and reported as `None`.
    fn current(&self, name: &str) -> Option<Option<RuleConfig>>;
    /// Every name the cluster holds, deleted ones included.
    fn names(&self) -> Vec<String>;
}

struct Entry {
    live: Arc<LiveRule>,
    /// Created at run time (REST, ctl): kept in the node's store, not in the configuration file.
    at_run_time: bool,
}

/// Where a rule being added comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Added {
    /// The configuration file, at start.
    FromFile,
    /// The node's store, at start (created at run time before a restart).
    FromStore,
    /// ctl, REST or another node, now: indexed at once and kept in the store.
    AtRunTime,
}

/// One rule as ctl and REST show it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    /// Its name.
    pub name: String,
    /// Its SQL.
    pub sql: String,
    /// Whether it runs.
    pub enabled: bool,
    /// A note for operators.
    pub description: String,
    /// Its FROM: topic filters and event topics.
    pub from: Vec<String>,
    /// Created at run time (kept in the node's store) rather than in the configuration file.
    pub at_run_time: bool,
    /// Failed actions waiting to be tried again.
    pub pending_retries: usize,
    /// Its counters.
    #[serde(flatten)]
    pub stats: RuleStats,
}

/// Why an operation on a rule failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// No rule has that name.
    NotFound(String),
    /// A rule has that name already.
    Exists(String),
    /// The rule is not valid (one line saying why, with the SQL error's position).
    Invalid(String),
    /// The rules supervisor or the store could not do it now; try again.
    Unavailable(String),
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleError::NotFound(name) => write!(f, "no rule named {name:?}"),
            RuleError::Exists(name) => write!(f, "a rule named {name:?} exists already; delete it first"),
            RuleError::Invalid(why) | RuleError::Unavailable(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for RuleError {}

impl Rules {
    /// Start the rules of `config`, then those kept from run time, under `tree` (the broker's `rules`
    /// supervisor), and hook them into the node. A rule of the file that does not compile stops the start.
    pub async fn start(view: BrokerView, tree: Tree, config: &RulesConfig) -> Result<Rules, String> {
        config.validate()?;
        let hook = RuleHook::new(view.clone());
        if !view.set_hooks(hook.clone()) {
            return Err("rules: this node has its hooks installed already".into());
        }
        let rules = Rules(Arc::new(Inner {
            view,
            tree,
            hook,
            entries: Mutex::new(BTreeMap::new()),
            replica: RwLock::new(None),
            changes: tokio::sync::Mutex::new(()),
        }));
        for rule in &config.0 {
            rules
                .add(rule.clone(), Added::FromFile)
                .await
                .map_err(|e| e.to_string())?;
        }
        for (name, json) in rules.0.view.stored_state(SPACE) {
            let config = serde_json::from_slice(&json)
                .map_err(|e| e.to_string())
                .and_then(RuleConfig::from_json);
            match config {
                Ok(c) if rules.0.entries.lock().contains_key(&c.name) => tracing::warn!(
                    rule = %name,
                    "a rule created at run time has the name of one in the configuration file; the file's is used"
                ),
                Ok(c) => {
                    if let Err(e) = rules.add(c, Added::FromStore).await {
                        tracing::error!(rule = %name, "a rule kept from run time did not start: {e}");
                    }
                }
                Err(e) => tracing::error!(rule = %name, "a rule kept from run time cannot be read, skipped: {e}"),
            }
        }
        // Indexed once for all: a rebuild per rule would cost the start time quadratic in the rules.
        rules.reindex();
        Ok(rules)
    }

    /// Every rule, by name.
    pub fn list(&self) -> Vec<RuleInfo> {
        let entries = self.0.entries.lock();
        entries.values().map(info).collect()
    }

    /// One rule.
    pub fn get(&self, name: &str) -> Option<RuleInfo> {
        self.0.entries.lock().get(name).map(info)
    }

    /// The configuration of a rule.
    pub fn config(&self, name: &str) -> Option<RuleConfig> {
        self.0.entries.lock().get(name).map(|e| e.live.config())
    }

    /// Evaluations cut because rules fed each other too deep.
    pub fn chains_cut(&self) -> u64 {
        self.0.hook.chain_cut.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Add a rule and run it (unless `enabled = false`); it is kept in the node's store, and in a cluster
    /// created on every node.
    pub async fn create(&self, config: RuleConfig) -> Result<(), RuleError> {
        let _turn = self.0.changes.lock().await;
        self.add(config.clone(), Added::AtRunTime).await?;
        self.publish(&config.name, Some(&config)).await
    }

    /// Replace the rule named `config.name` with `config`, enabled as `enabled` says or, when `None`, as the
    /// rule it replaces is. A rule that does not compile leaves the old one in place. What messages the rule
    /// matches switches in one step (the old rule runs until the new one is indexed), but its actor is stopped
    /// and a new one started, so the retries the old one held are dropped, and the counters start from zero.
    /// A run-time rule's new configuration is kept in the store and, in a cluster, replaces it on every node;
    /// a rule of the configuration file is replaced on this node until it restarts, as enabling one is.
    pub async fn replace(&self, mut config: RuleConfig, enabled: Option<bool>) -> Result<(), RuleError> {
        let _turn = self.0.changes.lock().await;
        let name = config.name.clone();
        let (old, at_run_time) = {
            let entries = self.0.entries.lock();
            let entry = entries.get(&name).ok_or_else(|| RuleError::NotFound(name.clone()))?;
            (entry.live.clone(), entry.at_run_time)
        };
        config.enabled = enabled.unwrap_or_else(|| old.is_enabled());
        let runtime = RuleRuntime::compile(Arc::new(config.clone()), None).map_err(RuleError::Invalid)?;
        let live = LiveRule::new(Arc::new(runtime));
        let _ = self.0.tree.stop_child(&name).await;
        if let Err(e) = self.start_actor(&live).await {
            // The old rule is still indexed and in the entries: it gets its actor back.
            if let Err(again) = self.start_actor(&old).await {
                tracing::error!(rule = %name, "not replaced, and its actor did not start again: {again}");
            }
            return Err(e);
        }
        let entry = Entry { live, at_run_time };
        self.0.entries.lock().insert(name.clone(), entry);
        self.reindex();
        if !at_run_time {
            return Ok(());
        }
        self.keep(&config).await?;
        self.publish(&name, Some(&config)).await
    }

    /// Hand a local run-time change to the replica, if the node is clustered, and wait until the replica's
    /// record of it is stored: the operator is told "done" only once a kill -9 cannot lose it.
    async fn publish(&self, name: &str, config: Option<&RuleConfig>) -> Result<(), RuleError> {
        let Some(replica) = self.0.replica.read().clone() else {
            return Ok(());
        };
        replica.changed(name, config);
        (self.0.view.flush_store().await)
            .map_err(|e| RuleError::Unavailable(format!("rule {name}: changed, but not kept in the store: {e}")))
    }

    /// Replicate this node's run-time rules through `replica` from now on: apply what it holds (a rule
    /// created, changed or deleted elsewhere while this node was away), then hand it the run-time rules it
    /// has never heard of (created here before the node was clustered, or just before a crash).
    pub async fn replicate(&self, replica: Arc<dyn RuleReplica>) {
        let _turn = self.0.changes.lock().await;
        *self.0.replica.write() = Some(replica.clone());
        let known = replica.names();
        for name in &known {
            self.apply(name, replica.current(name)).await;
        }
        let unknown: Vec<RuleConfig> = {
            let entries = self.0.entries.lock();
            (entries.values())
                .filter(|e| e.at_run_time && !known.contains(&e.live.runtime.config.name))
                .map(|e| e.live.config())
                .collect()
        };
        for config in unknown {
            replica.changed(&config.name, Some(&config));
        }
    }

    /// Another node changed run-time rule `name`: make this node's match what the replica holds for it now
    /// (create, replace, enable, disable or delete it, and keep that in the store), without handing it back.
    /// The value is read here rather than passed in, under the lock every change takes, so that changes
    /// applied late cannot undo a newer one. A rule that does not start here is logged and skipped; a rule of
    /// the configuration file with the same name is kept, and the remote one ignored on this node.
    pub async fn apply_remote(&self, name: &str) {
        let _turn = self.0.changes.lock().await;
        let Some(replica) = self.0.replica.read().clone() else {
            return;
        };
        self.apply(name, replica.current(name)).await;
    }

    async fn apply(&self, name: &str, wanted: Option<Option<RuleConfig>>) {
        let Some(wanted) = wanted else {
            return;
        };
        let here = {
            let entries = self.0.entries.lock();
            entries.get(name).map(|e| (e.at_run_time, e.live.config()))
        };
        if let Some((false, _)) = here {
            if wanted.is_some() {
                tracing::warn!(
                    rule = %name,
                    "a rule created on another node has the name of one in this node's configuration file; this node keeps its own"
                );
            }
            return;
        }
        match (here, wanted) {
            (None, None) => {}
            (Some(_), None) => {
                self.forget(name).await;
                if let Err(e) = self.0.view.keep_state(SPACE, name, None).await {
                    tracing::error!(rule = %name, "deleted as another node did, but the store kept it: {e}");
                }
            }
            (_, Some(config)) if config.name != name => {
                tracing::error!(rule = %name, "a rule from another node names itself {:?}; skipped", config.name);
            }
            (Some((_, mine)), Some(config)) if mine == config => {}
            (Some((_, mine)), Some(config))
                if RuleConfig {
                    enabled: mine.enabled,
                    ..config.clone()
                } == mine =>
            {
                if let Err(e) = self.switch(name, config.enabled).await {
                    tracing::error!(rule = %name, "enabled or disabled as another node did, but: {e}");
                }
            }
            (here, Some(config)) => {
                if here.is_some() {
                    self.forget(name).await;
                }
                if let Err(e) = self.add(config, Added::AtRunTime).await {
                    tracing::error!(rule = %name, "a rule from another node did not start here, skipped: {e}");
                }
            }
        }
    }

    async fn add(&self, config: RuleConfig, added: Added) -> Result<(), RuleError> {
        let at_run_time = added != Added::FromFile;
        let name = config.name.clone();
        let runtime = RuleRuntime::compile(Arc::new(config.clone()), None).map_err(RuleError::Invalid)?;
        let live = LiveRule::new(Arc::new(runtime));
        {
            let mut entries = self.0.entries.lock();
            if entries.contains_key(&name) {
                return Err(RuleError::Exists(name));
            }
            entries.insert(
                name.clone(),
                Entry {
                    live: live.clone(),
                    at_run_time,
                },
            );
        }
        if let Err(e) = self.start_actor(&live).await {
            self.0.entries.lock().remove(&name);
            return Err(e);
        }
        if added != Added::AtRunTime {
            // At start: indexed with the others, and already in the store if kept.
            return Ok(());
        }
        self.reindex();
        if let Err(e) = self.keep(&config).await {
            self.forget(&name).await;
            return Err(e);
        }
        Ok(())
    }

    async fn start_actor(&self, live: &Arc<LiveRule>) -> Result<(), RuleError> {
        let name = live.runtime.config.name.clone();
        let args = RuleArgs {
            rule: live.clone(),
            view: self.0.view.clone(),
        };
        let counters = live.runtime.counters.clone();
        let spec = ChildSpec::new(name.clone(), move |sup| {
            let args = args.clone();
            async move { Ok(Actor::spawn_linked(None, RuleActor, args, sup).await?.0.get_cell()) }
        })
        .on_restart(move || RuleCounters::add(&counters.restarts));
        (self.0.tree.start_child(spec).await)
            .map(|_| ())
            .map_err(|e| RuleError::Unavailable(format!("rule {name}: {e}")))
    }

    /// Index the enabled rules into the hook.
    fn reindex(&self) {
        let entries = self.0.entries.lock();
        let enabled = entries.values().map(|e| &e.live).filter(|l| l.is_enabled());
        self.0.hook.install(RuleSet::new(enabled));
    }

    async fn keep(&self, config: &RuleConfig) -> Result<(), RuleError> {
        let json = serde_json::to_vec(config).map_err(|e| RuleError::Invalid(e.to_string()))?;
        (self.0.view.keep_state(SPACE, &config.name, Some(json)).await)
            .map_err(|e| RuleError::Unavailable(format!("rule {}: not kept in the store: {e}", config.name)))
    }

    /// Remove `name` from the entries, the index and its actor.
    async fn forget(&self, name: &str) -> Option<Entry> {
        let removed = self.0.entries.lock().remove(name);
        self.reindex();
        let _ = self.0.tree.stop_child(name).await;
        removed
    }

    /// Stop a rule and forget it (in a cluster, a run-time rule on every node).
    pub async fn delete(&self, name: &str) -> Result<(), RuleError> {
        let _turn = self.0.changes.lock().await;
        let removed = self
            .forget(name)
            .await
            .ok_or_else(|| RuleError::NotFound(name.into()))?;
        if removed.at_run_time {
            // Replicated before the store answers: the other nodes delete it whatever this node's disk says.
            self.publish(name, None).await?;
            (self.0.view.keep_state(SPACE, name, None).await)
                .map_err(|e| RuleError::Unavailable(format!("rule {name}: deleted, but the store kept it: {e}")))?;
        }
        Ok(())
    }

    /// Enable or disable a rule; a run-time rule keeps the change across restarts (and in a cluster, the
    /// change is made on every node).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), RuleError> {
        let _turn = self.0.changes.lock().await;
        let config = self.switch(name, enabled).await?;
        match config {
            Some(config) => self.publish(name, Some(&config)).await,
            None => Ok(()),
        }
    }

    /// Enable or disable a rule here; returns the configuration of a run-time rule (which was kept).
    async fn switch(&self, name: &str, enabled: bool) -> Result<Option<RuleConfig>, RuleError> {
        let (config, at_run_time) = {
            let entries = self.0.entries.lock();
            let entry = entries.get(name).ok_or_else(|| RuleError::NotFound(name.into()))?;
            entry.live.set_enabled(enabled);
            (entry.live.config(), entry.at_run_time)
        };
        self.reindex();
        if !at_run_time {
            return Ok(None);
        }
        self.keep(&config).await?;
        Ok(Some(config))
    }

    /// Kill a rule's actor, as a crash would (chaos tests): its supervisor restarts it.
    pub fn kill(&self, name: &str) -> bool {
        match self.0.tree.cell(name) {
            Some(cell) => {
                cell.kill();
                true
            }
            None => false,
        }
    }

    /// What `sql` outputs for one message, without running any action (`ractmq ctl rules test`).
    pub fn test(&self, sql: &str, message: &crate::TestMessage) -> Result<crate::TestOutput, RuleError> {
        crate::test_rule::test(sql, message, self.0.view.node_name()).map_err(RuleError::Invalid)
    }
}

fn info(entry: &Entry) -> RuleInfo {
    let runtime = &entry.live.runtime;
    let config = &runtime.config;
    RuleInfo {
        name: config.name.clone(),
        sql: config.sql.clone(),
        enabled: entry.live.is_enabled(),
        description: config.description.clone(),
        from: runtime.sql.topics().iter().map(|t| t.to_string()).collect(),
        at_run_time: entry.at_run_time,
        pending_retries: entry.live.pending_retries(),
        stats: runtime.counters.snapshot(&runtime.action_kinds()),
    }
}
