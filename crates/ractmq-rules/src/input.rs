//! What the broker hands the engine for one event: the columns of a published message or of a client/session
//! event (EMQX's names), borrowed from the broker's own data so building one costs no allocation, plus the
//! environment (node name and the current time — the engine never reads a clock).

use crate::value::Value;

/// Which event produced an [`Input`]; the `event` column holds [`EventKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EventKind {
    /// A PUBLISH reached the broker (rules `FROM` an MQTT topic filter).
    #[default]
    MessagePublish,
    /// `$events/client_connected`.
    ClientConnected,
    /// `$events/client_disconnected`.
    ClientDisconnected,
    /// `$events/session_subscribed` (one per topic filter of a SUBSCRIBE).
    SessionSubscribed,
    /// `$events/session_unsubscribed`.
    SessionUnsubscribed,
    /// `$events/message_delivered`.
    MessageDelivered,
    /// `$events/message_acked`.
    MessageAcked,
    /// `$events/message_dropped`.
    MessageDropped,
}

impl EventKind {
    /// Every event that has an `$events/...` topic.
    pub const EVENTS: [EventKind; 7] = [
        EventKind::ClientConnected,
        EventKind::ClientDisconnected,
        EventKind::SessionSubscribed,
        EventKind::SessionUnsubscribed,
        EventKind::MessageDelivered,
        EventKind::MessageAcked,
        EventKind::MessageDropped,
    ];

    /// EMQX's event name, the value of the `event` column (`"message.publish"`, `"client.connected"`...).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::MessagePublish => "message.publish",
            EventKind::ClientConnected => "client.connected",
            EventKind::ClientDisconnected => "client.disconnected",
            EventKind::SessionSubscribed => "session.subscribed",
            EventKind::SessionUnsubscribed => "session.unsubscribed",
            EventKind::MessageDelivered => "message.delivered",
            EventKind::MessageAcked => "message.acked",
            EventKind::MessageDropped => "message.dropped",
        }
    }

    /// The `$events/...` topic a rule names in `FROM` to receive this event (`None` for publishes).
    pub fn topic(self) -> Option<&'static str> {
        Some(match self {
            EventKind::MessagePublish => return None,
            EventKind::ClientConnected => "$events/client_connected",
            EventKind::ClientDisconnected => "$events/client_disconnected",
            EventKind::SessionSubscribed => "$events/session_subscribed",
            EventKind::SessionUnsubscribed => "$events/session_unsubscribed",
            EventKind::MessageDelivered => "$events/message_delivered",
            EventKind::MessageAcked => "$events/message_acked",
            EventKind::MessageDropped => "$events/message_dropped",
        })
    }

    /// The event whose `$events/...` topic is `topic`.
    pub fn from_topic(topic: &str) -> Option<EventKind> {
        EventKind::EVENTS.into_iter().find(|e| e.topic() == Some(topic))
    }
}

/// The columns of one event. Unset (`None`) columns read as `null` in SQL and are left out of `SELECT *`.
///
/// Column names (EMQX's): `id`, `clientid`, `username`, `topic`, `payload` (raw text; `payload.x` decodes it
/// as JSON), `qos`, `retain`, `flags` (`{"retain":..,"dup":..}`), `peerhost`, `peername`, `sockname`,
/// `pub_props` (MQTT 5 PUBLISH properties as an object, with `User-Property` as an object), `user_properties`
/// (shorthand for `pub_props.'User-Property'`), `publish_received_at`, `from_clientid`, `from_username`,
/// `reason`, `proto_name`, `proto_ver`, `keepalive`, `clean_start`, `expiry_interval`, `is_bridge`,
/// `mountpoint`, `connected_at`, `disconnected_at`, `conn_props`, `disconn_props`, `sub_props`,
/// `unsub_props`, and always `event`, `timestamp` (ms) and `node` (from [`Env`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// Which event this is.
    pub event: EventKind,
    /// When the event happened, in ms since the Unix epoch (the `timestamp` column).
    pub timestamp: i64,
    /// Message id (text, e.g. hex).
    pub id: Option<&'a str>,
    /// The client the event is about (for delivered/acked: the receiver).
    pub clientid: Option<&'a str>,
    /// Its username.
    pub username: Option<&'a str>,
    /// The message topic, or the subscribed/unsubscribed filter for session events.
    pub topic: Option<&'a str>,
    /// The message payload, as received.
    pub payload: Option<&'a [u8]>,
    /// Message QoS, or the subscription QoS for session events.
    pub qos: Option<u8>,
    /// The retain flag.
    pub retain: Option<bool>,
    /// The dup flag (shown in `flags`).
    pub dup: Option<bool>,
    /// Client IP address.
    pub peerhost: Option<&'a str>,
    /// Client `ip:port`.
    pub peername: Option<&'a str>,
    /// Listener `ip:port`.
    pub sockname: Option<&'a str>,
    /// MQTT 5 PUBLISH properties (`User-Property` as an object).
    pub pub_props: Option<&'a Value>,
    /// When the broker received the PUBLISH (ms).
    pub publish_received_at: Option<i64>,
    /// Publisher of a delivered/acked/dropped message.
    pub from_clientid: Option<&'a str>,
    /// Its username.
    pub from_username: Option<&'a str>,
    /// Why a client disconnected or a message was dropped.
    pub reason: Option<&'a str>,
    /// `MQTT` / `MQIsdp`.
    pub proto_name: Option<&'a str>,
    /// 3, 4 or 5.
    pub proto_ver: Option<u8>,
    /// Keep-alive in seconds.
    pub keepalive: Option<u16>,
    /// Clean start / clean session.
    pub clean_start: Option<bool>,
    /// Session expiry interval in seconds.
    pub expiry_interval: Option<u32>,
    /// Whether the client announced itself as a bridge.
    pub is_bridge: Option<bool>,
    /// The listener mountpoint.
    pub mountpoint: Option<&'a str>,
    /// When the client connected (ms).
    pub connected_at: Option<i64>,
    /// When it disconnected (ms).
    pub disconnected_at: Option<i64>,
    /// CONNECT properties.
    pub conn_props: Option<&'a Value>,
    /// DISCONNECT properties.
    pub disconn_props: Option<&'a Value>,
    /// SUBSCRIBE properties.
    pub sub_props: Option<&'a Value>,
    /// UNSUBSCRIBE properties.
    pub unsub_props: Option<&'a Value>,
}

impl<'a> Input<'a> {
    /// A published message with its topic and payload; set the other columns with struct update syntax.
    pub fn message(topic: &'a str, payload: &'a [u8], timestamp: i64) -> Self {
        Input {
            event: EventKind::MessagePublish,
            timestamp,
            topic: Some(topic),
            payload: Some(payload),
            ..Input::default()
        }
    }

    /// An event of `kind` with no columns set yet.
    pub fn event(kind: EventKind, timestamp: i64) -> Self {
        Input {
            event: kind,
            timestamp,
            ..Input::default()
        }
    }
}

/// What the evaluation may know about the world: this node's name and the current time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Env<'a> {
    /// The `node` column.
    pub node: &'a str,
    /// "Now" in ms since the Unix epoch, for `now_timestamp()` and friends.
    pub now_ms: i64,
}
