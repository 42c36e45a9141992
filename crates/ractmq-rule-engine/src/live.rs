//! A rule as the node runs it: compiled, with the actor that retries its failed actions (while one runs) and
//! the number of retries it holds, which is bounded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;
use ractor::ActorRef;

use crate::actions::Retry;
use crate::compiled::RuleRuntime;
use crate::rule_msg::RuleMsg;

/// Retries one rule's actor holds at most; past it, failed outputs are dead-lettered at once.
pub const MAX_PENDING_RETRIES: usize = 10_000;

/// One rule, running.
pub struct LiveRule {
    /// The compiled rule.
    pub runtime: Arc<RuleRuntime>,
    /// Whether it runs (its configuration's `enabled` until ctl or REST changes it).
    enabled: AtomicBool,
    actor: RwLock<Option<ActorRef<RuleMsg>>>,
    pending: AtomicUsize,
}

impl LiveRule {
    /// `runtime`, with no actor yet.
    pub fn new(runtime: Arc<RuleRuntime>) -> Arc<LiveRule> {
        Arc::new(LiveRule {
            enabled: AtomicBool::new(runtime.config.enabled),
            runtime,
            actor: RwLock::new(None),
            pending: AtomicUsize::new(0),
        })
    }

    /// Whether it runs.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Relaxed);
    }

    /// Its configuration as it stands (with `enabled` as ctl or REST left it).
    pub fn config(&self) -> crate::config::RuleConfig {
        let mut config = (*self.runtime.config).clone();
        config.enabled = self.is_enabled();
        config
    }

    /// `actor` retries this rule's failed actions from now on (`None`: it stopped).
    pub(crate) fn set_actor(&self, actor: Option<ActorRef<RuleMsg>>) {
        *self.actor.write() = actor;
    }

    /// Hand a failed action to the actor: false if there is none or it holds too many.
    pub(crate) fn retry(&self, retry: Retry) -> bool {
        let actor = self.actor.read();
        let Some(actor) = actor.as_ref() else {
            return false;
        };
        if self.pending.fetch_add(1, Relaxed) >= MAX_PENDING_RETRIES {
            self.pending.fetch_sub(1, Relaxed);
            return false;
        }
        if actor.cast(RuleMsg::Retry(retry)).is_err() {
            self.pending.fetch_sub(1, Relaxed);
            return false;
        }
        true
    }

    /// A retry ended (delivered or dead-lettered).
    pub(crate) fn retry_done(&self) {
        self.pending.fetch_sub(1, Relaxed);
    }

    /// Retries waiting now.
    pub fn pending_retries(&self) -> usize {
        self.pending.load(Relaxed)
    }

    /// Whether its actor runs.
    pub fn is_running(&self) -> bool {
        self.actor.read().is_some()
    }
}
