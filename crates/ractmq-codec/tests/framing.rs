//! Fixed header, frame size, packet order and stream handling.

mod common;

use bytes::BytesMut;
use common::*;
use ractmq_codec::{
    encode, encode_client, DecodeError, Decoder, Packet, Protocol, Publish, QoS, Subscribe, SubscriptionRequest,
};

#[test]
fn empty_and_partial_header_need_more_without_consuming() {
    let mut d = decoder(Protocol::V3_1_1);
    let mut buf = BytesMut::new();
    assert_eq!(d.decode(&mut buf), Ok(None));
    // Header byte plus an unfinished remaining length.
    let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x80][..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(buf.len(), 3);
}

#[test]
fn incomplete_body_needs_more_without_consuming() {
    let mut d = decoder(Protocol::V3_1_1);
    let full = frame(0x30, &cat(&[&s("a/b"), b"payload"]));
    let mut buf = BytesMut::from(&full[..full.len() - 1]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(&buf[..], &full[..full.len() - 1]);
    buf.extend_from_slice(&full[full.len() - 1..]);
    match d.decode(&mut buf) {
        Ok(Some(Packet::Publish(p))) => assert_eq!(&p.payload[..], b"payload"),
        other => panic!("{other:?}"),
    }
    assert!(buf.is_empty());
}

#[test]
fn non_minimal_remaining_length_is_malformed() {
    // PINGREQ whose remaining length 0 is written in two bytes.
    assert!(is_malformed(&decode_at(Protocol::V3_1_1, &[0xC0, 0x80, 0x00])));
    // 127 written in three bytes.
    let mut d = decoder(Protocol::V5);
    let mut buf = BytesMut::from(&[0x30u8, 0xFF, 0x80, 0x00][..]);
    assert!(matches!(d.decode(&mut buf), Err(DecodeError::Malformed(_))));
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    let mut d = decoder(Protocol::V3_1_1);
    let mut buf = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
    assert!(matches!(d.decode(&mut buf), Err(DecodeError::Malformed(_))));
}

#[test]
fn too_large_is_refused_from_the_header_alone() {
    let mut d = Decoder::new(100);
    let mut buf = connect_frame(Protocol::V3_1_1);
    assert!(matches!(d.decode(&mut buf), Ok(Some(Packet::Connect(_)))));
    // Remaining length 98 + 2 header bytes = 100: fits, so the decoder waits for the body.
    let mut buf = BytesMut::from(&[0x30u8, 98][..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    // 99 + 2 = 101: refused although none of the body has arrived.
    let mut buf = BytesMut::from(&[0x30u8, 99][..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 101, max: 100 })
    );
    // A claimed 256 MB frame is refused just the same.
    let mut buf = BytesMut::from(&[0x30u8, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 100
        })
    );
}

#[test]
fn frame_of_exactly_the_maximum_is_accepted() {
    let mut d = Decoder::new(100);
    let mut buf = connect_frame(Protocol::V3_1_1);
    d.decode(&mut buf).unwrap();
    let body = cat(&[&s("t"), &[b'x'; 95]]);
    let bytes = frame(0x30, &body);
    assert_eq!(bytes.len(), 100);
    assert!(matches!(decode_with(&mut d, &bytes), Ok(Packet::Publish(_))));
}

#[test]
fn too_large_connect_is_refused_before_the_level_is_known() {
    let mut d = Decoder::new(1024);
    let mut buf = BytesMut::from(&[0x10u8, 0xFF, 0x7F][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 16_386, .. })
    ));
}

#[test]
fn first_packet_must_be_connect() {
    for bytes in [&[0xC0u8, 0x00][..], &frame(0x30, &s("a")), &[0xE0, 0x00], &[0xF0, 0x00]] {
        let r = decode_with(&mut Decoder::new(MAX), bytes);
        assert!(is_protocol_error(&r), "{bytes:02x?}: {r:?}");
    }
}

#[test]
fn second_connect_is_a_protocol_error() {
    for p in ALL {
        let mut d = decoder(p);
        let r = decode_with(&mut d, &connect_frame(p));
        assert!(is_protocol_error(&r), "{p:?}: {r:?}");
    }
}

#[test]
fn protocol_is_unknown_until_connect_and_kept_after() {
    let mut d = Decoder::new(MAX);
    assert_eq!(d.protocol(), None);
    let mut buf = connect_frame(Protocol::V3_1);
    d.decode(&mut buf).unwrap();
    assert_eq!(d.protocol(), Some(Protocol::V3_1));
}

#[test]
fn failed_connect_leaves_the_level_unknown() {
    let mut d = Decoder::new(MAX);
    let mut bad = connect_frame(Protocol::V5).to_vec();
    bad.push(0); // trailing byte
    bad[1] += 1;
    assert!(is_malformed(&decode_with(&mut d, &bad)));
    assert_eq!(d.protocol(), None);
}

