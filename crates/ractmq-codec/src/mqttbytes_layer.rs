//! The packets whose bodies mqttbytes parses: PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP and SUBSCRIBE at
//! every level, UNSUBSCRIBE before 5.0.
//!
//! Each goes through two steps:
//! 1. A validation walk over the raw body ([`Reader`]): everything mqttbytes does not check (U+0000 and
//!    UTF-8 rules, topic names, packet identifier 0, subscription option reserved bits, an empty filter
//!    list, trailing bytes after an ack, and every 5.0 property rule via [`v5_props::check`]). It allocates
//!    nothing and decides whether the frame is accepted, and with which error it is refused.
//! 2. mqttbytes' `read(FixedHeader, Bytes)` for that packet and level, whose struct is converted into ours.
//!
//! Step 1 also makes sure mqttbytes cannot misread the frame: its property loops trust the declared lengths,
//! so a frame is only handed to it once every field is known to end where it says. After step 1 accepts a
//! frame mqttbytes has no reason left to refuse it; should it do so anyway, its error is mapped by
//! [`from_mqttbytes`] to a message starting with "mqttbytes", which the fuzz tests look for.
//!
//! The `FixedHeader` is built with `FixedHeader::new` from the header the decoder has already read and
//! checked, rather than with `mqttbytes::check` or `mqttbytes::v{4,5}::read`: both would parse the remaining
//! length a second time, and `read` would also dispatch on the packet type again (and treat every
//! zero-length body but PINGREQ/PINGRESP/DISCONNECT as an error). `FixedHeader::new` costs nothing.
//!
//! The readers are given the whole frame (they skip the fixed header themselves), so a PUBLISH payload
//! and binary properties are slices of the received buffer, never copies. The one copy added by this
//! layering is the topic: mqttbytes returns it as a `String`, which becomes the `Arc<str>` the core keeps. A
//! 3.x PUBLISH, the most frequent packet, avoids it: the walk reads it whole (see [`publish_v3`]).

use std::sync::Arc;

use bytes::Bytes;
use mqttbytes::{v4, v5, FixedHeader};

use crate::decode::{pkid, reason_in, PUBACK_REASONS, PUBREL_REASONS};
use crate::frame::Kind;
use crate::reader::Reader;
use crate::v5_props::{self, Context};
use crate::{
    Ack, DecodeError, Publish, PublishProperties, QoS, RetainHandling, Subscribe, SubscriptionRequest, Unsubscribe,
};

type Result<T> = std::result::Result<T, DecodeError>;

/// A frame that passed the fixed-header checks: the header mqttbytes needs, the whole frame for its readers
/// and the body alone for the validation walk.
pub(crate) struct Frame {
    pub(crate) header: FixedHeader,
    pub(crate) byte1: u8,
    pub(crate) whole: Bytes,
    pub(crate) body: Bytes,
}

impl Frame {
    /// `whole` is the complete frame; its fixed header is `header_len` bytes.
    pub(crate) fn new(byte1: u8, whole: Bytes, header_len: usize) -> Frame {
        let body = whole.slice(header_len..);
        Frame {
            header: FixedHeader::new(byte1, header_len - 1, body.len()),
            byte1,
            whole,
            body,
        }
    }
}

/// `last_topic`: the connection's last 3.x PUBLISH topic (see [`publish_v3`]).
pub(crate) fn publish(f: Frame, v5: bool, last_topic: &mut Option<Arc<str>>) -> Result<Publish> {
    if !v5 {
        return publish_v3(f, last_topic);
    }
    check_publish(f.byte1, f.body)?;
    let p = v5::Publish::read(f.header, f.whole).map_err(from_mqttbytes)?;
    let properties = match p.properties {
        Some(q) => PublishProperties {
            payload_format_indicator: q.payload_format_indicator,
            message_expiry_interval: q.message_expiry_interval,
            topic_alias: q.topic_alias,
            response_topic: q.response_topic,
            correlation_data: q.correlation_data,
            user_properties: q.user_properties,
            // A client may not send any (`check_publish` refused them), so this stays empty.
            subscription_identifiers: q
                .subscription_identifiers
                .into_iter()
                .map(subscription_identifier)
                .collect::<Result<_>>()?,
            content_type: q.content_type,
        },
        None => PublishProperties::default(),
    };
    Ok(Publish {
        dup: p.dup,
        qos: qos(p.qos),
        retain: p.retain,
        topic: Arc::from(p.topic),
        pkid: p.pkid,
        payload: p.payload,
        properties,
    })
}

