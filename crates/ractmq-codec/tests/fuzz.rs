//! Deterministic fuzzing: random frames and mutations of valid ones must never panic, and whatever decodes
//! must behave like a packet (consumes its frame, re-encodes to itself, decodes the same byte by byte).

mod common;

use bytes::BytesMut;
use common::*;
use ractmq_codec::{encode_client, DecodeError, Decoder, Packet, Protocol};

/// What a decoder did with a whole input: the packets, then how it stopped.
#[derive(Debug, PartialEq)]
struct Outcome {
    packets: Vec<Packet>,
    error: Option<DecodeError>,
    leftover: usize,
}

/// A decoder in state `level`: `None` for a fresh connection.
fn decoder_at(level: Option<Protocol>) -> Decoder {
    match level {
        Some(p) => decoder(p),
        None => Decoder::new(MAX),
    }
}

fn decode_all(level: Option<Protocol>, input: &[u8]) -> Outcome {
    let mut d = decoder_at(level);
    let mut buf = BytesMut::from(input);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        match d.decode(&mut buf) {
            Ok(Some(p)) => {
                assert!(buf.len() < before, "{} decoded from nothing", p.kind());
                check_reencodes(&p, d.protocol());
                packets.push(p);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                return Outcome {
                    packets,
                    error: None,
                    leftover: before,
                };
            }
            Err(e) => {
                assert_not_from_mqttbytes(&e, input);
                return Outcome {
                    packets,
                    error: Some(e),
                    leftover: buf.len(),
                };
            }
        }
    }
}

/// Our validation runs before mqttbytes' readers and must refuse everything they would: an error mapped
/// from mqttbytes (its message starts with "mqttbytes") means the two layers disagree about a frame.
fn assert_not_from_mqttbytes(e: &DecodeError, input: &[u8]) {
    if let DecodeError::Malformed(why) | DecodeError::ProtocolError(why) = e {
        assert!(
            !why.starts_with("mqttbytes"),
            "mqttbytes refused what our checks accepted ({why}): {input:02x?}"
        );
    }
}

/// Feeds `input` one byte at a time; the leftover is not comparable after an error, so it is zeroed then.
fn decode_bytewise(level: Option<Protocol>, input: &[u8]) -> Outcome {
    let mut d = decoder_at(level);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    for &b in input {
        buf.extend_from_slice(&[b]);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(p)) => packets.push(p),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        packets,
                        error: Some(e),
                        leftover: 0,
                    }
                }
            }
        }
    }
    Outcome {
        packets,
        error: None,
        leftover: buf.len(),
    }
}

/// A decoded packet is one the encoder can write, and writing it gives back the same packet.
fn check_reencodes(p: &Packet, protocol: Option<Protocol>) {
    let protocol = protocol.expect("a packet was decoded, so the level is known");
    let mut buf = BytesMut::new();
    encode_client(p, protocol, &mut buf).unwrap_or_else(|e| panic!("{p:?} does not re-encode: {e}"));
    let mut d = match p {
        Packet::Connect(_) => Decoder::new(MAX),
        _ => decoder(protocol),
    };
    let again = d.decode(&mut buf);
    assert_eq!(again.as_ref(), Ok(&Some(p.clone())), "re-encoded {} differs", p.kind());
    assert!(buf.is_empty());
}

const LEVELS: [Option<Protocol>; 4] = [None, Some(Protocol::V3_1), Some(Protocol::V3_1_1), Some(Protocol::V5)];

/// First bytes a client could plausibly send, so that most frames get past the header.
const FIRST_BYTES: [u8; 15] = [
    0x10, 0x30, 0x32, 0x34, 0x3B, 0x40, 0x50, 0x62, 0x70, 0x82, 0xA2, 0xC0, 0xE0, 0xF0, 0x3D,
];

fn random_frame(rng: &mut Rng, connected: bool) -> Vec<u8> {
    let byte1 = if !connected && rng.chance(70) {
        0x10
    } else if rng.chance(85) {
        FIRST_BYTES[rng.below(FIRST_BYTES.len())]
    } else {
        rng.byte()
    };
    let mut body: Vec<u8> = Vec::new();
    if byte1 == 0x10 && rng.chance(60) {
        // Get CONNECT past level detection so its flags, properties and payload are exercised.
        let prefixes: [&[u8]; 3] = [b"\0\x06MQIsdp\x03", b"\0\x04MQTT\x04", b"\0\x04MQTT\x05"];
        body.extend_from_slice(prefixes[rng.below(3)]);
    }
    // Build the body from field-shaped pieces so that many frames get past the first field.
    let budget = rng.below(63 - body.len());
    while body.len() < budget {
        match rng.below(6) {
            0 => {
                let n = rng.below(4);
                body.extend_from_slice(&[0, n as u8]);
                body.extend((0..n).map(|_| b"ab/+#\0\xFF"[rng.below(7)]));
            }
            1 => body.extend_from_slice(&[0, 1 + rng.below(3) as u8]),
            2 => {
                const IDS: [u8; 14] = [1, 2, 3, 8, 9, 0x0B, 0x11, 0x15, 0x16, 0x17, 0x18, 0x1F, 0x23, 0x26];
                body.push(IDS[rng.below(IDS.len())]);
            }
            3 => body.push(rng.byte()),
            _ => body.push(rng.below(4) as u8),
        }
    }
    body.truncate(62);
    if rng.chance(85) {
        frame(byte1, &body)
    } else {
        let mut out = vec![byte1, rng.byte()];
        out.extend_from_slice(&body);
        out.truncate(64);
        out
    }
}

