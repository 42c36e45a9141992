//! What every actor of one broker shares: configuration, the router, the session store and the counters.
//!
//! Actors come and go under their supervisors; the kernel stays for the life of the broker, which is why the
//! state that must survive a restart lives here or is reachable from here. Current actor refs that others
//! need (the session supervisor) are published here by the actors themselves when they start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use ractmq_protocol::Limits;
use ractor::ActorRef;

use crate::config::{BrokerConfig, Durability};
use crate::enhanced_auth::Authenticators;
use crate::fence::Fences;
use crate::metrics::Metrics;
use crate::overload::Overload;
use crate::peer_counts::PeerCounts;
use crate::remote_sessions::RemoteSessions;
use crate::router::Router;
use crate::security::Security;
use crate::session_msg::SessionSupMsg;
use crate::session_store::{SessionStore, SupSlot};
use crate::supervisor::SupervisorMsg;
use crate::trace::Traces;
use ractmq_protocol::auth::Authenticator;
use ractmq_protocol::log_limit::LogLimit;
use ractmq_protocol::scram::ScramSha256;
use ractmq_store::{Recovered, Store, StoreOptions};

pub struct Kernel {
    pub(crate) config: BrokerConfig,
    pub(crate) limits: Arc<Limits>,
    pub(crate) router: Arc<Router>,
    pub(crate) store: Arc<SessionStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) started_at: Instant,
    /// The running session supervisor; replaced when it restarts. Sessions hold this slot too.
    pub(crate) session_sup: SupSlot,
    /// Where the MQTT listener is bound (kept across listener restarts so the port stays the same).
    pub(crate) mqtt_addr: Mutex<Option<SocketAddr>>,
    /// Where each of `config.listeners` is bound, in the same order (kept across restarts likewise).
    pub(crate) listener_addrs: Mutex<Vec<Option<SocketAddr>>>,
    /// Open client connections by listener: the plain TCP one first, then each of `config.listeners`.
    pub(crate) listener_connections: Vec<Arc<AtomicU64>>,
    /// Open in-process connections (bridges', and those a program embedding the node opened).
    pub(crate) in_process_connections: Arc<AtomicU64>,
    next_assigned_id: AtomicU64,
    /// Who may connect and what they may do.
    pub(crate) security: Security,
    /// Sockets accepted whose CONNECT is not handled yet.
    pub(crate) waiting: Arc<PeerCounts>,
    /// Whether memory is above the high watermark (see `overload.rs`).
    pub(crate) overload: Overload,
    /// Connected clients by peer address (for `max_connections_per_peer`).
    pub(crate) connected: Arc<PeerCounts>,
    /// Warnings a flood would repeat: sockets closed at accept, connections refused.
    pub(crate) log_limits: LogLimits,
    /// Enhanced authentication methods: SCRAM-SHA-256 over the configured users, then the configured ones.
    pub(crate) authenticators: Authenticators,
    /// True once the node is draining for shutdown: the listener stops accepting, handshakes under way are
    /// refused.
    pub(crate) draining: tokio::sync::watch::Sender<bool>,
    /// True while an operator evacuates the node (`ractmq ctl node evacuate`): new clients are refused and the
    /// node is not ready, but the listener stays open, so that stopping the evacuation undoes it.
    pub(crate) evacuating: std::sync::atomic::AtomicBool,
    /// Clients whose packets an operator is watching (`ractmq ctl trace client`).
    pub(crate) traces: Traces,
    /// Subscription changes read and not yet in the index (see `fence.rs`).
    pub(crate) fences: Arc<Fences>,
    /// Sessions on other nodes, when this node is part of a cluster.
    remote_sessions: OnceLock<Arc<dyn RemoteSessions>>,
    /// The one line an operator should see when a child could not start (a port in use, say); the
    /// supervisors' wrapping of the error would bury it.
    start_failure: Mutex<Option<String>>,
    /// The root supervisor, once started (see `guardian.rs`): health checks ask it about its children.
    root: OnceLock<ActorRef<SupervisorMsg>>,
    /// Set once, with one line saying why, if the root supervisor gave up.
    down: tokio::sync::watch::Sender<Option<String>>,
    /// The store on disk, with `Durability::Disk` (see `durable.rs`).
    pub(crate) disk: Option<Store>,
    /// What the store held at start, until the broker restores it (before any actor starts).
    recovered: Mutex<Option<Recovered>>,
    /// Operator state read back from the store at start, by space, for the parts of the node outside the
    /// broker that keep state there (bridges created at run time): (space, key, value).
    pub(crate) stored_state: Mutex<Vec<(String, String, Vec<u8>)>>,
    /// Queue policies of in-process clients, by client id, set by their owners (a bridge's buffer).
    pub(crate) in_process_queues: Mutex<std::collections::HashMap<String, ractmq_protocol::QueuePolicy>>,
}

/// One [`LogLimit`] per kind of line a flood would repeat.
#[derive(Debug, Default)]
pub(crate) struct LogLimits {
    /// A socket closed at accept: too many waiting for their CONNECT.
    pub(crate) accept_full: LogLimit,
    /// A CONNECT refused (bad credentials, banned, limits).
    pub(crate) refused: LogLimit,
}

