//! Frame and decode client-to-server packets.
//!
//! The fixed header is read here, for every packet, before anything else: mqttbytes never checks the flag
//! nibble, accepts non-minimal remaining lengths and only refuses an oversized packet after buffering it,
//! and the packet order (CONNECT first and once) decides which level's rules apply. The body then goes to
//! - `mqttbytes_layer.rs` for PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE and 3.x
//!   UNSUBSCRIBE: our validation walk, then mqttbytes' reader for that packet and level (a 3.x PUBLISH,
//!   the hot path, is read by the walk alone);
//! - our own parsers for the rest: CONNECT (mqttbytes cannot read 3.1, does not detect the level and reads
//!   passwords as UTF-8; see `connect.rs`), 5.0 UNSUBSCRIBE (its reader has a leftover `dbg!`),
//!   5.0 DISCONNECT (it refuses the short forms, one of them after consuming the frame), AUTH (unknown to
//!   it), and PINGREQ and 3.x DISCONNECT, which have no fields to parse.
//!
//! The rules checked are those a server must enforce on what a client sends; whether a packet fits the
//! session (topic alias maximum, receive maximum, packet identifiers in use) is for the protocol core.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::frame::{self, Kind};
use crate::mqttbytes_layer::{self as layer, Frame};
use crate::reader::Reader;
use crate::v5_props::{self, Context};
use crate::{connect, reason, Auth, Disconnect, Packet, Protocol, Unsubscribe};

/// Why a frame could not be decoded. Every variant closes the connection; `reason_code` says with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The declared packet is larger than the broker accepts (0x95). Detected from the fixed header alone.
    PacketTooLarge {
        /// The whole packet's size in bytes, fixed header included.
        size: usize,
        /// The maximum packet size the decoder was configured with, in bytes.
        max: usize,
    },
    /// The bytes break the packet grammar (0x81).
    Malformed(&'static str),
    /// The packet is well formed but not allowed here (0x82), e.g. a second CONNECT or PUBLISH before CONNECT.
    ProtocolError(&'static str),
    /// CONNECT with an unknown protocol name or level (0x84; 3.x return code 1).
    UnsupportedProtocol,
    /// A PUBLISH topic name that is not valid (0x90).
    TopicNameInvalid,
    /// A PUBLISH with Topic Alias 0 (0x94) [MQTT-3.3.2-8]; aliases above the maximum are the core's check.
    TopicAliasInvalid,
}

impl DecodeError {
    /// The 5.0 reason code to put in the DISCONNECT (or CONNACK) that precedes closing.
    pub fn reason_code(&self) -> u8 {
        use crate::reason::*;
        match self {
            DecodeError::PacketTooLarge { .. } => PACKET_TOO_LARGE,
            DecodeError::Malformed(_) => MALFORMED_PACKET,
            DecodeError::ProtocolError(_) => PROTOCOL_ERROR,
            DecodeError::UnsupportedProtocol => UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicNameInvalid => TOPIC_NAME_INVALID,
            DecodeError::TopicAliasInvalid => TOPIC_ALIAS_INVALID,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")
            }
            DecodeError::Malformed(why) => write!(f, "malformed packet: {why}"),
            DecodeError::ProtocolError(why) => write!(f, "protocol error: {why}"),
            DecodeError::UnsupportedProtocol => write!(f, "unsupported protocol name or level"),
            DecodeError::TopicNameInvalid => write!(f, "invalid topic name"),
            DecodeError::TopicAliasInvalid => write!(f, "topic alias 0 is not allowed"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A per-connection decoder. Before CONNECT it accepts only CONNECT and learns the protocol level from it;
/// after that it decodes with the rules of that level.
#[derive(Debug)]
pub struct Decoder {
    protocol: Option<Protocol>,
    max_packet_size: usize,
    /// The topic of the last 3.x PUBLISH, shared by the next one to the same topic (see `publish_v3`).
    last_topic: Option<Arc<str>>,
}

impl Decoder {
    /// `max_packet_size` counts the whole frame (fixed header included), as MQTT 5.0 Maximum Packet Size does.
    pub fn new(max_packet_size: usize) -> Decoder {
        Decoder {
            protocol: None,
            max_packet_size,
            last_topic: None,
        }
    }

    /// The level learned from CONNECT, if one was decoded.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Decode one packet from the front of `buf`. `Ok(None)` means more bytes are needed (nothing consumed).
    /// On `Ok(Some(_))` exactly that frame is consumed. After an error the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&byte1) = buf.first() else {
            return Ok(None);
        };
        let kind = frame::packet_type(byte1, self.protocol)?;
        let Some((remaining, len_len)) = frame::read_varint(&buf[1..])? else {
            return Ok(None);
        };
        let header_len = 1 + len_len;
        let frame_len = header_len + remaining;
        if frame_len > self.max_packet_size {
            return Err(DecodeError::PacketTooLarge {
                size: frame_len,
                max: self.max_packet_size,
            });
        }
        if buf.len() < frame_len {
            return Ok(None);
        }
        // Payloads and binary fields are slices of this frame, so they are never copied.
        let frame = Frame::new(byte1, buf.split_to(frame_len).freeze(), header_len);

        let Some(protocol) = self.protocol else {
            // `packet_type` admits only CONNECT while the level is unknown.
            let connect = connect::decode(frame.body)?;
            self.protocol = connect.protocol;
            return Ok(Some(Packet::Connect(Box::new(connect))));
        };
        let v5 = protocol.is_v5();
        let packet = match kind {
            Kind::Connect => return Err(DecodeError::ProtocolError("second CONNECT")),
            Kind::Publish => Packet::Publish(layer::publish(frame, v5, &mut self.last_topic)?),
            Kind::PubAck => Packet::PubAck(layer::ack(kind, frame, v5)?),
            Kind::PubRec => Packet::PubRec(layer::ack(kind, frame, v5)?),
            Kind::PubRel => Packet::PubRel(layer::ack(kind, frame, v5)?),
            Kind::PubComp => Packet::PubComp(layer::ack(kind, frame, v5)?),
            Kind::Subscribe => Packet::Subscribe(layer::subscribe(frame, v5)?),
            Kind::Unsubscribe if v5 => Packet::Unsubscribe(unsubscribe_v5(frame.body)?),
            Kind::Unsubscribe => Packet::Unsubscribe(layer::unsubscribe_v3(frame)?),
            // PINGREQ and 3.x DISCONNECT have no fields, so there is nothing for mqttbytes to parse, only
            // the empty body to check (mqttbytes accepts a payload there).
            Kind::PingReq => {
                Reader::new(frame.body).finish()?;
                Packet::PingReq
            }
            Kind::Disconnect => Packet::Disconnect(disconnect(frame.body, v5)?),
            Kind::Auth => Packet::Auth(auth(frame.body)?),
        };
        Ok(Some(packet))
    }
}

/// Reason codes a PUBACK or PUBREC may carry (5.0 sections 3.4.2.1, 3.5.2.1).
pub(crate) const PUBACK_REASONS: &[u8] = &[
    reason::SUCCESS,
    reason::NO_MATCHING_SUBSCRIBERS,
    reason::UNSPECIFIED_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::NOT_AUTHORIZED,
    reason::TOPIC_NAME_INVALID,
    reason::PACKET_IDENTIFIER_IN_USE,
    reason::QUOTA_EXCEEDED,
    reason::PAYLOAD_FORMAT_INVALID,
];

/// Reason codes a PUBREL or PUBCOMP may carry.
pub(crate) const PUBREL_REASONS: &[u8] = &[reason::SUCCESS, reason::PACKET_IDENTIFIER_NOT_FOUND];

/// Every DISCONNECT reason code of either direction: a client echoing a server code is odd but well formed.
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];

const AUTH_REASONS: &[u8] = &[
    reason::SUCCESS,
    reason::CONTINUE_AUTHENTICATION,
    reason::RE_AUTHENTICATE,
];

pub(crate) fn reason_in(code: u8, allowed: &[u8]) -> Result<u8, DecodeError> {
    if allowed.contains(&code) {
        Ok(code)
    } else {
        Err(DecodeError::ProtocolError("reason code not valid for this packet"))
    }
}

/// A packet identifier where one is required: 0 is reserved.
pub(crate) fn pkid(r: &mut Reader) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ProtocolError("packet identifier 0")),
        id => Ok(id),
    }
}

