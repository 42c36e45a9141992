//! Finding links that are open but carry nothing, so that they can be closed and dialled afresh.
//!
//! A network that drops packets without resetting connections (a cut cable, a partition) leaves TCP believing
//! the link is up for many minutes. The failure detector marks the peer down after `down_after` all the same,
//! but the connector only dials members *without* a link, so such a link would block the reconnection once
//! the network heals. A link to a member that is down, open for at least `down_after` (a new link brings a
//! hello within a round trip), is stale: the connector closes it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// When each open link was first seen.
#[derive(Debug)]
pub struct LinkAges<Id> {
    first_seen: HashMap<Id, Instant>,
}

impl<Id> Default for LinkAges<Id> {
    fn default() -> Self {
        LinkAges {
            first_seen: HashMap::new(),
        }
    }
}

impl<Id: Copy + Eq + Hash> LinkAges<Id> {
    /// The links open at `now`, each with the name of its peer node; returns
    /// the stale ones: to a peer in `down`, and open for at least `patience`.
    pub fn stale<'a>(
        &mut self,
        links: impl IntoIterator<Item = (Id, &'a str)>,
        down: &HashSet<String>,
        now: Instant,
        patience: Duration,
    ) -> Vec<Id> {
        let links: Vec<(Id, &str)> = links.into_iter().collect();
        self.first_seen.retain(|id, _| links.iter().any(|(l, _)| l == id));
        links
            .into_iter()
            .filter(|(id, peer)| {
                let since = *self.first_seen.entry(*id).or_insert(now);
                down.contains(*peer) && now.saturating_duration_since(since) >= patience
            })
            .map(|(id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_to_a_down_member_is_stale_once_open_for_the_patience() {
        let mut ages = LinkAges::default();
        let t = Instant::now();
        let patience = Duration::from_secs(5);
        let down: HashSet<String> = ["127.0.0.1:4372".to_string()].into();
        let links = [(1, "127.0.0.1:4371"), (2, "127.0.0.1:4372")];
        assert!(
            ages.stale(links, &down, t, patience).is_empty(),
            "new links get time to say hello"
        );
        assert!(ages
            .stale(links, &down, t + Duration::from_secs(4), patience)
            .is_empty());
        assert_eq!(
            ages.stale(links, &down, t + patience, patience),
            [2],
            "only the one to a down member"
        );
        // A link that closed and opened again (another id) starts its wait anew.
        let relinked = [(1, "127.0.0.1:4371"), (3, "127.0.0.1:4372")];
        assert!(ages.stale(relinked, &down, t + patience, patience).is_empty());
        assert_eq!(ages.stale(relinked, &down, t + patience * 2, patience), [3]);
        // Up again: not stale, however old.
        assert!(ages
            .stale(relinked, &HashSet::new(), t + patience * 9, patience)
            .is_empty());
    }
}
