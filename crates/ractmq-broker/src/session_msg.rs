//! The messages of a session's actor and of the session supervisor, and the connection as a session holds it.
//! The session record (which queues messages for a hibernated session), the actor, the supervisor and the
//! listener all use these types, so they live here rather than in any one of them.

use std::sync::Arc;

use ractmq_codec::{Connect, DecodeError};
use ractmq_protocol::auth::Authenticator;
use ractmq_protocol::connect::Accepted;
use ractmq_protocol::{Authorizer, Channel};
use ractor::{ActorCell, ActorId, RpcReplyPort};

use crate::connection::{Batch, Io, Transport};
use crate::metrics::Metrics;
use crate::remote_sessions::SessionHandover;
use crate::security::LiveAcl;
use crate::session_store::SessionShared;

/// A new connection for this session, after its CONNECT passed the checks.
pub struct Attach {
    pub connect: Box<Connect>,
    pub accepted: Accepted,
    pub transport: Transport,
    /// Set by the session supervisor: the session existed and the client asked to resume it.
    pub session_present: bool,
    /// The method the client authenticated with, if enhanced: it may re-authenticate with it.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// The kind of listener it connected on ("tcp", "tls", "ws", "wss"), for per-listener settings.
    pub listener: &'static str,
    /// What the client may publish and subscribe to, compiled for it at CONNECT; everything (but `$SYS`) when
    /// no authorization source is configured.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// The same authorizer when it asks an HTTP service, whose answers are fetched before the channel asks.
    pub(crate) http_authz: Option<Arc<LiveAcl>>,
    /// The user the client authenticated as: a new session belongs to it.
    pub owner: Option<Arc<str>>,
}

pub enum SessionMsg {
    Attach(Box<Attach>),
    /// The supervisor restarted this session after a crash: no connection, state from the store.
    Recover,
    /// A batch of packets from the connection's reader.
    Inbound(Batch),
    /// The connection `generation` ended on the socket side (EOF, I/O error, or undecodable bytes).
    ReaderClosed {
        generation: u64,
        error: Option<DecodeError>,
    },
    /// The mailbox has deliveries (or the outbox has room again).
    Drain,
    /// The store committed what deliveries of connection `generation` wait for (see `durable.rs`).
    Committed {
        generation: u64,
    },
    /// The outgoing queue overflowed under the `disconnect` policy.
    QueueOverflow,
    /// The queues that held this publisher have room (or their subscribers stalled): read on.
    Resume {
        generation: u64,
    },
    /// The reader of connection `generation` heard nothing for the keepalive limit.
    Tick {
        generation: u64,
    },
    /// Has connection `generation` been idle since the last check? Then hibernate.
    IdleCheck {
        generation: u64,
    },
    /// Every message sent before hibernation began is handled: park the connection and stop, if still idle.
    Hibernate {
        generation: u64,
    },
    /// This actor was started to wake a hibernated session: take the parked connection.
    Unpark,
    /// The session's deadline (its will's delay or its expiry) armed after disconnect `generation` is due.
    Timeout {
        generation: u64,
    },
    /// Close the connection (operator kick, shutdown, redirection) with a 5.0 reason code, naming another
    /// server if `server_reference` is set.
    Kick {
        code: u8,
        server_reference: Option<String>,
    },
    /// Node `to` takes this session over: close the connection, end the session here, and reply with what it
    /// held unless the client starts clean.
    HandOver {
        clean_start: bool,
        to: Arc<str>,
        reply: RpcReplyPort<Option<SessionHandover>>,
    },
    /// The supervisor has forgotten this ended session: stop. A message, not a stop signal, so that every
    /// Attach the supervisor forwarded before it is handled (sent back) first instead of being dropped.
    Stop,
    /// Panic on purpose (chaos testing).
    Crash,
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for SessionMsg {}

pub enum SessionSupMsg {
    Attach(Box<Attach>),
    /// `actor` parked its idle connection and stops: the session has no actor until it is woken.
    Hibernated {
        client_id: Arc<str>,
        actor: ActorId,
    },
    /// A message waits for the hibernated session `client_id`: start an actor for it.
    Wake(Arc<str>),
    /// The session actor finished ending its session: forget it and stop the actor.
    SessionEnded {
        client_id: Arc<str>,
        actor: ActorId,
    },
    /// Deliver `msg` to the actor serving `client_id`; replies false if there is none.
    Send {
        client_id: String,
        msg: SessionMsg,
        reply: RpcReplyPort<bool>,
    },
    /// Kill the actor serving `client_id` (chaos testing); replies false if there is none.
    Kill {
        client_id: String,
        reply: RpcReplyPort<bool>,
    },
    /// Client ids with a session on this node.
    List(RpcReplyPort<Vec<Arc<str>>>),
    /// The session actors running now: how many, the first `limit` in start order, and how many sessions
    /// have none (hibernated), for the supervision tree.
    Describe(usize, RpcReplyPort<SessionActors>),
    /// Node `to` takes `client_id`'s session over: close it and end it here, replying with what it held
    /// unless `clean_start` (see `handover`).
    HandOver {
        client_id: String,
        clean_start: bool,
        to: Arc<str>,
        reply: RpcReplyPort<Option<SessionHandover>>,
    },
    /// A session handed over by another node becomes this node's, unless one exists here; replies with it.
    Import {
        client_id: Arc<str>,
        handover: Box<SessionHandover>,
        reply: RpcReplyPort<Option<Arc<SessionShared>>>,
    },
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for SessionSupMsg {}

/// The session supervisor's children as [`SessionSupMsg::Describe`] answers.
pub struct SessionActors {
    /// Session actors running now.
    pub awake: usize,
    /// Sessions with no actor now (hibernated).
    pub hibernated: usize,
    /// The first awake ones in start order: (client id, actor, times its actor was restarted).
    pub listed: Vec<(Arc<str>, ActorCell, u64)>,
}

/// A hibernated session's connection, kept in its gate until an actor wakes it.
pub struct Parked {
    pub(crate) online: Online,
    pub(crate) generation: u64,
}

/// The connection currently attached.
pub(crate) struct Online {
    pub(crate) channel: Channel,
    pub(crate) io: Io,
    pub(crate) peer: std::net::SocketAddr,
    /// The channel's authorizer when it asks an HTTP service (see `LiveAcl::fetch_missing`).
    pub(crate) http_authz: Option<Arc<LiveAcl>>,
    pub(crate) _connected: ConnectedGuard,
}

/// Counts a connected client for exactly as long as it exists, however the actor ends.
pub(crate) struct ConnectedGuard(Arc<Metrics>);

impl ConnectedGuard {
    pub(crate) fn new(metrics: &Arc<Metrics>) -> Self {
        Metrics::add(&metrics.clients_connected, 1);
        ConnectedGuard(metrics.clone())
    }
}

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        self.0
            .clients_connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
