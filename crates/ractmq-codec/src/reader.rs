//! A bounds-checked cursor over one frame's body.
//!
//! Every length in a packet is claimed by the peer, so every read is checked against what is actually there
//! and fails as Malformed instead of panicking. Binary fields and payloads are sliced out of the frame
//! without copying; strings are checked for UTF-8 and U+0000 (which mqttbytes lets through).

use bytes::{Buf, Bytes};

use crate::frame::read_varint;
use crate::DecodeError;

type Result<T> = std::result::Result<T, DecodeError>;

const SHORT: DecodeError = DecodeError::Malformed("packet shorter than its fields");

pub(crate) struct Reader {
    bytes: Bytes,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Reader {
        Reader { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        if self.bytes.is_empty() {
            return Err(SHORT);
        }
        Ok(self.bytes.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        if self.bytes.len() < 2 {
            return Err(SHORT);
        }
        Ok(self.bytes.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        if self.bytes.len() < 4 {
            return Err(SHORT);
        }
        Ok(self.bytes.get_u32())
    }

    pub(crate) fn varint(&mut self) -> Result<usize> {
        match read_varint(&self.bytes)? {
            Some((value, used)) => {
                self.bytes.advance(used);
                Ok(value)
            }
            None => Err(SHORT),
        }
    }

    /// The next `len` bytes, which must be present.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes> {
        if self.bytes.len() < len {
            return Err(SHORT);
        }
        Ok(self.bytes.split_to(len))
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A UTF-8 Encoded String, handed to `f` while still borrowed from the frame so that the caller picks
    /// the one allocation it needs, or none when it only validates.
    pub(crate) fn with_str<T>(&mut self, f: impl FnOnce(&str) -> T) -> Result<T> {
        let len = usize::from(self.u16()?);
        let raw = self.bytes.get(..len).ok_or(SHORT)?;
        let out = f(checked_utf8(raw)?);
        self.bytes.advance(len);
        Ok(out)
    }

    /// True, with the string skipped, if the next UTF-8 Encoded String is `same`, a string read (and so
    /// checked) before: compared as bytes, it needs no second UTF-8 check. False leaves the reader as it was.
    pub(crate) fn skip_if_str(&mut self, same: &str) -> bool {
        let n = same.len();
        let found = u16::try_from(n).is_ok_and(|len| {
            self.bytes.len() >= 2 + n
                && self.bytes[..2] == len.to_be_bytes()
                && self.bytes[2..2 + n] == *same.as_bytes()
        });
        if found {
            self.bytes.advance(2 + n);
        }
        found
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        self.with_str(str::to_owned)
    }

    /// Everything left (a PUBLISH payload), as a slice of the frame.
    pub(crate) fn rest(self) -> Bytes {
        self.bytes
    }

    /// Fails if any byte is left: trailing bytes after a packet's last field make it malformed.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("trailing bytes after the packet's fields"))
        }
    }
}

fn checked_utf8(raw: &[u8]) -> Result<&str> {
    let s = std::str::from_utf8(raw).map_err(|_| DecodeError::Malformed("string is not valid UTF-8"))?;
    if s.contains('\0') {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(s)
}
