//! Where every session's state lives, outside the actor that serves it.
//!
//! A session actor may panic or be killed; its client's subscriptions, messages in flight and queued messages
//! must not die with it. They live here, in a [`SessionShared`] per client id that the store, the subscription
//! index and the actor all hold. A restarted actor picks up the same `SessionShared`; a rebuilt topic shard
//! reads every session's subscriptions from here. The store itself is plain data owned by the broker handle, so
//! no actor restart can lose it (a node restart does: sessions are in memory).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use ractmq_codec::{Protocol, QoS};
use ractmq_protocol::config::Limits;
use ractmq_protocol::{BoundedQueue, Delivery, Journal, Message, PushOutcome, QueueMode, QueuePolicy, Session};
use ractmq_store::{Op, Store, Ticket};
use ractor::ActorRef;
use tokio::sync::Notify;

use crate::arrivals::Arrivals;
use crate::connection::{ConnEvent, ConnOwner};
use crate::flow::Backlog;
use crate::metrics::Metrics;
use crate::remote_sessions::SessionHandover;
use crate::session_msg::{Parked, SessionMsg, SessionSupMsg};

/// The session supervisor's current ref, shared with every session so that a hibernated one can ask for an
/// actor again.
pub type SupSlot = Arc<RwLock<Option<ActorRef<SessionSupMsg>>>>;

/// Messages routed to a session and not yet handed to its protocol state machine.
pub struct Mailbox {
    pub queue: BoundedQueue<Delivery>,
    /// The bounds of this client's queue while it is connected (node-wide, or from a per-client rule).
    online_policy: QueuePolicy,
    /// The bounds while it is not, when its owner set them (a bridge's buffer); else the node's offline ones.
    offline_policy: Option<QueuePolicy>,
    /// A push found the queue full: publishers may be waiting on [`SessionShared::room`].
    held: bool,
    /// Moves whenever the actor hands queued messages to the client (see [`Backlog::progress`]).
    progress: u64,
    /// A Drain message is on its way to the actor; no need to send another.
    wake_pending: bool,
    pub online: bool,
    /// The session has moved to this node and handed its messages over: what still reaches it is relayed
    /// there (see `moving.rs`).
    moved_to: Option<Arc<str>>,
}

/// A session's queue size as operators read it (see [`SessionShared::queued`]).
#[derive(Default)]
struct QueuedGauge {
    len: AtomicUsize,
    bytes: AtomicUsize,
}

/// The locked mailbox of a session; records the queue's size on release.
pub struct MailboxGuard<'a> {
    guard: parking_lot::MutexGuard<'a, Mailbox>,
    gauge: &'a QueuedGauge,
}

impl std::ops::Deref for MailboxGuard<'_> {
    type Target = Mailbox;
    fn deref(&self) -> &Mailbox {
        &self.guard
    }
}

impl std::ops::DerefMut for MailboxGuard<'_> {
    fn deref_mut(&mut self) -> &mut Mailbox {
        &mut self.guard
    }
}

impl Drop for MailboxGuard<'_> {
    fn drop(&mut self) {
        self.gauge.len.store(self.guard.queue.len(), Ordering::Relaxed);
        self.gauge.bytes.store(self.guard.queue.bytes(), Ordering::Relaxed);
    }
}

/// What an operator sees of a session's current connection (see `inspect.rs`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    pub protocol: Protocol,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub connected_at: std::time::SystemTime,
    /// The node's own in-process connection (a bridge's), which an evacuation leaves in place.
    pub in_process: bool,
}

