//! One actor per session: the failure domain of one client, like one Erlang process per connection in EMQX.
//!
//! The actor lives as long as the session, not the connection: it serves a connection while one is attached,
//! keeps the session's timers (expiry, delayed will) while none is, and adopts the next connection for the same
//! client id (resume or takeover). Its protocol work is the sans-IO [`Channel`]; its durable state is the
//! [`SessionShared`] in the session store, which is why a panic here costs only this client's connection: the
//! supervisor starts a new actor on the same `SessionShared`, which publishes the will and waits for the client
//! to come back.
//!
//! A connected session that has had nothing to do for `hibernate_after` hibernates, as an idle Erlang process
//! does in EMQX: the actor parks its connection in the session's gate and stops, and the connection's reader
//! keeps watching the socket (and keepalive) on its own. The first message for the session (a packet, a
//! delivery, a takeover) asks the supervisor for a new actor, which takes the parked connection and everything
//! that arrived meanwhile, in order. An idle client then costs its socket tasks and its session record, not an
//! actor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ractmq_codec::{reason, DecodeError, Packet};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::{Channel, Close, Delivery, Effects, Lapse, Message, RouteChange};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::connection::{AbortOnDrop, Io, Permit};
use crate::fence::FenceGuard;
use crate::flow::Congestion;
use crate::index::{index_entry, Change, Route, Target};
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::moving::RELAY_FOR;
use crate::remote_sessions::SessionHandover;
use crate::session_msg::{Attach, ConnectedGuard, Online, Parked, SessionMsg, SessionSupMsg};
use crate::session_store::{ConnInfo, SessionShared};
use crate::trace::{describe_frames, trace_line};

/// The stop reason of an actor that hibernated (its supervisor does not restart it).
pub const HIBERNATED: &str = "hibernated";

/// Deliveries handed to the channel per mailbox drain, so one busy subscriber cannot hold its actor for long.
const DRAIN_BATCH: usize = 256;

pub struct SessionActor;

pub struct SessionArgs {
    pub shared: Arc<SessionShared>,
    pub kernel: Arc<Kernel>,
    pub first: SessionMsg,
}

/// Name the packets going out to a traced client (see `trace.rs`).
fn trace_out(kernel: &Kernel, client_id: &str, out: &[u8]) {
    if kernel.traces.is_active() && !out.is_empty() {
        for frame in describe_frames(out) {
            kernel.traces.record(client_id, || trace_line("out", frame));
        }
    }
}

/// Messages still on their way here for `shared` follow it to `node`: a relay takes over its routes in one
/// index change (so they are never withdrawn meanwhile), for `RELAY_FOR`; what reaches the session itself
/// after it packed up is relayed by the router too (see `moving.rs`).
async fn relay_to(kernel: &Kernel, shared: &SessionShared, node: Arc<str>) {
    let filters: Vec<String> = shared.state.lock().subscriptions.keys().cloned().collect();
    let router = kernel.router.clone();
    let client = shared.client_id.clone();
    let (generation, changes) = router.relays.start(&client, node, &filters);
    router.apply(changes).await;
    tokio::spawn(async move {
        tokio::time::sleep(RELAY_FOR).await;
        let changes = router.relays.stop(&client, generation);
        if !changes.is_empty() {
            router.apply(changes).await;
        }
    });
}

/// The index change that removes `client_id`'s subscription to `filter` (as the client sent it).
fn unroute_change(filter: &str, client_id: &Arc<str>) -> Change {
    let (path, key, _) = index_entry(filter, client_id);
    Change {
        filter: path.to_string(),
        key,
        route: None,
    }
}

