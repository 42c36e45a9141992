//! Telling an operator that a peer refuses this node's cookie (or this node refuses the peer's).
//!
//! ractor_cluster logs a failed cookie check at info level among much else, without naming the peer, and
//! tells subscribers only that a session closed. A session that closes after the peer named itself but before
//! it authenticated is a cookie mismatch, or a duplicate connection losing ractor_cluster's election (several
//! of those at once when a frozen node thaws with a backlog of connections). So a peer is reported when
//! [`FAILURES_TO_REPORT`] such closes came with no link to it authenticated in between, and still no link
//! to it is up [`GRACE`] later (the election's winner authenticates within a round trip). Once per run of
//! failures. Closes this node causes itself (handshake timeouts, stale links) do not count.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ractor::ActorId;

use crate::link_events::LinkEvent;

/// Closes before authentication that make a suspect.
pub const FAILURES_TO_REPORT: u32 = 2;
/// How long a suspect must stay without a link before it is reported.
pub const GRACE: Duration = Duration::from_secs(1);
/// Most peers under suspicion at once (names come from unauthenticated sockets: anyone can claim one).
pub const MAX_SUSPECTS: usize = 256;

#[derive(Debug)]
struct Suspect {
    /// The link closed before the peer named itself, during TLS (only counted with TLS on): the peer is
    /// known by its address alone.
    tls: bool,
    failures: u32,
    since: Instant,
    incoming: bool,
    peer_addr: String,
    reported: bool,
}

#[derive(Debug, Default)]
pub struct AuthWatch {
    /// Links are TLS: a link this node dialled that closes before the peer named itself was refused in
    /// the TLS handshake (with TLS 1.3 the dialler learns of it only as the link closes).
    tls: bool,
    authenticated: HashSet<ActorId>,
    closed_by_us: HashSet<ActorId>,
    suspects: HashMap<String, Suspect>,
}

impl AuthWatch {
    /// A watch for links that are TLS (`tls`) or plain.
    pub fn new(tls: bool) -> AuthWatch {
        AuthWatch {
            tls,
            ..AuthWatch::default()
        }
    }

    /// This node is closing `session` itself (a handshake timeout): its close says nothing of cookies.
    pub fn closing(&mut self, session: ActorId) {
        self.closed_by_us.insert(session);
    }

    pub fn observe(&mut self, event: &LinkEvent, now: Instant) {
        match event {
            LinkEvent::Opened { .. } => {}
            LinkEvent::Authenticated { session, peer } => {
                self.authenticated.insert(*session);
                if let Some(peer) = peer {
                    self.suspects.remove(peer);
                }
            }
            LinkEvent::Closed {
                session,
                peer,
                incoming,
                peer_addr,
            } => {
                let ours = self.closed_by_us.remove(session);
                if self.authenticated.remove(session) {
                    tracing::debug!("cluster link to {} closed", peer.as_deref().unwrap_or(peer_addr));
                    return;
                }
                // Before the peer named itself there is nothing to say whom to blame, unless TLS refused it.
                let tls = peer.is_none();
                let peer = match peer {
                    Some(peer) => peer.clone(),
                    None if self.tls && !*incoming => peer_addr.clone(),
                    None => return,
                };
                if ours || (!self.suspects.contains_key(&peer) && self.suspects.len() >= MAX_SUSPECTS) {
                    return;
                }
                let suspect = self.suspects.entry(peer).or_insert(Suspect {
                    tls,
                    failures: 0,
                    since: now,
                    incoming: *incoming,
                    peer_addr: peer_addr.clone(),
                    reported: false,
                });
                suspect.failures += 1;
                if suspect.failures == FAILURES_TO_REPORT {
                    suspect.since = now;
                    suspect.incoming = *incoming;
                    suspect.peer_addr = peer_addr.clone();
                }
            }
        }
    }

