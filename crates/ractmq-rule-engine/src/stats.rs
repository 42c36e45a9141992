//! A rule's counters, kept outside its actor so that they survive its restarts, and read by ctl, REST and
//! Prometheus: matched, passed, failed and no-result per rule, and success, failed, retried and dead-lettered
//! per action.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// The counters of one rule.
#[derive(Debug, Default)]
pub struct RuleCounters {
    /// Messages or events the rule's FROM matched.
    pub matched: AtomicU64,
    /// Of those, the ones that gave at least one output row.
    pub passed: AtomicU64,
    /// Evaluations that failed (a type error, a function's error): no output.
    pub failed: AtomicU64,
    /// Evaluations whose WHERE (or INCASE) was false, or that needed a JSON payload that was not JSON.
    pub no_result: AtomicU64,
    /// Times its actor was restarted.
    pub restarts: AtomicU64,
    /// One per action, in the rule's order.
    pub actions: Vec<ActionCounters>,
}

/// The counters of one action.
#[derive(Debug, Default)]
pub struct ActionCounters {
    /// Outputs the action carried out.
    pub success: AtomicU64,
    /// Outputs it failed for good (and dead-lettered).
    pub failed: AtomicU64,
    /// Tries again after a failure.
    pub retried: AtomicU64,
}

/// A rule's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleStats {
    /// See [`RuleCounters::matched`].
    pub matched: u64,
    /// See [`RuleCounters::passed`].
    pub passed: u64,
    /// See [`RuleCounters::failed`].
    pub failed: u64,
    /// See [`RuleCounters::no_result`].
    pub no_result: u64,
    /// See [`RuleCounters::restarts`].
    pub restarts: u64,
    /// Per action, in order.
    pub actions: Vec<ActionStats>,
}

/// An action's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionStats {
    /// `republish`, `bridge` or `log`.
    pub kind: &'static str,
    /// See [`ActionCounters::success`].
    pub success: u64,
    /// See [`ActionCounters::failed`].
    pub failed: u64,
    /// See [`ActionCounters::retried`].
    pub retried: u64,
}

impl RuleCounters {
    /// Counters for a rule with `actions` actions.
    pub fn new(actions: usize) -> RuleCounters {
        RuleCounters {
            actions: (0..actions).map(|_| ActionCounters::default()).collect(),
            ..RuleCounters::default()
        }
    }

    /// Add one to `counter`.
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Now, with each action's kind.
    pub fn snapshot(&self, kinds: &[&'static str]) -> RuleStats {
        RuleStats {
            matched: self.matched.load(Relaxed),
            passed: self.passed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            no_result: self.no_result.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            actions: (self.actions.iter().zip(kinds))
                .map(|(a, kind)| ActionStats {
                    kind,
                    success: a.success.load(Relaxed),
                    failed: a.failed.load(Relaxed),
                    retried: a.retried.load(Relaxed),
                })
                .collect(),
        }
    }
}
