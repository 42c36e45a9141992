//! What operators read and do through the REST API and `ractmq ctl`: the clients, their subscriptions, the
//! routes, the retained messages, and a client's packets as they pass (trace).
//!
//! Everything here reads the session store, the router and the counters, which outlive the actors, so an
//! answer never waits on a busy session; acting on a client (kick) goes through its session supervisor like
//! any other message to a session.

use std::sync::Arc;
use std::time::SystemTime;

use ractmq_codec::{reason, Protocol, QoS};
use ractmq_protocol::Message;

use crate::kernel::Kernel;
use crate::routes::RouteKey;
use crate::session_msg::SessionMsg;
use crate::session_msg::SessionSupMsg;
use crate::session_store::SessionShared;

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