/// Start serving a connection for `shared`: the protocol state, the socket tasks and the CONNACK. Returns the
/// filters of a session that was not resumed, for the caller to remove from the index.
fn open(shared: &Arc<SessionShared>, kernel: &Kernel, generation: u64, attach: Attach) -> (Online, Vec<String>) {
    let Attach {
        connect,
        accepted,
        transport,
        session_present,
        authenticator,
        listener,
    } = attach;
    let peer = transport.peer;
    let mut fx = Effects::default();
    let now = Instant::now();
    let (mut channel, attached) = {
        let mut session = shared.state.lock();
        let attached = session.attach(session_present, now);
        if !attached.session_present {
            shared.mailbox.lock().queue.clear();
            // Messages relayed for the session it replaces are not this one's (see `moving.rs`).
            shared.forget_arrivals();
        }
        let channel = Channel::start(
            &connect,
            &accepted,
            &mut session,
            attached.session_present,
            kernel.limits.clone(),
            now,
            &mut fx,
        );
        (channel, attached)
    };
    if let Some(will) = attached.will {
        route_will(kernel, will);
    }
    if let Some(authenticator) = authenticator {
        channel.allow_reauthentication(authenticator);
    }
    let io = Io::start(
        transport,
        shared.clone(),
        generation,
        channel.keepalive_limit(),
        kernel.metrics.clone(),
        kernel.fences.clone(),
    );
    io.outbox.push(&mut fx.out);
    // Routine connects and clean disconnects are debug: at tens of thousands a second, logging them would cost
    // more than serving them. Abnormal closes are logged at info, one line each.
    tracing::debug!(client = %shared.client_id, %peer, protocol = ?accepted.protocol, session_present = attached.session_present, "client connected");
    *shared.conn.lock() = Some(ConnInfo {
        peer,
        protocol: accepted.protocol,
        keep_alive: connect.keep_alive,
        username: connect.username.clone(),
        connected_at: std::time::SystemTime::now(),
    });
    let policy = kernel
        .config
        .queue_policy(listener, &shared.client_id, connect.username.as_deref());
    shared.set_online(Some(policy), &kernel.limits, &kernel.metrics);
    let online = Online {
        channel,
        io,
        peer,
        _connected: ConnectedGuard::new(&kernel.metrics),
    };
    (online, attached.dropped)
}

/// Connect a brand-new session without starting an actor for it: it begins hibernated, and its first packet
/// or delivery wakes it. A connect storm (every device of a fleet after a restart) then costs no actor per
/// client until the client does something, and leaves no actor-sized holes in the heap once they go idle.
pub fn open_hibernated(shared: &Arc<SessionShared>, kernel: &Kernel, attach: Attach) {
    // The gate takes messages before the reader starts, so the first packet already finds it.
    shared.begin_hibernate();
    let (online, _) = open(shared, kernel, 1, attach);
    shared.park_new(Box::new(Parked { online, generation: 1 }));
    Metrics::add(&kernel.metrics.sessions_hibernated, 1);
}

pub struct SessionState {
    shared: Arc<SessionShared>,
    kernel: Arc<Kernel>,
    online: Option<Online>,
    /// Bumped on every attach and disconnect: stale socket messages and timers compare and are ignored.
    generation: u64,
    /// The session is ending; an attach that races with the end goes back to the supervisor.
    ending: bool,
    /// Messages handled, and the count at the last idle check: unchanged but for the check itself means idle.
    handled: u64,
    idle_mark: u64,
    /// Set while this client, as a publisher, waits for full queues (see `flow.rs`) or for subscription
    /// changes read before its packets (see `fence.rs`).
    hold: Option<Hold>,
    /// The fence of the batch being handled: dropped as soon as its subscription changes are in this node's
    /// index, before the other nodes are waited for.
    fence: Option<FenceGuard>,
}

/// A publisher held: its acknowledgements and what its reader read since wait here, and the reader stops once
/// its permits are all held, so the client's socket is not read meanwhile. The actor itself goes on serving the
/// client as a subscriber, so that a client held by its own subscribers' queues is never stuck behind its own.
struct Hold {
    generation: u64,
    /// Packets for the client that came with the held publishes (PUBACK, PUBREC...), in order.
    out: BytesMut,
    /// The permit of the batch that filled the queues.
    permit: Option<Permit>,
    /// Batches read since, in order.
    deferred: VecDeque<Deferred>,
    /// Held for older subscription changes (not by full queues): the batches keep their own.
    keeps_fences: bool,
    /// Waits for room (or for older subscription changes), then sends `Resume`; aborted with the hold.
    _waiter: AbortOnDrop,
}

