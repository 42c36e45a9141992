//! The connector: keeps a link to every member this node knows, because ractor_cluster never reconnects.
//!
//! Four times a second it asks the node server which peers are linked, and dials every known member (seeds,
//! and nodes learned from peers' hellos) that is not, each with its own jittered exponential backoff (see
//! `backoff.rs`). So a node that restarts is found again, a healed link comes back, and a seed that is not
//! up yet is joined once it is. A link that stays open to a member found down is closed so that it can be
//! dialled afresh (see `stale_links.rs`), and so is one that does not authenticate in time
//! (`handshakes.rs`). It also reads the node server's link events to tell the operator, in one
//! line, why a peer cannot be reached or refuses this node. Seeds given by host name and `--discovery dns`
//! are resolved again at each redial and dialled by address (`discovery.rs`).
//!
//! Its state (backoffs, dials in flight, what was reported) is only about pacing and logging: a restart
//! starts the backoffs afresh, which costs at most a few early dials.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use ractor_cluster::{ClientConnectErr, NodeServerMessage, NodeSessionMessage};

use crate::auth_watch::AuthWatch;
use crate::backoff::{Backoff, MAX_RETRY};
use crate::discovery::{self, Target};
use crate::handshakes::{Handshakes, HANDSHAKE_TIMEOUT};
use crate::link_events::{ConnectorMsg, LinkEvent, LinkEvents};
use crate::membership::{human, MemberState};
use crate::stale_links::LinkAges;
use crate::state::Shared;
use crate::tls::server_name;
use tokio_rustls::TlsConnector;

/// How often the connector looks for members without a link.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long one dial may take to open its socket.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// The name of the connector's subscription to the node server's link events.
const SUBSCRIPTION: &str = "ractmq.connector";

pub struct Connector;

pub struct ConnectorState {
    shared: Arc<Shared>,
    backoff: HashMap<SocketAddr, Backoff>,
    dialling: HashSet<SocketAddr>,
    /// Addresses whose failure to connect was reported (until they connect).
    reported: HashSet<SocketAddr>,
    /// The node server the link-event subscription was given to.
    subscribed_to: Option<ActorId>,
    auth: AuthWatch,
    ages: LinkAges<ActorId>,
    handshakes: Handshakes<ActorId, ActorRef<NodeSessionMessage>>,
    /// Host seeds and the DNS discovery name, resolved again and again.
    targets: Vec<Target>,
    /// Addresses found to be this node (a link to them told this node's own name).
    self_addrs: HashSet<SocketAddr>,
    /// As of the last round: the names of the members with a link, and the addresses with one (dialled
    /// addresses of outbound links, and the cluster addresses of linked members).
    linked_names: HashSet<String>,
    linked_addrs: HashSet<SocketAddr>,
}

impl Actor for Connector {
    type Msg = ConnectorMsg;
    type State = ConnectorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<ConnectorMsg>,
        shared: Arc<Shared>,
    ) -> Result<ConnectorState, ActorProcessingErr> {
        myself.send_message(ConnectorMsg::Check)?;
        myself.send_interval(CHECK_EVERY, || ConnectorMsg::Check);
        let auth = AuthWatch::new(shared.tls.is_some());
        Ok(ConnectorState {
            backoff: HashMap::new(),
            dialling: HashSet::new(),
            reported: HashSet::new(),
            subscribed_to: None,
            auth,
            ages: LinkAges::default(),
            handshakes: Handshakes::default(),
            targets: Target::all(&shared.config),
            self_addrs: HashSet::new(),
            linked_names: HashSet::new(),
            linked_addrs: HashSet::new(),
            shared,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnectorMsg>,
        msg: ConnectorMsg,
        state: &mut ConnectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnectorMsg::Check => state.check(&myself).await,
            ConnectorMsg::Dialled { addr, result } => {
                state.dialling.remove(&addr);
                if let Err(e) = result {
                    state.dial_failed(addr, e);
                }
            }
            ConnectorMsg::Link(event) => {
                let now = Instant::now();
                match &event {
                    LinkEvent::Opened { session } => state.handshakes.opened(session.get_id(), session.clone(), now),
                    LinkEvent::Authenticated { session, .. } | LinkEvent::Closed { session, .. } => {
                        state.handshakes.settled(session)
                    }
                }
                state.auth.observe(&event, now);
            }
            ConnectorMsg::Resolved { target, result } => state.resolved(target, result, &myself),
        }
        Ok(())
    }
}