#[test]
fn wrong_fixed_header_flags_are_malformed() {
    let cases: &[(u8, &[u8])] = &[
        (0x41, &[0, 1]),                // PUBACK
        (0x51, &[0, 1]),                // PUBREC
        (0x60, &[0, 1]),                // PUBREL must be 0010
        (0x63, &[0, 1]),                // PUBREL
        (0x71, &[0, 1]),                // PUBCOMP
        (0x80, &[0, 1, 0, 1, b'a', 0]), // SUBSCRIBE must be 0010
        (0x8A, &[0, 1, 0, 1, b'a', 0]), // SUBSCRIBE
        (0xA0, &[0, 1, 0, 1, b'a']),    // UNSUBSCRIBE must be 0010
        (0xC1, &[]),                    // PINGREQ
        (0xE8, &[]),                    // DISCONNECT
    ];
    for p in ALL {
        for (byte1, body) in cases {
            let r = decode_at(p, &frame(*byte1, body));
            assert!(is_malformed(&r), "{p:?} {byte1:#04x}: {r:?}");
        }
    }
    let r = decode_at(Protocol::V5, &[0xF1, 0x00]);
    assert!(is_malformed(&r), "AUTH flags: {r:?}");
}

#[test]
fn connect_with_flags_is_malformed() {
    let mut bytes = connect_frame(Protocol::V3_1_1).to_vec();
    bytes[0] = 0x1F;
    assert!(is_malformed(&decode_with(&mut Decoder::new(MAX), &bytes)));
}

#[test]
fn publish_qos_3_is_malformed() {
    let body = cat(&[&s("t"), &[0, 1]]);
    for p in ALL {
        assert!(is_malformed(&decode_at(p, &frame(0x36, &body))), "{p:?}");
    }
}

#[test]
fn publish_dup_at_qos_0_is_malformed() {
    for p in ALL {
        assert!(is_malformed(&decode_at(p, &frame(0x38, &s("t")))), "{p:?}");
    }
}

#[test]
fn publish_flag_combinations_decode() {
    let body = cat(&[&s("t"), &[0, 9], b"x"]);
    match decode_at(Protocol::V3_1_1, &frame(0x3D, &body)) {
        Ok(Packet::Publish(p)) => {
            assert!(p.dup && p.retain);
            assert_eq!(p.qos, QoS::ExactlyOnce);
            assert_eq!(p.pkid, 9);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn packets_only_a_server_sends_are_refused() {
    for p in ALL {
        for bytes in [
            &[0x20u8, 2, 0, 0][..],
            &[0x90, 3, 0, 1, 0],
            &[0xB0, 2, 0, 1],
            &[0xD0, 0],
        ] {
            let r = decode_at(p, bytes);
            assert!(is_protocol_error(&r), "{p:?} {bytes:02x?}: {r:?}");
        }
        assert!(is_malformed(&decode_at(p, &[0x00, 0x00])), "{p:?} type 0");
    }
}

#[test]
fn auth_exists_only_in_v5() {
    for p in V3 {
        assert!(is_malformed(&decode_at(p, &[0xF0, 0x00])), "{p:?}");
    }
    assert_eq!(
        decode_at(Protocol::V5, &[0xF0, 0x00]),
        Ok(Packet::Auth(Default::default()))
    );
}

fn sample_stream(protocol: Protocol) -> (BytesMut, Vec<Packet>) {
    let mut packets = vec![Packet::Connect(Box::new(connect_packet(protocol)))];
    packets.push(Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "a/b".into(),
        pkid: 7,
        payload: "hello".into(),
        ..Publish::default()
    }));
    packets.push(Packet::Subscribe(Subscribe {
        pkid: 8,
        filters: vec![SubscriptionRequest {
            filter: "a/#".into(),
            qos: QoS::ExactlyOnce,
            ..SubscriptionRequest::default()
        }],
        ..Subscribe::default()
    }));
    packets.push(Packet::PingReq);
    packets.push(Packet::Disconnect(Default::default()));
    let mut buf = BytesMut::new();
    for p in &packets {
        encode_client(p, protocol, &mut buf).unwrap();
    }
    (buf, packets)
}

#[test]
fn several_packets_in_one_buffer() {
    for p in ALL {
        let (mut buf, expected) = sample_stream(p);
        let mut d = Decoder::new(MAX);
        let mut got = Vec::new();
        while let Some(packet) = d.decode(&mut buf).unwrap() {
            got.push(packet);
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "{p:?}");
    }
}

#[test]
fn byte_by_byte_delivery() {
    for p in ALL {
        let (all, expected) = sample_stream(p);
        let mut d = Decoder::new(MAX);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in all.iter() {
            buf.extend_from_slice(&[byte]);
            while let Some(packet) = d.decode(&mut buf).unwrap() {
                got.push(packet);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, expected, "{p:?}");
    }
}

#[test]
fn server_packets_in_a_stream_are_not_decodable_by_the_server_decoder() {
    // The decoder reads what a client sends; a CONNACK echoed back is refused, not mistaken for something.
    let mut buf = connect_frame(Protocol::V3_1_1);
    encode(&Packet::ConnAck(Default::default()), Protocol::V3_1_1, &mut buf).unwrap();
    let mut d = Decoder::new(MAX);
    assert!(matches!(d.decode(&mut buf), Ok(Some(Packet::Connect(_)))));
    assert!(matches!(d.decode(&mut buf), Err(DecodeError::ProtocolError(_))));
}
