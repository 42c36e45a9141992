//! Routing a published message to every matching subscription, without an actor hop.
//!
//! The subscription index is split into shards by the first topic level; filters that start with a wildcard
//! live in shard 0. Each shard's current index is an immutable snapshot behind an `ArcSwap`: a publisher loads
//! at most two snapshots (its topic's shard and shard 0), walks them, and pushes one delivery per matching
//! client into that client's bounded mailbox. Writes go through the shard's actor (see `shard`), which owns the
//! next version and swaps it in. If a shard actor dies, its last snapshot keeps serving until the restarted
//! actor has rebuilt the index from the session store.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use ractmq_protocol::retained::RetainedStore;
use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::{Delivery, Message, Origin, SubOptions};
use ractor::ActorRef;
use tokio::sync::mpsc;

use crate::flow::Congestion;
use crate::index::{index_entry, Change, Index, Route, Target};
use crate::metrics::Metrics;
use crate::moving::Relays;
use crate::routes::{Forward, LocalRoutes, RemoteMatch, RemoteMember, RemoteRouting, RouteKey};
use crate::session_store::{Pushed, SessionStore};
use crate::shard::{ShardMsg, ShardOp};
use crate::shared::{member_key, SharedGroups, SharedStrategy};

pub(crate) struct ShardSlot {
    pub snapshot: ArcSwap<Index>,
    pub actor: RwLock<Option<ActorRef<ShardMsg>>>,
    /// The routes of this partition as other nodes see them; kept by the shard actor beside its index.
    pub routes: Mutex<LocalRoutes>,
}

/// An in-process subscription, kept here so that a rebuilt shard restores it too.
struct LocalSub {
    filter: String,
    sender: mpsc::Sender<Arc<Message>>,
}

pub struct Router {
    pub(crate) shards: Vec<ShardSlot>,
    pub retained: RwLock<RetainedStore>,
    local: Mutex<HashMap<Arc<str>, LocalSub>>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<SessionStore>,
    pub shared: SharedGroups,
    max_retained: usize,
    /// Routing to other nodes, when this node is part of a cluster.
    remote: OnceLock<Arc<dyn RemoteRouting>>,
    /// Sessions that moved to other nodes and are relayed there for a while.
    pub relays: Relays,
}

impl Router {
    pub fn new(
        shard_count: usize,
        max_retained: usize,
        strategy: SharedStrategy,
        metrics: Arc<Metrics>,
        store: Arc<SessionStore>,
    ) -> Self {
        let shards = (0..shard_count.max(1))
            .map(|_| ShardSlot {
                snapshot: ArcSwap::from_pointee(Index::new()),
                actor: RwLock::new(None),
                routes: Mutex::new(LocalRoutes::default()),
            })
            .collect();
        Router {
            shards,
            retained: RwLock::new(RetainedStore::new()),
            local: Mutex::new(HashMap::new()),
            metrics,
            store,
            shared: SharedGroups::new(strategy),
            max_retained,
            remote: OnceLock::new(),
            relays: Relays::default(),
        }
    }

    /// Route to other nodes through `remote` from now on (once: a cluster layer installs itself at start).
    pub fn set_remote(&self, remote: Arc<dyn RemoteRouting>) {
        let _ = self.remote.set(remote);
    }

    pub fn remote(&self) -> Option<&Arc<dyn RemoteRouting>> {
        self.remote.get()
    }

    /// Every route of this node, for a peer that needs them all.
    pub fn local_routes(&self) -> Vec<RouteKey> {
        self.shards
            .iter()
            .flat_map(|s| s.routes.lock().keys().collect::<Vec<_>>())
            .collect()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard_of_level(&self, level: &str) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        let mut h = DefaultHasher::new();
        level.hash(&mut h);
        (h.finish() % self.shards.len() as u64) as usize
    }

    /// The shard that owns `filter` (the `$share/group/` prefix, if any, already removed).
    pub fn shard_of_filter(&self, filter: &str) -> usize {
        match filter.split('/').next().unwrap_or("") {
            "+" | "#" => 0,
            level => self.shard_of_level(level),
        }
    }

    /// The running actor of shard `index` (for the chaos API).
    pub fn shards_actor(&self, index: usize) -> Option<ActorRef<ShardMsg>> {
        self.shards.get(index)?.actor.read().clone()
    }

    /// Subscriptions in the current snapshots.
    pub fn subscription_count(&self) -> usize {
        self.shards.iter().map(|s| s.snapshot.load().len()).sum()
    }

