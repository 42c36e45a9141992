//! Backpressure: what a publisher waits for before it reads more from its client.
//!
//! Every queue between a publisher and a consumer that is making progress holds the publisher instead of
//! dropping: a connected subscriber's queue (`session_store.rs`) and the queue towards another node
//! (`ractmq_cluster::link`). Both are a [`Backlog`]. Routing a message reports the backlogs it filled past their
//! bounds; the publisher then waits, with [`wait_for_room`], until each has drained to half, or until its
//! consumer has made no progress at all for its stall timeout: the consumer is then stalled, its own overflow
//! policy applies, and the publisher goes on. See docs/flow-control.md.

use std::sync::Arc;
use std::time::Duration;

use ractmq_store::{Store, Ticket};
use tokio::sync::Notify;

/// A bounded queue that may hold publishers.
pub trait Backlog: Send + Sync {
    /// Above its bound, with a consumer that is not stalled: a publisher should wait. Asked by a publisher
    /// about to wait, after registering on [`room`](Self::room): a true answer promises a notification.
    fn is_congested(&self) -> bool;
    /// Notified when the queue has drained to half its bounds (or its consumer was found stalled).
    fn room(&self) -> &Notify;
    /// A count that moves whenever the consumer takes something from the queue.
    fn progress(&self) -> u64;
    /// How long a consumer may make no progress before it counts as stalled.
    fn stall_timeout(&self) -> Duration;
    /// The consumer made no progress for the stall timeout: stop holding publishers, apply the overflow policy.
    fn stalled(&self);
}

/// The backlogs one batch of publishes filled past their bounds, and the store commit its acknowledgements
/// wait for (copies for persistent sessions, retained messages: see `durable.rs`); empty on the fast path.
#[derive(Default)]
pub struct Congestion(Vec<Arc<dyn Backlog>>, Option<(Store, Ticket)>);

impl Congestion {
    /// The acknowledgements wait until `ticket` is committed in `disk` (and, while the store's own queue is
    /// past its bound, until it has room).
    pub(crate) fn commit(&mut self, disk: &Store, ticket: Ticket) {
        match &mut self.1 {
            Some((_, t)) => *t = (*t).max(ticket),
            None => {
                self.1 = Some((disk.clone(), ticket));
                if disk.is_congested() {
                    self.add(Arc::new(DiskBacklog(disk.clone())));
                }
            }
        }
    }

    pub(crate) fn add(&mut self, backlog: Arc<dyn Backlog>) {
        // A message that reaches many subscribers reports each; a batch reports the same one many times.
        if !self.0.iter().any(|b| Arc::ptr_eq(b, &backlog)) {
            self.0.push(backlog);
        }
    }

    /// Some queue was filled past its bound: the publisher must be held.
    pub fn has_backlogs(&self) -> bool {
        !self.0.is_empty()
    }

    /// The commit the acknowledgements wait for, unless it is made already.
    pub(crate) fn uncommitted(&self) -> Option<Ticket> {
        self.1
            .as_ref()
            .filter(|(disk, t)| !disk.is_committed(*t))
            .map(|(_, t)| *t)
    }

