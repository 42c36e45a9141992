//! What the cluster keeps outside its actors, so that an actor restart forgets nothing: the configuration,
//! this run's incarnation, the membership view, the channel of membership changes, the other nodes' routes,
//! the queues of messages towards them and what was routed of theirs, and the running node server, forwarder
//! and cluster supervisor (published by whoever starts them; read by the connector and the chaos API), and
//! the replicated map of run-time rules.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use ractmq_broker::{RouteKey, SupervisorMsg};
use ractmq_protocol::Message;
use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::sync::{broadcast, mpsc, Notify};

use crate::config::ClusterConfig;
use crate::forwarder_ref::ForwarderMsg;
use crate::inbound::Inbound;
use crate::link::PeerLink;
use crate::membership::{MemberEvent, Membership};
use crate::remote_routes::RemoteRoutes;
use crate::replicated::ReplicatedMap;
use crate::stats::ClusterStats;
use crate::tls::TlsSetup;
use crate::wire::{Hello, WireSession};

/// Membership changes a subscriber may fall behind by before it misses some (it is then told it lagged and
/// should read the membership again).
pub const EVENT_BUFFER: usize = 256;

/// The store space of the replicated rules' entries (versions and tombstones included).
pub const RULES_SPACE: &str = "cluster-rules";

/// Route changes waiting for the forwarder, and the version the forwarder will send them as.
#[derive(Debug)]
pub struct PendingRoutes {
    pub next_version: u64,
    pub changes: Vec<(RouteKey, bool)>,
}

impl PendingRoutes {
    /// Take the changes, and the version to send them as.
    pub fn take(&mut self) -> (u64, Vec<(RouteKey, bool)>) {
        let version = self.next_version;
        self.next_version += 1;
        (version, std::mem::take(&mut self.changes))
    }

    /// The version that carries (or carried) every change reported so far.
    pub fn version_of_reported(&self) -> u64 {
        if self.changes.is_empty() {
            self.next_version - 1
        } else {
            self.next_version
        }
    }
}

pub struct Shared {
    pub config: ClusterConfig,
    /// TLS between nodes, loaded at start, when configured.
    pub tls: Option<TlsSetup>,
    pub membership: RwLock<Membership>,
    pub events: broadcast::Sender<MemberEvent>,
    pub node_server: RwLock<Option<ActorRef<NodeServerMessage>>>,
    pub supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
    /// The running forwarder, published by itself when it starts.
    pub forwarder: RwLock<Option<ActorRef<ForwarderMsg>>>,
    /// This run's incarnation (also in the membership, as this node's).
    pub incarnation: u64,
    /// The other nodes' routes.
    pub remote_routes: RemoteRoutes,
    /// This node's routes as last told to the other nodes. Whoever tells them holds this lock while sending,
    /// so that a full list and a change reach each node in the order they were taken.
    pub announced: Mutex<HashSet<RouteKey>>,
    /// Route changes from the topic shards that the forwarder has not taken yet, and whether it has been
    /// asked to take them.
    pub pending_routes: Mutex<PendingRoutes>,
    pub flush_asked: AtomicBool,
    /// The version of this node's routes last sent (under `announced`), and the highest version each other
    /// node has acknowledged; `routes_acked` wakes whoever waits for acknowledgements.
    pub routes_version: AtomicU64,
    pub routes_acks: Mutex<HashMap<String, u64>>,
    pub routes_acked: Notify,
    /// The queue to each other node, by name.
    pub links: RwLock<HashMap<Arc<str>, Arc<PeerLink>>>,
    /// What has been routed of each other node's forwarded messages.
    pub inbound: Inbound,
    /// The other nodes that are up: retained messages go to each.
    pub peers_up: ArcSwap<Vec<Arc<str>>>,
    pub stats: ClusterStats,
    /// Takeovers this node asked the others for, by request number: where their answers go.
    pub takeovers: Mutex<HashMap<u64, mpsc::Sender<Option<WireSession>>>>,
    pub next_request: AtomicU64,
    /// Messages relayed by the node a session is being taken over from, held by client id until the session
    /// is imported here (see `sessions.rs`).
    pub arriving: Mutex<HashMap<String, Held>>,
    /// The number of the next message published here that gets an origin (see `ractmq_protocol::Origin`).
    pub next_origin: AtomicU64,
    /// The rules created at run time, replicated to every node (see `replicated.rs`).
    pub rules: Arc<ReplicatedMap>,
    /// The nodes that acknowledged a [`crate::wire::Left`] this node sent, as (node, the node it was about);
    /// `left_acked` wakes whoever waits for them.
    pub left_acks: Mutex<HashSet<(String, String)>>,
    pub left_acked: Notify,
}

impl Shared {
    pub fn new(config: ClusterConfig, tls: Option<TlsSetup>) -> Shared {
        let incarnation = incarnation();
        let membership = Membership::new(&config, incarnation);
        let rules = Arc::new(ReplicatedMap::new(&config.node_name, RULES_SPACE));
        Shared {
            config,
            tls,
            forwarder: RwLock::new(None),
            incarnation,
            remote_routes: RemoteRoutes::default(),
            announced: Mutex::new(HashSet::new()),
            pending_routes: Mutex::new(PendingRoutes {
                next_version: 1,
                changes: Vec::new(),
            }),
            flush_asked: AtomicBool::new(false),
            routes_version: AtomicU64::new(0),
            routes_acks: Mutex::new(HashMap::new()),
            routes_acked: Notify::new(),
            links: RwLock::new(HashMap::new()),
            inbound: Inbound::default(),
            peers_up: ArcSwap::from_pointee(Vec::new()),
            stats: ClusterStats::default(),
            takeovers: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            arriving: Mutex::new(HashMap::new()),
            next_origin: AtomicU64::new(1),
            rules,
            left_acks: Mutex::new(HashSet::new()),
            left_acked: Notify::new(),
            membership: RwLock::new(membership),
            events: broadcast::channel(EVENT_BUFFER).0,
            node_server: RwLock::new(None),
            supervisor: RwLock::new(None),
        }
    }

    /// This node's hello, with the digest of its replicated map.
    pub fn hello(&self, membership: &Membership) -> Hello {
        let mut hello = membership.hello();
        hello.map_digest = self.rules.digest();
        hello.queues = (self.links.read().iter())
            .map(|(node, link)| (node.to_string(), link.len() as u64))
            .collect();
        hello
    }

    pub fn node_server(&self) -> Option<ActorRef<NodeServerMessage>> {
        self.node_server.read().clone()
    }

    /// The queue to `node`, made on first use.
    pub fn link(&self, node: &str) -> Arc<PeerLink> {
        if let Some(link) = self.links.read().get(node) {
            return link.clone();
        }
        let mut links = self.links.write();
        links
            .entry(node.into())
            .or_insert_with(|| Arc::new(PeerLink::new(self.config.forward_queue)))
            .clone()
    }
}

/// A number that differs every time the process starts (the start time in nanoseconds, mixed with the
/// process id in case two start in the same nanosecond).
fn incarnation() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos ^ (u64::from(std::process::id()) << 48)
}

/// What was relayed for one client whose session is on its way here.
#[derive(Default)]
pub struct Held {
    /// Each message with the shared groups it is for (none: the client's own subscriptions).
    pub(crate) messages: Vec<(Arc<Message>, Members)>,
    pub(crate) bytes: usize,
}

/// Members of shared groups a message is for: (group, member).
pub(crate) type Members = Vec<(Arc<str>, Arc<str>)>;
