//! Encoding primitives that either count or write.
//!
//! Every encoder runs its body twice over the same generic code: once into a [`Counter`] to learn the
//! remaining length (and to find any field that cannot be encoded), then into the buffer. Lengths therefore
//! cannot disagree with what is written, nothing is written when a field is invalid, and no temporary buffer
//! is allocated.

use bytes::{BufMut, BytesMut};

use crate::frame::{varint_len, MAX_VARINT};
use crate::{EncodeError, UserProperty};

pub(crate) type EncodeResult<T = ()> = std::result::Result<T, EncodeError>;

pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// Values above the four-byte maximum cannot be expressed; they are reported as a field too long.
    fn varint(&mut self, mut v: usize) -> EncodeResult {
        if v > MAX_VARINT {
            return Err(EncodeError::FieldTooLong);
        }
        loop {
            let byte = (v % 128) as u8;
            v /= 128;
            if v == 0 {
                self.u8(byte);
                return Ok(());
            }
            self.u8(byte | 0x80);
        }
    }

    /// Binary Data; refuses what a two-byte length cannot describe instead of truncating it.
    fn binary(&mut self, b: &[u8]) -> EncodeResult {
        let len = u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong)?;
        self.u16(len);
        self.put(b);
        Ok(())
    }

    fn string(&mut self, s: &str) -> EncodeResult {
        self.binary(s.as_bytes())
    }

    fn prop_u8(&mut self, id: u8, v: Option<u8>) {
        if let Some(v) = v {
            self.u8(id);
            self.u8(v);
        }
    }

    fn prop_bool(&mut self, id: u8, v: Option<bool>) {
        self.prop_u8(id, v.map(u8::from));
    }

    fn prop_u16(&mut self, id: u8, v: Option<u16>) {
        if let Some(v) = v {
            self.u8(id);
            self.u16(v);
        }
    }

    fn prop_u32(&mut self, id: u8, v: Option<u32>) {
        if let Some(v) = v {
            self.u8(id);
            self.u32(v);
        }
    }

    fn prop_varint(&mut self, id: u8, v: u32) -> EncodeResult {
        self.u8(id);
        self.varint(v as usize)
    }

    fn prop_str(&mut self, id: u8, v: Option<&str>) -> EncodeResult {
        match v {
            Some(v) => {
                self.u8(id);
                self.string(v)
            }
            None => Ok(()),
        }
    }

    fn prop_bin(&mut self, id: u8, v: Option<&[u8]>) -> EncodeResult {
        match v {
            Some(v) => {
                self.u8(id);
                self.binary(v)
            }
            None => Ok(()),
        }
    }

    /// User properties in the order given: their order is part of the message.
    fn user_props(&mut self, props: &[UserProperty]) -> EncodeResult {
        for (name, value) in props {
            self.u8(crate::v5_props::USER_PROPERTY);
            self.string(name)?;
            self.string(value)?;
        }
        Ok(())
    }
}

/// Counts bytes instead of writing them.
pub(crate) struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn u8(&mut self, v: u8) {
        self.put_u8(v);
    }
}

/// Writes the fixed header of a packet whose remaining length is `len`; returns the bytes written.
pub(crate) fn header(buf: &mut BytesMut, byte1: u8, len: usize) -> EncodeResult<usize> {
    if len > MAX_VARINT {
        return Err(EncodeError::FieldTooLong);
    }
    let header_len = 1 + varint_len(len);
    buf.reserve(header_len + len);
    buf.put_u8(byte1);
    buf.varint(len)?;
    Ok(header_len)
}

/// Appends one packet to a `BytesMut`: the fixed header, then `$body`, which is evaluated twice with `$s`
/// bound first to a [`Counter`] and then to the buffer. Evaluates to the bytes written; on error the buffer
/// is truncated back to where it was.
macro_rules! frame {
    ($buf:expr, $byte1:expr, |$s:ident| $body:expr) => {{
        let buf: &mut ::bytes::BytesMut = $buf;
        let len = {
            let mut counter = $crate::sink::Counter(0);
            let $s = &mut counter;
            $body?;
            counter.0
        };
        let start = buf.len();
        let written = (|| {
            let header_len = $crate::sink::header(buf, $byte1, len)?;
            let $s = &mut *buf;
            $body?;
            Ok::<usize, $crate::EncodeError>(header_len + len)
        })();
        if written.is_err() {
            buf.truncate(start);
        }
        written
    }};
}

/// Writes a Property Length and the properties `$body` writes, evaluating `$body` once with `$p` a
/// [`Counter`] and once with `$p` the sink `$s`.
macro_rules! properties {
    ($s:ident, |$p:ident| $body:expr) => {{
        let len = {
            let mut counter = $crate::sink::Counter(0);
            let $p = &mut counter;
            $body?;
            counter.0
        };
        $s.varint(len)?;
        let $p = &mut *$s;
        $body
    }};
}

pub(crate) use {frame, properties};
