//! Tracing one client's packets as they pass, for `ractmq ctl trace` and the REST API: who is traced, where the
//! lines go, and how a frame is named. The session actor records lines here; the kernel holds the [`Traces`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Most lines a trace may fall behind by before lines are dropped (and counted in the stream).
pub const TRACE_BUFFER: usize = 1024;

/// The clients being traced and where their packets go: one stream per client at a time.
#[derive(Debug, Default)]
pub struct Traces {
    by_client: Mutex<HashMap<String, mpsc::Sender<String>>>,
    /// How many clients are traced: the session's check when none is, one atomic load.
    active: AtomicUsize,
    pub dropped: AtomicUsize,
}

impl Traces {
    /// Trace `client_id` from now on; a new trace of the same client replaces the old.
    pub fn start(&self, client_id: &str) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(TRACE_BUFFER);
        let mut by_client = self.by_client.lock();
        by_client.insert(client_id.to_string(), tx);
        self.active.store(by_client.len(), Ordering::Release);
        rx
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// A line about `client_id`'s packets, if it is traced; a reader that went away ends the trace.
    pub fn record(&self, client_id: &str, line: impl FnOnce() -> String) {
        let mut by_client = self.by_client.lock();
        let Some(tx) = by_client.get(client_id) else {
            return;
        };
        match tx.try_send(line()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                by_client.remove(client_id);
                self.active.store(by_client.len(), Ordering::Release);
            }
        }
    }
}

/// Longest trace line (a packet's debug form can carry a large payload).
const TRACE_LINE_MAX: usize = 1000;

/// A traced line, cut to [`TRACE_LINE_MAX`] bytes.
pub fn trace_line(direction: &str, what: String) -> String {
    let mut line = format!("{direction} {what}");
    if line.len() > TRACE_LINE_MAX {
        let mut end = TRACE_LINE_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push('…');
    }
    line
}

/// The MQTT control packets in `bytes` as encoded for the client, named by type with their size: what a
/// trace shows of outgoing traffic without decoding it again.
pub fn describe_frames(bytes: &[u8]) -> Vec<String> {
    const NAMES: [&str; 16] = [
        "RESERVED",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let kind = NAMES[usize::from(bytes[at] >> 4)];
        let (mut len, mut shift, mut i) = (0usize, 0, at + 1);
        while i < bytes.len() && shift < 28 {
            len |= usize::from(bytes[i] & 0x7f) << shift;
            shift += 7;
            i += 1;
            if bytes[i - 1] & 0x80 == 0 {
                break;
            }
        }
        let total = i - at + len;
        out.push(format!("{kind} ({total} bytes)"));
        at += total;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_frames_are_named_with_their_size() {
        let bytes = [0x20, 0x02, 0x00, 0x00, 0xd0, 0x00, 0x30, 0x03, 0x00, 0x01, b'a'];
        assert_eq!(
            describe_frames(&bytes),
            ["CONNACK (4 bytes)", "PINGRESP (2 bytes)", "PUBLISH (5 bytes)"]
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_character() {
        let line = trace_line("in", "é".repeat(2000));
        assert!(line.len() <= TRACE_LINE_MAX + '…'.len_utf8());
        assert!(line.starts_with("in é"));
    }
}
