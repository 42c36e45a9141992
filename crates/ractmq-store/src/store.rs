//! Opening a data directory, and the handle the broker writes through.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use redb::{Database, ReadableTable, ReadableTableMetadata};
use tokio::sync::Notify;

use crate::op::Op;
use crate::recovery::{recover, ForWriter, Leftovers, Recovered};
use crate::tables::*;
use crate::writer::{self, Counts, Pending, Shared};
use crate::StoreError;

/// The name of the store file in the data directory.
pub const FILE_NAME: &str = "ractmq.redb";
const LOCK_NAME: &str = "LOCK";

/// The number of a submitted op: [`Store::committed`] waits until the commit that holds it.
pub type Ticket = u64;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of ops that may wait for the writer before [`Store::is_congested`] says so (publishers then wait).
    pub pending_bound: usize,
    /// A file larger than this is compacted once what it holds is a quarter of its size or less.
    pub compact_above: u64,
    /// At most one compaction per this long.
    pub compact_every: std::time::Duration,
    /// Bytes of the file the engine caches in memory. The store is written far more than read (it is read
    /// whole once, at start), so a small cache costs little; redb's default is 1 GiB.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pending_bound: 64 << 20,
            compact_above: 64 << 20,
            compact_every: std::time::Duration::from_secs(600),
            cache_bytes: 64 << 20,
        }
    }
}

/// Sizes of the store, for `ractmq ctl data stats`, the REST API and Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The data directory.
    pub dir: PathBuf,
    /// Bytes of the store file on disk.
    pub file_bytes: u64,
    /// Persistent sessions stored.
    pub sessions: u64,
    /// Message copies stored (queued or in flight to persistent sessions).
    pub messages: u64,
    /// Retained messages stored.
    pub retained: u64,
    /// Operator records stored (users, bans).
    pub operator: u64,
    /// Commits since the store opened.
    pub commits: u64,
    /// Ops written since the store opened.
    pub ops: u64,
    /// Copies queued and completed within one commit, so never written.
    pub cancelled: u64,
    /// Ops waiting for the writer now.
    pub pending_ops: u64,
    /// Bytes of ops waiting for the writer now.
    pub pending_bytes: u64,
    /// Microseconds the last commit took (fsync included).
    pub last_commit_us: u64,
}

/// A node's store, open (see the crate doc). Cloning shares it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    dir: PathBuf,
    file: PathBuf,
    next_copy: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held for as long as the store is open: a second process on the same directory is refused.
    _lock: File,
}

