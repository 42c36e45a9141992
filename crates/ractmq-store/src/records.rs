//! Records as they are written: the protocol's snapshots, stamped with the wall-clock time they were taken.
//!
//! Snapshots count time as what is left (of a message's expiry, of a session's), which is right across a
//! process boundary but not across a restart: the node was down for a while. Each record carries when it was
//! saved, and recovery takes the downtime off.

use std::time::{SystemTime, UNIX_EPOCH};

use ractmq_protocol::snapshot::{DeliverySnapshot, MessageSnapshot};
use ractmq_protocol::SessionSnapshot;
use serde::{Deserialize, Serialize};

/// What the store keeps of a session besides its messages: subscriptions, expiry, will, owner, and whether a
/// client was connected when it was written (a restart then ends that connection, as a crash would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session, its `inflight`, `queued` and `awaiting_rel` left empty: those are stored one by one.
    pub session: SessionSnapshot,
    /// A client was connected.
    pub connected: bool,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub saved_at_ms: u64,
    pub record: SessionRecord,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredCopy {
    pub saved_at_ms: u64,
    pub delivery: DeliverySnapshot,
    /// Its packet id and state when it was sent before it was first written (within the same commit); later
    /// changes go to the `sent` table, which wins.
    pub sent: Option<(u16, u8)>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub saved_at_ms: u64,
    pub message: MessageSnapshot,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `message`'s expiry shortened by the time since `saved_at_ms`; false if it expired meanwhile.
pub(crate) fn age(message: &mut MessageSnapshot, saved_at_ms: u64, now_ms: u64) -> bool {
    let Some(left) = message.expires_in else {
        return true;
    };
    let gone = (now_ms.saturating_sub(saved_at_ms) / 1000) as u32;
    message.expires_in = Some(left.saturating_sub(gone));
    left > gone
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data with no maps keyed by non-strings: bincode cannot fail on it.
    bincode::serialize(value).unwrap_or_default()
}
