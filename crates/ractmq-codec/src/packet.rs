//! One packet model for every protocol level.
//!
//! The protocol core must not care whether a client speaks 3.1, 3.1.1 or 5.0, so the codec turns every
//! level into these types: fields that only exist in 5.0 (properties, reason codes) are simply empty or
//! zero for older clients, and the encoder maps them back to what each level can say.

use std::sync::Arc;

use bytes::Bytes;

/// The protocol level a connection negotiated in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    V3_1_1,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5,
}

impl Protocol {
    pub fn is_v5(self) -> bool {
        self == Protocol::V5
    }

    /// The protocol level byte as sent in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Protocol::V3_1 => 3,
            Protocol::V3_1_1 => 4,
            Protocol::V5 => 5,
        }
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A user property: an ordered, possibly repeated name/value pair (MQTT 5.0).
pub type UserProperty = (String, String);

/// CONNECT, any level. `client_id` may be empty (the core decides whether that is allowed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Connect {
    pub protocol: Option<Protocol>,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: String,
    pub will: Option<Will>,
    pub username: Option<String>,
    /// Binary data: MQTT does not require a password to be UTF-8.
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<u8>,
    pub request_problem_information: Option<u8>,
    pub user_properties: Vec<UserProperty>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// The will message a client registers in CONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will Delay Interval in seconds (5.0).
    pub delay_interval: Option<u32>,
    /// The properties the will is published with (5.0); `topic_alias` and `subscription_identifiers` unused.
    pub properties: PublishProperties,
}

/// CONNACK. `reason` is always a 5.0 reason code; the encoder maps it to a 3.x return code.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    pub reason: u8,
    pub properties: ConnAckProperties,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    pub receive_maximum: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH. `topic` may be empty in 5.0 when `properties.topic_alias` names it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: Arc<str>,
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: Bytes,
    pub properties: PublishProperties,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishProperties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub topic_alias: Option<u16>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<UserProperty>,
    pub subscription_identifiers: Vec<u32>,
    pub content_type: Option<String>,
}

impl PublishProperties {
    /// True when nothing would be written on the wire.
    pub fn is_empty(&self) -> bool {
        *self == PublishProperties::default()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ack {
    pub pkid: u16,
    /// 5.0 reason code; 0 (success) for older levels.
    pub reason: u8,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

impl Ack {
    pub fn new(pkid: u16) -> Ack {
        Ack { pkid, ..Ack::default() }
    }

    pub fn with_reason(pkid: u16, reason: u8) -> Ack {
        Ack {
            pkid,
            reason,
            ..Ack::default()
        }
    }
}

/// Retain Handling subscription option (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send retained messages only if the subscription did not exist before.
    SendIfNew = 1,
    /// Never send retained messages for this subscription.
    DoNotSend = 2,
}

/// One filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubscriptionRequest {
    pub filter: String,
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    pub pkid: u16,
    pub filters: Vec<SubscriptionRequest>,
    pub subscription_identifier: Option<u32>,
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK. Each reason is a 5.0 reason code (granted QoS 0..2 or >= 0x80); the encoder maps failures to
/// 0x80 for 3.x.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubAck {
    pub pkid: u16,
    pub reasons: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unsubscribe {
    pub pkid: u16,
    pub filters: Vec<String>,
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK. 3.x carries no reasons; the encoder leaves them out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnsubAck {
    pub pkid: u16,
    pub reasons: Vec<u8>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// DISCONNECT in either direction. 3.x DISCONNECT has no fields (client to server only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disconnect {
    pub reason: u8,
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
    pub server_reference: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

impl Disconnect {
    pub fn with_reason(reason: u8) -> Disconnect {
        Disconnect {
            reason,
            ..Disconnect::default()
        }
    }
}

/// AUTH (5.0 only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Auth {
    pub reason: u8,
    pub method: Option<String>,
    pub data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: Vec<UserProperty>,
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