    /// True when no backlog was filled and no commit is awaited: there is nothing to wait for.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.as_ref().is_none_or(|(disk, t)| disk.is_committed(*t))
    }

    /// Wait until every backlog has room or has been found stalled, and the commit is made. A commit that
    /// can never be made (the store failed, and the node stops) is waited for forever: nothing is acknowledged
    /// that was not stored.
    pub async fn wait(self) {
        for backlog in self.0 {
            wait_for_room(&*backlog).await;
        }
        if let Some((disk, ticket)) = self.1 {
            if disk.committed(ticket).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Wait until `backlog` has room, or mark its consumer stalled once it has made no progress for its stall
/// timeout. A consumer that is slow but moving holds the publisher as long as it takes.
pub async fn wait_for_room(backlog: &dyn Backlog) {
    let timeout = backlog.stall_timeout();
    let mut progress = backlog.progress();
    loop {
        // Registered before looking, so that room made between the look and the wait is not missed.
        let room = backlog.room().notified();
        tokio::pin!(room);
        room.as_mut().enable();
        if !backlog.is_congested() {
            return;
        }
        if tokio::time::timeout(timeout, room).await.is_err() {
            let now = backlog.progress();
            if now != progress {
                progress = now;
                continue;
            }
            if backlog.is_congested() {
                backlog.stalled();
            }
            return;
        }
    }
}

/// The store's queue of ops past its bound holds publishers like a full subscriber queue does (see `flow.rs`).
pub(crate) struct DiskBacklog(pub Store);

impl Backlog for DiskBacklog {
    fn is_congested(&self) -> bool {
        self.0.is_congested()
    }
    fn room(&self) -> &Notify {
        self.0.room()
    }
    fn progress(&self) -> u64 {
        self.0.stats().commits
    }
    fn stall_timeout(&self) -> Duration {
        // A disk that commits nothing for this long is failing; the writer says so when it does.
        Duration::from_secs(60)
    }
    fn stalled(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    struct Fake {
        congested: AtomicBool,
        stalls: AtomicUsize,
        progress: AtomicUsize,
        room: Notify,
    }

    impl Backlog for Fake {
        fn is_congested(&self) -> bool {
            self.congested.load(Ordering::SeqCst)
        }
        fn room(&self) -> &Notify {
            &self.room
        }
        fn progress(&self) -> u64 {
            self.progress.load(Ordering::SeqCst) as u64
        }
        fn stall_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn stalled(&self) {
            self.stalls.fetch_add(1, Ordering::SeqCst);
            self.congested.store(false, Ordering::SeqCst);
        }
    }

    fn fake(congested: bool) -> Arc<Fake> {
        Arc::new(Fake {
            congested: AtomicBool::new(congested),
            stalls: AtomicUsize::new(0),
            progress: AtomicUsize::new(0),
            room: Notify::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_waits_until_room_is_made() {
        let backlog = fake(true);
        let waiter = tokio::spawn({
            let b = backlog.clone();
            async move { wait_for_room(&*b).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        backlog.congested.store(false, Ordering::SeqCst);
        backlog.room.notify_waiters();
        waiter.await.unwrap();
        assert_eq!(backlog.stalls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_consumer_that_keeps_taking_holds_the_publisher_as_long_as_it_takes() {
        let backlog = fake(true);
        let waiter = tokio::spawn({
            let b = backlog.clone();
            async move { wait_for_room(&*b).await }
        });
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            backlog.progress.fetch_add(1, Ordering::SeqCst);
        }
        assert!(!waiter.is_finished(), "40 s, progress every 4 s: still waiting");
        backlog.congested.store(false, Ordering::SeqCst);
        backlog.room.notify_waiters();
        waiter.await.unwrap();
        assert_eq!(backlog.stalls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_makes_no_progress_within_the_timeout_is_stalled() {
        let backlog = fake(true);
        let started = tokio::time::Instant::now();
        wait_for_room(&*backlog).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(backlog.stalls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn room_that_fills_again_restarts_the_wait() {
        let backlog = fake(true);
        let waiter = tokio::spawn({
            let b = backlog.clone();
            async move { wait_for_room(&*b).await }
        });
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Room was made, and taken again by another publisher before this one looked.
        backlog.room.notify_waiters();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!waiter.is_finished(), "the timeout counts from the last room made");
        tokio::time::sleep(Duration::from_secs(2)).await;
        waiter.await.unwrap();
        assert_eq!(backlog.stalls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn congestion_lists_each_backlog_once() {
        let a = fake(false);
        let mut c = Congestion::default();
        c.add(a.clone());
        c.add(a.clone());
        assert_eq!(c.0.len(), 1);
        c.wait().await;
    }
}