    /// The warnings due at `now`. (The caller first reports the links that are up as authenticated, which
    /// clears their peers.)
    pub fn verdicts(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        for (peer, s) in &mut self.suspects {
            if s.reported || s.failures < FAILURES_TO_REPORT || now.saturating_duration_since(s.since) < GRACE {
                continue;
            }
            s.reported = true;
            lines.push(if s.tls {
                format!(
                    "cannot join the cluster node at {peer}: it closed the link during the TLS handshake; check that this node's certificate (--cluster-tls-cert) is signed by the CA the other nodes trust (--cluster-tls-ca)"
                )
            } else if s.incoming {
                format!(
                    "cluster node {peer} (from {}) failed authentication: check that --cookie is the same on every node",
                    s.peer_addr
                )
            } else {
                format!(
                    "cannot join cluster node {peer} at {}: it refused this node's cookie; check that --cookie is the same on every node",
                    s.peer_addr
                )
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N2: &str = "n2@127.0.0.1";

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
    fn repeated_closes_before_authentication_and_no_link_are_a_cookie_problem_said_once() {
        let mut w = AuthWatch::default();
        let t = Instant::now();
        w.observe(&closed(1, Some(N2)), t);
        assert!(w.verdicts(t + GRACE * 5).is_empty(), "one failure is not enough");
        w.observe(&closed(2, Some(N2)), t + GRACE);
        assert!(w.verdicts(t + GRACE).is_empty(), "the grace runs first");
        let lines = w.verdicts(t + GRACE * 2);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(N2) && lines[0].contains("--cookie"), "{}", lines[0]);
        w.observe(&closed(3, Some(N2)), t + GRACE * 3);
        assert!(w.verdicts(t + GRACE * 9).is_empty(), "once per run");
        // A good link ends the run; failing again is reported again.
        w.observe(&authenticated(4, N2), t);
        w.observe(&closed(5, Some(N2)), t);
        w.observe(&closed(6, Some(N2)), t);
        assert_eq!(w.verdicts(t + GRACE).len(), 1);
    }

    #[test]
    fn election_losers_around_a_winning_link_are_not() {
        let mut w = AuthWatch::default();
        let t = Instant::now();
        // A thawing node: several handshakes lose at once, and the winner's link is up (its event may come
        // late, or not at all to this subscriber).
        for id in 1..5 {
            w.observe(&closed(id, Some(N2)), t);
        }
        w.observe(&authenticated(8, N2), t + GRACE / 2);
        assert!(w.verdicts(t + GRACE).is_empty());
        // The winner closes later (the node went away): a closed working link.
        w.observe(&authenticated(9, N2), t);
        w.observe(&closed(9, Some(N2)), t);
        assert!(w.verdicts(t + GRACE * 9).is_empty());
    }

    #[test]
    fn closes_without_a_name_or_by_this_node_are_not() {
        let mut w = AuthWatch::default();
        let t = Instant::now();
        w.observe(&closed(1, None), t);
        w.observe(&closed(2, None), t);
        w.closing(ActorId::Local(3));
        w.closing(ActorId::Local(4));
        w.observe(&closed(3, Some(N2)), t);
        w.observe(&closed(4, Some(N2)), t);
        assert!(w.verdicts(t + GRACE * 9).is_empty());
    }

    #[test]
    fn with_tls_a_dialled_link_closed_before_any_name_is_a_certificate_problem() {
        let mut w = AuthWatch::new(true);
        let t = Instant::now();
        w.observe(&closed(1, None), t);
        w.observe(&closed(2, None), t);
        let lines = w.verdicts(t + GRACE);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("127.0.0.1:4371") && lines[0].contains("--cluster-tls-ca"),
            "{}",
            lines[0]
        );
    }

    #[test]
    fn names_claimed_by_strangers_are_bounded() {
        let mut w = AuthWatch::default();
        let t = Instant::now();
        for id in 0..(MAX_SUSPECTS as u64 + 50) {
            w.observe(&closed(id, Some(&format!("x{id}@h"))), t);
        }
        assert_eq!(w.suspects.len(), MAX_SUSPECTS);
    }
}
