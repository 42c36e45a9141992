//! Decode server-to-client packets, for the node's own MQTT clients (bridges to other brokers).
//!
//! The server side (`decode.rs`) checks every rule a server must enforce on a client; a client of another
//! broker needs less, and mqttbytes reads every server packet of 3.1.1 and 5.0, so this maps its packets to
//! the one packet model. The remote is not trusted: every error closes that connection only, and frames are
//! bounded by the maximum packet size before they are buffered.

use std::sync::Arc;

use bytes::BytesMut;
use mqttbytes::{v4, v5};

use crate::frame::read_varint;
use crate::{
    Ack, ConnAck, ConnAckProperties, DecodeError, Disconnect, Packet, Protocol, Publish, PublishProperties, QoS,
    SubAck, UnsubAck,
};

/// A decoder for what a server sends to a client speaking `protocol`.
#[derive(Debug)]
pub struct ClientDecoder {
    protocol: Protocol,
    max_packet_size: usize,
}

impl ClientDecoder {
    /// Frames larger than `max_packet_size` bytes (fixed header included) are refused.
    pub fn new(protocol: Protocol, max_packet_size: usize) -> ClientDecoder {
        ClientDecoder {
            protocol,
            max_packet_size,
        }
    }

    /// One packet from the front of `buf`; `Ok(None)` when more bytes are needed (nothing consumed).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&byte1) = buf.first() else {
            return Ok(None);
        };
        let Some((remaining, len_len)) = read_varint(&buf[1..])? else {
            return Ok(None);
        };
        let size = 1 + len_len + remaining;
        if size > self.max_packet_size {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        if buf.len() < size {
            return Ok(None);
        }
        // DISCONNECT without a body (3.x, or 5.0's short form) is not read by mqttbytes.
        if byte1 == 0xE0 && remaining == 0 {
            let _ = buf.split_to(size);
            return Ok(Some(Packet::Disconnect(Disconnect::default())));
        }
        let mut frame = buf.split_to(size);
        let malformed = |_| DecodeError::Malformed("packet from the server could not be read");
        let packet = if self.protocol.is_v5() {
            from_v5(v5::read(&mut frame, self.max_packet_size).map_err(malformed)?)
        } else {
            from_v4(v4::read(&mut frame, self.max_packet_size).map_err(malformed)?)
        };
        packet.map(Some)
    }
}

fn qos(q: mqttbytes::QoS) -> QoS {
    match q {
        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn checked_topic(topic: String) -> Result<Arc<str>, DecodeError> {
    if topic.contains(['+', '#', '\0']) {
        return Err(DecodeError::TopicNameInvalid);
    }
    Ok(Arc::from(topic))
}

fn from_v4(packet: v4::Packet) -> Result<Packet, DecodeError> {
    use v4::Packet as P;
    Ok(match packet {
        P::ConnAck(c) => Packet::ConnAck(Box::new(ConnAck {
            session_present: c.session_present,
            reason: match c.code {
                v4::ConnectReturnCode::Success => 0,
                v4::ConnectReturnCode::RefusedProtocolVersion => crate::reason::UNSUPPORTED_PROTOCOL_VERSION,
                v4::ConnectReturnCode::BadClientId => crate::reason::CLIENT_IDENTIFIER_NOT_VALID,
                v4::ConnectReturnCode::ServiceUnavailable => crate::reason::SERVER_UNAVAILABLE,
                v4::ConnectReturnCode::BadUserNamePassword => crate::reason::BAD_USER_NAME_OR_PASSWORD,
                v4::ConnectReturnCode::NotAuthorized => crate::reason::NOT_AUTHORIZED,
            },
            properties: ConnAckProperties::default(),
        })),
        P::Publish(p) => Packet::Publish(Publish {
            dup: p.dup,
            qos: qos(p.qos),
            retain: p.retain,
            topic: checked_topic(p.topic)?,
            pkid: p.pkid,
            payload: p.payload,
            properties: PublishProperties::default(),
        }),
        P::PubAck(a) => Packet::PubAck(Ack::new(a.pkid)),
        P::PubRec(a) => Packet::PubRec(Ack::new(a.pkid)),
        P::PubRel(a) => Packet::PubRel(Ack::new(a.pkid)),
        P::PubComp(a) => Packet::PubComp(Ack::new(a.pkid)),
        P::SubAck(s) => Packet::SubAck(SubAck {
            pkid: s.pkid,
            reasons: (s.return_codes.iter())
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(q) => *q as u8,
                    v4::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
            ..SubAck::default()
        }),
        P::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            ..UnsubAck::default()
        }),
        P::PingResp => Packet::PingResp,
        P::Disconnect => Packet::Disconnect(Disconnect::default()),
        _ => return Err(DecodeError::ProtocolError("packet type only a client sends")),
    })
}

