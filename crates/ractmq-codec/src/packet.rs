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
    /// True for MQTT 5.0.
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
    /// QoS 0: delivered at most once, never acknowledged.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: delivered at least once, acknowledged by PUBACK.
    AtLeastOnce = 1,
    /// QoS 2: delivered exactly once, by the PUBREC, PUBREL, PUBCOMP exchange.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS of a wire value 0, 1 or 2; `None` for any other.
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
    /// The level named by the protocol name and level; the decoder always sets it, the encoder takes
    /// the level as an argument instead.
    pub protocol: Option<Protocol>,
    /// Clean Start (5.0) or Clean Session (3.x) flag.
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns the keep-alive check off.
    pub keep_alive: u16,
    /// Client Identifier.
    pub client_id: String,
    /// The will message, if the Will Flag is set.
    pub will: Option<Will>,
    /// User Name, if the User Name Flag is set.
    pub username: Option<String>,
    /// Binary data: MQTT does not require a password to be UTF-8.
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0); empty for older levels.
    pub properties: ConnectProperties,
}

/// The properties of a 5.0 CONNECT. `None` or empty means absent from the packet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectProperties {
    /// MQTT 5 Session Expiry Interval in seconds (absent: 0, the session ends with the connection).
    pub session_expiry_interval: Option<u32>,
    /// MQTT 5 Receive Maximum: QoS 1 and 2 PUBLISHes the client accepts unacknowledged at once.
    pub receive_maximum: Option<u16>,
    /// MQTT 5 Maximum Packet Size the client accepts, in bytes.
    pub maximum_packet_size: Option<u32>,
    /// MQTT 5 Topic Alias Maximum: the highest topic alias the client accepts from the server.
    pub topic_alias_maximum: Option<u16>,
    /// MQTT 5 Request Response Information (0 or 1).
    pub request_response_information: Option<u8>,
    /// MQTT 5 Request Problem Information (0 or 1).
    pub request_problem_information: Option<u8>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// MQTT 5 Authentication Method, naming the enhanced authentication exchange.
    pub authentication_method: Option<String>,
    /// MQTT 5 Authentication Data: the first step of that exchange.
    pub authentication_data: Option<Bytes>,
}

/// The will message a client registers in CONNECT.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Will {
    /// Will Topic.
    pub topic: String,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will Delay Interval in seconds (5.0).
    pub delay_interval: Option<u32>,
    /// The properties the will is published with (5.0); `topic_alias` and `subscription_identifiers` unused.
    pub properties: PublishProperties,
}

/// CONNACK. `reason` is always a 5.0 reason code; the encoder maps it to a 3.x return code.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// MQTT 5 CONNACK reason code ([`reason`](crate::reason)).
    pub reason: u8,
    /// CONNACK properties (5.0); not written for older levels.
    pub properties: ConnAckProperties,
}

/// The properties of a 5.0 CONNACK. `None` or empty leaves the property out of the packet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnAckProperties {
    /// MQTT 5 Session Expiry Interval in seconds, when the server changes the client's.
    pub session_expiry_interval: Option<u32>,
    /// MQTT 5 Receive Maximum: QoS 1 and 2 PUBLISHes the server accepts unacknowledged at once.
    pub receive_maximum: Option<u16>,
    /// MQTT 5 Maximum QoS the server accepts (0 or 1; absent means 2).
    pub maximum_qos: Option<u8>,
    /// MQTT 5 Retain Available.
    pub retain_available: Option<bool>,
    /// MQTT 5 Maximum Packet Size the server accepts, in bytes.
    pub maximum_packet_size: Option<u32>,
    /// MQTT 5 Assigned Client Identifier, when the client connected with an empty one.
    pub assigned_client_identifier: Option<String>,
    /// MQTT 5 Topic Alias Maximum: the highest topic alias the server accepts from the client.
    pub topic_alias_maximum: Option<u16>,
    /// MQTT 5 Reason String: a human-readable diagnostic.
    pub reason_string: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// MQTT 5 Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// MQTT 5 Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// MQTT 5 Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// MQTT 5 Server Keep Alive in seconds, overriding the client's Keep Alive.
    pub server_keep_alive: Option<u16>,
    /// MQTT 5 Response Information.
    pub response_information: Option<String>,
    /// MQTT 5 Server Reference: another server for the client to use.
    pub server_reference: Option<String>,
    /// MQTT 5 Authentication Method of the enhanced authentication exchange.
    pub authentication_method: Option<String>,
    /// MQTT 5 Authentication Data: the server's last step of that exchange.
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH. `topic` may be empty in 5.0 when `properties.topic_alias` names it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publish {
    /// DUP flag: a retry of an earlier delivery.
    pub dup: bool,
    /// QoS of this delivery.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic Name.
    pub topic: Arc<str>,
    /// 0 for QoS 0.
    pub pkid: u16,
    /// Application message; a slice of the received buffer when decoded.
    pub payload: Bytes,
    /// PUBLISH properties (5.0); empty for older levels.
    pub properties: PublishProperties,
}

