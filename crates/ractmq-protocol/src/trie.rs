//! The subscription index: filter levels in a trie, persistent so that readers never wait for writers.
//!
//! Publishers match against an immutable snapshot while the one writer that owns a partition (a topic shard in
//! the broker) builds the next version. Every node's maps are `imbl` maps, so a new version shares all but the
//! path it changed: an insert costs O(depth x log n), not a copy of the index, and a reader holding the old
//! version is never disturbed. Matching visits only the trie paths a topic can reach, so its cost does not
//! depend on how many non-matching subscriptions exist.
//!
//! Matching runs once per published message, so its lookups are kept cheap: the `+` and `#` children sit in
//! fields of their own rather than in the level map (a topic level needs one hashed lookup, not three), empty
//! maps are not searched, and the level maps hash with foldhash, seeded per process as hashbrown's default is,
//! where SipHash was the larger part of routing a message. A node's few subscribers are kept in a vector (see
//! `trie/subscribers.rs`).

use std::hash::Hash;
use std::sync::Arc;

mod subscribers;

pub use subscribers::Subscribers;

/// The maps of the trie: persistent, hashed with foldhash (see the module doc).
pub type Map<K, V> = imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// One level of the trie. `subscribers` holds the subscriptions whose filter ends at this node.
#[derive(Debug, Clone)]
struct Node<K: Clone + Hash + Eq, V: Clone> {
    /// Children by literal level.
    children: Map<Arc<str>, Arc<Node<K, V>>>,
    /// The `+` child.
    plus: Option<Arc<Node<K, V>>>,
    /// The `#` child.
    hash: Option<Arc<Node<K, V>>>,
    subscribers: Subscribers<K, V>,
}

impl<K: Clone + Hash + Eq, V: Clone> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            children: Map::default(),
            plus: None,
            hash: None,
            subscribers: Subscribers::default(),
        }
    }
}

impl<K: Clone + Hash + Eq, V: Clone> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.hash.is_none() && self.subscribers.is_empty()
    }

    /// The child for filter level `level` (`+` and `#` included).
    fn child(&self, level: &str) -> Option<&Arc<Node<K, V>>> {
        match level {
            "+" => self.plus.as_ref(),
            "#" => self.hash.as_ref(),
            _ if self.children.is_empty() => None,
            _ => self.children.get(level),
        }
    }

    /// Set (or with `None` remove) the child for filter level `level`.
    fn set_child(&mut self, level: &str, child: Option<Arc<Node<K, V>>>) {
        match (level, child) {
            ("+", child) => self.plus = child,
            ("#", child) => self.hash = child,
            (_, Some(child)) => {
                self.children.insert(Arc::from(level), child);
            }
            (_, None) => {
                self.children.remove(level);
            }
        }
    }
}

/// A persistent map from topic filters to subscribers. Cloning is O(1).
#[derive(Debug, Clone)]
pub struct SubscriptionTrie<K: Clone + Hash + Eq, V: Clone> {
    root: Arc<Node<K, V>>,
    len: usize,
}

impl<K: Clone + Hash + Eq, V: Clone> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        SubscriptionTrie {
            root: Arc::new(Node::default()),
            len: 0,
        }
    }
}

