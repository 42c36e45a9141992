//! One test per defect listed in /work/shared/mqttbytes-notes.md, using the frames from the notes, showing
//! that this layer does what mqttbytes 0.6 does not. Numbers follow the notes.

mod common;

use bytes::BytesMut;
use common::*;
use ractmq_codec::{
    encode_publish, topic, Auth, DecodeError, Decoder, Disconnect, EncodeError, Packet, Protocol, PublishOut, QoS,
};

#[test]
fn unsupported_auth_is_decoded_in_v5() {
    let body = cat(&[&[0x18, 8, 0x15], &s("M"), &[0x16], &s("d")]);
    let expected = Auth {
        reason: 0x18,
        method: Some("M".into()),
        data: Some("d".into()),
        ..Auth::default()
    };
    assert_eq!(decode_at(Protocol::V5, &frame(0xF0, &body)), Ok(Packet::Auth(expected)));
}

#[test]
fn unsupported_mqisdp_connect_is_decoded() {
    let body = cat(&[&s("MQIsdp"), &[3, 0x02, 0, 10], &s("old-client")]);
    match decode_connect(&body) {
        Ok(Packet::Connect(c)) => {
            assert_eq!(c.protocol, Some(Protocol::V3_1));
            assert_eq!(c.client_id, "old-client");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_version_detection_v5_connect_is_not_read_as_v4() {
    // mqttbytes v4::read accepts this and loses the client id; here the properties are read as 5.0.
    let body = cat(&[&s("MQTT"), &[5, 0x02, 0, 10, 5, 0x11, 0, 0, 0, 9], &s("five")]);
    match decode_connect(&body) {
        Ok(Packet::Connect(c)) => {
            assert_eq!(c.protocol, Some(Protocol::V5));
            assert_eq!(c.client_id, "five");
            assert_eq!(c.properties.session_expiry_interval, Some(9));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_version_detection_v4_connect_with_will_is_read_without_will_properties() {
    let body = cat(&[&s("MQTT"), &[4, 0x06, 0, 10], &s("four"), &s("w/t"), &s("x")]);
    match decode_connect(&body) {
        Ok(Packet::Connect(c)) => assert_eq!(c.will.map(|w| w.topic), Some("w/t".to_string())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn defect_1_v5_disconnect_with_remaining_length_0_and_1() {
    assert_eq!(
        decode_at(Protocol::V5, &[0xE0, 0x00]),
        Ok(Packet::Disconnect(Disconnect::default()))
    );
    // The frame after `e0 01 8e` must not be lost either.
    let mut d = decoder(Protocol::V5);
    let mut buf = BytesMut::from(&[0xE0u8, 0x01, 0x8E, 0xC0, 0x00][..]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Packet::Disconnect(Disconnect::with_reason(0x8E))))
    );
    assert_eq!(d.decode(&mut buf), Ok(Some(Packet::PingReq)));
    assert!(buf.is_empty());
}

#[test]
fn defect_1_mqttbytes_disconnect_output_is_readable() {
    let mut buf = BytesMut::new();
    mqttbytes::v5::Disconnect::new().write(&mut buf).unwrap();
    assert_eq!(
        decode_with(&mut decoder(Protocol::V5), &buf),
        Ok(Packet::Disconnect(Disconnect::default()))
    );
}

#[test]
fn defect_2_v5_unsubscribe_is_parsed_here() {
    // mqttbytes' 5.0 reader prints the packet id to stderr for this, so the codec parses it itself.
    let r = decode_at(Protocol::V5, &frame(0xA2, &cat(&[&[0x12, 0x34, 0], &s("a/b")])));
    match r {
        Ok(Packet::Unsubscribe(u)) => {
            assert_eq!((u.pkid, u.filters), (0x1234, vec!["a/b".to_string()]))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn defect_3_topic_validity() {
    assert!(!topic::valid_filter("a/b+/c"));
    assert!(!topic::valid_filter("+a"));
    assert!(!topic::valid_name(""));
    // mqttbytes panics on a multi-byte first character.
    assert!(topic::valid_name("ü"));
    assert!(topic::valid_filter("ü/+/#"));
    assert!(!topic::valid_filter("ü+"));
    assert!(topic::valid_filter("$SYS/#"));
}

#[test]
fn defect_4_fixed_header_flags_and_reserved_bits() {
    let mut connect = connect_frame(Protocol::V3_1_1).to_vec();
    connect[0] = 0x1F;
    assert!(
        is_malformed(&decode_with(&mut Decoder::new(MAX), &connect)),
        "CONNECT 0x1F"
    );
    assert!(is_malformed(&decode_at(
        Protocol::V3_1_1,
        &frame(0x80, &cat(&[&[0, 1], &s("a"), &[0]]))
    )));
    assert!(
        is_malformed(&decode_at(Protocol::V3_1_1, &[0x60, 2, 0, 1])),
        "PUBREL 0000"
    );
    let reserved = cat(&[&s("MQTT"), &[4, 0x03, 0, 10], &s("id")]);
    assert!(is_malformed(&decode_connect(&reserved)), "CONNECT reserved bit");
    assert!(is_malformed(&decode_at(
        Protocol::V5,
        &frame(0x82, &cat(&[&[0, 1, 0], &s("a"), &[0xC0]]))
    )));
}

#[test]
fn defect_5_password_rules() {
    let no_user = cat(&[&s("MQTT"), &[4, 0x42, 0, 10], &s("id"), &s("pw")]);
    assert!(is_malformed(&decode_connect(&no_user)));
    let binary = cat(&[&s("MQTT"), &[4, 0xC2, 0, 10], &s("id"), &s("u"), &s([0xC3, 0x28, 0x00])]);
    match decode_connect(&binary) {
        Ok(Packet::Connect(c)) => {
            assert_eq!(c.password.as_deref(), Some(&[0xC3u8, 0x28, 0x00][..]))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn defect_6_nul_in_strings() {
    assert!(
        is_malformed(&decode_at(Protocol::V3_1_1, &frame(0x30, &s("a\0b")))),
        "topic"
    );
    assert!(
        is_malformed(&decode_connect(&cat(&[&s("MQTT"), &[4, 2, 0, 10], &s("i\0d")]))),
        "client id"
    );
    let prop = cat(&[&[0, 1, 7, 0x26], &s("k"), &s("\0"), &s("f"), &[0]]);
    assert!(
        is_malformed(&decode_at(Protocol::V5, &frame(0x82, &prop))),
        "user property"
    );
}

#[test]
fn defect_7_publish_topic_and_dup() {
    assert_eq!(
        decode_at(Protocol::V3_1_1, &frame(0x30, &s("a/#"))),
        Err(DecodeError::TopicNameInvalid)
    );
    assert_eq!(
        decode_at(Protocol::V3_1_1, &frame(0x30, &s(""))),
        Err(DecodeError::TopicNameInvalid)
    );
    assert!(
        is_malformed(&decode_at(Protocol::V3_1_1, &frame(0x38, &s("a")))),
        "DUP at QoS 0"
    );
}

#[test]
fn defect_8_subscribe_packet_id_0_and_empty_list() {
    assert!(is_protocol_error(&decode_at(
        Protocol::V3_1_1,
        &frame(0x82, &cat(&[&[0, 0], &s("a"), &[0]]))
    )));
    assert!(is_protocol_error(&decode_at(Protocol::V3_1_1, &[0x82, 2, 0, 1])));
}

#[test]
fn defect_9_non_minimal_length_trailing_bytes_pingreq_payload() {
    assert!(
        is_malformed(&decode_at(Protocol::V3_1_1, &[0xC0, 0x80, 0x00])),
        "non-minimal"
    );
    let trailing = cat(&[&s("MQTT"), &[4, 2, 0, 10], &s("id"), b"junk"]);
    assert!(is_malformed(&decode_connect(&trailing)), "trailing after CONNECT");
    assert!(
        is_malformed(&decode_at(Protocol::V3_1_1, &[0xC0, 1, 0])),
        "PINGREQ payload"
    );
}

#[test]
fn defect_10_v5_property_rules() {
    let publish = |props: &[u8]| {
        decode_at(
            Protocol::V5,
            &frame(0x30, &cat(&[&s("t"), &[props.len() as u8], props])),
        )
    };
    assert!(
        is_protocol_error(&publish(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2])),
        "duplicate"
    );
    assert!(is_protocol_error(&publish(&[0x01, 7])), "range");
    // Property length 2 covers only part of the Message Expiry Interval.
    let cut = decode_at(Protocol::V5, &frame(0x30, &cat(&[&s("t"), &[2, 0x02, 0, 0, 0, 1]])));
    assert!(is_malformed(&cut), "boundary: {cut:?}");
}

#[test]
fn defect_11_over_long_string_is_refused_not_truncated() {
    let long = "t".repeat(70_000);
    let publish = PublishOut {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: &long,
        pkid: 0,
        payload: b"",
        properties: None,
        topic_alias: None,
        subscription_identifiers: &[],
        message_expiry_interval: None,
    };
    let mut buf = BytesMut::new();
    assert_eq!(
        encode_publish(&publish, Protocol::V3_1_1, &mut buf),
        Err(EncodeError::FieldTooLong)
    );
    assert!(buf.is_empty());
}
