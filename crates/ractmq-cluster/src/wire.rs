//! What nodes say to each other, as serde types encoded with bincode.
//!
//! ractor_cluster carries only `BytesConvertable` fields, so every message between agents travels as one
//! `Vec<u8>`: a protocol version followed by a [`Wire`] value. Decoding is bounded (at most
//! [`MAX_WIRE_BYTES`], and lists at most [`MAX_PEERS`] long) and never panics, because the bytes come from
//! another process; an unreadable message is reported and dropped.

use std::net::SocketAddr;

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::config::check_name;
use crate::replicated_entry::Entry;
pub use crate::wire_message::WireMessage;
pub use crate::wire_session::WireSession;

/// Bumped when [`Wire`] changes incompatibly; a node refuses messages of another version and says so.
pub const WIRE_VERSION: u16 = 5;

/// Largest message accepted from a peer: below ractor_cluster's own 16 MiB frame limit, with room for its
/// framing.
pub const MAX_WIRE_BYTES: u64 = 15 * 1024 * 1024;

/// Most items (forwarded messages, routes, retained messages) one message between nodes may carry.
pub const MAX_ITEMS: usize = 100_000;

/// Most peers one hello may list (and most members a node keeps).
pub const MAX_PEERS: usize = 1024;

/// A message from one node's agent to another's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// Sent on every heartbeat: who I am, and the nodes I can see.
    Hello(Hello),
    /// Published messages for the receiver's subscribers, numbered so that none is lost or repeated when a
    /// link breaks and comes back (see `link.rs`).
    Batch(Batch),
    /// The receiver of batches from `from` has routed everything up to `seq`.
    Ack(Ack),
    /// Changes to the sender's routes (or all of them).
    Routes(Routes),
    /// The receiver of routes from `from` has applied them up to `version`.
    RoutesAck(RoutesAck),
    /// Retained messages of the sender, for a node that may have missed them.
    Retained(Vec<WireMessage>),
    /// A client connected to the sender with this client id: give up your session of it.
    TakeOver(TakeOver),
    /// The answer to a [`TakeOver`]: the session, if there was one and the client resumes it.
    TakenOver(TakenOver),
    /// Entries of the sender's replicated map (see `replicated.rs`): all of them, or one it just changed.
    Replicated(Replicated),
    /// A node left the cluster for good (`ractmq ctl cluster leave`), or an operator forgot a node that is
    /// down (`ractmq ctl cluster forget`): mark it left, stop dialling it, drop its routes. Answered with
    /// [`Wire::LeftAck`].
    Left(Left),
    /// The receiver of a [`Left`] from `from` has marked `node` left.
    LeftAck(LeftAck),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    pub from: String,
    /// The node that is gone: `from` itself when it leaves, another when it is forgotten.
    pub node: String,
    /// The run of it that is gone, when known: a later run (a new incarnation) joins again.
    pub incarnation: Option<u64>,
    /// Forgotten by an operator (it was down) rather than left by itself.
    pub forgotten: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftAck {
    pub from: String,
    pub node: String,
}

/// Entries of a node's replicated map, versions included; the receiver merges them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replicated {
    pub from: String,
    pub entries: Vec<(String, Entry)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeOver {
    pub from: String,
    pub request: u64,
    pub client_id: String,
    pub clean_start: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenOver {
    pub from: String,
    pub request: u64,
    pub session: Option<Box<WireSession>>,
}

/// Messages forwarded by one node, the first numbered `first_seq` and the rest following.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub from: String,
    /// The sender's incarnation: numbering starts again when it restarts.
    pub incarnation: u64,
    pub first_seq: u64,
    pub items: Vec<Forwarded>,
}

/// One message for the receiving node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    pub message: WireMessage,
    /// Deliver it to the receiver's matching (non-shared) subscribers.
    pub deliver: bool,
    /// Deliver it to these members of shared subscriptions: (group, member).
    pub shared: Vec<(String, String)>,
    /// Deliver it to this client alone: its session moved from the sender to the receiver a moment ago.
    pub relay_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub from: String,
    /// The incarnation of the batches' sender being acknowledged.
    pub incarnation: u64,
    pub seq: u64,
}

