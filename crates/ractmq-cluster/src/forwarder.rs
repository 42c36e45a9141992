//! The forwarder: this node's remotable actor for routing, and the receiving end of every other node's.
//!
//! Each node runs one, in the process group `ractmq.fwd.{node name}` (so a node's forwarder is found by
//! name). It
//! - tells the other nodes this node's routes: all of them when it starts or when a node (re)joins, then each
//!   change the topic shards report;
//! - keeps the other nodes' routes (see `remote_routes.rs`), dropping a node's when it goes down;
//! - routes the messages other nodes forward here, once each (see `inbound.rs`), and acknowledges them;
//! - runs one pump per other node (see `pump.rs`), which sends that node's queue.
//!
//! Heartbeats stay with the agent, so a forwarder busy with a burst of messages never makes a node look down.
//! Its state lives in the cluster's shared state; a restarted forwarder re-reads the shards' routes, tells
//! every node again, and its pumps send again whatever was not acknowledged.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ractmq_broker::{Congestion, Node, RouteKey};
use ractor::{pg, Actor, ActorProcessingErr, ActorRef};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::forwarder_ref::{forwarder_of, group_of, ForwarderMsg};
use crate::membership::MemberEvent;
use crate::pump;
use crate::sessions::{self, relayed};
use crate::state::Shared;
use crate::stats::ClusterStats;
use crate::wire::{self, Ack, Batch, Left, LeftAck, Routes, RoutesAck, Wire, WireRoute};

/// Most routes in one message, and the bytes of filters it aims to stay under: a node with many is described
/// in several.
pub const ROUTES_PER_MESSAGE: usize = 10_000;
pub const ROUTES_BYTES: usize = 4 * 1024 * 1024;

pub struct Forwarder;

pub struct ForwarderArgs {
    pub shared: Arc<Shared>,
    pub broker: Arc<dyn Node>,
}