impl ConnectorState {
    /// One round: expire handshakes, read the links, diagnose, close stale links, dial what is missing.
    async fn check(&mut self, myself: &ActorRef<ConnectorMsg>) {
        self.close_late_handshakes();
        // Between a node server's death and its restart there is nothing to dial with.
        let Some(node_server) = self.shared.node_server() else {
            return;
        };
        self.subscribe(&node_server, myself);
        let Ok(sessions) = ractor::call_t!(node_server, NodeServerMessage::GetSessions, 1000) else {
            return;
        };
        // Every session listed is authenticated (including any that did so before the subscription existed).
        let now = Instant::now();
        for s in sessions.values() {
            let peer = s.peer_name.as_ref().map(|p| p.name.clone());
            self.auth.observe(
                &LinkEvent::Authenticated {
                    session: s.actor.get_id(),
                    peer,
                },
                now,
            );
        }
        for line in self.auth.verdicts(now) {
            tracing::warn!("{line}");
        }
        // Links are matched to members by node name (a peer's ractor_cluster name is `NAME@HOST`), not by
        // address: a member may be reached through an address other than the one it listens on
        // (--cluster-advertise).
        let me = self.shared.config.node_name.clone();
        let mut dialled_addrs = HashSet::new();
        let links: Vec<(ActorRef<NodeSessionMessage>, String)> = sessions
            .into_values()
            .filter_map(|s| {
                let name = s.peer_name?.name;
                let node = name.split_once('@').map_or(name.as_str(), |(n, _)| n).to_string();
                let addr = s.peer_addr.parse::<SocketAddr>().ok().filter(|_| !s.is_server);
                // An address found by discovery may be this very node, reached another way: close the link,
                // and never dial that address again.
                if node == me {
                    if let Some(addr) = addr {
                        if self.self_addrs.insert(addr) {
                            tracing::info!("{addr} is this node itself: not dialling it again");
                        }
                    }
                    s.actor.stop(Some("a link to this node itself".into()));
                    return None;
                }
                dialled_addrs.extend(addr);
                Some((s.actor, node))
            })
            .collect();
        let linked: HashSet<&str> = links.iter().map(|(_, peer)| peer.as_str()).collect();
        let is_linked = |name: &str| linked.contains(name);
        let (targets, down) = {
            let mut membership = self.shared.membership.write();
            membership.set_links(is_linked);
            let targets: Vec<(String, SocketAddr)> =
                membership.others().map(|m| (m.name.clone(), m.cluster_addr)).collect();
            let down: HashSet<String> = membership
                .others()
                .filter(|m| m.state == MemberState::Down)
                .map(|m| m.name.clone())
                .collect();
            (targets, down)
        };
        self.close_stale_links(&links, &down, now);
        self.linked_names = linked.iter().map(|n| n.to_string()).collect();
        self.linked_addrs = dialled_addrs;
        self.linked_addrs.extend(
            self.shared
                .membership
                .read()
                .others()
                .filter(|m| m.linked)
                .map(|m| m.cluster_addr),
        );
        let discovered = |addr: &SocketAddr| self.targets.iter().any(|t| t.addrs.contains(addr));
        self.backoff
            .retain(|addr, _| targets.iter().any(|(_, a)| a == addr) || discovered(addr));
        self.discover(myself, now);
        for (name, addr) in targets {
            if is_linked(&name) {
                self.backoff.remove(&addr);
                self.reported.remove(&addr);
            } else {
                self.maybe_dial(&name, addr, &node_server, myself, now);
            }
        }
    }

    /// Start resolving the discovery targets that are due (see `discovery.rs`).
    fn discover(&mut self, myself: &ActorRef<ConnectorMsg>, now: Instant) {
        for (i, target) in self.targets.iter_mut().enumerate() {
            let wanted = match &target.node {
                Some(node) => !self.linked_names.contains(node),
                None => target.addrs.is_empty() || target.addrs.iter().any(|a| !self.linked_addrs.contains(a)),
            };
            if target.start(now, wanted) {
                let (host, port, connector) = (target.host.clone(), target.port, myself.clone());
                tokio::spawn(async move {
                    let result = discovery::resolve(host, port).await;
                    let _ = connector.send_message(ConnectorMsg::Resolved { target: i, result });
                });
            }
        }
    }

    /// A resolution finished: dial what it found that has no link and is not this node.
    fn resolved(&mut self, i: usize, result: Result<Vec<SocketAddr>, String>, myself: &ActorRef<ConnectorMsg>) {
        let Some(target) = self.targets.get_mut(i) else {
            return;
        };
        if !target.resolved(result) {
            return;
        }
        if target.node.as_ref().is_some_and(|n| self.linked_names.contains(n)) {
            return;
        }
        let Some(node_server) = self.shared.node_server() else {
            return;
        };
        let config = &self.shared.config;
        let mine = [config.cluster_listen, config.advertised()];
        // TLS checks the peer's certificate against its node name; a DNS target has none, and is refused with
        // TLS by the configuration's checks.
        let name = target.node.clone().unwrap_or_else(|| target.host.clone());
        let addrs: Vec<SocketAddr> = target
            .addrs
            .iter()
            .copied()
            .filter(|a| !mine.contains(a) && !self.self_addrs.contains(a) && !self.linked_addrs.contains(a))
            .collect();
        let now = Instant::now();
        for addr in addrs {
            self.maybe_dial(&name, addr, &node_server, myself, now);
        }
    }

