//! The broker as a library: start the supervision tree, publish and subscribe in-process, supervise your own
//! actors beside the broker's, and break things on purpose (chaos).
//!
//! The tree (see supervision.md):
//!
//! ```text
//! root (one-for-one)
//! ├── shards (one-for-one) ── shard 0..N
//! ├── sessions (session supervisor) ── one actor per client session
//! ├── retained janitor
//! ├── $SYS publisher
//! ├── user (one-for-one) ── actors and supervision trees started with Broker::supervise, Broker::user_tree
//! ├── bridges (one-for-one) ── one actor per bridge (the ractmq-bridge crate starts them)
//! ├── rules (one-for-one) ── one actor per rule (the ractmq-rule-engine crate starts them)
//! ├── cluster (only when BrokerConfig::cluster is set; see the ractmq-cluster crate)
//! └── MQTT listener
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractmq_codec::{topic, QoS};
use ractmq_protocol::{Message, SubOptions};
use ractor::{Actor, ActorCell, ActorRef};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::guardian::{Guardian, GuardianArgs};
use crate::health::Health;
use crate::index::{Change, Route, Target};
use crate::kernel::Kernel;
use crate::listener::{Listener, ListenerArgs};
use crate::metrics::Metrics;
use crate::overload;
use crate::restart::RestartPolicy;
use crate::session_msg::{SessionMsg, SessionSupMsg};
use crate::session_sup::SessionSup;
use crate::shard::{Shard, ShardArgs, ShardMsg};
use crate::supervisor::{ChildSpec, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::sys::{publish_sys, purge_expired_retained, Periodic, PeriodicArgs};
use crate::user_tree::{self, Tree};
use crate::view::BrokerView;

/// Why the broker could not start, in one line an operator can act on.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Why an in-process publish or subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Not a topic name one may publish to (the name given).
    InvalidTopic(String),
    /// Not a valid topic filter (the filter given).
    InvalidFilter(String),
    /// The broker is shutting down or restarting the part needed.
    Unavailable,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::InvalidTopic(t) => write!(f, "invalid topic name '{t}'"),
            ApiError::InvalidFilter(t) => write!(f, "invalid topic filter '{t}'"),
            ApiError::Unavailable => write!(f, "broker unavailable"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    kernel: Arc<Kernel>,
    root: ActorRef<SupervisorMsg>,
    root_task: JoinHandle<()>,
    shards_sup: ActorRef<SupervisorMsg>,
    user: Tree,
    bridges: Tree,
    rules: Tree,
    local_ids: AtomicU64,
}

impl Broker {
    /// Start the whole tree and bind the listener. Returns once the broker accepts connections.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ractmq_broker::{Broker, BrokerConfig};
    ///
    /// let config = BrokerConfig {
    ///     mqtt_listen: "127.0.0.1:1883".parse()?,
    ///     ..BrokerConfig::default()
    /// };
    /// let broker = Broker::start(config).await?;
    /// println!("MQTT on {}", broker.mqtt_addr());
    /// broker.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(config: BrokerConfig) -> Result<Broker, StartError> {
        let kernel = Kernel::new(config).map_err(StartError)?;
        if kernel.config.dead_letter_dropped {
            crate::dead_letters::start(&kernel);
        }
        // Sessions and retained messages from the data dir are in place before any actor or listener starts.
        if let Some(recovered) = kernel.take_recovered() {
            crate::durable::restore(&kernel, recovered);
        }
        let k = kernel.clone();
        let shard_specs: Vec<ChildSpec> = (0..kernel.router.shard_count())
            .map(|index| {
                let k = k.clone();
                let counter = k.metrics.clone();
                ChildSpec::new(format!("shard-{index}"), move |sup| {
                    let router = k.router.clone();
                    async move {
                        let (actor, _) = Actor::spawn_linked(None, Shard, ShardArgs { index, router }, sup).await?;
                        Ok(actor.get_cell())
                    }
                })
                .on_restart(move || Metrics::add(&counter.shard_restarts, 1))
            })
            .collect();
        let shards = supervisor_spec("shards", shard_specs, kernel.config.shard_restarts, &kernel);
        let sessions = actor_spec("sessions", SessionSupFactory, &kernel).supervisor();
        let janitor = periodic_spec(
            "retained-janitor",
            Duration::from_secs(60),
            purge_expired_retained,
            &kernel,
        );
        let sys = periodic_spec("sys", kernel.config.sys_interval, publish_sys, &kernel);
        let overload_guard = periodic_spec("overload-guard", Duration::from_secs(1), overload::check, &kernel);
        let (user_handle, user) = user_tree::user_supervisor(&kernel.metrics);
        let (bridges_handle, bridges) = user_tree::empty_supervisor("bridges", &kernel.metrics);
        let (rules_handle, rules) = user_tree::empty_supervisor("rules", &kernel.metrics);
        let listeners = std::iter::once(listener_spec("mqtt-listener".into(), None, &kernel)).chain(
            (kernel.config.listeners.iter().enumerate())
                .map(|(i, l)| listener_spec(format!("mqtt-{}-listener", l.kind()), Some(i), &kernel)),
        );
        let mut children = vec![shards, sessions, janitor, sys, overload_guard, user, bridges, rules];
        if let Some(cluster) = &kernel.config.cluster {
            let node: Arc<dyn crate::cluster_hook::Node> = kernel.clone();
            children.push(cluster.0.child_spec(&node));
        }
        children.extend(listeners);
        let args = SupervisorArgs::new("root", children, kernel.config.root_restarts);
        let guardian = GuardianArgs {
            kernel: kernel.clone(),
            root: args,
        };
        let (_, root_task) = Actor::spawn(None, Guardian, guardian).await.map_err(|e| {
            StartError(
                kernel
                    .start_failure()
                    .unwrap_or_else(|| format!("broker failed to start: {e}")),
            )
        })?;
        let root = kernel.root().expect("the guardian started the root").clone();
        let children = ractor::call!(root, SupervisorMsg::Children).map_err(|e| StartError(e.to_string()))?;
        let find = |name: &str| -> ActorRef<SupervisorMsg> {
            let cell = children
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c.clone())
                .expect("root child exists");
            ActorRef::from(cell)
        };
        Ok(Broker {
            shards_sup: find("shards"),
            user: user_handle,
            bridges: bridges_handle,
            rules: rules_handle,
            kernel,
            root,
            root_task,
            local_ids: AtomicU64::new(0),
        })
    }

    /// Where the listener of `kind` ("tls", "ws", "wss", as [`crate::config::ListenerSpec::kind`] names
    /// it) is bound: the first of that kind in `BrokerConfig::listeners`.
    pub fn listener_addr(&self, kind: &str) -> Option<SocketAddr> {
        let listeners = &self.kernel.config.listeners;
        let i = listeners.iter().position(|l| l.kind() == kind)?;
        self.kernel.listener_addrs.lock()[i]
    }

    /// The address the MQTT listener is bound to (useful with port 0).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.kernel.mqtt_addr.lock().expect("listener bound during start")
    }

    /// The broker-wide counters.
    pub fn metrics(&self) -> &Metrics {
        &self.kernel.metrics
    }

    pub(crate) fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// A read-only view of the broker (clients, subscriptions, retained messages, listeners, health), and the
    /// operator's actions on it; what the REST API serves.
    ///
    /// ```no_run
    /// # async fn run(broker: ractmq_broker::Broker) {
    /// let view = broker.view();
    /// let health = view.health().await;
    /// println!("live: {}, ready: {}", health.live, health.ready);
    /// for client in view.clients() {
    ///     println!("{} connected: {}, queued: {}", client.client_id, client.connected, client.queued);
    /// }
    /// # }
    /// ```
    pub fn view(&self) -> BrokerView {
        BrokerView::new(self.kernel.clone())
    }

    /// Publish from inside the program, without a socket. Returns the number of subscribers it reached, once
    /// the message is queued for each of them. Like a client's publish, it waits while it filled the queue of
    /// a subscriber that is making progress, until that queue has drained to half (see docs/flow-control.md).
    /// The message is routed when the future is first polled. Actors publish through a [`crate::Publisher`].
    ///
    /// ```no_run
    /// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
    /// use ractmq_codec::QoS;
    ///
    /// let reached = broker.publish("sensors/kitchen/temperature", "21.5", QoS::AtLeastOnce, false).await?;
    /// println!("queued for {reached} subscribers");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(
        &self,
        topic_name: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<usize, ApiError> {
        crate::publisher::publish(&self.kernel, topic_name, payload.into(), qos, retain).await
    }

    /// Subscribe from inside the program. Messages arrive on the returned handle; at most `capacity` wait
    /// unread, beyond that new ones are dropped and counted. The subscription ends when the handle is dropped.
    ///
    /// ```no_run
    /// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut readings = broker.subscribe("sensors/+/temperature", 64).await?;
    /// while let Some(message) = readings.recv().await {
    ///     println!("{}: {:?}", message.topic, message.payload);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, filter: &str, capacity: usize) -> Result<Subscription, ApiError> {
        if !topic::valid_filter(filter) {
            return Err(ApiError::InvalidFilter(filter.into()));
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let key: Arc<str> = format!("$local/{}", self.local_ids.fetch_add(1, Ordering::Relaxed)).into();
        let router = self.kernel.router.clone();
        router.register_local(key.clone(), filter.to_string(), tx.clone());
        router
            .apply(vec![Change {
                filter: filter.to_string(),
                key: key.clone(),
                route: Some(Route {
                    target: Target::Local(tx),
                    options: SubOptions {
                        qos: QoS::ExactlyOnce,
                        ..SubOptions::default()
                    },
                    shared: None,
                }),
            }])
            .await;
        // Retained messages come first, as for an MQTT subscriber.
        let mut retained = self.kernel.router.retained_matching(filter);
        retained.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(Subscription {
            rx,
            retained,
            key,
            filter: filter.to_string(),
            router,
        })
    }

    /// An MQTT connection to this node inside the process (see [`BrokerView::connect_in_process`]).
    pub fn connect_in_process(&self, buffer: usize) -> tokio::io::DuplexStream {
        self.view().connect_in_process(buffer)
    }

    /// Start `spec`'s actor under the broker's supervision tree (the `user` supervisor, one-for-one); it is
    /// started again if that supervisor is restarted. Refused if a child of `user` already has its name.
    ///
    /// ```no_run
    /// # async fn run(broker: ractmq_broker::Broker) -> Result<(), Box<dyn std::error::Error>> {
    /// use ractmq_broker::ChildSpec;
    /// use ractor::{Actor, ActorProcessingErr, ActorRef};
    ///
    /// struct Counter;
    /// impl Actor for Counter {
    ///     type Msg = u64;
    ///     type State = u64;
    ///     type Arguments = ();
    ///     async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<u64, ActorProcessingErr> {
    ///         Ok(0)
    ///     }
    ///     async fn handle(&self, _: ActorRef<u64>, n: u64, total: &mut u64) -> Result<(), ActorProcessingErr> {
    ///         *total += n;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let spec = ChildSpec::new("counter", |sup| async move {
    ///     Ok(Actor::spawn_linked(None, Counter, (), sup).await?.0.get_cell())
    /// });
    /// let counter: ActorRef<u64> = broker.supervise(spec).await?.into();
    /// counter.send_message(1)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn supervise(&self, spec: ChildSpec) -> Result<ActorCell, String> {
        self.user.start_child(spec).await.map_err(|e| e.to_string())
    }

    /// The `user` supervisor: start supervision trees of your own under it ([`Tree::start_tree`]).
    pub fn user_tree(&self) -> &Tree {
        &self.user
    }

    /// The `bridges` supervisor: one child per bridge (see the `ractmq-bridge` crate).
    pub fn bridges_tree(&self) -> &Tree {
        &self.bridges
    }

    /// The `rules` supervisor: one child per rule (see the `ractmq-rule-engine` crate).
    pub fn rules_tree(&self) -> &Tree {
        &self.rules
    }

    /// Break things on purpose, to test that supervision recovers.
    pub fn chaos(&self) -> Chaos<'_> {
        Chaos { broker: self }
    }

    /// Disconnect `client_id`'s connection with the 5.0 reason `code` (3.x clients just see the socket close),
    /// naming another server when `server_reference` is set (use 0x9C Use another server or 0x9D Server
    /// moved): how an operator or a load balancer moves a client. The session stays, as after any
    /// disconnect. Returns false if the client has no session here.
    pub async fn disconnect_client(&self, client_id: &str, code: u8, server_reference: Option<String>) -> bool {
        self.view()
            .send_session(client_id, SessionMsg::Kick { code, server_reference })
            .await
    }

    /// Client ids with a session on this node.
    pub async fn sessions(&self) -> Vec<Arc<str>> {
        match self.kernel.session_sup() {
            Some(sup) => ractor::call!(sup, SessionSupMsg::List).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Get ready to stop: stop accepting connections, disconnect every client (MQTT 5 clients with DISCONNECT
    /// 0x8B Server shutting down; 3.x clients see the socket close after what was queued for them), and wait
    /// until they are gone, or `timeout`. Sessions are not ended: they go with [`Broker::shutdown`].
    /// Returns the clients still connected when it gave up.
    pub async fn drain(&self, timeout: Duration) -> u64 {
        let _ = self.kernel.draining.send(true);
        for client_id in self.sessions().await {
            self.disconnect_client(&client_id, ractmq_codec::reason::SERVER_SHUTTING_DOWN, None)
                .await;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = Metrics::get(&self.kernel.metrics.clients_connected);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop the broker: every actor, listener and connection.
    pub async fn shutdown(self) {
        self.root.stop(None);
        let _ = self.root_task.await;
        // What the stopped sessions wrote last is committed before the process goes.
        if let Some(disk) = &self.kernel.disk {
            disk.close();
        }
    }

    /// Wait until the broker stops by itself (root restart intensity exceeded).
    pub async fn wait(self) {
        let _ = self.root_task.await;
    }

    /// Wait until the broker stops by itself; the line says why (and is logged). The program should exit with
    /// a failure: nothing serves clients any more.
    pub async fn stopped(&self) -> String {
        self.kernel.wait_down().await
    }

    /// Is the node live and ready (see `health.rs`)?
    pub async fn health(&self) -> Health {
        self.view().health().await
    }
}

/// Failure injection through the public API (later also `ractmq ctl chaos`).
pub struct Chaos<'a> {
    broker: &'a Broker,
}

impl Chaos<'_> {
    /// Kill the session actor of `client_id`. Returns false if there is none.
    pub async fn kill_session(&self, client_id: &str) -> bool {
        self.broker.view().kill_session(client_id).await
    }

    /// Make the session actor of `client_id` panic. Returns false if there is none.
    pub async fn panic_session(&self, client_id: &str) -> bool {
        self.broker.view().send_session(client_id, SessionMsg::Crash).await
    }

    /// Kill topic shard `index`. Returns false if there is no such shard.
    pub async fn kill_shard(&self, index: usize) -> bool {
        self.broker.view().kill_shard(index)
    }

    /// Make topic shard `index` panic. Returns false if there is no such shard.
    pub async fn panic_shard(&self, index: usize) -> bool {
        let Some(slot) = self.broker.kernel.router.shards.get(index) else {
            return false;
        };
        let actor = slot.actor.read().clone();
        actor.is_some_and(|a| a.send_message(ShardMsg::Crash).is_ok())
    }

    /// The shards supervisor (for tests that watch restarts).
    pub fn shards_supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.broker.shards_sup
    }
}

/// An in-process subscription; dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Message>>,
    retained: Vec<Arc<Message>>,
    key: Arc<str>,
    filter: String,
    router: Arc<crate::router::Router>,
}