impl Kernel {
    /// The kernel of a broker with `config`. Fails, with one line naming the file, when a user database or
    /// ACL file cannot be read.
    pub fn new(config: BrokerConfig) -> Result<Arc<Kernel>, String> {
        let metrics = Arc::new(Metrics::default());
        // Opened first: a data directory in use or damaged stops the node before anything else starts.
        let (disk, recovered) = match &config.durability {
            Durability::Memory => (None, None),
            Durability::Disk(dir) => {
                let (store, recovered) = Store::open(dir, StoreOptions::default()).map_err(|e| e.to_string())?;
                (Some(store), Some(recovered))
            }
        };
        // A node with a data dir keeps its built-in user database there unless told otherwise.
        let mut security_config = config.security.clone();
        if let (None, Durability::Disk(dir)) = (&security_config.user_db, &config.durability) {
            security_config.user_db = Some(dir.join("users.json"));
        }
        let security = Security::new(&security_config, &config.users, metrics.clone())?;
        let watermark = config.memory_high_watermark;
        let store = Arc::new(SessionStore::default());
        let router = Arc::new(Router::new(
            config.shards,
            config.limits.max_retained,
            config.shared_strategy,
            metrics.clone(),
            store.clone(),
            disk.clone(),
        ));
        // SCRAM-SHA-256 over the built-in user database's stored keys.
        let scram = ScramSha256::with_lookup(security.users().clone());
        let mut methods: Vec<Arc<dyn Authenticator>> = vec![Arc::new(scram)];
        methods.extend(config.authenticators.0.iter().cloned());
        let authenticators = Authenticators(methods);
        let listeners = config.listeners.len();
        let kernel = Arc::new(Kernel {
            security,
            limits: Arc::new(config.limits.clone()),
            config,
            router,
            store,
            metrics,
            started_at: Instant::now(),
            session_sup: SupSlot::default(),
            mqtt_addr: Mutex::new(None),
            listener_addrs: Mutex::new(vec![None; listeners]),
            listener_connections: (0..=listeners).map(|_| Arc::default()).collect(),
            in_process_connections: Arc::default(),
            next_assigned_id: AtomicU64::new(1),
            waiting: Arc::default(),
            connected: Arc::default(),
            overload: Overload::new(watermark),
            log_limits: LogLimits::default(),
            authenticators,
            start_failure: Mutex::new(None),
            remote_sessions: OnceLock::new(),
            traces: Traces::default(),
            fences: Arc::default(),
            draining: tokio::sync::watch::Sender::new(false),
            evacuating: std::sync::atomic::AtomicBool::new(false),
            root: OnceLock::new(),
            down: tokio::sync::watch::Sender::new(None),
            disk,
            recovered: Mutex::new(recovered),
            stored_state: Mutex::default(),
            in_process_queues: Mutex::default(),
        });
        if let Some(disk) = &kernel.disk {
            // A store that cannot commit can promise nothing: the node stops, as when its root gives up.
            let weak = Arc::downgrade(&kernel);
            disk.on_failure(move |why| {
                if let Some(kernel) = weak.upgrade() {
                    kernel.report_down(ractmq_store::StoreError::WriteFailed(why.to_string()).to_string());
                }
            });
        }
        Ok(kernel)
    }

    /// Take sessions over from other nodes through `remote` from now on (once: a cluster layer installs
    /// itself at start).
    pub fn set_remote_sessions(&self, remote: Arc<dyn RemoteSessions>) {
        let _ = self.remote_sessions.set(remote);
    }

    pub fn remote_sessions(&self) -> Option<&Arc<dyn RemoteSessions>> {
        self.remote_sessions.get()
    }

    /// Record why a child could not start, in one line that says how to fix it. The first one wins: it is
    /// the cause, what follows are consequences.
    pub fn report_start_failure(&self, line: String) {
        self.start_failure.lock().get_or_insert(line);
    }

    /// The line recorded by [`Kernel::report_start_failure`], if any.
    pub fn start_failure(&self) -> Option<String> {
        self.start_failure.lock().clone()
    }

    /// A client id for a client that sent an empty one.
    pub fn assign_client_id(&self) -> String {
        let n = self.next_assigned_id.fetch_add(1, Ordering::Relaxed);
        let nanos = self.started_at.elapsed().as_nanos() as u64;
        format!("ractmq-{:x}-{n}", nanos ^ (std::process::id() as u64) << 32)
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    pub fn is_evacuating(&self) -> bool {
        self.evacuating.load(Ordering::Acquire)
    }

    pub(crate) fn set_root(&self, root: ActorRef<SupervisorMsg>) {
        let _ = self.root.set(root);
    }

    pub fn root(&self) -> Option<&ActorRef<SupervisorMsg>> {
        self.root.get()
    }

    /// The root supervisor gave up: `line` says why.
    pub(crate) fn report_down(&self, line: String) {
        self.down.send_replace(Some(line));
    }

    /// Why the broker stopped by itself, if it did.
    pub fn down(&self) -> Option<String> {
        self.down.borrow().clone()
    }

    /// Wait until the broker stops by itself; the line says why.
    pub async fn wait_down(&self) -> String {
        let mut down = self.down.subscribe();
        loop {
            if let Some(line) = down.borrow_and_update().clone() {
                return line;
            }
            if down.changed().await.is_err() {
                return "the broker stopped".into();
            }
        }
    }

    /// What the store held at start, once (see `durable::restore`).
    pub(crate) fn take_recovered(&self) -> Option<Recovered> {
        self.recovered.lock().take()
    }

    pub fn session_sup(&self) -> Option<ActorRef<SessionSupMsg>> {
        self.session_sup.read().clone()
    }
}