/// A 3.x PUBLISH is read by the validation walk itself, the one exception to the two steps: its fields (topic,
/// packet identifier, payload) are all the walk reads anyway, and mqttbytes' reader would add, on the path of
/// every message, a second UTF-8 check of the topic and a `String` copied once more into the `Arc<str>`. The
/// checks and their order are those `check_publish` made for 3.x (3.x names no alias: an empty topic is invalid); the differential and fuzz tests hold the
/// result to mqttbytes'.
///
/// A client mostly publishes to one topic again and again (a sensor, a bench publisher): a topic equal to the
/// previous one shares its `Arc<str>` instead of allocating its own, and is compared as bytes, not checked
/// for UTF-8 again. Besides the allocation, that saves the subscriber's side freeing memory another thread
/// allocated, which with the system allocator cost more than the allocation itself.
fn publish_v3(f: Frame, last_topic: &mut Option<Arc<str>>) -> Result<Publish> {
    let mut r = Reader::new(f.body);
    let (topic, wildcard) = match last_topic {
        // Checked when it was first read.
        Some(last) if r.skip_if_str(last) => (last.clone(), false),
        _ => r.with_str(|t| (Arc::<str>::from(t), has_wildcard(t)))?,
    };
    if wildcard {
        return Err(DecodeError::TopicNameInvalid);
    }
    // The fixed header's flags were checked: QoS 3 never gets here.
    let qos = QoS::from_u8((f.byte1 >> 1) & 0b11).unwrap_or(QoS::AtMostOnce);
    let pkid = if qos == QoS::AtMostOnce { 0 } else { pkid(&mut r)? };
    if topic.is_empty() {
        return Err(DecodeError::TopicNameInvalid);
    }
    if !last_topic.as_ref().is_some_and(|last| Arc::ptr_eq(last, &topic)) {
        *last_topic = Some(topic.clone());
    }
    Ok(Publish {
        dup: f.byte1 & 0x08 != 0,
        qos,
        retain: f.byte1 & 0x01 != 0,
        topic,
        pkid,
        payload: r.rest(),
        properties: PublishProperties::default(),
    })
}

/// A topic name may not hold `+` or `#`. Scanned as bytes (both are ASCII, and no other character's UTF-8
/// contains their bytes): `str::contains` with a `char` set decodes every character, on every PUBLISH.
fn has_wildcard(topic: &str) -> bool {
    topic.bytes().any(|b| b == b'+' || b == b'#')
}

