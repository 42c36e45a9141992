//! The message as it travels through the broker, and one delivery of it to one subscriber.
//!
//! A publish is parsed once into an `Arc<Message>`; every subscriber's delivery shares it and carries only what
//! differs per subscription (granted QoS, retain flag, subscription identifiers).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ractmq_codec::{PublishProperties, QoS};

/// An application message as the broker routes it, shared by every delivery of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Topic Name (an alias already resolved).
    pub topic: Arc<str>,
    /// Application message.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// RETAIN flag it was published with.
    pub retain: bool,
    /// 5.0 properties as published; topic alias and subscription identifiers are never kept here.
    pub properties: PublishProperties,
    /// Client id of the publisher, for No Local; `None` for messages the broker makes itself.
    pub publisher: Option<Arc<str>>,
    /// When the broker received it: Message Expiry counts from here.
    pub received_at: Instant,
    /// Which message this is, cluster-wide: set by a clustered node when it routes a message published there,
    /// and carried when the message crosses to other nodes. A session moving between nodes can be reached by
    /// one message along two paths; this is how it tells.
    pub origin: Option<Origin>,
}

/// A message's identity in a cluster: the publishing node's run (its incarnation) and a number that node
/// gave it.
pub type Origin = (u64, u64);

impl Message {
    /// A message made by a program (the embedding API, `$SYS`), received now. The protocol's own rules never
    /// call this: they take the time as an argument.
    pub fn new(topic: impl Into<Arc<str>>, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: PublishProperties::default(),
            publisher: None,
            received_at: Instant::now(),
            origin: None,
        }
    }

    /// Seconds left before the message expires: `None` if it never expires, `Some(0)` if it has.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let interval = self.properties.message_expiry_interval?;
        let elapsed = now.saturating_duration_since(self.received_at).as_secs();
        Some(u64::from(interval).saturating_sub(elapsed) as u32)
    }

    /// Its Message Expiry Interval is over at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.remaining_expiry(now) == Some(0)
    }
}

/// One message on its way to one subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message, shared with every other delivery of it.
    pub message: Arc<Message>,
    /// min(published QoS, subscription QoS).
    pub qos: QoS,
    /// The RETAIN flag this subscriber sees.
    pub retain: bool,
    /// 5.0 subscription identifiers of the subscriptions that matched.
    pub subscription_ids: Vec<u32>,
    /// The shared subscription (`$share/{group}/{filter}`) this delivery was chosen through: if the member
    /// leaves before acknowledging it, it goes to another member of the group.
    pub shared: Option<Arc<str>>,
    /// The number of this copy in the node's store, when it is kept there (a QoS 1/2 message to a persistent
    /// session, or one queued while it is offline): what the session reports as the copy is sent, completed
    /// or dropped (see [`crate::Journal`]).
    pub stored: Option<u64>,
}

impl Delivery {
    /// A retained message for a new subscription with `options`: at most the subscription's QoS, with the
    /// RETAIN flag set [MQTT-3.3.1-9].
    pub fn retained(message: Arc<Message>, options: &crate::session::SubOptions) -> Delivery {
        Delivery {
            qos: message.qos.min(options.qos),
            retain: true,
            subscription_ids: options.subscription_id.into_iter().collect(),
            shared: None,
            stored: None,
            message,
        }
    }
}

/// Bytes a queued delivery is counted for besides its topic and payload: the delivery and message records.
const QUEUED_OVERHEAD: usize = 64;

impl crate::queue::Queued for Delivery {
    fn queued_bytes(&self) -> usize {
        self.message.payload.len() + self.message.topic.len() + QUEUED_OVERHEAD
    }
}
