//! CONNECT: level detection, flag rules, payload fields and 5.0 properties, built byte by byte.

mod common;

use common::*;
use ractmq_codec::{Connect, DecodeError, Decoder, Packet, Protocol, QoS};

/// Variable header for `name`/`level` with `flags` and keep alive 60.
fn head(name: &str, level: u8, flags: u8) -> Vec<u8> {
    cat(&[&s(name), &[level, flags, 0, 60]])
}

fn connect(r: Result<Packet, DecodeError>) -> Connect {
    match r {
        Ok(Packet::Connect(c)) => *c,
        other => panic!("expected CONNECT, got {other:?}"),
    }
}

#[test]
fn levels_are_detected_from_name_and_level() {
    let cases = [("MQIsdp", 3, Protocol::V3_1), ("MQTT", 4, Protocol::V3_1_1)];
    for (name, level, protocol) in cases {
        let mut d = Decoder::new(MAX);
        let c = connect(decode_with(
            &mut d,
            &frame(0x10, &cat(&[&head(name, level, 2), &s("id")])),
        ));
        assert_eq!(c.protocol, Some(protocol));
        assert_eq!(d.protocol(), Some(protocol));
        assert_eq!(c.client_id, "id");
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
    }
    let mut d = Decoder::new(MAX);
    let c = connect(decode_with(
        &mut d,
        &frame(0x10, &cat(&[&head("MQTT", 5, 0), &[0], &s("id")])),
    ));
    assert_eq!(c.protocol, Some(Protocol::V5));
    assert_eq!(d.protocol(), Some(Protocol::V5));
    assert!(!c.clean_start);
}

#[test]
fn unknown_name_or_level_is_unsupported() {
    for (name, level) in [
        ("MQTT", 3),
        ("MQIsdp", 4),
        ("MQTT", 6),
        ("MQTX", 4),
        ("mqtt", 4),
        ("", 4),
    ] {
        let r = decode_connect(&cat(&[&head(name, level, 2), &s("id")]));
        assert_eq!(r, Err(DecodeError::UnsupportedProtocol), "{name}/{level}");
    }
}

#[test]
fn truncated_connect_is_malformed() {
    let full = cat(&[&head("MQTT", 4, 2), &s("id")]);
    for cut in [1, 5, 6, 7, 9, 11] {
        let r = decode_connect(&full[..cut]);
        assert!(is_malformed(&r), "cut at {cut}: {r:?}");
    }
}

#[test]
fn reserved_flag_is_malformed() {
    for (name, level, props) in [("MQIsdp", 3, &[][..]), ("MQTT", 4, &[]), ("MQTT", 5, &[0])] {
        let r = decode_connect(&cat(&[&head(name, level, 0b11), props, &s("id")]));
        assert!(is_malformed(&r), "{name}/{level}: {r:?}");
    }
}

#[test]
fn will_qos_or_retain_without_will_is_malformed() {
    for flags in [0b0000_1000, 0b0001_0000, 0b0010_0000] {
        let r = decode_connect(&cat(&[&head("MQTT", 4, flags), &s("id")]));
        assert!(is_malformed(&r), "{flags:#010b}: {r:?}");
    }
}

#[test]
fn will_qos_3_is_malformed() {
    let r = decode_connect(&cat(&[&head("MQTT", 4, 0b0001_1100), &s("id"), &s("t"), &s("p")]));
    assert!(is_malformed(&r), "{r:?}");
}

#[test]
fn password_without_user_name_is_malformed_before_v5() {
    for (name, level) in [("MQIsdp", 3), ("MQTT", 4)] {
        let r = decode_connect(&cat(&[&head(name, level, 0x40), &s("id"), &s("pw")]));
        assert!(is_malformed(&r), "{name}/{level}: {r:?}");
    }
    let c = connect(decode_connect(&cat(&[
        &head("MQTT", 5, 0x40),
        &[0],
        &s("id"),
        &s("pw"),
    ])));
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
}

#[test]
fn password_is_binary() {
    let password = [0xFF, 0x00, 0xFE, 0x80];
    for (name, level, props) in [("MQIsdp", 3, &[][..]), ("MQTT", 4, &[]), ("MQTT", 5, &[0])] {
        let body = cat(&[&head(name, level, 0xC2), props, &s("id"), &s("user"), &s(password)]);
        let c = connect(decode_connect(&body));
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some(&password[..]), "{name}/{level}");
    }
}

