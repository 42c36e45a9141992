//! This node's routes as other nodes need to know them, and the seam through which a cluster layer routes
//! messages to other nodes.
//!
//! Other nodes do not need this node's subscribers, only which filters have at least one here (EMQX's
//! `emqx_route`: filter -> node). Shared subscriptions are the exception: a group balances over all its
//! members cluster-wide, so each member is announced. Each topic shard counts the routes of its partition
//! ([`LocalRoutes`]) as it applies changes and reports the first subscriber to a filter and the last one
//! leaving to the [`RemoteRouting`] layer, if one is installed. Without one (a single node) none of this
//! costs a publish anything.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractmq_protocol::{Message, Origin};

use crate::flow::Backlog;

use crate::index::Route;

/// One route this node announces to the others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKey {
    /// At least one subscriber (session or in-process) to this filter.
    Filter(Arc<str>),
    /// One member of a shared subscription.
    Shared {
        /// The full shared filter, `$share/{group}/{filter}`.
        group: Arc<str>,
        /// The member's key in this node's index.
        member: Arc<str>,
    },
}

/// The routes of one shard's partition, counted as the shard changes its index.
#[derive(Debug, Default, Clone)]
pub struct LocalRoutes {
    filters: HashMap<Arc<str>, usize>,
    shared: HashSet<(Arc<str>, Arc<str>)>,
}

impl LocalRoutes {
    /// A subscription was added under `path` for `key`; the route it creates, if it is the first.
    pub fn added(&mut self, path: &str, key: &Arc<str>, route: &Route) -> Option<RouteKey> {
        match &route.shared {
            Some(group) => self
                .shared
                .insert((group.clone(), key.clone()))
                .then(|| RouteKey::Shared {
                    group: group.clone(),
                    member: key.clone(),
                }),
            None => {
                if let Some(count) = self.filters.get_mut(path) {
                    *count += 1;
                    return None;
                }
                let path: Arc<str> = path.into();
                self.filters.insert(path.clone(), 1);
                Some(RouteKey::Filter(path))
            }
        }
    }

    /// A subscription was removed; the route it ends, if it was the last.
    pub fn removed(&mut self, path: &str, key: &Arc<str>, route: &Route) -> Option<RouteKey> {
        match &route.shared {
            Some(group) => self
                .shared
                .remove(&(group.clone(), key.clone()))
                .then(|| RouteKey::Shared {
                    group: group.clone(),
                    member: key.clone(),
                }),
            None => {
                let count = self.filters.get_mut(path)?;
                *count -= 1;
                if *count > 0 {
                    return None;
                }
                let (path, _) = self.filters.remove_entry(path)?;
                Some(RouteKey::Filter(path))
            }
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = RouteKey> + '_ {
        let filters = self.filters.keys().cloned().map(RouteKey::Filter);
        let shared = self.shared.iter().map(|(group, member)| RouteKey::Shared {
            group: group.clone(),
            member: member.clone(),
        });
        filters.chain(shared)
    }

    /// What changed from `self` to `next`, as (route, added) pairs.
    pub fn diff(&self, next: &LocalRoutes) -> Vec<(RouteKey, bool)> {
        let before: HashSet<RouteKey> = self.keys().collect();
        let after: HashSet<RouteKey> = next.keys().collect();
        let removed = before.difference(&after).map(|k| (k.clone(), false));
        let added = after.difference(&before).map(|k| (k.clone(), true));
        removed.chain(added).collect()
    }
}

/// A member of a shared subscription on another node, matched by a published topic.
#[derive(Debug, Clone)]
pub struct RemoteMember {
    /// The full shared filter, `$share/{group}/{filter}`.
    pub group: Arc<str>,
    /// The node the member is on.
    pub node: Arc<str>,
    /// Its key on its own node.
    pub member: Arc<str>,
    /// A key unique cluster-wide, for the group's strategy to choose by.
    pub key: Arc<str>,
}

/// The other nodes' routes that a topic matches.
#[derive(Debug, Default)]
pub struct RemoteMatch {
    /// Nodes with at least one (non-shared) subscriber whose filter matches, each once.
    pub nodes: Vec<Arc<str>>,
    /// Members of shared subscriptions on other nodes whose filter matches.
    pub shared: Vec<RemoteMember>,
}

/// What one node is sent for one published message.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The node to send it to.
    pub node: Arc<str>,
    /// Deliver it to the node's own (non-shared) matching subscribers.
    pub deliver: bool,
    /// Deliver it to these members of shared subscriptions: (group, member).
    pub shared: Vec<(Arc<str>, Arc<str>)>,
    /// Deliver it to this client alone: a session that moved to the node (see `moving.rs`).
    pub relay_to: Option<Arc<str>>,
}