/// Routes of the sender (see `ractmq_broker::routes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routes {
    pub from: String,
    /// Increases with every change; acknowledged with [`RoutesAck`] once applied.
    pub version: u64,
    /// These are all of the sender's routes (the first part of them, if `add` is followed by more messages
    /// without `reset`): forget what it announced before.
    pub reset: bool,
    pub add: Vec<WireRoute>,
    pub remove: Vec<WireRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutesAck {
    pub from: String,
    pub version: u64,
}

/// One route a node announces to the others, as it crosses between nodes (the broker's `RouteKey`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WireRoute {
    /// The node has at least one (non-shared) subscriber to this filter.
    Filter(String),
    /// One member of a shared subscription on the node.
    Shared {
        /// The full shared filter, `$share/{group}/{filter}`.
        group: String,
        /// The member's key on its node.
        member: String,
    },
}

/// A node's heartbeat. Every heartbeat is a full hello, so a peer that hears one knows everything it needs
/// (there is no separate join handshake to lose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub name: String,
    /// Where the sender listens for other nodes.
    pub cluster_addr: SocketAddr,
    /// Where the sender listens for MQTT clients, once its listener is bound.
    pub mqtt_addr: Option<SocketAddr>,
    /// Different every time the sender's process starts: a new one means it restarted (and lost its state).
    pub incarnation: u64,
    /// The nodes the sender sees up, so that a node learns the whole membership from any one peer.
    pub peers: Vec<PeerAddr>,
    /// The digest of the sender's replicated map: a receiver whose own differs sends it its whole map.
    pub map_digest: u64,
    /// The messages the sender has queued towards each node it links to, so that every node can show the
    /// queues between all of them (the dashboard's cluster picture), not only its own.
    pub queues: Vec<(String, u64)>,
}

/// A node and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddr {
    pub name: String,
    pub cluster_addr: SocketAddr,
}

/// Why a peer's message was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The peer speaks another version of the protocol.
    Version(u16),
    /// The bytes are not a message of this version, or break a limit.
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Version(v) => write!(
                f,
                "a peer speaks cluster protocol version {v}, this node {WIRE_VERSION}: run the same ractmq version on every node"
            ),
            DecodeError::Malformed(e) => write!(f, "unreadable message from a peer ({e})"),
        }
    }
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_WIRE_BYTES)
}

/// The bytes of `message`. Whoever builds a message keeps it within [`MAX_WIRE_BYTES`] (batches, route lists
/// and retained lists are cut to size); should one still be larger, it is logged and nothing is sent.
pub fn encode(message: &Wire) -> Vec<u8> {
    options().serialize(&(WIRE_VERSION, message)).unwrap_or_else(|e| {
        tracing::error!("a message for another node could not be encoded ({e}); it is not sent");
        Vec::new()
    })
}

pub fn decode(bytes: &[u8]) -> Result<Wire, DecodeError> {
    let version: u16 = options()
        .allow_trailing_bytes()
        .deserialize(bytes)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if version != WIRE_VERSION {
        return Err(DecodeError::Version(version));
    }
    let (_, message): (u16, Wire) = options()
        .deserialize(bytes)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    check(&message).map_err(DecodeError::Malformed)?;
    Ok(message)
}