impl Hold {
    fn defer(&mut self, mut batch: Deferred) {
        if !self.keeps_fences {
            batch.fence = None;
        }
        self.deferred.push_back(batch);
    }
}

/// A batch read while its session was held.
struct Deferred {
    packets: Vec<Packet>,
    permit: Permit,
    mark: u64,
    /// Kept only while waiting for older subscription changes: a client held by full queues does not make
    /// everyone else's publishes wait for its subscriptions, which take effect when the hold ends.
    fence: Option<FenceGuard>,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        // A waking actor takes over the gate in `Unpark`, together with the messages waiting there.
        if !matches!(args.first, SessionMsg::Unpark) {
            args.shared.set_owner(Some(myself.clone()));
        }
        myself.send_message(args.first)?;
        Ok(SessionState {
            shared: args.shared,
            kernel: args.kernel,
            online: None,
            generation: 0,
            ending: false,
            handled: 0,
            idle_mark: 0,
            hold: None,
            fence: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.handle(&myself, msg).await;
        Ok(())
    }
}

impl SessionState {
    async fn handle(&mut self, myself: &ActorRef<SessionMsg>, msg: SessionMsg) {
        self.handled += 1;
        match msg {
            // Rare, large futures are boxed: the actor's task keeps room for its largest await point for as long
            // as the session lives, and an idle session should not carry the state of a CONNECT or a close.
            SessionMsg::Attach(attach) => Box::pin(self.attach(myself, attach)).await,
            SessionMsg::Recover => Box::pin(self.recover(myself)).await,
            SessionMsg::Inbound {
                generation,
                packets,
                permit,
                mark,
                fence,
            } => {
                if !self.is_current(generation) {
                    return;
                }
                let batch = Deferred {
                    packets,
                    permit,
                    mark,
                    fence,
                };
                match self.hold.as_mut() {
                    Some(hold) => hold.defer(batch),
                    None => self.inbound_in_order(myself, batch).await,
                }
            }
            SessionMsg::Resume { generation } => {
                if self.hold.as_ref().is_some_and(|h| h.generation == generation) && self.is_current(generation) {
                    Box::pin(self.resume(myself)).await;
                }
            }
            SessionMsg::ReaderClosed { generation, error } => {
                if self.is_current(generation) {
                    Box::pin(self.reader_closed(myself, error)).await;
                }
            }
            SessionMsg::Drain => self.drain(),
            SessionMsg::QueueOverflow => {
                if self.online.is_some() {
                    Metrics::add(&self.kernel.metrics.disconnected_slow_subscribers, 1);
                    Box::pin(self.close_by_server(myself, reason::QUOTA_EXCEEDED, "outgoing queue full")).await;
                }
            }
            SessionMsg::Tick { generation } => {
                // A held client is sending: its packets wait unread.
                if self.is_current(generation) && self.hold.is_none() {
                    Box::pin(self.tick(myself)).await;
                }
            }
            SessionMsg::IdleCheck { generation } => {
                if self.is_current(generation) {
                    self.idle_check(myself, generation);
                }
            }
            SessionMsg::Hibernate { generation } => Box::pin(self.hibernate(myself, generation)).await,
            SessionMsg::Unpark => Box::pin(self.unpark(myself)).await,
            SessionMsg::Timeout { generation } => {
                if self.online.is_none() && generation == self.generation {
                    let lapse = self.shared.state.lock().handle_timeout(Instant::now());
                    Box::pin(self.lapse(myself, lapse)).await;
                }
            }
            SessionMsg::Kick { code, server_reference } => {
                if let Some(online) = self.online.as_mut() {
                    let mut fx = Effects::default();
                    let why = match &server_reference {
                        Some(to) => format!("sent to {to} by the operator"),
                        None => "disconnected by the operator".into(),
                    };
                    online.channel.close_to(code, server_reference, true, why, &mut fx);
                    Box::pin(self.apply_effects(myself, fx)).await;
                }
            }
            SessionMsg::HandOver { clean_start, to, reply } => {
                Box::pin(self.hand_over(myself, clean_start, to, reply)).await
            }
            SessionMsg::Stop => myself.stop(None),
            SessionMsg::Crash => panic!("session {} crashed on request", self.shared.client_id),
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.online.is_some() && generation == self.generation
    }

    async fn attach(&mut self, myself: &ActorRef<SessionMsg>, attach: Box<Attach>) {
        if self.ending {
            // The session is being removed; the supervisor will start a fresh one for this connection.
            if let Some(sup) = self.kernel.session_sup() {
                let _ = sup.send_message(SessionSupMsg::Attach(attach));
            }
            return;
        }
        self.generation += 1;
        self.hold = None;
        if let Some(old) = self.online.take() {
            self.takeover(old);
        }
        let (online, dropped_routes) = open(&self.shared, &self.kernel, self.generation, *attach);
        self.unroute(dropped_routes).await;
        self.online = Some(online);
        self.schedule_idle_check(myself);
        self.drain();
    }

    /// Another connection took this session: close the old one with 0x8E.
    fn takeover(&mut self, mut old: Online) {
        let mut fx = Effects::default();
        old.channel
            .close_with(reason::SESSION_TAKEN_OVER, true, "session taken over".into(), &mut fx);
        old.io.outbox.push(&mut fx.out);
        tracing::info!(client = %self.shared.client_id, peer = %old.peer, "connection closed: session taken over by a new connection");
        // Its will is the session's business: `Session::attach` publishes or cancels it.
        old.io.close();
    }

    /// A connection on another node took this session: close ours as a takeover here would (0x8E, the will
    /// unless delayed), then give the session away and end it here.
    async fn hand_over(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        clean_start: bool,
        to: Arc<str>,
        reply: RpcReplyPort<Option<SessionHandover>>,
    ) {
        if self.ending {
            let _ = reply.send(None);
            return;
        }
        // Timers armed for the last connection (expiry, a delayed will) no longer apply.
        self.generation += 1;
        self.hold = None;
        if let Some(old) = self.online.take() {
            self.takeover(old);
            *self.shared.conn.lock() = None;
            self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        }
        let will = self
            .shared
            .state
            .lock()
            .take_will_on_takeover(!clean_start, Instant::now());
        if let Some(will) = will {
            route_will(&self.kernel, will);
        }
        let handover = match clean_start {
            true => None,
            false => {
                relay_to(&self.kernel, &self.shared, to.clone()).await;
                Some(self.shared.export(to))
            }
        };
        tracing::info!(client = %self.shared.client_id, resumed = !clean_start, "session handed over to another node");
        self.end_session(myself).await;
        let _ = reply.send(handover);
    }

    async fn recover(&mut self, myself: &ActorRef<SessionMsg>) {
        tracing::warn!(client = %self.shared.client_id, "session restarted after a failure; its connection was closed");
        *self.shared.conn.lock() = None;
        self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        // A session that was offline keeps its deadlines; one that had a connection lost it.
        self.hand_off_shared(None);
        let lapse = self.shared.state.lock().recovered(Instant::now());
        self.lapse(myself, lapse).await;
    }

    async fn inbound(&mut self, myself: &ActorRef<SessionMsg>, packets: Vec<Packet>, permit: Permit) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut fx = Effects::default();
        if self.kernel.traces.is_active() {
            for packet in &packets {
                self.kernel
                    .traces
                    .record(&self.shared.client_id, || trace_line("in ", format!("{packet:?}")));
            }
        }
        {
            let mut session = self.shared.state.lock();
            for packet in packets {
                online.channel.handle_in(&mut session, packet, now, &mut fx);
                if fx.close.is_some() {
                    break;
                }
            }
        }
        self.apply_effects(myself, fx).await;
        // Held: the batch keeps its permit until the hold ends.
        match self.hold.as_mut() {
            Some(hold) => hold.permit = Some(permit),
            None => drop(permit),
        }
    }

