//! Encode server-to-client packets for a given protocol level.
//!
//! TODO(helper): implement as documented below.

use bytes::BytesMut;

use crate::{Packet, Protocol, PublishProperties, QoS};

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
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
pub fn encode(packet: &Packet, protocol: Protocol, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let _ = (packet, protocol, buf);
    todo!()
}

/// The fields of an outgoing PUBLISH, borrowed so that a delivery to many subscribers copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct PublishOut<'a> {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in 5.0 when `topic_alias` is set and the alias is already known to the client.
    pub topic: &'a str,
    pub pkid: u16,
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

/// Append one PUBLISH to `buf` without building a [`Packet`]: the hot path of every delivery.
/// Returns the number of bytes written. On error `buf` is left as it was.
pub fn encode_publish(
    publish: &PublishOut<'_>,
    protocol: Protocol,
    buf: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let _ = (publish, protocol, buf);
    todo!()
}
