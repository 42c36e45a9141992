//! Retained messages by topic, found again by filter when a client subscribes.
//!
//! Subscribing is the reverse of routing: one filter against many stored topics. A trie of topic levels lets a
//! filter walk only the branches it can match, so a subscribe to `a/b` never looks at the other topics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

/// The retained message of every topic that has one, as a trie of topic levels.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Topics with a retained message.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no topic has a retained message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store `message` as the retained message of its topic; an empty payload clears the topic instead.
    /// Returns false if the message was refused because `max` topics already hold one (replacing an existing
    /// topic's message is always allowed): clients cannot grow the store without bound.
    pub fn set(&mut self, message: Arc<Message>, max: usize) -> bool {
        let levels: Vec<&str> = message.topic.split('/').collect();
        if message.payload.is_empty() {
            if remove(&mut self.root, &levels) {
                self.len -= 1;
            }
            return true;
        }
        if self.len >= max && self.get(&message.topic).is_none() {
            return false;
        }
        let mut node = &mut self.root;
        for level in levels {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(message).is_none() {
            self.len += 1;
        }
        true
    }

    /// The retained message of the topic name `topic`, if any (expired or not).
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Every unexpired retained message whose topic matches the valid filter `filter`.
    pub fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut out = Vec::new();
        collect(&self.root, &levels, true, &mut out);
        out.retain(|m| !m.is_expired(now));
        out
    }

    /// All retained messages (for listings).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        collect_all(&self.root, false, &mut out);
        out
    }

    /// Drop expired messages; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<Arc<str>> = self
            .all()
            .into_iter()
            .filter(|m| m.is_expired(now))
            .map(|m| m.topic.clone())
            .collect();
        for topic in &expired {
            let levels: Vec<&str> = topic.split('/').collect();
            if remove(&mut self.root, &levels) {
                self.len -= 1;
            }
        }
        expired.len()
    }
}

fn collect(node: &Node, levels: &[&str], at_root: bool, out: &mut Vec<Arc<Message>>) {
    let Some((level, rest)) = levels.split_first() else {
        out.extend(node.message.iter().cloned());
        return;
    };
    match *level {
        "#" => collect_all(node, at_root, out),
        "+" => {
            for (name, child) in &node.children {
                if !(at_root && name.starts_with('$')) {
                    collect(child, rest, false, out);
                }
            }
        }
        exact => {
            if let Some(child) = node.children.get(exact) {
                collect(child, rest, false, out);
            }
        }
    }
}

/// `node`'s own message and everything below it (`#` also matches the parent level).
fn collect_all(node: &Node, at_root: bool, out: &mut Vec<Arc<Message>>) {
    out.extend(node.message.iter().cloned());
    for (name, child) in &node.children {
        if !(at_root && name.starts_with('$')) {
            collect_all(child, false, out);
        }
    }
}

fn remove(node: &mut Node, levels: &[&str]) -> bool {
    let Some((level, rest)) = levels.split_first() else {
        return node.message.take().is_some();
    };
    let Some(child) = node.children.get_mut(*level) else {
        return false;
    };
    let removed = remove(child, rest);
    if child.is_empty() {
        node.children.remove(*level);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::QoS;
    use std::time::Duration;

    fn msg(topic: &str, payload: &str) -> Arc<Message> {
        Arc::new(Message::new(topic, payload.to_string(), QoS::AtMostOnce, true))
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut t: Vec<String> = store
            .matching(filter, Instant::now())
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        t.sort();
        t
    }

    #[test]
    fn set_replace_and_clear() {
        let mut s = RetainedStore::new();
        s.set(msg("a/b", "1"), usize::MAX);
        s.set(msg("a/b", "2"), usize::MAX);
        assert_eq!(s.len(), 1);
        assert_eq!(&s.get("a/b").unwrap().payload[..], b"2");
        s.set(msg("a/b", ""), usize::MAX);
        assert!(s.is_empty());
        assert!(s.get("a/b").is_none());
        assert!(s.root.children.is_empty());
    }

    #[test]
    fn the_store_is_bounded_but_existing_topics_can_be_replaced_or_cleared() {
        let mut s = RetainedStore::new();
        assert!(s.set(msg("a", "1"), 2));
        assert!(s.set(msg("b", "1"), 2));
        assert!(!s.set(msg("c", "1"), 2), "a third topic is refused");
        assert!(s.get("c").is_none());
        assert!(s.set(msg("a", "2"), 2), "replacing is allowed when full");
        assert!(s.set(msg("b", ""), 2));
        assert!(s.set(msg("c", "1"), 2), "room again after a clear");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn filters_find_matching_topics() {
        let mut s = RetainedStore::new();
        for t in ["a", "a/b", "a/b/c", "a/x/c", "b", "$SYS/up"] {
            s.set(msg(t, "v"), usize::MAX);
        }
        assert_eq!(topics(&s, "a/#"), vec!["a", "a/b", "a/b/c", "a/x/c"]);
        assert_eq!(topics(&s, "a/+/c"), vec!["a/b/c", "a/x/c"]);
        assert_eq!(topics(&s, "#"), vec!["a", "a/b", "a/b/c", "a/x/c", "b"]);
        assert_eq!(topics(&s, "+"), vec!["a", "b"]);
        assert_eq!(topics(&s, "$SYS/#"), vec!["$SYS/up"]);
        assert_eq!(topics(&s, "a/b"), vec!["a/b"]);
    }

    #[test]
    fn expired_messages_are_not_returned_and_purged() {
        let mut s = RetainedStore::new();
        let mut m = Message::new("t", "v", QoS::AtMostOnce, true);
        m.properties.message_expiry_interval = Some(1);
        m.received_at = Instant::now() - Duration::from_secs(5);
        s.set(Arc::new(m), usize::MAX);
        assert!(s.matching("t", Instant::now()).is_empty());
        assert_eq!(s.purge_expired(Instant::now()), 1);
        assert!(s.is_empty());
    }
}
