//! Sockets accepted and waiting for their CONNECT to be handled, counted overall and per peer address.
//!
//! Each costs a task and a buffer until its CONNECT arrives or the connect timeout closes it, so both counts
//! are bounded: overall, so that a flood of silent sockets cannot grow without bound, and per peer address,
//! so that one host holding silent sockets cannot keep every other client out. A socket over either bound is
//! closed at once. The connection limit proper (`max_connections`) is answered with a CONNACK later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// The counts; one per broker.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only peers with a socket waiting: at most `total` entries.
    by_peer: HashMap<IpAddr, usize>,
}

/// Which bound a socket was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max_total` sockets are waiting.
    Total,
    /// `max_per_peer` sockets from this address are waiting.
    Peer,
}

/// One waiting socket; dropping it (the handshake is over, whichever way) frees its place.
#[derive(Debug)]
pub(crate) struct Place {
    waiting: Arc<Waiting>,
    peer: IpAddr,
}

impl Waiting {
    /// Take a place for a socket from `peer`, unless a bound is reached.
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
            waiting: self.clone(),
            peer,
        })
    }

    /// Sockets waiting now.
    pub(crate) fn total(&self) -> usize {
        self.counts.lock().total
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut c = self.waiting.counts.lock();
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
        let waiting = Arc::new(Waiting::default());
        let greedy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<Place> = (0..3).map(|_| waiting.enter(greedy, 10, 3).unwrap()).collect();
        assert_eq!(waiting.enter(greedy, 10, 3).unwrap_err(), Full::Peer);
        let theirs = waiting.enter(other, 10, 3).unwrap();
        assert_eq!(waiting.total(), 4);
        drop(held);
        drop(theirs);
        assert_eq!(waiting.total(), 0);
        assert!(
            waiting.counts.lock().by_peer.is_empty(),
            "no entry is kept for a peer with nothing waiting"
        );
    }

    #[test]
    fn the_total_bound_holds_across_peers() {
        let waiting = Arc::new(Waiting::default());
        let places: Vec<Place> = (0..4u8)
            .map(|i| waiting.enter(IpAddr::from([10, 0, 0, i]), 4, 3).unwrap())
            .collect();
        assert_eq!(
            waiting.enter("10.0.0.9".parse().unwrap(), 4, 3).unwrap_err(),
            Full::Total
        );
        drop(places);
    }
}
