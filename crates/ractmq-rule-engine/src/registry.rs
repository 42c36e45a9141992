//! The node's rules: which exist, their configuration and counters, and what ctl and REST do with them
//! (create, delete, enable, disable, test, and kill for chaos tests).
//!
//! Rules from the configuration file come first; rules created at run time are kept in the node's store
//! (space `rules`) and come back at the next start. Every change rebuilds the hook's index of enabled rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
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
}

struct Entry {
    live: Arc<LiveRule>,
    /// Created at run time (REST, ctl): kept in the node's store, not in the configuration file.
    at_run_time: bool,
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
        }));
        for rule in &config.0 {
            rules.add(rule.clone(), false).await.map_err(|e| e.to_string())?;
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
                    if let Err(e) = rules.add(c, true).await {
                        tracing::error!(rule = %name, "a rule kept from run time did not start: {e}");
                    }
                }
                Err(e) => tracing::error!(rule = %name, "a rule kept from run time cannot be read, skipped: {e}"),
            }
        }
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

    /// Add a rule and run it (unless `enabled = false`); it is kept in the node's store.
    pub async fn create(&self, config: RuleConfig) -> Result<(), RuleError> {
        self.add(config, true).await
    }

    async fn add(&self, config: RuleConfig, at_run_time: bool) -> Result<(), RuleError> {
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
        self.reindex();
        if at_run_time {
            if let Err(e) = self.keep(&config).await {
                self.forget(&name).await;
                return Err(e);
            }
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

    /// Stop a rule and forget it.
    pub async fn delete(&self, name: &str) -> Result<(), RuleError> {
        let removed = self
            .forget(name)
            .await
            .ok_or_else(|| RuleError::NotFound(name.into()))?;
        if removed.at_run_time {
            (self.0.view.keep_state(SPACE, name, None).await)
                .map_err(|e| RuleError::Unavailable(format!("rule {name}: deleted, but the store kept it: {e}")))?;
        }
        Ok(())
    }

    /// Enable or disable a rule; a run-time rule keeps the change across restarts.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), RuleError> {
        let (config, at_run_time) = {
            let entries = self.0.entries.lock();
            let entry = entries.get(name).ok_or_else(|| RuleError::NotFound(name.into()))?;
            entry.live.set_enabled(enabled);
            (entry.live.config(), entry.at_run_time)
        };
        self.reindex();
        if at_run_time {
            self.keep(&config).await?;
        }
        Ok(())
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
