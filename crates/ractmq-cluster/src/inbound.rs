//! Which forwarded messages this node has routed already, per sending node, so that a batch sent again after
//! a link came back (see `link.rs`) is not routed twice.
//!
//! A sender numbers its messages from 1 in each run (incarnation), and sends them in order over one link at a
//! time, so one number per sender is enough: everything up to it has been routed. It lives in the cluster's
//! shared state, outside the forwarder actor, so a forwarder restart does not forget it and route a resent
//! batch again.

use std::collections::HashMap;

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct Inbound {
    /// Sender -> (its incarnation, the highest number routed).
    routed: Mutex<HashMap<String, (u64, u64)>>,
}

impl Inbound {
    /// A batch from `from` (run `incarnation`) numbered from `first_seq`, of `len` messages: how many of its
    /// first messages were routed already and must be skipped.
    pub fn already_routed(&self, from: &str, incarnation: u64, first_seq: u64, len: usize) -> usize {
        let routed = self.routed.lock();
        match routed.get(from) {
            Some(&(inc, upto)) if inc == incarnation && upto >= first_seq => ((upto - first_seq + 1) as usize).min(len),
            _ => 0,
        }
    }

    /// Everything from `from` up to `seq` has been routed.
    pub fn routed(&self, from: &str, incarnation: u64, seq: u64) {
        let mut routed = self.routed.lock();
        let entry = routed.entry(from.to_string()).or_insert((incarnation, 0));
        if entry.0 != incarnation {
            *entry = (incarnation, 0);
        }
        entry.1 = entry.1.max(seq);
    }

    /// Forget a node that left (its next run numbers from 1 again anyway).
    // Not called yet: a node that leaves keeps its entry, one per node name ever seen.
    #[allow(dead_code)]
    pub fn forget(&self, from: &str) {
        self.routed.lock().remove(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resent_batch_is_skipped_up_to_what_was_routed() {
        let inbound = Inbound::default();
        assert_eq!(inbound.already_routed("n1", 7, 1, 10), 0);
        inbound.routed("n1", 7, 10);
        assert_eq!(inbound.already_routed("n1", 7, 1, 10), 10);
        assert_eq!(inbound.already_routed("n1", 7, 6, 10), 5);
        assert_eq!(inbound.already_routed("n1", 7, 11, 10), 0);
        assert_eq!(inbound.already_routed("n2", 7, 1, 10), 0);
    }

    #[test]
    fn a_new_run_of_the_sender_starts_over() {
        let inbound = Inbound::default();
        inbound.routed("n1", 7, 10);
        assert_eq!(inbound.already_routed("n1", 8, 1, 10), 0);
        inbound.routed("n1", 8, 3);
        assert_eq!(inbound.already_routed("n1", 8, 1, 10), 3);
        inbound.forget("n1");
        assert_eq!(inbound.already_routed("n1", 8, 1, 10), 0);
    }
}