pub struct ForwarderState {
    shared: Arc<Shared>,
    broker: Arc<dyn Node>,
    pumps: HashMap<String, JoinHandle<()>>,
    events: JoinHandle<()>,
    reported_unreadable: bool,
    /// Per sending node: its acknowledgements wait here, in order, while its messages fill queues here.
    ack_gates: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Actor for Forwarder {
    type Msg = ForwarderMsg;
    type State = ForwarderState;
    type Arguments = ForwarderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ForwarderMsg>,
        args: ForwarderArgs,
    ) -> Result<ForwarderState, ActorProcessingErr> {
        let shared = args.shared;
        pg::join(group_of(&shared.config.node_name), vec![myself.get_cell()]);
        // Start from the shards' routes; changes they report from now on are flushed after this. The full list
        // takes the version the dropped changes were waiting for, so whoever waits for them is answered.
        {
            let mut pending = shared.pending_routes.lock();
            let (version, _) = pending.take();
            let mut announced = shared.announced.lock();
            *announced = args.broker.router().local_routes().into_iter().collect();
            shared.routes_version.store(version, Ordering::Release);
        }
        shared.flush_asked.store(false, Ordering::Release);
        *shared.forwarder.write() = Some(myself.clone());
        let events = tokio::spawn(follow_membership(shared.clone(), myself.clone()));
        let mut state = ForwarderState {
            shared,
            broker: args.broker,
            pumps: HashMap::new(),
            events,
            reported_unreadable: false,
            ack_gates: HashMap::new(),
        };
        state.start_pumps();
        for member in state.shared.membership.read().others() {
            if let Some(to) = forwarder_of(&member.name) {
                send_all_routes(&state.shared, &to);
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ForwarderMsg>,
        state: &mut ForwarderState,
    ) -> Result<(), ActorProcessingErr> {
        state.events.abort();
        for pump in state.pumps.values() {
            pump.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ForwarderMsg>,
        msg: ForwarderMsg,
        state: &mut ForwarderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ForwarderMsg::Flush => state.flush_routes(),
            ForwarderMsg::Members => state.start_pumps(),
            ForwarderMsg::Peer(bytes) => match wire::decode(&bytes) {
                Ok(Wire::Batch(batch)) => state.route_batch(batch),
                Ok(Wire::Ack(ack)) => {
                    if ack.incarnation == state.shared.incarnation {
                        let link = state.shared.link(&ack.from);
                        link.ack(ack.seq);
                        // The window has room again.
                        link.notify.notify_one();
                    }
                }
                // A node that left may still say something on its way out; its routes stay gone.
                Ok(Wire::Routes(routes)) if state.shared.membership.read().is_left(&routes.from) => {}
                Ok(Wire::Routes(routes)) => {
                    let (from, version) = (routes.from, routes.version);
                    state
                        .shared
                        .remote_routes
                        .update(&from, routes.reset, routes.add, routes.remove);
                    if let Some(to) = forwarder_of(&from) {
                        let ack = Wire::RoutesAck(RoutesAck {
                            from: state.shared.config.node_name.clone(),
                            version,
                        });
                        let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&ack)));
                    }
                }
                Ok(Wire::RoutesAck(ack)) => {
                    let mut acks = state.shared.routes_acks.lock();
                    let acked = acks.entry(ack.from).or_default();
                    *acked = (*acked).max(ack.version);
                    drop(acks);
                    state.shared.routes_acked.notify_waiters();
                }
                Ok(Wire::Retained(messages)) => {
                    let now = Instant::now();
                    for message in messages {
                        state
                            .broker
                            .router()
                            .retain_if_absent(Arc::new(message.into_message(now)));
                    }
                }
                Ok(Wire::TakeOver(request)) => {
                    // The session actor's work (closing, unrouting) must not hold up this forwarder.
                    tokio::spawn(sessions::answer(state.shared.clone(), state.broker.clone(), request));
                }
                Ok(Wire::TakenOver(answer)) => {
                    if let Some(to) = state.shared.takeovers.lock().get(&answer.request) {
                        let _ = to.try_send(answer.session.map(|s| *s));
                    }
                }
                Ok(Wire::Replicated(replicated)) => {
                    let changed = state.shared.rules.merge(replicated.entries);
                    if changed > 0 {
                        tracing::debug!(from = %replicated.from, changed, "merged replicated entries");
                    }
                }
                Ok(Wire::Left(left)) => state.left(left),
                Ok(Wire::LeftAck(ack)) => {
                    state.shared.left_acks.lock().insert((ack.from, ack.node));
                    state.shared.left_acked.notify_waiters();
                }
                Ok(Wire::Hello(_)) => {}
                Err(e) => {
                    ClusterStats::add(&state.shared.stats.unreadable, 1);
                    if !state.reported_unreadable {
                        state.reported_unreadable = true;
                        tracing::warn!("{e}; further ones are counted in the cluster's unreadable messages");
                    }
                }
            },
        }
        Ok(())
    }
}

