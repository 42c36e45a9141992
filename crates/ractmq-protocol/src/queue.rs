//! A subscriber's queue: bounded in messages and in bytes, with the flow-control decision made at each push.
//!
//! ractor mailboxes are unbounded, so every queue a client can fill is one of these: the outgoing queue of a
//! connected subscriber and the offline queue of a persistent session. A queue is in one of two modes:
//!
//! - **Hold** (a connected subscriber that is making progress): a push past either bound is still queued, and
//!   the outcome says the queue is [`PushOutcome::Full`], so that the publisher waits for room before it reads
//!   more from its client. Nothing is dropped, whatever its QoS: a subscriber that keeps reading gets
//!   everything. What the queue holds past its bounds is what publishers sent before they were held.
//! - **Policy** (an offline session, or a subscriber found stalled): a push past a bound gets the overflow
//!   policy: drop the oldest, drop the new one, or disconnect the subscriber.
//!
//! Every drop is counted so that operators can see what was lost and why. See docs/flow-control.md.

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::OverflowPolicy;

/// What became of a push into a [`BoundedQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued within the bounds.
    Queued,
    /// Queued past a bound: the publisher should wait for room (hold mode only).
    Full,
    /// Queued after dropping the oldest entry.
    DroppedOldest,
    /// The new entry was dropped (policy `drop-newest`).
    DroppedNewest,
    /// The queue is full and the policy says the owner must be disconnected; the entry was dropped.
    MustDisconnect,
}

/// What a queue needs to know of an entry.
pub trait Queued {
    /// Bytes the entry holds, for the byte bound (an estimate: shared payloads count once per queue).
    fn queued_bytes(&self) -> usize;
}

/// How one subscriber's queue is bounded, and what happens once the subscriber is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Messages queued beyond the inflight window.
    pub max_len: usize,
    /// Bytes queued (payload, topic and a fixed overhead per message).
    pub max_bytes: usize,
    /// Applied when the subscriber is stalled (online) or offline.
    pub overflow: OverflowPolicy,
    /// A connected subscriber that takes nothing from its full queue for this long is stalled: its
    /// publishers stop waiting for it and `overflow` applies.
    pub stall_timeout: Duration,
}

/// How a [`BoundedQueue`] treats a push past its bounds (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Queue it anyway and report [`PushOutcome::Full`]: the publisher waits for room.
    Hold,
    /// Apply the overflow policy of the [`QueuePolicy`].
    Policy,
}

/// A FIFO queue bounded in entries and in bytes (see the module doc).
#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    bytes: usize,
    policy: QueuePolicy,
    mode: Mode,
    /// Entries dropped since creation.
    pub dropped: u64,
    /// Entries dropped by the overflow policy, kept for their owner when it asked (see
    /// [`keep_dropped`](Self::keep_dropped)).
    kept_dropped: Option<Vec<T>>,
}

impl<T: Queued> BoundedQueue<T> {
    /// An empty queue with these bounds, in `mode`.
    pub fn new(policy: QueuePolicy, mode: Mode) -> Self {
        BoundedQueue {
            items: VecDeque::new(),
            bytes: 0,
            policy,
            mode,
            dropped: 0,
            kept_dropped: None,
        }
    }

    /// Keep what the overflow policy drops, for [`take_dropped`](Self::take_dropped): an owner that recorded
    /// its entries elsewhere (a store) must forget them there too.
    pub fn keep_dropped(&mut self) {
        self.kept_dropped.get_or_insert_with(Vec::new);
    }

