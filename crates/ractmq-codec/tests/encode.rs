//! Encoder output: exact bytes for the small packets, mqttbytes as an independent reader for the rest.

mod common;

use bytes::BytesMut;
use common::*;
use mqttbytes::{v4, v5};
use ractmq_codec::{
    encode, encode_client, encode_publish, reason, Ack, Auth, ConnAck, ConnAckProperties, Disconnect, EncodeError,
    Packet, Protocol, Publish, PublishOut, PublishProperties, QoS, SubAck, UnsubAck,
};

fn bytes_of(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).unwrap();
    buf.to_vec()
}

fn out<'a>(topic: &'a str, payload: &'a [u8]) -> PublishOut<'a> {
    PublishOut {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic,
        pkid: 0,
        payload,
        properties: None,
        topic_alias: None,
        subscription_identifiers: &[],
        message_expiry_interval: None,
    }
}

/// Asserts that `f` fails with `err` and leaves a buffer that already held data untouched.
fn assert_fails_cleanly(err: EncodeError, f: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>) {
    let mut buf = BytesMut::from(&b"earlier"[..]);
    assert_eq!(f(&mut buf), Err(err));
    assert_eq!(&buf[..], b"earlier");
}

// ---- CONNACK ----

#[test]
fn v3_connack_maps_reason_to_return_code() {
    let cases = [
        (reason::SUCCESS, 0),
        (reason::UNSUPPORTED_PROTOCOL_VERSION, 1),
        (reason::CLIENT_IDENTIFIER_NOT_VALID, 2),
        (reason::SERVER_BUSY, 3),
        (reason::BAD_USER_NAME_OR_PASSWORD, 4),
        (reason::NOT_AUTHORIZED, 5),
    ];
    for p in V3 {
        for (reason, code) in cases {
            let ack = ConnAck {
                reason,
                ..ConnAck::default()
            };
            assert_eq!(
                bytes_of(&Packet::ConnAck(Box::new(ack)), p),
                [0x20, 2, 0, code],
                "{p:?} {reason:#x}"
            );
        }
    }
}

