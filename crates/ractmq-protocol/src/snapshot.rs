//! A session and its messages as plain data that can be serialized: what a session becomes to cross to another
//! node on a takeover, and what a store of sessions writes.
//!
//! The live types hold `Instant`s (when a message arrived, when a will is due, when a session expires), which
//! mean nothing in another process or after a restart. A snapshot holds the time each has left instead,
//! counted from the `now` passed in when it is taken, and turned back into deadlines from the `now` passed in
//! when it is restored; nothing here reads a clock. Snapshots come from outside the process (another node, a
//! file), so [`SessionSnapshot::check`] refuses what the broker would never have accepted from a client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ractmq_codec::{PublishProperties, QoS, RetainHandling, Will};
use serde::{Deserialize, Serialize};

use crate::message::{Delivery, Message};
use crate::session::{Inflight, InflightState, Session, SubOptions};

/// Bytes `m` takes in a snapshot, near enough to size batches by (a little more than it encodes to).
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

/// A published message, with the time it has left instead of when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSnapshot {
    /// The topic name.
    pub topic: String,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The QoS it was published with (0, 1 or 2).
    pub qos: u8,
    /// The RETAIN flag it was published with.
    pub retain: bool,
    /// The publisher's client id; none for messages the broker made.
    pub publisher: Option<String>,
    /// MQTT 5 Payload Format Indicator.
    pub payload_format: Option<u8>,
    /// Seconds left before it expires, when it has a Message Expiry Interval.
    pub expires_in: Option<u32>,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation_data: Option<serde_bytes::ByteBuf>,
    /// MQTT 5 User Properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// MQTT 5 Content Type.
    pub content_type: Option<String>,
    /// The message's identity cluster-wide (see [`crate::Origin`]).
    pub origin: Option<(u64, u64)>,
}

impl MessageSnapshot {
    /// `m` as it is at `now`.
    pub fn from_message(m: &Message, now: Instant) -> MessageSnapshot {
        let p = &m.properties;
        MessageSnapshot {
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

    /// The message again; the time it has left counts from `now`.
    pub fn into_message(self, now: Instant) -> Message {
        Message {
            topic: self.topic.into(),
            payload: Bytes::from(self.payload),
            qos: qos(self.qos),
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
            frames: Default::default(),
        }
    }

    /// What no client could have published: the broker would not have routed it.
    pub fn check(&self) -> Result<(), String> {
        if self.qos > 2 {
            return Err(format!("QoS {} on a message from outside", self.qos));
        }
        if self.topic.is_empty() || self.topic.contains(['+', '#', '\0']) {
            return Err(format!(
                "a message from outside with the invalid topic '{}'",
                self.topic
            ));
        }
        Ok(())
    }
}

/// A message as one subscriber gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverySnapshot {
    /// The message.
    pub message: MessageSnapshot,
    /// The QoS it is delivered with.
    pub qos: u8,
    /// The RETAIN flag this subscriber sees.
    pub retain: bool,
    /// MQTT 5 Subscription Identifiers of the subscriptions that matched.
    pub subscription_ids: Vec<u32>,
    /// The shared subscription it was chosen through, if any.
    pub shared: Option<String>,
}

impl DeliverySnapshot {
    /// `d` as it is at `now`.
    pub fn from_delivery(d: &Delivery, now: Instant) -> DeliverySnapshot {
        DeliverySnapshot {
            message: MessageSnapshot::from_message(&d.message, now),
            qos: d.qos as u8,
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
            shared: d.shared.as_deref().map(str::to_string),
        }
    }

    /// The delivery again; the message's time left counts from `now`.
    pub fn into_delivery(self, now: Instant) -> Delivery {
        Delivery {
            message: Arc::new(self.message.into_message(now)),
            qos: qos(self.qos),
            retain: self.retain,
            subscription_ids: self.subscription_ids,
            shared: self.shared.map(Arc::from),
            stored: None,
        }
    }
}

/// One subscription with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSnapshot {
    /// The filter as the client sent it (`$share/GROUP/` included).
    pub filter: String,
    /// The maximum QoS granted.
    pub qos: u8,
    /// MQTT 5 No Local.
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
    /// MQTT 5 Subscription Identifier.
    pub subscription_id: Option<u32>,
}