fn from_v5(packet: v5::Packet) -> Result<Packet, DecodeError> {
    use v5::Packet as P;
    Ok(match packet {
        P::ConnAck(c) => {
            let mut properties = ConnAckProperties::default();
            if let Some(p) = c.properties {
                properties.session_expiry_interval = p.session_expiry_interval;
                properties.receive_maximum = p.receive_max;
                properties.maximum_qos = p.max_qos;
                properties.retain_available = p.retain_available.map(|v| v != 0);
                properties.maximum_packet_size = p.max_packet_size;
                properties.assigned_client_identifier = p.assigned_client_identifier;
                properties.topic_alias_maximum = p.topic_alias_max;
                properties.reason_string = p.reason_string;
                properties.server_keep_alive = p.server_keep_alive;
                properties.server_reference = p.server_reference;
            }
            Packet::ConnAck(Box::new(ConnAck {
                session_present: c.session_present,
                reason: c.code as u8,
                properties,
            }))
        }
        P::Publish(p) => {
            let properties = match p.properties {
                Some(q) => PublishProperties {
                    payload_format_indicator: q.payload_format_indicator,
                    message_expiry_interval: q.message_expiry_interval,
                    topic_alias: q.topic_alias,
                    response_topic: q.response_topic,
                    correlation_data: q.correlation_data,
                    user_properties: q.user_properties,
                    subscription_identifiers: q.subscription_identifiers.into_iter().map(|i| i as u32).collect(),
                    content_type: q.content_type,
                },
                None => PublishProperties::default(),
            };
            Packet::Publish(Publish {
                dup: p.dup,
                qos: qos(p.qos),
                retain: p.retain,
                topic: checked_topic(p.topic)?,
                pkid: p.pkid,
                payload: p.payload,
                properties,
            })
        }
        P::PubAck(a) => Packet::PubAck(Ack::with_reason(a.pkid, a.reason as u8)),
        P::PubRec(a) => Packet::PubRec(Ack::with_reason(a.pkid, a.reason as u8)),
        P::PubRel(a) => Packet::PubRel(Ack::with_reason(a.pkid, a.reason as u8)),
        P::PubComp(a) => Packet::PubComp(Ack::with_reason(a.pkid, a.reason as u8)),
        P::SubAck(s) => Packet::SubAck(SubAck {
            pkid: s.pkid,
            reasons: s.return_codes.iter().map(|c| *c as u8).collect(),
            reason_string: s.properties.and_then(|p| p.reason_string),
            ..SubAck::default()
        }),
        P::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            pkid: u.pkid,
            reasons: u.reasons.iter().map(|r| *r as u8).collect(),
            ..UnsubAck::default()
        }),
        P::PingResp => Packet::PingResp,
        P::Disconnect(d) => {
            let mut out = Disconnect::with_reason(d.reason_code as u8);
            if let Some(p) = d.properties {
                out.reason_string = p.reason_string;
                out.server_reference = p.server_reference;
            }
            Packet::Disconnect(out)
        }
        _ => return Err(DecodeError::ProtocolError("packet type only a client sends")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    fn round_trip(packet: Packet, protocol: Protocol) -> Packet {
        let mut buf = BytesMut::new();
        encode(&packet, protocol, &mut buf).unwrap();
        let whole = buf.len();
        let mut decoder = ClientDecoder::new(protocol, 1 << 20);
        // Byte by byte: nothing is consumed until the frame is whole.
        let mut partial = BytesMut::from(&buf[..whole - 1]);
        assert_eq!(decoder.decode(&mut partial).unwrap(), None);
        assert_eq!(partial.len(), whole - 1);
        let out = decoder.decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn reads_what_a_server_sends_in_both_levels() {
        for protocol in [Protocol::V3_1_1, Protocol::V5] {
            let connack = Packet::ConnAck(Box::new(ConnAck {
                session_present: true,
                reason: 0,
                properties: ConnAckProperties::default(),
            }));
            assert_eq!(round_trip(connack.clone(), protocol), connack);
            let publish = Packet::Publish(Publish {
                qos: QoS::ExactlyOnce,
                topic: "a/b".into(),
                pkid: 7,
                payload: "x".into(),
                ..Publish::default()
            });
            assert_eq!(round_trip(publish.clone(), protocol), publish);
            let suback = Packet::SubAck(SubAck {
                pkid: 3,
                reasons: vec![1, 0x80],
                ..SubAck::default()
            });
            assert_eq!(round_trip(suback.clone(), protocol), suback);
            assert_eq!(
                round_trip(Packet::PubAck(Ack::new(9)), protocol),
                Packet::PubAck(Ack::new(9))
            );
            assert_eq!(round_trip(Packet::PingResp, protocol), Packet::PingResp);
        }
    }

    #[test]
    fn refuses_oversized_frames_before_buffering_them() {
        let mut decoder = ClientDecoder::new(Protocol::V5, 100);
        let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0x03][..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(DecodeError::PacketTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = ClientDecoder::new(Protocol::V5, 1000);
        for bytes in [
            &[0x20, 0x01, 0x00][..],
            &[0x90, 0x02, 0x00, 0x01],
            &[0x30, 0x02, 0xFF, 0xFF],
        ] {
            let mut buf = BytesMut::from(bytes);
            assert!(decoder.decode(&mut buf).is_err(), "{bytes:?}");
        }
    }
}