    /// Route one message published on this node: store it if retained, deliver it to every matching
    /// subscription here, and forward it once to each other node with a matching route (retained messages go
    /// to every other node, which keeps a copy). Returns the deliveries here plus the nodes forwarded to.
    pub fn route(&self, message: Arc<Message>) -> usize {
        self.route_reporting(message, &mut Congestion::default())
    }

    /// [`Router::route`], adding to `congestion` the queues it filled past their bounds (subscribers here,
    /// other nodes): the publisher then waits for them (see `flow.rs`) before reading more from its client.
    pub fn route_reporting(&self, message: Arc<Message>, congestion: &mut Congestion) -> usize {
        let started = Instant::now();
        Metrics::add(&self.metrics.routed_by_qos[message.qos as usize], 1);
        // `$SYS` topics describe one node: each node publishes its own.
        let remote = self.remote.get().filter(|_| !message.topic.starts_with("$SYS/"));
        // Numbered while this is still the only reference, so that numbering costs no copy.
        let message = match remote {
            Some(remote) if message.origin.is_none() => with_origin(message, remote.next_origin()),
            _ => message,
        };
        self.store_retained(&message);
        let mut matched = RemoteMatch::default();
        let mut forwards = Vec::new();
        if let Some(remote) = remote {
            remote.matches(&message.topic, &mut matched);
            forwards.extend(matched.nodes.drain(..).map(|node| Forward {
                node,
                deliver: true,
                shared: Vec::new(),
                relay_to: None,
            }));
        }
        let delivered = self.deliver_here(&message, Some((&matched.shared, &mut forwards)), None, congestion);
        let forwarded = forwards.iter().filter(|f| f.deliver || !f.shared.is_empty()).count();
        if let Some(remote) = remote {
            if message.retain {
                for node in remote.peers() {
                    if !forwards.iter().any(|f| f.node == node) {
                        forwards.push(Forward {
                            node,
                            deliver: false,
                            shared: Vec::new(),
                            relay_to: None,
                        });
                    }
                }
            }
            for forward in forwards {
                if let Some(backlog) = remote.forward(&message, forward) {
                    congestion.add(backlog);
                }
            }
        }
        if delivered + forwarded == 0 {
            Metrics::add(&self.metrics.messages_no_subscribers, 1);
        }
        self.metrics.route_latency.observe(started.elapsed().as_nanos() as u64);
        delivered + forwarded
    }

    /// Route a message another node forwarded here: keep it if retained, deliver it to this node's matching
    /// (non-shared) subscribers if `deliver`, and to the named members of shared subscriptions. It is never
    /// forwarded again: the publishing node sent it to every node that needs it.
    pub fn route_from_peer(
        &self,
        message: Arc<Message>,
        deliver: bool,
        shared: &[(Arc<str>, Arc<str>)],
        congestion: &mut Congestion,
    ) -> usize {
        self.store_retained(&message);
        let mut delivered = if deliver {
            self.deliver_here(&message, None, None, congestion)
        } else {
            0
        };
        for (group, member) in shared {
            if self.deliver_to_member(group, member, &message, congestion) {
                delivered += 1;
            }
        }
        if delivered == 0 && (deliver || !shared.is_empty()) {
            Metrics::add(&self.metrics.messages_no_subscribers, 1);
        }
        delivered
    }

    /// Route a message another node relayed here for `client`, a session that moved here from there: to that
    /// client's matching subscriptions only, or, with `members`, to its memberships of those shared groups. If
    /// the session has moved on again meanwhile, the message follows it.
    pub fn route_relayed(
        &self,
        message: Arc<Message>,
        client: &str,
        members: &[(Arc<str>, Arc<str>)],
        congestion: &mut Congestion,
    ) -> usize {
        let delivered = match members {
            [] => match self.deliver_here(&message, None, Some(client), congestion) {
                0 => match self.relays.node_of(client) {
                    Some(node) => {
                        self.relay(&message, &node, &client.into(), congestion);
                        1
                    }
                    None => 0,
                },
                here => here,
            },
            _ => members
                .iter()
                .filter(|(group, member)| self.deliver_to_member(group, member, &message, congestion))
                .count(),
        };
        if delivered == 0 {
            Metrics::add(&self.metrics.messages_no_subscribers, 1);
        }
        delivered
    }

    fn store_retained(&self, message: &Arc<Message>) {
        if message.retain && !self.retained.write().set(message.clone(), self.max_retained) {
            Metrics::add(&self.metrics.dropped_retained_full, 1);
        }
    }

