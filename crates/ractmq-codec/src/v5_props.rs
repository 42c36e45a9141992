//! MQTT 5.0 properties: one walker for every packet, and the property identifiers.
//!
//! mqttbytes lets duplicates through (last one wins), checks no ranges, accepts identifiers a packet may not
//! carry and does not keep a property inside its declared length (a property that overruns it silently eats
//! the payload). One generic walker knows which identifiers each packet may carry, which may repeat and
//! what values are legal. It runs in two modes:
//! - [`check`] in front of the mqttbytes readers (PUBLISH, the acks, SUBSCRIBE): it validates and keeps
//!   only the numeric values the caller still needs (the Topic Alias), allocating nothing, because mqttbytes
//!   builds the property structs afterwards;
//! - [`read`] for the packets parsed here (CONNECT, will, UNSUBSCRIBE, DISCONNECT, AUTH): it also keeps
//!   every string and user property.

use bytes::Bytes;

use crate::reader::Reader;
use crate::{topic, DecodeError, UserProperty};

pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
pub(crate) const CONTENT_TYPE: u8 = 0x03;
pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
pub(crate) const CORRELATION_DATA: u8 = 0x09;
pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
pub(crate) const REASON_STRING: u8 = 0x1F;
pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
pub(crate) const MAXIMUM_QOS: u8 = 0x24;
pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
pub(crate) const USER_PROPERTY: u8 = 0x26;
pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
pub(crate) const SUBSCRIPTION_IDENTIFIERS_AVAILABLE: u8 = 0x29;
pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Which property list is being read: each allows a different set of identifiers (5.0 table 2-4).
/// Only lists a client sends exist here, since the decoder only reads client packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Connect,
    Will,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

impl Context {
    fn allows(self, id: u8) -> bool {
        let allowed: &[u8] = match self {
            Context::Connect => &[
                SESSION_EXPIRY_INTERVAL,
                RECEIVE_MAXIMUM,
                MAXIMUM_PACKET_SIZE,
                TOPIC_ALIAS_MAXIMUM,
                REQUEST_RESPONSE_INFORMATION,
                REQUEST_PROBLEM_INFORMATION,
                USER_PROPERTY,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
            ],
            Context::Will => &[
                WILL_DELAY_INTERVAL,
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                USER_PROPERTY,
            ],
            Context::Publish => &[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                TOPIC_ALIAS,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                USER_PROPERTY,
                CONTENT_TYPE,
            ],
            Context::Ack => &[REASON_STRING, USER_PROPERTY],
            Context::Unsubscribe => &[USER_PROPERTY],
            Context::Subscribe => &[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY],
            Context::Disconnect => &[SESSION_EXPIRY_INTERVAL, REASON_STRING, SERVER_REFERENCE, USER_PROPERTY],
            Context::Auth => &[AUTHENTICATION_METHOD, AUTHENTICATION_DATA, REASON_STRING, USER_PROPERTY],
        };
        allowed.contains(&id)
    }
}

/// Every property a client packet can carry; each packet takes the fields its context allows.
#[derive(Debug, Default)]
pub(crate) struct Props {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub subscription_identifier: Option<u32>,
    pub session_expiry_interval: Option<u32>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    pub user_properties: Vec<UserProperty>,
}

/// Reads a Property Length and the properties it covers. The properties must end exactly at that length.
pub(crate) fn read(r: &mut Reader, ctx: Context) -> Result<Props, DecodeError> {
    walk(r, ctx, true)
}

/// Like [`read`], with the same rules and errors, but strings, binary data and user properties are only
/// validated, not kept: their fields stay empty. Numeric values are kept.
pub(crate) fn check(r: &mut Reader, ctx: Context) -> Result<Props, DecodeError> {
    walk(r, ctx, false)
}