/// The raw-byte rules of a 5.0 PUBLISH that mqttbytes lacks. The QoS and DUP flags were checked with the fixed
/// header.
fn check_publish(byte1: u8, body: Bytes) -> Result<()> {
    let mut r = Reader::new(body);
    let (empty, wildcard) = r.with_str(|t| (t.is_empty(), has_wildcard(t)))?;
    if wildcard {
        return Err(DecodeError::TopicNameInvalid);
    }
    if (byte1 >> 1) & 0b11 != 0 {
        pkid(&mut r)?;
    }
    let topic_alias = v5_props::check(&mut r, Context::Publish)?.topic_alias;
    // 5.0 lets an alias stand in for the name and calls its absence a Protocol Error.
    if empty && topic_alias.is_none() {
        return Err(DecodeError::ProtocolError("empty topic name without a Topic Alias"));
    }
    // The rest is the payload, which MQTT leaves to the application.
    Ok(())
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (`kind`).
pub(crate) fn ack(kind: Kind, f: Frame, v5: bool) -> Result<Ack> {
    let reasons = match kind {
        Kind::PubAck | Kind::PubRec => PUBACK_REASONS,
        _ => PUBREL_REASONS,
    };
    check_ack(f.body, v5, reasons)?;
    let (h, w) = (f.header, f.whole);
    if !v5 {
        let pkid = match kind {
            Kind::PubAck => v4::PubAck::read(h, w).map(|a| a.pkid),
            Kind::PubRec => v4::PubRec::read(h, w).map(|a| a.pkid),
            Kind::PubRel => v4::PubRel::read(h, w).map(|a| a.pkid),
            _ => v4::PubComp::read(h, w).map(|a| a.pkid),
        };
        return Ok(Ack::new(pkid.map_err(from_mqttbytes)?));
    }
    // The four 5.0 types differ only in their reason enum (each `repr(u8)` with the wire values) and the
    // name of their identical property struct.
    macro_rules! v5_ack {
        ($t:ty) => {{
            let a = <$t>::read(h, w).map_err(from_mqttbytes)?;
            let (reason_string, user_properties) = a
                .properties
                .map_or((None, Vec::new()), |p| (p.reason_string, p.user_properties));
            Ack {
                pkid: a.pkid,
                reason: a.reason as u8,
                reason_string,
                user_properties,
            }
        }};
    }
    Ok(match kind {
        Kind::PubAck => v5_ack!(v5::PubAck),
        Kind::PubRec => v5_ack!(v5::PubRec),
        Kind::PubRel => v5_ack!(v5::PubRel),
        _ => v5_ack!(v5::PubComp),
    })
}

/// In 5.0 the reason code and the properties may each be left off; 3.x has the packet identifier alone.
fn check_ack(body: Bytes, v5: bool, reasons: &[u8]) -> Result<()> {
    let mut r = Reader::new(body);
    pkid(&mut r)?;
    if v5 && r.remaining() > 0 {
        reason_in(r.u8()?, reasons)?;
        if r.remaining() > 0 {
            v5_props::check(&mut r, Context::Ack)?;
        }
    }
    r.finish()
}

pub(crate) fn subscribe(f: Frame, v5: bool) -> Result<Subscribe> {
    check_subscribe(f.body, v5)?;
    if v5 {
        let s = v5::Subscribe::read(f.header, f.whole).map_err(from_mqttbytes)?;
        let (id, user_properties) = s.properties.map_or((None, Vec::new()), |p| (p.id, p.user_properties));
        let filters = s
            .filters
            .into_iter()
            .map(|f| SubscriptionRequest {
                filter: f.path,
                qos: qos(f.qos),
                no_local: f.nolocal,
                retain_as_published: f.preserve_retain,
                retain_handling: match f.retain_forward_rule {
                    v5::RetainForwardRule::OnEverySubscribe => RetainHandling::SendAtSubscribe,
                    v5::RetainForwardRule::OnNewSubscribe => RetainHandling::SendIfNew,
                    v5::RetainForwardRule::Never => RetainHandling::DoNotSend,
                },
            })
            .collect();
        Ok(Subscribe {
            pkid: s.pkid,
            filters,
            subscription_identifier: id.map(subscription_identifier).transpose()?,
            user_properties,
        })
    } else {
        let s = v4::Subscribe::read(f.header, f.whole).map_err(from_mqttbytes)?;
        let filters = s
            .filters
            .into_iter()
            .map(|f| SubscriptionRequest {
                filter: f.path,
                qos: qos(f.qos),
                ..SubscriptionRequest::default()
            })
            .collect();
        Ok(Subscribe {
            pkid: s.pkid,
            filters,
            ..Subscribe::default()
        })
    }
}

fn check_subscribe(body: Bytes, v5: bool) -> Result<()> {
    use DecodeError::Malformed;
    let mut r = Reader::new(body);
    pkid(&mut r)?;
    if v5 {
        v5_props::check(&mut r, Context::Subscribe)?;
    }
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    let mut any = false;
    while r.remaining() > 0 {
        // Filters are not judged here: the core answers an invalid one in its SUBACK and keeps the rest.
        r.with_str(|_| ())?;
        let options = r.u8()?;
        if options & reserved != 0 {
            return Err(Malformed("subscription options reserved bits set"));
        }
        // 5.0 calls these values a Protocol Error (§3.8.3.1); 3.1.1 a malformed packet.
        let invalid = |why| {
            if v5 {
                DecodeError::ProtocolError(why)
            } else {
                Malformed(why)
            }
        };
        if options & 0b11 == 3 {
            return Err(invalid("subscription QoS 3"));
        }
        if (options >> 4) & 0b11 == 3 {
            return Err(invalid("retain handling 3"));
        }
        any = true;
    }
    if !any {
        return Err(DecodeError::ProtocolError("SUBSCRIBE without topic filters"));
    }
    Ok(())
}

/// 3.1 and 3.1.1 only: mqttbytes' 5.0 UNSUBSCRIBE reader has a leftover `dbg!` (decode.rs parses that one).
pub(crate) fn unsubscribe_v3(f: Frame) -> Result<Unsubscribe> {
    check_unsubscribe_v3(f.body)?;
    let u = v4::Unsubscribe::read(f.header, f.whole).map_err(from_mqttbytes)?;
    Ok(Unsubscribe {
        pkid: u.pkid,
        filters: u.topics,
        ..Unsubscribe::default()
    })
}

fn check_unsubscribe_v3(body: Bytes) -> Result<()> {
    let mut r = Reader::new(body);
    pkid(&mut r)?;
    if r.remaining() == 0 {
        return Err(DecodeError::ProtocolError("UNSUBSCRIBE without topic filters"));
    }
    while r.remaining() > 0 {
        r.with_str(|_| ())?;
    }
    Ok(())
}

fn qos(q: mqttbytes::QoS) -> QoS {
    match q {
        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// mqttbytes keeps subscription identifiers as `usize`; a four-byte Variable Byte Integer fits in `u32`.
fn subscription_identifier(id: usize) -> Result<u32> {
    u32::try_from(id).map_err(|_| DecodeError::Malformed("mqttbytes: subscription identifier too large"))
}

/// What an mqttbytes refusal means for the connection. The validation walk runs first and refuses all of
/// these itself, so reaching this is a disagreement between the two; the "mqttbytes" prefix makes it
/// visible. Every variant is listed so that a new one cannot slip through unclassified.
pub(crate) fn from_mqttbytes(e: mqttbytes::Error) -> DecodeError {
    use mqttbytes::Error as E;
    use DecodeError::{Malformed, ProtocolError};
    match e {
        E::PacketIdZero => ProtocolError("mqttbytes: packet identifier 0"),
        E::SubscriptionIdZero => ProtocolError("mqttbytes: subscription identifier 0"),
        E::InvalidReason(_) | E::InvalidConnectReturnCode(_) | E::InvalidSubscribeReasonCode(_) => {
            ProtocolError("mqttbytes: reason code not valid for this packet")
        }
        E::NotConnect(_) => ProtocolError("mqttbytes: first packet is not CONNECT"),
        E::UnexpectedConnect => ProtocolError("mqttbytes: second CONNECT"),
        E::InvalidProtocol | E::InvalidProtocolLevel(_) => ProtocolError("mqttbytes: unsupported protocol"),
        E::TopicNotUtf8 => Malformed("mqttbytes: string is not valid UTF-8"),
        E::InvalidQoS(_) => Malformed("mqttbytes: QoS 3"),
        E::InvalidRetainForwardRule(_) => Malformed("mqttbytes: retain handling 3"),
        E::InvalidPropertyType(_) => Malformed("mqttbytes: property not allowed in this packet"),
        E::InvalidPacketType(_) => Malformed("mqttbytes: invalid packet type"),
        E::IncorrectPacketFormat
        | E::MalformedPacket
        | E::BoundaryCrossed(_)
        | E::InsufficientBytes(_)
        | E::PayloadSizeIncorrect
        | E::PayloadRequired => Malformed("mqttbytes: packet shorter than its fields"),
        E::MalformedRemainingLength => Malformed("mqttbytes: malformed variable byte integer"),
        E::PayloadTooLong | E::PayloadSizeLimitExceeded(_) => Malformed("mqttbytes: packet too long"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(byte1: u8, body: &[u8]) -> Frame {
        let mut whole = vec![byte1, body.len() as u8];
        whole.extend_from_slice(body);
        Frame::new(byte1, Bytes::from(whole), 2)
    }

    #[test]
    fn fixed_header_matches_what_mqttbytes_reads() {
        let whole = [0x32u8, 5, 0, 1, b't', 0, 9];
        let f = Frame::new(0x32, Bytes::copy_from_slice(&whole), 2);
        assert_eq!(Ok(f.header), mqttbytes::check(whole.iter(), 1024));
        assert_eq!(&f.body[..], &whole[2..]);
    }

    #[test]
    fn mqttbytes_errors_map_to_decode_errors() {
        use mqttbytes::Error as E;
        assert!(matches!(
            from_mqttbytes(E::PacketIdZero),
            DecodeError::ProtocolError(m) if m.starts_with("mqttbytes")
        ));
        assert!(matches!(
            from_mqttbytes(E::InvalidReason(3)),
            DecodeError::ProtocolError(_)
        ));
        for e in [
            E::MalformedPacket,
            E::BoundaryCrossed(9),
            E::TopicNotUtf8,
            E::InsufficientBytes(1),
            E::InvalidPropertyType(0x7F),
        ] {
            assert!(
                matches!(from_mqttbytes(e), DecodeError::Malformed(m) if m.starts_with("mqttbytes")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn payload_is_a_slice_of_the_frame() {
        let f = frame(0x30, &[0, 1, b't', b'p', b'a', b'y']);
        let start = f.whole.as_ptr() as usize;
        let p = publish(f, false, &mut None).unwrap();
        assert_eq!(&p.payload[..], b"pay");
        assert_eq!(p.payload.as_ptr() as usize, start + 5);
    }

    #[test]
    fn a_repeated_3x_topic_shares_the_last_ones_arc() {
        let mut last = None;
        let a = publish(frame(0x30, &[0, 1, b't', b'x']), false, &mut last).unwrap();
        let b = publish(frame(0x30, &[0, 1, b't', b'y']), false, &mut last).unwrap();
        let c = publish(frame(0x30, &[0, 1, b'u']), false, &mut last).unwrap();
        assert!(Arc::ptr_eq(&a.topic, &b.topic));
        assert_eq!((&*c.topic, &c.payload[..]), ("u", &b""[..]));
        assert_eq!(
            publish(frame(0x30, &[0, 1, b'#']), false, &mut last).err(),
            Some(DecodeError::TopicNameInvalid)
        );
        let d = publish(frame(0x30, &[0, 1, b'u', b'z']), false, &mut last).unwrap();
        assert!(
            Arc::ptr_eq(&c.topic, &d.topic),
            "a refused PUBLISH leaves the last topic as it was"
        );
        let e = publish(frame(0x30, &[0, 1, b'v', b'u']), false, &mut last).unwrap();
        assert_eq!((&*e.topic, &e.payload[..]), ("v", &b"u"[..]));
        assert_eq!(
            publish(frame(0x30, &[0, 2, b'v']), false, &mut last).err(),
            Some(DecodeError::Malformed("packet shorter than its fields"))
        );
    }

    #[test]
    fn validated_frames_that_mqttbytes_would_misread_never_reach_it() {
        // Property length 2 covers only part of the Message Expiry Interval: mqttbytes would read the
        // interval out of the payload. The walk refuses it first, with our error.
        let f = frame(0x30, &[0, 1, b't', 2, 0x02, 0, 0, 0, 1]);
        assert_eq!(
            publish(f, true, &mut None).err(),
            Some(DecodeError::Malformed("packet shorter than its fields"))
        );
    }
}