impl<K: Clone + Hash + Eq, V: Clone> SubscriptionTrie<K, V> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of (filter, subscriber) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no filter has a subscriber.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Add or replace `key`'s subscription to `filter`. Returns true if it is new.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut added = false;
        self.root = Arc::new(insert_at(&self.root, &levels, key, value, &mut added));
        if added {
            self.len += 1;
        }
        added
    }

    /// Remove `key`'s subscription to `filter`. Returns the removed value.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut removed = None;
        if let Some(node) = remove_at(&self.root, &levels, key, &mut removed) {
            self.root = Arc::new(node);
        }
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The value stored for `key` under exactly `filter`.
    pub fn get(&self, filter: &str, key: &K) -> Option<&V> {
        let mut node = &self.root;
        for level in filter.split('/') {
            node = node.child(level)?;
        }
        node.subscribers.get(key)
    }

    /// Call `f` for every subscription to exactly `filter`.
    pub fn for_each_at<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a K, &'a V)) {
        let mut node = &self.root;
        for level in filter.split('/') {
            match node.child(level) {
                Some(child) => node = child,
                None => return,
            }
        }
        node.subscribers.iter().for_each(|(k, v)| f(k, v));
    }

    /// Call `f` for every subscription whose filter matches the topic name `topic`.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a K, &'a V)) {
        self.for_each_matching_filter(topic, |subscribers| subscribers.iter().for_each(|(k, v)| f(k, v)));
    }

    /// Call `f` once per matching filter with that filter's subscribers (a key appears at most once in each
    /// call; only across calls can one key match twice).
    pub fn for_each_matching_filter<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a Subscribers<K, V>)) {
        let dollar = topic.starts_with('$');
        let mut rest = Levels::new(topic);
        let first = rest.next().unwrap_or("");
        // The first level is special: `$` topics are not matched by a leading wildcard.
        if let Some(child) = literal_child(&self.root, first) {
            match_from(child, rest.clone(), &mut f);
        }
        if !dollar {
            if let Some(child) = &self.root.plus {
                match_from(child, rest, &mut f);
            }
            if let Some(child) = &self.root.hash {
                visit(&child.subscribers, &mut f);
            }
        }
    }
}

/// The levels of a topic name, found by a byte scan for `/`: levels are short, and `str::split` with a `char`
/// pattern runs a general searcher (memchr) per level, a noticeable part of matching.
#[derive(Clone)]
pub struct Levels<'a>(Option<&'a str>);

impl<'a> Levels<'a> {
    /// The levels of `topic` (one empty level for an empty topic, as `str::split` gives).
    pub fn new(topic: &'a str) -> Levels<'a> {
        Levels(Some(topic))
    }
}

impl<'a> Iterator for Levels<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.0?;
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}

fn visit<'a, K: Clone + Hash + Eq, V: Clone>(
    subscribers: &'a Subscribers<K, V>,
    f: &mut impl FnMut(&'a Subscribers<K, V>),
) {
    if !subscribers.is_empty() {
        f(subscribers);
    }
}

/// The child for a topic level, which is always literal (even when it reads `+` or `#`: a topic name cannot
/// hold wildcards, so no such level exists in one).
fn literal_child<'a, K: Clone + Hash + Eq, V: Clone>(node: &'a Node<K, V>, level: &str) -> Option<&'a Arc<Node<K, V>>> {
    if node.children.is_empty() {
        None
    } else {
        node.children.get(level)
    }
}

/// `rest`: the topic levels below `node`, as a split iterator (cloned at each branch, never collected).
fn match_from<'a, K: Clone + Hash + Eq, V: Clone>(
    node: &'a Node<K, V>,
    mut rest: Levels<'_>,
    f: &mut impl FnMut(&'a Subscribers<K, V>),
) {
    // `a/#` matches `a` itself as well as everything below it.
    if let Some(hash) = &node.hash {
        visit(&hash.subscribers, f);
    }
    let Some(level) = rest.next() else {
        visit(&node.subscribers, f);
        return;
    };
    if let Some(child) = literal_child(node, level) {
        match_from(child, rest.clone(), f);
    }
    if let Some(child) = &node.plus {
        match_from(child, rest, f);
    }
}

fn insert_at<K: Clone + Hash + Eq, V: Clone>(
    node: &Node<K, V>,
    levels: &[&str],
    key: K,
    value: V,
    added: &mut bool,
) -> Node<K, V> {
    let mut node = node.clone();
    match levels.split_first() {
        None => {
            *added = node.subscribers.insert(key, value).is_none();
        }
        Some((level, rest)) => {
            let child = node.child(level).cloned().unwrap_or_default();
            let child = insert_at(&child, rest, key, value, added);
            node.set_child(level, Some(Arc::new(child)));
        }
    }
    node
}

