//! Records as they are written: the protocol's snapshots, stamped with the wall-clock time they were taken.
//!
//! Snapshots count time as what is left (of a message's expiry, of a session's), which is right across a
//! process boundary but not across a restart: the node was down for a while. Each record carries when it was
//! saved, and recovery takes the downtime off.

use std::time::{SystemTime, UNIX_EPOCH};

use ractmq_protocol::snapshot::{DeliverySnapshot, MessageSnapshot};
use ractmq_protocol::SessionSnapshot;
use serde::{Deserialize, Serialize};

/// What the store keeps of a session besides its messages: subscriptions, expiry, will, owner, and whether a
/// client was connected when it was written (a restart then ends that connection, as a crash would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The session, its `inflight`, `queued` and `awaiting_rel` left empty: those are stored one by one.
    pub session: SessionSnapshot,
    /// A client was connected.
    pub connected: bool,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub saved_at_ms: u64,
    pub record: SessionRecord,
}

#[derive(Serialize, Deserialize)]
#[cfg_attr(test, derive(Debug, PartialEq))]
pub(crate) struct StoredCopy {
    pub saved_at_ms: u64,
    pub delivery: DeliverySnapshot,
    /// Its packet id and state when it was sent before it was first written (within the same commit); later
    /// changes go to the `sent` table, which wins.
    pub sent: Option<(u16, u8)>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub saved_at_ms: u64,
    pub message: MessageSnapshot,
}

/// A [`StoredCopy`] encoded straight from the delivery it is made of, without building the owned snapshot
/// first: the same bytes (field for field, as bincode writes them), no allocation per field. Copies are
/// written on the store's hot path; they are read back as [`StoredCopy`].
#[derive(Serialize)]
pub(crate) struct CopyRef<'a> {
    pub saved_at_ms: u64,
    pub delivery: DeliveryRef<'a>,
    pub sent: Option<(u16, u8)>,
}

#[derive(Serialize)]
pub(crate) struct DeliveryRef<'a> {
    message: MessageRef<'a>,
    qos: u8,
    retain: bool,
    subscription_ids: &'a [u32],
    shared: Option<&'a str>,
}

#[derive(Serialize)]
struct MessageRef<'a> {
    topic: &'a str,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    qos: u8,
    retain: bool,
    publisher: Option<&'a str>,
    payload_format: Option<u8>,
    expires_in: Option<u32>,
    response_topic: Option<&'a str>,
    correlation_data: Option<&'a serde_bytes::Bytes>,
    user_properties: &'a [(String, String)],
    content_type: Option<&'a str>,
    origin: Option<(u64, u64)>,
}

impl<'a> DeliveryRef<'a> {
    /// `d` as a snapshot taken at `now` would have it.
    pub(crate) fn new(d: &'a ractmq_protocol::Delivery, now: std::time::Instant) -> DeliveryRef<'a> {
        let m = &d.message;
        let p = &m.properties;
        DeliveryRef {
            message: MessageRef {
                topic: &m.topic,
                payload: &m.payload,
                qos: m.qos as u8,
                retain: m.retain,
                publisher: m.publisher.as_deref(),
                payload_format: p.payload_format_indicator,
                expires_in: m.remaining_expiry(now),
                response_topic: p.response_topic.as_deref(),
                correlation_data: p.correlation_data.as_deref().map(serde_bytes::Bytes::new),
                user_properties: &p.user_properties,
                content_type: p.content_type.as_deref(),
                origin: m.origin,
            },
            qos: d.qos as u8,
            retain: d.retain,
            subscription_ids: &d.subscription_ids,
            shared: d.shared.as_deref(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `message`'s expiry shortened by the time since `saved_at_ms`; false if it expired meanwhile.
pub(crate) fn age(message: &mut MessageSnapshot, saved_at_ms: u64, now_ms: u64) -> bool {
    let Some(left) = message.expires_in else {
        return true;
    };
    let gone = (now_ms.saturating_sub(saved_at_ms) / 1000) as u32;
    message.expires_in = Some(left.saturating_sub(gone));
    left > gone
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data with no maps keyed by non-strings: bincode cannot fail on it.
    bincode::serialize(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_protocol::{Delivery, Message};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn a_copy_encoded_from_its_delivery_reads_back_as_the_snapshot_of_it() {
        let now = Instant::now();
        let mut m = Message::new("a/b", "payload", ractmq_codec::QoS::ExactlyOnce, true);
        m.received_at = now - Duration::from_secs(3);
        m.publisher = Some("pub".into());
        m.origin = Some((7, 9));
        let p = &mut m.properties;
        p.payload_format_indicator = Some(1);
        p.message_expiry_interval = Some(60);
        p.response_topic = Some("r/t".into());
        p.correlation_data = Some(bytes::Bytes::from_static(b"\x00\x01"));
        p.user_properties = vec![("k".into(), "v".into()), ("k".into(), "w".into())];
        p.content_type = Some("text/plain".into());
        for (message, ids, shared) in [
            (Arc::new(m.clone()), vec![3, 4], Some("$share/g/a/b")),
            (
                Arc::new(Message::new("x", "", ractmq_codec::QoS::AtMostOnce, false)),
                vec![],
                None,
            ),
        ] {
            let d = Delivery {
                message,
                qos: ractmq_codec::QoS::AtLeastOnce,
                retain: false,
                subscription_ids: ids,
                shared: shared.map(Arc::from),
                stored: Some(1),
            };
            let bytes = encode(&CopyRef {
                saved_at_ms: 42,
                delivery: DeliveryRef::new(&d, now),
                sent: Some((5, 1)),
            });
            let read: StoredCopy = bincode::deserialize(&bytes).unwrap();
            let want = StoredCopy {
                saved_at_ms: 42,
                delivery: DeliverySnapshot::from_delivery(&d, now),
                sent: Some((5, 1)),
            };
            assert_eq!(read, want);
            assert_eq!(bytes, encode(&want));
        }
    }
}
