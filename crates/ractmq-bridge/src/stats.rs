//! A bridge's counters: written by its pump without locks, read by ctl, REST and Prometheus. They live in the
//! registry, not in the actor, so a restart keeps counting where it was (its log of dead letters with them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use serde::Serialize;

/// The live counters of one bridge.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) connected: AtomicBool,
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) restarts: AtomicU64,
    /// Smoothed time from taking a message to the remote's acknowledgement, in microseconds.
    pub(crate) latency_us: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Its recent dead letters, and replays asked for.
    pub letters: crate::dead_letters::DeadLetters,
}

/// A bridge's counters at one moment, as ctl, REST and Prometheus show them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Whether messages flow: the bridge is connected to its remote and both sides have its subscriptions.
    pub connected: bool,
    /// Messages handed to the remote.
    pub sent: u64,
    /// Messages the remote acknowledged.
    pub acked: u64,
    /// Messages the remote refused, or that failed past their retries.
    pub failed: u64,
    /// Sends tried again (after a reconnect or a failed attempt).
    pub retried: u64,
    /// Messages dropped by the bridge while its remote was down (QoS 0 past its holding room).
    pub dropped: u64,
    /// Messages published to the dead-letter topic.
    pub dead_lettered: u64,
    /// Messages the local broker sent again after a restart of the bridge (possibly sent twice).
    pub duplicates: u64,
    /// Messages brought in from the remote.
    pub received: u64,
    /// Times the bridge's actor was restarted.
    pub restarts: u64,
    /// Smoothed milliseconds from taking a message to the remote's acknowledgement.
    pub latency_ms: f64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Folds one acknowledgement's latency into the smoothed value (weight 1/16).
    pub(crate) fn observe_latency(&self, micros: u64) {
        let old = self.latency_us.load(Relaxed);
        let new = if old == 0 { micros } else { old - old / 16 + micros / 16 };
        self.latency_us.store(new, Relaxed);
    }

    pub(crate) fn set_error(&self, error: Option<String>) {
        *self.last_error.lock() = error;
    }

    /// A copy of the counters now.
    pub fn snapshot(&self) -> Stats {
        Stats {
            connected: self.connected.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            failed: self.failed.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            received: self.received.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            latency_ms: self.latency_us.load(Relaxed) as f64 / 1000.0,
            last_error: self.last_error.lock().clone(),
        }
    }
}