    /// Handle a batch once every subscription change read before it is in the index; until then the session
    /// is held (see `fence.rs`).
    async fn inbound_in_order(&mut self, myself: &ActorRef<SessionMsg>, batch: Deferred) {
        let fences = self.kernel.fences.clone();
        if !fences.clear_before(batch.mark) {
            let mark = batch.mark;
            self.hold_until(async move { fences.wait_before(mark).await }, BytesMut::new(), true);
            if let Some(hold) = self.hold.as_mut() {
                hold.defer(batch);
            }
            return;
        }
        let Deferred {
            packets, permit, fence, ..
        } = batch;
        self.fence = fence;
        self.inbound(myself, packets, permit).await;
        // Dropped by `apply_routes` already, unless the batch changed nothing.
        self.fence = None;
    }

    /// What held this client is over: send what waited, then handle the batches read meanwhile, unless one of
    /// them is held again.
    async fn resume(&mut self, myself: &ActorRef<SessionMsg>) {
        let Some(mut hold) = self.hold.take() else {
            return;
        };
        if let Some(online) = self.online.as_ref() {
            online.io.outbox.push(&mut hold.out);
        }
        drop(hold.permit.take());
        while let Some(batch) = hold.deferred.pop_front() {
            self.inbound_in_order(myself, batch).await;
            if let Some(new_hold) = self.hold.as_mut() {
                hold.deferred.drain(..).for_each(|batch| new_hold.defer(batch));
                break;
            }
        }
    }

