//! Broker-wide counters, updated with relaxed atomics on the hot path and read by `$SYS` and operators.
//!
//! Every queue that can drop has a counter here, by reason, so that nothing is lost silently.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The broker's counters (see the module doc); update and read them with [`Metrics::add`] and
/// [`Metrics::get`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// TCP connections accepted by every listener, before any handshake.
    pub connections_accepted: AtomicU64,
    /// Sockets closed at accept: too many were waiting for their CONNECT, overall or from their address.
    pub dropped_at_accept: AtomicU64,
    /// CONNECTs refused with a CONNACK failure (bad credentials, not authorized, banned, limits).
    pub connections_refused: AtomicU64,
    /// CONNECTs refused because a ban holds for the client id, user name or address.
    pub refused_banned: AtomicU64,
    /// CONNECTs whose credentials the authentication chain refused.
    pub authn_failed: AtomicU64,
    /// Client ids banned by flapping detection.
    pub banned_flapping: AtomicU64,
    /// Times the node went above its memory high watermark.
    pub overload_episodes: AtomicU64,
    /// Messages dropped from the largest queues while the node was above its memory high watermark.
    pub dropped_overload: AtomicU64,
    /// Times a client's reader waited because the client went over its inbound rate.
    pub rate_limited: AtomicU64,
    /// Times a listener waited before accepting because of its connection rate.
    pub accept_rate_limited: AtomicU64,
    /// Clients connected now (a gauge).
    pub clients_connected: AtomicU64,
    /// Messages published into the broker: by clients, as wills, in-process and over the API.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Bytes read from clients' connections.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients' connections.
    pub bytes_sent: AtomicU64,
    /// Dropped from a connected client's outgoing queue: QoS 0 shed at the byte bound, or the overflow policy
    /// of a stalled subscriber.
    pub dropped_queue_full: AtomicU64,
    /// Times a publisher was held because a subscriber's queue (or a queue towards another node) was full.
    pub publishers_held: AtomicU64,
    /// Subscribers whose full queue did not drain within the stall timeout, so that their overflow policy
    /// applied.
    pub subscribers_stalled: AtomicU64,
    /// Dropped from a disconnected session's offline queue.
    pub dropped_offline_queue_full: AtomicU64,
    /// Stalled subscribers disconnected under the `disconnect` policy.
    pub disconnected_slow_subscribers: AtomicU64,
    /// Messages that expired before delivery.
    pub dropped_expired: AtomicU64,
    /// Messages larger than the receiving client's Maximum Packet Size.
    pub dropped_too_large: AtomicU64,
    /// In-process subscribers that did not keep up.
    pub dropped_local_subscriber: AtomicU64,
    /// Retained messages not stored because the retained store was full.
    pub dropped_retained_full: AtomicU64,
    /// Messages for another node of the cluster dropped: the queue towards it was full, or the message is too
    /// large to cross (the cluster's own counters say which).
    pub dropped_forward: AtomicU64,
    /// Published messages that matched no subscriber.
    pub messages_no_subscribers: AtomicU64,
    /// Session actors restarted after a failure or a kill.
    pub session_restarts: AtomicU64,
    /// Unacknowledged messages of a shared subscription moved to another member when theirs left.
    pub shared_handed_off: AtomicU64,
    /// Sessions that went into hibernation (idle actors that stopped, and new sessions, which start there).
    pub sessions_hibernated: AtomicU64,
    /// Hibernated sessions woken again.
    pub sessions_woken: AtomicU64,
    /// Topic shard actors restarted.
    pub shard_restarts: AtomicU64,
    /// Other supervised actors restarted (listeners, periodic tasks, supervisors, the cluster's).
    pub other_restarts: AtomicU64,
    /// Connections closed for breaking the protocol, or failing the TLS or WebSocket handshake.
    pub protocol_errors: AtomicU64,
    /// PUBLISH packets, SUBSCRIBE filters and wills refused by authorization (`$SYS` included).
    pub authz_denied: AtomicU64,
    /// Messages routed (published by clients, wills, in-process publishers), by QoS 0, 1, 2.
    pub routed_by_qos: [AtomicU64; 3],
    /// PUBLISH packets sent to clients, by the QoS they were sent at.
    pub sent_by_qos: [AtomicU64; 3],
    /// Time to route one message on the node it was published on (match, queue for every subscriber here,
    /// queue for other nodes).
    pub route_latency: LatencyHistogram,
}

/// Upper bounds of the routing latency buckets, in nanoseconds.
pub const ROUTE_BUCKETS_NS: [u64; 10] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 500_000, 1_000_000, 10_000_000,
];

/// A histogram of durations over [`ROUTE_BUCKETS_NS`], kept in atomics so that recording costs a few relaxed
/// adds (exposition, with cumulative buckets, is the metrics endpoint's job).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last counts those above every bound.
    buckets: [AtomicU64; ROUTE_BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, ns: u64) {
        let i = ROUTE_BUCKETS_NS
            .iter()
            .position(|b| ns <= *b)
            .unwrap_or(ROUTE_BUCKETS_NS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// (sum in ns, count, observations per bucket: one per bound in [`ROUTE_BUCKETS_NS`], then those above
    /// every bound). Not cumulative.
    pub fn snapshot(&self) -> (u64, u64, Vec<u64>) {
        let per_bucket: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        (self.sum_ns.load(Relaxed), per_bucket.iter().sum(), per_bucket)
    }
}

impl Metrics {
    /// Add `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// The value of `counter` now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// All drops, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        [
            &self.dropped_queue_full,
            &self.dropped_offline_queue_full,
            &self.dropped_expired,
            &self.dropped_too_large,
            &self.dropped_local_subscriber,
            &self.dropped_retained_full,
            &self.dropped_forward,
            &self.dropped_overload,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_counts_each_observation_once_in_its_bucket() {
        let h = LatencyHistogram::default();
        for ns in [500, 1_500, 1_500, 50_000_000] {
            h.observe(ns);
        }
        let (sum, count, buckets) = h.snapshot();
        assert_eq!((sum, count), (50_003_500, 4));
        assert_eq!(buckets.len(), ROUTE_BUCKETS_NS.len() + 1);
        assert_eq!((buckets[0], buckets[1], buckets[ROUTE_BUCKETS_NS.len()]), (1, 2, 1));
    }
}
