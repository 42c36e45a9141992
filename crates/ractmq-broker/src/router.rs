//! Routing a published message to every matching subscription, without an actor hop.
//!
//! The subscription index is split into shards by the first topic level; filters that start with a wildcard
//! live in shard 0. Each shard's current index is an immutable snapshot behind an `ArcSwap`: a publisher loads
//! at most two snapshots (its topic's shard and shard 0), walks them, and pushes one delivery per matching
//! client into that client's bounded mailbox. Writes go through the shard's actor (see `shard`), which owns the
//! next version and swaps it in. If a shard actor dies, its last snapshot keeps serving until the restarted
//! actor has rebuilt the index from the session store.
//!
//! This file routes and delivers; by concern, `router/shared_groups.rs` picks the member of a shared group,
//! `router/relays.rs` passes messages on for sessions that moved, and `router/index_writes.rs` writes and
//! rebuilds the index.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use ractmq_protocol::retained::RetainedStore;
use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::trie::Levels;
use ractmq_protocol::{Delivery, Message, SubOptions};
use ractor::ActorRef;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use crate::flow::Congestion;
use crate::hooks::{ClientEvent, HookKind, Hooks};
use crate::index::{index_entry, Change, Index, Route, Target};
use crate::metrics::Metrics;
use crate::moving::Relays;
use crate::routes::{Forward, LocalRoutes, RemoteMatch, RemoteMember, RemoteRouting, RouteKey};
use crate::session_store::{Pushed, SessionShared, SessionStore};
use crate::shard::{ShardMsg, ShardOp};
use crate::shared::{member_key, SharedGroups, SharedStrategy};

mod index_writes;
mod relays;
mod shared_groups;

/// Which shard a first level belongs to: hashed for every message routed, so with foldhash rather than SipHash.
/// A fixed seed keeps the partition the same for the whole run; a publisher who makes its topics share a
/// shard only shares one writer's queue.
const SHARD_HASHER: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5a2d);

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
    /// Where retained messages are kept across restarts, on a node with a store.
    disk: Option<ractmq_store::Store>,
    /// What is told about messages published here and about clients' events (the rule engine).
    hooks: OnceLock<Arc<dyn Hooks>>,
}