#[test]
fn random_frames_do_not_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut decoded = 0;
    for _ in 0..200_000 {
        let level = LEVELS[rng.below(LEVELS.len())];
        let input = random_frame(&mut rng, level.is_some());
        decoded += decode_all(level, &input).packets.len();
    }
    // Not a correctness bound: it shows the generator reaches past the header checks.
    assert!(decoded > 2_000, "only {decoded} random frames decoded");
}

fn corpus(protocol: Protocol) -> Vec<u8> {
    let v5 = protocol.is_v5();
    let mut stream = BytesMut::new();
    let mut connect = connect_packet(protocol);
    connect.username = Some("u".into());
    connect.password = Some(vec![0, 1].into());
    connect.will = Some(ractmq_codec::Will {
        topic: "w".into(),
        payload: "x".into(),
        ..Default::default()
    });
    if v5 {
        connect.properties.receive_maximum = Some(3);
        connect.properties.user_properties = vec![("a".into(), "b".into())];
        connect.will.as_mut().unwrap().delay_interval = Some(1);
    }
    let mut packets = vec![Packet::Connect(Box::new(connect))];
    let mut publish = ractmq_codec::Publish {
        qos: ractmq_codec::QoS::AtLeastOnce,
        topic: "a/b".into(),
        pkid: 1,
        payload: "p".into(),
        ..Default::default()
    };
    if v5 {
        publish.properties.topic_alias = Some(1);
        publish.properties.content_type = Some("c".into());
    }
    packets.push(Packet::Publish(publish));
    packets.push(Packet::PubRel(ractmq_codec::Ack::new(1)));
    packets.push(Packet::Subscribe(ractmq_codec::Subscribe {
        pkid: 2,
        filters: vec![ractmq_codec::SubscriptionRequest {
            filter: "a/+".into(),
            ..Default::default()
        }],
        subscription_identifier: v5.then_some(5),
        ..Default::default()
    }));
    packets.push(Packet::Unsubscribe(ractmq_codec::Unsubscribe {
        pkid: 3,
        filters: vec!["a/+".into()],
        ..Default::default()
    }));
    packets.push(Packet::PingReq);
    if v5 {
        packets.push(Packet::Auth(ractmq_codec::Auth {
            reason: 0x18,
            method: Some("m".into()),
            ..Default::default()
        }));
        packets.push(Packet::Disconnect(ractmq_codec::Disconnect::with_reason(0x04)));
    } else {
        packets.push(Packet::Disconnect(Default::default()));
    }
    for p in &packets {
        encode_client(p, protocol, &mut stream).unwrap();
    }
    stream.to_vec()
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        if input.is_empty() {
            input.push(rng.byte());
        }
        let at = rng.below(input.len());
        match rng.below(6) {
            0 => input[at] ^= 1 << rng.below(8),
            1 => input[at] = rng.byte(),
            2 => input.insert(at, rng.byte()),
            3 => {
                input.remove(at);
            }
            4 => input.truncate(at),
            _ => input[at] = input[at].wrapping_add(1),
        }
    }
}

#[test]
fn mutated_valid_streams_do_not_panic_and_decode_the_same_bytewise() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for protocol in ALL {
        let valid = corpus(protocol);
        let whole = decode_all(None, &valid);
        assert_eq!(whole.error, None);
        assert_eq!(whole.leftover, 0);
        for i in 0..50_000 {
            let mut input = valid.clone();
            mutate(&mut rng, &mut input);
            let whole = decode_all(None, &input);
            // Byte-by-byte delivery is slow in debug builds; a sample is enough.
            if i % 10 == 0 {
                let bytewise = decode_bytewise(None, &input);
                let mut expected = whole;
                if expected.error.is_some() {
                    expected.leftover = 0;
                }
                assert_eq!(bytewise, expected, "{protocol:?} {input:02x?}");
            }
        }
    }
}