/// Returns the new node, or `None` if nothing changed (so the caller keeps sharing the old one).
fn remove_at<K: Clone + Hash + Eq, V: Clone>(
    node: &Node<K, V>,
    levels: &[&str],
    key: &K,
    removed: &mut Option<V>,
) -> Option<Node<K, V>> {
    match levels.split_first() {
        None => {
            node.subscribers.get(key)?;
            let mut node = node.clone();
            *removed = node.subscribers.remove(key);
            Some(node)
        }
        Some((level, rest)) => {
            let child = node.child(level)?;
            let new_child = remove_at(child, rest, key, removed)?;
            let mut node = node.clone();
            node.set_child(level, (!new_child.is_empty()).then(|| Arc::new(new_child)));
            Some(node)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(trie: &SubscriptionTrie<&'static str, u8>, topic: &str) -> Vec<&'static str> {
        let mut out = Vec::new();
        trie.for_each_match(topic, |k, _| out.push(*k));
        out.sort();
        out
    }

    #[test]
    fn matches_exact_and_wildcard_filters() {
        let mut t = SubscriptionTrie::new();
        t.insert("a/b/c", "exact", 0);
        t.insert("a/+/c", "plus", 0);
        t.insert("a/#", "hash", 0);
        t.insert("#", "all", 0);
        t.insert("+/b/+", "plus2", 0);
        t.insert("x/y", "other", 0);
        assert_eq!(matched(&t, "a/b/c"), vec!["all", "exact", "hash", "plus", "plus2"]);
        assert_eq!(matched(&t, "a"), vec!["all", "hash"]);
        assert_eq!(matched(&t, "x/y"), vec!["all", "other"]);
        assert_eq!(matched(&t, "x/y/z"), vec!["all"]);
    }

    #[test]
    fn dollar_topics_skip_leading_wildcards() {
        let mut t = SubscriptionTrie::new();
        t.insert("#", "all", 0);
        t.insert("+/broker/uptime", "plus", 0);
        t.insert("$SYS/#", "sys", 0);
        assert_eq!(matched(&t, "$SYS/broker/uptime"), vec!["sys"]);
    }

    #[test]
    fn an_old_snapshot_is_unchanged_by_later_writes() {
        let mut t = SubscriptionTrie::new();
        t.insert("a/b", "one", 1);
        let snapshot = t.clone();
        t.insert("a/b", "two", 2);
        t.remove("a/b", &"one");
        assert_eq!(matched(&snapshot, "a/b"), vec!["one"]);
        assert_eq!(matched(&t, "a/b"), vec!["two"]);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn replace_keeps_one_entry_and_remove_prunes() {
        let mut t = SubscriptionTrie::new();
        assert!(t.insert("a/b", "c1", 1));
        assert!(!t.insert("a/b", "c1", 2));
        assert_eq!(t.get("a/b", &"c1"), Some(&2));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove("a/b", &"c1"), Some(2));
        assert_eq!(t.remove("a/b", &"c1"), None);
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "empty branches are pruned");
        t.insert("a/+/c", "c1", 1);
        t.insert("#", "c1", 1);
        assert_eq!(t.get("a/+/c", &"c1"), Some(&1));
        assert_eq!(t.remove("a/+/c", &"c1"), Some(1));
        assert_eq!(t.remove("#", &"c1"), Some(1));
        assert!(t.root.is_empty(), "wildcard branches are pruned too");
    }

    #[test]
    fn levels_split_as_str_split_does() {
        for topic in ["", "a", "a/b", "/", "a//b/", "/x", "é/ü/ß"] {
            assert_eq!(
                Levels::new(topic).collect::<Vec<_>>(),
                topic.split('/').collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn matching_ignores_unrelated_subscriptions() {
        let mut t: SubscriptionTrie<u32, ()> = SubscriptionTrie::new();
        for i in 0..10_000u32 {
            t.insert(&format!("devices/{i}/state"), i, ());
        }
        t.insert("devices/+/state", 99_999, ());
        let mut hits = Vec::new();
        t.for_each_match("devices/42/state", |k, _| hits.push(*k));
        hits.sort();
        assert_eq!(hits, vec![42, 99_999]);
    }
}
