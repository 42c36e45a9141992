//! A bounded FIFO with an overflow policy and drop counters.
//!
//! ractor mailboxes are unbounded, so every queue a client can fill is one of these: the outgoing queue of a
//! connected subscriber and the offline queue of a persistent session. Each drop is counted so that operators
//! can see what was lost and why.

use std::collections::VecDeque;

use crate::config::OverflowPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Queued after dropping the oldest entry.
    DroppedOldest,
    /// The new entry was dropped.
    DroppedNewest,
    /// The queue is full and the policy says the owner must be disconnected; the entry was dropped.
    MustDisconnect,
}

#[derive(Debug)]
pub struct BoundedQueue<T> {
    items: VecDeque<T>,
    capacity: usize,
    policy: OverflowPolicy,
    /// Entries dropped since creation.
    pub dropped: u64,
}

impl<T> BoundedQueue<T> {
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        BoundedQueue {
            items: VecDeque::new(),
            capacity,
            policy,
            dropped: 0,
        }
    }

    /// Change the bound and policy (a session going offline or coming back). Excess entries are dropped from
    /// the front and counted.
    pub fn set_limits(&mut self, capacity: usize, policy: OverflowPolicy) -> u64 {
        self.capacity = capacity;
        self.policy = policy;
        let mut dropped = 0;
        while self.items.len() > capacity {
            self.items.pop_front();
            dropped += 1;
        }
        self.dropped += dropped;
        dropped
    }

    /// Change the bound and policy without dropping anything: entries above the new bound stay, and new
    /// pushes overflow until the queue is back under it (a session coming online keeps its offline queue).
    pub fn set_limits_keep(&mut self, capacity: usize, policy: OverflowPolicy) {
        self.capacity = capacity;
        self.policy = policy;
    }

    pub fn push(&mut self, item: T) -> PushOutcome {
        if self.items.len() < self.capacity {
            self.items.push_back(item);
            return PushOutcome::Queued;
        }
        self.dropped += 1;
        match self.policy {
            OverflowPolicy::DropOldest if self.capacity > 0 => {
                self.items.pop_front();
                self.items.push_back(item);
                PushOutcome::DroppedOldest
            }
            OverflowPolicy::DropOldest | OverflowPolicy::DropNewest => PushOutcome::DroppedNewest,
            OverflowPolicy::Disconnect => PushOutcome::MustDisconnect,
        }
    }

    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Put an entry back at the front (it could not be sent yet).
    pub fn push_front(&mut self, item: T) {
        self.items.push_front(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn retain(&mut self, f: impl FnMut(&T) -> bool) -> usize {
        let before = self.items.len();
        self.items.retain(f);
        before - self.items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_oldest_keeps_the_newest_entries() {
        let mut q = BoundedQueue::new(2, OverflowPolicy::DropOldest);
        assert_eq!(q.push(1), PushOutcome::Queued);
        assert_eq!(q.push(2), PushOutcome::Queued);
        assert_eq!(q.push(3), PushOutcome::DroppedOldest);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(2), Some(3), None));
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn drop_newest_keeps_the_oldest_entries() {
        let mut q = BoundedQueue::new(2, OverflowPolicy::DropNewest);
        q.push(1);
        q.push(2);
        assert_eq!(q.push(3), PushOutcome::DroppedNewest);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(2), None));
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn disconnect_policy_asks_for_a_disconnect() {
        let mut q = BoundedQueue::new(1, OverflowPolicy::Disconnect);
        q.push(1);
        assert_eq!(q.push(2), PushOutcome::MustDisconnect);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn shrinking_drops_from_the_front_and_counts() {
        let mut q = BoundedQueue::new(5, OverflowPolicy::DropOldest);
        (1..=5).for_each(|i| {
            q.push(i);
        });
        assert_eq!(q.set_limits(2, OverflowPolicy::DropNewest), 3);
        assert_eq!((q.pop(), q.pop()), (Some(4), Some(5)));
        assert_eq!(q.dropped, 3);
    }
}
