//! A connection's few most recent ACL answers, so a client publishing to the same topics again and again
//! (the common case: a sensor, a fan-in publisher) pays one hash and one string compare per check.
//!
//! Eight direct-mapped slots, allocated on the first check (an idle connection pays nothing) and reused
//! without allocating afterwards; topics longer than 256 bytes are not cached, so a connection's cache holds
//! at most about 2 KiB. The lock is only ever tried: a connection's checks run on one task, and if two
//! threads ever share a `ClientAcl`, the loser computes its answer without the cache rather than wait.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use parking_lot::Mutex;

use crate::acl::rule::Decision;

const SLOTS: usize = 8;
const MAX_CACHED_TOPIC: usize = 256;
/// A fixed seed is enough: a client that makes its own topics collide only evicts its own entries.
const HASHER: FixedState = FixedState::with_seed(0x05ee_dac1);

#[derive(Debug, Default)]
struct Slot {
    hash: u64,
    key: u8,
    decision: Option<Decision>,
    topic: String,
}

/// The cache of one [`crate::acl::ClientAcl`].
#[derive(Debug, Default)]
pub(crate) struct DecisionCache {
    slots: Mutex<Option<Box<[Slot; SLOTS]>>>,
}

impl DecisionCache {
    /// The cached answer for (`key`, `topic`), or `compute()`'s, which is then cached. `key` packs the
    /// action, QoS and retain flag.
    pub(crate) fn get_or(&self, key: u8, topic: &str, compute: impl FnOnce() -> Decision) -> Decision {
        if topic.len() > MAX_CACHED_TOPIC {
            return compute();
        }
        let Some(mut guard) = self.slots.try_lock() else {
            return compute();
        };
        let hash = HASHER.hash_one((key, topic));
        let slots = guard.get_or_insert_with(Default::default);
        let slot = &mut slots[(hash % SLOTS as u64) as usize];
        if let Some(decision) = slot.decision {
            if slot.hash == hash && slot.key == key && slot.topic == topic {
                return decision;
            }
        }
        let decision = compute();
        slot.hash = hash;
        slot.key = key;
        slot.topic.clear();
        slot.topic.push_str(topic);
        slot.decision = Some(decision);
        decision
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn answers_from_the_cache_and_keeps_keys_apart() {
        let cache = DecisionCache::default();
        let calls = Cell::new(0);
        let compute = |d| {
            calls.set(calls.get() + 1);
            d
        };
        assert_eq!(cache.get_or(1, "a/b", || compute(Decision::Allow)), Decision::Allow);
        assert_eq!(cache.get_or(1, "a/b", || compute(Decision::Deny)), Decision::Allow);
        assert_eq!(calls.get(), 1);
        assert_eq!(cache.get_or(2, "a/b", || compute(Decision::Deny)), Decision::Deny);
        assert_eq!(calls.get(), 2);
        let long = "x".repeat(MAX_CACHED_TOPIC + 1);
        cache.get_or(1, &long, || compute(Decision::Deny));
        cache.get_or(1, &long, || compute(Decision::Deny));
        assert_eq!(calls.get(), 4, "long topics are not cached");
        // Many topics: bounded slots, answers stay right.
        for i in 0..1000 {
            let topic = format!("t/{i}");
            let want = if i % 2 == 0 { Decision::Allow } else { Decision::Deny };
            assert_eq!(cache.get_or(0, &topic, || want), want);
            assert_eq!(cache.get_or(0, &topic, || unreachable!("just cached")), want);
        }
    }
}
