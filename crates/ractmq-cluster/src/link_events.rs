//! Reading ractor_cluster's link events to tell an operator why a peer cannot join.
//!
//! ractor_cluster says only that a session opened, authenticated or closed; it logs a failed cookie check at
//! info level among much else, and not which peer it was. [`LinkEvents`] forwards its events to the
//! connector, and [`AuthWatch`] turns them into one warning: a link that closes after the peer named itself
//! but before it authenticated, twice in a row for the same peer with no good link in between, is a cookie
//! mismatch (one such close alone can be a duplicate connection losing ractor_cluster's election).

use std::collections::{HashMap, HashSet};

use ractor::{ActorId, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::NodeEventSubscription;

use crate::connector::ConnectorMsg;

/// Closes before authentication, in a row, that make a cookie mismatch.
pub const AUTH_FAILURES_TO_REPORT: u32 = 2;

/// One session's event, as the connector needs it.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    Authenticated {
        session: ActorId,
        peer: Option<String>,
    },
    Closed {
        session: ActorId,
        peer: Option<String>,
        /// Whether the peer dialled us (true) or we dialled it.
        incoming: bool,
        /// The far end of the socket.
        peer_addr: String,
    },
}

/// The subscription handed to the node server: forwards every event to the connector. (The methods are
/// synchronous and must not block the node server, hence a message.)
pub struct LinkEvents(pub ActorRef<ConnectorMsg>);

impl LinkEvents {
    fn forward(&self, event: LinkEvent) {
        // The connector being gone (restarting) only costs a diagnostic.
        let _ = self.0.send_message(ConnectorMsg::Link(event));
    }
}

fn peer_name(ses: &NodeServerSessionInformation) -> Option<String> {
    ses.peer_name.as_ref().map(|p| p.name.clone())
}

impl NodeEventSubscription for LinkEvents {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.forward(LinkEvent::Authenticated {
            session: ses.actor.get_id(),
            peer: peer_name(&ses),
        });
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.forward(LinkEvent::Closed {
            session: ses.actor.get_id(),
            peer: peer_name(&ses),
            incoming: ses.is_server,
            peer_addr: ses.peer_addr.clone(),
        });
    }
}

/// Which peers keep failing authentication; see the module doc.
#[derive(Debug, Default)]
pub struct AuthWatch {
    authenticated: HashSet<ActorId>,
    failures: HashMap<String, u32>,
}

impl AuthWatch {
    /// Feed one event; returns the warning to log, once per run of failures.
    pub fn observe(&mut self, event: &LinkEvent) -> Option<String> {
        match event {
            LinkEvent::Authenticated { session, peer } => {
                self.authenticated.insert(*session);
                if let Some(peer) = peer {
                    self.failures.remove(peer);
                }
                None
            }
            LinkEvent::Closed {
                session,
                peer,
                incoming,
                peer_addr,
            } => {
                if self.authenticated.remove(session) {
                    tracing::debug!("cluster link to {} closed", peer.as_deref().unwrap_or(peer_addr));
                    return None;
                }
                // Before the peer named itself there is nothing to say whom to blame.
                let peer = peer.as_ref()?;
                let count = self.failures.entry(peer.clone()).or_default();
                *count += 1;
                if *count != AUTH_FAILURES_TO_REPORT {
                    return None;
                }
                Some(if *incoming {
                    format!(
                        "cluster node {peer} (from {peer_addr}) failed authentication: check that --cookie is the same on every node"
                    )
                } else {
                    format!(
                        "cannot join cluster node {peer} at {peer_addr}: it refused this node's cookie; check that --cookie is the same on every node"
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(id: u64, peer: Option<&str>) -> LinkEvent {
        LinkEvent::Closed {
            session: ActorId::Local(id),
            peer: peer.map(str::to_string),
            incoming: false,
            peer_addr: "127.0.0.1:4371".into(),
        }
    }

    fn authenticated(id: u64, peer: &str) -> LinkEvent {
        LinkEvent::Authenticated {
            session: ActorId::Local(id),
            peer: Some(peer.into()),
        }
    }

    #[test]
    fn repeated_closes_before_authentication_are_a_cookie_problem_said_once() {
        let mut w = AuthWatch::default();
        assert_eq!(w.observe(&closed(1, Some("n2@127.0.0.1"))), None);
        let line = w.observe(&closed(2, Some("n2@127.0.0.1"))).expect("reported");
        assert!(line.contains("n2@127.0.0.1") && line.contains("--cookie"), "{line}");
        assert_eq!(w.observe(&closed(3, Some("n2@127.0.0.1"))), None, "once per run");
        // A good link ends the run; failing again is reported again.
        w.observe(&authenticated(4, "n2@127.0.0.1"));
        w.observe(&closed(5, Some("n2@127.0.0.1")));
        assert!(w.observe(&closed(6, Some("n2@127.0.0.1"))).is_some());
    }

    #[test]
    fn an_election_loser_or_a_working_link_closing_is_not() {
        let mut w = AuthWatch::default();
        // A duplicate connection loses the election while the winner authenticates.
        w.observe(&closed(1, Some("n2@127.0.0.1")));
        w.observe(&authenticated(2, "n2@127.0.0.1"));
        // The winner closes later (the node went away): a closed working link.
        assert_eq!(w.observe(&closed(2, Some("n2@127.0.0.1"))), None);
        assert_eq!(w.observe(&closed(3, None)), None, "no name, nobody to blame");
        assert_eq!(w.observe(&closed(4, None)), None);
    }
}
