//! A bounded cache of recent answers, so that a reconnect storm asks the HTTP service once per client, not once
//! per attempt.
//!
//! Keys are SHA-256 digests of the request's fields (the password among them), so an entry costs the same
//! whatever the client sent and no password is kept. Every entry lives for the same TTL, so insertion order is
//! expiry order: a queue in that order finds expired entries, and when the cache is full the oldest entry
//! makes room.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The digest of a request's fields.
pub(super) type Key = [u8; 32];

/// Digest `fields` unambiguously (each is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ).
pub(super) fn key<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Key {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field);
    }
    hasher.finalize().into()
}

/// Answers for at most `capacity` keys, each for `ttl`.
pub(super) struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    entries: HashMap<Key, (Instant, V)>,
    /// `(key, inserted at)` oldest first; an item whose time no longer matches its entry is stale and skipped.
    order: VecDeque<(Key, Instant)>,
}

impl<V: Clone> TtlCache<V> {
    /// A capacity or TTL of zero turns caching off.
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// The answer for `key`, if one younger than the TTL is cached.
    pub(super) fn get(&self, key: &Key) -> Option<V> {
        let inner = self.inner.lock();
        let (inserted, value) = inner.entries.get(key)?;
        (inserted.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Remember `value` for `key`.
    pub(super) fn insert(&self, key: Key, value: V) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let Inner { entries, order } = &mut *inner;
        // Drop what has expired, then the oldest until there is room (the queue may hold stale items too, so it
        // is bounded by twice the capacity at most before this loop trims it).
        while let Some(&(oldest, inserted)) = order.front() {
            let expired = inserted.elapsed() >= self.ttl;
            let full = entries.len() >= self.capacity || order.len() >= 2 * self.capacity;
            if !expired && !full {
                break;
            }
            order.pop_front();
            if entries.get(&oldest).is_some_and(|(at, _)| *at == inserted) {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (now, value));
        order.push_back((key, now));
    }

    /// The number of entries held (expired ones included until they are pushed out).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> Key {
        key([&[n][..]])
    }

    #[test]
    fn keys_are_unambiguous() {
        assert_ne!(key([&b"ab"[..], b"c"]), key([&b"a"[..], b"bc"]));
        assert_eq!(key([&b"ab"[..], b"c"]), key([&b"ab"[..], b"c"]));
    }

    #[test]
    fn entries_expire_and_capacity_holds() {
        let cache = TtlCache::new(Duration::from_millis(50), 3);
        for n in 0..10 {
            cache.insert(k(n), n);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.get(&k(9)), Some(9));
        assert_eq!(cache.get(&k(0)), None, "the oldest made room");
        // Re-inserting a key many times leaves stale queue items that are trimmed too.
        for _ in 0..100 {
            cache.insert(k(9), 9);
        }
        assert!(cache.inner.lock().order.len() <= 6);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&k(9)), None, "expired");
    }

    #[test]
    fn zero_capacity_or_ttl_caches_nothing() {
        for cache in [
            TtlCache::new(Duration::ZERO, 10),
            TtlCache::new(Duration::from_secs(9), 0),
        ] {
            cache.insert(k(1), 1);
            assert_eq!(cache.get(&k(1)), None);
        }
    }
}
