//! What the cluster keeps outside its actors, so that an actor restart forgets nothing: the configuration,
//! this run's incarnation, the membership view, the channel of membership changes, and the running node
//! server and cluster supervisor (published by whoever starts them; read by the connector and the chaos
//! API).

use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use ractmq_broker::SupervisorMsg;
use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::sync::broadcast;

use crate::config::ClusterConfig;
use crate::membership::{MemberEvent, Membership};

/// Membership changes a subscriber may fall behind by before it misses some (it is then told it lagged and
/// should read the membership again).
pub const EVENT_BUFFER: usize = 256;

pub struct Shared {
    pub config: ClusterConfig,
    pub membership: RwLock<Membership>,
    pub events: broadcast::Sender<MemberEvent>,
    pub node_server: RwLock<Option<ActorRef<NodeServerMessage>>>,
    pub supervisor: RwLock<Option<ActorRef<SupervisorMsg>>>,
}

impl Shared {
    pub fn new(config: ClusterConfig) -> Shared {
        let membership = Membership::new(&config, incarnation());
        Shared {
            config,
            membership: RwLock::new(membership),
            events: broadcast::channel(EVENT_BUFFER).0,
            node_server: RwLock::new(None),
            supervisor: RwLock::new(None),
        }
    }

    pub fn node_server(&self) -> Option<ActorRef<NodeServerMessage>> {
        self.node_server.read().clone()
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