impl Subscription {
    /// The next message; `None` once the broker has stopped.
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        if !self.retained.is_empty() {
            return Some(self.retained.remove(0));
        }
        self.rx.recv().await
    }

    /// The filter this subscription was made with.
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.router.unregister_local(&self.key);
        self.router.apply_detached(vec![Change {
            filter: self.filter.clone(),
            key: self.key.clone(),
            route: None,
        }]);
    }
}

/// Something that spawns one kind of broker actor linked to a supervisor.
trait ActorFactory: Send + Sync + 'static {
    fn start(&self, kernel: Arc<Kernel>, sup: ActorCell) -> crate::supervisor::StartFuture;
}

macro_rules! factory {
    ($name:ident, $actor:expr) => {
        struct $name;
        impl ActorFactory for $name {
            fn start(&self, kernel: Arc<Kernel>, sup: ActorCell) -> crate::supervisor::StartFuture {
                Box::pin(async move {
                    let (actor, _) = Actor::spawn_linked(None, $actor, kernel, sup).await?;
                    Ok(actor.get_cell())
                })
            }
        }
    };
}

factory!(SessionSupFactory, SessionSup);

fn actor_spec(name: &str, factory: impl ActorFactory, kernel: &Arc<Kernel>) -> ChildSpec {
    let kernel = kernel.clone();
    let counter = kernel.metrics.clone();
    let factory = Arc::new(factory);
    ChildSpec::new(name, move |sup| factory.start(kernel.clone(), sup))
        .on_restart(move || Metrics::add(&counter.other_restarts, 1))
}