    /// Hold this client as a publisher until `congestion` clears; `out` waits with it. Its subscription
    /// changes read meanwhile take effect when the hold ends, and nobody else waits for them.
    fn hold(&mut self, congestion: Congestion, out: &mut BytesMut) {
        Metrics::add(&self.kernel.metrics.publishers_held, 1);
        self.hold_until(congestion.wait(), std::mem::take(out), false);
    }

    /// Hold this client until `over` completes; `out` waits with it.
    fn hold_until(
        &mut self,
        over: impl std::future::Future<Output = ()> + Send + 'static,
        out: BytesMut,
        keeps_fences: bool,
    ) {
        let shared = self.shared.clone();
        let generation = self.generation;
        let waiter = tokio::spawn(async move {
            over.await;
            shared.send(SessionMsg::Resume { generation });
        });
        self.hold = Some(Hold {
            generation,
            out,
            permit: None,
            deferred: VecDeque::new(),
            keeps_fences,
            _waiter: AbortOnDrop::new(waiter),
        });
    }

    /// Carry out what the channel asked for, in the order that keeps the protocol's promises: index changes
    /// before the SUBACK goes out, routing in the order the client published.
    async fn apply_effects(&mut self, myself: &ActorRef<SessionMsg>, mut fx: Effects) {
        // Subscribing and closing are rare next to publishing: boxed, they do not size every session's future.
        let retained = if fx.routes.is_empty() {
            Vec::new()
        } else {
            Box::pin(self.apply_routes(std::mem::take(&mut fx.routes))).await
        };
        Metrics::add(&self.kernel.metrics.messages_received, fx.publishes.len() as u64);
        let mut congestion = Congestion::default();
        for message in fx.publishes.drain(..) {
            self.kernel.router.route_reporting(Arc::new(message), &mut congestion);
        }
        let Some(online) = self.online.as_ref() else {
            return;
        };
        trace_out(&self.kernel, &self.shared.client_id, &fx.out);
        if fx.close.is_some() {
            // Acknowledgements held back go out before the connection closes.
            if let Some(mut hold) = self.hold.take() {
                online.io.outbox.push(&mut hold.out);
            }
        } else if !congestion.is_empty() {
            // Queues filled up (subscribers here, other nodes): hold this client, its acknowledgements, and
            // through the reader's permits its socket, until they have room, rather than drop what it publishes.
            self.hold(congestion, &mut fx.out);
        }
        let Some(online) = self.online.as_ref() else {
            return;
        };
        online.io.outbox.push(&mut fx.out);
        for delivery in retained {
            self.shared.push(delivery, &self.kernel.metrics);
        }
        if let Some(close) = fx.close {
            Box::pin(self.end_connection(myself, close)).await;
        } else if fx.window_opened {
            self.drain();
        }
    }