/// One client's session, shared by the store, the subscription index and the session actor.
pub struct SessionShared {
    pub client_id: Arc<str>,
    /// The connection attached now, for operators; `None` while disconnected.
    pub conn: Mutex<Option<ConnInfo>>,
    /// Protocol state; locked by the session actor while it handles a message, and by a shard rebuild.
    pub state: Mutex<Session>,
    /// Locked through [`lock_mailbox`](Self::lock_mailbox), which keeps `queued` up to date.
    mailbox: Mutex<Mailbox>,
    /// The queue's length and bytes as of the last unlock, for operators to read without the lock.
    queued: QueuedGauge,
    /// Who receives this session's messages: the live actor, or the parked connection of a hibernated one.
    gate: Mutex<Gate>,
    sup: SupSlot,
    /// For a while after this session moved here from another node: what reached it, so that nothing
    /// reaches it twice (see `moving.rs`). `remembering` spares every delivery the lock otherwise.
    arrivals: Mutex<Option<Arrivals>>,
    remembering: AtomicBool,
    /// Publishers held by this session's full queue wait here for room (see `flow.rs`).
    room: Notify,
    metrics: Arc<Metrics>,
    /// The node's store, on a node that keeps sessions on disk (see `durable.rs`).
    disk: Option<Store>,
    /// The store keeps this session: its QoS 1/2 copies (and any copy queued while it is offline) are written
    /// there before they are queued.
    persistent: AtomicBool,
    /// Brought back from the store at start, not yet recovered by an actor.
    restored: AtomicBool,
    /// Messages this session's queue dropped by its overflow policy, for operators (a bridge's buffer).
    pub dropped: std::sync::atomic::AtomicU64,
    /// Times the session supervisor restarted this session's actor, for the supervision tree operators read.
    pub restarts: std::sync::atomic::AtomicU64,
    /// Where what the overflow policy drops goes, when the node dead-letters dropped messages.
    dead_letters: std::sync::OnceLock<DeadLetters>,
}

/// The node's queue of messages its subscribers' full queues dropped, to publish on `$dlq/$queue/...`
/// (`BrokerConfig::dead_letter_dropped`): (client id, message).
pub type DeadLetters = tokio::sync::mpsc::Sender<(Arc<str>, Arc<Message>)>;

/// Where a delivery went.
pub enum Pushed {
    Queued,
    /// Queued past the bound of a subscriber that is making progress: the publisher should wait for room.
    Full,
    /// Not taken: the session has moved to this node, for the caller to relay it there.
    Moved(Arc<str>),
}

/// Where a message to this session goes. Everything that talks to a session (its socket tasks, the router, the
/// supervisor) goes through here rather than holding an actor ref, because the actor may be hibernated.
enum Gate {
    /// No actor: between a failure and the restart. Messages are dropped; the restarted actor starts from the
    /// store and the client reconnects.
    Down,
    Live(ActorRef<SessionMsg>),
    /// Hibernated, or about to be: `parked` is the idle connection, `pending` what arrived since. The first
    /// message asks the supervisor for a new actor, which takes both.
    Asleep {
        parked: Option<Box<Parked>>,
        pending: Vec<SessionMsg>,
        wake_sent: bool,
    },
}

/// Messages a waking session may have waiting: its reader's batches (bounded by the reader's permits) and
/// one of each wake-up kind, so this stays small however long the wake takes.
fn pending_has_room(pending: &[SessionMsg], msg: &SessionMsg) -> bool {
    match msg {
        SessionMsg::Drain => !pending.iter().any(|m| matches!(m, SessionMsg::Drain)),
        SessionMsg::QueueOverflow => !pending.iter().any(|m| matches!(m, SessionMsg::QueueOverflow)),
        _ => true,
    }
}

impl SessionShared {
    pub fn new(
        client_id: Arc<str>,
        limits: &Limits,
        sup: SupSlot,
        metrics: Arc<Metrics>,
        disk: Option<Store>,
    ) -> Arc<Self> {
        Arc::new(SessionShared {
            conn: Mutex::new(None),
            state: Mutex::new(Session::new(client_id.clone())),
            mailbox: Mutex::new(Mailbox {
                queue: BoundedQueue::new(limits.offline_queue(), QueueMode::Policy),
                online_policy: limits.online_queue(),
                offline_policy: None,
                held: false,
                progress: 0,
                wake_pending: false,
                online: false,
                moved_to: None,
            }),
            queued: QueuedGauge::default(),
            arrivals: Mutex::new(None),
            remembering: AtomicBool::new(false),
            room: Notify::new(),
            metrics,
            gate: Mutex::new(Gate::Down),
            sup,
            client_id,
            disk,
            persistent: AtomicBool::new(false),
            restored: AtomicBool::new(false),
            dropped: Default::default(),
            restarts: Default::default(),
            dead_letters: std::sync::OnceLock::new(),
        })
    }

