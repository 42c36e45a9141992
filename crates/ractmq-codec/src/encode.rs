//! Encode server-to-client packets for a given protocol level.
//!
//! mqttbytes writes the 3.x SUBACK and UNSUBACK: they are fixed-size or a list of bytes, with no string it
//! could truncate, and the exact-bytes tests in tests/encode.rs show its output is the same as ours. The
//! 3.x PUBACK, PUBREC, PUBREL and PUBCOMP, one per QoS 1/2 message, are four bytes written here
//! (`v3_ack`), held to mqttbytes' by the same tests. The 3.1 forms are byte for byte the 3.1.1 ones, so
//! its v4 writers serve both 3.x levels.
//!
//! Everything else is written here:
//! - PUBLISH ([`encode_publish`]), the hot path of every delivery: it writes from borrowed fields, where
//!   mqttbytes would need an owned `Publish` (a topic `String`, properties cloned) per subscriber;
//! - every packet with a string or binary field (CONNECT, 5.0 packets with properties, SUBSCRIBE,
//!   UNSUBSCRIBE): mqttbytes' writers silently truncate a field over 65,535 bytes into a corrupt frame,
//!   where these refuse it ([`EncodeError::FieldTooLong`]);
//! - 3.x CONNACK, whose return code is mapped from our 5.0 reason code;
//! - 5.0 DISCONNECT, which mqttbytes writes in a form its own reader refuses, and AUTH, which it lacks;
//! - the 5.0 acks, SUBACK and UNSUBACK, whose reason codes and properties we hold in our own types; a
//!   conversion would allocate for nothing.
//!
//! Client-to-server packets are encodable too, for tests and load generators.

use bytes::BytesMut;
use mqttbytes::v4;