    /// Apply subscription changes to the index; returns the retained messages the new subscriptions get.
    async fn apply_routes(&mut self, routes: Vec<RouteChange>) -> Vec<Delivery> {
        if routes.is_empty() {
            return Vec::new();
        }
        let mut changes = Vec::with_capacity(routes.len());
        let mut retained = Vec::new();
        let mut left_groups = Vec::new();
        for change in routes {
            match change {
                RouteChange::Subscribe {
                    filter,
                    options,
                    send_retained,
                } => {
                    let (path, key, shared) = index_entry(&filter, &self.shared.client_id);
                    if send_retained {
                        let matching = self.kernel.router.retained_matching(&filter);
                        retained.extend(matching.into_iter().map(|m| Delivery::retained(m, &options)));
                    }
                    changes.push(Change {
                        filter: path.to_string(),
                        key,
                        route: Some(Route {
                            target: Target::Session(self.shared.clone()),
                            options,
                            shared,
                        }),
                    });
                }
                RouteChange::Unsubscribe { filter } => {
                    if parse_shared(&filter).is_some() {
                        left_groups.push(filter.clone());
                    }
                    changes.push(unroute_change(&filter, &self.shared.client_id));
                }
            }
        }
        let new_routes = self.kernel.router.apply_here(changes).await;
        // In this node's index: publishes read after the change may be routed now.
        self.fence = None;
        self.kernel.router.settle(new_routes).await;
        for group in left_groups {
            self.hand_off_shared(Some(&group));
        }
        retained
    }

    async fn unroute(&self, filters: Vec<String>) {
        if filters.is_empty() {
            return;
        }
        let changes = filters
            .iter()
            .map(|filter| unroute_change(filter, &self.shared.client_id))
            .collect();
        self.kernel.router.apply(changes).await;
    }

    /// This client leaves shared group `group` (all its groups if `None`): its unacknowledged and queued
    /// messages from the group go to other members, so that none is lost with it. A message whose group has
    /// no other member stays with this session.
    fn hand_off_shared(&self, group: Option<&str>) {
        let router = &self.kernel.router;
        let client_id = &self.shared.client_id;
        let in_group = |d: &Delivery| d.shared.as_deref().is_some_and(|g| group.is_none_or(|want| want == g));
        let unacked = self.shared.state.lock().take_shared_unacked(group);
        let queued = self.shared.take_where(in_group);
        let mut kept = Vec::new();
        let mut moved = 0u64;
        for delivery in unacked.into_iter().chain(queued) {
            if router.dispatch_shared(&delivery, client_id) {
                moved += 1;
            } else {
                kept.push(delivery);
            }
        }
        Metrics::add(&self.kernel.metrics.shared_handed_off, moved);
        for delivery in kept {
            self.shared.push(delivery, &self.kernel.metrics);
        }
    }

    /// Move deliveries from the mailbox into the channel while the inflight window and the outbox have room.
    fn drain(&mut self) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let metrics = &self.kernel.metrics;
        let mut batch = Vec::with_capacity(DRAIN_BATCH);
        let mut fx = Effects::default();
        let now = Instant::now();
        let mut handed = 0;
        loop {
            if online.io.outbox.backlogged() {
                break; // the writer task sends Drain once it has written the backlog
            }
            batch.clear();
            let mut session = self.shared.state.lock();
            // Only what the inflight window lets out is taken: what stays queued stays where the queue's
            // bounds and policy see it.
            let mut window = online.channel.window_room(&session);
            let more = self.shared.take(DRAIN_BATCH, &mut window, &mut batch);
            let blocked = more && batch.len() < DRAIN_BATCH;
            if batch.is_empty() {
                break;
            }
            for delivery in batch.drain(..) {
                let qos = delivery.qos as usize;
                handed += 1;
                match online.channel.deliver(&mut session, delivery, now, &mut fx) {
                    DeliverOutcome::Sent => {
                        Metrics::add(&metrics.messages_sent, 1);
                        Metrics::add(&metrics.sent_by_qos[qos], 1);
                    }
                    DeliverOutcome::Expired => Metrics::add(&metrics.dropped_expired, 1),
                    DeliverOutcome::TooLarge => Metrics::add(&metrics.dropped_too_large, 1),
                }
            }
            drop(session);
            // Write each batch as it is encoded, so that the backlog check above sees what the socket did not
            // take.
            trace_out(&self.kernel, &self.shared.client_id, &fx.out);
            online.io.outbox.push(&mut fx.out);
            // The window is full (a PUBACK/PUBCOMP opens it and drains again), or the queue is empty.
            if blocked || !more {
                break;
            }
        }
        trace_out(&self.kernel, &self.shared.client_id, &fx.out);
        online.io.outbox.push(&mut fx.out);
        self.shared.drained(handed);
    }