impl SubscriptionSnapshot {
    /// `filter` with `o`.
    pub fn new(filter: &str, o: &SubOptions) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            filter: filter.to_string(),
            qos: o.qos as u8,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            retain_handling: o.retain_handling as u8,
            subscription_id: o.subscription_id,
        }
    }

    /// The filter and its options again.
    pub fn into_parts(self) -> (String, SubOptions) {
        let options = SubOptions {
            qos: qos(self.qos),
            no_local: self.no_local,
            retain_as_published: self.retain_as_published,
            retain_handling: match self.retain_handling {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
            subscription_id: self.subscription_id,
        };
        (self.filter, options)
    }
}

/// An outgoing QoS 1/2 message not yet completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InflightSnapshot {
    /// Its packet id, kept so that the client sees it again as the same message.
    pub pkid: u16,
    /// 1: PUBLISH sent at QoS 1; 2: PUBLISH sent at QoS 2; 3: PUBREL sent.
    pub state: u8,
    /// The message.
    pub delivery: DeliverySnapshot,
}

impl InflightSnapshot {
    /// `i` as it is at `now`.
    pub fn from_inflight(i: &Inflight, now: Instant) -> InflightSnapshot {
        InflightSnapshot {
            pkid: i.pkid,
            state: match i.state {
                InflightState::AwaitingPuback => 1,
                InflightState::AwaitingPubrec => 2,
                InflightState::AwaitingPubcomp => 3,
            },
            delivery: DeliverySnapshot::from_delivery(&i.delivery, now),
        }
    }

    /// The message in flight again.
    pub fn into_inflight(self, now: Instant) -> Inflight {
        Inflight {
            pkid: self.pkid,
            state: match self.state {
                1 => InflightState::AwaitingPuback,
                2 => InflightState::AwaitingPubrec,
                _ => InflightState::AwaitingPubcomp,
            },
            delivery: self.delivery.into_delivery(now),
        }
    }
}

/// A will, not yet published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillSnapshot {
    /// The will as a message (its `expires_in` is the Message Expiry Interval it will be published with).
    pub message: MessageSnapshot,
    /// MQTT 5 Will Delay Interval, in seconds.
    pub delay_interval: Option<u32>,
}

impl WillSnapshot {
    /// `will` as plain data.
    pub fn from_will(will: &Will) -> WillSnapshot {
        let mut message = Message::new(will.topic.as_str(), will.payload.clone(), will.qos, will.retain);
        message.properties = will.properties.clone();
        // Not yet published: no time has passed for its expiry.
        let at = message.received_at;
        WillSnapshot {
            message: MessageSnapshot::from_message(&message, at),
            delay_interval: will.delay_interval,
        }
    }

    /// The will again.
    pub fn into_will(self) -> Will {
        let m = self.message;
        Will {
            topic: m.topic,
            payload: Bytes::from(m.payload),
            qos: qos(m.qos),
            retain: m.retain,
            delay_interval: self.delay_interval,
            properties: PublishProperties {
                payload_format_indicator: m.payload_format,
                message_expiry_interval: m.expires_in,
                topic_alias: None,
                response_topic: m.response_topic,
                correlation_data: m.correlation_data.map(|d| Bytes::from(d.into_vec())),
                user_properties: m.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: m.content_type,
            },
        }
    }
}

/// A whole session: its subscriptions, its messages in flight and queued, its will and its timers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionSnapshot {
    /// The client identifier.
    pub client_id: String,
    /// Subscriptions, in no particular order.
    pub subscriptions: Vec<SubscriptionSnapshot>,
    /// Outgoing QoS 1/2 messages not yet completed, oldest first.
    pub inflight: Vec<InflightSnapshot>,
    /// Packet ids of incoming QoS 2 messages routed and awaiting PUBREL.
    pub awaiting_rel: Vec<u16>,
    /// Session Expiry Interval, in seconds.
    pub expiry_interval: u32,
    /// The will of the current (or last) connection.
    pub will: Option<WillSnapshot>,
    /// While disconnected: milliseconds until the will is due, if it waits.
    pub will_due_in_ms: Option<u64>,
    /// While disconnected: milliseconds until the session expires, unless it never does.
    pub expires_in_ms: Option<u64>,
    /// Messages queued for the client and not yet sent, oldest first.
    pub queued: Vec<DeliverySnapshot>,
    /// The user name of the client that created the session.
    pub owner: Option<String>,
}

