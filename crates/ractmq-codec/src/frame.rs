//! The fixed header and the Variable Byte Integer, shared by every protocol level.
//!
//! mqttbytes accepts non-minimal remaining lengths and never looks at the flag nibble, and it only reports
//! an oversized packet after buffering it. Reading the header here lets the decoder refuse a frame from its
//! first bytes, before waiting for or allocating the body.

use crate::{DecodeError, Protocol};

/// The largest value a four-byte Variable Byte Integer can carry.
pub(crate) const MAX_VARINT: usize = 268_435_455;

/// Control packet types a server can receive. Types only a server sends are refused in [`packet_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    Unsubscribe,
    PingReq,
    Disconnect,
    Auth,
}

/// Classifies the first byte of a frame and checks its flag nibble. `protocol` is `None` before CONNECT.
///
/// Checked on the first byte alone so that garbage is refused without waiting for a length that may never
/// come.
pub(crate) fn packet_type(byte1: u8, protocol: Option<Protocol>) -> Result<Kind, DecodeError> {
    use DecodeError::{Malformed, ProtocolError};
    let flags = byte1 & 0x0F;
    let (kind, expected_flags) = match byte1 >> 4 {
        0 => return Err(Malformed("reserved packet type 0")),
        1 => (Kind::Connect, 0),
        2 | 9 | 11 | 13 => return Err(ProtocolError("packet type only a server sends")),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(Malformed("PUBLISH with QoS 3"));
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(Malformed("PUBLISH with DUP set at QoS 0"));
            }
            (Kind::Publish, flags)
        }
        4 => (Kind::PubAck, 0),
        5 => (Kind::PubRec, 0),
        6 => (Kind::PubRel, 0b0010),
        7 => (Kind::PubComp, 0),
        8 => (Kind::Subscribe, 0b0010),
        10 => (Kind::Unsubscribe, 0b0010),
        12 => (Kind::PingReq, 0),
        14 => (Kind::Disconnect, 0),
        // 15 is reserved before 5.0; before CONNECT the level is unknown and the order check below applies.
        _ => match protocol {
            Some(p) if !p.is_v5() => return Err(Malformed("AUTH packet before MQTT 5.0")),
            _ => (Kind::Auth, 0),
        },
    };
    if flags != expected_flags {
        return Err(Malformed("invalid fixed header flags"));
    }
    match (protocol.is_some(), kind == Kind::Connect) {
        (false, true) | (true, false) => Ok(kind),
        (false, false) => Err(ProtocolError("first packet is not CONNECT")),
        (true, true) => Err(ProtocolError("second CONNECT")),
    }
}

/// Reads a Variable Byte Integer from the front of `bytes`: `Ok(Some((value, bytes used)))`, or `Ok(None)`
/// when `bytes` ends before the integer does.
pub(crate) fn read_varint(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &b) in bytes.iter().take(4).enumerate() {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            // A zero top group means a shorter encoding existed; the spec requires the shortest.
            if i > 0 && b == 0 {
                return Err(DecodeError::Malformed("non-minimal variable byte integer"));
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        Err(DecodeError::Malformed("variable byte integer longer than 4 bytes"))
    } else {
        Ok(None)
    }
}

/// How many bytes the Variable Byte Integer encoding of `value` takes (`value <= MAX_VARINT`).
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_decode() {
        assert_eq!(read_varint(&[0x00]).unwrap(), Some((0, 1)));
        assert_eq!(read_varint(&[0x7F]).unwrap(), Some((127, 1)));
        assert_eq!(read_varint(&[0x80, 0x01]).unwrap(), Some((128, 2)));
        assert_eq!(read_varint(&[0xFF, 0x7F]).unwrap(), Some((16_383, 2)));
        assert_eq!(read_varint(&[0xFF, 0xFF, 0xFF, 0x7F]).unwrap(), Some((MAX_VARINT, 4)));
    }

    #[test]
    fn varint_incomplete_and_too_long() {
        assert_eq!(read_varint(&[]).unwrap(), None);
        assert_eq!(read_varint(&[0x80, 0x80, 0x80]).unwrap(), None);
        assert!(matches!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn varint_non_minimal_is_malformed() {
        for bytes in [&[0x80, 0x00][..], &[0x81, 0x80, 0x00], &[0xFF, 0x80, 0x80, 0x00]] {
            assert!(
                matches!(read_varint(bytes), Err(DecodeError::Malformed(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn varint_len_matches_encoding_boundaries() {
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(16_383), 2);
        assert_eq!(varint_len(16_384), 3);
        assert_eq!(varint_len(2_097_151), 3);
        assert_eq!(varint_len(2_097_152), 4);
        assert_eq!(varint_len(MAX_VARINT), 4);
    }
}
