//! Hooks: how a program beside the broker (the rule engine) sees what happens on this node — messages
//! published here and the clients' events — without the broker knowing what it does with them.
//!
//! One [`Hooks`] may be installed per node ([`crate::BrokerView::set_hooks`]). It is called inline, on the
//! actor where the thing happens (the publisher's session for a message), so what it routes in turn is part of
//! the publisher's routing: the publisher's acknowledgement waits for it like for any copy (see `flow.rs`).
//! Before building an event, the broker asks [`Hooks::wants`]: a node with no rule on an event pays one atomic
//! load for it.

use std::net::SocketAddr;
use std::sync::Arc;

use ractmq_codec::{Protocol, QoS};
use ractmq_protocol::Message;

use crate::flow::Congestion;

/// The kinds of what a hook may be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HookKind {
    /// A message published on this node (by a client, a will, an in-process publisher or a rule).
    Published = 0,
    /// A client connected.
    ClientConnected = 1,
    /// A client's connection ended.
    ClientDisconnected = 2,
    /// A session subscribed to a filter.
    SessionSubscribed = 3,
    /// A session unsubscribed from a filter.
    SessionUnsubscribed = 4,
    /// A message was sent to a client.
    MessageDelivered = 5,
    /// A client acknowledged a QoS 1/2 message (PUBACK, PUBCOMP).
    MessageAcked = 6,
    /// A message was dropped: a full queue, or no subscriber.
    MessageDropped = 7,
}

impl HookKind {
    /// Every kind, in order.
    pub const ALL: [HookKind; 8] = [
        HookKind::Published,
        HookKind::ClientConnected,
        HookKind::ClientDisconnected,
        HookKind::SessionSubscribed,
        HookKind::SessionUnsubscribed,
        HookKind::MessageDelivered,
        HookKind::MessageAcked,
        HookKind::MessageDropped,
    ];

    /// Its bit in a set of kinds.
    pub fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// The client an event is about, as far as the broker knows it at that moment.
#[derive(Debug, Clone, Copy)]
pub struct ClientRef<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// The user name it authenticated as.
    pub username: Option<&'a str>,
    /// Its peer address, while connected.
    pub peer: Option<SocketAddr>,
    /// Its protocol level, while connected.
    pub protocol: Option<Protocol>,
}

/// Something that happened to a client or a message on this node.
#[derive(Debug, Clone, Copy)]
pub enum ClientEvent<'a> {
    /// A client connected (its CONNACK is on its way).
    Connected {
        /// Who.
        client: ClientRef<'a>,
        /// Its keep alive, in seconds.
        keep_alive: u16,
        /// Whether it asked for a new session.
        clean_start: bool,
        /// Its session expiry interval, in seconds.
        expiry_interval: u32,
    },
    /// A client's connection ended.
    Disconnected {
        /// Who.
        client: ClientRef<'a>,
        /// Why, in a word or two (`normal`, `takeover`, a protocol error...).
        reason: &'a str,
    },
    /// A session subscribed to `filter`.
    Subscribed {
        /// Who.
        client: ClientRef<'a>,
        /// The filter, as the client sent it.
        filter: &'a str,
        /// The QoS granted.
        qos: QoS,
    },
    /// A session unsubscribed from `filter`.
    Unsubscribed {
        /// Who.
        client: ClientRef<'a>,
        /// The filter, as the client sent it.
        filter: &'a str,
    },
    /// `message` was sent to `to` at `qos`.
    Delivered {
        /// The receiver.
        to: ClientRef<'a>,
        /// The message.
        message: &'a Message,
        /// The QoS it went out at.
        qos: QoS,
    },
    /// `to` acknowledged `message`.
    Acked {
        /// The receiver.
        to: ClientRef<'a>,
        /// The message.
        message: &'a Message,
    },
    /// `message` was dropped on its way to `to` (none: it reached no subscriber).
    Dropped {
        /// The receiver whose queue dropped it, if any.
        to: Option<ClientRef<'a>>,
        /// The message.
        message: &'a Message,
        /// `queue_full`, `no_subscribers`...
        reason: &'a str,
    },
}

impl ClientEvent<'_> {
    /// Its kind.
    pub fn kind(&self) -> HookKind {
        match self {
            ClientEvent::Connected { .. } => HookKind::ClientConnected,
            ClientEvent::Disconnected { .. } => HookKind::ClientDisconnected,
            ClientEvent::Subscribed { .. } => HookKind::SessionSubscribed,
            ClientEvent::Unsubscribed { .. } => HookKind::SessionUnsubscribed,
            ClientEvent::Delivered { .. } => HookKind::MessageDelivered,
            ClientEvent::Acked { .. } => HookKind::MessageAcked,
            ClientEvent::Dropped { .. } => HookKind::MessageDropped,
        }
    }
}

/// What a node tells its hook. Both calls run inline and must not block: a hook that has slow work to do
/// hands it to an actor of its own.
pub trait Hooks: Send + Sync + 'static {
    /// Whether the hook wants to hear about `kind` now (an atomic load: it is asked on hot paths).
    fn wants(&self, kind: HookKind) -> bool;

    /// `message` was published on this node and is being routed. Messages it routes in turn through
    /// [`crate::BrokerView::route_now`] with `congestion` hold the publisher's acknowledgement like its own
    /// copies do. Messages forwarded from other nodes are not passed: each is seen once, where published.
    fn published(&self, message: &Arc<Message>, congestion: &mut Congestion);

    /// A client event happened.
    fn event(&self, event: &ClientEvent<'_>);
}

/// The client `client_id` as its connection `conn` (if any) describes it.
pub(crate) fn client_ref<'a>(client_id: &'a str, conn: Option<&'a crate::session_store::ConnInfo>) -> ClientRef<'a> {
    ClientRef {
        client_id,
        username: conn.and_then(|c| c.username.as_deref()),
        peer: conn.map(|c| c.peer),
        protocol: conn.map(|c| c.protocol),
    }
}