impl Store {
    /// Open (or create) the store in `dir`, read back everything in it, and start the writer.
    pub fn open(dir: &Path, options: StoreOptions) -> Result<(Store, Recovered), StoreError> {
        let io = |path: &Path, e: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            error: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::InUse(dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path, e)),
        }
        let file = dir.join(FILE_NAME);
        // redb reports what it finds wrong with a file as errors; a panic on a file damaged in a way it does not
        // expect is caught too, so that no file makes the node crash instead of saying what is wrong.
        // The default hook would print the panic: the one line below says what matters.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(|| open_file(&file, options.cache_bytes));
        std::panic::set_hook(hook);
        let (db, recovered, mut for_writer, counts) = match opened {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Damaged {
                    path: file,
                    what: "the storage engine could not read it".into(),
                })
            }
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            committed: AtomicU64::new(0),
            commit_made: Notify::new(),
            room: Notify::new(),
            bound: options.pending_bound.max(1 << 20),
            failure: Mutex::new(None),
            on_failure: Mutex::new(None),
            counts,
        });
        let highest = for_writer.highest;
        let sent_rows = std::mem::take(&mut for_writer.sent_rows);
        let writer = std::thread::Builder::new()
            .name("ractmq-store".into())
            .spawn({
                let shared = shared.clone();
                let compaction = writer::Compaction {
                    file: file.clone(),
                    above: options.compact_above,
                    every: options.compact_every,
                };
                move || {
                    let run = std::panic::AssertUnwindSafe(|| writer::run(db, shared.clone(), compaction, sent_rows));
                    if std::panic::catch_unwind(run).is_err() {
                        shared.fail("the storage engine failed".into());
                    }
                }
            })
            .map_err(|e| io(dir, e))?;
        let store = Store {
            inner: Arc::new(Inner {
                shared,
                dir: dir.to_path_buf(),
                file,
                next_copy: AtomicU64::new(highest + 1),
                writer: Mutex::new(Some(writer)),
                _lock: lock,
            }),
        };
        Ok((store, recovered))
    }

    /// A number for a new message copy, unique in this store.
    pub fn next_copy(&self) -> u64 {
        self.inner.next_copy.fetch_add(1, Ordering::Relaxed)
    }

    /// Hand `op` to the writer; never waits. Ops are applied in the order they are submitted.
    pub fn submit(&self, op: Op) -> Ticket {
        let size = op.size();
        let mut pending = self.inner.shared.pending.lock();
        pending.ops.push(op);
        pending.bytes += size;
        pending.submitted += 1;
        let ticket = pending.submitted;
        if pending.ops.len() == 1 {
            self.inner.shared.work.notify_one();
        }
        ticket
    }

    /// [`submit`](Self::submit) each of `ops`, in order; the ticket of the last, if any.
    pub fn submit_all(&self, ops: impl IntoIterator<Item = Op>) -> Option<Ticket> {
        let mut pending = self.inner.shared.pending.lock();
        let was_empty = pending.ops.is_empty();
        let before = pending.submitted;
        for op in ops {
            pending.bytes += op.size();
            pending.ops.push(op);
            pending.submitted += 1;
        }
        if was_empty && !pending.ops.is_empty() {
            self.inner.shared.work.notify_one();
        }
        (pending.submitted > before).then_some(pending.submitted)
    }

    /// Open a group: the ops submitted from now until the group is dropped are committed together, in one
    /// commit, or not at all (a kill -9 between two commits cannot keep some of them). Ops submitted by others
    /// meanwhile wait with them. Hold a group only across a few submissions, never across an `.await`: the
    /// writer commits nothing submitted after the group's start while it is open.
    pub fn group(&self) -> Group {
        let mut pending = self.inner.shared.pending.lock();
        let start = pending.submitted + 1;
        pending.open_groups.push(start);
        Group {
            shared: self.inner.shared.clone(),
            start,
        }
    }

    /// The op with `ticket` is committed.
    pub fn is_committed(&self, ticket: Ticket) -> bool {
        self.inner.shared.committed.load(Ordering::Acquire) >= ticket
    }

    /// Wait until the op with `ticket` (and every op before it) is committed. Fails if the writer failed: the
    /// op will never be committed.
    pub async fn committed(&self, ticket: Ticket) -> Result<(), StoreError> {
        let shared = &self.inner.shared;
        loop {
            let made = shared.commit_made.notified();
            tokio::pin!(made);
            made.as_mut().enable();
            if self.is_committed(ticket) {
                return Ok(());
            }
            if let Some(why) = shared.failure.lock().clone() {
                return Err(StoreError::WriteFailed(why));
            }
            made.await;
        }
    }

    /// Wait until everything submitted so far is committed: what an operator's "done" waits for.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.inner.shared.pending.lock().submitted;
        self.committed(ticket).await
    }

    /// More ops wait for the writer than its bound: whoever adds to them should wait for [`room`](Self::room).
    pub fn is_congested(&self) -> bool {
        self.inner.shared.pending.lock().bytes > self.inner.shared.bound
    }

    /// Notified when the ops waiting for the writer drop under half the bound.
    pub fn room(&self) -> &Notify {
        &self.inner.shared.room
    }

    /// Call `callback` with the reason if a commit fails (the broker stops; see [`StoreError::WriteFailed`]).
    pub fn on_failure(&self, callback: impl Fn(&str) + Send + Sync + 'static) {
        *self.inner.shared.on_failure.lock() = Some(Box::new(callback));
    }

    /// Why the writer stopped, if a commit failed.
    pub fn failure(&self) -> Option<String> {
        self.inner.shared.failure.lock().clone()
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Sizes and totals now.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.shared.counts;
        let (pending_ops, pending_bytes) = {
            let p = self.inner.shared.pending.lock();
            (p.ops.len() as u64, p.bytes as u64)
        };
        StoreStats {
            dir: self.inner.dir.clone(),
            file_bytes: std::fs::metadata(&self.inner.file).map_or(0, |m| m.len()),
            sessions: c.sessions.load(Ordering::Relaxed),
            messages: c.copies.load(Ordering::Relaxed),
            retained: c.retained.load(Ordering::Relaxed),
            operator: c.operator.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            pending_ops,
            pending_bytes,
            last_commit_us: c.last_commit_us.load(Ordering::Relaxed),
        }
    }

    /// Commit what is pending and stop the writer; later ops are not written. Called on shutdown, so that a
    /// stopped node's store holds everything it acknowledged (a killed one's holds it too, by the commits).
    pub fn close(&self) {
        self.inner.shared.pending.lock().closing = true;
        self.inner.shared.work.notify_one();
        if let Some(writer) = self.inner.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

/// Ops committed together (see [`Store::group`]); the group closes when this is dropped.
#[must_use = "the group closes when this is dropped"]
pub struct Group {
    shared: Arc<Shared>,
    start: Ticket,
}

impl Drop for Group {
    fn drop(&mut self) {
        let mut pending = self.shared.pending.lock();
        if let Some(at) = pending.open_groups.iter().position(|s| *s == self.start) {
            pending.open_groups.swap_remove(at);
        }
        drop(pending);
        self.shared.work.notify_one();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.pending.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(writer) = self.writer.get_mut().take() {
            let _ = writer.join();
        }
    }
}

/// Open the file, check its format, read it back and forget what recovery left over.
fn open_file(file: &Path, cache_bytes: usize) -> Result<(Database, Recovered, ForWriter, Counts), StoreError> {
    let damaged = |what: String| StoreError::Damaged {
        path: file.to_path_buf(),
        what,
    };
    let db = Database::builder()
        .set_cache_size(cache_bytes)
        .create(file)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(file.parent().unwrap_or(file).to_path_buf()),
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                damaged(io.to_string())
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::Io {
                path: file.to_path_buf(),
                error: io.to_string(),
            },
            other => damaged(other.to_string()),
        })?;
    check_format(&db, file)?;
    let (recovered, mut for_writer) = recover(&db, file)?;
    forget(&db, std::mem::take(&mut for_writer.leftovers)).map_err(damaged)?;
    let counts = count(&db).map_err(damaged)?;
    Ok((db, recovered, for_writer, counts))
}

