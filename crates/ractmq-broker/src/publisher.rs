//! Publishing from inside the program through a handle that actors can own.
//!
//! The [`Broker`] handle owns the supervision tree and is not `Clone`; an actor that publishes (the last stage
//! of a topology, say) holds a [`Publisher`] instead. [`Broker::publish`] goes through the same function.

use std::sync::Arc;

use bytes::Bytes;
use ractmq_codec::{topic, QoS};
use ractmq_protocol::Message;

use crate::broker::{ApiError, Broker};
use crate::flow::Congestion;
use crate::kernel::Kernel;
use crate::metrics::Metrics;

/// Publishes in-process, like [`Broker::publish`]; cloning it is cheap.
#[derive(Clone)]
pub struct Publisher {
    kernel: Arc<Kernel>,
}

impl Publisher {
    /// A publisher into `broker`.
    pub fn new(broker: &Broker) -> Publisher {
        Publisher {
            kernel: broker.kernel().clone(),
        }
    }

    /// Publish without a socket. See [`Broker::publish`].
    pub async fn publish(
        &self,
        topic_name: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<usize, ApiError> {
        publish(&self.kernel, topic_name, payload.into(), qos, retain).await
    }
}

/// Route the message when first polled (before any await: a caller that records something in the same step
/// knows the two happen together), then wait while it filled the queue of a subscriber making progress.
pub(crate) async fn publish(
    kernel: &Kernel,
    topic_name: &str,
    payload: Bytes,
    qos: QoS,
    retain: bool,
) -> Result<usize, ApiError> {
    if !topic::valid_name(topic_name) {
        return Err(ApiError::InvalidTopic(topic_name.into()));
    }
    Metrics::add(&kernel.metrics.messages_received, 1);
    let message = Arc::new(Message::new(topic_name, payload, qos, retain));
    let mut congestion = Congestion::default();
    let reached = kernel.router.route_reporting(message, &mut congestion);
    if !congestion.is_empty() {
        Metrics::add(&kernel.metrics.publishers_held, 1);
        congestion.wait().await;
    }
    Ok(reached)
}