    /// Keep `message` as its topic's retained message unless the topic has one already: how a node catches up
    /// on the retained messages of the others when a link to one comes up.
    pub fn retain_if_absent(&self, message: Arc<Message>) {
        let mut retained = self.retained.write();
        if retained.get(&message.topic).is_none() && !retained.set(message, self.max_retained) {
            Metrics::add(&self.metrics.dropped_retained_full, 1);
        }
    }

    /// Deliver to the matching subscriptions of this node. With `shared` (a message published here), each
    /// shared group that matches gets it once, through a member here or, by adding to the forwards, one on
    /// another node; without it (a message from a peer) shared members are left out, as the publishing node
    /// chose them. With `only`, to that client's (non-shared) subscriptions alone, if its session moved here
    /// lately.
    fn deliver_here(
        &self,
        message: &Arc<Message>,
        shared: Option<(&[RemoteMember], &mut Vec<Forward>)>,
        only: Option<&str>,
        congestion: &mut Congestion,
    ) -> usize {
        let topic: &str = &message.topic;
        let first = topic.split('/').next().unwrap_or("");
        let own = self.shard_of_level(first);
        let own_snapshot = self.shards[own].snapshot.load();
        let wildcard_snapshot = (own != 0 && !topic.starts_with('$')).then(|| self.shards[0].snapshot.load());

        let mut hits: Vec<(&Arc<str>, &Route)> = Vec::new();
        // A client appears at most once per filter: only hits from several filters can need merging.
        let mut filters = collect_matches(&own_snapshot, topic, &mut hits);
        if let Some(snap) = &wildcard_snapshot {
            // Shard 0 holds the leading-wildcard filters; its literal ones never match this topic.
            filters += collect_matches(snap, topic, &mut hits);
        }
        // Members of shared subscriptions are served apart: one per group.
        let mut shared_hits = Vec::new();
        if hits.iter().any(|(_, r)| r.shared.is_some()) {
            hits.retain(|&(k, r)| {
                let member = r.shared.is_some();
                if member {
                    shared_hits.push((k, r));
                }
                !member
            });
        }
        if let Some(client) = only {
            // Only a session that moved here lately takes what its old node relays: one that started clean
            // since is another session.
            hits.retain(|(k, r)| &***k == client && matches!(&r.target, Target::Session(s) if s.takes_relayed()));
            shared_hits.clear();
        }
        if filters > 1 && hits.len() > 1 {
            hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        let mut delivered = 0;
        let mut i = 0;
        while i < hits.len() {
            let (key, route) = hits[i];
            let mut j = i + 1;
            while j < hits.len() && hits[j].0 == key {
                j += 1;
            }
            // Overlapping subscriptions of one client: one delivery at the highest QoS, every identifier.
            let group = &hits[i..j];
            i = j;
            if route.options.no_local && message.publisher.as_deref() == Some(&**key) {
                continue;
            }
            let qos = group
                .iter()
                .map(|(_, r)| r.options.qos)
                .max()
                .unwrap_or_default()
                .min(message.qos);
            let retain = message.retain && group.iter().any(|(_, r)| r.options.retain_as_published);
            let subscription_ids = group.iter().filter_map(|(_, r)| r.options.subscription_id).collect();
            match &route.target {
                // A session that moved here lately may have been given this one already (see `moving.rs`).
                Target::Session(session) if !session.first_arrival(message) => {}
                Target::Session(session) => {
                    let delivery = Delivery {
                        message: message.clone(),
                        qos,
                        retain,
                        subscription_ids,
                        shared: None,
                    };
                    match session.push(delivery, &self.metrics) {
                        Pushed::Queued => {}
                        // A client's own full queue never holds it: it could not drain while held.
                        Pushed::Full if message.publisher.as_ref() == Some(key) => {}
                        Pushed::Full => congestion.add(session.clone()),
                        // Packed up and moved a moment ago: it follows the session.
                        Pushed::Moved(node) => self.relay(message, &node, &session.client_id, congestion),
                    }
                }
                Target::Local(sender) => {
                    if sender.try_send(message.clone()).is_err() {
                        Metrics::add(&self.metrics.dropped_local_subscriber, 1);
                    }
                }
                Target::Relay { node, client } => self.relay(message, node, client, congestion),
            }
            delivered += 1;
        }
        if let Some((remote, forwards)) = shared {
            if !shared_hits.is_empty() || !remote.is_empty() {
                delivered += self.deliver_shared(message, shared_hits, remote, forwards, congestion);
            }
        }
        delivered
    }

    /// Pass `message` on to `client`, a session that moved to `node`.
    fn relay(&self, message: &Arc<Message>, node: &Arc<str>, client: &Arc<str>, congestion: &mut Congestion) {
        self.relay_shared(message, node, client, Vec::new(), congestion);
    }

    /// Pass `message` on to `client`, a session that moved to `node`: to its subscriptions, or to its
    /// memberships in `members` (group, member key).
    fn relay_shared(
        &self,
        message: &Arc<Message>,
        node: &Arc<str>,
        client: &Arc<str>,
        members: Vec<(Arc<str>, Arc<str>)>,
        congestion: &mut Congestion,
    ) {
        if let Some(remote) = self.remote.get() {
            let relay = Forward {
                node: node.clone(),
                deliver: false,
                shared: members,
                relay_to: Some(client.clone()),
            };
            if let Some(backlog) = remote.forward(message, relay) {
                congestion.add(backlog);
            }
        }
    }

    /// One delivery per shared group among `local` (members here that match the message) and `remote`
    /// (members on other nodes): a member here is given the message, one elsewhere is added to `forwards`.
    /// Returns the deliveries made here.
    fn deliver_shared(
        &self,
        message: &Arc<Message>,
        mut local: Vec<(&Arc<str>, &Route)>,
        remote: &[RemoteMember],
        forwards: &mut Vec<Forward>,
        congestion: &mut Congestion,
    ) -> usize {
        local.sort_unstable_by(|a, b| (&a.1.shared, a.0).cmp(&(&b.1.shared, b.0)));
        let mut remote: Vec<&RemoteMember> = remote.iter().collect();
        remote.sort_unstable_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
        let mut groups: Vec<&Arc<str>> = local
            .iter()
            .filter_map(|(_, r)| r.shared.as_ref())
            .chain(remote.iter().map(|m| &m.group))
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let mut delivered = 0;
        for group in groups {
            let here: Vec<(&Arc<str>, &Route)> = local
                .iter()
                .copied()
                .filter(|(_, r)| r.shared.as_ref() == Some(group))
                .collect();
            let there: Vec<&RemoteMember> = remote.iter().copied().filter(|m| &m.group == group).collect();
            match self.choose_member(group, &here, &there, message) {
                Chosen::Here(route) => {
                    self.push_shared(group, route, message, congestion);
                    delivered += 1;
                }
                Chosen::There(member) => match forwards.iter_mut().find(|f| f.node == member.node) {
                    Some(forward) => forward.shared.push((group.clone(), member.member.clone())),
                    None => forwards.push(Forward {
                        node: member.node.clone(),
                        deliver: false,
                        shared: vec![(group.clone(), member.member.clone())],
                        relay_to: None,
                    }),
                },
            }
        }
        delivered
    }

    /// The member of `group` that gets `message`, by the group's strategy. Members connected here are preferred
    /// to disconnected ones; members on other nodes count as connected (their node decides, see
    /// [`Router::deliver_to_member`]). `here` and `there` must not both be empty.
    fn choose_member<'a>(
        &self,
        group: &Arc<str>,
        here: &[(&'a Arc<str>, &'a Route)],
        there: &[&'a RemoteMember],
        message: &Arc<Message>,
    ) -> Chosen<'a> {
        let online: Vec<(&Arc<str>, &Route)> = here.iter().copied().filter(|(_, r)| r.is_online()).collect();
        let here = if online.is_empty() && there.is_empty() {
            here.to_vec()
        } else {
            online
        };
        let keys: Vec<&Arc<str>> = here
            .iter()
            .map(|(k, _)| *k)
            .chain(there.iter().map(|m| &m.key))
            .collect();
        let i = self.shared.choose(group, &keys, message);
        match here.get(i) {
            Some((_, route)) => Chosen::Here(route),
            None => Chosen::There(there[i - here.len()]),
        }
    }

