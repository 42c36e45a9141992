//! PUBLISH, acknowledgements, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT and AUTH from a client.

mod common;

use common::*;
use ractmq_codec::{
    Ack, Auth, DecodeError, Disconnect, Packet, Protocol, Publish, QoS, RetainHandling, Subscribe, Unsubscribe,
};

fn publish(r: Result<Packet, DecodeError>) -> Publish {
    match r {
        Ok(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

fn subscribe(r: Result<Packet, DecodeError>) -> Subscribe {
    match r {
        Ok(Packet::Subscribe(s)) => s,
        other => panic!("expected SUBSCRIBE, got {other:?}"),
    }
}

/// A 5.0 QoS 1 PUBLISH to `topic` with the given properties.
fn v5_publish(topic: &str, props: &[u8]) -> Result<Packet, DecodeError> {
    decode_at(
        Protocol::V5,
        &frame(0x32, &cat(&[&s(topic), &[0, 1], &[props.len() as u8], props, b"pl"])),
    )
}

// ---- PUBLISH ----

#[test]
fn publish_fields_are_decoded() {
    for p in V3 {
        let got = publish(decode_at(
            p,
            &frame(0x33, &cat(&[&s("a/b"), &[0x12, 0x34], b"\x00\xffdata"])),
        ));
        assert_eq!(&*got.topic, "a/b");
        assert_eq!(got.qos, QoS::AtLeastOnce);
        assert!(got.retain && !got.dup);
        assert_eq!(got.pkid, 0x1234);
        assert_eq!(&got.payload[..], b"\x00\xffdata");
        assert!(got.properties.is_empty());
    }
}

#[test]
fn v3_publish_has_no_properties_so_the_bytes_are_payload() {
    // The same bytes mean different things per level: this checks that the level learned in CONNECT is used.
    let bytes = frame(0x30, &cat(&[&s("t"), &[2, 0x01, 1]]));
    assert_eq!(&publish(decode_at(Protocol::V3_1_1, &bytes)).payload[..], &[2, 1, 1]);
    let v5 = publish(decode_at(Protocol::V5, &bytes));
    assert!(v5.payload.is_empty());
    assert_eq!(v5.properties.payload_format_indicator, Some(1));
}

#[test]
fn publish_topic_with_wildcards_is_invalid() {
    for p in ALL {
        for topic in ["a/+", "#", "a/#", "+", "a+b"] {
            let props: &[u8] = if p.is_v5() { &[0] } else { &[] };
            let r = decode_at(p, &frame(0x30, &cat(&[&s(topic), props])));
            assert_eq!(r, Err(DecodeError::TopicNameInvalid), "{p:?} {topic}");
        }
    }
}

#[test]
fn empty_topic_is_invalid_unless_v5_with_alias() {
    for p in V3 {
        assert_eq!(
            decode_at(p, &frame(0x30, &s(""))),
            Err(DecodeError::TopicNameInvalid),
            "{p:?}"
        );
    }
    assert!(is_protocol_error(&v5_publish("", &[])));
    let got = publish(v5_publish("", &[0x23, 0, 3]));
    assert_eq!(&*got.topic, "");
    assert_eq!(got.properties.topic_alias, Some(3));
}

#[test]
fn publish_topic_must_be_utf8_without_nul() {
    for p in ALL {
        for topic in [&b"a\0"[..], b"\xC0\xAF", b"\xED\xA0\x80"] {
            let r = decode_at(p, &frame(0x30, &cat(&[&s(topic), &[0]])));
            assert!(is_malformed(&r), "{p:?} {topic:02x?}: {r:?}");
        }
    }
}

#[test]
fn publish_packet_id_0_is_refused() {
    for p in ALL {
        for byte1 in [0x32, 0x34] {
            let r = decode_at(p, &frame(byte1, &cat(&[&s("t"), &[0, 0, 0]])));
            assert!(is_protocol_error(&r), "{p:?} {byte1:#x}: {r:?}");
        }
    }
}

#[test]
fn publish_missing_packet_id_is_malformed() {
    assert!(is_malformed(&decode_at(
        Protocol::V3_1_1,
        &frame(0x32, &cat(&[&s("t"), &[0]]))
    )));
}

#[test]
fn v5_publish_properties_are_decoded_in_order() {
    let props = cat(&[
        &[0x01, 1],
        &[0x02, 0, 0, 1, 0],
        &[0x23, 0, 9],
        &[0x08],
        &s("re/ply"),
        &[0x09],
        &s([1, 2, 3]),
        &[0x26],
        &s("z"),
        &s("1"),
        &[0x26],
        &s("a"),
        &s("2"),
        &[0x03],
        &s("json"),
    ]);
    let got = publish(v5_publish("t", &props));
    let p = got.properties;
    assert_eq!(p.payload_format_indicator, Some(1));
    assert_eq!(p.message_expiry_interval, Some(256));
    assert_eq!(p.topic_alias, Some(9));
    assert_eq!(p.response_topic.as_deref(), Some("re/ply"));
    assert_eq!(p.correlation_data.as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(
        p.user_properties,
        vec![("z".into(), "1".into()), ("a".into(), "2".into())]
    );
    assert_eq!(p.content_type.as_deref(), Some("json"));
    assert!(p.subscription_identifiers.is_empty());
    assert_eq!(&got.payload[..], b"pl");
}

#[test]
fn v5_publish_property_errors() {
    assert_eq!(
        v5_publish("t", &[0x23, 0, 0]).map(|_| ()),
        Err(DecodeError::TopicAliasInvalid),
        "topic alias 0 is 0x94, not a plain protocol error"
    );
    assert!(
        is_protocol_error(&v5_publish("t", &[0x0B, 1])),
        "subscription identifier from a client"
    );
    assert!(
        is_protocol_error(&v5_publish("t", &[0x01, 2])),
        "payload format indicator 2"
    );
    assert!(
        is_protocol_error(&v5_publish("t", &[0x23, 0, 1, 0x23, 0, 2])),
        "duplicate topic alias"
    );
    assert!(
        is_protocol_error(&v5_publish("t", &[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1])),
        "duplicate expiry"
    );
    assert!(
        is_protocol_error(&v5_publish("t", &cat(&[&[0x08], &s("r/+")]))),
        "wildcard response topic"
    );
    assert!(
        is_malformed(&v5_publish("t", &[0x11, 0, 0, 0, 1])),
        "session expiry in PUBLISH"
    );
    assert!(is_malformed(&v5_publish("t", &[0x02, 0, 0])), "truncated property");
    assert!(
        is_malformed(&v5_publish("t", &cat(&[&[0x03], &s("a\0")]))),
        "NUL in content type"
    );
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP ----

const ACKS: [(u8, &str); 4] = [(0x40, "PUBACK"), (0x50, "PUBREC"), (0x62, "PUBREL"), (0x70, "PUBCOMP")];

fn ack_of(r: Result<Packet, DecodeError>) -> Ack {
    match r {
        Ok(Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a)) => a,
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[test]
fn acks_decode_to_their_kind() {
    for p in ALL {
        for (byte1, kind) in ACKS {
            let got = decode_at(p, &[byte1, 2, 0, 5]).unwrap();
            assert_eq!(got.kind(), kind);
            assert_eq!(ack_of(Ok(got)), Ack::new(5));
        }
    }
}

#[test]
fn ack_packet_id_0_is_a_protocol_error() {
    for p in ALL {
        for (byte1, kind) in ACKS {
            assert!(is_protocol_error(&decode_at(p, &[byte1, 2, 0, 0])), "{p:?} {kind}");
        }
    }
}

#[test]
fn v3_ack_with_extra_bytes_is_malformed() {
    for p in V3 {
        for (byte1, kind) in ACKS {
            assert!(is_malformed(&decode_at(p, &[byte1, 3, 0, 5, 0])), "{p:?} {kind}");
            assert!(is_malformed(&decode_at(p, &[byte1, 1, 0])), "{p:?} {kind} short");
        }
    }
}

#[test]
fn v5_ack_short_forms_and_properties() {
    let v5 = Protocol::V5;
    assert_eq!(ack_of(decode_at(v5, &[0x40, 3, 0, 5, 0x10])), Ack::with_reason(5, 0x10));
    assert_eq!(ack_of(decode_at(v5, &[0x62, 3, 0, 5, 0x92])), Ack::with_reason(5, 0x92));
    assert_eq!(
        ack_of(decode_at(v5, &[0x40, 4, 0, 5, 0x80, 0])),
        Ack::with_reason(5, 0x80)
    );
    let body = cat(&[&[0, 5, 0x97, 15, 0x1F], &s("quota"), &[0x26], &s("k"), &s("v")]);
    let got = ack_of(decode_at(v5, &frame(0x50, &body)));
    assert_eq!(got.reason, 0x97);
    assert_eq!(got.reason_string.as_deref(), Some("quota"));
    assert_eq!(got.user_properties, vec![("k".into(), "v".into())]);
}

#[test]
fn v5_ack_errors() {
    let v5 = Protocol::V5;
    assert!(
        is_protocol_error(&decode_at(v5, &[0x40, 3, 0, 5, 0x92])),
        "PUBREL code in PUBACK"
    );
    assert!(
        is_protocol_error(&decode_at(v5, &[0x70, 3, 0, 5, 0x10])),
        "PUBACK code in PUBCOMP"
    );
    let dup = cat(&[&[0, 5, 0, 8, 0x1F], &s("a"), &[0x1F], &s("b")]);
    assert!(
        is_protocol_error(&decode_at(v5, &frame(0x40, &dup))),
        "duplicate reason string"
    );
    assert!(
        is_malformed(&decode_at(v5, &[0x40, 7, 0, 5, 0, 3, 0x23, 0, 1])),
        "topic alias in PUBACK"
    );
    assert!(
        is_malformed(&decode_at(v5, &[0x40, 5, 0, 5, 0, 0, 0])),
        "trailing byte after properties"
    );
}

// ---- SUBSCRIBE ----

#[test]
fn subscribe_fields_are_decoded() {
    for p in V3 {
        let body = cat(&[&[0, 10], &s("a/+"), &[1], &s("b/#"), &[2]]);
        let got = subscribe(decode_at(p, &frame(0x82, &body)));
        assert_eq!(got.pkid, 10);
        let pairs: Vec<_> = got.filters.iter().map(|f| (f.filter.as_str(), f.qos)).collect();
        assert_eq!(pairs, [("a/+", QoS::AtLeastOnce), ("b/#", QoS::ExactlyOnce)]);
    }
}

#[test]
fn v5_subscribe_options_and_properties_are_decoded() {
    let body = cat(&[
        &[0, 10, 10, 0x0B, 0x80, 0x01],
        &[0x26],
        &s("k"),
        &s("v"),
        &s("x"),
        &[0b0010_1101],
    ]);
    let got = subscribe(decode_at(Protocol::V5, &frame(0x82, &body)));
    assert_eq!(got.subscription_identifier, Some(128));
    assert_eq!(got.user_properties, vec![("k".into(), "v".into())]);
    let f = &got.filters[0];
    assert_eq!(f.qos, QoS::AtLeastOnce);
    assert!(f.no_local && f.retain_as_published);
    assert_eq!(f.retain_handling, RetainHandling::DoNotSend);
}

#[test]
fn subscribe_packet_id_0_and_no_filters_are_protocol_errors() {
    for p in ALL {
        let props: &[u8] = if p.is_v5() { &[0] } else { &[] };
        let r = decode_at(p, &frame(0x82, &cat(&[&[0, 0], props, &s("a"), &[0]])));
        assert!(is_protocol_error(&r), "{p:?} pkid 0: {r:?}");
        let r = decode_at(p, &frame(0x82, &cat(&[&[0, 1], props])));
        assert!(is_protocol_error(&r), "{p:?} no filters: {r:?}");
    }
}

#[test]
fn subscribe_option_reserved_bits_are_malformed() {
    for p in V3 {
        for options in [0x04, 0x08, 0x10, 0x80] {
            let r = decode_at(p, &frame(0x82, &cat(&[&[0, 1], &s("a"), &[options]])));
            assert!(is_malformed(&r), "{p:?} {options:#04x}: {r:?}");
        }
    }
    for options in [0x40, 0x80] {
        let r = decode_at(Protocol::V5, &frame(0x82, &cat(&[&[0, 1, 0], &s("a"), &[options]])));
        assert!(is_malformed(&r), "v5 {options:#04x}: {r:?}");
    }
    // Retain Handling 3 is not a reserved bit but an invalid value: a Protocol Error in 5.0 (§3.8.3.1).
    let r = decode_at(Protocol::V5, &frame(0x82, &cat(&[&[0, 1, 0], &s("a"), &[0b0011_0000]])));
    assert!(is_protocol_error(&r), "v5 retain handling 3: {r:?}");
}

#[test]
fn subscribe_qos_3_is_malformed_in_3x_and_a_protocol_error_in_5() {
    for p in ALL {
        let props: &[u8] = if p.is_v5() { &[0] } else { &[] };
        let r = decode_at(p, &frame(0x82, &cat(&[&[0, 1], props, &s("a"), &[3]])));
        if p.is_v5() {
            assert!(is_protocol_error(&r), "{p:?}: {r:?}");
        } else {
            assert!(is_malformed(&r), "{p:?}: {r:?}");
        }
    }
}

#[test]
fn invalid_filters_are_passed_to_the_core() {
    // The core answers these per filter (0x8F / 0x80); the packet itself is fine.
    let body = cat(&[
        &[0, 1],
        &s("a/b+/c"),
        &[0],
        &s("+a"),
        &[0],
        &s(""),
        &[0],
        &s("a/#/b"),
        &[0],
    ]);
    let got = subscribe(decode_at(Protocol::V3_1_1, &frame(0x82, &body)));
    let filters: Vec<_> = got.filters.iter().map(|f| f.filter.as_str()).collect();
    assert_eq!(filters, ["a/b+/c", "+a", "", "a/#/b"]);
}

#[test]
fn filter_must_be_utf8_without_nul() {
    for filter in [&b"a\0"[..], b"\xFF"] {
        let r = decode_at(Protocol::V3_1_1, &frame(0x82, &cat(&[&[0, 1], &s(filter), &[0]])));
        assert!(is_malformed(&r), "{filter:02x?}: {r:?}");
    }
}

#[test]
fn subscribe_missing_options_is_malformed() {
    let r = decode_at(Protocol::V3_1_1, &frame(0x82, &cat(&[&[0, 1], &s("a")])));
    assert!(is_malformed(&r), "{r:?}");
}

#[test]
fn v5_subscription_identifier_rules() {
    let sub = |props: &[u8]| {
        decode_at(
            Protocol::V5,
            &frame(0x82, &cat(&[&[0, 1, props.len() as u8], props, &s("a"), &[0]])),
        )
    };
    assert!(is_protocol_error(&sub(&[0x0B, 0])), "identifier 0");
    assert!(is_protocol_error(&sub(&[0x0B, 1, 0x0B, 2])), "two identifiers");
    assert!(is_malformed(&sub(&[0x0B, 0x81, 0x00])), "non-minimal identifier");
    assert!(is_malformed(&sub(&[0x0B, 0x80])), "truncated identifier");
    assert!(is_malformed(&sub(&[0x23, 0, 1])), "topic alias in SUBSCRIBE");
    assert_eq!(
        subscribe(sub(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F])).subscription_identifier,
        Some(268_435_455)
    );
}

// ---- UNSUBSCRIBE ----

#[test]
fn unsubscribe_is_decoded() {
    for p in ALL {
        let props: &[u8] = if p.is_v5() { &[0] } else { &[] };
        let got = decode_at(p, &frame(0xA2, &cat(&[&[0, 3], props, &s("a/b"), &s("c/+")])));
        let expected = Unsubscribe {
            pkid: 3,
            filters: vec!["a/b".into(), "c/+".into()],
            ..Unsubscribe::default()
        };
        assert_eq!(got, Ok(Packet::Unsubscribe(expected)), "{p:?}");
    }
    let body = cat(&[&[0, 3, 7, 0x26], &s("k"), &s("v"), &s("x")]);
    match decode_at(Protocol::V5, &frame(0xA2, &body)) {
        Ok(Packet::Unsubscribe(u)) => assert_eq!(u.user_properties, vec![("k".into(), "v".into())]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsubscribe_errors() {
    for p in ALL {
        let props: &[u8] = if p.is_v5() { &[0] } else { &[] };
        assert!(
            is_protocol_error(&decode_at(p, &frame(0xA2, &cat(&[&[0, 0], props, &s("a")])))),
            "{p:?}"
        );
        assert!(
            is_protocol_error(&decode_at(p, &frame(0xA2, &cat(&[&[0, 1], props])))),
            "{p:?}"
        );
        assert!(
            is_malformed(&decode_at(p, &frame(0xA2, &cat(&[&[0, 1], props, &s("a\0")])))),
            "{p:?}"
        );
        assert!(
            is_malformed(&decode_at(p, &frame(0xA2, &cat(&[&[0, 1], props, &[0, 5, b'a']])))),
            "{p:?}"
        );
    }
    let r = decode_at(Protocol::V5, &frame(0xA2, &cat(&[&[0, 1, 3, 0x1F], &s(""), &s("a")])));
    assert!(is_malformed(&r), "reason string in UNSUBSCRIBE: {r:?}");
}

// ---- PINGREQ ----

#[test]
fn pingreq_with_a_body_is_malformed() {
    for p in ALL {
        assert_eq!(decode_at(p, &[0xC0, 0]), Ok(Packet::PingReq));
        assert!(is_malformed(&decode_at(p, &[0xC0, 1, 0])), "{p:?}");
    }
}

// ---- DISCONNECT ----

#[test]
fn v3_disconnect_has_no_body() {
    for p in V3 {
        assert_eq!(decode_at(p, &[0xE0, 0]), Ok(Packet::Disconnect(Disconnect::default())));
        assert!(is_malformed(&decode_at(p, &[0xE0, 1, 0])), "{p:?}");
    }
}

#[test]
fn v5_disconnect_forms() {
    let v5 = Protocol::V5;
    assert_eq!(decode_at(v5, &[0xE0, 0]), Ok(Packet::Disconnect(Disconnect::default())));
    assert_eq!(
        decode_at(v5, &[0xE0, 1, 0x8E]),
        Ok(Packet::Disconnect(Disconnect::with_reason(0x8E)))
    );
    assert_eq!(
        decode_at(v5, &[0xE0, 1, 0x04]),
        Ok(Packet::Disconnect(Disconnect::with_reason(0x04)))
    );
    let body = cat(&[&[0x00, 14, 0x11, 0, 0, 0, 0, 0x1F], &s("bye"), &[0x1C], &s("")]);
    let expected = Disconnect {
        session_expiry_interval: Some(0),
        reason_string: Some("bye".into()),
        server_reference: Some(String::new()),
        ..Disconnect::default()
    };
    assert_eq!(decode_at(v5, &frame(0xE0, &body)), Ok(Packet::Disconnect(expected)));
}

#[test]
fn v5_disconnect_errors() {
    let v5 = Protocol::V5;
    assert!(
        is_protocol_error(&decode_at(v5, &[0xE0, 1, 0x01])),
        "unknown reason code"
    );
    assert!(
        is_malformed(&decode_at(v5, &[0xE0, 4, 0, 2, 0x23, 0])),
        "property not allowed"
    );
    assert!(is_malformed(&decode_at(v5, &[0xE0, 3, 0, 0, 0])), "trailing byte");
    assert!(
        is_malformed(&decode_at(v5, &[0xE0, 3, 0, 5, 0x11])),
        "property length beyond packet"
    );
    assert!(is_protocol_error(&decode_at(
        v5,
        &[0xE0, 12, 0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1]
    )));
}

// ---- AUTH ----

#[test]
fn v5_auth_is_decoded() {
    let v5 = Protocol::V5;
    assert_eq!(
        decode_at(v5, &[0xF0, 1, 0x19]),
        Ok(Packet::Auth(Auth {
            reason: 0x19,
            ..Auth::default()
        }))
    );
    let body = cat(&[&[0x18, 14, 0x15], &s("SCRAM"), &[0x16], &s([0, 0xFF, 1])]);
    let expected = Auth {
        reason: 0x18,
        method: Some("SCRAM".into()),
        data: Some(vec![0, 0xFF, 1].into()),
        ..Auth::default()
    };
    assert_eq!(decode_at(v5, &frame(0xF0, &body)), Ok(Packet::Auth(expected)));
}

#[test]
fn v5_auth_errors() {
    let v5 = Protocol::V5;
    assert!(
        is_protocol_error(&decode_at(v5, &[0xF0, 1, 0x87])),
        "reason not valid for AUTH"
    );
    let dup = cat(&[&[0x18, 8, 0x15], &s("a"), &[0x15], &s("b")]);
    assert!(
        is_protocol_error(&decode_at(v5, &frame(0xF0, &dup))),
        "duplicate method"
    );
    assert!(
        is_malformed(&decode_at(v5, &[0xF0, 4, 0x18, 2, 0x11, 0])),
        "session expiry in AUTH"
    );
}
