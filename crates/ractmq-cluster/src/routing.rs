//! The broker's door to the other nodes ([`RemoteRouting`]): what publishers and topic shards call.
//!
//! Everything here runs on the caller's task. Routing never waits: a publish matches the other nodes' routes
//! against a snapshot and pushes onto each node's bounded queue; a shard's route change is noted and the
//! forwarder asked, once, to pass the changes on. Two things do wait, bounded in time, and only the client
//! concerned: a new subscription, until the other nodes know its route ([`SETTLE_TIMEOUT`]), and a publisher
//! whose messages fill the queue towards a node, until it drains (the queue is a [`Backlog`], as a
//! subscriber's queue is: see `ractmq_broker::flow`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractmq_broker::{Backlog, Forward, Metrics, RemoteMatch, RemoteRouting, RouteKey};
use ractmq_protocol::{Message, Origin};

use crate::forwarder_ref::{forwarder_of, ForwarderMsg};
use crate::link::{Item, PeerLink};
use crate::state::Shared;
use crate::stats::ClusterStats;
use crate::wire_message::message_size;

/// Largest message forwarded to another node (payload, topic and properties): a batch, which may hold one such
/// message beyond its byte budget, must fit in one message between nodes ([`crate::wire::MAX_WIRE_BYTES`]).
pub const MAX_FORWARDED_BYTES: usize = 6 * 1024 * 1024;

/// Longest a new subscription waits for the other nodes to acknowledge its route; a node slower than this
/// (about to be found down, most likely) does not hold the SUBACK longer.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Routing {
    pub shared: Arc<Shared>,
    /// The broker's counters: drops here count among its dropped messages too.
    pub metrics: Arc<Metrics>,
}

/// The queue towards one node, as publishers wait for it: until it is down to a quarter of its bound, or the
/// node is not up (a node found down stops getting messages; its queue waits for it without holding anyone).
/// A node that acknowledges nothing for `--down-after-ms` is about to be found down, so that is its stall
/// timeout; past it the queue keeps its hard bound, beyond which messages for the node are dropped and counted.
struct LinkBacklog {
    shared: Arc<Shared>,
    node: Arc<str>,
    link: Arc<PeerLink>,
}

impl Backlog for LinkBacklog {
    fn is_congested(&self) -> bool {
        self.link.is_congested() && self.shared.peers_up.load().contains(&self.node)
    }

    fn room(&self) -> &tokio::sync::Notify {
        &self.link.room
    }

    fn progress(&self) -> u64 {
        self.link.acknowledged()
    }

    fn stall_timeout(&self) -> Duration {
        self.shared.config.down_after
    }

    fn stalled(&self) {
        tracing::debug!(node = %self.node, "the node acknowledged nothing for --down-after-ms");
    }
}

/// Wait until every other node that is up and linked has acknowledged the routes reported so far.
async fn settled(shared: &Shared) {
    let target = shared.pending_routes.lock().version_of_reported();
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    loop {
        // Made before looking, so that an acknowledgement between the look and the wait is not missed.
        let acked = shared.routes_acked.notified();
        let waiting: Vec<Arc<str>> = {
            let acks = shared.routes_acks.lock();
            shared
                .peers_up
                .load()
                .iter()
                .filter(|p| acks.get(&***p).copied().unwrap_or(0) < target)
                .filter(|p| forwarder_of(p).is_some())
                .cloned()
                .collect()
        };
        if waiting.is_empty() {
            return;
        }
        if tokio::time::timeout_at(deadline, acked).await.is_err() {
            tracing::debug!(
                ?waiting,
                version = target,
                "nodes did not acknowledge a new route in time"
            );
            return;
        }
    }
}

impl RemoteRouting for Routing {
    fn routes_changed(&self, changes: Vec<(RouteKey, bool)>) {
        self.shared.pending_routes.lock().changes.extend(changes);
        if !self.shared.flush_asked.swap(true, Ordering::AcqRel) {
            match self.shared.forwarder.read().as_ref() {
                Some(forwarder) if forwarder.send_message(ForwarderMsg::Flush).is_ok() => {}
                // No forwarder right now: the next one starts from the shards' routes, which include these.
                _ => self.shared.flush_asked.store(false, Ordering::Release),
            }
        }
    }

    fn settled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(settled(&self.shared))
    }

    fn matches(&self, topic: &str, out: &mut RemoteMatch) {
        self.shared.remote_routes.matches(topic, out);
    }

    fn peers(&self) -> Vec<Arc<str>> {
        self.shared.peers_up.load().to_vec()
    }

    fn next_origin(&self) -> Origin {
        (
            self.shared.incarnation,
            self.shared.next_origin.fetch_add(1, Ordering::Relaxed),
        )
    }

    fn forward(&self, message: &Arc<Message>, to: Forward) -> Option<Arc<dyn Backlog>> {
        let stats = &self.shared.stats;
        if message_size(message) > MAX_FORWARDED_BYTES {
            ClusterStats::add(&stats.dropped_too_large, 1);
            Metrics::add(&self.metrics.dropped_forward, 1);
            return None;
        }
        let relayed = to.relay_to.is_some();
        let item = Item {
            message: message.clone(),
            deliver: to.deliver,
            shared: to.shared,
            relay_to: to.relay_to,
        };
        let link = self.shared.link(&to.node);
        let congested = match link.push(item) {
            Ok(congested) => {
                ClusterStats::add(&stats.forwarded, 1);
                if relayed {
                    ClusterStats::add(&stats.relayed_out, 1);
                }
                congested
            }
            Err(_) => {
                ClusterStats::add(&stats.dropped_queue_full, 1);
                Metrics::add(&self.metrics.dropped_forward, 1);
                true
            }
        };
        congested.then(|| {
            Arc::new(LinkBacklog {
                shared: self.shared.clone(),
                node: to.node,
                link,
            }) as Arc<dyn Backlog>
        })
    }
}