fn listener_spec(name: String, extra: Option<usize>, kernel: &Arc<Kernel>) -> ChildSpec {
    let kernel = kernel.clone();
    let counter = kernel.metrics.clone();
    ChildSpec::new(name, move |sup| {
        let args = ListenerArgs {
            kernel: kernel.clone(),
            extra,
        };
        async move {
            let (actor, _) = Actor::spawn_linked(None, Listener, args, sup).await?;
            Ok(actor.get_cell())
        }
    })
    .on_restart(move || Metrics::add(&counter.other_restarts, 1))
}

fn periodic_spec(name: &str, every: Duration, work: fn(&Kernel), kernel: &Arc<Kernel>) -> ChildSpec {
    let kernel = kernel.clone();
    let counter = kernel.metrics.clone();
    ChildSpec::new(name, move |sup| {
        let args = PeriodicArgs {
            kernel: kernel.clone(),
            every,
            work,
        };
        async move {
            let (actor, _) = Actor::spawn_linked(None, Periodic, args, sup).await?;
            Ok(actor.get_cell())
        }
    })
    .on_restart(move || Metrics::add(&counter.other_restarts, 1))
}

fn supervisor_spec(name: &str, children: Vec<ChildSpec>, policy: RestartPolicy, kernel: &Arc<Kernel>) -> ChildSpec {
    let name_owned = name.to_string();
    let counter = kernel.metrics.clone();
    ChildSpec::new(name, move |sup| {
        let args = SupervisorArgs::new(name_owned.clone(), children.clone(), policy);
        async move {
            let (actor, _) = Actor::spawn_linked(None, Supervisor, args, sup).await?;
            Ok(actor.get_cell())
        }
    })
    .supervisor()
    .on_restart(move || Metrics::add(&counter.other_restarts, 1))
}