    fn push_shared(&self, group: &Arc<str>, route: &Route, message: &Arc<Message>, congestion: &mut Congestion) {
        match &route.target {
            Target::Session(session) => {
                let delivery = Delivery {
                    message: message.clone(),
                    qos: route.options.qos.min(message.qos),
                    retain: message.retain && route.options.retain_as_published,
                    subscription_ids: route.options.subscription_id.into_iter().collect(),
                    shared: Some(group.clone()),
                };
                match session.push(delivery, &self.metrics) {
                    Pushed::Queued => {}
                    Pushed::Full if message.publisher.as_ref() == Some(&session.client_id) => {}
                    Pushed::Full => congestion.add(session.clone()),
                    // The member packed up and moved a moment ago, its membership with it: its share follows it.
                    Pushed::Moved(node) => {
                        let member = member_key(group, &session.client_id);
                        let members = vec![(group.clone(), member)];
                        self.relay_shared(message, &node, &session.client_id, members, congestion);
                    }
                }
            }
            Target::Local(sender) => {
                if sender.try_send(message.clone()).is_err() {
                    Metrics::add(&self.metrics.dropped_local_subscriber, 1);
                }
            }
            // Relays are never members of shared groups.
            Target::Relay { .. } => {}
        }
    }

    /// Give `message` to `member` of `group`, chosen by the node it was published on; if that member has gone
    /// meanwhile, to another member of the group here. False if the group has no member here.
    fn deliver_to_member(
        &self,
        group: &Arc<str>,
        member: &Arc<str>,
        message: &Arc<Message>,
        congestion: &mut Congestion,
    ) -> bool {
        let Some(Ok(parts)) = parse_shared(group) else {
            return false;
        };
        let snapshot = self.shards[self.shard_of_filter(parts.filter)].snapshot.load();
        if let Some(route) = snapshot
            .get(parts.filter, member)
            .filter(|r| r.shared.as_ref() == Some(group))
        {
            self.push_shared(group, route, message, congestion);
            return true;
        }
        // The member moved to another node a moment ago, its membership with it: its share follows it.
        let client = member.split_once('\0').map(|(_, client)| client);
        if let Some((client, node)) = client.and_then(|c| self.relays.node_of(c).map(|n| (c, n))) {
            let members = vec![(group.clone(), member.clone())];
            self.relay_shared(message, &node, &client.into(), members, congestion);
            return true;
        }
        self.dispatch_in_group(group, parts.filter, &snapshot, None, message, congestion)
    }

