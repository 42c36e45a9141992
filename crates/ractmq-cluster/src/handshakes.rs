//! A time limit on the cluster handshake, which ractor_cluster does not have.
//!
//! ractor_cluster keeps a session whose peer never completes the cookie handshake for as long as the socket
//! stays open: a port scanner, or a frozen node whose broker still accepts connections, would each hold a
//! session (and the connector would add one per redial). Every session not authenticated within
//! [`HANDSHAKE_TIMEOUT`] of opening is closed.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a new link may take to authenticate.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sessions opened and not yet authenticated or closed, with when they opened.
#[derive(Debug)]
pub struct Handshakes<Id, H> {
    open: HashMap<Id, (H, Instant)>,
}

impl<Id, H> Default for Handshakes<Id, H> {
    fn default() -> Self {
        Handshakes { open: HashMap::new() }
    }
}

impl<Id: Clone + Eq + Hash, H> Handshakes<Id, H> {
    pub fn opened(&mut self, id: Id, session: H, now: Instant) {
        self.open.insert(id, (session, now));
    }

    /// The session authenticated or closed.
    pub fn settled(&mut self, id: &Id) {
        self.open.remove(id);
    }

    /// The sessions open for `timeout` without authenticating, forgotten here: the caller closes them.
    pub fn expired(&mut self, now: Instant, timeout: Duration) -> Vec<H> {
        let late: Vec<Id> = self
            .open
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= timeout)
            .map(|(id, _)| id.clone())
            .collect();
        late.iter()
            .filter_map(|id| self.open.remove(id))
            .map(|(session, _)| session)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sessions_unsettled_past_the_timeout_expire() {
        let mut h = Handshakes::default();
        let t = Instant::now();
        let timeout = Duration::from_secs(10);
        h.opened(1, "scanner", t);
        h.opened(2, "good", t);
        h.opened(3, "closed", t);
        h.opened(4, "late", t + Duration::from_secs(5));
        h.settled(&2);
        h.settled(&3);
        assert!(h.expired(t + Duration::from_secs(9), timeout).is_empty());
        assert_eq!(h.expired(t + timeout, timeout), ["scanner"]);
        assert!(h.expired(t + timeout, timeout).is_empty(), "forgotten once expired");
        assert_eq!(h.expired(t + Duration::from_secs(15), timeout), ["late"]);
    }
}
