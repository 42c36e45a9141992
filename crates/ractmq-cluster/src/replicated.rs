//! A small map replicated to every node of the cluster, last writer wins per key: what a node changes at run
//! time that every node must end up agreeing on (today: the rules created with ctl or REST).
//!
//! It is a state-based CRDT. Each entry is `key -> (version, value)`, the value being bytes its owner encodes
//! or a tombstone (`None`) for a delete, and the version a hybrid clock `(counter, node)`: a write takes a
//! counter above every one this node has seen, so it wins over whatever it replaces, and at least the wall
//! clock in milliseconds, so that of two writes made apart (on two nodes cut off from each other) the later
//! one wins, as an operator expects, when the nodes' clocks agree to better than the time between them.
//! Writes with equal counters are ordered by node name. Merging keeps, per key, the greater of the two
//! entries; it is commutative, associative and idempotent, so nodes converge whatever order states arrive in,
//! however often, and however they are batched: a whole map, one change, or a stale copy.
//!
//! Why not the `crdts` crate: its `LWWReg` keeps the register it has when two markers are equal and the
//! values differ (a node that lost its disk can reuse a version), so two nodes can keep different values for
//! good; here the value breaks such a tie, which keeps merging a join. Its `Map` is an observed-remove map
//! with a causal context per actor, more than a map of a handful of rule definitions needs on the wire and on
//! disk. The merge below is a dozen lines; issue 19 may move this state onto a library (or openraft), and the
//! interface ([`ReplicatedMap::put`], [`ReplicatedMap::entries`], [`ReplicatedMap::subscribe`],
//! [`ReplicatedMap::export`] and [`ReplicatedMap::merge`]) is what it would keep.
//!
//! Transport (see `agent.rs`): every hello carries a digest of the sender's map; a node hearing a digest that
//! differs from its own sends that peer its whole map (small: rule definitions). A local change is sent to
//! every peer at once. So a node that was down, partitioned, or missed a change catches up within a
//! heartbeat of hearing from any peer. Durability: every entry, tombstones included, is kept in the node's
//! store (space [`ReplicatedMap::space`]) and read back before the cluster's actors start, so a key deleted
//! while a node was down stays deleted when it comes back (the tombstone's version is higher). Tombstones are
//! never collected: a deleted rule costs its name and a version for good.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use ractmq_broker::Node;

use crate::forwarder_ref::{forwarder_of, ForwarderMsg};
use crate::state::Shared;
use crate::wire::{self, Replicated, Wire};

pub use crate::replicated_entry::{Entry, Version};

/// The entries as plain data, and the merge: no locks, no side effects (what the unit tests check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapState {
    entries: BTreeMap<String, Entry>,
    /// The highest counter seen, in any entry written here or merged.
    clock: u64,
}

impl MapState {
    /// Write `key` as `node` at wall clock `now_ms`: a version above every one seen (so it replaces the entry
    /// there is) and at least `now_ms`.
    pub fn put(&mut self, node: &str, key: &str, value: Option<Vec<u8>>, now_ms: u64) -> Entry {
        self.clock = (self.clock + 1).max(now_ms);
        let entry = Entry {
            version: Version {
                counter: self.clock,
                node: node.to_string(),
            },
            value,
        };
        self.entries.insert(key.to_string(), entry.clone());
        entry
    }

    /// Merge `other`'s entries; returns those that changed here, as they are now.
    pub fn merge(&mut self, other: impl IntoIterator<Item = (String, Entry)>) -> Vec<(String, Entry)> {
        let mut changed = Vec::new();
        for (key, entry) in other {
            self.clock = self.clock.max(entry.version.counter);
            let wins = self.entries.get(&key).is_none_or(|mine| entry.wins_over(mine));
            if wins {
                self.entries.insert(key.clone(), entry.clone());
                changed.push((key, entry));
            }
        }
        changed
    }

