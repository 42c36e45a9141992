//! One actor per session: the failure domain of one client, like one Erlang process per connection in EMQX.
//!
//! The actor lives as long as the session, not the connection: it serves a connection while one is attached,
//! arms the session's timers (expiry, delayed will, as the core asks) while none is, and adopts the next connection for the same
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
//!
//! The actor drives the protocol core: it decides nothing the spec rules (the channel and the session's
//! lifecycle in `ractmq-protocol` do), it carries bytes, arms the timer the core asks for and applies effects.
//! By concern: `hold.rs` (a publisher held), `subscriptions.rs` (the index), `hibernation.rs`, `ending.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ractmq_codec::{reason, DecodeError, Packet};
use ractmq_protocol::channel::DeliverOutcome;
use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::{Channel, Close, Delivery, Effects, Lapse, Message, RouteChange};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::connection::{AbortOnDrop, Batch, Io, Permit};
use crate::fence::FenceGuard;
use crate::flow::Congestion;
use crate::hooks::{client_ref, ClientEvent, HookKind};
use crate::index::{index_entry, Change, Route, Target};
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::moving::RELAY_FOR;
use crate::remote_sessions::SessionHandover;
use crate::session_msg::{Attach, ConnectedGuard, Online, Parked, SessionMsg, SessionSupMsg};
use crate::session_store::{ConnInfo, SessionShared};
use crate::trace::{describe_frames, trace_line};

mod commit_wait;
mod ending;
mod hibernation;
mod hold;
mod subscriptions;

use commit_wait::CommitWait;
use ending::route_will;
pub use hibernation::open_hibernated;
use hold::Hold;

/// The stop reason of an actor that hibernated (its supervisor does not restart it).
pub const HIBERNATED: &str = "hibernated";

/// Deliveries handed to the channel per mailbox drain, so one busy subscriber cannot hold its actor for long.
const DRAIN_BATCH: usize = 256;

/// How long a closing connection waits for the commit its last acknowledgements (and its DISCONNECT) wait for.
const CLOSE_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Where the next session actor starts numbering its connections (see `SessionState::generation`).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

pub struct SessionActor;

pub struct SessionArgs {
    pub shared: Arc<SessionShared>,
    pub kernel: Arc<Kernel>,
    pub first: SessionMsg,
}

/// What one drain batch did, added to the node's counters at once (see `SessionState::drain`).
#[derive(Default)]
struct DrainCounts {
    sent_by_qos: [u64; 3],
    expired: u64,
    too_large: u64,
}

impl DrainCounts {
    /// Add to `metrics` and start again from zero.
    fn add_to(&mut self, metrics: &Metrics) {
        let counts = std::mem::take(self);
        let sent: u64 = counts.sent_by_qos.iter().sum();
        if sent > 0 {
            Metrics::add(&metrics.messages_sent, sent);
            for (counter, n) in metrics.sent_by_qos.iter().zip(counts.sent_by_qos) {
                if n > 0 {
                    Metrics::add(counter, n);
                }
            }
        }
        if counts.expired > 0 {
            Metrics::add(&metrics.dropped_expired, counts.expired);
        }
        if counts.too_large > 0 {
            Metrics::add(&metrics.dropped_too_large, counts.too_large);
        }
    }
}

/// Name the packets going out to a traced client (see `trace.rs`).
fn trace_out(kernel: &Kernel, client_id: &str, out: &[u8]) {
    if kernel.traces.is_active() && !out.is_empty() {
        for frame in describe_frames(out) {
            kernel.traces.record(client_id, || trace_line("out", frame));
        }
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
        authorizer,
        http_authz,
        owner,
    } = attach;
    let peer = transport.peer;
    let mut fx = Effects::default();
    let now = Instant::now();
    let (mut channel, attached) = {
        let mut session = shared.state.lock();
        let attached = session.attach(session_present, now);
        if !attached.session_present {
            session.owner = owner;
            shared.lock_mailbox().queue.clear();
            // Messages relayed for the session it replaces are not this one's (see `moving.rs`).
            shared.forget_arrivals();
        }
        let mut channel = Channel::start(
            &connect,
            &accepted,
            &mut session,
            attached.session_present,
            kernel.limits.clone(),
            now,
            &mut fx,
        );
        if let Some(authorizer) = authorizer {
            // The will is checked now; an HTTP service's answer for it was fetched by the listener.
            channel.set_authorizer(&mut session, authorizer, &mut fx);
            if let Some(http) = &http_authz {
                http.settle();
            }
        }
        crate::durable::attached(kernel, shared, &mut session, attached.session_present);
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
        in_process: listener == crate::listener::IN_PROCESS,
    });
    if let Some(hooks) = kernel.router.hooks_for(HookKind::ClientConnected) {
        let conn = shared.conn.lock().clone();
        let expiry_interval = shared.state.lock().expiry_interval;
        hooks.event(&ClientEvent::Connected {
            client: client_ref(&shared.client_id, conn.as_ref()),
            keep_alive: connect.keep_alive,
            clean_start: connect.clean_start,
            expiry_interval,
        });
    }
    let set_for_it = (listener == crate::listener::IN_PROCESS)
        .then(|| kernel.in_process_queues.lock().get(&*shared.client_id).cloned())
        .flatten();
    if let Some(policy) = set_for_it {
        shared.set_offline_policy(policy);
    }
    let policy = set_for_it
        .unwrap_or_else(|| (kernel.config).queue_policy(listener, &shared.client_id, connect.username.as_deref()));
    shared.set_online(Some(policy), &kernel.limits, &kernel.metrics);
    let online = Online {
        channel,
        io,
        peer,
        http_authz,
        _connected: ConnectedGuard::new(&kernel.metrics),
    };
    (online, attached.dropped)
}

