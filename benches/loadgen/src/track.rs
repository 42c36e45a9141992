//! Why this exists: loss, duplicates and reordering must be reported for every run, never hidden. Each
//! publisher numbers its messages; each subscriber keeps one bitset per stream it expects. The bitset tells a
//! first arrival from a repeat; every repeat is counted (a message that arrives three times is two duplicates),
//! so `unique + dups` is exactly the number of messages of that stream the subscriber received.

/// What one subscriber saw of one publisher's stream.
#[derive(Default)]
pub struct Tracker {
    bits: Vec<u64>,
    pub unique: u64,
    pub dups: u64,
    pub reordered: u64,
    highest: Option<u32>,
}

impl Tracker {
    pub fn record(&mut self, seq: u32) {
        let word = seq as usize / 64;
        let bit = 1u64 << (seq % 64);
        if word >= self.bits.len() {
            let len = (word + 1).max(self.bits.len() * 2);
            self.bits.resize(len, 0);
        }
        if self.bits[word] & bit != 0 {
            self.dups += 1;
            return;
        }
        self.bits[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
    }
}

/// A subscriber's view: the streams `base..base + trackers.len()` it expects, and what arrived from elsewhere.
pub struct SubState {
    pub base: u32,
    pub trackers: Vec<Tracker>,
    /// Messages from a stream this subscriber did not subscribe to (a routing error).
    pub misrouted: u64,
    /// Messages without a readable stamp.
    pub garbled: u64,
    /// Latency samples in ns, when recorded: (send time, latency).
    pub latencies: Option<Vec<u64>>,
    /// Samples sent before this time (ns since the epoch) are warm-up and not recorded.
    pub warmup_ns: u64,
}

impl SubState {
    /// Messages this subscriber received: first arrivals, repeats, misrouted and garbled ones.
    pub fn received(&self) -> u64 {
        self.trackers.iter().map(|t| t.unique + t.dups).sum::<u64>() + self.misrouted + self.garbled
    }

    pub fn new(base: u32, streams: u32, record_latency: bool, warmup_ns: u64) -> Self {
        SubState {
            base,
            trackers: (0..streams).map(|_| Tracker::default()).collect(),
            misrouted: 0,
            garbled: 0,
            latencies: record_latency.then(Vec::new),
            warmup_ns,
        }
    }

    pub fn record(&mut self, stamp: Option<(u32, u32, u64)>, now_ns: u64) {
        let Some((stream, seq, sent_ns)) = stamp else {
            self.garbled += 1;
            return;
        };
        match stream
            .checked_sub(self.base)
            .and_then(|i| self.trackers.get_mut(i as usize))
        {
            Some(t) => t.record(seq),
            None => {
                self.misrouted += 1;
                return;
            }
        }
        if let Some(lat) = self.latencies.as_mut() {
            if sent_ns >= self.warmup_ns {
                lat.push(now_ns.saturating_sub(sent_ns));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_unique_dups_and_reordering() {
        let mut t = Tracker::default();
        for seq in [0, 1, 2, 2, 5, 3, 4, 1000, 1000] {
            t.record(seq);
        }
        assert_eq!(t.unique, 7);
        assert_eq!(t.dups, 2);
        assert_eq!(t.reordered, 2);
    }

    #[test]
    fn every_repeat_is_a_duplicate() {
        let mut s = SubState::new(0, 1, false, 0);
        for seq in [7, 7, 7, 8] {
            s.record(Some((0, seq, 0)), 0);
        }
        assert_eq!(s.trackers[0].unique, 2);
        assert_eq!(s.trackers[0].dups, 2);
        assert_eq!(s.received(), 4);
    }

    #[test]
    fn misrouted_streams_are_counted() {
        let mut s = SubState::new(10, 2, false, 0);
        s.record(Some((10, 0, 0)), 0);
        s.record(Some((11, 0, 0)), 0);
        s.record(Some((12, 0, 0)), 0);
        s.record(None, 0);
        assert_eq!(s.misrouted, 1);
        assert_eq!(s.garbled, 1);
        assert_eq!(s.trackers[0].unique + s.trackers[1].unique, 2);
        assert_eq!(s.received(), 4);
    }
}