impl ForwarderState {
    /// A node left, or was forgotten by an operator: mark it left here (the membership's followers drop its
    /// routes and queue), and say so to whoever sent it.
    fn left(&mut self, left: Left) {
        let me = &self.shared.config.node_name;
        if left.node != *me {
            let event = self
                .shared
                .membership
                .write()
                .mark_left(&left.node, left.incarnation, left.forgotten);
            if let Some(event) = event {
                tracing::info!("{event}");
                let _ = self.shared.events.send(event);
                self.broker.publish_brokers();
            }
        }
        let ack = Wire::LeftAck(LeftAck {
            from: me.clone(),
            node: left.node,
        });
        if let Some(to) = forwarder_of(&left.from) {
            let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&ack)));
        }
    }

    /// One pump per other node (they stay when a node goes down: its queue waits for it; they end when it
    /// leaves).
    fn start_pumps(&mut self) {
        let names: Vec<String> = self.shared.membership.read().others().map(|m| m.name.clone()).collect();
        self.pumps.retain(|name, pump| {
            let keep = names.contains(name);
            if !keep {
                pump.abort();
            }
            keep
        });
        for name in names {
            let running = self.pumps.get(&name).is_some_and(|p| !p.is_finished());
            if !running {
                let pump = tokio::spawn(pump::run(self.shared.clone(), self.broker.clone(), name.clone()));
                self.pumps.insert(name, pump);
            }
        }
    }

    /// Pass the shards' route changes on to every other node, as the net change since the last flush.
    fn flush_routes(&mut self) {
        self.shared.flush_asked.store(false, Ordering::Release);
        let (version, changes) = self.shared.pending_routes.lock().take();
        let mut announced = self.shared.announced.lock();
        let mut before: HashMap<RouteKey, bool> = HashMap::new();
        for (key, add) in changes {
            before.entry(key.clone()).or_insert_with(|| announced.contains(&key));
            if add {
                announced.insert(key);
            } else {
                announced.remove(&key);
            }
        }
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for (key, was) in before {
            match (was, announced.contains(&key)) {
                (false, true) => add.push(to_wire(&key)),
                (true, false) => remove.push(to_wire(&key)),
                _ => {}
            }
        }
        // Sent even when the changes cancel out: someone may wait for this version's acknowledgement.
        self.shared.routes_version.store(version, Ordering::Release);
        let me = &self.shared.config.node_name;
        let peers: Vec<String> = self.shared.membership.read().others().map(|m| m.name.clone()).collect();
        for chunk in chunks(add, remove) {
            let bytes = wire::encode(&Wire::Routes(Routes {
                from: me.clone(),
                version,
                reset: false,
                add: chunk.0,
                remove: chunk.1,
            }));
            for peer in &peers {
                if let Some(to) = forwarder_of(peer) {
                    let _ = to.send_message(ForwarderMsg::Peer(bytes.clone()));
                }
            }
        }
        // `announced` is held until here so that a full list sent meanwhile cannot overtake these changes.
        drop(announced);
    }

    /// Route a batch another node forwarded, skipping what was routed before, and acknowledge it.
    fn route_batch(&mut self, batch: Batch) {
        let shared = &self.shared;
        let len = batch.items.len();
        if len == 0 {
            return;
        }
        let skip = shared
            .inbound
            .already_routed(&batch.from, batch.incarnation, batch.first_seq, len);
        ClusterStats::add(&shared.stats.duplicates_skipped, skip as u64);
        let now = Instant::now();
        let mut congestion = Congestion::default();
        for item in batch.items.into_iter().skip(skip) {
            let message = Arc::new(item.message.into_message(now));
            let members: Vec<(Arc<str>, Arc<str>)> = item
                .shared
                .into_iter()
                .map(|(group, member)| (Arc::from(group), Arc::from(member)))
                .collect();
            match item.relay_to {
                Some(client) => relayed(shared, self.broker.as_ref(), message, members, client, &mut congestion),
                None => {
                    let router = &self.broker.router();
                    router.route_from_peer(message, item.deliver, &members, &mut congestion);
                }
            }
        }
        ClusterStats::add(&shared.stats.received, (len - skip) as u64);
        let last = batch.first_seq + len as u64 - 1;
        shared.inbound.routed(&batch.from, batch.incarnation, last);
        let ack = Wire::Ack(Ack {
            from: shared.config.node_name.clone(),
            incarnation: batch.incarnation,
            seq: last,
        });
        let send_ack = move |from: &str| {
            if let Some(to) = forwarder_of(from) {
                let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&ack)));
            }
        };
        // Subscribers' queues here filled up: the acknowledgement waits until they have room, so that the
        // sender's window, and then its queue towards this node, hold its publishers (see `flow.rs`). Later
        // acknowledgements to the same node queue behind it, in order.
        let gate = self.ack_gates.entry(batch.from.clone()).or_default().clone();
        match (congestion.is_empty(), gate.clone().try_lock_owned()) {
            (true, Ok(_free)) => send_ack(&batch.from),
            _ => {
                let from = batch.from;
                tokio::spawn(async move {
                    let _turn = gate.lock().await;
                    congestion.wait().await;
                    send_ack(&from);
                });
            }
        }
    }
}