fn walk(r: &mut Reader, ctx: Context, keep: bool) -> Result<Props, DecodeError> {
    use DecodeError::{Malformed, ProtocolError};
    let len = r.varint()?;
    if len > r.remaining() {
        return Err(Malformed("property length exceeds the packet"));
    }
    // A sub-reader makes a property that runs past the declared length fail as short, instead of
    // silently eating the fields after it.
    let mut p = Reader::new(r.take(len)?);
    let mut props = Props::default();
    let mut seen: u64 = 0;
    while p.remaining() > 0 {
        // Identifiers are Variable Byte Integers, but all defined ones fit in one byte: a continuation bit
        // means an unknown identifier, which `allows` rejects.
        let id = p.u8()?;
        if id == SUBSCRIPTION_IDENTIFIER && ctx == Context::Publish {
            return Err(ProtocolError("Subscription Identifier in a PUBLISH from a client"));
        }
        if !ctx.allows(id) {
            return Err(Malformed("property not allowed in this packet"));
        }
        if id != USER_PROPERTY {
            // `allows` admitted only identifiers below 64.
            let bit = 1u64 << id;
            if seen & bit != 0 {
                return Err(ProtocolError("property appears more than once"));
            }
            seen |= bit;
        }
        match id {
            PAYLOAD_FORMAT_INDICATOR => props.payload_format_indicator = Some(zero_or_one(&mut p)?),
            MESSAGE_EXPIRY_INTERVAL => props.message_expiry_interval = Some(p.u32()?),
            CONTENT_TYPE => props.content_type = text(&mut p, keep)?,
            RESPONSE_TOPIC => {
                let (valid, t) = p.with_str(|t| (topic::valid_name(t), keep.then(|| t.to_owned())))?;
                if !valid {
                    return Err(ProtocolError("Response Topic is not a valid topic name"));
                }
                props.response_topic = t;
            }
            CORRELATION_DATA => props.correlation_data = binary(&mut p, keep)?,
            SUBSCRIPTION_IDENTIFIER => {
                let v = p.varint()?;
                if v == 0 {
                    return Err(ProtocolError("Subscription Identifier 0"));
                }
                // A four-byte Variable Byte Integer is below 2^28, so it fits.
                props.subscription_identifier = Some(v as u32);
            }
            SESSION_EXPIRY_INTERVAL => props.session_expiry_interval = Some(p.u32()?),
            AUTHENTICATION_METHOD => props.authentication_method = text(&mut p, keep)?,
            AUTHENTICATION_DATA => props.authentication_data = binary(&mut p, keep)?,
            REQUEST_PROBLEM_INFORMATION => props.request_problem_information = Some(zero_or_one(&mut p)?),
            WILL_DELAY_INTERVAL => props.will_delay_interval = Some(p.u32()?),
            REQUEST_RESPONSE_INFORMATION => props.request_response_information = Some(zero_or_one(&mut p)?),
            SERVER_REFERENCE => props.server_reference = text(&mut p, keep)?,
            REASON_STRING => props.reason_string = text(&mut p, keep)?,
            RECEIVE_MAXIMUM => props.receive_maximum = Some(non_zero_u16(&mut p, "Receive Maximum 0")?),
            TOPIC_ALIAS_MAXIMUM => props.topic_alias_maximum = Some(p.u16()?),
            TOPIC_ALIAS => {
                props.topic_alias = match p.u16()? {
                    0 => return Err(DecodeError::TopicAliasInvalid),
                    alias => Some(alias),
                }
            }
            MAXIMUM_PACKET_SIZE => {
                let v = p.u32()?;
                if v == 0 {
                    return Err(ProtocolError("Maximum Packet Size 0"));
                }
                props.maximum_packet_size = Some(v);
            }
            USER_PROPERTY => {
                let name = text(&mut p, keep)?;
                let value = text(&mut p, keep)?;
                if let (Some(name), Some(value)) = (name, value) {
                    props.user_properties.push((name, value));
                }
            }
            _ => return Err(Malformed("property not allowed in this packet")),
        }
    }
    Ok(props)
}

/// A UTF-8 string, always validated, allocated only when `keep`.
fn text(p: &mut Reader, keep: bool) -> Result<Option<String>, DecodeError> {
    p.with_str(|s| keep.then(|| s.to_owned()))
}

/// Binary data, always bounds-checked, kept (as a slice of the frame) only when `keep`.
fn binary(p: &mut Reader, keep: bool) -> Result<Option<Bytes>, DecodeError> {
    let b = p.binary()?;
    Ok(keep.then_some(b))
}

fn zero_or_one(p: &mut Reader) -> Result<u8, DecodeError> {
    match p.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::ProtocolError("property value other than 0 or 1")),
    }
}

fn non_zero_u16(p: &mut Reader, why: &'static str) -> Result<u16, DecodeError> {
    match p.u16()? {
        0 => Err(DecodeError::ProtocolError(why)),
        v => Ok(v),
    }
}
