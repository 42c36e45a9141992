//! Clustering for ractmq over ractor_cluster: nodes started with seeds find each other, watch each other's
//! heartbeats and keep their links up (membership), and route published messages to each other's
//! subscribers (routing): each node tells the others which filters it has subscribers for, and a message
//! published on one node crosses once to each node with a matching filter, in order, without loss across a
//! link that breaks and comes back. Retained messages are copied to every node. Rules created at run time
//! are replicated to every node ([`Cluster::replicated_rules`], `replicated.rs`).
//!
//! Use: build a [`ClusterConfig`], make a [`Cluster`] of it, [`Cluster::install`] it into the
//! `BrokerConfig`, start the broker. The cluster's actors then run under the broker's root supervisor
//! (`tree.rs`), and the [`Cluster`] handle reads the membership and subscribes to its changes.
//!
//! | file | what it owns |
//! |---|---|
//! | `config.rs` | the settings and their checks |
//! | `node_server.rs` | starting ractor_cluster's node server (listener, cookie) |
//! | `agent.rs` | the remotable actor for membership: hellos, the failure detector, announcements |
//! | `forwarder.rs` | the remotable actor for routing: route lists in and out, forwarded messages in |
//! | `routing.rs` | what the broker calls: match other nodes' routes, queue a message for a node |
//! | `remote_routes.rs` | the other nodes' routes, and matching a topic against them |
//! | `link.rs`, `pump.rs` | the numbered queue towards each node, and the task that sends it |
//! | `sessions.rs`, `wire_session.rs` | takeover across nodes: asking for a client's session, answering, holding what the old node relays until the session is here |
//! | `inbound.rs` | which forwarded messages were routed already (no repeats after a resend) |
//! | `replicated.rs` | a map every node agrees on, last writer wins per key (the run-time rules): its merge, its store, sending it |
//! | `wire.rs`, `wire_message.rs` | what nodes say to each other (serde types as bincode bytes) |
//! | `stats.rs` | counters of what crossed and what was dropped |
//! | `membership.rs` | the membership view and the up/down rules, as plain data |
//! | `connector.rs`, `backoff.rs` | redialling every member without a link (ractor_cluster never reconnects) |
//! | `discovery.rs` | finding peers by name: seeds given by host name, `--discovery dns`, resolved again and again |
//! | `stale_links.rs` | closing links that stay open to a member found down (a silent partition) |
//! | `handshakes.rs` | closing links that do not authenticate in time (ractor_cluster waits forever) |
//! | `link_events.rs` | ractor_cluster's link events, as messages to the connector |
//! | `auth_watch.rs` | telling a wrong cookie from the link events, in one line |
//! | `tls.rs` | TLS between nodes, as an option (mutual, against one CA) |
//! | `tree.rs` | the supervision subtree |
//! | `state.rs` | what outlives the actors |
//!
//! ## Queues a peer can fill
//!
//! - The queue towards each node: [`ClusterConfig::forward_queue`] messages not yet acknowledged. Past half
//!   of it, publishing clients whose messages go there are held until it drains (backpressure); when full,
//!   messages for that node are dropped and counted ([`ClusterStats::dropped_queue_full`], and the
//!   broker's `dropped_forward`).
//! - Route changes waiting for the forwarder: one entry per subscription change, taken in one go whenever the
//!   forwarder runs; cleared when a forwarder starts (it reads the shards' routes instead).
//! - The forwarder's mailbox: what peers send (batches of at most `pump::BATCH_ITEMS` messages, route and
//!   retained lists) plus one `Flush` at a time from the shards. A peer sends a batch only after the last
//!   was acknowledged or within its queue bound, so this is bounded by the peers' queues.
//! - Replicated maps in the forwarder's mailbox: one change at a time from a peer's operator, and a whole map
//!   per hello from a peer whose map differs (see `replicated.rs`), at most `wire::MAX_ITEMS` entries each.
//! - The agent's mailbox (ractor mailboxes are unbounded): each peer sends one hello per heartbeat interval,
//!   handled in microseconds, so it stays near empty. A peer that sends faster must hold the cookie, that
//!   is, be one of ours; a hostile member is out of scope (as in Erlang distribution).
//! - ractor_cluster's per-link channels are unbounded too; an inbound frame is at most 16 MiB (its default)
//!   and a hello at most `wire::MAX_WIRE_BYTES`, both refused before allocation beyond that.
//! - Sockets to the cluster port that never authenticate are closed after
//!   `handshakes::HANDSHAKE_TIMEOUT`; how many may be open at once is not limited, so keep the cluster port
//!   off networks you do not trust.
//! - The membership: at most `wire::MAX_PEERS` other members, whatever peers claim.
//! - Change subscribers: a bounded broadcast channel (`state::EVENT_BUFFER`); one that falls behind is
//!   told so and re-reads [`Cluster::members`].

