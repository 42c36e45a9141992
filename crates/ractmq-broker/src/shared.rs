//! Shared subscriptions (`$share/{group}/{filter}`): which member of a group gets a message.
//!
//! Members live in the subscription index like any subscription, at their filter's node, under a key of their
//! own (so that one client may hold a shared and a plain subscription to the same filter) and with the group
//! named in their route. The router collects a message's matching members per group and asks [`SharedGroups`]
//! to choose one, by the configured strategy, preferring members that are connected. The same choice serves
//! a leaving member's unacknowledged messages (see `Router::dispatch_shared`).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use ractmq_protocol::Message;

/// How a group's member is chosen for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// A member picked at random (a cheap pseudo-random sequence) for each message.
    Random,
    /// The same member for as long as it stays in the group.
    Sticky,
    /// By the publisher's client id: one publisher's messages always reach the same member.
    HashClientId,
    /// By topic: one topic's messages always reach the same member.
    HashTopic,
}

impl std::str::FromStr for SharedStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "round-robin" => Ok(SharedStrategy::RoundRobin),
            "random" => Ok(SharedStrategy::Random),
            "sticky" => Ok(SharedStrategy::Sticky),
            "hash-clientid" => Ok(SharedStrategy::HashClientId),
            "hash-topic" => Ok(SharedStrategy::HashTopic),
            other => Err(format!(
                "unknown shared subscription strategy '{other}': use round-robin, random, sticky, hash-clientid or hash-topic"
            )),
        }
    }
}

/// The index key of `client_id`'s membership in the shared subscription `shared_filter`.
pub fn member_key(shared_filter: &str, client_id: &str) -> Arc<str> {
    format!("{shared_filter}\u{0}{client_id}").into()
}

/// Groups whose choice state is kept. The state only spreads load (a turn, a sticky member), so when groups
/// come and go beyond this many, it is simply dropped and rebuilt.
const MAX_GROUP_CURSORS: usize = 100_000;

/// Per-group choice state: a turn counter or a sticky member.
enum Cursor {
    Turn(u64),
    Sticky(Arc<str>),
}

pub struct SharedGroups {
    strategy: SharedStrategy,
    cursors: Mutex<HashMap<Arc<str>, Cursor>>,
    seed: AtomicU64,
}

impl SharedGroups {
    pub fn new(strategy: SharedStrategy) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        SharedGroups {
            strategy,
            cursors: Mutex::new(HashMap::new()),
            seed: AtomicU64::new(seed),
        }
    }

    /// Choose one of `members` (index keys, sorted) of `group` for `message`; returns its position.
    pub fn choose(&self, group: &Arc<str>, members: &[&Arc<str>], message: &Message) -> usize {
        let n = members.len();
        match self.strategy {
            SharedStrategy::RoundRobin => {
                let mut cursors = self.bounded_cursors();
                let cursor = cursors.entry(group.clone()).or_insert(Cursor::Turn(0));
                let turn = match cursor {
                    Cursor::Turn(t) => t,
                    Cursor::Sticky(_) => return 0,
                };
                let pick = (*turn % n as u64) as usize;
                *turn = turn.wrapping_add(1);
                pick
            }
            SharedStrategy::Random => self.random(n),
            SharedStrategy::Sticky => {
                let mut cursors = self.bounded_cursors();
                if let Some(Cursor::Sticky(key)) = cursors.get(group) {
                    if let Some(pos) = members.iter().position(|m| *m == key) {
                        return pos;
                    }
                }
                let pick = self.random(n);
                cursors.insert(group.clone(), Cursor::Sticky(members[pick].clone()));
                pick
            }
            SharedStrategy::HashClientId => hash_pick(message.publisher.as_deref().unwrap_or(""), n),
            SharedStrategy::HashTopic => hash_pick(&message.topic, n),
        }
    }

    fn bounded_cursors(&self) -> parking_lot::MutexGuard<'_, HashMap<Arc<str>, Cursor>> {
        let mut cursors = self.cursors.lock();
        if cursors.len() >= MAX_GROUP_CURSORS {
            cursors.clear();
        }
        cursors
    }

    fn random(&self, n: usize) -> usize {
        // xorshift64: good enough to spread load, and no lock.
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        (x % n as u64) as usize
    }
}

fn hash_pick(value: &str, n: usize) -> usize {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    (h.finish() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::QoS;

    fn keys(n: usize) -> Vec<Arc<str>> {
        (0..n).map(|i| Arc::from(format!("m{i}"))).collect()
    }

    #[test]
    fn round_robin_takes_turns_and_sticky_stays_until_its_member_leaves() {
        let group: Arc<str> = "$share/g/t".into();
        let owned = keys(3);
        let members: Vec<&Arc<str>> = owned.iter().collect();
        let m = Message::new("t", "x", QoS::AtMostOnce, false);
        let rr = SharedGroups::new(SharedStrategy::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| rr.choose(&group, &members, &m)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);

        let sticky = SharedGroups::new(SharedStrategy::Sticky);
        let first = sticky.choose(&group, &members, &m);
        assert!((0..10).all(|_| sticky.choose(&group, &members, &m) == first));
        let without: Vec<&Arc<str>> = owned
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != first)
            .map(|(_, k)| k)
            .collect();
        let next = sticky.choose(&group, &without, &m);
        assert!((0..10).all(|_| sticky.choose(&group, &without, &m) == next));
    }

    #[test]
    fn hash_strategies_send_one_publisher_or_topic_to_one_member() {
        let group: Arc<str> = "$share/g/#".into();
        let owned = keys(5);
        let members: Vec<&Arc<str>> = owned.iter().collect();
        let by_client = SharedGroups::new(SharedStrategy::HashClientId);
        let by_topic = SharedGroups::new(SharedStrategy::HashTopic);
        let mut m = Message::new("a/b", "x", QoS::AtMostOnce, false);
        m.publisher = Some("pub-1".into());
        let c = by_client.choose(&group, &members, &m);
        let t = by_topic.choose(&group, &members, &m);
        for i in 0..20 {
            let mut other = Message::new(format!("a/{i}"), "y", QoS::AtMostOnce, false);
            other.publisher = Some("pub-1".into());
            assert_eq!(
                by_client.choose(&group, &members, &other),
                c,
                "same publisher, same member"
            );
            let mut same_topic = Message::new("a/b", "z", QoS::AtMostOnce, false);
            same_topic.publisher = Some(format!("p{i}").into());
            assert_eq!(
                by_topic.choose(&group, &members, &same_topic),
                t,
                "same topic, same member"
            );
        }
    }

    #[test]
    fn strategies_parse_from_their_names() {
        for (name, s) in [
            ("round-robin", SharedStrategy::RoundRobin),
            ("random", SharedStrategy::Random),
            ("sticky", SharedStrategy::Sticky),
            ("hash-clientid", SharedStrategy::HashClientId),
            ("hash-topic", SharedStrategy::HashTopic),
        ] {
            assert_eq!(name.parse::<SharedStrategy>(), Ok(s));
        }
        assert!("fair".parse::<SharedStrategy>().unwrap_err().contains("round-robin"));
    }
}
