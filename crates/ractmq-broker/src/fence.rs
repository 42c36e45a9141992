//! Subscriptions take effect in the order the node read them: a PUBLISH read after a SUBSCRIBE (from any
//! client of this node) is routed only once that subscription is in the index.
//!
//! Without this, a SUBSCRIBE could wait in a session that is waking from hibernation while another client's
//! PUBLISH, read later, is routed at once and misses it; Mosquitto, which reads and handles packets in one
//! thread, never does that. Readers number the batches they read with [`Fences::mark`]; a batch holding a
//! SUBSCRIBE or UNSUBSCRIBE also takes a [`FenceGuard`], which its session drops once the index has the change.
//! A session routes a batch only when no guard older than the batch's mark is left ([`Fences::clear_before`]).
//! The fast path, no subscription changing anywhere, is two atomic loads per batch.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

pub struct Fences {
    next: AtomicU64,
    outstanding: Mutex<BTreeSet<u64>>,
    count: AtomicUsize,
    done: Notify,
    /// When the last subscription change was read, in milliseconds since `epoch`.
    last_change_ms: AtomicU64,
    epoch: Instant,
}

/// How long after a subscription change readers take care to keep it ahead of publishes read with it.
const RECENT: Duration = Duration::from_secs(1);

impl Default for Fences {
    fn default() -> Self {
        Fences {
            next: AtomicU64::new(0),
            outstanding: Mutex::default(),
            count: AtomicUsize::new(0),
            done: Notify::new(),
            last_change_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// A subscription change read and not yet in the index; dropping it lets later publishes through.
pub struct FenceGuard {
    ticket: u64,
    fences: Arc<Fences>,
}

impl Fences {
    /// The mark of a batch read now: the subscription changes read before it have tickets below this.
    pub fn mark(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// A subscription change was read: publishes read from now on wait until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> FenceGuard {
        let mut outstanding = self.outstanding.lock();
        // Counted before the ticket is taken: whoever sees the ticket's mark sees the count, then waits on the
        // lock held here until the ticket is listed.
        self.count.fetch_add(1, Ordering::AcqRel);
        let ticket = self.next.fetch_add(1, Ordering::AcqRel);
        outstanding.insert(ticket);
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_change_ms.store(ms.max(1), Ordering::Relaxed);
        FenceGuard {
            ticket,
            fences: self.clone(),
        }
    }

    /// A subscription change was read less than a second before `now`.
    pub fn changed_recently(&self, now: Instant) -> bool {
        let last = self.last_change_ms.load(Ordering::Relaxed);
        last != 0 && now.saturating_duration_since(self.epoch).as_millis() as u64 <= last + RECENT.as_millis() as u64
    }

    /// Every subscription change read before `mark` is in the index.
    pub fn clear_before(&self, mark: u64) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return true;
        }
        self.outstanding.lock().first().is_none_or(|&oldest| oldest >= mark)
    }

    /// Wait until [`clear_before`](Self::clear_before) `mark`.
    pub async fn wait_before(&self, mark: u64) {
        loop {
            // Registered before looking, so that a guard dropped in between is not missed.
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.clear_before(mark) {
                return;
            }
            done.await;
        }
    }
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        self.fences.outstanding.lock().remove(&self.ticket);
        self.fences.count.fetch_sub(1, Ordering::AcqRel);
        self.fences.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_waits_only_for_changes_read_before_it() {
        let fences = Arc::new(Fences::default());
        let before = fences.mark();
        let guard = fences.begin();
        let after = fences.mark();
        assert!(fences.clear_before(before), "read before the change: not held");
        assert!(!fences.clear_before(after), "read after the change: held");
        drop(guard);
        assert!(fences.clear_before(after));
    }

    #[test]
    fn changes_applied_out_of_order_release_in_order() {
        let fences = Arc::new(Fences::default());
        let first = fences.begin();
        let mark_between = fences.mark();
        let second = fences.begin();
        let mark_after = fences.mark();
        drop(second);
        assert!(!fences.clear_before(mark_between), "the first change is still out");
        drop(first);
        assert!(fences.clear_before(mark_between) && fences.clear_before(mark_after));
    }

    #[test]
    fn readers_take_care_for_a_second_after_a_change() {
        let fences = Arc::new(Fences::default());
        let now = Instant::now();
        assert!(!fences.changed_recently(now), "no change yet");
        drop(fences.begin());
        assert!(fences.changed_recently(Instant::now()));
        assert!(!fences.changed_recently(Instant::now() + 2 * RECENT));
    }

    #[tokio::test]
    async fn a_waiting_batch_goes_on_when_the_guard_is_dropped() {
        let fences = Arc::new(Fences::default());
        let guard = fences.begin();
        let mark = fences.mark();
        let waiter = tokio::spawn({
            let fences = fences.clone();
            async move { fences.wait_before(mark).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.await.unwrap();
    }
}
