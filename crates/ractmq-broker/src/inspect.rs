//! What operators read and do through the REST API and `ractmq ctl`: the clients, their subscriptions, the
//! routes, the retained messages, and a client's packets as they pass (trace).
//!
//! Everything here reads the session store, the router and the counters, which outlive the actors, so an
//! answer never waits on a busy session; acting on a client (kick) goes through its session supervisor like
//! any other message to a session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use ractmq_codec::{reason, Protocol, QoS};
use ractmq_protocol::Message;
use tokio::sync::mpsc;

use crate::kernel::Kernel;
use crate::routes::RouteKey;
use crate::session_actor::SessionMsg;
use crate::session_store::SessionShared;
use crate::session_sup::SessionSupMsg;

/// One client session as an operator sees it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub connected: bool,
    pub peer: Option<String>,
    pub protocol: Option<&'static str>,
    pub keep_alive: Option<u16>,
    pub username: Option<String>,
    /// Seconds since the Unix epoch, when connected.
    pub connected_at: Option<u64>,
    pub subscriptions: usize,
    /// Messages queued for the client, and sent but not yet acknowledged.
    pub queued: usize,
    /// Bytes queued for the client, as its byte bound counts them.
    pub queued_bytes: usize,
    pub inflight: usize,
    pub expiry_interval: u32,
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

fn client_info(session: &SessionShared) -> ClientInfo {
    let conn = session.conn.lock().clone();
    let (subscriptions, inflight, expiry_interval) = {
        let state = session.state.lock();
        (state.subscriptions.len(), state.inflight.len(), state.expiry_interval)
    };
    let (queued, queued_bytes) = session.queued();
    ClientInfo {
        client_id: session.client_id.to_string(),
        connected: conn.is_some(),
        peer: conn.as_ref().map(|c| c.peer.to_string()),
        protocol: conn.as_ref().map(|c| protocol_name(c.protocol)),
        keep_alive: conn.as_ref().map(|c| c.keep_alive),
        username: conn.as_ref().and_then(|c| c.username.clone()),
        connected_at: conn.as_ref().and_then(|c| {
            c.connected_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        }),
        subscriptions,
        queued,
        queued_bytes,
        inflight,
        expiry_interval,
    }
}

/// Every session of this node, by client id.
pub fn clients(kernel: &Kernel) -> Vec<ClientInfo> {
    let mut all: Vec<ClientInfo> = kernel.store.all().iter().map(|s| client_info(s)).collect();
    all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    all
}

pub fn client(kernel: &Kernel, client_id: &str) -> Option<ClientInfo> {
    kernel.store.get(client_id).map(|s| client_info(&s))
}

/// One subscription of one client.
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    pub client_id: String,
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub subscription_id: Option<u32>,
}

/// Every subscription of this node's sessions, by client id then filter.
pub fn subscriptions(kernel: &Kernel) -> Vec<SubscriptionInfo> {
    let mut all = Vec::new();
    for session in kernel.store.all() {
        let state = session.state.lock();
        for (filter, o) in &state.subscriptions {
            all.push(SubscriptionInfo {
                client_id: session.client_id.to_string(),
                filter: filter.clone(),
                qos: o.qos as u8,
                no_local: o.no_local,
                retain_as_published: o.retain_as_published,
                subscription_id: o.subscription_id,
            });
        }
    }
    all.sort_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
    all
}

/// This node's routes (filters with at least one subscriber here, members of shared groups).
pub fn local_routes(kernel: &Kernel) -> Vec<String> {
    let mut all: Vec<String> = kernel
        .router
        .local_routes()
        .into_iter()
        .map(|r| match r {
            RouteKey::Filter(f) => f.to_string(),
            RouteKey::Shared { group, .. } => group.to_string(),
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Close `client_id`'s connection with 0x98 (Administrative action); its session stays. False if it has no
/// session here.
pub async fn kick(kernel: &Kernel, client_id: &str) -> bool {
    let Some(sup) = kernel.session_sup() else {
        return false;
    };
    ractor::call!(sup, |reply| SessionSupMsg::Send {
        client_id: client_id.to_string(),
        msg: SessionMsg::Kick {
            code: reason::ADMINISTRATIVE_ACTION,
            server_reference: None,
        },
        reply
    })
    .unwrap_or(false)
}

/// The retained messages of this node (every node keeps all of them, see the cluster crate).
pub fn retained(kernel: &Kernel) -> Vec<Arc<Message>> {
    let mut all = kernel.router.retained.read().all();
    all.sort_by(|a, b| a.topic.cmp(&b.topic));
    all
}

/// Clear `topic`'s retained message everywhere, as a client publishing an empty retained message does
/// (subscribers see that empty message). False if there was none here.
pub fn delete_retained(kernel: &Kernel, topic: &str) -> bool {
    if kernel.router.retained.read().get(topic).is_none() {
        return false;
    }
    kernel.router.route(Arc::new(Message::new(
        topic,
        bytes::Bytes::new(),
        QoS::AtMostOnce,
        true,
    )));
    true
}

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