/// 5.0 UNSUBSCRIBE, parsed here because mqttbytes' reader for it prints the packet identifier to stderr
/// (a leftover `dbg!`). 3.x UNSUBSCRIBE goes through mqttbytes.
fn unsubscribe_v5(body: Bytes) -> Result<Unsubscribe, DecodeError> {
    let mut r = Reader::new(body);
    let mut unsub = Unsubscribe {
        pkid: pkid(&mut r)?,
        ..Unsubscribe::default()
    };
    unsub.user_properties = v5_props::read(&mut r, Context::Unsubscribe)?.user_properties;
    while r.remaining() > 0 {
        unsub.filters.push(r.string()?);
    }
    if unsub.filters.is_empty() {
        return Err(DecodeError::ProtocolError("UNSUBSCRIBE without topic filters"));
    }
    Ok(unsub)
}

/// 3.x DISCONNECT has no fields. 5.0 may stop after the reason code or leave it off entirely (normal).
fn disconnect(body: Bytes, v5: bool) -> Result<Disconnect, DecodeError> {
    let mut r = Reader::new(body);
    let mut d = Disconnect::default();
    if v5 && r.remaining() > 0 {
        d.reason = reason_in(r.u8()?, DISCONNECT_REASONS)?;
        if r.remaining() > 0 {
            let p = v5_props::read(&mut r, Context::Disconnect)?;
            d.session_expiry_interval = p.session_expiry_interval;
            d.reason_string = p.reason_string;
            d.server_reference = p.server_reference;
            d.user_properties = p.user_properties;
        }
    }
    r.finish()?;
    Ok(d)
}

/// AUTH exists only in 5.0 (`frame::packet_type` refuses it for older levels). Like DISCONNECT it may be
/// empty (success) or stop after the reason code.
fn auth(body: Bytes) -> Result<Auth, DecodeError> {
    let mut r = Reader::new(body);
    let mut a = Auth::default();
    if r.remaining() > 0 {
        a.reason = reason_in(r.u8()?, AUTH_REASONS)?;
        if r.remaining() > 0 {
            let p = v5_props::read(&mut r, Context::Auth)?;
            a.method = p.authentication_method;
            a.data = p.authentication_data;
            a.reason_string = p.reason_string;
            a.user_properties = p.user_properties;
        }
    }
    r.finish()?;
    Ok(a)
}
