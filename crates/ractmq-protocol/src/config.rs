//! The limits the protocol core enforces, with the broker's defaults.
//!
//! One struct so that the CONNACK capability flags, the checks on what a client sends and the bounds on every
//! queue come from the same numbers.

use std::time::Duration;

use ractmq_codec::QoS;

use crate::queue::QueuePolicy;

/// What a bounded queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Drop the oldest queued message to make room for the new one.
    DropOldest,
    /// Drop the new message.
    DropNewest,
    /// Disconnect the subscriber whose queue overflowed (online queues only; offline it acts as DropNewest).
    Disconnect,
}

impl std::str::FromStr for OverflowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drop-oldest" => Ok(OverflowPolicy::DropOldest),
            "drop-newest" => Ok(OverflowPolicy::DropNewest),
            "disconnect" => Ok(OverflowPolicy::Disconnect),
            other => Err(format!(
                "unknown overflow policy '{other}': use drop-oldest, drop-newest or disconnect"
            )),
        }
    }
}

impl std::fmt::Display for OverflowPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OverflowPolicy::DropOldest => "drop-oldest",
            OverflowPolicy::DropNewest => "drop-newest",
            OverflowPolicy::Disconnect => "disconnect",
        })
    }
}

/// Where a redirected client should connect instead (MQTT 5 §4.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The Server Reference, e.g. `other-host:1883`.
    pub reference: String,
    /// Server moved (0x9D) if true, Use another server (0x9C) if false.
    pub permanent: bool,
}

/// The limits and capabilities of the protocol core; `Default` holds the broker's defaults.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest packet accepted from a client, whole frame (announced as Maximum Packet Size in 5.0).
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages the broker sends to one client before waiting (also capped by the
    /// client's 5.0 Receive Maximum). 100, as rumqttd: a subscriber's throughput is this window per round
    /// trip, and 32 held a single fast subscriber to about half of what it could take.
    pub max_inflight: u16,
    /// Incoming QoS 2 messages awaiting PUBREL per client (announced as the 5.0 Receive Maximum).
    pub receive_maximum: u16,
    /// Messages queued for a connected client beyond its inflight window.
    pub max_queue_len: usize,
    /// Bytes queued for a connected client (see [`crate::queue::Queued`]).
    pub max_queue_bytes: usize,
    /// What happens to a connected client's full queue once the client is stalled.
    pub queue_overflow: OverflowPolicy,
    /// A connected client that takes nothing from its full queue for this long is stalled: publishers
    /// stop waiting for it and `queue_overflow` applies.
    pub stall_timeout: Duration,
    /// Messages queued for a disconnected persistent session.
    pub max_offline_queue_len: usize,
    /// Bytes queued for a disconnected persistent session.
    pub max_offline_queue_bytes: usize,
    /// What happens to a disconnected persistent session's full queue (`Disconnect` acts as
    /// `DropNewest`: there is no one to disconnect).
    pub offline_overflow: OverflowPolicy,
    /// Longest client identifier accepted.
    pub max_client_id_len: usize,
    /// Largest session expiry interval granted, seconds.
    pub max_session_expiry: u32,
    /// Topic aliases a 5.0 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Topic aliases the broker assigns towards a 5.0 client, at most (and at most the client's own Topic
    /// Alias Maximum); 0 never assigns any.
    pub outbound_topic_aliases: u16,
    /// Highest QoS accepted on PUBLISH and in wills, and granted to subscriptions (announced as the
    /// 5.0 Maximum QoS when below 2).
    pub max_qos: QoS,
    /// Subscriptions one client may hold; more are refused with 0x97 (3.x: 0x80).
    pub max_subscriptions: usize,
    /// Topics with a retained message, broker-wide; retained messages for new topics beyond it are not stored.
    pub max_retained: usize,
    /// Retained messages are served (announced as the 5.0 Retain Available; a retained PUBLISH is
    /// refused with 0x9A if not).
    pub retain_available: bool,
    /// Server Keep Alive, as a cap: a 5.0 client asking for a longer keepalive, or none, is told to use this one
    /// (None: the client's own, whatever it is).
    pub server_keep_alive: Option<u16>,
    /// Response Information for 5.0 clients that ask for it (Request Response Information = 1): a topic prefix
    /// for their responses, where `{clientid}` is replaced by the client's id. None: not offered.
    pub response_information: Option<String>,
    /// Send 5.0 clients elsewhere: every CONNECT is refused with Use another server (0x9C) or, if
    /// `permanent`, Server moved (0x9D), naming this Server Reference.
    pub redirect: Option<Redirect>,
    /// Filters with `+` or `#` are served (refused with 0xA2 if not).
    pub wildcard_subscriptions: bool,
    /// 5.0 Subscription Identifiers are served (a SUBSCRIBE carrying one is a 0xA1 DISCONNECT if not).
    pub subscription_identifiers: bool,
    /// `$share/{group}/{filter}` subscriptions are served (announced in CONNACK; refused with 0x9E if not).
    pub shared_subscriptions: bool,
    /// Seconds the broker gives a socket to send its CONNECT.
    pub connect_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_packet_size: 1024 * 1024,
            max_inflight: 100,
            receive_maximum: 128,
            max_queue_len: 1000,
            max_queue_bytes: 16 * 1024 * 1024,
            queue_overflow: OverflowPolicy::DropOldest,
            stall_timeout: Duration::from_secs(5),
            max_offline_queue_len: 1000,
            max_offline_queue_bytes: 16 * 1024 * 1024,
            offline_overflow: OverflowPolicy::DropOldest,
            max_client_id_len: 256,
            max_session_expiry: u32::MAX,
            topic_alias_maximum: 64,
            outbound_topic_aliases: 64,
            max_qos: QoS::ExactlyOnce,
            max_subscriptions: 10_000,
            max_retained: 1_000_000,
            retain_available: true,
            shared_subscriptions: true,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            server_keep_alive: None,
            response_information: None,
            redirect: None,
            connect_timeout_secs: 10,
        }
    }
}

impl Limits {
    /// The node-wide bounds of a connected client's queue (per-client rules may change them).
    pub fn online_queue(&self) -> QueuePolicy {
        QueuePolicy {
            max_len: self.max_queue_len,
            max_bytes: self.max_queue_bytes,
            overflow: self.queue_overflow,
            stall_timeout: self.stall_timeout,
        }
    }

    /// The bounds of a disconnected persistent session's queue; `disconnect` means nothing offline, so it
    /// drops the newest.
    pub fn offline_queue(&self) -> QueuePolicy {
        QueuePolicy {
            max_len: self.max_offline_queue_len,
            max_bytes: self.max_offline_queue_bytes,
            overflow: match self.offline_overflow {
                OverflowPolicy::Disconnect => OverflowPolicy::DropNewest,
                p => p,
            },
            stall_timeout: self.stall_timeout,
        }
    }
}