/// The limits bincode cannot express.
fn check(message: &Wire) -> Result<(), String> {
    let items = match message {
        Wire::Hello(_) | Wire::Ack(_) | Wire::RoutesAck(_) | Wire::TakeOver(_) | Wire::Left(_) | Wire::LeftAck(_) => 0,
        Wire::TakenOver(t) => t.session.as_ref().map_or(0, |s| s.queued.len() + s.inflight.len()),
        Wire::Batch(b) => b.items.len(),
        Wire::Routes(r) => r.add.len() + r.remove.len(),
        Wire::Retained(r) => r.len(),
        Wire::Replicated(r) => r.entries.len(),
    };
    if items > MAX_ITEMS {
        return Err(format!("{items} items in one message, at most {MAX_ITEMS}"));
    }
    match message {
        Wire::Batch(b) => {
            check_name(&b.from).map_err(|e| format!("node name {e}"))?;
            b.items.iter().try_for_each(|i| i.message.check())
        }
        Wire::Ack(a) => check_name(&a.from).map_err(|e| format!("node name {e}")),
        Wire::Routes(r) => check_name(&r.from).map_err(|e| format!("node name {e}")),
        Wire::RoutesAck(r) => check_name(&r.from).map_err(|e| format!("node name {e}")),
        Wire::TakeOver(t) => check_name(&t.from).map_err(|e| format!("node name {e}")),
        Wire::Left(l) => check_name(&l.from)
            .and_then(|_| check_name(&l.node))
            .map_err(|e| format!("node name {e}")),
        Wire::LeftAck(l) => check_name(&l.from)
            .and_then(|_| check_name(&l.node))
            .map_err(|e| format!("node name {e}")),
        Wire::TakenOver(t) => {
            check_name(&t.from).map_err(|e| format!("node name {e}"))?;
            t.session.as_deref().map_or(Ok(()), WireSession::check)
        }
        Wire::Retained(r) => r.iter().try_for_each(WireMessage::check),
        Wire::Replicated(r) => {
            check_name(&r.from).map_err(|e| format!("node name {e}"))?;
            (r.entries.iter())
                .try_for_each(|(_, e)| check_name(&e.version.node).map_err(|e| format!("writer name {e}")))
        }
        Wire::Hello(hello) => {
            check_name(&hello.name).map_err(|e| format!("node name {e}"))?;
            if hello.peers.len() > MAX_PEERS {
                return Err(format!("{} peers listed, at most {MAX_PEERS}", hello.peers.len()));
            }
            for peer in &hello.peers {
                check_name(&peer.name).map_err(|e| format!("peer name {e}"))?;
            }
            if hello.queues.len() > MAX_PEERS {
                return Err(format!("{} queues listed, at most {MAX_PEERS}", hello.queues.len()));
            }
            for (name, _) in &hello.queues {
                check_name(name).map_err(|e| format!("queue's node name {e}"))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            name: "n1".into(),
            cluster_addr: "127.0.0.1:4370".parse().unwrap(),
            mqtt_addr: Some("127.0.0.1:1883".parse().unwrap()),
            incarnation: 42,
            peers: vec![PeerAddr {
                name: "n2".into(),
                cluster_addr: "[::1]:4371".parse().unwrap(),
            }],
            map_digest: 7,
            queues: vec![("n2".into(), 3)],
        }
    }

    #[test]
    fn a_hello_round_trips() {
        let m = Wire::Hello(hello());
        assert_eq!(decode(&encode(&m)), Ok(m));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[][..], &[1], &[1, 0xff, 0xff, 0xff], &[0xff; 64]] {
            assert!(decode(bytes).is_err(), "{bytes:?}");
        }
        let mut truncated = encode(&Wire::Hello(hello()));
        truncated.pop();
        assert!(matches!(decode(&truncated), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn another_version_is_named() {
        let bytes = options().serialize(&(WIRE_VERSION + 1, 0u8)).unwrap();
        assert_eq!(decode(&bytes), Err(DecodeError::Version(WIRE_VERSION + 1)));
        assert!(DecodeError::Version(2).to_string().contains("same ractmq version"));
    }

    #[test]
    fn limits_hold() {
        let mut h = hello();
        h.name = "bad,name".into();
        assert!(decode(&encode(&Wire::Hello(h))).is_err());
        let mut h = hello();
        h.peers = vec![h.peers[0].clone(); MAX_PEERS + 1];
        assert!(decode(&encode(&Wire::Hello(h))).is_err());
        // A length prefix claiming more than the limit is refused before anything is allocated.
        let mut huge = options().serialize(&(WIRE_VERSION, 0u32)).unwrap();
        huge.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode(&huge).is_err());
    }
}