    /// Brought back from the store at start (its first actor recovers it as a restart would).
    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::Relaxed);
    }

    /// True the first time it is asked of a session brought back from the store.
    pub fn take_restored(&self) -> bool {
        self.restored.swap(false, Ordering::Relaxed)
    }

    /// The bounds of this session's queue while no connection is attached, instead of the node's offline ones.
    pub fn set_offline_policy(&self, policy: QueuePolicy) {
        self.lock_mailbox().offline_policy = Some(policy);
    }

    /// Queue the copies read back from the store, in order, within the offline bounds. The node's own sessions
    /// (client ids starting with `$`: bridges' buffers) keep everything: their owners set their bounds once
    /// they connect again.
    pub fn restore_queue(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        let mut mb = self.lock_mailbox();
        if self.client_id.starts_with('$') {
            let mut unbounded = mb.online_policy;
            unbounded.max_len = usize::MAX;
            unbounded.max_bytes = usize::MAX;
            mb.queue.set_policy(unbounded, QueueMode::Policy);
        }
        for delivery in deliveries {
            mb.queue.push(delivery);
        }
        self.forget_dropped(&mut mb);
    }

    /// Let `f` see (and number) every queued delivery, in order.
    pub fn number_queued(&self, mut f: impl FnMut(&mut Delivery)) {
        let mut mb = self.lock_mailbox();
        let mut all: Vec<Delivery> = std::iter::from_fn(|| mb.queue.pop()).collect();
        all.iter_mut().for_each(&mut f);
        for d in all.into_iter().rev() {
            mb.queue.push_front(d);
        }
    }

    /// The node's store, if it keeps sessions on disk.
    pub fn disk(&self) -> Option<&Store> {
        self.disk.as_ref()
    }

    /// The store keeps this session from now on (or no longer does).
    pub fn set_persistent(&self, persistent: bool) {
        if persistent && self.disk.is_some() {
            self.lock_mailbox().queue.keep_dropped();
        }
        self.persistent
            .store(persistent && self.disk.is_some(), Ordering::Release);
    }

    /// The store keeps this session.
    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Acquire)
    }

    /// The store may forget these copies: dropped from the queue, or handed to another session.
    pub fn forget_copies(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        if let Some(disk) = &self.disk {
            let client = &self.client_id;
            disk.submit_all(deliveries.into_iter().filter_map(|d| {
                d.stored.map(|stored| Op::Journal {
                    client: client.clone(),
                    entry: Journal::Done { stored },
                })
            }));
        }
    }

    /// What the queue's overflow policy dropped since last asked, forgotten by the store too.
    fn forget_dropped(&self, mb: &mut Mailbox) {
        if self.disk.is_some() || self.dead_letters.get().is_some() {
            let dropped = mb.queue.take_dropped();
            if let Some(letters) = self.dead_letters.get() {
                // Not a dead letter again (a full dead-letter reader would feed itself); when the queue of
                // letters is full, the letter is lost, as the drop it reports was.
                for d in dropped.iter().filter(|d| !d.message.topic.starts_with("$dlq/")) {
                    let _ = letters.try_send((self.client_id.clone(), d.message.clone()));
                }
            }
            if !dropped.is_empty() {
                self.forget_copies(dropped);
            }
        }
    }

    /// What this session's queue drops goes to `letters` from now on.
    pub fn dead_letter_drops(&self, letters: DeadLetters) {
        if self.dead_letters.set(letters).is_ok() {
            self.lock_mailbox().queue.keep_dropped();
        }
    }

    /// `actor` serves this session from now on (`None`: no actor until a restart). A hibernated connection
    /// still parked here is closed: only an actor that wakes the session may take it.
    pub fn set_owner(&self, actor: Option<ActorRef<SessionMsg>>) {
        let old = std::mem::replace(
            &mut *self.gate.lock(),
            match actor {
                Some(a) => Gate::Live(a),
                None => Gate::Down,
            },
        );
        drop(old);
        self.lock_mailbox().wake_pending = false;
    }

    /// Send `msg` to the session: to its actor, or, if it hibernates, into its pending list (waking it).
    /// False if there is no actor to receive it.
    pub fn send(&self, msg: SessionMsg) -> bool {
        self.try_send(msg).is_ok()
    }

    /// [`send`](Self::send), giving the message back if there is no actor to receive it.
    pub fn try_send(&self, msg: SessionMsg) -> Result<(), SessionMsg> {
        let mut gate = self.gate.lock();
        match &mut *gate {
            Gate::Down => Err(msg),
            Gate::Live(actor) => match actor.send_message(msg) {
                Err(ractor::MessagingErr::SendErr(msg)) => Err(msg),
                // `send_message` fails with nothing else.
                _ => Ok(()),
            },
            Gate::Asleep { pending, wake_sent, .. } => {
                if pending_has_room(pending, &msg) {
                    pending.push(msg);
                }
                if !*wake_sent {
                    *wake_sent = true;
                    if let Some(sup) = self.sup.read().as_ref() {
                        let _ = sup.send_message(SessionSupMsg::Wake(self.client_id.clone()));
                    }
                }
                Ok(())
            }
        }
    }

    /// The actor is about to hibernate: from now on messages wait in the gate.
    pub fn begin_hibernate(&self) {
        *self.gate.lock() = Gate::Asleep {
            parked: None,
            pending: Vec::new(),
            wake_sent: false,
        };
    }

    /// Park the idle connection, unless a message arrived since [`begin_hibernate`](Self::begin_hibernate);
    /// then the actor stays awake and gets the connection back.
    pub fn park(&self, connection: Box<Parked>) -> Result<(), Box<Parked>> {
        let mut gate = self.gate.lock();
        match &mut *gate {
            Gate::Asleep {
                parked: slot @ None,
                pending,
                ..
            } if pending.is_empty() => {
                *slot = Some(connection);
                Ok(())
            }
            _ => Err(connection),
        }
    }

    /// Park the connection of a session that starts hibernated; messages that came in meanwhile stay pending
    /// (and have already asked for an actor).
    pub fn park_new(&self, connection: Box<Parked>) {
        if let Gate::Asleep {
            parked: slot @ None, ..
        } = &mut *self.gate.lock()
        {
            *slot = Some(connection);
        }
    }

    /// `actor` serves the session now: take the parked connection (if any) and what arrived meanwhile.
    pub fn wake(&self, actor: ActorRef<SessionMsg>) -> (Option<Box<Parked>>, Vec<SessionMsg>) {
        match std::mem::replace(&mut *self.gate.lock(), Gate::Live(actor)) {
            Gate::Asleep { parked, pending, .. } => (parked, pending),
            _ => (None, Vec::new()),
        }
    }

    /// Close the connection of a hibernated session (its supervisor is going away); a live actor is left alone.
    pub fn close_parked(&self) {
        let mut gate = self.gate.lock();
        if matches!(&*gate, Gate::Asleep { .. }) {
            let parked = std::mem::replace(&mut *gate, Gate::Down);
            drop(gate);
            drop(parked);
        }
    }

    /// The session hibernates: its connection waits in the gate with no actor.
    pub fn is_hibernating(&self) -> bool {
        matches!(&*self.gate.lock(), Gate::Asleep { parked: Some(_), .. })
    }

    /// The session hibernates with its connection parked and a message waiting: it needs an actor.
    pub fn wants_waking(&self) -> bool {
        matches!(
            &*self.gate.lock(),
            Gate::Asleep {
                parked: Some(_),
                wake_sent: true,
                ..
            }
        )
    }

    /// A connection is attached (awake or hibernating).
    pub fn is_online(&self) -> bool {
        self.lock_mailbox().online
    }

    /// Switch the mailbox between the online bounds (`policy`, this client's) and the offline ones. Going
    /// offline trims the queue to the offline bounds; coming online keeps everything queued.
    pub fn set_online(&self, online: Option<QueuePolicy>, limits: &Limits, metrics: &Metrics) {
        let mut mb = self.lock_mailbox();
        mb.online = online.is_some();
        match online {
            Some(policy) => {
                mb.online_policy = policy;
                mb.queue.set_policy(policy, QueueMode::Hold);
            }
            None => {
                let offline = mb.offline_policy.unwrap_or_else(|| limits.offline_queue());
                let (dropped, _) = mb.queue.enforce(offline);
                Metrics::add(&metrics.dropped_offline_queue_full, dropped);
                Metrics::add(&self.dropped, dropped);
                self.forget_dropped(&mut mb);
            }
        }
        let held = std::mem::take(&mut mb.held);
        drop(mb);
        if held {
            self.room.notify_waiters();
        }
    }

    /// Messages and bytes queued for the client, for operators: read without taking the mailbox's lock, as of
    /// the last time it was released.
    pub fn queued(&self) -> (usize, usize) {
        (
            self.queued.len.load(Ordering::Relaxed),
            self.queued.bytes.load(Ordering::Relaxed),
        )
    }

    /// The mailbox, locked; the queue's size is published for [`queued`](Self::queued) when the guard drops (two
    /// relaxed stores to this session's own record).
    pub fn lock_mailbox(&self) -> MailboxGuard<'_> {
        MailboxGuard {
            guard: self.mailbox.lock(),
            gauge: &self.queued,
        }
    }

    /// Take on a session handed over by another node (this one is new and has no actor yet).
    pub fn import(&self, handover: SessionHandover, metrics: &Metrics) {
        let brought = handover.inflight.iter().map(|i| &i.delivery).chain(&handover.queued);
        *self.arrivals.lock() = Some(Arrivals::new(brought.filter_map(|d| d.message.origin)));
        self.remembering.store(true, Ordering::Release);
        {
            let mut session = self.state.lock();
            session.subscriptions = handover.subscriptions.into_iter().collect();
            session.inflight = handover.inflight.into();
            session.awaiting_rel = handover.awaiting_rel.into_iter().collect();
            session.expiry_interval = handover.expiry_interval;
            session.owner = handover.owner;
        }
        let mut mailbox = self.lock_mailbox();
        for delivery in handover.queued {
            if !matches!(mailbox.queue.push(delivery), PushOutcome::Queued | PushOutcome::Full) {
                Metrics::add(&metrics.dropped_offline_queue_full, 1);
                Metrics::add(&self.dropped, 1);
            }
        }
    }

    /// Everything the session holds for its client, taken out of it for `node` to take over; what reaches it
    /// afterwards is refused by [`SessionShared::push`], to be relayed there.
    pub fn export(&self, node: Arc<str>) -> SessionHandover {
        let mut session = self.state.lock();
        let queued = {
            let mut mailbox = self.lock_mailbox();
            mailbox.moved_to = Some(node);
            std::iter::from_fn(|| mailbox.queue.pop()).collect()
        };
        SessionHandover {
            subscriptions: session
                .subscriptions
                .iter()
                .map(|(f, o)| (f.clone(), o.clone()))
                .collect(),
            inflight: session.inflight.drain(..).collect(),
            awaiting_rel: session.awaiting_rel.drain().collect(),
            expiry_interval: session.expiry_interval,
            queued,
            owner: session.owner.clone(),
        }
    }

    /// Moved here lately from another node: messages that node relays are for this session (see `moving.rs`).
    pub fn takes_relayed(&self) -> bool {
        self.remembering.load(Ordering::Acquire)
    }

    /// Stop remembering what reached the session after its move: the time for repeats is over, or the client
    /// started clean.
    pub fn forget_arrivals(&self) {
        self.remembering.store(false, Ordering::Release);
        *self.arrivals.lock() = None;
    }

    /// True unless this session moved here lately and has been given `message` already (by its origin).
    pub fn first_arrival(&self, message: &Message) -> bool {
        let Some(origin) = message.origin else {
            return true;
        };
        if !self.remembering.load(Ordering::Acquire) {
            return true;
        }
        self.arrivals.lock().as_mut().is_none_or(|a| a.first(origin))
    }

    /// Queue a delivery and wake the actor if it is not already awake. The only cost on the publisher's side
    /// is this lock and, once per batch, one actor message. A full queue of a connected subscriber takes the
    /// delivery and answers [`Pushed::Full`]: the publisher then waits for room (see `flow.rs`).
    pub fn push(&self, delivery: Delivery, metrics: &Metrics) -> Pushed {
        self.push_durably(delivery, metrics, &mut None)
    }

    /// [`push`](Self::push); a persistent session's QoS 1/2 copy is written to the store first, and `ticket`
    /// becomes the one its publisher's acknowledgement must wait for.
    pub fn push_durably(&self, delivery: Delivery, metrics: &Metrics, ticket: &mut Option<Ticket>) -> Pushed {
        self.push_all(std::iter::once(delivery), metrics, ticket)
    }

    /// [`push_durably`](Self::push_durably) for several deliveries in order, under one lock and with at most
    /// one wake: a run of messages from one publisher to one topic costs each subscriber one push, not one per
    /// message. [`Pushed::Full`] if any filled the queue; [`Pushed::Moved`] takes none of them (nothing is
    /// drawn from `deliveries`).
    pub fn push_all(
        &self,
        deliveries: impl Iterator<Item = Delivery>,
        metrics: &Metrics,
        ticket: &mut Option<Ticket>,
    ) -> Pushed {
        let mut full = false;
        let (mut dropped, mut must_disconnect) = (0, false);
        let (wake, online) = {
            let mut mb = self.lock_mailbox();
            if let Some(node) = &mb.moved_to {
                return Pushed::Moved(node.clone());
            }
            let persistent = self.persistent.load(Ordering::Relaxed);
            for mut delivery in deliveries {
                if delivery.stored.is_none() && persistent {
                    // Submitted under the mailbox's lock: the op is in the store's queue before the actor can
                    // take the copy, so nothing the session journals about it can overtake it.
                    self.store_copy(&mut delivery, mb.online, ticket);
                }
                match mb.queue.push(delivery) {
                    PushOutcome::Queued => {}
                    PushOutcome::Full => full = true,
                    PushOutcome::DroppedOldest | PushOutcome::DroppedNewest => dropped += 1,
                    PushOutcome::MustDisconnect => {
                        dropped += 1;
                        must_disconnect = true;
                    }
                }
                self.forget_dropped(&mut mb);
            }
            if full {
                mb.held = true;
            }
            let wake = mb.online && !mb.wake_pending;
            if wake {
                mb.wake_pending = true;
            }
            (wake, mb.online)
        };
        if dropped > 0 {
            // The disconnect policy drops from a connected subscriber's queue only.
            let counter = if online || must_disconnect {
                &metrics.dropped_queue_full
            } else {
                &metrics.dropped_offline_queue_full
            };
            Metrics::add(counter, dropped);
            Metrics::add(&self.dropped, dropped);
        }
        if must_disconnect {
            self.send(SessionMsg::QueueOverflow);
        }
        // Without a live actor the next one drains on start.
        if wake && !self.send(SessionMsg::Drain) {
            self.lock_mailbox().wake_pending = false;
        }
        if full {
            Pushed::Full
        } else {
            Pushed::Queued
        }
    }

    /// Number `delivery` and hand a copy to the store: every QoS 1/2 copy, and QoS 0 ones queued offline.
    fn store_copy(&self, delivery: &mut Delivery, online: bool, ticket: &mut Option<Ticket>) {
        let Some(disk) = &self.disk else {
            return;
        };
        let acknowledged = delivery.qos != QoS::AtMostOnce;
        if !acknowledged && online {
            return;
        }
        let stored = disk.next_copy();
        delivery.stored = Some(stored);
        let t = disk.submit(Op::Copy {
            client: self.client_id.clone(),
            stored,
            delivery: delivery.clone(),
        });
        // QoS 0 is not acknowledged, so nothing waits for its commit, unless the store's queue is past its
        // bound: then its publisher is held like any other (see `flow.rs`).
        if acknowledged || disk.is_congested() {
            *ticket = Some(t);
        }
    }

    /// Take up to `max` queued deliveries in order, QoS 1/2 ones only while `window` (the client's inflight
    /// room, counted down) lasts; clears the wake flag when the queue is emptied. True if some remain.
    pub fn take(&self, max: usize, window: &mut usize, out: &mut Vec<Delivery>) -> bool {
        let mut mb = self.lock_mailbox();
        while out.len() < max {
            let Some(next) = mb.queue.front() else {
                break;
            };
            if next.qos != QoS::AtMostOnce {
                if *window == 0 {
                    break;
                }
                *window -= 1;
            }
            out.extend(mb.queue.pop());
        }
        let more = !mb.queue.is_empty();
        if !more {
            mb.wake_pending = false;
        }
        more
    }

    /// The actor has handed `handed` queued messages to the client: that is progress, and if it brought the
    /// queue down to half its bounds, the publishers it held go on and a stall ends.
    pub fn drained(&self, handed: usize) {
        let mut mb = self.lock_mailbox();
        if handed > 0 {
            mb.progress += 1;
        }
        if !(mb.online && mb.queue.has_room()) {
            return;
        }
        if mb.queue.mode() == QueueMode::Policy {
            let policy = mb.online_policy;
            mb.queue.set_policy(policy, QueueMode::Hold);
        }
        if std::mem::take(&mut mb.held) {
            drop(mb);
            self.room.notify_waiters();
        }
    }

    /// Drop everything queued (overload protection: see `overload.rs`), releasing the publishers it held.
    /// Returns the messages and bytes dropped.
    pub fn shed(&self) -> (usize, usize) {
        let mut mb = self.lock_mailbox();
        let shed = (mb.queue.len(), mb.queue.bytes());
        if self.disk.is_some() {
            let all: Vec<Delivery> = std::iter::from_fn(|| mb.queue.pop()).collect();
            self.forget_copies(all);
        }
        mb.queue.clear();
        mb.held = false;
        drop(mb);
        self.room.notify_waiters();
        shed
    }

    /// Take the queued deliveries `pick` selects, keeping the others in order.
    pub fn take_where(&self, pick: impl Fn(&Delivery) -> bool) -> Vec<Delivery> {
        let mut mb = self.lock_mailbox();
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(mb.queue.len());
        while let Some(d) = mb.queue.pop() {
            if pick(&d) {
                taken.push(d);
            } else {
                kept.push(d);
            }
        }
        for d in kept.into_iter().rev() {
            mb.queue.push_front(d);
        }
        taken
    }
}

