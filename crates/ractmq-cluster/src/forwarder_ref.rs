//! How a node's forwarder is found and what it is sent: shared by the forwarder, its pumps, routing and
//! takeovers, so that none of them needs the forwarder's own module.

use ractor::{pg, ActorRef};
use ractor_cluster::RactorClusterMessage;

/// The process group of `node`'s forwarder.
pub fn group_of(node: &str) -> String {
    format!("ractmq.fwd.{node}")
}

/// `node`'s forwarder, if a link to it is up.
pub fn forwarder_of(node: &str) -> Option<ActorRef<ForwarderMsg>> {
    pg::get_members(&group_of(node))
        .into_iter()
        .find(|c| !c.get_id().is_local())
        .map(ActorRef::from)
}

/// What a forwarder receives. Every variant may come from another node (ractor_cluster serialises them all);
/// a peer sending `Flush` or `Members` only makes this node do early what it would do anyway.
#[derive(RactorClusterMessage)]
pub enum ForwarderMsg {
    /// The topic shards reported route changes: tell the other nodes.
    Flush,
    /// The membership changed: run a pump for every other node.
    Members,
    /// Another node's message: a [`Wire`] value, bincode-encoded.
    Peer(Vec<u8>),
}