    /// The entries dropped by the overflow policy since the last call (none unless
    /// [`keep_dropped`](Self::keep_dropped) was asked for).
    pub fn take_dropped(&mut self) -> Vec<T> {
        self.kept_dropped.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn discard(&mut self, item: T) {
        if let Some(kept) = &mut self.kept_dropped {
            kept.push(item);
        }
    }

    fn discard_oldest(&mut self) {
        if let Some(item) = self.pop() {
            self.discard(item);
        }
    }

    /// The bounds in force.
    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Change the bounds and the mode (a session going offline or coming back, a subscriber found stalled or
    /// draining again). Entries above the bounds stay: new pushes overflow until the queue is back under them.
    pub fn set_policy(&mut self, policy: QueuePolicy, mode: Mode) {
        self.policy = policy;
        self.mode = mode;
    }

    /// Switch to policy mode and apply the overflow policy to what is above the bounds now (a stalled
    /// subscriber): returns how many entries were dropped, and whether the policy asks for a disconnect.
    pub fn enforce(&mut self, policy: QueuePolicy) -> (u64, bool) {
        self.policy = policy;
        self.mode = Mode::Policy;
        if !self.over_bounds() {
            return (0, false);
        }
        let mut dropped = 0;
        match self.policy.overflow {
            OverflowPolicy::DropOldest => {
                while self.over_bounds() && self.items.len() > 1 {
                    self.discard_oldest();
                    dropped += 1;
                }
            }
            OverflowPolicy::DropNewest => {
                while self.over_bounds() && self.items.len() > 1 {
                    if let Some(item) = self.items.pop_back() {
                        self.bytes -= item.queued_bytes();
                        self.discard(item);
                    }
                    dropped += 1;
                }
            }
            OverflowPolicy::Disconnect => return (0, true),
        }
        self.dropped += dropped;
        (dropped, false)
    }

    /// At or above either bound.
    pub fn is_full(&self) -> bool {
        self.items.len() >= self.policy.max_len || self.bytes >= self.policy.max_bytes
    }

    fn over_bounds(&self) -> bool {
        self.items.len() > self.policy.max_len || self.bytes > self.policy.max_bytes
    }

    /// At or below half of both bounds: publishers held for this queue may go on.
    pub fn has_room(&self) -> bool {
        self.items.len() <= self.policy.max_len / 2 && self.bytes <= self.policy.max_bytes / 2
    }

    /// Append `item` at the back, as bounds and mode decide; the outcome says what happened.
    pub fn push(&mut self, item: T) -> PushOutcome {
        let size = item.queued_bytes();
        let fits = self.items.len() < self.policy.max_len && self.bytes + size <= self.policy.max_bytes;
        // An entry larger than the whole byte bound still goes into an empty queue: it can be sent on its own.
        if fits || (self.items.is_empty() && self.policy.max_len > 0) {
            self.push_back(item, size);
            return PushOutcome::Queued;
        }
        if self.mode == Mode::Hold {
            self.push_back(item, size);
            return PushOutcome::Full;
        }
        self.dropped += 1;
        match self.policy.overflow {
            OverflowPolicy::DropOldest if self.policy.max_len > 0 => {
                self.push_back(item, size);
                while self.over_bounds() && self.items.len() > 1 {
                    self.discard_oldest();
                }
                PushOutcome::DroppedOldest
            }
            OverflowPolicy::DropOldest | OverflowPolicy::DropNewest => {
                self.discard(item);
                PushOutcome::DroppedNewest
            }
            OverflowPolicy::Disconnect => {
                self.discard(item);
                PushOutcome::MustDisconnect
            }
        }
    }

    fn push_back(&mut self, item: T, size: usize) {
        self.bytes += size;
        self.items.push_back(item);
    }

    /// Take the oldest entry.
    pub fn pop(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        self.bytes -= item.queued_bytes();
        Some(item)
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// Put an entry back at the front (it could not be sent yet).
    pub fn push_front(&mut self, item: T) {
        self.bytes += item.queued_bytes();
        self.items.push_front(item);
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Bytes queued, as the byte bound counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drop every entry (not counted in `dropped`).
    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    /// Keep only the entries for which `f` is true; returns how many were removed (not counted in
    /// `dropped`).
    pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) -> usize {
        let before = self.items.len();
        let mut bytes = 0;
        self.items.retain(|item| {
            let keep = f(item);
            if keep {
                bytes += item.queued_bytes();
            }
            keep
        });
        self.bytes = bytes;
        before - self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test entry: (id, bytes).
    #[derive(Debug, PartialEq)]
    struct E(u32, usize);

    impl Queued for E {
        fn queued_bytes(&self) -> usize {
            self.1
        }
    }

    fn policy(max_len: usize, max_bytes: usize, overflow: OverflowPolicy) -> QueuePolicy {
        QueuePolicy {
            max_len,
            max_bytes,
            overflow,
            stall_timeout: Duration::from_secs(1),
        }
    }

    fn ids(q: &mut BoundedQueue<E>) -> Vec<u32> {
        std::iter::from_fn(|| q.pop()).map(|e| e.0).collect()
    }

    #[test]
    fn hold_mode_queues_past_the_bound_and_says_full() {
        let mut q = BoundedQueue::new(policy(2, 1000, OverflowPolicy::DropOldest), Mode::Hold);
        assert_eq!(q.push(E(1, 10)), PushOutcome::Queued);
        assert_eq!(q.push(E(2, 10)), PushOutcome::Queued);
        assert!(q.is_full());
        assert_eq!(q.push(E(3, 10)), PushOutcome::Full);
        assert_eq!(q.push(E(4, 10)), PushOutcome::Full,);
        assert_eq!(q.dropped, 0);
        assert_eq!(ids(&mut q), vec![1, 2, 3, 4]);
    }

    #[test]
    fn hold_mode_holds_at_the_byte_bound_too() {
        let mut q = BoundedQueue::new(policy(100, 25, OverflowPolicy::DropOldest), Mode::Hold);
        assert_eq!(q.push(E(1, 10)), PushOutcome::Queued);
        assert_eq!(q.push(E(2, 10)), PushOutcome::Queued);
        assert_eq!(q.push(E(3, 10)), PushOutcome::Full);
        assert_eq!(q.bytes(), 30);
        assert_eq!(ids(&mut q), vec![1, 2, 3]);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn an_entry_larger_than_the_byte_bound_goes_into_an_empty_queue() {
        let mut q = BoundedQueue::new(policy(10, 5, OverflowPolicy::DropNewest), Mode::Policy);
        assert_eq!(q.push(E(1, 50)), PushOutcome::Queued);
        assert_eq!(q.push(E(2, 1)), PushOutcome::DroppedNewest);
    }

    #[test]
    fn policy_mode_drop_oldest_keeps_the_newest_entries() {
        let mut q = BoundedQueue::new(policy(2, 1000, OverflowPolicy::DropOldest), Mode::Policy);
        q.push(E(1, 1));
        q.push(E(2, 1));
        assert_eq!(q.push(E(3, 1)), PushOutcome::DroppedOldest);
        assert_eq!(ids(&mut q), vec![2, 3]);
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn policy_mode_drop_oldest_drops_as_many_as_the_byte_bound_needs() {
        let mut q = BoundedQueue::new(policy(10, 30, OverflowPolicy::DropOldest), Mode::Policy);
        q.push(E(1, 10));
        q.push(E(2, 10));
        q.push(E(3, 10));
        assert_eq!(q.push(E(4, 25)), PushOutcome::DroppedOldest);
        assert_eq!(ids(&mut q), vec![4]);
    }

    #[test]
    fn policy_mode_drop_newest_keeps_the_oldest_entries() {
        let mut q = BoundedQueue::new(policy(2, 1000, OverflowPolicy::DropNewest), Mode::Policy);
        q.push(E(1, 1));
        q.push(E(2, 1));
        assert_eq!(q.push(E(3, 1)), PushOutcome::DroppedNewest);
        assert_eq!(ids(&mut q), vec![1, 2]);
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn an_owner_that_asks_gets_back_what_the_policy_dropped() {
        let mut q = BoundedQueue::new(policy(2, 1000, OverflowPolicy::DropOldest), Mode::Policy);
        q.keep_dropped();
        for i in 1..=4 {
            q.push(E(i, 10));
        }
        assert_eq!(q.take_dropped(), vec![E(1, 10), E(2, 10)]);
        q.set_policy(policy(1, 1000, OverflowPolicy::DropNewest), Mode::Policy);
        q.enforce(policy(1, 1000, OverflowPolicy::DropNewest));
        q.push(E(5, 10));
        assert_eq!(q.take_dropped(), vec![E(4, 10), E(5, 10)]);
        assert!(q.take_dropped().is_empty());
    }

    #[test]
    fn policy_mode_disconnect_asks_for_a_disconnect() {
        let mut q = BoundedQueue::new(policy(1, 1000, OverflowPolicy::Disconnect), Mode::Policy);
        q.push(E(1, 1));
        assert_eq!(q.push(E(2, 1)), PushOutcome::MustDisconnect);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn enforcing_a_policy_on_a_held_queue_trims_it_to_the_bounds() {
        let oldest = policy(2, 1000, OverflowPolicy::DropOldest);
        let mut q = BoundedQueue::new(oldest, Mode::Hold);
        (1..=5).for_each(|i| {
            q.push(E(i, 1));
        });
        assert_eq!(q.enforce(oldest), (3, false));
        assert_eq!(q.mode(), Mode::Policy);
        assert_eq!(ids(&mut q), vec![4, 5]);

        let newest = policy(2, 1000, OverflowPolicy::DropNewest);
        let mut q = BoundedQueue::new(newest, Mode::Hold);
        (1..=5).for_each(|i| {
            q.push(E(i, 1));
        });
        assert_eq!(q.enforce(newest), (3, false));
        assert_eq!(ids(&mut q), vec![1, 2]);

        let disconnect = policy(2, 1000, OverflowPolicy::Disconnect);
        let mut q = BoundedQueue::new(disconnect, Mode::Hold);
        (1..=3).for_each(|i| {
            q.push(E(i, 1));
        });
        assert_eq!(q.enforce(disconnect), (0, true));
        assert_eq!(q.len(), 3, "the disconnect decides what happens to the queue");
    }

    #[test]
    fn room_means_half_of_both_bounds() {
        let mut q = BoundedQueue::new(policy(4, 100, OverflowPolicy::DropOldest), Mode::Hold);
        q.push(E(1, 10));
        q.push(E(2, 10));
        assert!(q.has_room());
        q.push(E(3, 10));
        assert!(!q.has_room());
        q.pop();
        q.push(E(4, 60));
        assert!(!q.has_room(), "two messages but 70 bytes");
    }

    #[test]
    fn retain_and_push_front_keep_the_byte_count() {
        let mut q = BoundedQueue::new(policy(10, 1000, OverflowPolicy::DropOldest), Mode::Hold);
        q.push(E(1, 10));
        q.push(E(2, 20));
        q.push(E(3, 30));
        assert_eq!(q.retain(|e| e.0 != 2), 1);
        assert_eq!(q.bytes(), 40);
        let first = q.pop().unwrap();
        q.push_front(first);
        assert_eq!(q.bytes(), 40);
        q.clear();
        assert_eq!(q.bytes(), 0);
    }
}