/// The session's connection reports here, and the event goes to its actor (or waits in the gate).
impl ConnOwner for SessionShared {
    fn report(&self, event: ConnEvent) -> bool {
        self.send(match event {
            ConnEvent::Inbound(batch) => SessionMsg::Inbound(batch),
            ConnEvent::ReaderClosed { generation, error } => SessionMsg::ReaderClosed { generation, error },
            ConnEvent::Tick { generation } => SessionMsg::Tick { generation },
            ConnEvent::Drained => SessionMsg::Drain,
        })
    }
}

/// A connected subscriber's queue holds its publishers while it makes progress.
impl Backlog for SessionShared {
    fn is_congested(&self) -> bool {
        let mut mb = self.lock_mailbox();
        let congested = mb.online && mb.queue.mode() == QueueMode::Hold && !mb.queue.has_room();
        // Whoever asks is about to wait: the next drain to half must wake it, even if no push found the queue
        // full since the last drain.
        mb.held |= congested;
        congested
    }

    fn room(&self) -> &Notify {
        &self.room
    }

    fn progress(&self) -> u64 {
        self.lock_mailbox().progress
    }

    fn stall_timeout(&self) -> std::time::Duration {
        self.lock_mailbox().online_policy.stall_timeout
    }

    fn stalled(&self) {
        let mut mb = self.lock_mailbox();
        if !mb.online || mb.queue.mode() != QueueMode::Hold {
            return;
        }
        let policy = mb.online_policy;
        let (dropped, disconnect) = mb.queue.enforce(policy);
        self.forget_dropped(&mut mb);
        mb.held = false;
        drop(mb);
        Metrics::add(&self.metrics.subscribers_stalled, 1);
        Metrics::add(&self.metrics.dropped_queue_full, dropped);
        Metrics::add(&self.dropped, dropped);
        tracing::info!(client = %self.client_id, policy = %policy.overflow, dropped, "subscriber stalled: it took nothing from its full queue for the stall timeout");
        if disconnect {
            self.send(SessionMsg::QueueOverflow);
        }
        self.room.notify_waiters();
    }
}