#[test]
fn strings_must_be_utf8_without_nul() {
    let bad_ids: [&[u8]; 3] = [b"\xC3\x28", b"a\0b", b"\xED\xA0\x80"]; // invalid, U+0000, surrogate
    for id in bad_ids {
        let r = decode_connect(&cat(&[&head("MQTT", 4, 2), &s(id)]));
        assert!(is_malformed(&r), "client id {id:02x?}: {r:?}");
    }
    let r = decode_connect(&cat(&[&head("MQTT", 4, 0x80), &s("id"), &s("us\0er")]));
    assert!(is_malformed(&r), "user name: {r:?}");
    let r = decode_connect(&cat(&[&head("MQTT", 4, 0x04), &s("id"), &s(b"t\xFF"), &s("p")]));
    assert!(is_malformed(&r), "will topic: {r:?}");
}

#[test]
fn trailing_bytes_after_connect_are_malformed() {
    for (name, level, props) in [("MQIsdp", 3, &[][..]), ("MQTT", 4, &[]), ("MQTT", 5, &[0])] {
        let r = decode_connect(&cat(&[&head(name, level, 2), props, &s("id"), &[0]]));
        assert!(is_malformed(&r), "{name}/{level}: {r:?}");
    }
}

#[test]
fn v3_will_is_decoded() {
    // Will flag, will QoS 1, will retain, clean session.
    let body = cat(&[
        &head("MQTT", 4, 0b0010_1110),
        &s("id"),
        &s("last/will"),
        &s([0u8, 1, 2]),
    ]);
    let c = connect(decode_connect(&body));
    let w = c.will.expect("will");
    assert_eq!(w.topic, "last/will");
    assert_eq!(&w.payload[..], &[0, 1, 2]);
    assert_eq!(w.qos, QoS::AtLeastOnce);
    assert!(w.retain);
    assert_eq!(w.delay_interval, None);
}

#[test]
fn will_topic_must_be_a_valid_topic_name() {
    for topic in ["a/+", "#", ""] {
        let r = decode_connect(&cat(&[&head("MQTT", 4, 0x04), &s("id"), &s(topic), &s("p")]));
        assert_eq!(r, Err(DecodeError::TopicNameInvalid), "{topic:?}");
    }
}

/// A 5.0 CONNECT carrying the given CONNECT properties (already encoded, without their length).
fn v5_with_props(props: &[u8]) -> Result<Packet, DecodeError> {
    decode_connect(&cat(&[&head("MQTT", 5, 2), &[props.len() as u8], props, &s("id")]))
}

#[test]
fn v5_connect_properties_are_decoded() {
    let props = cat(&[
        &[0x11, 0, 0, 0x0E, 0x10], // session expiry 3600
        &[0x21, 0, 20],            // receive maximum
        &[0x27, 0, 1, 0, 0],       // maximum packet size 65536
        &[0x22, 0, 5],             // topic alias maximum
        &[0x19, 1],                // request response information
        &[0x17, 0],                // request problem information
        &[0x26],
        &s("k"),
        &s("v1"),
        &[0x26],
        &s("k"),
        &s("v0"),
        &[0x15],
        &s("SCRAM"),
        &[0x16],
        &s([1, 2]),
    ]);
    let c = connect(v5_with_props(&props));
    let p = c.properties;
    assert_eq!(p.session_expiry_interval, Some(3600));
    assert_eq!(p.receive_maximum, Some(20));
    assert_eq!(p.maximum_packet_size, Some(65536));
    assert_eq!(p.topic_alias_maximum, Some(5));
    assert_eq!(p.request_response_information, Some(1));
    assert_eq!(p.request_problem_information, Some(0));
    assert_eq!(
        p.user_properties,
        vec![("k".into(), "v1".into()), ("k".into(), "v0".into())]
    );
    assert_eq!(p.authentication_method.as_deref(), Some("SCRAM"));
    assert_eq!(p.authentication_data.as_deref(), Some(&[1u8, 2][..]));
}

#[test]
fn v5_duplicate_property_is_a_protocol_error() {
    let cases: [&[u8]; 4] = [
        &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2],
        &[0x21, 0, 1, 0x21, 0, 1],
        &[0x17, 1, 0x17, 1],
        &[0x27, 0, 0, 1, 0, 0x27, 0, 0, 1, 0],
    ];
    for props in cases {
        let r = v5_with_props(props);
        assert!(is_protocol_error(&r), "{props:02x?}: {r:?}");
    }
}

#[test]
fn v5_property_values_out_of_range_are_protocol_errors() {
    let cases: [&[u8]; 5] = [
        &[0x21, 0, 0],       // receive maximum 0
        &[0x27, 0, 0, 0, 0], // maximum packet size 0
        &[0x17, 2],          // request problem information
        &[0x19, 2],          // request response information
        &[0x16, 0, 1, 9],    // authentication data without method
    ];
    for props in cases {
        let r = v5_with_props(props);
        assert!(is_protocol_error(&r), "{props:02x?}: {r:?}");
    }
}

