//! The moments after a session moves from one node to another, on both nodes.
//!
//! When node B takes over a client's session from node A (`handover.rs`), the other nodes still route that
//! client's messages to A until they learn B's routes, and A's own routes are what they know. Messages that
//! reach A for the departed session must not be lost, and none may reach the client twice.
//!
//! - **A relays.** In the same index change that removes the session's subscriptions, A puts a *relay* under
//!   its non-shared filters: a route whose target is "client X on node B" ([`Relays`]). Everything that reaches
//!   A for those filters during [`RELAY_FOR`] is forwarded to B addressed to X alone, and a delivery that
//!   reached the session itself after it packed up is bounced the same way. A shared group's message meant
//!   for X's membership on A (chosen here a moment before, or by another node that has not heard yet) goes
//!   to X's membership on B. The relay keeps the filters announced meanwhile, so the other nodes
//!   keep sending to A rather than to nobody. A later move of X replaces the relay, and X coming back to A
//!   ends it; a relayed message that reaches a node X has already left again follows X on. Relays are kept here, beside the index, so a restarted topic shard puts them back.
//! - **B recognizes repeats.** A message published on a clustered node carries its [`Origin`](ractmq_protocol::Origin). Once B's
//!   routes are known, one message can reach X both directly and through A's relay (or be in the queue A
//!   handed over and arrive again directly). For [`REMEMBER_FOR`](crate::arrivals::REMEMBER_FOR) after the import, the session remembers
//!   the origins of what it was given ([`Arrivals`](crate::arrivals::Arrivals)) and takes each only once. Only such a session takes
//!   relayed messages: if X starts clean meanwhile, they were for the session it discarded.
//!
//! Limits: relayed messages may overtake or trail direct ones, so during the move the client's order is not
//! kept, even for one publisher; a message that reaches A more than [`RELAY_FOR`] after the move (a link
//! held up that long) is not relayed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractmq_protocol::SubOptions;

use crate::index::{index_entry, Change, Route, Target};

/// How long the departed node relays. Long enough for every node to learn the new node's routes and for
/// what was queued towards the old node to arrive, with room to spare.
pub const RELAY_FOR: Duration = Duration::from_secs(10);

/// Where the index keeps a relay: a key no client id can be (client ids never contain NUL).
pub fn relay_key(client_id: &str) -> Arc<str> {
    format!("\0relay\0{client_id}").into()
}

/// The sessions that moved from this node and are still relayed.
#[derive(Default)]
pub struct Relays {
    moved: Mutex<HashMap<Arc<str>, Relay>>,
    next: AtomicU64,
}

struct Relay {
    node: Arc<str>,
    /// The non-shared filters of the session, as index paths.
    filters: Vec<String>,
    /// Which move of the client this relay is for: a later move replaces it, and only its own timer ends it.
    generation: u64,
}

impl Relays {
    /// Index changes that swap `client`'s subscriptions (`filters`, as the client sent them) for a relay to
    /// `node`, and remember the relay; returns the relay's generation, for [`Relays::stop`]. The session's
    /// shared subscriptions go in the same change without a relay: a group's message still meant for this
    /// member here is sent after it by [`Relays::node_of`]. A relay of an earlier move of the client is
    /// replaced.
    pub fn start(&self, client: &Arc<str>, node: Arc<str>, filters: &[String]) -> (u64, Vec<Change>) {
        let key = relay_key(client);
        let mut relayed = Vec::new();
        let mut changes = Vec::with_capacity(filters.len() * 2);
        for filter in filters {
            let (path, member, group) = index_entry(filter, client);
            // The relay first: the filter never has no route here, so other nodes never hear it withdrawn.
            if group.is_none() {
                changes.push(Change {
                    filter: path.to_string(),
                    key: key.clone(),
                    route: Some(relay_route(client, &node)),
                });
                relayed.push(path.to_string());
            }
            changes.push(Change {
                filter: path.to_string(),
                key: member,
                route: None,
            });
        }
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let mut moved = self.moved.lock();
        if let Some(earlier) = moved.remove(client) {
            changes.extend(ended(
                &key,
                earlier.filters.into_iter().filter(|f| !relayed.contains(f)),
            ));
        }
        let relay = Relay {
            node,
            filters: relayed,
            generation,
        };
        moved.insert(client.clone(), relay);
        (generation, changes)
    }

    /// Index changes that end `client`'s relay if it is still the one of `generation`.
    pub fn stop(&self, client: &Arc<str>, generation: u64) -> Vec<Change> {
        self.end_if(client, |relay| relay.generation == generation)
    }

    /// Index changes that end `client`'s relay, whichever it is: the session came back to this node.
    pub fn end(&self, client: &Arc<str>) -> Vec<Change> {
        self.end_if(client, |_| true)
    }

    fn end_if(&self, client: &Arc<str>, which: impl Fn(&Relay) -> bool) -> Vec<Change> {
        let mut moved = self.moved.lock();
        if !moved.get(client).is_some_and(which) {
            return Vec::new();
        }
        let relay = moved.remove(client).expect("checked above");
        ended(&relay_key(client), relay.filters.into_iter())
    }

    /// The node `client` moved to, while it is relayed there.
    pub fn node_of(&self, client: &str) -> Option<Arc<str>> {
        self.moved.lock().get(client).map(|r| r.node.clone())
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

/// The index changes that remove relay `key` from `filters`.
fn ended(key: &Arc<str>, filters: impl Iterator<Item = String>) -> Vec<Change> {
    filters
        .map(|filter| Change {
            filter,
            key: key.clone(),
            route: None,
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(filters: &[&str]) -> Vec<String> {
        filters.iter().map(|f| f.to_string()).collect()
    }

    fn summary(changes: &[Change]) -> Vec<(&str, &str, bool)> {
        changes
            .iter()
            .map(|c| (c.filter.as_str(), &*c.key, c.route.is_some()))
            .collect()
    }

    #[test]
    fn a_relay_replaces_the_subscriptions_and_ends_only_by_its_own_timer() {
        let relays = Relays::default();
        let client: Arc<str> = "x".into();
        let (first, changes) = relays.start(&client, "b".into(), &filters(&["a/+", "$share/g/a/b"]));
        assert_eq!(
            summary(&changes),
            [
                ("a/+", "\0relay\0x", true),
                ("a/+", "x", false),
                ("a/b", "$share/g/a/b\0x", false)
            ]
        );
        assert_eq!(relays.entries().len(), 1);
        // Moved again (say back and forth) before the first relay's time is up: the new relay replaces it,
        // the filter it no longer has loses its relay, and the first timer ends nothing.
        let (second, changes) = relays.start(&client, "c".into(), &filters(&["q"]));
        assert_eq!(
            summary(&changes),
            [
                ("q", "\0relay\0x", true),
                ("q", "x", false),
                ("a/+", "\0relay\0x", false)
            ]
        );
        assert!(relays.stop(&client, first).is_empty(), "an earlier move's timer");
        assert_eq!(summary(&relays.stop(&client, second)), [("q", "\0relay\0x", false)]);
        assert!(relays.entries().is_empty());
    }

    #[test]
    fn a_session_that_comes_back_ends_its_relay() {
        let relays = Relays::default();
        let client: Arc<str> = "x".into();
        let (generation, _) = relays.start(&client, "b".into(), &filters(&["a"]));
        assert_eq!(summary(&relays.end(&client)), [("a", "\0relay\0x", false)]);
        assert!(relays.stop(&client, generation).is_empty());
    }
}
