//! Takeover across nodes, both ends: asking every other node for a client's session when it connects here
//! ([`RemoteSessions`], called by the broker before the connection attaches), and answering another node
//! that asks (the forwarder hands the question to [`answer`]).
//!
//! A node that does not answer within [`TAKEOVER_TIMEOUT`] is taken to have no session: the client is not
//! kept waiting for a node that is about to be found down. Should that node still hold a session of the
//! client (a partition), there are two until it is told again; see docs/clustering.md.
//!
//! The node that gives a session up relays what still reaches it for the session (`ractmq_broker::moving`).
//! Relayed messages can arrive before the answer that carries the session: they wait in [`Shared::arriving`]
//! (at most [`MAX_ARRIVING`] messages and [`MAX_ARRIVING_BYTES`] per client) until the session is imported.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ractmq_broker::{Congestion, Metrics, Node, RemoteSessions, SessionHandover};
use ractmq_protocol::Message;
use tokio::sync::mpsc;

use crate::forwarder_ref::{forwarder_of, ForwarderMsg};
use crate::state::{Members, Shared};
use crate::stats::ClusterStats;
use crate::wire::{self, TakeOver, TakenOver, Wire};
use crate::wire_message::message_size;

/// Longest a connecting client waits for the other nodes to give up its session.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(3);

/// Relayed messages held for one client while its session is on its way here, by number and by size (that of
/// a handed-over session's messages); more are dropped (and counted with the messages dropped on the way to
/// other nodes).
pub const MAX_ARRIVING: usize = 10_000;
pub const MAX_ARRIVING_BYTES: usize = 8 << 20;

pub struct Sessions {
    pub shared: Arc<Shared>,
    /// Weak: the broker holds this.
    pub broker: Weak<dyn Node>,
}

impl RemoteSessions for Sessions {
    fn take_over<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
    ) -> Pin<Box<dyn Future<Output = Option<SessionHandover>> + Send + 'a>> {
        Box::pin(take_over(&self.shared, client_id, clean_start))
    }

    fn taken_over(&self, client_id: &str) {
        let held = self.shared.arriving.lock().remove(client_id);
        if let (Some(held), Some(broker)) = (held, self.broker.upgrade()) {
            // The session's own connection is not reading yet: nothing to hold.
            let mut congestion = Congestion::default();
            for (message, members) in held.messages {
                broker
                    .router()
                    .route_relayed(message, client_id, &members, &mut congestion);
            }
        }
    }
}

/// A message the node a session came from relayed for `client`: held while that session is still on its way,
/// routed to it otherwise.
pub fn relayed(
    shared: &Shared,
    broker: &dyn Node,
    message: Arc<Message>,
    members: Members,
    client: String,
    congestion: &mut Congestion,
) {
    ClusterStats::add(&shared.stats.relayed_in, 1);
    {
        let mut arriving = shared.arriving.lock();
        if let Some(held) = arriving.get_mut(&client) {
            let size = message_size(&message);
            if held.messages.len() < MAX_ARRIVING && held.bytes + size <= MAX_ARRIVING_BYTES {
                held.bytes += size;
                held.messages.push((message, members));
            } else {
                Metrics::add(&broker.metrics().dropped_forward, 1);
            }
            return;
        }
    }
    broker.router().route_relayed(message, &client, &members, congestion);
}

async fn take_over(shared: &Shared, client_id: &str, clean_start: bool) -> Option<SessionHandover> {
    let peers: Vec<_> = shared.peers_up.load().iter().filter_map(|p| forwarder_of(p)).collect();
    if peers.is_empty() {
        return None;
    }
    if !clean_start {
        shared.arriving.lock().entry(client_id.to_string()).or_default();
    }
    let request = shared.next_request.fetch_add(1, Ordering::Relaxed);
    let (tx, mut answers) = mpsc::channel(peers.len());
    shared.takeovers.lock().insert(request, tx);
    let ask = wire::encode(&Wire::TakeOver(TakeOver {
        from: shared.config.node_name.clone(),
        request,
        client_id: client_id.to_string(),
        clean_start,
    }));
    let mut asked = 0;
    for peer in peers {
        if peer.send_message(ForwarderMsg::Peer(ask.clone())).is_ok() {
            asked += 1;
        }
    }
    let deadline = tokio::time::Instant::now() + TAKEOVER_TIMEOUT;
    let mut found = None;
    for _ in 0..asked {
        match tokio::time::timeout_at(deadline, answers.recv()).await {
            Ok(Some(session)) => found = found.or(session),
            _ => {
                tracing::debug!(client = client_id, "a node did not answer a takeover in time");
                break;
            }
        }
    }
    shared.takeovers.lock().remove(&request);
    let session = found?;
    ClusterStats::add(&shared.stats.sessions_taken_over, 1);
    Some(crate::wire_session::into_handover(session, Instant::now()))
}

/// Another node asks for a session: give it up here and send back what it held.
pub async fn answer(shared: Arc<Shared>, broker: Arc<dyn Node>, request: TakeOver) {
    let handover = broker
        .hand_over(&request.client_id, request.clean_start, request.from.as_str().into())
        .await;
    let session = handover.map(|h| {
        ClusterStats::add(&shared.stats.sessions_handed_over, 1);
        let (session, left_out) = crate::wire_session::from_handover(&h, Instant::now());
        ClusterStats::add(&shared.stats.dropped_handover_too_large, left_out as u64);
        session
    });
    let reply = Wire::TakenOver(TakenOver {
        from: shared.config.node_name.clone(),
        request: request.request,
        session: session.map(Box::new),
    });
    if let Some(to) = forwarder_of(&request.from) {
        let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&reply)));
    }
}