#[test]
fn session_present_only_on_success() {
    for p in ALL {
        let ok = ConnAck {
            session_present: true,
            ..ConnAck::default()
        };
        assert_eq!(bytes_of(&Packet::ConnAck(Box::new(ok)), p)[2], 1, "{p:?}");
        let refused = ConnAck {
            session_present: true,
            reason: reason::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        assert_eq!(bytes_of(&Packet::ConnAck(Box::new(refused)), p)[2], 0, "{p:?}");
    }
}

#[test]
fn v3_connack_is_read_by_mqttbytes() {
    let ack = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    let mut buf = BytesMut::from(&bytes_of(&Packet::ConnAck(Box::new(ack)), Protocol::V3_1_1)[..]);
    match v4::read(&mut buf, MAX) {
        Ok(v4::Packet::ConnAck(c)) => {
            assert!(c.session_present);
            assert_eq!(c.code, v4::ConnectReturnCode::Success);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v5_connack_without_properties() {
    let ack = ConnAck {
        reason: reason::BANNED,
        ..ConnAck::default()
    };
    assert_eq!(
        bytes_of(&Packet::ConnAck(Box::new(ack)), Protocol::V5),
        [0x20, 3, 0, 0x8A, 0]
    );
}

#[test]
fn v5_connack_properties_are_read_by_mqttbytes() {
    let ack = ConnAck {
        session_present: true,
        reason: 0,
        properties: ConnAckProperties {
            session_expiry_interval: Some(100),
            receive_maximum: Some(10),
            maximum_qos: Some(1),
            retain_available: Some(false),
            maximum_packet_size: Some(4096),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(8),
            reason_string: Some("welcome".into()),
            user_properties: vec![("b".into(), "1".into()), ("a".into(), "2".into())],
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(45),
            response_information: Some("resp".into()),
            server_reference: Some("other".into()),
            authentication_method: Some("M".into()),
            authentication_data: Some(vec![9, 8].into()),
        },
    };
    let mut buf = BytesMut::from(&bytes_of(&Packet::ConnAck(Box::new(ack)), Protocol::V5)[..]);
    let c = match v5::read(&mut buf, MAX) {
        Ok(v5::Packet::ConnAck(c)) => c,
        other => panic!("{other:?}"),
    };
    assert!(buf.is_empty());
    assert!(c.session_present);
    assert_eq!(c.code, v5::ConnectReturnCode::Success);
    let p = c.properties.expect("properties");
    assert_eq!(p.session_expiry_interval, Some(100));
    assert_eq!(p.receive_max, Some(10));
    assert_eq!(p.max_qos, Some(1));
    assert_eq!(p.retain_available, Some(0));
    assert_eq!(p.max_packet_size, Some(4096));
    assert_eq!(p.assigned_client_identifier.as_deref(), Some("auto-1"));
    assert_eq!(p.topic_alias_max, Some(8));
    assert_eq!(p.reason_string.as_deref(), Some("welcome"));
    assert_eq!(
        p.user_properties,
        vec![("b".into(), "1".into()), ("a".into(), "2".into())]
    );
    assert_eq!(p.wildcard_subscription_available, Some(1));
    assert_eq!(p.subscription_identifiers_available, Some(0));
    assert_eq!(p.shared_subscription_available, Some(1));
    assert_eq!(p.server_keep_alive, Some(45));
    assert_eq!(p.response_information.as_deref(), Some("resp"));
    assert_eq!(p.server_reference.as_deref(), Some("other"));
    assert_eq!(p.authentication_method.as_deref(), Some("M"));
    assert_eq!(p.authentication_data.as_deref(), Some(&[9u8, 8][..]));
}

// ---- acknowledgements ----

#[test]
fn acks_have_their_fixed_headers() {
    for p in ALL {
        let a = Ack::new(0x0102);
        assert_eq!(bytes_of(&Packet::PubAck(a.clone()), p), [0x40, 2, 1, 2]);
        assert_eq!(bytes_of(&Packet::PubRec(a.clone()), p), [0x50, 2, 1, 2]);
        assert_eq!(bytes_of(&Packet::PubRel(a.clone()), p), [0x62, 2, 1, 2]);
        assert_eq!(bytes_of(&Packet::PubComp(a), p), [0x70, 2, 1, 2]);
    }
}

#[test]
fn v3_acks_drop_reason_and_properties() {
    let a = Ack {
        pkid: 1,
        reason: 0x80,
        reason_string: Some("no".into()),
        user_properties: vec![],
    };
    for p in V3 {
        assert_eq!(bytes_of(&Packet::PubAck(a.clone()), p), [0x40, 2, 0, 1]);
    }
}

#[test]
fn v5_ack_forms() {
    let v5 = Protocol::V5;
    assert_eq!(
        bytes_of(&Packet::PubAck(Ack::with_reason(7, 0x10)), v5),
        [0x40, 3, 0, 7, 0x10]
    );
    let a = Ack {
        pkid: 7,
        reason: 0,
        reason_string: Some("ok".into()),
        user_properties: vec![],
    };
    assert_eq!(
        bytes_of(&Packet::PubRec(a), v5),
        [0x50, 9, 0, 7, 0, 5, 0x1F, 0, 2, b'o', b'k']
    );
    let a = Ack {
        pkid: 7,
        reason: 0x92,
        reason_string: None,
        user_properties: vec![("k".into(), "v".into())],
    };
    assert_eq!(
        bytes_of(&Packet::PubComp(a), v5),
        [0x70, 11, 0, 7, 0x92, 7, 0x26, 0, 1, b'k', 0, 1, b'v']
    );
}

#[test]
fn v5_puback_is_read_by_mqttbytes() {
    let a = Ack {
        pkid: 9,
        reason: 0x97,
        reason_string: Some("quota".into()),
        user_properties: vec![],
    };
    let mut buf = BytesMut::from(&bytes_of(&Packet::PubAck(a), Protocol::V5)[..]);
    match v5::read(&mut buf, MAX) {
        Ok(v5::Packet::PubAck(p)) => {
            assert_eq!(p.pkid, 9);
            assert_eq!(p.reason, v5::PubAckReason::QuotaExceeded);
            assert_eq!(p.properties.and_then(|p| p.reason_string).as_deref(), Some("quota"));
        }
        other => panic!("{other:?}"),
    }
}

// ---- SUBACK, UNSUBACK ----

#[test]
fn v3_suback_maps_failures_to_0x80() {
    let a = SubAck {
        pkid: 3,
        reasons: vec![0, 1, 2, 0x87, 0x8F, 0xA2],
        ..SubAck::default()
    };
    for p in V3 {
        assert_eq!(
            bytes_of(&Packet::SubAck(a.clone()), p),
            [0x90, 8, 0, 3, 0, 1, 2, 0x80, 0x80, 0x80]
        );
    }
    let mut buf = BytesMut::from(&bytes_of(&Packet::SubAck(a), Protocol::V3_1_1)[..]);
    match v4::read(&mut buf, MAX) {
        Ok(v4::Packet::SubAck(s)) => assert_eq!(s.return_codes.len(), 6),
        other => panic!("{other:?}"),
    }
}

#[test]
fn v5_suback_keeps_reason_codes_and_properties() {
    let a = SubAck {
        pkid: 3,
        reasons: vec![1, 0x8F],
        reason_string: Some("r".into()),
        user_properties: vec![],
    };
    assert_eq!(
        bytes_of(&Packet::SubAck(a), Protocol::V5),
        [0x90, 9, 0, 3, 4, 0x1F, 0, 1, b'r', 1, 0x8F]
    );
}

#[test]
fn unsuback_per_level() {
    let a = UnsubAck {
        pkid: 4,
        reasons: vec![0, 0x11],
        ..UnsubAck::default()
    };
    for p in V3 {
        assert_eq!(bytes_of(&Packet::UnsubAck(a.clone()), p), [0xB0, 2, 0, 4]);
    }
    assert_eq!(
        bytes_of(&Packet::UnsubAck(a), Protocol::V5),
        [0xB0, 5, 0, 4, 0, 0, 0x11]
    );
}

// ---- PINGRESP, DISCONNECT, AUTH ----

#[test]
fn pingresp_and_pingreq() {
    for p in ALL {
        assert_eq!(bytes_of(&Packet::PingResp, p), [0xD0, 0]);
        assert_eq!(bytes_of(&Packet::PingReq, p), [0xC0, 0]);
    }
}

#[test]
fn server_disconnect_is_v5_only() {
    for p in V3 {
        assert_fails_cleanly(EncodeError::NotInProtocol, |buf| {
            encode(&Packet::Disconnect(Disconnect::with_reason(0x8E)), p, buf)
        });
        assert_fails_cleanly(EncodeError::NotInProtocol, |buf| {
            encode(&Packet::Disconnect(Disconnect::default()), p, buf)
        });
    }
    let v5 = Protocol::V5;
    assert_eq!(bytes_of(&Packet::Disconnect(Disconnect::default()), v5), [0xE0, 0]);
    assert_eq!(
        bytes_of(&Packet::Disconnect(Disconnect::with_reason(0x8E)), v5),
        [0xE0, 1, 0x8E]
    );
    let d = Disconnect {
        reason: 0x9C,
        server_reference: Some("b".into()),
        ..Disconnect::default()
    };
    assert_eq!(
        bytes_of(&Packet::Disconnect(d), v5),
        [0xE0, 6, 0x9C, 4, 0x1C, 0, 1, b'b']
    );
}

#[test]
fn client_disconnect_exists_in_v3() {
    for p in V3 {
        let mut buf = BytesMut::new();
        encode_client(&Packet::Disconnect(Disconnect::default()), p, &mut buf).unwrap();
        assert_eq!(&buf[..], [0xE0, 0]);
        assert_fails_cleanly(EncodeError::NotInProtocol, |buf| {
            encode_client(&Packet::Disconnect(Disconnect::with_reason(0x04)), p, buf)
        });
    }
}

#[test]
fn auth_is_v5_only() {
    for p in V3 {
        assert_fails_cleanly(EncodeError::NotInProtocol, |buf| {
            encode(&Packet::Auth(Auth::default()), p, buf)
        });
    }
    assert_eq!(bytes_of(&Packet::Auth(Auth::default()), Protocol::V5), [0xF0, 0]);
    let a = Auth {
        reason: 0x18,
        method: Some("M".into()),
        data: Some(vec![1].into()),
        ..Auth::default()
    };
    assert_eq!(
        bytes_of(&Packet::Auth(a), Protocol::V5),
        [0xF0, 10, 0x18, 8, 0x15, 0, 1, b'M', 0x16, 0, 1, 1]
    );
}

// ---- field limits ----

#[test]
fn over_long_fields_fail_and_leave_the_buffer_alone() {
    let long = "x".repeat(65_536);
    let exact = "x".repeat(65_535);
    for p in ALL {
        assert_fails_cleanly(EncodeError::FieldTooLong, |buf| {
            encode_publish(&out(&long, b"p"), p, buf).map(drop)
        });
        let mut buf = BytesMut::new();
        assert!(
            encode_publish(&out(&exact, b"p"), p, &mut buf).is_ok(),
            "{p:?} 65535-byte topic"
        );
    }
    let ack = ConnAck {
        properties: ConnAckProperties {
            user_properties: vec![("k".into(), long.clone())],
            ..Default::default()
        },
        ..ConnAck::default()
    };
    assert_fails_cleanly(EncodeError::FieldTooLong, |buf| {
        encode(&Packet::ConnAck(Box::new(ack)), Protocol::V5, buf)
    });
    let d = Disconnect {
        reason_string: Some(long.clone()),
        ..Disconnect::default()
    };
    assert_fails_cleanly(EncodeError::FieldTooLong, |buf| {
        encode(&Packet::Disconnect(d), Protocol::V5, buf)
    });
    let mut c = connect_packet(Protocol::V3_1_1);
    c.password = Some(vec![0; 65_536].into());
    assert_fails_cleanly(EncodeError::FieldTooLong, |buf| {
        encode_client(&Packet::Connect(Box::new(c)), Protocol::V3_1_1, buf)
    });
}

#[test]
fn subscription_identifier_above_varint_range_fails() {
    let ids = [1, 268_435_456];
    let publish = PublishOut {
        subscription_identifiers: &ids,
        ..out("t", b"")
    };
    assert_fails_cleanly(EncodeError::FieldTooLong, |buf| {
        encode_publish(&publish, Protocol::V5, buf).map(drop)
    });
}

// ---- PUBLISH ----

#[test]
fn v3_publish_bytes() {
    let publish = PublishOut {
        qos: QoS::AtLeastOnce,
        pkid: 0x0A0B,
        retain: true,
        dup: true,
        ..out("a/b", b"hi")
    };
    for p in V3 {
        let mut buf = BytesMut::new();
        let n = encode_publish(&publish, p, &mut buf).unwrap();
        assert_eq!(&buf[..], [0x3B, 9, 0, 3, b'a', b'/', b'b', 0x0A, 0x0B, b'h', b'i']);
        assert_eq!(n, buf.len());
    }
}

#[test]
fn dup_is_never_sent_at_qos_0() {
    let mut buf = BytesMut::new();
    encode_publish(
        &PublishOut {
            dup: true,
            ..out("t", b"")
        },
        Protocol::V3_1_1,
        &mut buf,
    )
    .unwrap();
    assert_eq!(buf[0], 0x30);
}

#[test]
fn v3_publish_ignores_v5_fields() {
    let props = PublishProperties {
        content_type: Some("x".into()),
        ..Default::default()
    };
    let publish = PublishOut {
        properties: Some(&props),
        topic_alias: Some(1),
        subscription_identifiers: &[5],
        message_expiry_interval: Some(9),
        ..out("t", b"p")
    };
    let mut buf = BytesMut::new();
    encode_publish(&publish, Protocol::V3_1_1, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x30, 4, 0, 1, b't', b'p']);
}

#[test]
fn v5_publish_without_properties_has_property_length_0() {
    let mut buf = BytesMut::new();
    encode_publish(&out("t", b"p"), Protocol::V5, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x30, 5, 0, 1, b't', 0, b'p']);
}

#[test]
fn v5_publish_property_overrides() {
    // The stored message's own alias, identifiers and expiry must not leak into the delivery.
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(1000),
        topic_alias: Some(77),
        subscription_identifiers: vec![99],
        user_properties: vec![
            ("z".into(), "1".into()),
            ("a".into(), "2".into()),
            ("z".into(), "3".into()),
        ],
        ..Default::default()
    };
    let ids = [1, 300];
    let publish = PublishOut {
        qos: QoS::AtLeastOnce,
        pkid: 5,
        properties: Some(&props),
        topic_alias: Some(2),
        subscription_identifiers: &ids,
        message_expiry_interval: Some(400),
        ..out("t", b"p")
    };
    let mut buf = BytesMut::new();
    let n = encode_publish(&publish, Protocol::V5, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    let expected_props = cat(&[
        &[0x01, 1],
        &[0x02, 0, 0, 0x01, 0x90], // 400
        &[0x26],
        &s("z"),
        &s("1"),
        &[0x26],
        &s("a"),
        &s("2"),
        &[0x26],
        &s("z"),
        &s("3"),
        &[0x23, 0, 2],
        &[0x0B, 1],
        &[0x0B, 0xAC, 0x02], // 300
    ]);
    let body = cat(&[&s("t"), &[0, 5], &[expected_props.len() as u8], &expected_props, b"p"]);
    assert_eq!(&buf[..], &frame(0x32, &body)[..]);

    let got = match v5::read(&mut buf, MAX) {
        Ok(v5::Packet::Publish(p)) => p,
        other => panic!("{other:?}"),
    };
    let p = got.properties.expect("properties");
    assert_eq!(p.topic_alias, Some(2));
    assert_eq!(p.message_expiry_interval, Some(400));
    assert_eq!(p.subscription_identifiers, vec![1, 300]);
    assert_eq!(p.user_properties.len(), 3);
}

#[test]
fn v5_publish_without_stored_properties_still_sends_overrides() {
    let publish = PublishOut {
        message_expiry_interval: Some(1),
        topic_alias: Some(3),
        ..out("", b"")
    };
    let mut buf = BytesMut::new();
    encode_publish(&publish, Protocol::V5, &mut buf).unwrap();
    assert_eq!(&buf[..], [0x30, 11, 0, 0, 8, 0x02, 0, 0, 0, 1, 0x23, 0, 3]);
}

#[test]
fn large_publish_uses_a_four_byte_remaining_length() {
    let payload = vec![7u8; 2_097_152];
    for p in ALL {
        let mut buf = BytesMut::new();
        let n = encode_publish(&out("big", &payload), p, &mut buf).unwrap();
        assert_eq!(n, buf.len());
        let rest = if p.is_v5() { 2 + 3 + 1 } else { 2 + 3 };
        assert_eq!(n, 1 + 4 + rest + payload.len());
        let read = if p.is_v5() {
            matches!(v5::read(&mut buf, usize::MAX), Ok(v5::Packet::Publish(x)) if x.payload.len() == payload.len())
        } else {
            matches!(v4::read(&mut buf, usize::MAX), Ok(v4::Packet::Publish(x)) if x.payload.len() == payload.len())
        };
        assert!(read, "{p:?}");
    }
}

#[test]
fn encode_of_a_publish_packet_matches_encode_publish() {
    let publish = Publish {
        qos: QoS::ExactlyOnce,
        topic: "x/y".into(),
        pkid: 3,
        payload: "data".into(),
        properties: PublishProperties {
            topic_alias: Some(4),
            message_expiry_interval: Some(6),
            ..Default::default()
        },
        ..Publish::default()
    };
    for p in ALL {
        let mut direct = BytesMut::new();
        encode_publish(&PublishOut::from(&publish), p, &mut direct).unwrap();
        assert_eq!(bytes_of(&Packet::Publish(publish.clone()), p), &direct[..], "{p:?}");
    }
}

#[test]
fn encoding_appends_after_existing_bytes() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    encode(&Packet::PingResp, Protocol::V5, &mut buf).unwrap();
    encode(&Packet::PubAck(Ack::new(1)), Protocol::V5, &mut buf).unwrap();
    assert_eq!(&buf[..], [b'x', b'y', 0xD0, 0, 0x40, 2, 0, 1]);
}
