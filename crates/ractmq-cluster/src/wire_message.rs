//! A published message as it crosses from one node to another.
//!
//! The broker's `Message` holds an `Instant` (when it arrived, for Message Expiry), which means nothing on
//! another machine; what crosses is the time it has left. Everything here comes from another process, so
//! [`WireMessage::check`] refuses what the broker would never have accepted from a client (a QoS above 2, a
//! topic with wildcards) before it is routed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ractmq_codec::{PublishProperties, QoS};
use ractmq_protocol::Message;
use serde::{Deserialize, Serialize};

/// Bytes `m` takes between nodes, near enough to size batches by (a little more than it encodes to).
pub fn message_size(m: &Message) -> usize {
    let p = &m.properties;
    m.topic.len()
        + m.payload.len()
        + m.publisher.as_ref().map_or(0, |s| s.len())
        + p.response_topic.as_ref().map_or(0, |s| s.len())
        + p.correlation_data.as_ref().map_or(0, |d| d.len())
        + p.content_type.as_ref().map_or(0, |s| s.len())
        + p.user_properties
            .iter()
            .map(|(k, v)| k.len() + v.len() + 16)
            .sum::<usize>()
        + 64
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub topic: String,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub publisher: Option<String>,
    pub payload_format: Option<u8>,
    /// Seconds left before it expires, when it has a Message Expiry Interval.
    pub expires_in: Option<u32>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<serde_bytes::ByteBuf>,
    pub user_properties: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The message's identity cluster-wide (see `ractmq_protocol::Origin`).
    pub origin: Option<(u64, u64)>,
}

impl WireMessage {
    pub fn from_message(m: &Message, now: Instant) -> WireMessage {
        let p = &m.properties;
        WireMessage {
            topic: m.topic.to_string(),
            payload: m.payload.to_vec(),
            qos: m.qos as u8,
            retain: m.retain,
            publisher: m.publisher.as_deref().map(str::to_string),
            payload_format: p.payload_format_indicator,
            expires_in: m.remaining_expiry(now),
            response_topic: p.response_topic.clone(),
            correlation_data: p
                .correlation_data
                .as_ref()
                .map(|d| serde_bytes::ByteBuf::from(d.to_vec())),
            user_properties: p.user_properties.clone(),
            content_type: p.content_type.clone(),
            origin: m.origin,
        }
    }

    /// The message as this node routes it; its expiry counts from `now`.
    pub fn into_message(self, now: Instant) -> Message {
        let qos = match self.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        Message {
            topic: self.topic.into(),
            payload: Bytes::from(self.payload),
            qos,
            retain: self.retain,
            properties: PublishProperties {
                payload_format_indicator: self.payload_format,
                message_expiry_interval: self.expires_in,
                topic_alias: None,
                response_topic: self.response_topic,
                correlation_data: self.correlation_data.map(|d| Bytes::from(d.into_vec())),
                user_properties: self.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: self.content_type,
            },
            publisher: self.publisher.map(Arc::from),
            received_at: now,
            origin: self.origin,
        }
    }

    /// What no client could have published: the broker would not have routed it.
    pub fn check(&self) -> Result<(), String> {
        if self.qos > 2 {
            return Err(format!("QoS {} on a forwarded message", self.qos));
        }
        if self.topic.is_empty() || self.topic.contains(['+', '#', '\0']) {
            return Err(format!("forwarded message with the invalid topic '{}'", self.topic));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_message_crosses_whole_with_the_expiry_it_has_left() {
        let sent_at = Instant::now();
        let mut m = Message::new("a/b", Bytes::from_static(b"hello"), QoS::ExactlyOnce, true);
        m.received_at = sent_at;
        m.publisher = Some("pub".into());
        m.properties.message_expiry_interval = Some(60);
        m.properties.user_properties = vec![("k".into(), "v".into()), ("k".into(), "w".into())];
        m.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01"));
        m.properties.content_type = Some("text/plain".into());
        let wire = WireMessage::from_message(&m, sent_at + Duration::from_secs(10));
        assert_eq!(wire.expires_in, Some(50));
        let now = Instant::now();
        let back = wire.into_message(now);
        assert_eq!(back.properties.message_expiry_interval, Some(50));
        assert_eq!(back.received_at, now);
        let mut expected = m.clone();
        expected.properties.message_expiry_interval = Some(50);
        expected.received_at = now;
        assert_eq!(back, expected);
    }

    #[test]
    fn what_no_client_could_publish_is_refused() {
        let ok = WireMessage::from_message(&Message::new("a", Bytes::new(), QoS::AtMostOnce, false), Instant::now());
        assert!(ok.check().is_ok());
        for topic in ["", "a/+", "#", "a\0b"] {
            let mut bad = ok.clone();
            bad.topic = topic.into();
            assert!(bad.check().is_err(), "{topic:?}");
        }
        let mut bad = ok;
        bad.qos = 3;
        assert!(bad.check().is_err());
    }
}
