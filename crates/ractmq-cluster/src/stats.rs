//! Counters of what crossed between nodes and what was dropped on the way, by reason, for operators.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of what crossed between nodes and what was dropped (see the module doc); read one with
/// [`ClusterStats::get`].
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Messages queued towards another node (one per node a message went to).
    pub forwarded: AtomicU64,
    /// Messages received from other nodes and routed here.
    pub received: AtomicU64,
    /// Messages another node sent again after a link came back, already routed here, skipped.
    pub duplicates_skipped: AtomicU64,
    /// Dropped because the queue towards a node was full (it stopped acknowledging).
    pub dropped_queue_full: AtomicU64,
    /// Dropped from a node's queue because it restarted: the subscribers they were for are gone.
    pub dropped_node_restarted: AtomicU64,
    /// Dropped because they are too large to cross between nodes.
    pub dropped_too_large: AtomicU64,
    /// Sessions taken over from other nodes.
    pub sessions_taken_over: AtomicU64,
    /// Sessions given to other nodes.
    pub sessions_handed_over: AtomicU64,
    /// Messages passed on to a session that moved from here to another node (see `ractmq_broker::moving`).
    pub relayed_out: AtomicU64,
    /// Messages passed on to a session that moved here from another node.
    pub relayed_in: AtomicU64,
    /// Queued messages of a handed-over session left behind because the session was too large to move.
    pub dropped_handover_too_large: AtomicU64,
    /// Messages from other nodes that could not be read (another version, or corrupt).
    pub unreadable: AtomicU64,
}

impl ClusterStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The value of `counter` now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
