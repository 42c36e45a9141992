//! The dead letters of one bridge as ctl and REST list and replay them: the most recent ones (a bounded log),
//! beside the copy each has on the dead-letter topic, which is where a persistent subscriber keeps them all.
//!
//! A replay hands letters back to the running bridge, which sends them again as new messages; one that fails
//! again is dead-lettered again. The log is in memory: after a node restart, the dead-letter topic is the
//! record.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

/// Dead letters kept per bridge; older ones leave the log (counted), not the dead-letter topic.
const KEPT: usize = 10_000;

/// One message that failed for good.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Its number in this bridge's log.
    pub id: u64,
    /// The topic it was published to locally.
    pub topic: String,
    /// Its payload, as text when it is UTF-8.
    pub payload: Option<String>,
    /// Its payload in base64 when it is not UTF-8.
    pub payload_base64: Option<String>,
    /// Why it failed.
    pub reason: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Its user properties as published.
    pub user_properties: Vec<(String, String)>,
    #[serde(skip)]
    pub(crate) bytes: Bytes,
}

/// A bridge's log of dead letters and the replays asked of it.
#[derive(Debug, Default)]
pub struct DeadLetters {
    log: Mutex<VecDeque<DeadLetter>>,
    next_id: AtomicU64,
    evicted: AtomicU64,
    replays: Mutex<Vec<DeadLetter>>,
    pub(crate) replay_ready: Notify,
}

impl DeadLetters {
    pub(crate) fn record(&self, topic: &str, payload: Bytes, reason: &str, user_properties: Vec<(String, String)>) {
        use base64::Engine;
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (text, base64) = match std::str::from_utf8(&payload) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(&payload))),
        };
        let mut log = self.log.lock();
        if log.len() == KEPT {
            log.pop_front();
            self.evicted.fetch_add(1, Relaxed);
        }
        log.push_back(DeadLetter {
            id,
            topic: topic.to_string(),
            payload: text,
            payload_base64: base64,
            reason: reason.to_string(),
            at_ms,
            user_properties,
            bytes: payload,
        });
    }

    /// The letters in the log, oldest first.
    pub fn list(&self) -> Vec<DeadLetter> {
        self.log.lock().iter().cloned().collect()
    }

    /// Letters that left the log because it was full.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// Take the letters `ids` (all when `None`) out of the log for the bridge to send again; how many.
    pub(crate) fn replay(&self, ids: Option<&[u64]>) -> usize {
        let taken: Vec<DeadLetter> = {
            let mut log = self.log.lock();
            let (take, keep): (Vec<_>, Vec<_>) = log.drain(..).partition(|l| ids.is_none_or(|ids| ids.contains(&l.id)));
            *log = keep.into();
            take
        };
        let n = taken.len();
        if n > 0 {
            self.replays.lock().extend(taken);
            self.replay_ready.notify_one();
        }
        n
    }

    /// The letters to send again, for the pump.
    pub(crate) fn take_replays(&self) -> Vec<DeadLetter> {
        std::mem::take(&mut *self.replays.lock())
    }
}