pub struct SessionState {
    shared: Arc<SessionShared>,
    kernel: Arc<Kernel>,
    online: Option<Online>,
    /// Bumped on every attach and disconnect: stale socket messages and timers compare and are ignored. Each
    /// actor starts in a range of its own: when a whole supervisor fails, the dying actors' readers live on
    /// for a moment and send to the restarted actors, whose new connections must not take those batches for
    /// their own (they would handle packets read from the old socket: a PUBLISH routed twice, a second PUBCOMP).
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
    /// Packets for the client that wait for the store to commit what they promise (see `commit_wait.rs`).
    commit_wait: CommitWait,
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
            generation: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed) << 32,
            ending: false,
            handled: 0,
            idle_mark: 0,
            hold: None,
            fence: None,
            commit_wait: CommitWait::default(),
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
            SessionMsg::Inbound(batch) => {
                if !self.is_current(batch.generation) {
                    return;
                }
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
                    match self.hold.as_mut() {
                        Some(hold) if hold.defers_close => hold.closed = Some(error),
                        _ => Box::pin(self.reader_closed(myself, error)).await,
                    }
                }
            }
            SessionMsg::Drain => self.drain(),
            SessionMsg::Committed { generation } => {
                if self.is_current(generation) {
                    self.commit_made();
                }
            }
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
        self.forget_commit_wait();
        if let Some(old) = self.online.take() {
            self.takeover(old);
        }
        let (online, dropped_routes) = open(&self.shared, &self.kernel, self.generation, *attach);
        self.unroute(dropped_routes).await;
        self.online = Some(online);
        self.schedule_idle_check(myself);
        self.drain();
    }

    async fn inbound(&mut self, myself: &ActorRef<SessionMsg>, packets: Vec<Packet>, permit: Permit) {
        let Some(online) = self.online.as_mut() else {
            return;
        };
        let now = Instant::now();
        let mut fx = Effects::default();
        // Messages are large values: a vector regrown as a batch of PUBLISHes fills it copies them each time.
        let publishes = packets.iter().filter(|p| matches!(p, Packet::Publish(_))).count();
        fx.publishes.reserve_exact(publishes);
        if self.kernel.router.hooks_for(HookKind::MessageAcked).is_some() {
            fx.acked = Some(Vec::new());
        }
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
        // The HTTP service's answers fetched for this batch (see `hold.rs`) go to the client's cache.
        if let Some(http) = &online.http_authz {
            http.settle();
        }
        self.apply_effects(myself, fx).await;
        // Held: the batch keeps its permit until the hold ends.
        match self.hold.as_mut() {
            Some(hold) => hold.permit = Some(permit),
            None => drop(permit),
        }
    }

    /// Carry out what the channel asked for, in the order that keeps the protocol's promises: index changes
    /// before the SUBACK goes out, routing in the order the client published.
    async fn apply_effects(&mut self, myself: &ActorRef<SessionMsg>, mut fx: Effects) {
        // Subscribing and closing are rare next to publishing: boxed, they do not size every session's future.
        let routes_changed = !fx.routes.is_empty();
        let retained = if fx.routes.is_empty() {
            Vec::new()
        } else {
            Box::pin(self.apply_routes(std::mem::take(&mut fx.routes))).await
        };
        Metrics::add(&self.kernel.metrics.messages_received, fx.publishes.len() as u64);
        if let Some(acked) = fx.acked.take().filter(|a| !a.is_empty()) {
            self.message_events(acked.iter().map(|m| (m, None)));
        }
        if fx.denied > 0 {
            Metrics::add(&self.kernel.metrics.authz_denied, u64::from(fx.denied));
        }
        let mut congestion = Congestion::default();
        // A QoS 2 receipt and the copies it guards against routing twice are committed together: a kill -9
        // that kept the receipt without the copies would make the client's resent PUBLISH a duplicate, and
        // the message would be lost; the copies without the receipt would route it twice.
        let receipts =
            |fx: &Effects| (fx.journal.iter()).any(|j| matches!(j, ractmq_protocol::Journal::AwaitingRelease { .. }));
        let group = (self.kernel.disk.as_ref()).filter(|_| !fx.publishes.is_empty() && receipts(&fx));
        let group = group.map(|disk| disk.group());
        if let Some(disk) = &self.kernel.disk {
            let waits = fx.output_waits_for_journal();
            if let Some(ticket) = crate::durable::journal(&self.kernel, &self.shared.client_id, &mut fx.journal) {
                if waits {
                    congestion.commit(disk, ticket);
                }
            }
            if !retained.is_empty() || routes_changed {
                if let Some(ticket) = crate::durable::changed(&self.kernel, &self.shared, true) {
                    congestion.commit(disk, ticket);
                }
            }
        }
        // In order; the messages of a run to one topic reach each subscriber in one push.
        self.kernel.router.route_batch(fx.publishes.drain(..), &mut congestion);
        drop(group);
        let Some(online) = self.online.as_ref() else {
            return;
        };
        trace_out(&self.kernel, &self.shared.client_id, &fx.out);
        // Acknowledgements of what is not committed yet wait for the commit, in order; the client goes on.
        let commit = congestion.uncommitted();
        if fx.close.is_some() {
            // Acknowledgements held back for full queues go out before the connection closes.
            if let Some(mut hold) = self.hold.take() {
                online.io.outbox.push(&mut hold.out);
            }
        } else if congestion.has_backlogs() {
            // Queues filled up (subscribers here, other nodes): hold this client, its acknowledgements, and
            // through the reader's permits its socket, until they have room, rather than drop what it publishes.
            self.hold(congestion, &mut fx.out);
        }
        self.send_out(&mut fx.out, commit);
        for delivery in retained {
            self.shared.push(delivery, &self.kernel.metrics);
        }
        if let Some(close) = fx.close {
            Box::pin(self.flush_commit_wait(CLOSE_COMMIT_WAIT)).await;
            Box::pin(self.end_connection(myself, close)).await;
        } else if fx.window_opened {
            self.drain();
        }
    }

    /// Move deliveries from the mailbox into the channel while the inflight window and the outbox have room.
    fn drain(&mut self) {
        if self.online.is_none() {
            return;
        }
        let kernel = self.kernel.clone();
        let metrics = &kernel.metrics;
        let mut batch = Vec::with_capacity(DRAIN_BATCH);
        let mut fx = Effects::default();
        let now = Instant::now();
        let mut handed = 0;
        // What went out, for the hooks, when they want it.
        let mut delivered = kernel.router.hooks_for(HookKind::MessageDelivered).map(|_| Vec::new());
        // Counted here and added to the shared counters once per batch, before its bytes can reach the client
        // (whoever reads the counters after a delivery finds it counted): two atomic adds per delivery on lines
        // every session's drain writes cost more than the rest of a QoS 0 delivery.
        let mut counts = DrainCounts::default();
        while let Some(online) = self.online.as_mut() {
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
            // Room for the batch's PUBLISHes at once (3.x sizes; 5.0 properties grow it), rather than a buffer
            // regrown and copied as they are encoded.
            fx.out.reserve(
                batch
                    .iter()
                    .map(|d| d.message.topic.len() + d.message.payload.len() + 8)
                    .sum(),
            );
            for delivery in batch.drain(..) {
                let qos = delivery.qos as usize;
                handed += 1;
                let message = delivered.as_ref().map(|_| (delivery.message.clone(), delivery.qos));
                match online.channel.deliver(&mut session, delivery, now, &mut fx) {
                    DeliverOutcome::Sent => {
                        counts.sent_by_qos[qos] += 1;
                        if let (Some(delivered), Some(message)) = (delivered.as_mut(), message) {
                            delivered.push(message);
                        }
                    }
                    DeliverOutcome::Expired => counts.expired += 1,
                    DeliverOutcome::TooLarge => counts.too_large += 1,
                }
            }
            drop(session);
            counts.add_to(metrics);
            // Write each batch as it is encoded, so that the backlog check above sees what the socket did not
            // take.
            trace_out(&kernel, &self.shared.client_id, &fx.out);
            let waits = fx.output_waits_for_journal();
            let ticket = crate::durable::journal(&kernel, &self.shared.client_id, &mut fx.journal);
            self.send_out(&mut fx.out, ticket.filter(|_| waits));
            // The window is full (a PUBACK/PUBCOMP opens it and drains again), or the queue is empty.
            if blocked || !more {
                break;
            }
        }
        self.shared.drained(handed);
        if let Some(delivered) = delivered.filter(|d| !d.is_empty()) {
            self.message_events(delivered.iter().map(|(m, qos)| (m, Some(*qos))));
        }
    }

    /// Tell the hooks about messages sent to this client (with the QoS they went out at) or acknowledged by
    /// it (`None`).
    fn message_events<'m>(&self, messages: impl Iterator<Item = (&'m Arc<Message>, Option<ractmq_codec::QoS>)>) {
        let Some(hooks) = self.kernel.router.hooks() else {
            return;
        };
        let conn = self.shared.conn.lock().clone();
        let to = client_ref(&self.shared.client_id, conn.as_ref());
        for (message, qos) in messages {
            hooks.event(&match qos {
                Some(qos) => ClientEvent::Delivered { to, message, qos },
                None => ClientEvent::Acked { to, message },
            });
        }
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
}