    /// A member of `delivery`'s shared group is leaving (`leaving` is its client id) without having
    /// acknowledged it: give the message to another member here. False if the group has no other member here.
    pub fn dispatch_shared(&self, delivery: &Delivery, leaving: &str) -> bool {
        let Some(group) = &delivery.shared else {
            return false;
        };
        let Some(Ok(parts)) = parse_shared(group) else {
            return false;
        };
        let snapshot = self.shards[self.shard_of_filter(parts.filter)].snapshot.load();
        let mut congestion = Congestion::default();
        self.dispatch_in_group(
            group,
            parts.filter,
            &snapshot,
            Some(leaving),
            &delivery.message,
            &mut congestion,
        )
    }

    fn dispatch_in_group(
        &self,
        group: &Arc<str>,
        path: &str,
        snapshot: &Index,
        leaving: Option<&str>,
        message: &Arc<Message>,
        congestion: &mut Congestion,
    ) -> bool {
        let mut members = Vec::new();
        snapshot.for_each_at(path, |k, r| {
            if r.shared.as_ref() == Some(group) && !leaving.is_some_and(|c| r.is_client(c)) {
                members.push((k, r));
            }
        });
        if members.is_empty() {
            return false;
        }
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Chosen::Here(route) = self.choose_member(group, &members, &[], message) {
            self.push_shared(group, route, message, congestion);
        }
        true
    }
    /// Apply index changes and wait until each shard has published them: after this returns, a publish sees
    /// the new subscriptions. A shard that is restarting is retried; its rebuild reads the session store, so a
    /// change already recorded there is not lost even if every retry fails.
    ///
    /// In a cluster, when the changes give this node a route it did not have, this also waits (a bounded
    /// time) until the other nodes have it: after a SUBACK, a message published on any node reaches the new
    /// subscription.
    pub async fn apply(&self, changes: Vec<Change>) {
        let new_routes = self.apply_here(changes).await;
        self.settle(new_routes).await;
    }

    /// [`Router::apply`] on this node only: true if the changes gave it a route it did not have, for
    /// [`Router::settle`].
    pub async fn apply_here(&self, changes: Vec<Change>) -> bool {
        let mut by_shard: HashMap<usize, Vec<ShardOp>> = HashMap::new();
        for c in changes {
            let shard = self.shard_of_filter(&c.filter);
            by_shard.entry(shard).or_default().push(ShardOp {
                filter: c.filter,
                key: c.key,
                route: c.route,
            });
        }
        let mut new_routes = false;
        for (shard, ops) in by_shard {
            new_routes |= self.apply_to_shard(shard, ops).await;
        }
        new_routes
    }

