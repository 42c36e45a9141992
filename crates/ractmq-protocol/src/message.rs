//! The message as it travels through the broker, and one delivery of it to one subscriber.
//!
//! A publish is parsed once into an `Arc<Message>`; every subscriber's delivery shares it and carries only what
//! differs per subscription (granted QoS, retain flag, subscription identifiers). A QoS 0 PUBLISH that comes
//! out the same for every subscriber is encoded once per protocol family and kept with the message (see
//! `SharedFrames`).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use ractmq_codec::{Protocol, PublishProperties, QoS};

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
    /// Its PUBLISH as every subscriber with nothing of its own in it receives it, encoded by the first
    /// delivery that needs it (see [`SharedFrames`]).
    pub(crate) frames: SharedFrames,
}

/// The QoS 0 PUBLISH frames of a message that are the same for every subscriber: one for MQTT 3.1 and
/// 3.1.1, whose PUBLISH is written alike, one for 5.0. The channel fills and uses them only for a delivery
/// with nothing of its own in the frame (see `Channel::deliver`): QoS 0, the RETAIN flag as published, no
/// subscription identifier, no topic alias, no Message Expiry Interval (whose remaining value is rewritten
/// for every send). A fan-out to many subscribers then encodes the message once per family instead of once
/// per subscriber.
///
/// The frames follow from the message's fields, which must not change once it has been delivered: a clone
/// starts with none (a changed copy is always a clone, the original being shared), and equality ignores
/// them.
#[derive(Default)]
pub(crate) struct SharedFrames {
    v3: OnceLock<Bytes>,
    v5: OnceLock<Bytes>,
}

impl SharedFrames {
    fn slot(&self, protocol: Protocol) -> &OnceLock<Bytes> {
        if protocol.is_v5() {
            &self.v5
        } else {
            &self.v3
        }
    }
}

impl Clone for SharedFrames {
    /// Empty: the copy may be changed, and its frames encoded anew.
    fn clone(&self) -> SharedFrames {
        SharedFrames::default()
    }
}

impl PartialEq for SharedFrames {
    /// Always: the frames are derived from the fields compared.
    fn eq(&self, _: &SharedFrames) -> bool {
        true
    }
}

impl std::fmt::Debug for SharedFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFrames")
            .field("v3", &self.v3.get().map(Bytes::len))
            .field("v5", &self.v5.get().map(Bytes::len))
            .finish()
    }
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
            frames: SharedFrames::default(),
        }
    }

    /// The QoS 0 PUBLISH frame shared by every subscriber at `protocol`'s family, if a delivery encoded it
    /// already (see `SharedFrames` below).
    pub fn shared_frame(&self, protocol: Protocol) -> Option<&Bytes> {
        self.frames.slot(protocol).get()
    }

    /// Keep `frame` as the PUBLISH shared by every subscriber at `protocol`'s family (the first one kept
    /// stays: they are the same bytes).
    pub(crate) fn keep_shared_frame(&self, protocol: Protocol, frame: &[u8]) {
        let slot = self.frames.slot(protocol);
        if slot.get().is_none() {
            let _ = slot.set(Bytes::copy_from_slice(frame));
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
