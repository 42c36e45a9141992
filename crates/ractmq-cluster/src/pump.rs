//! The pump: the task that sends one other node its queue (see `link.rs`), in numbered batches.
//!
//! It sends at most [`WINDOW`] messages ahead of the node's acknowledgements. It wakes when a publisher
//! queues something or an acknowledgement comes back, and every [`RETRY`] besides, to notice a link that came up
//! while there was nothing to send. Whenever the link it sends over is a new one (the first, or one that
//! came back after a cut), it first tells the node this node's routes and retained messages, which the node
//! may have missed, and the queue starts again from the oldest unacknowledged message. It holds nothing of
//! its own: the forwarder runs one per other node and a restarted forwarder starts them again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractmq_broker::Node;
use ractmq_protocol::Message;
use ractor::{ActorId, ActorRef};

use crate::forwarder::send_all_routes;
use crate::forwarder_ref::{forwarder_of, ForwarderMsg};
use crate::link::Item;
use crate::routing::MAX_FORWARDED_BYTES;
use crate::state::Shared;
use crate::wire::{self, Batch, Forwarded, Wire, WireMessage};
use crate::wire_message::message_size;

/// How often a pump with nothing to do looks for a new link.
pub const RETRY: Duration = Duration::from_millis(200);

/// Most messages sent to a node and not yet acknowledged by it (see `PeerLink::next_batch`).
pub const WINDOW: usize = 8 * BATCH_ITEMS;

/// Most messages in one batch, and the bytes a batch aims to stay under.
pub const BATCH_ITEMS: usize = 1000;
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

pub async fn run(shared: Arc<Shared>, broker: Arc<dyn Node>, node: String) {
    let link = shared.link(&node);
    let mut current: Option<ActorId> = None;
    // Whether this pump had a link to the node before (so that what is queued now is sent again).
    let mut linked_before = false;
    loop {
        tokio::select! {
            _ = link.notify.notified() => {}
            _ = tokio::time::sleep(RETRY) => {}
        }
        let Some(to) = forwarder_of(&node) else {
            current = None;
            continue;
        };
        if current.as_ref() != Some(&to.get_id()) {
            current = Some(to.get_id());
            send_all_routes(&shared, &to);
            send_retained(&shared, broker.as_ref(), &to);
            let unacknowledged = link.len();
            if linked_before && unacknowledged > 0 {
                tracing::info!(
                    "link to node {node} up: sending again the {unacknowledged} messages it had not acknowledged"
                );
            }
            linked_before = true;
        }
        let id = to.get_id();
        while let Some((first_seq, items)) = link.next_batch(&id, WINDOW, BATCH_ITEMS, BATCH_BYTES, item_size) {
            let now = Instant::now();
            let batch = Batch {
                from: shared.config.node_name.clone(),
                incarnation: shared.incarnation,
                first_seq,
                items: items.iter().map(|item| to_forwarded(item, now)).collect(),
            };
            if to
                .send_message(ForwarderMsg::Peer(wire::encode(&Wire::Batch(batch))))
                .is_err()
            {
                link.link_lost();
                current = None;
                break;
            }
        }
    }
}

fn item_size(item: &Item) -> usize {
    message_size(&item.message) + item.shared.iter().map(|(g, m)| g.len() + m.len()).sum::<usize>()
}

fn to_forwarded(item: &Item, now: Instant) -> Forwarded {
    Forwarded {
        message: WireMessage::from_message(&item.message, now),
        deliver: item.deliver,
        shared: item
            .shared
            .iter()
            .map(|(group, member)| (group.to_string(), member.to_string()))
            .collect(),
        relay_to: item.relay_to.as_deref().map(str::to_string),
    }
}

/// Send `to` every retained message of this node (it keeps those it has no newer one for).
fn send_retained(shared: &Shared, broker: &dyn Node, to: &ActorRef<ForwarderMsg>) {
    let now = Instant::now();
    let all: Vec<Arc<Message>> = broker
        .router()
        .retained
        .read()
        .all()
        .iter()
        .filter(|m| !m.is_expired(now) && message_size(m) <= MAX_FORWARDED_BYTES)
        .cloned()
        .collect();
    let mut part = Vec::new();
    let mut bytes = 0;
    for message in all {
        bytes += message_size(&message);
        part.push(WireMessage::from_message(&message, now));
        if part.len() >= BATCH_ITEMS || bytes >= BATCH_BYTES {
            let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&Wire::Retained(std::mem::take(
                &mut part,
            )))));
            bytes = 0;
        }
    }
    if !part.is_empty() {
        let _ = to.send_message(ForwarderMsg::Peer(wire::encode(&Wire::Retained(part))));
    }
    tracing::debug!(node = %shared.config.node_name, "retained messages sent to a newly linked node");
}