    /// After [`Router::apply_here`] gave this node `new_routes`: wait (a bounded time) until the other nodes
    /// have them.
    pub async fn settle(&self, new_routes: bool) {
        if let (true, Some(remote)) = (new_routes, self.remote.get()) {
            remote.settled().await;
        }
    }

    /// True if the shard gained a route (see [`crate::routes`]).
    async fn apply_to_shard(&self, shard: usize, ops: Vec<ShardOp>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let ops = Arc::new(ops);
        loop {
            let actor = self.shards[shard].actor.read().clone();
            if let Some(actor) = actor {
                let ops = ops.clone();
                let result = ractor::call!(actor, |reply| ShardMsg::Apply(ops, Some(reply)));
                if let Ok(new_routes) = result {
                    return new_routes;
                }
            }
            if Instant::now() > deadline {
                tracing::error!(
                    shard,
                    "topic shard did not come back within 5 s; its rebuild will restore the change"
                );
                return false;
            }
            // The shard is between death and restart: its supervisor registers the new actor shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Apply changes without waiting (used from `Drop`).
    pub fn apply_detached(&self, changes: Vec<Change>) {
        for c in changes {
            let shard = self.shard_of_filter(&c.filter);
            if let Some(actor) = self.shards[shard].actor.read().clone() {
                let op = ShardOp {
                    filter: c.filter,
                    key: c.key,
                    route: c.route,
                };
                let _ = actor.send_message(ShardMsg::Apply(Arc::new(vec![op]), None));
            }
        }
    }

    pub(crate) fn register_local(&self, key: Arc<str>, filter: String, sender: mpsc::Sender<Arc<Message>>) {
        self.local.lock().insert(key, LocalSub { filter, sender });
    }

    pub(crate) fn unregister_local(&self, key: &str) {
        self.local.lock().remove(key);
    }

    /// Every subscription that belongs in `shard`, from the sources of truth: the session store and the
    /// in-process subscriptions. This is how a restarted shard gets its index back.
    pub(crate) fn rebuild_index(&self, shard: usize) -> (Index, LocalRoutes) {
        let mut index = Index::new();
        let mut routes = LocalRoutes::default();
        for session in self.store.all() {
            let state = session.state.lock();
            for (filter, options) in &state.subscriptions {
                let (path, key, shared) = index_entry(filter, &session.client_id);
                if self.shard_of_filter(path) == shard {
                    let route = Route {
                        target: Target::Session(session.clone()),
                        options: options.clone(),
                        shared,
                    };
                    if index.insert(path, key.clone(), route.clone()) {
                        routes.added(path, &key, &route);
                    }
                }
            }
        }
        for (filter, key, route) in self.relays.entries() {
            if self.shard_of_filter(&filter) == shard && index.insert(&filter, key.clone(), route.clone()) {
                routes.added(&filter, &key, &route);
            }
        }
        for (key, sub) in self.local.lock().iter() {
            if self.shard_of_filter(&sub.filter) == shard {
                let route = Route {
                    target: Target::Local(sub.sender.clone()),
                    options: SubOptions {
                        qos: ractmq_codec::QoS::ExactlyOnce,
                        ..SubOptions::default()
                    },
                    shared: None,
                };
                if index.insert(&sub.filter, key.clone(), route.clone()) {
                    routes.added(&sub.filter, key, &route);
                }
            }
        }
        (index, routes)
    }

    /// Retained messages matching `filter`, for a new subscription.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        self.retained.read().matching(filter, Instant::now())
    }
}

/// `message` numbered `origin`, cloned only if another holder already shares it.
fn with_origin(mut message: Arc<Message>, origin: Origin) -> Arc<Message> {
    match Arc::get_mut(&mut message) {
        Some(m) => m.origin = Some(origin),
        None => {
            let mut m = (*message).clone();
            m.origin = Some(origin);
            message = Arc::new(m);
        }
    }
    message
}

/// Where a shared group's message goes.
enum Chosen<'a> {
    Here(&'a Route),
    There(&'a RemoteMember),
}

/// Append every subscription of `index` that matches `topic` to `hits`; returns how many filters matched.
fn collect_matches<'a>(index: &'a Index, topic: &str, hits: &mut Vec<(&'a Arc<str>, &'a Route)>) -> usize {
    let mut filters = 0;
    index.for_each_matching_filter(topic, |subscribers| {
        filters += 1;
        hits.extend(subscribers);
    });
    filters
}