/// Act on membership changes: a node that went down loses its routes here; one that (re)joined is told all of
/// this node's routes, and its queue is emptied if it restarted; the pumps and the list of nodes to copy
/// retained messages to follow.
async fn follow_membership(shared: Arc<Shared>, forwarder: ActorRef<ForwarderMsg>) {
    let mut events = shared.events.subscribe();
    update_peers_up(&shared);
    loop {
        match events.recv().await {
            Ok(MemberEvent::Down { member, .. }) => {
                let dropped = shared.remote_routes.drop_node(&member.name);
                tracing::debug!(node = %member.name, routes = dropped, "dropped the routes of a node that went down");
            }
            Ok(MemberEvent::Left { member, .. }) => {
                // Gone for good: its routes, and what was queued for it, which no run of it will take.
                let dropped = shared.remote_routes.drop_node(&member.name);
                shared.routes_acks.lock().remove(&member.name);
                let queued = shared.links.write().remove(member.name.as_str()).map_or(0, |l| l.len());
                tracing::debug!(node = %member.name, routes = dropped, queued, "dropped the routes and queue of a node that left");
            }
            Ok(MemberEvent::Joined(member)) => {
                // What it acknowledged before may be from a previous run: it is told everything again now.
                shared.routes_acks.lock().remove(&member.name);
                if let Some(incarnation) = member.incarnation {
                    let dropped = shared.link(&member.name).serve_incarnation(incarnation);
                    ClusterStats::add(&shared.stats.dropped_node_restarted, dropped as u64);
                }
                if let Some(to) = forwarder_of(&member.name) {
                    send_all_routes(&shared, &to);
                }
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        update_peers_up(&shared);
        let _ = forwarder.send_message(ForwarderMsg::Members);
    }
}

fn update_peers_up(shared: &Shared) {
    let me = &shared.config.node_name;
    let up: Vec<Arc<str>> = shared
        .membership
        .read()
        .nodes_up()
        .into_iter()
        .filter(|n| n != me)
        .map(Arc::from)
        .collect();
    shared.peers_up.store(Arc::new(up));
}

/// Tell `to` every route of this node, replacing what it knew.
pub fn send_all_routes(shared: &Shared, to: &ActorRef<ForwarderMsg>) {
    let announced = shared.announced.lock();
    let version = shared.routes_version.load(Ordering::Acquire);
    let all: Vec<WireRoute> = announced.iter().map(to_wire).collect();
    for (i, (add, _)) in chunks(all, Vec::new()).into_iter().enumerate() {
        let routes = Routes {
            from: shared.config.node_name.clone(),
            version,
            reset: i == 0,
            add,
            remove: Vec::new(),
        };
        let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&Wire::Routes(routes))));
    }
}

/// Route lists cut to [`ROUTES_PER_MESSAGE`] and about [`ROUTES_BYTES`], removals first; always at least one
/// (possibly empty) part.
fn chunks(add: Vec<WireRoute>, remove: Vec<WireRoute>) -> Vec<(Vec<WireRoute>, Vec<WireRoute>)> {
    let mut out = vec![(Vec::new(), Vec::new())];
    let mut bytes = 0;
    let tagged = remove
        .into_iter()
        .map(|r| (false, r))
        .chain(add.into_iter().map(|r| (true, r)));
    for (is_add, route) in tagged {
        let size = route_size(&route);
        let (a, r) = out.last_mut().expect("never empty");
        if a.len() + r.len() >= ROUTES_PER_MESSAGE || (bytes + size > ROUTES_BYTES && a.len() + r.len() > 0) {
            out.push((Vec::new(), Vec::new()));
            bytes = 0;
        }
        bytes += size;
        let (a, r) = out.last_mut().expect("never empty");
        if is_add {
            a.push(route);
        } else {
            r.push(route);
        }
    }
    out
}

fn route_size(route: &WireRoute) -> usize {
    match route {
        WireRoute::Filter(f) => f.len() + 16,
        WireRoute::Shared { group, member } => group.len() + member.len() + 16,
    }
}

fn to_wire(key: &RouteKey) -> WireRoute {
    match key {
        RouteKey::Filter(f) => WireRoute::Filter(f.to_string()),
        RouteKey::Shared { group, member } => WireRoute::Shared {
            group: group.to_string(),
            member: member.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_route_lists_are_cut_and_removals_go_first() {
        let add: Vec<WireRoute> = (0..ROUTES_PER_MESSAGE + 5)
            .map(|i| WireRoute::Filter(i.to_string()))
            .collect();
        let remove = vec![WireRoute::Filter("gone".into())];
        let parts = chunks(add, remove);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1.len(), 1);
        assert_eq!(parts[0].0.len() + parts[0].1.len(), ROUTES_PER_MESSAGE);
        assert_eq!(parts[1].0.len(), 6);
        assert_eq!(chunks(Vec::new(), Vec::new()).len(), 1);
    }
}
