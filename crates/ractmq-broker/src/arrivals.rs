//! What reached a session that moved to this node, remembered for a while so that a message arriving both
//! directly and through the old node's relay is taken once (see `moving.rs`). Kept in the session record.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use ractmq_protocol::Origin;

/// How long the new node remembers what reached the moved session: longer than the relay runs, so that a
/// relayed message arriving late is still recognized.
pub const REMEMBER_FOR: Duration = Duration::from_secs(30);

/// Most origins one moved session remembers; past it the oldest are forgotten (a repeat of one of those
/// would get through: at most once per message already older than this many).
const REMEMBER_AT_MOST: usize = 100_000;

/// What reached a session that moved here, by origin, for a while after the move (forgotten after
/// [`REMEMBER_FOR`], see `handover.rs`).
pub struct Arrivals {
    seen: HashSet<Origin>,
    order: VecDeque<Origin>,
}

impl Arrivals {
    /// Remember from now on, starting with `already` (what the session brought along).
    pub fn new(already: impl IntoIterator<Item = Origin>) -> Arrivals {
        let mut arrivals = Arrivals {
            seen: HashSet::new(),
            order: VecDeque::new(),
        };
        for origin in already {
            arrivals.first(origin);
        }
        arrivals
    }

    /// True the first time `origin` is seen.
    pub fn first(&mut self, origin: Origin) -> bool {
        if !self.seen.insert(origin) {
            return false;
        }
        self.order.push_back(origin);
        if self.order.len() > REMEMBER_AT_MOST {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_taken_once_and_what_came_along_counts() {
        let mut arrivals = Arrivals::new([(1, 1)]);
        assert!(!arrivals.first((1, 1)));
        assert!(arrivals.first((1, 2)));
        assert!(!arrivals.first((1, 2)));
        assert!(arrivals.first((2, 2)));
    }
}
