//! The moments after a session moves from one node to another, on both nodes.
//!
//! When node B takes over a client's session from node A (`handover.rs`), the other nodes still route that
//! client's messages to A until they learn B's routes, and A's own routes are what they know. Messages that
//! reach A for the departed session must not be lost, and none may reach the client twice.
//!
//! - **A relays.** In the same index change that removes the session's subscriptions, A puts a *relay* under
//!   the same filters: a route whose target is "client X on node B" ([`Relays`]). Everything that reaches A
//!   for those filters during [`RELAY_FOR`] is forwarded to B addressed to X alone, and a delivery that
//!   reached the session itself after it packed up is bounced the same way. The relay keeps the filters
//!   announced meanwhile, so the other nodes keep sending to A rather than to nobody. Relays are kept here,
//!   beside the index, so a restarted topic shard puts them back.
//! - **B recognizes repeats.** A message published on a clustered node carries its [`Origin`]. Once B's
//!   routes are known, one message can reach X both directly and through A's relay (or be in the queue A
//!   handed over and arrive again directly). For [`REMEMBER_FOR`] after the import, the session remembers
//!   the origins of what it was given ([`Arrivals`]) and takes each only once.
//!
//! Relayed messages may overtake or trail direct ones: during the move the client's order across
//! publishers is not kept, but nothing is lost and nothing repeated.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractmq_protocol::{Origin, SubOptions};

use crate::router::{Change, Route, Target};

/// How long the departed node relays. Long enough for every node to learn the new node's routes and for
/// what was queued towards the old node to arrive, with room to spare.
pub const RELAY_FOR: Duration = Duration::from_secs(10);

/// How long the new node remembers what reached the moved session: longer than the relay runs, so that a
/// relayed message arriving late is still recognized.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);

/// Most origins one moved session remembers; past it the oldest are forgotten (a repeat of one of those
/// would get through: at most once per message already older than this many).
const REMEMBER_AT_MOST: usize = 100_000;

/// Where the index keeps a relay: a key no client id can be (client ids never contain NUL).
pub fn relay_key(client_id: &str) -> Arc<str> {
    format!("\0relay\0{client_id}").into()
}

/// The sessions that moved from this node and are still relayed.
#[derive(Default)]
pub struct Relays {
    moved: Mutex<HashMap<Arc<str>, Relay>>,
}

#[derive(Clone)]
struct Relay {
    node: Arc<str>,
    /// The non-shared filters of the session, as index paths.
    filters: Vec<String>,
}

impl Relays {
    /// Index changes that swap `client`'s subscriptions for a relay to `node`, and remember the relay.
    /// Shared subscriptions are left out: their group hands their messages to another member.
    pub fn start(&self, client: &Arc<str>, node: Arc<str>, subscriptions: &[(String, SubOptions)]) -> Vec<Change> {
        let filters: Vec<String> = subscriptions
            .iter()
            .filter(|(filter, _)| !filter.starts_with("$share/"))
            .map(|(filter, _)| filter.clone())
            .collect();
        let key = relay_key(client);
        let mut changes = Vec::with_capacity(filters.len() * 2);
        // The relay first: the filter never has no route here, so other nodes never hear it withdrawn.
        for filter in &filters {
            changes.push(Change {
                filter: filter.clone(),
                key: key.clone(),
                route: Some(relay_route(client, &node)),
            });
            changes.push(Change {
                filter: filter.clone(),
                key: client.clone(),
                route: None,
            });
        }
        self.moved.lock().insert(client.clone(), Relay { node, filters });
        changes
    }

    /// Index changes that end `client`'s relay, if it is the one to `node` (a later move replaces it).
    pub fn stop(&self, client: &Arc<str>, node: &Arc<str>) -> Vec<Change> {
        let mut moved = self.moved.lock();
        if moved.get(client).is_none_or(|r| &r.node != node) {
            return Vec::new();
        }
        let relay = moved.remove(client).expect("checked above");
        let key = relay_key(client);
        relay
            .filters
            .into_iter()
            .map(|filter| Change {
                filter,
                key: key.clone(),
                route: None,
            })
            .collect()
    }

    /// Every relay's index entries, for a shard that rebuilds its index: (filter, key, route).
    pub fn entries(&self) -> Vec<(String, Arc<str>, Route)> {
        let moved = self.moved.lock();
        let mut all = Vec::new();
        for (client, relay) in moved.iter() {
            let key = relay_key(client);
            for filter in &relay.filters {
                all.push((filter.clone(), key.clone(), relay_route(client, &relay.node)));
            }
        }
        all
    }
}

fn relay_route(client: &Arc<str>, node: &Arc<str>) -> Route {
    Route {
        target: Target::Relay {
            node: node.clone(),
            client: client.clone(),
        },
        options: SubOptions::default(),
        shared: None,
    }
}

/// What reached a session that moved here, by origin, for a while after the move.
pub struct Arrivals {
    until: Instant,
    seen: HashSet<Origin>,
    order: VecDeque<Origin>,
}

impl Arrivals {
    /// Remember from now on, starting with `already` (what the session brought along).
    pub fn new(already: impl IntoIterator<Item = Origin>) -> Arrivals {
        let mut arrivals = Arrivals {
            until: Instant::now() + REMEMBER_FOR,
            seen: HashSet::new(),
            order: VecDeque::new(),
        };
        for origin in already {
            arrivals.first(origin);
        }
        arrivals
    }

    /// True the first time `origin` is seen.
    pub fn first(&mut self, origin: Origin) -> bool {
        if !self.seen.insert(origin) {
            return false;
        }
        self.order.push_back(origin);
        if self.order.len() > REMEMBER_AT_MOST {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// Past the time a repeat could still arrive.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(filters: &[&str]) -> Vec<(String, SubOptions)> {
        filters.iter().map(|f| (f.to_string(), SubOptions::default())).collect()
    }

    #[test]
    fn a_relay_replaces_the_plain_subscriptions_and_ends_only_for_its_node() {
        let relays = Relays::default();
        let client: Arc<str> = "x".into();
        let changes = relays.start(&client, "b".into(), &subs(&["a/+", "$share/g/a/b"]));
        let summary: Vec<(&str, &str, bool)> = changes
            .iter()
            .map(|c| (c.filter.as_str(), &*c.key, c.route.is_some()))
            .collect();
        assert_eq!(summary, [("a/+", "\0relay\0x", true), ("a/+", "x", false)]);
        assert_eq!(relays.entries().len(), 1);
        assert!(relays.stop(&client, &"c".into()).is_empty(), "not the relay to c");
        assert_eq!(relays.stop(&client, &"b".into()).len(), 1);
        assert!(relays.entries().is_empty());
    }

    #[test]
    fn an_origin_is_taken_once_and_what_came_along_counts() {
        let mut arrivals = Arrivals::new([(1, 1)]);
        assert!(!arrivals.first((1, 1)));
        assert!(arrivals.first((1, 2)));
        assert!(!arrivals.first((1, 2)));
        assert!(arrivals.first((2, 2)));
        assert!(!arrivals.expired(Instant::now()));
    }
}