/// The properties of a 5.0 PUBLISH (and of a will). `None` or empty means absent from the packet.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishProperties {
    /// MQTT 5 Payload Format Indicator: 0 unspecified bytes, 1 UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// MQTT 5 Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// MQTT 5 Topic Alias.
    pub topic_alias: Option<u16>,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
    /// MQTT 5 Subscription Identifiers of the subscriptions a delivery matched.
    pub subscription_identifiers: Vec<u32>,
    /// MQTT 5 Content Type.
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
    /// Packet identifier of the QoS 1 or 2 exchange this packet belongs to.
    pub pkid: u16,
    /// 5.0 reason code; 0 (success) for older levels.
    pub reason: u8,
    /// MQTT 5 Reason String.
    pub reason_string: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

impl Ack {
    /// A success acknowledgement of `pkid`, with no properties.
    pub fn new(pkid: u16) -> Ack {
        Ack { pkid, ..Ack::default() }
    }

    /// An acknowledgement of `pkid` with a 5.0 reason code and no properties.
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
    /// Topic Filter, possibly shared (`$share/{group}/{filter}`).
    pub filter: String,
    /// Maximum QoS requested for deliveries.
    pub qos: QoS,
    /// MQTT 5 No Local option: do not deliver the client's own publishes back to it.
    pub no_local: bool,
    /// MQTT 5 Retain As Published option: keep the RETAIN flag of forwarded messages.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling option.
    pub retain_handling: RetainHandling,
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscribe {
    /// Packet identifier, echoed by the SUBACK.
    pub pkid: u16,
    /// The filters, in order; never empty once decoded.
    pub filters: Vec<SubscriptionRequest>,
    /// MQTT 5 Subscription Identifier given to every filter of the packet.
    pub subscription_identifier: Option<u32>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK. Each reason is a 5.0 reason code (granted QoS 0..2 or >= 0x80); the encoder maps failures to
/// 0x80 for 3.x.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub pkid: u16,
    /// One reason code per filter of the SUBSCRIBE, in order.
    pub reasons: Vec<u8>,
    /// MQTT 5 Reason String.
    pub reason_string: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by the UNSUBACK.
    pub pkid: u16,
    /// The filters to remove, in order.
    pub filters: Vec<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK. 3.x carries no reasons; the encoder leaves them out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub pkid: u16,
    /// One 5.0 reason code per filter of the UNSUBSCRIBE, in order.
    pub reasons: Vec<u8>,
    /// MQTT 5 Reason String.
    pub reason_string: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// DISCONNECT in either direction. 3.x DISCONNECT has no fields (client to server only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disconnect {
    /// MQTT 5 DISCONNECT reason code; 0 (normal disconnection) for older levels.
    pub reason: u8,
    /// MQTT 5 Session Expiry Interval in seconds: a client's change to its own at DISCONNECT.
    pub session_expiry_interval: Option<u32>,
    /// MQTT 5 Reason String.
    pub reason_string: Option<String>,
    /// MQTT 5 Server Reference: another server for the client to use.
    pub server_reference: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

impl Disconnect {
    /// A DISCONNECT with a 5.0 reason code and no properties.
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
    /// MQTT 5 AUTH reason code: success, continue authentication or re-authenticate.
    pub reason: u8,
    /// MQTT 5 Authentication Method.
    pub method: Option<String>,
    /// MQTT 5 Authentication Data.
    pub data: Option<Bytes>,
    /// MQTT 5 Reason String.
    pub reason_string: Option<String>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<UserProperty>,
}

/// Every MQTT control packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH.
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
