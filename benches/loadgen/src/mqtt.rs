//! Why this exists: the few MQTT 3.1.1 frames the load generator needs, encoded and decoded by hand so that
//! the generator spends as little CPU as possible (no client library, no per-packet allocation).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const SUBACK: u8 = 9;
pub const PINGRESP: u8 = 13;

pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];

/// Bytes of the payload stamp: stream id (u32), sequence number (u32), send time in ns (u64), little endian.
pub const STAMP_LEN: usize = 16;

fn put_remaining_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// CONNECT, protocol level 4 (3.1.1), no will, no credentials; `clean` false asks for a persistent session
/// (clean session 0).
pub fn connect(out: &mut Vec<u8>, client_id: &str, keepalive: u16, clean: bool) {
    out.push(0x10);
    put_remaining_len(out, 10 + 2 + client_id.len());
    put_str(out, b"MQTT");
    out.push(4);
    out.push(if clean { 0x02 } else { 0x00 });
    out.extend_from_slice(&keepalive.to_be_bytes());
    put_str(out, client_id.as_bytes());
}

pub fn subscribe(out: &mut Vec<u8>, pid: u16, topic: &str, qos: u8) {
    out.push(0x82);
    put_remaining_len(out, 2 + 2 + topic.len() + 1);
    out.extend_from_slice(&pid.to_be_bytes());
    put_str(out, topic.as_bytes());
    out.push(qos);
}

pub fn publish(out: &mut Vec<u8>, topic: &[u8], qos: u8, pid: u16, payload: &[u8]) {
    out.push(0x30 | (qos << 1));
    let pid_len = if qos > 0 { 2 } else { 0 };
    put_remaining_len(out, 2 + topic.len() + pid_len + payload.len());
    put_str(out, topic);
    if qos > 0 {
        out.extend_from_slice(&pid.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

pub fn puback(out: &mut Vec<u8>, pid: u16) {
    let [hi, lo] = pid.to_be_bytes();
    out.extend_from_slice(&[0x40, 0x02, hi, lo]);
}

pub fn stamp(payload: &mut [u8], stream: u32, seq: u32, ts_ns: u64) {
    payload[0..4].copy_from_slice(&stream.to_le_bytes());
    payload[4..8].copy_from_slice(&seq.to_le_bytes());
    payload[8..16].copy_from_slice(&ts_ns.to_le_bytes());
}

pub fn read_stamp(payload: &[u8]) -> Option<(u32, u32, u64)> {
    if payload.len() < STAMP_LEN {
        return None;
    }
    let stream = u32::from_le_bytes(payload[0..4].try_into().ok()?);
    let seq = u32::from_le_bytes(payload[4..8].try_into().ok()?);
    let ts = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    Some((stream, seq, ts))
}

pub struct Frame<'a> {
    pub kind: u8,
    pub flags: u8,
    pub body: &'a [u8],
}

pub struct Publish<'a> {
    pub qos: u8,
    pub pid: u16,
    pub payload: &'a [u8],
}

pub fn parse_publish(flags: u8, body: &[u8]) -> Option<Publish<'_>> {
    let qos = (flags >> 1) & 3;
    if body.len() < 2 {
        return None;
    }
    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2 + topic_len;
    let mut pid = 0;
    if qos > 0 {
        if body.len() < at + 2 {
            return None;
        }
        pid = u16::from_be_bytes([body[at], body[at + 1]]);
        at += 2;
    }
    if body.len() < at {
        return None;
    }
    Some(Publish {
        qos,
        pid,
        payload: &body[at..],
    })
}

/// Parses the fixed header at the start of `buf`: Ok(Some((header length, total frame length))) when the whole
/// frame is there, Ok(None) when more bytes are needed.
fn frame_bounds(buf: &[u8]) -> io::Result<Option<(usize, usize)>> {
    let mut len = 0usize;
    let mut shift = 0;
    for i in 1..5 {
        let Some(&byte) = buf.get(i) else { return Ok(None) };
        len |= ((byte & 0x7F) as usize) << shift;
        if byte & 0x80 == 0 {
            let total = i + 1 + len;
            return Ok(if buf.len() >= total { Some((i + 1, total)) } else { None });
        }
        shift += 7;
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "malformed remaining length"))
}

/// A read buffer that yields whole frames without copying them.
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    pub fn new(capacity: usize) -> Self {
        Reader {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// Reads once from `src`; returns the bytes read (0 at end of stream).
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end > self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = src.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    pub fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let at = self.start;
        let Some((header, total)) = frame_bounds(&self.buf[at..self.end])? else {
            return Ok(None);
        };
        self.start += total;
        let first = self.buf[at];
        Ok(Some(Frame {
            kind: first >> 4,
            flags: first & 0x0F,
            body: &self.buf[at + header..at + total],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn publish_round_trips_through_the_reader() {
        let mut out = Vec::new();
        let mut payload = vec![0u8; 64];
        stamp(&mut payload, 7, 42, 123_456_789);
        publish(&mut out, b"a/b", 1, 9, &payload);
        publish(&mut out, b"a/b", 0, 0, &payload);
        puback(&mut out, 513);
        // a payload long enough for a two-byte remaining length
        publish(&mut out, b"t", 0, 0, &[0u8; 300]);
        let mut src: &[u8] = &out;
        let mut rd = Reader::new(16);
        let mut seen = Vec::new();
        while rd.fill(&mut src).await.unwrap() > 0 {
            while let Some(f) = rd.next_frame().unwrap() {
                match f.kind {
                    PUBLISH => {
                        let p = parse_publish(f.flags, f.body).unwrap();
                        seen.push((p.qos, p.pid, p.payload.len(), read_stamp(p.payload)));
                    }
                    PUBACK => seen.push((9, u16::from_be_bytes([f.body[0], f.body[1]]), 0, None)),
                    _ => panic!("unexpected frame"),
                }
            }
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], (1, 9, 64, Some((7, 42, 123_456_789))));
        assert_eq!(seen[1], (0, 0, 64, Some((7, 42, 123_456_789))));
        assert_eq!(seen[2], (9, 513, 0, None));
        assert_eq!(seen[3].2, 300);
    }

    #[test]
    fn connect_and_subscribe_have_the_right_lengths() {
        let mut out = Vec::new();
        connect(&mut out, "abc", 600, true);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert_eq!(&out[2..8], b"\x00\x04MQTT");
        assert_eq!(out[9], 0x02, "clean session");
        out.clear();
        connect(&mut out, "abc", 600, false);
        assert_eq!(out[9], 0x00, "persistent session");
        out.clear();
        subscribe(&mut out, 1, "x/y", 1);
        assert_eq!(out, vec![0x82, 8, 0, 1, 0, 3, b'x', b'/', b'y', 1]);
    }
}