/// A new file gets this version's format; an older one would be migrated here; a newer one is refused.
fn check_format(db: &Database, file: &Path) -> Result<(), StoreError> {
    let damaged = |what: String| StoreError::Damaged {
        path: file.to_path_buf(),
        what,
    };
    let tx = db.begin_write().map_err(|e| damaged(e.to_string()))?;
    {
        let mut meta = tx.open_table(META).map_err(|e| damaged(e.to_string()))?;
        let found = meta
            .get("format")
            .map_err(|e| damaged(e.to_string()))?
            .map(|v| v.value());
        match found {
            Some(FORMAT) => {}
            Some(newer) if newer > FORMAT => {
                return Err(StoreError::NewerFormat {
                    path: file.to_path_buf(),
                    found: newer,
                })
            }
            Some(older) => return Err(damaged(format!("unknown store format {older}"))),
            None => {
                meta.insert("format", FORMAT).map_err(|e| damaged(e.to_string()))?;
            }
        }
        // Every table exists from the start, so that readers never find one missing.
        tx.open_table(SESSIONS).map_err(|e| damaged(e.to_string()))?;
        tx.open_table(COPIES).map_err(|e| damaged(e.to_string()))?;
        tx.open_table(SENT).map_err(|e| damaged(e.to_string()))?;
        tx.open_table(RECEIPTS).map_err(|e| damaged(e.to_string()))?;
        tx.open_table(RETAINED).map_err(|e| damaged(e.to_string()))?;
        tx.open_table(OPERATOR).map_err(|e| damaged(e.to_string()))?;
    }
    tx.commit().map_err(|e| damaged(e.to_string()))
}

fn forget(db: &Database, leftovers: Leftovers) -> Result<(), String> {
    if leftovers.is_empty() {
        return Ok(());
    }
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut copies = tx.open_table(COPIES).map_err(|e| e.to_string())?;
        for (client, number) in &leftovers {
            copies.remove((client.as_str(), *number)).map_err(|e| e.to_string())?;
        }
    }
    tx.commit().map_err(|e| e.to_string())
}

fn count(db: &Database) -> Result<Counts, String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    let counts = Counts::default();
    let len = |n: Result<u64, redb::StorageError>| n.map_err(|e| e.to_string());
    counts.sessions.store(
        len(tx.open_table(SESSIONS).map_err(|e| e.to_string())?.len())?,
        Ordering::Relaxed,
    );
    counts.copies.store(
        len(tx.open_table(COPIES).map_err(|e| e.to_string())?.len())?,
        Ordering::Relaxed,
    );
    counts.retained.store(
        len(tx.open_table(RETAINED).map_err(|e| e.to_string())?.len())?,
        Ordering::Relaxed,
    );
    counts.operator.store(
        len(tx.open_table(OPERATOR).map_err(|e| e.to_string())?.len())?,
        Ordering::Relaxed,
    );
    tx.abort().map_err(|e| e.to_string())?;
    Ok(counts)
}