    /// Every entry, tombstones included, by key.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// A digest of the entries: two nodes with the same entries have the same digest, and nodes that differ
    /// almost surely do not. FNV-1a over a fixed encoding, so it does not change with the Rust version (a
    /// mismatch would only cost a needless exchange).
    pub fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for chunk in [&(bytes.len() as u64).to_le_bytes()[..], bytes] {
                for b in chunk {
                    hash ^= u64::from(*b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
        };
        for (key, entry) in &self.entries {
            eat(key.as_bytes());
            eat(&entry.version.counter.to_le_bytes());
            eat(entry.version.node.as_bytes());
            match &entry.value {
                Some(value) => eat(value),
                None => eat(b"\xff tombstone"),
            }
        }
        hash
    }
}

/// Told of each key that changed because of another node's state: (key, its value now, `None` if deleted).
pub type Subscriber = Arc<dyn Fn(&str, Option<&[u8]>) + Send + Sync>;

/// Sends a map's entries to every peer (set by the cluster: through the agents).
pub(crate) type Sender = Arc<dyn Fn(Vec<(String, Entry)>) + Send + Sync>;

/// A map replicated to every node of the cluster (see the module doc). Shared by the cluster (which sends
/// and merges) and the part of the node that owns the keys (which writes and subscribes).
pub struct ReplicatedMap {
    node: String,
    space: &'static str,
    state: Mutex<MapState>,
    subscriber: RwLock<Option<Subscriber>>,
    sender: RwLock<Option<Sender>>,
    store: RwLock<Option<Arc<dyn Node>>>,
}

impl ReplicatedMap {
    /// An empty map of node `node`, kept in store space `space`.
    pub(crate) fn new(node: &str, space: &'static str) -> ReplicatedMap {
        ReplicatedMap {
            node: node.to_string(),
            space,
            state: Mutex::new(MapState::default()),
            subscriber: RwLock::new(None),
            sender: RwLock::new(None),
            store: RwLock::new(None),
        }
    }

    /// The store space its entries are kept in.
    pub fn space(&self) -> &'static str {
        self.space
    }

    /// Read the entries kept in `node`'s store, and keep every change there from now on. Called once, before
    /// the cluster's actors start: what is read is merged (so it cannot undo what peers said meanwhile).
    pub(crate) fn load(&self, node: Arc<dyn Node>) {
        let mut kept = Vec::new();
        for (key, bytes) in node.stored_state(self.space) {
            match bincode::deserialize::<Entry>(&bytes) {
                Ok(entry) => kept.push((key, entry)),
                Err(e) => {
                    tracing::error!(key = %key, space = self.space, "a replicated entry cannot be read, skipped: {e}")
                }
            }
        }
        let loaded = kept.len();
        self.state.lock().merge(kept);
        *self.store.write() = Some(node);
        tracing::debug!(
            space = self.space,
            entries = loaded,
            "replicated map read from the store"
        );
    }

    pub(crate) fn set_sender(&self, sender: Sender) {
        *self.sender.write() = Some(sender);
    }

    /// Write `key` (`None`: delete it) here, keep it in the store, and send it to every peer. The write wins
    /// over every version this node has seen.
    pub fn put(&self, key: &str, value: Option<Vec<u8>>) {
        let entry = {
            let mut state = self.state.lock();
            let entry = state.put(&self.node, key, value, now_ms());
            // Under the lock: writes of one key reach the store in the order they were made.
            self.keep(key, &entry);
            entry
        };
        if let Some(send) = self.sender.read().clone() {
            send(vec![(key.to_string(), entry)]);
        }
    }

    /// A key's value: `None` if never written, `Some(None)` if deleted.
    pub fn get(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.state.lock().entries().get(key).map(|e| e.value.clone())
    }

