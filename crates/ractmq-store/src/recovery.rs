//! Reading a store back at start: every session with its messages, every retained message, operator state.
//!
//! A node does this once, before it accepts clients. Times are corrected for the downtime (see `records.rs`);
//! queued copies that expired meanwhile are left out and forgotten. A record that cannot be decoded means the
//! file is not what this version wrote: that is reported, never skipped silently.

use std::collections::HashMap;
use std::path::Path;

use ractmq_protocol::snapshot::{InflightSnapshot, MessageSnapshot};
use ractmq_protocol::SessionSnapshot;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::records::{age, now_ms, StoredCopy, StoredMessage, StoredSession};
use crate::tables::*;
use crate::StoreError;

/// Everything a store held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Persistent sessions, in client id order.
    pub sessions: Vec<RecoveredSession>,
    /// Retained messages not expired.
    pub retained: Vec<MessageSnapshot>,
    /// Operator state: (space, key, value).
    pub operator: Vec<(String, String, Vec<u8>)>,
    /// Queued copies that expired while the node was down (forgotten).
    pub expired: u64,
}

impl Recovered {
    /// The operator state of one space, as (key, value).
    pub fn space<'a>(&'a self, space: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.operator
            .iter()
            .filter(move |(s, _, _)| s == space)
            .map(|(_, k, v)| (k.as_str(), v.as_slice()))
    }
}

/// One session as it was stored.
#[derive(Debug)]
pub struct RecoveredSession {
    /// The session with its messages in flight (oldest first) and queued (oldest first), and its QoS 2
    /// receipts. Its deadlines count from the moment of recovery, the downtime taken off.
    pub session: SessionSnapshot,
    /// The copy numbers of `session.inflight`, in the same order.
    pub inflight_numbers: Vec<u64>,
    /// The copy numbers of `session.queued`, in the same order.
    pub queued_numbers: Vec<u64>,
    /// A client was connected when the node stopped.
    pub was_connected: bool,
}

/// What recovery found that the store should forget: copies that expired, or whose session is gone.
pub(crate) type Leftovers = Vec<(String, u64)>;

/// What recovery hands the writer: the highest copy number in use, the copies to forget, and the copies
/// whose send state is a row of the `sent` table.
pub(crate) struct ForWriter {
    pub highest: u64,
    pub leftovers: Leftovers,
    pub sent_rows: crate::writer::Numbers,
}

/// Read everything in `db`, and what the writer needs to know of it.
pub(crate) fn recover(db: &Database, path: &Path) -> Result<(Recovered, ForWriter), StoreError> {
    let damaged = |what: String| StoreError::Damaged {
        path: path.to_path_buf(),
        what,
    };
    let io = |e: redb::Error| damaged(e.to_string());
    let tx = db.begin_read().map_err(|e| io(e.into()))?;
    let now = now_ms();
    let mut out = Recovered::default();
    let mut highest = 0;
    let mut leftovers = Leftovers::new();
    let mut sent_rows = crate::writer::Numbers::default();

    let sessions = tx.open_table(SESSIONS).map_err(|e| io(e.into()))?;
    let mut by_client: HashMap<String, RecoveredSession> = HashMap::new();
    for row in sessions.iter().map_err(|e| io(e.into()))? {
        let (key, value) = row.map_err(|e| io(e.into()))?;
        let stored: StoredSession =
            bincode::deserialize(value.value()).map_err(|e| damaged(format!("session {}: {e}", key.value())))?;
        let gone = now.saturating_sub(stored.saved_at_ms);
        let mut session = stored.record.session;
        session
            .check()
            .map_err(|e| damaged(format!("session {}: {e}", key.value())))?;
        session.expires_in_ms = session.expires_in_ms.map(|ms| ms.saturating_sub(gone));
        session.will_due_in_ms = session.will_due_in_ms.map(|ms| ms.saturating_sub(gone));
        by_client.insert(
            key.value().to_string(),
            RecoveredSession {
                session,
                inflight_numbers: Vec::new(),
                queued_numbers: Vec::new(),
                was_connected: stored.record.connected,
            },
        );
    }

    let sent_table = tx.open_table(SENT).map_err(|e| io(e.into()))?;
    let copies = tx.open_table(COPIES).map_err(|e| io(e.into()))?;
    for row in copies.iter().map_err(|e| io(e.into()))? {
        let (key, value) = row.map_err(|e| io(e.into()))?;
        let (client, number) = key.value();
        highest = highest.max(number);
        let copy: StoredCopy =
            bincode::deserialize(value.value()).map_err(|e| damaged(format!("a message for {client}: {e}")))?;
        copy.delivery
            .message
            .check()
            .map_err(|e| damaged(format!("a message for {client}: {e}")))?;
        let Some(owner) = by_client.get_mut(client) else {
            // A copy whose session record was never committed (or was removed): nobody can receive it.
            leftovers.push((client.to_string(), number));
            continue;
        };
        let mut delivery = copy.delivery;
        let alive = age(&mut delivery.message, copy.saved_at_ms, now);
        let row = sent_table
            .get((client, number))
            .map_err(|e| io(e.into()))?
            .map(|v| v.value());
        if row.is_some() {
            sent_rows.insert(number);
        }
        match row.or(copy.sent) {
            Some((pkid, state)) => {
                if pkid == 0 || !(SENT_QOS1..=RECEIVED).contains(&state) {
                    return Err(damaged(format!("a message in flight to {client} has no valid state")));
                }
                // In flight even if expired: the client may hold half of its QoS 2 exchange.
                owner.session.inflight.push(InflightSnapshot { pkid, state, delivery });
                owner.inflight_numbers.push(number);
            }
            None if alive => {
                owner.session.queued.push(delivery);
                owner.queued_numbers.push(number);
            }
            None => {
                out.expired += 1;
                leftovers.push((client.to_string(), number));
            }
        }
    }

    let receipts = tx.open_table(RECEIPTS).map_err(|e| io(e.into()))?;
    for row in receipts.iter().map_err(|e| io(e.into()))? {
        let (key, _) = row.map_err(|e| io(e.into()))?;
        let (client, pkid) = key.value();
        if let Some(owner) = by_client.get_mut(client) {
            owner.session.awaiting_rel.push(pkid);
        }
    }

    let retained = tx.open_table(RETAINED).map_err(|e| io(e.into()))?;
    for row in retained.iter().map_err(|e| io(e.into()))? {
        let (key, value) = row.map_err(|e| io(e.into()))?;
        let stored: StoredMessage = bincode::deserialize(value.value())
            .map_err(|e| damaged(format!("retained message on {}: {e}", key.value())))?;
        let mut message = stored.message;
        message
            .check()
            .map_err(|e| damaged(format!("retained message on {}: {e}", key.value())))?;
        if age(&mut message, stored.saved_at_ms, now) {
            out.retained.push(message);
        }
    }

    let operator = tx.open_table(OPERATOR).map_err(|e| io(e.into()))?;
    for row in operator.iter().map_err(|e| io(e.into()))? {
        let (key, value) = row.map_err(|e| io(e.into()))?;
        let (space, k) = key.value();
        out.operator
            .push((space.to_string(), k.to_string(), value.value().to_vec()));
    }

    let mut sessions: Vec<_> = by_client.into_values().collect();
    sessions.sort_by(|a, b| a.session.client_id.cmp(&b.session.client_id));
    out.sessions = sessions;
    Ok((
        out,
        ForWriter {
            highest,
            leftovers,
            sent_rows,
        },
    ))
}
