//! The other nodes' routes, and matching a published topic against them.
//!
//! Each node announces the filters it has subscribers for (and each member of a shared subscription); this
//! node keeps them per node, to replace them wholesale or drop them when the node goes down, and in one
//! trie for matching. Publishers match against an immutable snapshot of the trie (as the local index works,
//! see `ractmq_broker::router`); the forwarder is the one writer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use ractmq_broker::{RemoteMatch, RemoteMember};
use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::trie::SubscriptionTrie;

use crate::wire::WireRoute;

/// What one trie entry stands for.
#[derive(Debug, Clone)]
enum Entry {
    /// A node with at least one subscriber to the filter.
    Node(Arc<str>),
    Member(RemoteMember),
}

type Trie = SubscriptionTrie<Arc<str>, Entry>;

#[derive(Default)]
pub struct RemoteRoutes {
    by_node: Mutex<HashMap<Arc<str>, HashSet<WireRoute>>>,
    /// The writer's current trie; `snapshot` is what publishers read.
    trie: Mutex<Trie>,
    snapshot: ArcSwap<Trie>,
}

impl RemoteRoutes {
    /// Apply a node's route changes (all of its routes, after forgetting the old ones, when `reset`).
    pub fn update(&self, node: &str, reset: bool, add: Vec<WireRoute>, remove: Vec<WireRoute>) {
        let mut by_node = self.by_node.lock();
        let mut trie = self.trie.lock();
        let node: Arc<str> = match by_node.get_key_value(node) {
            Some((name, _)) => name.clone(),
            None => node.into(),
        };
        let routes = by_node.entry(node.clone()).or_default();
        if reset {
            for route in routes.drain() {
                unindex(&mut trie, &node, &route);
            }
        }
        for route in remove {
            if routes.remove(&route) {
                unindex(&mut trie, &node, &route);
            }
        }
        for route in add {
            if let Some((path, key, entry)) = index_entry(&node, &route) {
                if routes.insert(route) {
                    trie.insert(&path, key, entry);
                }
            }
        }
        if routes.is_empty() {
            by_node.remove(&node);
        }
        self.snapshot.store(Arc::new(trie.clone()));
    }

    /// Forget every route of `node` (it went down).
    pub fn drop_node(&self, node: &str) -> usize {
        let mut by_node = self.by_node.lock();
        let Some((node, routes)) = by_node.remove_entry(node) else {
            return 0;
        };
        let mut trie = self.trie.lock();
        for route in &routes {
            unindex(&mut trie, &node, route);
        }
        self.snapshot.store(Arc::new(trie.clone()));
        routes.len()
    }

    /// Append the routes that match `topic` to `out`, each node once.
    pub fn matches(&self, topic: &str, out: &mut RemoteMatch) {
        let snapshot = self.snapshot.load();
        if snapshot.is_empty() {
            return;
        }
        snapshot.for_each_match(topic, |_, entry| match entry {
            Entry::Node(node) => {
                if !out.nodes.contains(node) {
                    out.nodes.push(node.clone());
                }
            }
            Entry::Member(member) => out.shared.push(member.clone()),
        });
    }

    /// How many routes `node` has announced.
    #[cfg(test)]
    pub fn count(&self, node: &str) -> usize {
        self.by_node.lock().get(node).map_or(0, HashSet::len)
    }

    /// Every (node, route), for listings.
    pub fn all(&self) -> Vec<(Arc<str>, WireRoute)> {
        let by_node = self.by_node.lock();
        let mut all: Vec<(Arc<str>, WireRoute)> = by_node
            .iter()
            .flat_map(|(node, routes)| routes.iter().map(|r| (node.clone(), r.clone())))
            .collect();
        all.sort_by(|a, b| (&a.0, format!("{:?}", a.1)).cmp(&(&b.0, format!("{:?}", b.1))));
        all
    }
}

/// Where a route sits in the trie: its filter, its key, and the entry.
fn index_entry(node: &Arc<str>, route: &WireRoute) -> Option<(String, Arc<str>, Entry)> {
    match route {
        WireRoute::Filter(filter) => Some((filter.clone(), node.clone(), Entry::Node(node.clone()))),
        WireRoute::Shared { group, member } => {
            let Some(Ok(parts)) = parse_shared(group) else {
                return None;
            };
            let key: Arc<str> = format!("{node}\0{member}").into();
            let entry = Entry::Member(RemoteMember {
                group: group.as_str().into(),
                node: node.clone(),
                member: member.as_str().into(),
                key: key.clone(),
            });
            Some((parts.filter.to_string(), key, entry))
        }
    }
}

fn unindex(trie: &mut Trie, node: &Arc<str>, route: &WireRoute) {
    if let Some((path, key, _)) = index_entry(node, route) {
        trie.remove(&path, &key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(f: &str) -> WireRoute {
        WireRoute::Filter(f.into())
    }

    fn matched(routes: &RemoteRoutes, topic: &str) -> (Vec<String>, Vec<String>) {
        let mut out = RemoteMatch::default();
        routes.matches(topic, &mut out);
        let mut nodes: Vec<String> = out.nodes.iter().map(|n| n.to_string()).collect();
        nodes.sort();
        let mut members: Vec<String> = out
            .shared
            .iter()
            .map(|m| format!("{}:{}:{}", m.node, m.group, m.member))
            .collect();
        members.sort();
        (nodes, members)
    }

    #[test]
    fn a_topic_reaches_each_node_once_however_many_of_its_filters_match() {
        let routes = RemoteRoutes::default();
        routes.update("n2", false, vec![filter("a/+"), filter("a/#"), filter("a/b")], vec![]);
        routes.update("n3", false, vec![filter("x/#")], vec![]);
        assert_eq!(matched(&routes, "a/b"), (vec!["n2".into()], vec![]));
        assert_eq!(matched(&routes, "x/y"), (vec!["n3".into()], vec![]));
        assert_eq!(matched(&routes, "q"), (vec![], vec![]));
    }

    #[test]
    fn removals_resets_and_downs_take_routes_away() {
        let routes = RemoteRoutes::default();
        routes.update("n2", false, vec![filter("a"), filter("b")], vec![]);
        routes.update("n2", false, vec![], vec![filter("a")]);
        assert_eq!(matched(&routes, "a").0, Vec::<String>::new());
        routes.update("n2", true, vec![filter("c")], vec![]);
        assert_eq!(matched(&routes, "b").0, Vec::<String>::new());
        assert_eq!(matched(&routes, "c").0, vec!["n2".to_string()]);
        assert_eq!(routes.drop_node("n2"), 1);
        assert_eq!(matched(&routes, "c").0, Vec::<String>::new());
        assert_eq!(routes.count("n2"), 0);
    }

    #[test]
    fn shared_members_are_matched_one_by_one() {
        let routes = RemoteRoutes::default();
        let member = |m: &str| WireRoute::Shared {
            group: "$share/g/s/+".into(),
            member: m.into(),
        };
        routes.update("n2", false, vec![member("m1"), member("m2")], vec![]);
        routes.update("n3", false, vec![member("m1")], vec![]);
        let (nodes, members) = matched(&routes, "s/1");
        assert!(nodes.is_empty());
        assert_eq!(
            members,
            ["n2:$share/g/s/+:m1", "n2:$share/g/s/+:m2", "n3:$share/g/s/+:m1"]
        );
        // A malformed group from a peer is ignored rather than indexed somewhere odd.
        routes.update(
            "n3",
            false,
            vec![WireRoute::Shared {
                group: "$share/".into(),
                member: "x".into(),
            }],
            vec![],
        );
        assert_eq!(routes.count("n3"), 1);
    }
}