    /// Every key with its value (`None`: deleted), by key.
    pub fn entries(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let state = self.state.lock();
        state
            .entries()
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// Call `subscriber` for every key that changes because of another node's state, from now on (replacing
    /// the one before). It runs on the cluster's agent: it must not block (hand the key to a task).
    pub fn subscribe(&self, subscriber: Subscriber) {
        *self.subscriber.write() = Some(subscriber);
    }

    /// The whole state, versions included, as it crosses to another node.
    pub fn export(&self) -> Vec<(String, Entry)> {
        let state = self.state.lock();
        state.entries().iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    /// Merge another node's state (all of it or part); keys that changed are kept in the store and reported
    /// to the subscriber. Returns how many changed.
    pub fn merge(&self, entries: Vec<(String, Entry)>) -> usize {
        let changed = {
            let mut state = self.state.lock();
            let changed = state.merge(entries);
            for (key, entry) in &changed {
                self.keep(key, entry);
            }
            changed
        };
        if let Some(subscriber) = self.subscriber.read().clone() {
            for (key, entry) in &changed {
                subscriber(key, entry.value.as_deref());
            }
        }
        changed.len()
    }

    /// The digest of the state (see [`MapState::digest`]), sent in every hello.
    pub fn digest(&self) -> u64 {
        self.state.lock().digest()
    }

    /// Queue the entry's write to the store now (so writes land in order) and log if its commit fails; the
    /// commit is not waited for: a crash before it is repaired by the peers' copies when the node is back.
    fn keep(&self, key: &str, entry: &Entry) {
        let Some(node) = self.store.read().clone() else {
            return;
        };
        let bytes = match bincode::serialize(entry) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(key = %key, "a replicated entry cannot be encoded, not kept: {e}");
                return;
            }
        };
        let write = node.keep_state(self.space, key, Some(bytes));
        let (key, space) = (key.to_string(), self.space);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::error!(key = %key, space, "a replicated entry was not kept in the store: {e}");
            }
        });
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if the clock is before it: the counter still
/// increases).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Send `peer` this node's whole map (through its forwarder; nothing if no link to it is up: the next hello
/// tries again).
pub(crate) fn send_all(shared: &Shared, peer: &str) {
    if let Some(to) = forwarder_of(peer) {
        let bytes = wire::encode(&Wire::Replicated(Replicated {
            from: shared.config.node_name.clone(),
            entries: shared.rules.export(),
        }));
        let _ = to.send_message(ForwarderMsg::Peer(bytes));
    }
}