impl Session {
    /// This session and the messages `queued` for it, as they are at `now`.
    pub fn snapshot<'a>(&self, queued: impl IntoIterator<Item = &'a Delivery>, now: Instant) -> SessionSnapshot {
        let left = |deadline: Option<Instant>| deadline.map(|d| d.saturating_duration_since(now).as_millis() as u64);
        SessionSnapshot {
            client_id: self.client_id.to_string(),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(filter, o)| SubscriptionSnapshot::new(filter, o))
                .collect(),
            inflight: self
                .inflight
                .iter()
                .map(|i| InflightSnapshot::from_inflight(i, now))
                .collect(),
            awaiting_rel: self.awaiting_rel.iter().copied().collect(),
            expiry_interval: self.expiry_interval,
            will: self.will.as_ref().map(WillSnapshot::from_will),
            will_due_in_ms: left(self.will_due),
            expires_in_ms: left(self.expires_at),
            queued: queued
                .into_iter()
                .map(|d| DeliverySnapshot::from_delivery(d, now))
                .collect(),
            owner: self.owner.as_deref().map(str::to_string),
        }
    }
}

impl SessionSnapshot {
    /// What the broker would not accept from a client either: refuse it before restoring.
    pub fn check(&self) -> Result<(), String> {
        let messages = self.inflight.iter().map(|i| &i.delivery).chain(&self.queued);
        for d in messages {
            d.message.check()?;
        }
        if let Some(will) = &self.will {
            will.message.check()?;
        }
        if self.inflight.iter().any(|i| i.pkid == 0 || !(1..=3).contains(&i.state)) {
            return Err("a message in flight has packet id 0 or no state".into());
        }
        if self.subscriptions.iter().any(|s| s.qos > 2 || s.filter.is_empty()) {
            return Err("a subscription has no filter or a QoS above 2".into());
        }
        Ok(())
    }