#[test]
fn v5_property_not_allowed_in_connect_is_malformed() {
    // Topic Alias, Will Delay Interval (a will property), Reason String, an unknown id, a two-byte id.
    let cases: [&[u8]; 5] = [
        &[0x23, 0, 1],
        &[0x18, 0, 0, 0, 1],
        &[0x1F, 0, 0],
        &[0x7F, 0],
        &[0x91, 0x01],
    ];
    for props in cases {
        let r = v5_with_props(props);
        assert!(is_malformed(&r), "{props:02x?}: {r:?}");
    }
}

#[test]
fn v5_property_length_boundary_is_enforced() {
    // Property length 3 but Session Expiry Interval needs 5 bytes; the client id follows.
    let body = cat(&[&head("MQTT", 5, 2), &[3, 0x11, 0, 0, 0, 1], &s("id")]);
    assert!(is_malformed(&decode_connect(&body)));
    // Property length beyond the end of the packet.
    let body = cat(&[&head("MQTT", 5, 2), &[100, 0x11, 0, 0, 0, 1]]);
    assert!(is_malformed(&decode_connect(&body)));
    // Non-minimal property length.
    let body = cat(&[&head("MQTT", 5, 2), &[0x80, 0x00], &s("id")]);
    assert!(is_malformed(&decode_connect(&body)));
}

/// A 5.0 CONNECT with a will carrying `will_props`.
fn v5_will(will_props: &[u8], topic: &str) -> Result<Packet, DecodeError> {
    let body = cat(&[
        &head("MQTT", 5, 0b0000_1110), // will QoS 1
        &[0],
        &s("id"),
        &[will_props.len() as u8],
        will_props,
        &s(topic),
        &s("bye"),
    ]);
    decode_connect(&body)
}

#[test]
fn v5_will_properties_are_decoded() {
    let props = cat(&[
        &[0x18, 0, 0, 0, 30], // will delay
        &[0x01, 1],
        &[0x02, 0, 0, 0, 60],
        &[0x03],
        &s("text/plain"),
        &[0x08],
        &s("reply/to"),
        &[0x09],
        &s([7, 7]),
        &[0x26],
        &s("a"),
        &s("b"),
    ]);
    let c = connect(v5_will(&props, "will/t"));
    let w = c.will.expect("will");
    assert_eq!(w.topic, "will/t");
    assert_eq!(&w.payload[..], b"bye");
    assert_eq!(w.qos, QoS::AtLeastOnce);
    assert_eq!(w.delay_interval, Some(30));
    assert_eq!(w.properties.payload_format_indicator, Some(1));
    assert_eq!(w.properties.message_expiry_interval, Some(60));
    assert_eq!(w.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(w.properties.response_topic.as_deref(), Some("reply/to"));
    assert_eq!(w.properties.correlation_data.as_deref(), Some(&[7u8, 7][..]));
    assert_eq!(w.properties.user_properties, vec![("a".into(), "b".into())]);
    assert_eq!(w.properties.topic_alias, None);
}

#[test]
fn v5_will_property_errors() {
    assert!(
        is_protocol_error(&v5_will(&[0x01, 2], "t")),
        "payload format indicator 2"
    );
    assert!(
        is_protocol_error(&v5_will(&[0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1], "t")),
        "duplicate delay"
    );
    assert!(
        is_protocol_error(&v5_will(&cat(&[&[0x08], &s("a/#")]), "t")),
        "wildcard response topic"
    );
    assert!(
        is_malformed(&v5_will(&[0x11, 0, 0, 0, 1], "t")),
        "session expiry is not a will property"
    );
    assert_eq!(v5_will(&[], "t/+"), Err(DecodeError::TopicNameInvalid));
}

#[test]
fn mqisdp_connect_with_will_and_credentials() {
    let body = cat(&[
        &head("MQIsdp", 3, 0b1111_0110),
        &s("legacy"),
        &s("w"),
        &s("gone"),
        &s("u"),
        &s("p"),
    ]);
    let c = connect(decode_connect(&body));
    assert_eq!(c.protocol, Some(Protocol::V3_1));
    assert_eq!(c.client_id, "legacy");
    let w = c.will.expect("will");
    assert_eq!(
        (w.topic.as_str(), &w.payload[..], w.qos, w.retain),
        ("w", &b"gone"[..], QoS::ExactlyOnce, true)
    );
    assert_eq!(c.username.as_deref(), Some("u"));
    assert_eq!(c.password.as_deref(), Some(&b"p"[..]));
}