    async fn tick(&mut self, myself: &ActorRef<SessionMsg>) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let mut fx = Effects::default();
        online.channel.handle_timeout(Instant::now(), &mut fx);
        if fx.close.is_some() {
            self.apply_effects(myself, fx).await;
        }
    }

    /// Check for idleness in `hibernate_after`; activity from now on keeps the session awake.
    fn schedule_idle_check(&mut self, myself: &ActorRef<SessionMsg>) {
        self.idle_mark = self.handled;
        let after = self.kernel.config.hibernate_after;
        if after.is_zero() || self.online.is_none() {
            return;
        }
        let generation = self.generation;
        myself.send_after(after, move || SessionMsg::IdleCheck { generation });
    }

    /// Hibernate if nothing but this check happened since the last one and nothing waits to be sent; otherwise
    /// look again later.
    fn idle_check(&mut self, myself: &ActorRef<SessionMsg>, generation: u64) {
        let busy = self.handled != self.idle_mark + 1 || self.hold.is_some();
        let quiet = !busy
            && self.shared.mailbox.lock().queue.is_empty()
            && self.online.as_ref().is_some_and(|o| o.io.outbox.is_idle());
        if !quiet {
            self.schedule_idle_check(myself);
            return;
        }
        // From here on messages for the session wait in its gate; those already in our mailbox are handled
        // before the Hibernate message, so none is lost.
        self.shared.begin_hibernate();
        if myself.send_message(SessionMsg::Hibernate { generation }).is_err() {
            self.shared.wake(myself.clone());
        }
    }

    async fn hibernate(&mut self, myself: &ActorRef<SessionMsg>, generation: u64) {
        let quiet = self.is_current(generation)
            && self.shared.mailbox.lock().queue.is_empty()
            && self.online.as_ref().is_some_and(|o| o.io.outbox.is_idle());
        // Only a quiet connection is parked; taking it out first would drop a busy one.
        if let Some(online) = quiet.then(|| self.online.take()).flatten() {
            let parked = Box::new(Parked {
                online,
                generation: self.generation,
            });
            match self.shared.park(parked) {
                Ok(()) => {
                    Metrics::add(&self.kernel.metrics.sessions_hibernated, 1);
                    if let Some(sup) = self.kernel.session_sup() {
                        let _ = sup.send_message(SessionSupMsg::Hibernated {
                            client_id: self.shared.client_id.clone(),
                            actor: myself.get_id(),
                        });
                    }
                    myself.stop(Some(HIBERNATED.into()));
                    return;
                }
                Err(parked) => self.online = Some(parked.online),
            }
        }
        // Something arrived: stay awake, and handle what waited in the gate before anything newer.
        let (_, pending) = self.shared.wake(myself.clone());
        for msg in pending {
            Box::pin(self.handle(myself, msg)).await;
        }
        self.schedule_idle_check(myself);
    }

    /// Started to wake a hibernated session: take its parked connection, then what arrived while it slept.
    async fn unpark(&mut self, myself: &ActorRef<SessionMsg>) {
        let (parked, pending) = self.shared.wake(myself.clone());
        let Some(parked) = parked else {
            // The connection went while we were being started (the supervisor restarted): recover instead.
            return self.recover(myself).await;
        };
        self.online = Some(parked.online);
        self.generation = parked.generation;
        Metrics::add(&self.kernel.metrics.sessions_woken, 1);
        for msg in pending {
            Box::pin(self.handle(myself, msg)).await;
        }
        self.drain();
        self.schedule_idle_check(myself);
    }

    async fn reader_closed(&mut self, myself: &ActorRef<SessionMsg>, error: Option<DecodeError>) {
        match error {
            None => {
                let close = Close {
                    reason: reason::UNSPECIFIED_ERROR,
                    publish_will: true,
                    why: "connection lost".into(),
                };
                self.end_connection(myself, close).await;
            }
            Some(e) => {
                Metrics::add(&self.kernel.metrics.protocol_errors, 1);
                self.close_by_server(myself, e.reason_code(), &e.to_string()).await;
            }
        }
    }

    /// The broker closes the connection: 5.0 clients are told why first; the will is published.
    async fn close_by_server(&mut self, myself: &ActorRef<SessionMsg>, code: u8, why: &str) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let mut fx = Effects::default();
        online.channel.close_with(code, true, why.to_string(), &mut fx);
        self.apply_effects(myself, fx).await;
    }

    /// The connection is over: flush and close the socket, then keep or end the session.
    async fn end_connection(&mut self, myself: &ActorRef<SessionMsg>, close: Close) {
        let Some(online) = self.online.take() else {
            return;
        };
        self.hold = None;
        self.generation += 1;
        let reason = format!("0x{:02X}", close.reason);
        if close.publish_will || close.reason >= 0x80 {
            tracing::info!(client = %self.shared.client_id, peer = %online.peer, reason, "connection closed: {}", close.why);
        } else {
            tracing::debug!(client = %self.shared.client_id, peer = %online.peer, reason, "connection closed: {}", close.why);
        }
        online.io.close();
        *self.shared.conn.lock() = None;
        self.shared.set_online(None, &self.kernel.limits, &self.kernel.metrics);
        self.after_disconnect(myself, close.publish_will).await;
    }

    /// No connection any more: the session core decides about the will and the session's end.
    async fn after_disconnect(&mut self, myself: &ActorRef<SessionMsg>, publish_will: bool) {
        // A disconnected member does not hold up its shared groups.
        self.hand_off_shared(None);
        let lapse = self.shared.state.lock().disconnected(publish_will, Instant::now());
        self.lapse(myself, lapse).await;
    }

    /// Do what the session core asked (publish the will, end the session), then arm its next deadline.
    async fn lapse(&mut self, myself: &ActorRef<SessionMsg>, lapse: Lapse) {
        if let Some(will) = lapse.will {
            route_will(&self.kernel, will);
        }
        if lapse.ended {
            return self.end_session(myself).await;
        }
        let due = self.shared.state.lock().poll_timeout();
        if let Some(due) = due {
            let generation = self.generation;
            let after = due.saturating_duration_since(Instant::now());
            myself.send_after(after, move || SessionMsg::Timeout { generation });
        }
    }

    /// Remove every trace of the session, then ask the supervisor to stop this actor.
    async fn end_session(&mut self, myself: &ActorRef<SessionMsg>) {
        self.ending = true;
        self.hand_off_shared(None);
        let filters: Vec<String> = {
            let mut session = self.shared.state.lock();
            let filters = session.subscriptions.keys().cloned().collect();
            session.clear();
            filters
        };
        self.unroute(filters).await;
        self.shared.mailbox.lock().queue.clear();
        match self.kernel.session_sup() {
            Some(sup) => {
                let _ = sup.send_message(SessionSupMsg::SessionEnded {
                    client_id: self.shared.client_id.clone(),
                    actor: myself.get_id(),
                });
            }
            None => myself.stop(None),
        }
    }
}

/// Publish a will the session core handed over.
fn route_will(kernel: &Kernel, will: Message) {
    tracing::debug!(client = ?will.publisher, topic = %will.topic, "publishing will");
    Metrics::add(&kernel.metrics.messages_received, 1);
    kernel.router.route(Arc::new(will));
}
