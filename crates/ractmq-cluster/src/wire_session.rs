//! A session as it moves from one node to another on a takeover (see `ractmq_broker::handover`).
//!
//! It carries the session's subscriptions, its messages in flight (with their packet ids, so that the client
//! sees them again as the same messages) and its queued messages. A session whose messages would not fit in
//! one message between nodes keeps its oldest queued messages up to [`MAX_QUEUED_BYTES`] and drops the rest,
//! counted by the caller.

use std::sync::Arc;
use std::time::Instant;

use ractmq_broker::SessionHandover;
use ractmq_protocol::snapshot::{DeliverySnapshot, InflightSnapshot, SubscriptionSnapshot};
use ractmq_protocol::{Delivery, SessionSnapshot};

use crate::wire_message::message_size;

/// Bytes of messages (in flight and queued) a handed-over session carries at most.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// A session as it crosses: the protocol's snapshot of it (its will stays with the node that had the
/// connection, which publishes it, so it does not cross).
pub type WireSession = SessionSnapshot;

/// `h` as it crosses; also how many queued messages were left out to stay within size.
pub fn from_handover(h: &SessionHandover, now: Instant) -> (WireSession, usize) {
    let mut budget = MAX_QUEUED_BYTES;
    let mut fits = |d: &Delivery| {
        let size = message_size(&d.message);
        let ok = size <= budget;
        budget = budget.saturating_sub(size);
        ok
    };
    let inflight: Vec<InflightSnapshot> = h
        .inflight
        .iter()
        .filter(|i| fits(&i.delivery))
        .map(|i| InflightSnapshot::from_inflight(i, now))
        .collect();
    let queued: Vec<DeliverySnapshot> = h
        .queued
        .iter()
        .take_while(|d| fits(d))
        .map(|d| DeliverySnapshot::from_delivery(d, now))
        .collect();
    let left_out = h.inflight.len() - inflight.len() + h.queued.len() - queued.len();
    let session = SessionSnapshot {
        subscriptions: h
            .subscriptions
            .iter()
            .map(|(filter, o)| SubscriptionSnapshot::new(filter, o))
            .collect(),
        inflight,
        awaiting_rel: h.awaiting_rel.clone(),
        expiry_interval: h.expiry_interval,
        queued,
        owner: h.owner.as_deref().map(str::to_string),
        ..SessionSnapshot::default()
    };
    (session, left_out)
}

/// The session as this node takes it over; its messages' time left counts from `now`.
pub fn into_handover(session: WireSession, now: Instant) -> SessionHandover {
    SessionHandover {
        subscriptions: session.subscriptions.into_iter().map(|s| s.into_parts()).collect(),
        inflight: session.inflight.into_iter().map(|i| i.into_inflight(now)).collect(),
        awaiting_rel: session.awaiting_rel,
        expiry_interval: session.expiry_interval,
        queued: session.queued.into_iter().map(|d| d.into_delivery(now)).collect(),
        owner: session.owner.map(Arc::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ractmq_codec::{QoS, RetainHandling};
    use ractmq_protocol::session::{Inflight, InflightState};
    use ractmq_protocol::{Message, SubOptions};
    use std::sync::Arc;

    fn delivery(payload: &[u8], q: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message::new("a/b", Bytes::copy_from_slice(payload), q, false)),
            qos: q,
            retain: false,
            subscription_ids: vec![7],
            shared: None,
            stored: None,
        }
    }

    #[test]
    fn a_session_crosses_whole() {
        let h = SessionHandover {
            subscriptions: vec![(
                "a/#".into(),
                SubOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                    subscription_id: Some(7),
                },
            )],
            inflight: vec![Inflight {
                pkid: 3,
                delivery: delivery(b"in flight", QoS::ExactlyOnce),
                state: InflightState::AwaitingPubcomp,
            }],
            awaiting_rel: vec![9],
            expiry_interval: 60,
            queued: vec![delivery(b"queued", QoS::AtLeastOnce)],
            owner: Some("alice".into()),
        };
        let now = Instant::now();
        let (wire, left_out) = from_handover(&h, now);
        assert_eq!(left_out, 0);
        assert!(wire.check().is_ok());
        let back = into_handover(wire, now);
        assert_eq!(back.subscriptions, h.subscriptions);
        assert_eq!(back.inflight[0].pkid, 3);
        assert_eq!(back.inflight[0].state, InflightState::AwaitingPubcomp);
        assert_eq!(
            back.inflight[0].delivery.message.payload,
            h.inflight[0].delivery.message.payload
        );
        assert_eq!(back.queued[0].subscription_ids, vec![7]);
        assert_eq!((back.awaiting_rel, back.expiry_interval), (vec![9], 60));
        assert_eq!(
            back.owner.as_deref(),
            Some("alice"),
            "the session's user crosses with it"
        );
    }

    #[test]
    fn a_session_too_large_keeps_its_oldest_messages() {
        let big = vec![0u8; MAX_QUEUED_BYTES / 3];
        let h = SessionHandover {
            queued: (0..5).map(|_| delivery(&big, QoS::AtLeastOnce)).collect(),
            ..SessionHandover::default()
        };
        let (wire, left_out) = from_handover(&h, Instant::now());
        assert_eq!((wire.queued.len(), left_out), (2, 3));
    }
}
