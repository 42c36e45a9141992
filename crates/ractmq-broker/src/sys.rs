//! Periodic housekeeping actors: the `$SYS/broker/...` (and `$SYS/brokers`) publisher and the retained-message
//! janitor.
//!
//! Both are the same small actor, [`Periodic`], running a different function on a timer. They hold no state of
//! their own (statistics live in the kernel's metrics, retained messages in the router), so a restart loses
//! nothing: the next tick simply runs again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractmq_codec::QoS;
use ractmq_protocol::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::kernel::Kernel;
use crate::metrics::Metrics;

/// Runs `work` at start and then every `every` (never if `every` is zero).
pub struct Periodic;

pub struct PeriodicArgs {
    pub kernel: Arc<Kernel>,
    pub every: Duration,
    pub work: fn(&Kernel),
}

pub struct Tick;

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for Tick {}

impl Actor for Periodic {
    type Msg = Tick;
    type State = PeriodicArgs;
    type Arguments = PeriodicArgs;

    async fn pre_start(&self, myself: ActorRef<Tick>, args: PeriodicArgs) -> Result<PeriodicArgs, ActorProcessingErr> {
        if !args.every.is_zero() {
            myself.send_message(Tick)?;
            myself.send_interval(args.every, || Tick);
        }
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<Tick>,
        _tick: Tick,
        args: &mut PeriodicArgs,
    ) -> Result<(), ActorProcessingErr> {
        (args.work)(&args.kernel);
        Ok(())
    }
}

/// Publish every `$SYS/broker/` value and `$SYS/brokers` as retained messages.
pub fn publish_sys(kernel: &Kernel) {
    for (topic, value) in sys_values(kernel) {
        let message = Message::new(format!("$SYS/broker/{topic}"), value, QoS::AtMostOnce, true);
        kernel.router.route(Arc::new(message));
    }
    publish_brokers(kernel);
}

/// Publish `$SYS/brokers`, retained: the names of the nodes that are up, comma-separated and sorted (this
/// node's name alone when it is not clustered). The cluster layer also calls this whenever a node comes up
/// or goes down, so subscribers need not wait for the next `$SYS` round.
pub fn publish_brokers(kernel: &Kernel) {
    let message = Message::new("$SYS/brokers", brokers_value(kernel), QoS::AtMostOnce, true);
    kernel.router.route(Arc::new(message));
}

/// The value of `$SYS/brokers`.
pub fn brokers_value(kernel: &Kernel) -> String {
    match &kernel.config.cluster {
        Some(cluster) => cluster.0.nodes_up().join(","),
        None => kernel.config.node_name.clone(),
    }
}

/// Remove expired retained messages, so that they do not pile up in memory.
pub fn purge_expired_retained(kernel: &Kernel) {
    let purged = kernel.router.retained.write().purge_expired(Instant::now());
    if purged > 0 {
        tracing::debug!(purged, "expired retained messages removed");
    }
}

/// Every `$SYS/broker/` topic with its current value.
pub fn sys_values(kernel: &Kernel) -> Vec<(&'static str, String)> {
    let m = &kernel.metrics;
    let get = Metrics::get;
    vec![
        ("uptime", format!("{} seconds", kernel.started_at.elapsed().as_secs())),
        ("version", format!("ractmq {}", env!("CARGO_PKG_VERSION"))),
        ("clients/connected", get(&m.clients_connected).to_string()),
        ("clients/total", kernel.store.len().to_string()),
        ("messages/received", get(&m.messages_received).to_string()),
        ("messages/sent", get(&m.messages_sent).to_string()),
        ("messages/dropped", m.dropped_total().to_string()),
        ("bytes/received", get(&m.bytes_received).to_string()),
        ("bytes/sent", get(&m.bytes_sent).to_string()),
        ("subscriptions/count", kernel.router.subscription_count().to_string()),
        (
            "retained messages/count",
            kernel.router.retained.read().len().to_string(),
        ),
    ]
}
