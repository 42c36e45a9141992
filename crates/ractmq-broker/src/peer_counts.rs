//! Things counted overall and per peer address, each bounded: sockets waiting for their CONNECT, and connected
//! clients.
//!
//! A socket waiting for its CONNECT costs a task and a buffer until its CONNECT arrives or the connect timeout
//! closes it: bounded overall, a flood of silent sockets cannot grow without bound, and per peer address, one
//! host holding silent sockets cannot keep every other client out (a socket over either bound is closed at
//! accept). Connected clients are bounded per peer address the same way (`max_connections_per_peer`,
//! answered with a CONNACK). The map holds only addresses with something counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// One kind of count; the kernel has one for waiting sockets and one for connected clients.
#[derive(Debug, Default)]
pub(crate) struct PeerCounts {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only peers with something counted: at most `total` entries.
    by_peer: HashMap<IpAddr, usize>,
}

/// Which bound was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max_total` are counted.
    Total,
    /// `max_per_peer` from this address are counted.
    Peer,
}

/// One counted socket or client; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Place {
    counts: Arc<PeerCounts>,
    peer: IpAddr,
}

impl PeerCounts {
    /// Take a place for `peer`, unless a bound is reached.
    pub(crate) fn enter(self: &Arc<Self>, peer: IpAddr, max_total: usize, max_per_peer: usize) -> Result<Place, Full> {
        let mut c = self.counts.lock();
        if c.total >= max_total {
            return Err(Full::Total);
        }
        let mine = c.by_peer.entry(peer).or_insert(0);
        if *mine >= max_per_peer {
            if *mine == 0 {
                c.by_peer.remove(&peer);
            }
            return Err(Full::Peer);
        }
        *mine += 1;
        c.total += 1;
        Ok(Place {
            counts: self.clone(),
            peer,
        })
    }

    /// Counted now, over all peers.
    pub(crate) fn total(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut c = self.counts.counts.lock();
        c.total -= 1;
        if let Some(n) = c.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_cannot_take_every_place() {
        let counts = Arc::new(PeerCounts::default());
        let greedy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<Place> = (0..3).map(|_| counts.enter(greedy, 10, 3).unwrap()).collect();
        assert_eq!(counts.enter(greedy, 10, 3).unwrap_err(), Full::Peer);
        let theirs = counts.enter(other, 10, 3).unwrap();
        assert_eq!(counts.total(), 4);
        drop(held);
        drop(theirs);
        assert_eq!(counts.total(), 0);
        assert!(
            counts.counts.lock().by_peer.is_empty(),
            "no entry is kept for a peer with nothing waiting"
        );
    }

    #[test]
    fn the_total_bound_holds_across_peers() {
        let counts = Arc::new(PeerCounts::default());
        let places: Vec<Place> = (0..4u8)
            .map(|i| counts.enter(IpAddr::from([10, 0, 0, i]), 4, 3).unwrap())
            .collect();
        assert_eq!(
            counts.enter("10.0.0.9".parse().unwrap(), 4, 3).unwrap_err(),
            Full::Total
        );
        drop(places);
    }
}
