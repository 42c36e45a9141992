//! Frame builders and a connected decoder shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use bytes::{BufMut, BytesMut};
use ractmq_codec::{encode_client, Connect, DecodeError, Decoder, Packet, Protocol};

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