    fn close_late_handshakes(&mut self) {
        for session in self.handshakes.expired(Instant::now(), HANDSHAKE_TIMEOUT) {
            tracing::debug!("closing a cluster link that did not authenticate within {HANDSHAKE_TIMEOUT:?}");
            self.auth.closing(session.get_id());
            session.stop(Some("handshake timeout".into()));
        }
    }

    /// Hand the node server a subscription to its link events, once per node server.
    fn subscribe(&mut self, node_server: &ActorRef<NodeServerMessage>, myself: &ActorRef<ConnectorMsg>) {
        if self.subscribed_to == Some(node_server.get_id()) {
            return;
        }
        let subscribed = node_server.send_message(NodeServerMessage::SubscribeToEvents {
            id: SUBSCRIPTION.to_string(),
            subscription: Box::new(LinkEvents(myself.clone())),
        });
        if subscribed.is_ok() {
            self.subscribed_to = Some(node_server.get_id());
        }
    }

    /// Close the links to members found down that have been open long enough to have said hello (see
    /// `stale_links.rs`). `down` holds the names of the members found down.
    fn close_stale_links(
        &mut self,
        links: &[(ActorRef<NodeSessionMessage>, String)],
        down: &HashSet<String>,
        now: Instant,
    ) {
        let ids = links.iter().map(|(actor, peer)| (actor.get_id(), peer.as_str()));
        let patience = self.shared.config.down_after;
        for stale in self.ages.stale(ids, down, now, patience) {
            let Some((actor, peer)) = links.iter().find(|(a, _)| a.get_id() == stale) else {
                continue;
            };
            tracing::info!(
                "closing the link to node {}: open but silent for {}, so it is dialled afresh",
                peer,
                human(patience)
            );
            self.auth.closing(stale);
            actor.stop(Some("no heartbeat".into()));
        }
    }

    /// Dial `addr` unless a dial is under way or its backoff says wait.
    fn maybe_dial(
        &mut self,
        name: &str,
        addr: SocketAddr,
        node_server: &ActorRef<NodeServerMessage>,
        myself: &ActorRef<ConnectorMsg>,
        now: Instant,
    ) {
        let backoff = self.backoff.entry(addr).or_default();
        if self.dialling.contains(&addr) || !backoff.due(now) {
            return;
        }
        backoff.attempt(now);
        self.dialling.insert(addr);
        let tls = self
            .shared
            .tls
            .as_ref()
            .map(|t| (t.connector.clone(), name.to_string()));
        tokio::spawn(dial(node_server.clone(), addr, tls, myself.clone()));
    }

    /// Say once why a member cannot be reached, if it has never been up (a node that was up was already
    /// reported down; its failed redials are routine).
    fn dial_failed(&mut self, addr: SocketAddr, error: String) {
        let member = self
            .shared
            .membership
            .read()
            .others()
            .find(|m| m.cluster_addr == addr)
            .map(|m| (m.name.clone(), m.state, m.seed));
        let Some((name, state, seed)) = member else {
            tracing::debug!("cannot reach cluster address {addr} (found by name): {error}");
            return;
        };
        if state != MemberState::Connecting || !self.reported.insert(addr) {
            tracing::debug!("cannot reach cluster node {name} at {addr}: {error}");
            return;
        }
        let hint = if seed {
            "is it running, and is --seed right?"
        } else {
            "a peer named it; is it running?"
        };
        tracing::warn!(
            "cannot reach cluster node {name} at {addr}: {error}; retrying every {} s at most ({hint})",
            MAX_RETRY.as_secs()
        );
    }
}

/// Open a socket to `addr` (with TLS, checking it is node `name`'s, when configured) and hand it to the node
/// server, which runs the handshake.
async fn dial(
    node_server: ActorRef<NodeServerMessage>,
    addr: SocketAddr,
    tls: Option<(TlsConnector, String)>,
    connector: ActorRef<ConnectorMsg>,
) {
    let connect = async {
        match tls {
            None => ractor_cluster::client_connect(&node_server, addr).await,
            Some((tls, name)) => match server_name(&name) {
                Ok(server) => ractor_cluster::client_connect_enc(&node_server, addr, tls, server).await,
                Err(e) => Err(ClientConnectErr::Encryption(std::io::Error::other(e))),
            },
        }
    };
    let result = match tokio::time::timeout(DIAL_TIMEOUT, connect).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(ClientConnectErr::Socket(e))) => Err(e.to_string()),
        Ok(Err(ClientConnectErr::Encryption(e))) => Err(format!("TLS: {e}")),
        Ok(Err(ClientConnectErr::Messaging(_))) => Err("the node server is restarting".into()),
        Err(_) => Err(format!("no answer within {} s", DIAL_TIMEOUT.as_secs())),
    };
    let _ = connector.send_message(ConnectorMsg::Dialled { addr, result });
}