/// What sends a local change to every other member with a link up (one that is cut off gets it from the
/// digest in the next hellos it exchanges).
pub(crate) fn sender(shared: Weak<Shared>) -> Sender {
    Arc::new(move |entries| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let bytes = wire::encode(&Wire::Replicated(Replicated {
            from: shared.config.node_name.clone(),
            entries,
        }));
        let peers: Vec<String> = shared.membership.read().others().map(|m| m.name.clone()).collect();
        for peer in peers {
            if let Some(to) = forwarder_of(&peer) {
                let _ = to.send_message(ForwarderMsg::Peer(bytes.clone()));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(counter: u64, node: &str, value: Option<&str>) -> Entry {
        Entry {
            version: Version {
                counter,
                node: node.into(),
            },
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    fn state(entries: &[(&str, Entry)]) -> MapState {
        let mut s = MapState::default();
        s.merge(entries.iter().map(|(k, e)| (k.to_string(), e.clone())));
        s
    }

    fn merged(a: &MapState, b: &MapState) -> MapState {
        let mut m = a.clone();
        m.merge(b.entries().iter().map(|(k, e)| (k.clone(), e.clone())));
        m
    }

    #[test]
    fn the_higher_version_wins_in_either_order() {
        let old = state(&[("r", entry(1, "n1", Some("a")))]);
        let new = state(&[("r", entry(2, "n1", Some("b")))]);
        for m in [merged(&old, &new), merged(&new, &old)] {
            assert_eq!(m.entries()["r"], entry(2, "n1", Some("b")));
        }
    }

    #[test]
    fn a_later_delete_wins_and_an_earlier_one_loses() {
        let live = state(&[("r", entry(3, "n2", Some("a")))]);
        let later = state(&[("r", entry(4, "n1", None))]);
        let earlier = state(&[("r", entry(2, "n1", None))]);
        assert_eq!(merged(&live, &later).entries()["r"].value, None);
        assert_eq!(merged(&later, &live).entries()["r"].value, None);
        assert_eq!(merged(&live, &earlier).entries()["r"].value, Some(b"a".to_vec()));
        assert_eq!(merged(&earlier, &live).entries()["r"].value, Some(b"a".to_vec()));
    }

    #[test]
    fn equal_counters_are_ordered_by_node_name_then_value() {
        let on_n1 = state(&[("r", entry(5, "n1", Some("from n1")))]);
        let on_n2 = state(&[("r", entry(5, "n2", Some("from n2")))]);
        assert_eq!(merged(&on_n1, &on_n2), merged(&on_n2, &on_n1));
        assert_eq!(merged(&on_n1, &on_n2).entries()["r"].version.node, "n2");
        // One node reused a version (its store was lost): the value decides, the same on both sides.
        let (x, y) = (
            state(&[("r", entry(5, "n1", Some("x")))]),
            state(&[("r", entry(5, "n1", Some("y")))]),
        );
        assert_eq!(merged(&x, &y), merged(&y, &x));
        assert_eq!(merged(&x, &y).entries()["r"].value, Some(b"y".to_vec()));
    }

    #[test]
    fn merging_is_commutative_associative_and_idempotent() {
        let a = state(&[("p", entry(1, "n1", Some("1"))), ("q", entry(4, "n1", None))]);
        let b = state(&[("p", entry(2, "n2", Some("2"))), ("r", entry(1, "n2", Some("r")))]);
        let c = state(&[("q", entry(3, "n3", Some("q"))), ("r", entry(1, "n3", None))]);
        assert_eq!(merged(&a, &b).entries(), merged(&b, &a).entries());
        assert_eq!(
            merged(&merged(&a, &b), &c).entries(),
            merged(&a, &merged(&b, &c)).entries()
        );
        let ab = merged(&a, &b);
        assert_eq!(merged(&ab, &ab), ab);
        let mut again = ab.clone();
        assert!(again.merge(ab.entries().clone()).is_empty(), "nothing changes twice");
        assert_eq!(merged(&ab, &a).digest(), ab.digest());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn a_write_wins_over_everything_seen_before_it() {
        let mut here = state(&[("r", entry(9, "n3", Some("theirs")))]);
        let mine = here.put("n1", "r", None, 3);
        assert_eq!(
            (mine.version.counter, &*mine.version.node),
            (10, "n1"),
            "above what it saw"
        );
        let later = here.put("n1", "r", Some(b"x".to_vec()), 500);
        assert_eq!(later.version.counter, 500, "at least the wall clock");
        let mine = here.put("n1", "r", None, 3);
        assert_eq!(
            mine.version.counter, 501,
            "a clock gone back does not take the counter back"
        );
        let mut there = state(&[("r", entry(9, "n3", Some("theirs")))]);
        there.merge([("r".to_string(), mine)]);
        assert_eq!(there.entries(), here.entries());
        assert_eq!(there.digest(), here.digest());
    }

    #[test]
    fn the_map_reports_only_what_other_nodes_changed() {
        let map = ReplicatedMap::new("n1", "test");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        map.subscribe(Arc::new(move |k, v| {
            log.lock().push((k.to_string(), v.map(<[u8]>::to_vec)))
        }));
        map.put("mine", Some(b"1".to_vec()));
        assert!(seen.lock().is_empty(), "a local write is not reported back");
        let theirs = vec![("theirs".to_string(), entry(7, "n2", Some("2")))];
        assert_eq!(map.merge(theirs.clone()), 1);
        assert_eq!(map.merge(theirs), 0, "the same state twice changes nothing");
        assert_eq!(*seen.lock(), vec![("theirs".to_string(), Some(b"2".to_vec()))]);
        map.put("theirs", None);
        assert_eq!(map.get("theirs"), Some(None));
        assert!(map.export()[1].1.version.counter > 7, "above the counter it merged");
    }
}
