//! Frame builders and a connected decoder shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use bytes::{BufMut, Bytes, BytesMut};
use ractmq_codec::{encode_client, Connect, DecodeError, Decoder, Packet, Protocol, QoS};

pub const MAX: usize = 1 << 20;

/// A frame with a minimal remaining length.
pub fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string or binary field.
pub fn s(v: impl AsRef<[u8]>) -> Vec<u8> {
    let v = v.as_ref();
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v);
    out
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn connect_packet(protocol: Protocol) -> Connect {
    Connect {
        protocol: Some(protocol),
        clean_start: true,
        keep_alive: 30,
        client_id: "c1".into(),
        ..Connect::default()
    }
}

pub fn connect_frame(protocol: Protocol) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_client(&Packet::Connect(Box::new(connect_packet(protocol))), protocol, &mut buf).unwrap();
    buf
}

/// A decoder that has already accepted a minimal CONNECT at `protocol`.
pub fn decoder(protocol: Protocol) -> Decoder {
    let mut d = Decoder::new(MAX);
    let mut buf = connect_frame(protocol);
    match d.decode(&mut buf) {
        Ok(Some(Packet::Connect(_))) => {}
        other => panic!("CONNECT not accepted: {other:?}"),
    }
    assert!(buf.is_empty());
    assert_eq!(d.protocol(), Some(protocol));
    d
}

/// Decodes `bytes` as one whole frame with `d`, asserting that a success consumed exactly the frame.
pub fn decode_with(d: &mut Decoder, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::new();
    buf.put_slice(bytes);
    match d.decode(&mut buf) {
        Ok(Some(p)) => {
            assert!(buf.is_empty(), "{} left {} bytes", p.kind(), buf.len());
            Ok(p)
        }
        Ok(None) => panic!("frame reported incomplete: {bytes:02x?}"),
        Err(e) => Err(e),
    }
}

/// Decodes one whole frame on a connection that negotiated `protocol`.
pub fn decode_at(protocol: Protocol, bytes: &[u8]) -> Result<Packet, DecodeError> {
    decode_with(&mut decoder(protocol), bytes)
}

/// Decodes a CONNECT frame body on a fresh decoder.
pub fn decode_connect(body: &[u8]) -> Result<Packet, DecodeError> {
    decode_with(&mut Decoder::new(MAX), &frame(0x10, body))
}

pub fn is_malformed(r: &Result<Packet, DecodeError>) -> bool {
    matches!(r, Err(DecodeError::Malformed(_)))
}

pub fn is_protocol_error(r: &Result<Packet, DecodeError>) -> bool {
    matches!(r, Err(DecodeError::ProtocolError(_)))
}

pub const ALL: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];
pub const V3: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];

/// xorshift64: enough randomness for fuzzing, and the same sequence on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    pub fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    pub fn pkid(&mut self) -> u16 {
        1 + self.below(0xFFFF) as u16
    }

    pub fn text(&mut self, max: usize, extra: &[&'static str]) -> String {
        const BASE: [&str; 9] = ["a", "b", "/", "é", "ü", "€", "𝄞", "-", "$"];
        let n = self.below(max + 1);
        (0..n)
            .map(|_| {
                if !extra.is_empty() && self.chance(15) {
                    self.pick(extra)
                } else {
                    self.pick(&BASE)
                }
            })
            .collect()
    }

    pub fn topic(&mut self) -> String {
        let t = self.text(12, &[]);
        if t.is_empty() {
            "t".into()
        } else {
            t
        }
    }

    pub fn bytes(&mut self, max: usize) -> Bytes {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect::<Vec<u8>>().into()
    }

    pub fn user_properties(&mut self) -> Vec<(String, String)> {
        let n = if self.chance(50) { 0 } else { self.below(4) };
        (0..n).map(|_| (self.text(5, &[]), self.text(5, &[]))).collect()
    }

    pub fn maybe<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        if self.chance(40) {
            Some(f(self))
        } else {
            None
        }
    }
}
