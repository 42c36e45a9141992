//! CONNECT for all three levels, both directions.
//!
//! CONNECT is where the level is learned, so it cannot be handed to a level-specific parser: mqttbytes knows
//! no 3.1, reads a 5.0 CONNECT as 3.1.1 without complaint, and reads passwords as UTF-8. Parsing it here
//! from the protocol name and level onwards keeps level detection and every flag rule in one place.

use bytes::Bytes;

use crate::encode::message_properties;
use crate::reader::Reader;
use crate::sink::{properties, EncodeResult, Sink};
use crate::v5_props::{self, Context};
use crate::{topic, Connect, ConnectProperties, DecodeError, Protocol, PublishProperties, QoS, Will};

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

/// Decodes a CONNECT body (everything after the fixed header).
pub(crate) fn decode(body: Bytes) -> Result<Connect, DecodeError> {
    use DecodeError::{Malformed, ProtocolError};
    let mut r = Reader::new(body);
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQIsdp", 3) => Protocol::V3_1,
        (b"MQTT", 4) => Protocol::V3_1_1,
        (b"MQTT", 5) => Protocol::V5,
        _ => return Err(DecodeError::UnsupportedProtocol),
    };
    let flags = r.u8()?;
    if flags & RESERVED != 0 {
        return Err(Malformed("CONNECT reserved flag set"));
    }
    let has_will = flags & WILL != 0;
    let will_qos = QoS::from_u8((flags >> WILL_QOS_SHIFT) & 0b11).ok_or(Malformed("will QoS 3"))?;
    let will_retain = flags & WILL_RETAIN != 0;
    if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(Malformed("will QoS or retain set without a will"));
    }
    let has_username = flags & USERNAME != 0;
    let has_password = flags & PASSWORD != 0;
    // 5.0 dropped this rule so that a password can carry a credential without a user name.
    if has_password && !has_username && !protocol.is_v5() {
        return Err(Malformed("password without user name"));
    }
    let keep_alive = r.u16()?;

    let mut properties = ConnectProperties::default();
    if protocol.is_v5() {
        let p = v5_props::read(&mut r, Context::Connect)?;
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(ProtocolError("Authentication Data without Authentication Method"));
        }
        properties = ConnectProperties {
            session_expiry_interval: p.session_expiry_interval,
            receive_maximum: p.receive_maximum,
            maximum_packet_size: p.maximum_packet_size,
            topic_alias_maximum: p.topic_alias_maximum,
            request_response_information: p.request_response_information,
            request_problem_information: p.request_problem_information,
            user_properties: p.user_properties,
            authentication_method: p.authentication_method,
            authentication_data: p.authentication_data,
        };
    }

    let client_id = r.string()?;
    let will = if has_will {
        let (delay_interval, will_properties) = if protocol.is_v5() {
            let p = v5_props::read(&mut r, Context::Will)?;
            let props = PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: p.message_expiry_interval,
                response_topic: p.response_topic,
                correlation_data: p.correlation_data,
                user_properties: p.user_properties,
                content_type: p.content_type,
                ..PublishProperties::default()
            };
            (p.will_delay_interval, props)
        } else {
            (None, PublishProperties::default())
        };
        let topic = r.string()?;
        if !topic::valid_name(&topic) {
            return Err(DecodeError::TopicNameInvalid);
        }
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            delay_interval,
            properties: will_properties,
        })
    } else {
        None
    };
    let username = if has_username { Some(r.string()?) } else { None };
    let password = if has_password { Some(r.binary()?) } else { None };
    r.finish()?;

    Ok(Connect {
        protocol: Some(protocol),
        clean_start: flags & CLEAN_START != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

/// Writes a CONNECT body for `protocol` (the `protocol` field of `c` is not consulted). Fields 3.x cannot
/// carry (properties) are left out.
pub(crate) fn encode_body<S: Sink>(s: &mut S, c: &Connect, protocol: Protocol) -> EncodeResult {
    match protocol {
        Protocol::V3_1 => s.string("MQIsdp")?,
        Protocol::V3_1_1 | Protocol::V5 => s.string("MQTT")?,
    }
    s.u8(protocol.level());
    let mut flags = 0;
    if c.clean_start {
        flags |= CLEAN_START;
    }
    if let Some(w) = &c.will {
        flags |= WILL | (w.qos as u8) << WILL_QOS_SHIFT;
        if w.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    s.u8(flags);
    s.u16(c.keep_alive);
    if protocol.is_v5() {
        properties!(s, |p| connect_properties(p, &c.properties))?;
    }
    s.string(&c.client_id)?;
    if let Some(w) = &c.will {
        if protocol.is_v5() {
            properties!(s, |p| will_properties(p, w))?;
        }
        s.string(&w.topic)?;
        s.binary(&w.payload)?;
    }
    if let Some(u) = &c.username {
        s.string(u)?;
    }
    if let Some(pw) = &c.password {
        s.binary(pw)?;
    }
    Ok(())
}

fn connect_properties<S: Sink>(s: &mut S, p: &ConnectProperties) -> EncodeResult {
    use v5_props::*;
    s.prop_u32(SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    s.prop_u16(RECEIVE_MAXIMUM, p.receive_maximum);
    s.prop_u32(MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    s.prop_u16(TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    s.prop_u8(REQUEST_RESPONSE_INFORMATION, p.request_response_information);
    s.prop_u8(REQUEST_PROBLEM_INFORMATION, p.request_problem_information);
    s.user_props(&p.user_properties)?;
    s.prop_str(AUTHENTICATION_METHOD, p.authentication_method.as_deref())?;
    s.prop_bin(AUTHENTICATION_DATA, p.authentication_data.as_deref())
}

fn will_properties<S: Sink>(s: &mut S, w: &Will) -> EncodeResult {
    s.prop_u32(v5_props::WILL_DELAY_INTERVAL, w.delay_interval);
    message_properties(s, &w.properties, w.properties.message_expiry_interval)
}
