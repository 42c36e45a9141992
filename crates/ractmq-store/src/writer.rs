//! The writer thread: takes every op submitted since its last commit, applies them in one transaction, commits
//! (one fsync for the lot), and then lets everyone waiting on those ops go.
//!
//! Grouping is what keeps a durable broker fast: while one commit is on its way to the disk, the next batch
//! gathers. A copy that is queued and acknowledged within one batch (a subscriber keeping up) is never written
//! at all: its op and its `Done` cancel out.

use std::collections::{HashMap, HashSet};

use foldhash::fast::FixedState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use ractmq_protocol::snapshot::MessageSnapshot;
use ractmq_protocol::Journal;
use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::Notify;

use crate::op::Op;
use crate::records::{encode, now_ms, CopyRef, DeliveryRef, StoredCopy, StoredMessage, StoredSession};
use crate::tables::*;

/// Ops waiting for the writer.
#[derive(Default)]
pub(crate) struct Pending {
    pub ops: Vec<Op>,
    /// Ops submitted since the store opened: the ticket of the last one.
    pub submitted: u64,
    pub bytes: usize,
    pub closing: bool,
    /// The first ticket of each [`Group`](crate::Group) still open: the writer takes no op from the earliest
    /// on, so that a group's ops land in one commit or in none.
    pub open_groups: Vec<u64>,
}

impl Pending {
    /// How many of the waiting ops the writer may take now: all of them, or those before the earliest open
    /// group (all of them once the store closes).
    fn takeable(&self) -> usize {
        let first = self.submitted + 1 - self.ops.len() as u64;
        match self.open_groups.iter().min() {
            Some(start) if !self.closing => (start.saturating_sub(first) as usize).min(self.ops.len()),
            _ => self.ops.len(),
        }
    }
}

/// Called with the reason when a commit fails.
pub(crate) type FailureCallback = Box<dyn Fn(&str) + Send + Sync>;

/// What the writer and the handles share.
pub(crate) struct Shared {
    pub pending: Mutex<Pending>,
    pub work: Condvar,
    /// The ticket of the last op committed.
    pub committed: AtomicU64,
    pub commit_made: Notify,
    /// Pending bytes dropped back under half the bound.
    pub room: Notify,
    pub bound: usize,
    pub failure: Mutex<Option<String>>,
    pub on_failure: Mutex<Option<FailureCallback>>,
    pub counts: Counts,
}

/// Sizes and totals, for operators.
#[derive(Default)]
pub(crate) struct Counts {
    pub sessions: AtomicU64,
    pub copies: AtomicU64,
    pub retained: AtomicU64,
    pub operator: AtomicU64,
    pub commits: AtomicU64,
    pub ops: AtomicU64,
    pub cancelled: AtomicU64,
    pub last_commit_us: AtomicU64,
}

impl Shared {
    pub(crate) fn fail(&self, why: String) {
        tracing::error!("{}", crate::StoreError::WriteFailed(why.clone()));
        *self.failure.lock() = Some(why.clone());
        if let Some(callback) = self.on_failure.lock().as_ref() {
            callback(&why);
        }
        self.commit_made.notify_waiters();
    }
}

/// When the file is worth shrinking (see [`maybe_compact`]).
pub(crate) struct Compaction {
    pub file: std::path::PathBuf,
    /// Files smaller than this are left as they are.
    pub above: u64,
    /// At most one compaction per this long.
    pub every: std::time::Duration,
}