#![deny(missing_docs)]

pub(crate) mod agent;
pub(crate) mod auth_watch;
pub(crate) mod backoff;
pub(crate) mod config;
pub(crate) mod connector;
pub(crate) mod discovery;
pub(crate) mod forwarder;
pub(crate) mod forwarder_ref;
pub(crate) mod handshakes;
pub(crate) mod inbound;
pub(crate) mod link;
pub(crate) mod link_events;
pub(crate) mod membership;
pub(crate) mod node_server;
pub(crate) mod pump;
pub(crate) mod remote_routes;
pub mod replicated;
mod replicated_entry;
pub(crate) mod routing;
pub(crate) mod sessions;
pub(crate) mod stale_links;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod tls;
pub(crate) mod tree;
pub(crate) mod wire;
pub(crate) mod wire_message;
pub(crate) mod wire_session;

use std::sync::Arc;

use ractmq_broker::{BrokerConfig, ClusterPlug, SupervisorMsg};
use std::time::Duration;
use tokio::sync::broadcast;

pub use config::{parse_seed, ClusterConfig, Discovery, HostSeed, Seed};
pub use membership::{DownReason, Member, MemberEvent, MemberState};
pub use replicated::ReplicatedMap;
pub use stats::ClusterStats;
pub use tls::ClusterTls;
pub use wire::WireRoute;

/// Longest a node waits for the others to confirm that they marked a node left.
pub const LEFT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Send `left` to every node up and wait (at most [`LEFT_ACK_TIMEOUT`]) for each to confirm; the nodes that
/// did not.
async fn tell_left(shared: &state::Shared, left: wire::Left) -> Vec<String> {
    let about = left.node.clone();
    let bytes = wire::encode(&wire::Wire::Left(left));
    let peers: Vec<String> = shared
        .peers_up
        .load()
        .iter()
        .map(|p| p.to_string())
        .filter(|p| *p != about)
        .collect();
    for peer in &peers {
        if let Some(to) = forwarder_ref::forwarder_of(peer) {
            let _ = to.send_message(forwarder_ref::ForwarderMsg::Peer(bytes.clone()));
        }
    }
    let deadline = tokio::time::Instant::now() + LEFT_ACK_TIMEOUT;
    loop {
        let acked = shared.left_acked.notified();
        let waiting: Vec<String> = {
            let acks = shared.left_acks.lock();
            peers
                .iter()
                .filter(|p| !acks.contains(&(p.to_string(), about.clone())))
                .cloned()
                .collect()
        };
        if waiting.is_empty() || tokio::time::timeout_at(deadline, acked).await.is_err() {
            return waiting;
        }
    }
}

/// A node's membership in a cluster. Cheap to clone; every clone reads the same view.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<state::Shared>,
}

impl Cluster {
    /// Check `config`; the error is one line naming what to fix.
    pub fn new(config: ClusterConfig) -> Result<Cluster, String> {
        config.validate()?;
        let tls = config.tls.as_ref().map(tls::ClusterTls::load).transpose()?;
        if let Some(node) = tls.as_ref().and(Some(&config.node_name)) {
            tls::server_name(node)?;
        }
        Ok(Cluster {
            shared: Arc::new(state::Shared::new(config, tls)),
        })
    }

    /// Make `broker` a node of this cluster: its name and the cluster child under its root supervisor.
    pub fn install(&self, broker: &mut BrokerConfig) {
        broker.node_name = self.shared.config.node_name.clone();
        broker.cluster = Some(ClusterPlug(Arc::new(tree::Hook(self.shared.clone()))));
    }

    /// This node's name in the cluster.
    pub fn node_name(&self) -> &str {
        &self.shared.config.node_name
    }

    /// Every member this node knows, itself included, by name.
    pub fn members(&self) -> Vec<Member> {
        self.shared.membership.read().members()
    }