use crate::sink::{frame, header, properties, EncodeResult, Sink};
use crate::v5_props::*;
use crate::{
    connect, reason, Ack, Auth, ConnAck, ConnAckProperties, Disconnect, Packet, Protocol, Publish, PublishProperties,
    QoS, SubAck, Subscribe, UnsubAck, Unsubscribe, UserProperty,
};

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes, or a Variable Byte Integer (the remaining length
    /// or a subscription identifier) is above 268,435,455.
    FieldTooLong,
    /// The packet kind does not exist at this protocol level (e.g. AUTH to a 3.1.1 client).
    NotInProtocol,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::FieldTooLong => write!(f, "a field is longer than 65535 bytes"),
            EncodeError::NotInProtocol => write!(f, "packet does not exist in this protocol level"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Append `packet` to `buf`, encoded for `protocol`. On error `buf` is left as it was.
///
/// A DISCONNECT is encoded as the server sends it, which 3.x cannot do (`NotInProtocol`); a client
/// encodes with [`encode_client`].
pub fn encode(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    encode_from(packet, protocol, buf, false)
}

/// Like [`encode`], but for packets as a client sends them (tests, load generators). The only difference
/// is DISCONNECT in 3.x, which a client may send: it has no fields, so only a DISCONNECT with reason 0
/// and no properties can be encoded.
pub fn encode_client(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    encode_from(packet, protocol, buf, true)
}

fn encode_from(packet: &Packet, protocol: Protocol, buf: &mut BytesMut, client: bool) -> Result<(), EncodeError> {
    let v5 = protocol.is_v5();
    match packet {
        Packet::Connect(c) => frame!(buf, 0x10, |s| connect::encode_body(s, c, protocol)),
        Packet::ConnAck(a) => frame!(buf, 0x20, |s| connack(s, a, v5)),
        Packet::Publish(p) => encode_publish(&PublishOut::from(p), protocol, buf),
        // 3.x acks carry the packet identifier alone: reason and properties are dropped.
        Packet::PubAck(a) if !v5 => Ok(v3_ack(buf, 0x40, a.pkid)),
        Packet::PubRec(a) if !v5 => Ok(v3_ack(buf, 0x50, a.pkid)),
        Packet::PubRel(a) if !v5 => Ok(v3_ack(buf, 0x62, a.pkid)),
        Packet::PubComp(a) if !v5 => Ok(v3_ack(buf, 0x70, a.pkid)),
        Packet::PubAck(a) => frame!(buf, 0x40, |s| v5_ack(s, a)),
        Packet::PubRec(a) => frame!(buf, 0x50, |s| v5_ack(s, a)),
        Packet::PubRel(a) => frame!(buf, 0x62, |s| v5_ack(s, a)),
        Packet::PubComp(a) => frame!(buf, 0x70, |s| v5_ack(s, a)),
        Packet::Subscribe(sub) => frame!(buf, 0x82, |s| subscribe(s, sub, v5)),
        Packet::SubAck(a) if !v5 => with_mqttbytes(buf, |b| v3_suback(a).write(b)),
        Packet::SubAck(a) => frame!(buf, 0x90, |s| v5_suback(s, a)),
        Packet::Unsubscribe(u) => frame!(buf, 0xA2, |s| unsubscribe(s, u, v5)),
        // 3.x UNSUBACK has no reason codes.
        Packet::UnsubAck(a) if !v5 => with_mqttbytes(buf, |b| v4::UnsubAck::new(a.pkid).write(b)),
        Packet::UnsubAck(a) => frame!(buf, 0xB0, |s| v5_unsuback(s, a)),
        Packet::PingReq => header(buf, 0xC0, 0),
        Packet::PingResp => header(buf, 0xD0, 0),
        Packet::Disconnect(d) if v5 => frame!(buf, 0xE0, |s| disconnect(s, d)),
        Packet::Disconnect(d) if client && *d == Disconnect::default() => header(buf, 0xE0, 0),
        Packet::Disconnect(_) => Err(EncodeError::NotInProtocol),
        Packet::Auth(a) if v5 => frame!(buf, 0xF0, |s| auth(s, a)),
        Packet::Auth(_) => Err(EncodeError::NotInProtocol),
    }
    .map(drop)
}

/// A 3.x PUBACK, PUBREC, PUBREL or PUBCOMP: four fixed bytes, written here because one goes out for every
/// QoS 1/2 message and mqttbytes' writer costs several times as much.
fn v3_ack(buf: &mut BytesMut, byte1: u8, pkid: u16) -> usize {
    let [hi, lo] = pkid.to_be_bytes();
    buf.extend_from_slice(&[byte1, 0x02, hi, lo]);
    4
}

/// Runs one of mqttbytes' writers, leaving `buf` as it was if it fails. The byte count it returns is
/// wrong for some packets, so it is not used.
fn with_mqttbytes(
    buf: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>,
) -> Result<usize, EncodeError> {
    let start = buf.len();
    match write(buf) {
        Ok(_) => Ok(buf.len() - start),
        Err(_) => {
            // Its only failure here is a remaining length beyond the Variable Byte Integer range.
            buf.truncate(start);
            Err(EncodeError::FieldTooLong)
        }
    }
}

/// 3.x knows the granted QoS and one failure code (0x80), which every 5.0 failure reason becomes.
fn v3_suback(a: &SubAck) -> v4::SubAck {
    use mqttbytes::QoS as Q;
    use v4::SubscribeReasonCode::{Failure, Success};
    let codes = a
        .reasons
        .iter()
        .map(|&code| match code {
            0 => Success(Q::AtMostOnce),
            1 => Success(Q::AtLeastOnce),
            2 => Success(Q::ExactlyOnce),
            _ => Failure,
        })
        .collect();
    v4::SubAck::new(a.pkid, codes)
}

/// The fields of an outgoing PUBLISH, borrowed so that a delivery to many subscribers copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct PublishOut<'a> {
    /// DUP flag: a retry of an earlier delivery. Written only for QoS 1 and 2.
    pub dup: bool,
    /// The QoS of this delivery.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// May be empty in 5.0 when `topic_alias` is set and the alias is already known to the client.
    pub topic: &'a str,
    /// Packet identifier; ignored for QoS 0.
    pub pkid: u16,
    /// Application message, written as it is.
    pub payload: &'a [u8],
    /// Written only for 5.0; `topic_alias` and `subscription_identifiers` inside are ignored.
    pub properties: Option<&'a PublishProperties>,
    /// 5.0 topic alias to send.
    pub topic_alias: Option<u16>,
    /// 5.0 subscription identifiers of the matching subscriptions.
    pub subscription_identifiers: &'a [u32],
    /// 5.0 Message Expiry Interval to send (the remaining lifetime), overriding `properties`.
    pub message_expiry_interval: Option<u32>,
}

impl<'a> From<&'a Publish> for PublishOut<'a> {
    /// Sends a decoded PUBLISH as it is, properties included (its topic alias, subscription identifiers
    /// and message expiry interval too).
    fn from(p: &'a Publish) -> PublishOut<'a> {
        PublishOut {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: &p.topic,
            pkid: p.pkid,
            payload: &p.payload,
            properties: Some(&p.properties),
            topic_alias: p.properties.topic_alias,
            subscription_identifiers: &p.properties.subscription_identifiers,
            message_expiry_interval: p.properties.message_expiry_interval,
        }
    }
}

/// Append one PUBLISH to `buf` without building a [`Packet`]: the hot path of every delivery.
/// Returns the number of bytes written. On error `buf` is left as it was.
pub fn encode_publish(publish: &PublishOut<'_>, protocol: Protocol, buf: &mut BytesMut) -> Result<usize, EncodeError> {
    let mut byte1 = 0x30 | (publish.qos as u8) << 1 | u8::from(publish.retain);
    // DUP means "a retry of an earlier delivery", which QoS 0 has none of; the spec requires 0 there.
    if publish.dup && publish.qos != QoS::AtMostOnce {
        byte1 |= 0x08;
    }
    let v5 = protocol.is_v5();
    if !v5 {
        return publish_v3(buf, byte1, publish);
    }
    frame!(buf, byte1, |s| publish_body(s, publish, v5))
}

/// A 3.x PUBLISH: its length is known without the counting pass of `frame!`, so it is written after a single
/// reservation. The same bytes as `publish_body` writes (the exact-bytes tests in tests/encode.rs), at a
/// fraction of the cost, on the path of every delivery to a 3.x client.
fn publish_v3(buf: &mut BytesMut, byte1: u8, p: &PublishOut<'_>) -> Result<usize, EncodeError> {
    let topic_len = u16::try_from(p.topic.len()).map_err(|_| EncodeError::FieldTooLong)?;
    let with_pkid = p.qos != QoS::AtMostOnce;
    let len = 2 + p.topic.len() + if with_pkid { 2 } else { 0 } + p.payload.len();
    // Reserves the whole packet; nothing is written if it fails.
    let header_len = header(buf, byte1, len)?;
    buf.extend_from_slice(&topic_len.to_be_bytes());
    buf.extend_from_slice(p.topic.as_bytes());
    if with_pkid {
        buf.extend_from_slice(&p.pkid.to_be_bytes());
    }
    buf.extend_from_slice(p.payload);
    Ok(header_len + len)
}

fn publish_body<S: Sink>(s: &mut S, p: &PublishOut<'_>, v5: bool) -> EncodeResult {
    s.string(p.topic)?;
    if p.qos != QoS::AtMostOnce {
        s.u16(p.pkid);
    }
    if v5 {
        properties!(s, |q| publish_properties(q, p))?;
    }
    s.put(p.payload);
    Ok(())
}

fn publish_properties<S: Sink>(s: &mut S, p: &PublishOut<'_>) -> EncodeResult {
    match p.properties {
        Some(props) => message_properties(s, props, p.message_expiry_interval)?,
        None => s.prop_u32(MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval),
    }
    s.prop_u16(TOPIC_ALIAS, p.topic_alias);
    for &id in p.subscription_identifiers {
        s.prop_varint(SUBSCRIPTION_IDENTIFIER, id)?;
    }
    Ok(())
}

/// The properties a message carries from publisher to subscriber (PUBLISH and will), with the Message
/// Expiry Interval given separately because the server sends the remaining lifetime, not the original.
pub(crate) fn message_properties<S: Sink>(
    s: &mut S,
    p: &PublishProperties,
    message_expiry_interval: Option<u32>,
) -> EncodeResult {
    s.prop_u8(PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator);
    s.prop_u32(MESSAGE_EXPIRY_INTERVAL, message_expiry_interval);
    s.prop_str(CONTENT_TYPE, p.content_type.as_deref())?;
    s.prop_str(RESPONSE_TOPIC, p.response_topic.as_deref())?;
    s.prop_bin(CORRELATION_DATA, p.correlation_data.as_deref())?;
    s.user_props(&p.user_properties)
}

fn connack<S: Sink>(s: &mut S, a: &ConnAck, v5: bool) -> EncodeResult {
    if !v5 {
        let code = reason::connack_v3_return_code(a.reason);
        s.u8(u8::from(a.session_present && code == 0));
        s.u8(code);
        return Ok(());
    }
    // A refused connection has no session, whatever the caller set.
    s.u8(u8::from(a.session_present && a.reason == reason::SUCCESS));
    s.u8(a.reason);
    properties!(s, |p| connack_properties(p, &a.properties))
}

fn connack_properties<S: Sink>(s: &mut S, p: &ConnAckProperties) -> EncodeResult {
    s.prop_u32(SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    s.prop_u16(RECEIVE_MAXIMUM, p.receive_maximum);
    s.prop_u8(MAXIMUM_QOS, p.maximum_qos);
    s.prop_bool(RETAIN_AVAILABLE, p.retain_available);
    s.prop_u32(MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    s.prop_str(ASSIGNED_CLIENT_IDENTIFIER, p.assigned_client_identifier.as_deref())?;
    s.prop_u16(TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    s.prop_str(REASON_STRING, p.reason_string.as_deref())?;
    s.user_props(&p.user_properties)?;
    s.prop_bool(WILDCARD_SUBSCRIPTION_AVAILABLE, p.wildcard_subscription_available);
    s.prop_bool(SUBSCRIPTION_IDENTIFIERS_AVAILABLE, p.subscription_identifiers_available);
    s.prop_bool(SHARED_SUBSCRIPTION_AVAILABLE, p.shared_subscription_available);
    s.prop_u16(SERVER_KEEP_ALIVE, p.server_keep_alive);
    s.prop_str(RESPONSE_INFORMATION, p.response_information.as_deref())?;
    s.prop_str(SERVER_REFERENCE, p.server_reference.as_deref())?;
    s.prop_str(AUTHENTICATION_METHOD, p.authentication_method.as_deref())?;
    s.prop_bin(AUTHENTICATION_DATA, p.authentication_data.as_deref())
}

/// Reason String and User Properties: all that acknowledgements can carry.
fn reason_properties<S: Sink>(s: &mut S, reason_string: Option<&str>, user: &[UserProperty]) -> EncodeResult {
    s.prop_str(REASON_STRING, reason_string)?;
    s.user_props(user)
}

fn v5_ack<S: Sink>(s: &mut S, a: &Ack) -> EncodeResult {
    s.u16(a.pkid);
    // 5.0 lets the reason code and the property length be left off when they say nothing.
    let has_properties = a.reason_string.is_some() || !a.user_properties.is_empty();
    if a.reason != reason::SUCCESS || has_properties {
        s.u8(a.reason);
    }
    if has_properties {
        properties!(s, |p| reason_properties(
            p,
            a.reason_string.as_deref(),
            &a.user_properties
        ))?;
    }
    Ok(())
}

fn v5_suback<S: Sink>(s: &mut S, a: &SubAck) -> EncodeResult {
    v5_reason_list(s, a.pkid, &a.reasons, a.reason_string.as_deref(), &a.user_properties)
}

fn v5_unsuback<S: Sink>(s: &mut S, a: &UnsubAck) -> EncodeResult {
    v5_reason_list(s, a.pkid, &a.reasons, a.reason_string.as_deref(), &a.user_properties)
}

/// SUBACK and UNSUBACK share one 5.0 layout: packet id, properties, one reason code per filter.
fn v5_reason_list<S: Sink>(
    s: &mut S,
    pkid: u16,
    reasons: &[u8],
    reason_string: Option<&str>,
    user_properties: &[UserProperty],
) -> EncodeResult {
    s.u16(pkid);
    properties!(s, |p| reason_properties(p, reason_string, user_properties))?;
    s.put(reasons);
    Ok(())
}

fn subscribe<S: Sink>(s: &mut S, sub: &Subscribe, v5: bool) -> EncodeResult {
    s.u16(sub.pkid);
    if v5 {
        properties!(s, |p| {
            if let Some(id) = sub.subscription_identifier {
                p.prop_varint(SUBSCRIPTION_IDENTIFIER, id)?;
            }
            p.user_props(&sub.user_properties)
        })?;
    }
    for f in &sub.filters {
        s.string(&f.filter)?;
        let mut options = f.qos as u8;
        if v5 {
            options |=
                u8::from(f.no_local) << 2 | u8::from(f.retain_as_published) << 3 | (f.retain_handling as u8) << 4;
        }
        s.u8(options);
    }
    Ok(())
}

fn unsubscribe<S: Sink>(s: &mut S, u: &Unsubscribe, v5: bool) -> EncodeResult {
    s.u16(u.pkid);
    if v5 {
        properties!(s, |p| p.user_props(&u.user_properties))?;
    }
    for f in &u.filters {
        s.string(f)?;
    }
    Ok(())
}

/// 5.0 only. Like the acks, a normal disconnection without properties is sent as the shortest form.
fn disconnect<S: Sink>(s: &mut S, d: &Disconnect) -> EncodeResult {
    let has_properties = d.session_expiry_interval.is_some()
        || d.reason_string.is_some()
        || d.server_reference.is_some()
        || !d.user_properties.is_empty();
    if d.reason == reason::NORMAL_DISCONNECTION && !has_properties {
        return Ok(());
    }
    s.u8(d.reason);
    if has_properties {
        properties!(s, |p| {
            p.prop_u32(SESSION_EXPIRY_INTERVAL, d.session_expiry_interval);
            p.prop_str(REASON_STRING, d.reason_string.as_deref())?;
            p.prop_str(SERVER_REFERENCE, d.server_reference.as_deref())?;
            p.user_props(&d.user_properties)
        })?;
    }
    Ok(())
}

fn auth<S: Sink>(s: &mut S, a: &Auth) -> EncodeResult {
    let has_properties =
        a.method.is_some() || a.data.is_some() || a.reason_string.is_some() || !a.user_properties.is_empty();
    if a.reason == reason::SUCCESS && !has_properties {
        return Ok(());
    }
    s.u8(a.reason);
    properties!(s, |p| {
        p.prop_str(AUTHENTICATION_METHOD, a.method.as_deref())?;
        p.prop_bin(AUTHENTICATION_DATA, a.data.as_deref())?;
        reason_properties(p, a.reason_string.as_deref(), &a.user_properties)
    })
}