/// `sent_rows`: the copies whose send state is a row of the `sent` table (the rest keep it in their own
/// record, or were never sent), so that completing a copy looks for a row only where there is one.
pub(crate) fn run(mut db: Database, shared: Arc<Shared>, compaction: Compaction, mut sent_rows: Numbers) {
    let mut compacted = Instant::now();
    loop {
        let (ops, upto, bytes) = {
            let mut pending = shared.pending.lock();
            while pending.takeable() == 0 && !pending.closing {
                shared.work.wait(&mut pending);
            }
            if pending.ops.is_empty() {
                return;
            }
            let take = pending.takeable();
            if take == pending.ops.len() {
                (
                    std::mem::take(&mut pending.ops),
                    pending.submitted,
                    std::mem::take(&mut pending.bytes),
                )
            } else {
                let ops: Vec<Op> = pending.ops.drain(..take).collect();
                let bytes = ops.iter().map(Op::size).sum::<usize>();
                pending.bytes = pending.bytes.saturating_sub(bytes);
                (ops, pending.submitted - pending.ops.len() as u64, bytes)
            }
        };
        let started = Instant::now();
        let count = ops.len() as u64;
        if let Err(why) = commit(&db, ops, &shared.counts, &mut sent_rows) {
            shared.fail(why);
            return;
        }
        let counts = &shared.counts;
        counts.commits.fetch_add(1, Ordering::Relaxed);
        counts.ops.fetch_add(count, Ordering::Relaxed);
        counts
            .last_commit_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        shared.committed.store(upto, Ordering::Release);
        shared.commit_made.notify_waiters();
        // Ops submitted during the commit count against the bound until the next one.
        let left = shared.pending.lock().bytes;
        if left <= shared.bound / 2 && bytes + left > shared.bound / 2 {
            shared.room.notify_waiters();
        }
        if compacted.elapsed() >= compaction.every && maybe_compact(&mut db, &shared.counts, &compaction) {
            compacted = Instant::now();
        }
    }
}

/// Bytes a stored copy takes in the file, near enough to tell a file mostly free from one mostly used.
const COPY_BYTES: u64 = 1024;

/// Shrink the file once what it holds is a quarter of its size or less (queues drained, sessions ended): redb
/// reuses freed pages but gives none back to the disk by itself. Compaction blocks the writer while it runs,
/// so it runs at most once per `every`, and only when it frees most of the file.
fn maybe_compact(db: &mut Database, counts: &Counts, compaction: &Compaction) -> bool {
    let Ok(size) = std::fs::metadata(&compaction.file).map(|m| m.len()) else {
        return false;
    };
    let live = counts.copies.load(Ordering::Relaxed) * COPY_BYTES;
    if size <= compaction.above || live.saturating_mul(4) >= size {
        return false;
    }
    let started = Instant::now();
    match db.compact(redb::CompactionMode::Balanced) {
        Ok(_) => {
            let after = std::fs::metadata(&compaction.file).map_or(0, |m| m.len());
            tracing::info!(
                before = size,
                after,
                took_ms = started.elapsed().as_millis() as u64,
                "data dir compacted"
            );
        }
        Err(e) => tracing::warn!("data dir: compaction failed ({e}); the store goes on at its present size"),
    }
    true
}

fn commit(db: &Database, ops: Vec<Op>, counts: &Counts, sent_rows: &mut Numbers) -> Result<(), String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    apply(&tx, ops, counts, sent_rows).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

/// What one batch says about the copies it writes: those queued and done within it (neither op needs
/// writing), and the send state of those sent within it (written with the copy rather than on their own).
#[derive(Default)]
struct BatchCopies {
    cancelled: Numbers,
    sent: HashMap<u64, (u16, u8), FixedState>,
}

/// A set of copy numbers.
pub(crate) type Numbers = HashSet<u64, FixedState>;

