//! The `$SYS/broker/...` publisher: the broker's own statistics as retained MQTT messages.
//!
//! A small actor with a timer; if it dies, the next one simply publishes again (it has no state of its own).

use std::sync::Arc;
use std::time::Instant;

use ractmq_codec::QoS;
use ractmq_protocol::Message;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::kernel::Kernel;
use crate::metrics::Metrics;

pub struct SysPublisher;

pub enum SysMsg {
    Publish,
}

impl Actor for SysPublisher {
    type Msg = SysMsg;
    type State = Arc<Kernel>;
    type Arguments = Arc<Kernel>;

    async fn pre_start(
        &self,
        myself: ActorRef<SysMsg>,
        kernel: Arc<Kernel>,
    ) -> Result<Arc<Kernel>, ActorProcessingErr> {
        if !kernel.config.sys_interval.is_zero() {
            myself.send_message(SysMsg::Publish)?;
            myself.send_interval(kernel.config.sys_interval, || SysMsg::Publish);
        }
        Ok(kernel)
    }

    async fn handle(
        &self,
        _me: ActorRef<SysMsg>,
        _msg: SysMsg,
        kernel: &mut Arc<Kernel>,
    ) -> Result<(), ActorProcessingErr> {
        for (topic, value) in sys_values(kernel) {
            let message = Message::new(format!("$SYS/broker/{topic}"), value, QoS::AtMostOnce, true);
            kernel.router.route(Arc::new(message));
        }
        Ok(())
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

/// Removes expired retained messages once a minute, so expired messages do not pile up in memory.
pub struct RetainedJanitor;

pub enum JanitorMsg {
    Purge,
}

impl Actor for RetainedJanitor {
    type Msg = JanitorMsg;
    type State = Arc<Kernel>;
    type Arguments = Arc<Kernel>;

    async fn pre_start(
        &self,
        myself: ActorRef<JanitorMsg>,
        kernel: Arc<Kernel>,
    ) -> Result<Arc<Kernel>, ActorProcessingErr> {
        myself.send_interval(std::time::Duration::from_secs(60), || JanitorMsg::Purge);
        Ok(kernel)
    }

    async fn handle(
        &self,
        _me: ActorRef<JanitorMsg>,
        _msg: JanitorMsg,
        kernel: &mut Arc<Kernel>,
    ) -> Result<(), ActorProcessingErr> {
        let purged = kernel.router.retained.write().purge_expired(Instant::now());
        if purged > 0 {
            tracing::debug!(purged, "expired retained messages removed");
        }
        Ok(())
    }
}