/// All sessions of this node by client id.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<Arc<str>, Arc<SessionShared>>>,
    dead_letters: std::sync::OnceLock<DeadLetters>,
}

impl SessionStore {
    pub fn get(&self, client_id: &str) -> Option<Arc<SessionShared>> {
        self.sessions.lock().get(client_id).cloned()
    }

    pub fn insert(&self, session: Arc<SessionShared>) {
        if let Some(letters) = self.dead_letters.get() {
            session.dead_letter_drops(letters.clone());
        }
        self.sessions.lock().insert(session.client_id.clone(), session);
    }

    /// Every session stored from now on dead-letters what its queue drops.
    pub fn dead_letter_drops(&self, letters: DeadLetters) {
        let _ = self.dead_letters.set(letters);
    }

    /// Remove `session` if it is still the one stored under its id.
    pub fn remove(&self, session: &Arc<SessionShared>) {
        let mut map = self.sessions.lock();
        if map.get(&session.client_id).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(&session.client_id);
        }
    }

    pub fn all(&self) -> Vec<Arc<SessionShared>> {
        self.sessions.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::wait_for_room;
    use ractmq_codec::QoS;
    use std::time::Duration;

    fn delivery() -> Delivery {
        Delivery {
            message: Arc::new(Message::new("t", vec![0u8; 10], QoS::AtLeastOnce, false)),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
            stored: None,
        }
    }

    fn online_session(max_len: usize) -> Arc<SessionShared> {
        let limits = Limits {
            max_queue_len: max_len,
            ..Limits::default()
        };
        let metrics = Arc::new(Metrics::default());
        let session = SessionShared::new("c".into(), &limits, SupSlot::default(), metrics.clone(), None);
        session.set_online(Some(limits.online_queue()), &limits, &metrics);
        session
    }

    fn drain(session: &SessionShared, n: usize) {
        let mut out = Vec::new();
        session.take(n, &mut usize::MAX.clone(), &mut out);
        session.drained(out.len());
    }

    #[tokio::test(start_paused = true)]
    async fn a_publisher_that_starts_waiting_after_the_last_full_push_is_still_woken() {
        let session = online_session(4);
        let metrics = Metrics::default();
        for _ in 0..4 {
            session.push(delivery(), &metrics);
        }
        assert!(matches!(session.push(delivery(), &metrics), Pushed::Full));
        // Drained to half before the publisher waits: that wake-up finds nobody.
        drain(&session, 3);
        // Above half again, not full: no push says Full.
        assert!(matches!(session.push(delivery(), &metrics), Pushed::Queued));
        let waiter = tokio::spawn({
            let session = session.clone();
            async move { wait_for_room(&*session).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "three queued, above half of four");
        drain(&session, 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            waiter.is_finished(),
            "woken by the drain to half, long before the stall timeout"
        );
    }

    /// Deliveries numbered `from..from + n` in their payloads.
    fn numbered(from: u8, n: u8) -> impl Iterator<Item = Delivery> {
        (from..from + n).map(|i| Delivery {
            message: Arc::new(Message::new("t", vec![i], QoS::AtMostOnce, false)),
            qos: QoS::AtMostOnce,
            ..delivery()
        })
    }

    #[test]
    fn a_run_is_queued_in_order_and_full_when_any_of_it_filled_the_queue() {
        let session = online_session(4);
        let metrics = Metrics::default();
        assert!(matches!(
            session.push_all(numbered(0, 3), &metrics, &mut None),
            Pushed::Queued
        ));
        assert!(matches!(
            session.push_all(numbered(3, 3), &metrics, &mut None),
            Pushed::Full
        ));
        assert!(session.lock_mailbox().held, "a publisher is held for it");
        let mut out = Vec::new();
        session.take(10, &mut usize::MAX.clone(), &mut out);
        let payloads: Vec<u8> = out.iter().map(|d| d.message.payload[0]).collect();
        assert_eq!(
            payloads,
            vec![0, 1, 2, 3, 4, 5],
            "all of it, in order: a connected queue holds"
        );
        assert_eq!(Metrics::get(&metrics.dropped_queue_full), 0);
    }

    #[test]
    fn a_run_to_a_session_that_moved_is_not_taken() {
        let session = online_session(4);
        let _ = session.export("n2".into());
        let mut drawn = 0;
        let run = numbered(0, 3).inspect(|_| drawn += 1);
        match session.push_all(run, &Metrics::default(), &mut None) {
            Pushed::Moved(node) => assert_eq!(&*node, "n2"),
            _ => panic!("expected Moved"),
        }
        assert_eq!(drawn, 0, "the caller relays them all");
    }
}