impl Router {
    pub fn new(
        shard_count: usize,
        max_retained: usize,
        strategy: SharedStrategy,
        metrics: Arc<Metrics>,
        store: Arc<SessionStore>,
        disk: Option<ractmq_store::Store>,
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
            disk,
            hooks: OnceLock::new(),
        }
    }

    /// Tell `hooks` about messages published here and about clients' events from now on (once per node).
    pub fn set_hooks(&self, hooks: Arc<dyn Hooks>) -> bool {
        self.hooks.set(hooks).is_ok()
    }

    /// The hooks, if installed.
    pub(crate) fn hooks(&self) -> Option<&Arc<dyn Hooks>> {
        self.hooks.get()
    }

    /// The hooks, if installed and wanting `kind`.
    pub(crate) fn hooks_for(&self, kind: HookKind) -> Option<&Arc<dyn Hooks>> {
        self.hooks.get().filter(|h| h.wants(kind))
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
        (SHARD_HASHER.hash_one(level) % self.shards.len() as u64) as usize
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
    pub fn route_reporting(&self, mut message: Arc<Message>, congestion: &mut Congestion) -> usize {
        let started = Instant::now();
        let remote = self.remote_for(&message);
        let (matched, mut forwards) = self.prepare(&mut message, remote, congestion);
        let delivered = self.deliver_one(&message, Some((&matched.shared, &mut forwards)), None, congestion);
        let reached = self.finish(&message, remote, forwards, delivered, congestion);
        self.metrics.route_latency.observe(started.elapsed().as_nanos() as u64);
        reached
    }

    /// Route the messages one client published, in order, as [`Router::route_reporting`] routes each. A run of
    /// consecutive messages to one topic is matched once, and each subscriber here is given the whole run in
    /// one push (see [`crate::session_store::SessionShared::push_all`]) rather than one per message: what a
    /// fan-out costs per subscriber is then paid once per run. Every subscriber still gets them in the order
    /// published.
    pub fn route_batch(&self, messages: impl IntoIterator<Item = Message>, congestion: &mut Congestion) {
        let mut run: Vec<Arc<Message>> = Vec::new();
        for message in messages {
            if run
                .first()
                .is_some_and(|first| first.topic != message.topic || first.publisher != message.publisher)
            {
                self.route_run(&mut run, congestion);
            }
            run.push(Arc::new(message));
        }
        self.route_run(&mut run, congestion);
    }

    /// Route `run` (messages to one topic from one publisher, in order) and empty it.
    fn route_run(&self, run: &mut Vec<Arc<Message>>, congestion: &mut Congestion) {
        if run.len() <= 1 {
            if let Some(message) = run.pop() {
                self.route_reporting(message, congestion);
            }
            return;
        }
        let started = Instant::now();
        let remote = self.remote_for(&run[0]);
        let mut outs: Vec<(RemoteMatch, Vec<Forward>)> = run
            .iter_mut()
            .map(|message| self.prepare(message, remote, congestion))
            .collect();
        let mut delivered = vec![0; run.len()];
        {
            let mut shared: Vec<SharedOut<'_>> = outs.iter_mut().map(|(m, f)| (&m.shared[..], f)).collect();
            self.deliver_here(run, Some(&mut shared), None, congestion, &mut delivered);
        }
        for ((message, (_, forwards)), delivered) in run.iter().zip(outs).zip(delivered) {
            self.finish(message, remote, forwards, delivered, congestion);
        }
        // Each message is counted for its share of the time the run took.
        let each = started.elapsed().as_nanos() as u64 / run.len() as u64;
        for _ in run.iter() {
            self.metrics.route_latency.observe(each);
        }
        run.clear();
    }

    /// The other nodes `message` may go to: none for `$SYS` topics, which describe one node (each node
    /// publishes its own).
    fn remote_for(&self, message: &Message) -> Option<&Arc<dyn RemoteRouting>> {
        self.remote.get().filter(|_| !message.topic.starts_with("$SYS/"))
    }

    /// What comes before delivering a message published here: count it, number it for the cluster, keep it
    /// if retained, and find the other nodes it goes to.
    fn prepare(
        &self,
        message: &mut Arc<Message>,
        remote: Option<&Arc<dyn RemoteRouting>>,
        congestion: &mut Congestion,
    ) -> (RemoteMatch, Vec<Forward>) {
        Metrics::add(&self.metrics.routed_by_qos[message.qos as usize], 1);
        if let Some(remote) = remote {
            if message.origin.is_none() {
                // Numbered while this is still the only reference, so that numbering costs no copy.
                Arc::make_mut(message).origin = Some(remote.next_origin());
            }
        }
        self.store_retained(message, Some(&mut *congestion));
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
        (matched, forwards)
    }

    /// What comes after delivering a message published here: send it to the other nodes (a retained one to
    /// all of them), and count it if nobody got it. Returns the deliveries here plus the nodes forwarded to.
    fn finish(
        &self,
        message: &Arc<Message>,
        remote: Option<&Arc<dyn RemoteRouting>>,
        mut forwards: Vec<Forward>,
        delivered: usize,
        congestion: &mut Congestion,
    ) -> usize {
        // After its own delivery here, so that what rules make of a message follows it.
        if let Some(hooks) = self.hooks_for(HookKind::Published) {
            hooks.published(message, congestion);
        }
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
                if let Some(backlog) = remote.forward(message, forward) {
                    congestion.add(backlog);
                }
            }
        }
        if delivered + forwarded == 0 {
            Metrics::add(&self.metrics.messages_no_subscribers, 1);
            if let Some(hooks) = self.hooks_for(HookKind::MessageDropped) {
                hooks.event(&ClientEvent::Dropped {
                    to: None,
                    message,
                    reason: "no_subscribers",
                });
            }
        }
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
        self.store_retained(&message, Some(&mut *congestion));
        let mut delivered = if deliver {
            self.deliver_one(&message, None, None, congestion)
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

    /// Keep `message` as its topic's retained message (or clear it); on a node with a store, its publisher's
    /// acknowledgement waits for the store to have it too.
    fn store_retained(&self, message: &Arc<Message>, congestion: Option<&mut Congestion>) {
        if !message.retain {
            return;
        }
        let mut retained = self.retained.write();
        if !retained.set(message.clone(), self.max_retained) {
            Metrics::add(&self.metrics.dropped_retained_full, 1);
            return;
        }
        // `$SYS` describes this run of this node: it is published afresh after a restart, never restored.
        if let Some(disk) = self.disk.as_ref().filter(|_| !message.topic.starts_with("$SYS/")) {
            // Under the retained store's lock: the store sees changes to one topic in the order they were made.
            let ticket = disk.submit(match message.payload.is_empty() {
                true => ractmq_store::Op::Unretain {
                    topic: message.topic.clone(),
                },
                false => ractmq_store::Op::Retain {
                    message: message.clone(),
                },
            });
            drop(retained);
            if let Some(congestion) = congestion {
                congestion.commit(disk, ticket);
            }
        }
    }

    /// Keep `message` as its topic's retained message unless the topic has one already: how a node catches up
    /// on the retained messages of the others when a link to one comes up.
    pub fn retain_if_absent(&self, message: Arc<Message>) {
        let mut retained = self.retained.write();
        if retained.get(&message.topic).is_some() {
            return;
        }
        if !retained.set(message.clone(), self.max_retained) {
            Metrics::add(&self.metrics.dropped_retained_full, 1);
        } else if let Some(disk) = &self.disk {
            disk.submit(ractmq_store::Op::Retain { message });
        }
    }

    /// [`Router::deliver_here`] for one message; returns the deliveries made.
    pub(super) fn deliver_one(
        &self,
        message: &Arc<Message>,
        shared: Option<(&[RemoteMember], &mut Vec<Forward>)>,
        only: Option<&str>,
        congestion: &mut Congestion,
    ) -> usize {
        let mut delivered = [0];
        let messages = std::slice::from_ref(message);
        match shared {
            Some(out) => self.deliver_here(messages, Some(&mut [out]), only, congestion, &mut delivered),
            None => self.deliver_here(messages, None, only, congestion, &mut delivered),
        }
        delivered[0]
    }

    /// Deliver `messages` (one topic, one publisher, in order) to the matching subscriptions of this node,
    /// adding to `delivered[i]` the deliveries made of `messages[i]`. With `shared` (messages published here,
    /// with each one's members of shared groups on other nodes and its forwards), each shared group that
    /// matches gets each message once, through a member here or, by adding to its forwards, one on another
    /// node; without it (messages from a peer) shared members are left out, as the publishing node chose them.
    /// With `only`, to that client's (non-shared) subscriptions alone, if its session moved here lately.
    ///
    /// Several messages with no shared group to serve are given to each client at once, in order; otherwise
    /// each message goes to every client before the next.
    fn deliver_here(
        &self,
        messages: &[Arc<Message>],
        shared: Option<&mut [SharedOut<'_>]>,
        only: Option<&str>,
        congestion: &mut Congestion,
        delivered: &mut [usize],
    ) {
        let Some(message) = messages.first() else {
            return;
        };
        let topic: &str = &message.topic;
        let first = Levels::new(topic).next().unwrap_or("");
        let own = self.shard_of_level(first);
        let own_snapshot = self.shards[own].snapshot.load();
        let wildcard_snapshot = (own != 0 && !topic.starts_with('$')).then(|| self.shards[0].snapshot.load());

        // Most messages match a few subscriptions: kept on the stack, the matches cost no allocation.
        let mut hits: Hits = SmallVec::new();
        // A client appears at most once per filter: only hits from several filters can need merging.
        let mut filters = collect_matches(&own_snapshot, topic, &mut hits);
        if let Some(snap) = &wildcard_snapshot {
            // Shard 0 holds the leading-wildcard filters; its literal ones never match this topic.
            filters += collect_matches(snap, topic, &mut hits);
        }
        // Members of shared subscriptions are served apart: one per group.
        let mut shared_hits = Vec::new();
        if hits.iter().any(|(_, r)| r.shared.is_some()) {
            hits.retain(|&mut (k, r)| {
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
        let mut shared =
            shared.filter(|out| !shared_hits.is_empty() || out.iter().any(|(remote, _)| !remote.is_empty()));
        if shared.is_none() {
            let reached = self.deliver_to_clients(&hits, messages, congestion);
            delivered.iter_mut().for_each(|d| *d += reached);
            return;
        }
        for (i, message) in messages.iter().enumerate() {
            let one = std::slice::from_ref(message);
            delivered[i] += self.deliver_to_clients(&hits, one, congestion);
            if let Some(out) = shared.as_deref_mut() {
                let (remote, forwards) = &mut out[i];
                delivered[i] += self.deliver_shared(message, shared_hits.clone(), remote, forwards, congestion);
            }
        }
    }

    /// Give `messages` to every client among `hits` (sorted by client): one delivery per client and message,
    /// at the highest QoS of its matching subscriptions, with every identifier. Returns the clients reached.
    fn deliver_to_clients(&self, hits: &Hits<'_>, messages: &[Arc<Message>], congestion: &mut Congestion) -> usize {
        let Some(message) = messages.first() else {
            return 0;
        };
        let mut reached = 0;
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
            // One publisher: No Local leaves the client out of all of them or none.
            if route.options.no_local && message.publisher.as_deref() == Some(&**key) {
                continue;
            }
            let qos = group.iter().map(|(_, r)| r.options.qos).max().unwrap_or_default();
            let as_published = group.iter().any(|(_, r)| r.options.retain_as_published);
            let subscription_ids: Vec<u32> = group.iter().filter_map(|(_, r)| r.options.subscription_id).collect();
            let delivery = |message: &Arc<Message>| Delivery {
                message: message.clone(),
                qos: qos.min(message.qos),
                retain: message.retain && as_published,
                subscription_ids: subscription_ids.clone(),
                shared: None,
                stored: None,
            };
            match &route.target {
                // A run to a session: one push. One that moved here lately checks each message on its own.
                Target::Session(session) if messages.len() > 1 && !session.takes_relayed() => {
                    let mut ticket = None;
                    let pushed = session.push_all(messages.iter().map(delivery), &self.metrics, &mut ticket);
                    self.pushed(session, key, pushed, messages, ticket, congestion);
                }
                Target::Session(session) => {
                    for message in messages {
                        // A session that moved here lately may have been given this one already (see
                        // `moving.rs`).
                        if !session.first_arrival(message) {
                            continue;
                        }
                        let mut ticket = None;
                        let pushed = session.push_durably(delivery(message), &self.metrics, &mut ticket);
                        let one = std::slice::from_ref(message);
                        self.pushed(session, key, pushed, one, ticket, congestion);
                    }
                }
                Target::Local(sender) => {
                    for message in messages {
                        if sender.try_send(message.clone()).is_err() {
                            Metrics::add(&self.metrics.dropped_local_subscriber, 1);
                        }
                    }
                }
                Target::Relay { node, client } => {
                    for message in messages {
                        self.relay(message, node, client, congestion);
                    }
                }
            }
            reached += 1;
        }
        reached
    }

    /// Queue `message` for `session` alone, at its own QoS (see [`crate::BrokerView::deliver_to`]).
    pub(crate) fn deliver_direct(
        &self,
        session: &Arc<SessionShared>,
        message: Arc<Message>,
        congestion: &mut Congestion,
    ) {
        let delivery = Delivery {
            message: message.clone(),
            qos: message.qos,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
            stored: None,
        };
        let mut ticket = None;
        let pushed = session.push_durably(delivery, &self.metrics, &mut ticket);
        self.pushed(
            session,
            &session.client_id,
            pushed,
            std::slice::from_ref(&message),
            ticket,
            congestion,
        );
    }

    /// What follows pushing `messages` (from one publisher) to `session`, the client `key`.
    fn pushed(
        &self,
        session: &Arc<SessionShared>,
        key: &Arc<str>,
        pushed: Pushed,
        messages: &[Arc<Message>],
        ticket: Option<ractmq_store::Ticket>,
        congestion: &mut Congestion,
    ) {
        let publisher = messages.first().and_then(|m| m.publisher.as_ref());
        if let (Some(ticket), Some(disk)) = (ticket, session.disk()) {
            congestion.commit(disk, ticket);
        }
        match pushed {
            Pushed::Queued => {}
            // A client's own full queue never holds it: it could not drain while held.
            Pushed::Full if publisher == Some(key) => {}
            Pushed::Full => congestion.add(session.clone()),
            // Packed up and moved a moment ago: they follow the session.
            Pushed::Moved(node) => {
                for message in messages {
                    self.relay(message, &node, &session.client_id, congestion);
                }
            }
        }
    }

    /// Retained messages matching `filter`, for a new subscription.
    pub fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        self.retained.read().matching(filter, Instant::now())
    }
}

/// The subscriptions one message matched, by client (or shared-group member) key.
type Hits<'a> = SmallVec<[(&'a Arc<str>, &'a Route); 8]>;

/// For one message published here: the members of shared groups on other nodes that match it, and the
/// forwards to other nodes it is given.
type SharedOut<'a> = (&'a [RemoteMember], &'a mut Vec<Forward>);

/// Append every subscription of `index` that matches `topic` to `hits`; returns how many filters matched.
fn collect_matches<'a>(index: &'a Index, topic: &str, hits: &mut Hits<'a>) -> usize {
    let mut filters = 0;
    index.for_each_matching_filter(topic, |subscribers| {
        filters += 1;
        hits.extend(subscribers);
    });
    filters
}