fn batch_copies(ops: &[Op]) -> BatchCopies {
    let mut queued = Numbers::default();
    let mut batch = BatchCopies::default();
    for op in ops {
        match op {
            Op::Copy { stored, .. } => {
                queued.insert(*stored);
            }
            Op::Journal { entry, .. } => match *entry {
                Journal::Done { stored } if queued.contains(&stored) => {
                    batch.cancelled.insert(stored);
                    batch.sent.remove(&stored);
                }
                Journal::Sent {
                    stored,
                    pkid,
                    exactly_once,
                } if queued.contains(&stored) => {
                    batch
                        .sent
                        .insert(stored, (pkid, if exactly_once { SENT_QOS2 } else { SENT_QOS1 }));
                }
                Journal::Received { stored } => {
                    if let Some(state) = batch.sent.get_mut(&stored) {
                        state.1 = RECEIVED;
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    batch
}

fn apply(tx: &WriteTransaction, ops: Vec<Op>, counts: &Counts, sent_rows: &mut Numbers) -> Result<(), redb::Error> {
    let batch = batch_copies(&ops);
    let skip = &batch.cancelled;
    counts.cancelled.fetch_add(skip.len() as u64, Ordering::Relaxed);
    let now = Instant::now();
    let saved_at_ms = now_ms();
    let mut sessions = tx.open_table(SESSIONS)?;
    let mut copies = tx.open_table(COPIES)?;
    let mut sent = tx.open_table(SENT)?;
    let mut receipts = tx.open_table(RECEIPTS)?;
    let mut retained = tx.open_table(RETAINED)?;
    let mut operator = tx.open_table(OPERATOR)?;
    for op in ops {
        match op {
            Op::Session { client, record } => {
                let stored = StoredSession {
                    saved_at_ms,
                    record: *record,
                };
                if sessions.insert(&*client, encode(&stored).as_slice())?.is_none() {
                    counts.sessions.fetch_add(1, Ordering::Relaxed);
                }
            }
            Op::EndSession { client } => {
                if sessions.remove(&*client)?.is_some() {
                    counts.sessions.fetch_sub(1, Ordering::Relaxed);
                }
                let mut removed = 0;
                copies.retain_in((&*client, 0)..=(&*client, u64::MAX), |_, _| {
                    removed += 1;
                    false
                })?;
                counts.copies.fetch_sub(removed, Ordering::Relaxed);
                sent.retain_in((&*client, 0)..=(&*client, u64::MAX), |(_, stored), _| {
                    sent_rows.remove(&stored);
                    false
                })?;
                receipts.retain_in((&*client, 0)..=(&*client, u16::MAX), |_, _| false)?;
            }
            Op::Copy {
                client,
                stored,
                delivery,
            } => {
                if skip.contains(&stored) {
                    continue;
                }
                let copy = CopyRef {
                    saved_at_ms,
                    delivery: DeliveryRef::new(&delivery, now),
                    sent: batch.sent.get(&stored).copied(),
                };
                if copies.insert((&*client, stored), encode(&copy).as_slice())?.is_none() {
                    counts.copies.fetch_add(1, Ordering::Relaxed);
                }
            }
            Op::Journal { client, entry } => match entry {
                Journal::Sent {
                    stored,
                    pkid,
                    exactly_once,
                } if !skip.contains(&stored) && !batch.sent.contains_key(&stored) => {
                    let state = if exactly_once { SENT_QOS2 } else { SENT_QOS1 };
                    sent.insert((&*client, stored), (pkid, state))?;
                    sent_rows.insert(stored);
                }
                Journal::Received { stored } if !skip.contains(&stored) && !batch.sent.contains_key(&stored) => {
                    let row = sent.get((&*client, stored))?.map(|v| v.value());
                    let pkid = match row {
                        Some((pkid, _)) => Some(pkid),
                        // Sent in the commit that wrote the copy: its state is in the copy.
                        None => copies
                            .get((&*client, stored))?
                            .and_then(|v| bincode::deserialize::<StoredCopy>(v.value()).ok())
                            .and_then(|c| c.sent)
                            .map(|(pkid, _)| pkid),
                    };
                    if let Some(pkid) = pkid {
                        sent.insert((&*client, stored), (pkid, RECEIVED))?;
                        sent_rows.insert(stored);
                    }
                }
                Journal::Done { stored } if !skip.contains(&stored) => {
                    if copies.remove((&*client, stored))?.is_some() {
                        counts.copies.fetch_sub(1, Ordering::Relaxed);
                    }
                    if sent_rows.remove(&stored) {
                        sent.remove((&*client, stored))?;
                    }
                }
                Journal::AwaitingRelease { pkid } => {
                    receipts.insert((&*client, pkid), ())?;
                }
                Journal::Released { pkid } => {
                    receipts.remove((&*client, pkid))?;
                }
                _ => {}
            },
            Op::Retain { message } => {
                let stored = StoredMessage {
                    saved_at_ms,
                    message: MessageSnapshot::from_message(&message, now),
                };
                if retained.insert(&*message.topic, encode(&stored).as_slice())?.is_none() {
                    counts.retained.fetch_add(1, Ordering::Relaxed);
                }
            }
            Op::Unretain { topic } => {
                if retained.remove(&*topic)?.is_some() {
                    counts.retained.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Op::Put { space, key, value } => {
                if operator.insert((space, key.as_str()), value.as_slice())?.is_none() {
                    counts.operator.fetch_add(1, Ordering::Relaxed);
                }
            }
            Op::Delete { space, key } => {
                if operator.remove((space, key.as_str()))?.is_some() {
                    counts.operator.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
    Ok(())
}