    /// The session and its queued messages again, with its timers counting from `now`.
    pub fn restore(self, now: Instant) -> (Session, Vec<Delivery>) {
        let due = |ms: Option<u64>| ms.map(|ms| now + Duration::from_millis(ms));
        let mut session = Session::new(self.client_id.into());
        session.subscriptions = self.subscriptions.into_iter().map(|s| s.into_parts()).collect();
        session.inflight = self.inflight.into_iter().map(|i| i.into_inflight(now)).collect();
        session.awaiting_rel = self.awaiting_rel.into_iter().collect();
        session.expiry_interval = self.expiry_interval;
        session.will = self.will.map(WillSnapshot::into_will);
        session.will_due = due(self.will_due_in_ms);
        session.expires_at = due(self.expires_in_ms);
        session.owner = self.owner.map(Arc::from);
        let queued = self.queued.into_iter().map(|d| d.into_delivery(now)).collect();
        (session, queued)
    }
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &[u8], q: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message::new("a/b", Bytes::copy_from_slice(payload), q, false)),
            qos: q,
            retain: false,
            subscription_ids: vec![7],
            shared: Some("$share/g/a/b".into()),
            stored: None,
        }
    }

    #[test]
    fn a_message_keeps_the_expiry_it_has_left() {
        let sent_at = Instant::now();
        let mut m = Message::new("a/b", Bytes::from_static(b"hello"), QoS::ExactlyOnce, true);
        m.received_at = sent_at;
        m.publisher = Some("pub".into());
        m.properties.message_expiry_interval = Some(60);
        m.properties.user_properties = vec![("k".into(), "v".into()), ("k".into(), "w".into())];
        m.properties.correlation_data = Some(Bytes::from_static(b"\x00\x01"));
        m.properties.content_type = Some("text/plain".into());
        let snap = MessageSnapshot::from_message(&m, sent_at + Duration::from_secs(10));
        assert_eq!(snap.expires_in, Some(50));
        let now = Instant::now();
        let back = snap.into_message(now);
        let mut expected = m.clone();
        expected.properties.message_expiry_interval = Some(50);
        expected.received_at = now;
        assert_eq!(back, expected);
    }

    #[test]
    fn what_no_client_could_publish_is_refused() {
        let ok =
            MessageSnapshot::from_message(&Message::new("a", Bytes::new(), QoS::AtMostOnce, false), Instant::now());
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

    /// A disconnected session with a delayed will, an expiry, a QoS 2 message at each stage and a queued one
    /// comes back whole, its timers as far off as they were, through bytes (bincode, as a store or a peer
    /// node would carry it).
    #[test]
    fn a_session_survives_serialization_with_its_timers() {
        let taken_at = Instant::now();
        let mut s = Session::new("dev".into());
        s.subscriptions.insert(
            "a/#".into(),
            SubOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
                subscription_id: Some(7),
            },
        );
        for (pkid, state) in [(3, InflightState::AwaitingPubrec), (4, InflightState::AwaitingPubcomp)] {
            s.inflight.push_back(Inflight {
                pkid,
                delivery: delivery(b"in flight", QoS::ExactlyOnce),
                state,
            });
        }
        s.awaiting_rel.insert(9);
        s.expiry_interval = 3600;
        let mut will = Will {
            topic: "dev/gone".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            delay_interval: Some(30),
            properties: PublishProperties::default(),
        };
        will.properties.message_expiry_interval = Some(120);
        s.will = Some(will.clone());
        s.will_due = Some(taken_at + Duration::from_secs(30));
        s.expires_at = Some(taken_at + Duration::from_secs(3600));
        s.owner = Some("alice".into());
        let queued = [delivery(b"queued", QoS::AtLeastOnce)];

        let snap = s.snapshot(&queued, taken_at);
        assert!(snap.check().is_ok());
        let bytes = bincode::serialize(&snap).unwrap();
        let snap: SessionSnapshot = bincode::deserialize(&bytes).unwrap();
        let restored_at = taken_at + Duration::from_secs(5);
        let (back, back_queued) = snap.restore(restored_at);

        assert_eq!(back.subscriptions, s.subscriptions);
        let states: Vec<_> = back.inflight.iter().map(|i| (i.pkid, i.state)).collect();
        assert_eq!(
            states,
            [(3, InflightState::AwaitingPubrec), (4, InflightState::AwaitingPubcomp)]
        );
        assert_eq!(back.inflight[0].delivery.shared.as_deref(), Some("$share/g/a/b"));
        assert_eq!(back.awaiting_rel, s.awaiting_rel);
        assert_eq!(back.expiry_interval, 3600);
        assert_eq!(back.will, Some(will));
        assert_eq!(back.will_due, Some(restored_at + Duration::from_secs(30)));
        assert_eq!(back.expires_at, Some(restored_at + Duration::from_secs(3600)));
        assert_eq!(back.owner.as_deref(), Some("alice"));
        assert_eq!(back_queued.len(), 1);
        assert_eq!(&back_queued[0].message.payload[..], b"queued");
        assert_eq!(back_queued[0].subscription_ids, vec![7]);
    }

    #[test]
    fn a_snapshot_with_a_bad_message_in_flight_is_refused() {
        let mut s = Session::new("dev".into());
        s.inflight.push_back(Inflight {
            pkid: 1,
            delivery: delivery(b"x", QoS::AtLeastOnce),
            state: InflightState::AwaitingPuback,
        });
        let mut snap = s.snapshot([], Instant::now());
        snap.inflight[0].pkid = 0;
        assert!(snap.check().is_err());
        snap.inflight[0].pkid = 1;
        snap.inflight[0].delivery.message.topic = "a/#".into();
        assert!(snap.check().is_err());
    }
}