    /// The names of the members that are up, this node included, sorted.
    pub fn nodes_up(&self) -> Vec<String> {
        self.shared.membership.read().nodes_up()
    }

    /// Membership changes from now on. Read [`Cluster::members`] after subscribing for the starting point.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.shared.events.subscribe()
    }

    /// The rules created at run time, as the cluster replicates them (name -> the rule's configuration as
    /// JSON, or `None` once deleted); read from the node's store when the broker starts. The rule engine
    /// writes it and follows it (see the binary's `replicate_rules`).
    pub fn replicated_rules(&self) -> Arc<ReplicatedMap> {
        self.shared.rules.clone()
    }

    /// Counters of what crossed between nodes and what was dropped.
    pub fn stats(&self) -> &ClusterStats {
        &self.shared.stats
    }

    /// Messages queued towards `node` and not yet acknowledged by it.
    pub fn queued_for(&self, node: &str) -> usize {
        self.shared.links.read().get(node).map_or(0, |l| l.len())
    }

    /// The routes other nodes have announced, as (node, route).
    pub fn remote_routes(&self) -> Vec<(Arc<str>, WireRoute)> {
        self.shared.remote_routes.all()
    }

    /// Forget `node`, a member that is down, on every node: it is marked `left` here and on every node up, no
    /// longer dialled, and its routes and the messages queued for it are dropped. A new run of it that
    /// dials in joins again. Refused (one line) for this node, a member that is up, or an unknown name.
    /// Returns the nodes that did not confirm within [`LEFT_ACK_TIMEOUT`] (they were told nonetheless).
    pub async fn forget(&self, node: &str) -> Result<Vec<String>, String> {
        let me = self.node_name().to_string();
        let event = {
            let mut membership = self.shared.membership.write();
            let Some(member) = membership.members().into_iter().find(|m| m.name == node) else {
                return Err(format!(
                    "no member is named {node}: `ractmq ctl cluster status` lists the members"
                ));
            };
            if member.is_self {
                return Err(format!(
                    "{node} is this node: to take it out of the cluster, run `ractmq ctl cluster leave` against it"
                ));
            }
            match member.state {
                MemberState::Up => {
                    return Err(format!(
                        "node {node} is up: only a node that is down can be forgotten; stop it first, or run `ractmq ctl cluster leave` against it"
                    ))
                }
                MemberState::Left => return Ok(Vec::new()),
                MemberState::Connecting | MemberState::Down => {}
            }
            membership.mark_left(node, member.incarnation, true)
        };
        let incarnation = event.as_ref().and_then(|e| match e {
            MemberEvent::Left { member, .. } => member.incarnation,
            _ => None,
        });
        if let Some(event) = event {
            tracing::info!("{event}");
            let _ = self.shared.events.send(event);
        }
        let left = wire::Left {
            from: me,
            node: node.to_string(),
            incarnation,
            forgotten: true,
        };
        Ok(tell_left(&self.shared, left).await)
    }

    /// Leave the cluster for good: wait (at most `drain`) until the other nodes have acknowledged what this
    /// node queued for them, then tell every node up that this run of the node left, so that they mark it
    /// `left`, stop dialling it and drop its routes. The caller stops the process next. Returns the nodes
    /// that did not confirm within [`LEFT_ACK_TIMEOUT`].
    pub async fn leave(&self, drain: std::time::Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let up = self.shared.peers_up.load();
            if up.iter().all(|p| self.queued_for(p) == 0) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let me = self.node_name().to_string();
        let left = wire::Left {
            from: me.clone(),
            node: me,
            incarnation: Some(self.shared.incarnation),
            forgotten: false,
        };
        tell_left(&self.shared, left).await
    }

    /// Kill one of the cluster's actors on purpose ("node-server", "agent", "forwarder" or "connector"), to exercise
    /// supervision as `Broker::chaos` does for the broker's. False if no such actor is running.
    pub async fn kill_actor(&self, name: &str) -> bool {
        let Some(sup) = self.shared.supervisor.read().clone() else {
            return false;
        };
        let Ok(children) = ractor::call!(sup, SupervisorMsg::Children) else {
            return false;
        };
        match children.into_iter().find(|(n, _)| n == name) {
            Some((_, actor)) => {
                actor.kill();
                true
            }
            None => false,
        }
    }
}
