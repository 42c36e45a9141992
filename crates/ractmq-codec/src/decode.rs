//! Frame and decode client-to-server packets.
//!
//! TODO(helper): implement as documented in the API below.

use bytes::BytesMut;

use crate::{Packet, Protocol};

/// Why a frame could not be decoded. Every variant closes the connection; `reason_code` says with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The declared packet is larger than the broker accepts (0x95). Detected from the fixed header alone.
    PacketTooLarge { size: usize, max: usize },
    /// The bytes break the packet grammar (0x81).
    Malformed(&'static str),
    /// The packet is well formed but not allowed here (0x82), e.g. a second CONNECT or PUBLISH before CONNECT.
    ProtocolError(&'static str),
    /// CONNECT with an unknown protocol name or level (0x84; 3.x return code 1).
    UnsupportedProtocol,
    /// A PUBLISH topic name that is not valid (0x90).
    TopicNameInvalid,
    /// A topic filter that is not valid (0x8F). Only for whole-packet failures; the core reports per filter.
    TopicFilterInvalid,
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
            DecodeError::TopicFilterInvalid => TOPIC_FILTER_INVALID,
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
            DecodeError::TopicFilterInvalid => write!(f, "invalid topic filter"),
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
}

impl Decoder {
    /// `max_packet_size` counts the whole frame (fixed header included), as MQTT 5.0 Maximum Packet Size does.
    pub fn new(max_packet_size: usize) -> Decoder {
        Decoder {
            protocol: None,
            max_packet_size,
        }
    }

    /// The level learned from CONNECT, if one was decoded.
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Decode one packet from the front of `buf`. `Ok(None)` means more bytes are needed (nothing consumed).
    /// On `Ok(Some(_))` exactly that frame is consumed. After an error the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let _ = (buf, self.max_packet_size);
        todo!()
    }
}