/// What a cluster layer provides for routing across nodes; installed with `Router::set_remote`.
pub trait RemoteRouting: Send + Sync + 'static {
    /// This node's routes changed: (route, true) for one added, (route, false) for one removed. Called by
    /// topic shards, so it must not block.
    fn routes_changed(&self, changes: Vec<(RouteKey, bool)>);

    /// Wait (a bounded time) until the other nodes know every route reported so far: called after a
    /// subscription added a route, before its SUBACK.
    fn settled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Append the other nodes' routes that match `topic` to `out`.
    fn matches(&self, topic: &str, out: &mut RemoteMatch);

    /// The nodes that keep a copy of retained messages (every other node this one can reach).
    fn peers(&self) -> Vec<Arc<str>>;

    /// Send `message` to another node (queued, never blocks). Returns the queue towards that node if it is
    /// filling up: the publisher should wait for it (see `flow.rs`) before it publishes more.
    fn forward(&self, message: &Arc<Message>, to: Forward) -> Option<Arc<dyn Backlog>>;

    /// A new identity for a message published on this node (see [`ractmq_protocol::Origin`]).
    fn next_origin(&self) -> Origin;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Target;
    use ractmq_protocol::SubOptions;
    use tokio::sync::mpsc;

    fn route(shared: Option<&str>) -> Route {
        Route {
            target: Target::Local(mpsc::channel(1).0),
            options: SubOptions::default(),
            shared: shared.map(Into::into),
        }
    }

    #[test]
    fn a_filter_is_announced_by_its_first_subscriber_and_withdrawn_by_its_last() {
        let mut routes = LocalRoutes::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert_eq!(
            routes.added("x/+", &a, &route(None)),
            Some(RouteKey::Filter("x/+".into()))
        );
        assert_eq!(routes.added("x/+", &b, &route(None)), None);
        assert_eq!(routes.removed("x/+", &a, &route(None)), None);
        assert_eq!(
            routes.removed("x/+", &b, &route(None)),
            Some(RouteKey::Filter("x/+".into()))
        );
        assert_eq!(routes.keys().count(), 0);
    }

    #[test]
    fn every_shared_member_is_a_route_of_its_own() {
        let mut routes = LocalRoutes::default();
        let (m1, m2): (Arc<str>, Arc<str>) = ("g\0a".into(), "g\0b".into());
        let r = route(Some("$share/g/x"));
        assert!(routes.added("x", &m1, &r).is_some());
        assert!(routes.added("x", &m2, &r).is_some());
        assert!(routes.removed("x", &m1, &r).is_some());
        assert_eq!(routes.keys().count(), 1);
    }

    #[test]
    fn diff_names_what_appeared_and_what_went() {
        let mut before = LocalRoutes::default();
        let key: Arc<str> = "c".into();
        before.added("old", &key, &route(None));
        before.added("kept", &key, &route(None));
        let mut after = LocalRoutes::default();
        after.added("kept", &key, &route(None));
        after.added("new", &key, &route(None));
        let mut diff = before.diff(&after);
        diff.sort();
        assert_eq!(
            diff,
            vec![
                (RouteKey::Filter("new".into()), true),
                (RouteKey::Filter("old".into()), false)
            ]
        );
    }
}
