//! A session as it moves from one node to another on a takeover (see `ractmq_broker::handover`).
//!
//! It carries the session's subscriptions, its messages in flight (with their packet ids, so that the client
//! sees them again as the same messages) and its queued messages. A session whose messages would not fit in
//! one message between nodes keeps its oldest queued messages up to [`MAX_QUEUED_BYTES`] and drops the rest,
//! counted by the caller.

use std::sync::Arc;
use std::time::Instant;

use ractmq_broker::SessionHandover;
use ractmq_codec::{QoS, RetainHandling};
use ractmq_protocol::session::{Inflight, InflightState};
use ractmq_protocol::{Delivery, SubOptions};
use serde::{Deserialize, Serialize};

use crate::wire_message::{message_size, WireMessage};

/// Bytes of messages (in flight and queued) a handed-over session carries at most.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSession {
    pub subscriptions: Vec<(String, WireSubOptions)>,
    pub inflight: Vec<WireInflight>,
    pub awaiting_rel: Vec<u16>,
    pub expiry_interval: u32,
    pub queued: Vec<WireDelivery>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSubOptions {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub subscription_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireInflight {
    pub pkid: u16,
    /// 1: PUBLISH sent at QoS 1; 2: PUBLISH sent at QoS 2; 3: PUBREL sent.
    pub state: u8,
    pub delivery: WireDelivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDelivery {
    pub message: WireMessage,
    pub qos: u8,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    pub shared: Option<String>,
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

impl WireSession {
    /// The session as it crosses; also how many queued messages were left out to stay within size.
    pub fn from_handover(h: &SessionHandover, now: Instant) -> (WireSession, usize) {
        let mut budget = MAX_QUEUED_BYTES;
        let mut fits = |d: &Delivery| {
            let size = message_size(&d.message);
            let ok = size <= budget;
            budget = budget.saturating_sub(size);
            ok
        };
        let inflight: Vec<WireInflight> = h
            .inflight
            .iter()
            .filter(|i| fits(&i.delivery))
            .map(|i| WireInflight {
                pkid: i.pkid,
                state: match i.state {
                    InflightState::AwaitingPuback => 1,
                    InflightState::AwaitingPubrec => 2,
                    InflightState::AwaitingPubcomp => 3,
                },
                delivery: WireDelivery::from_delivery(&i.delivery, now),
            })
            .collect();
        let queued: Vec<WireDelivery> = h
            .queued
            .iter()
            .take_while(|d| fits(d))
            .map(|d| WireDelivery::from_delivery(d, now))
            .collect();
        let left_out = h.inflight.len() - inflight.len() + h.queued.len() - queued.len();
        let session = WireSession {
            subscriptions: h
                .subscriptions
                .iter()
                .map(|(filter, o)| {
                    let options = WireSubOptions {
                        qos: o.qos as u8,
                        no_local: o.no_local,
                        retain_as_published: o.retain_as_published,
                        retain_handling: o.retain_handling as u8,
                        subscription_id: o.subscription_id,
                    };
                    (filter.clone(), options)
                })
                .collect(),
            inflight,
            awaiting_rel: h.awaiting_rel.clone(),
            expiry_interval: h.expiry_interval,
            queued,
        };
        (session, left_out)
    }

    pub fn into_handover(self, now: Instant) -> SessionHandover {
        SessionHandover {
            subscriptions: self
                .subscriptions
                .into_iter()
                .map(|(filter, o)| {
                    let options = SubOptions {
                        qos: qos(o.qos),
                        no_local: o.no_local,
                        retain_as_published: o.retain_as_published,
                        retain_handling: match o.retain_handling {
                            0 => RetainHandling::SendAtSubscribe,
                            1 => RetainHandling::SendIfNew,
                            _ => RetainHandling::DoNotSend,
                        },
                        subscription_id: o.subscription_id,
                    };
                    (filter, options)
                })
                .collect(),
            inflight: self
                .inflight
                .into_iter()
                .map(|i| Inflight {
                    pkid: i.pkid,
                    state: match i.state {
                        1 => InflightState::AwaitingPuback,
                        2 => InflightState::AwaitingPubrec,
                        _ => InflightState::AwaitingPubcomp,
                    },
                    delivery: i.delivery.into_delivery(now),
                })
                .collect(),
            awaiting_rel: self.awaiting_rel,
            expiry_interval: self.expiry_interval,
            queued: self.queued.into_iter().map(|d| d.into_delivery(now)).collect(),
        }
    }

    /// What the receiving node would not accept from a client either.
    pub fn check(&self) -> Result<(), String> {
        let messages = self.inflight.iter().map(|i| &i.delivery).chain(&self.queued);
        for d in messages {
            d.message.check()?;
        }
        if self.inflight.iter().any(|i| i.pkid == 0 || !(1..=3).contains(&i.state)) {
            return Err("a handed-over message in flight has packet id 0 or no state".into());
        }
        Ok(())
    }
}

impl WireDelivery {
    fn from_delivery(d: &Delivery, now: Instant) -> WireDelivery {
        WireDelivery {
            message: WireMessage::from_message(&d.message, now),
            qos: d.qos as u8,
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
            shared: d.shared.as_deref().map(str::to_string),
        }
    }

    fn into_delivery(self, now: Instant) -> Delivery {
        Delivery {
            message: Arc::new(self.message.into_message(now)),
            qos: qos(self.qos),
            retain: self.retain,
            subscription_ids: self.subscription_ids,
            shared: self.shared.map(Arc::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ractmq_protocol::Message;

    fn delivery(payload: &[u8], q: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message::new("a/b", Bytes::copy_from_slice(payload), q, false)),
            qos: q,
            retain: false,
            subscription_ids: vec![7],
            shared: None,
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
        };
        let now = Instant::now();
        let (wire, left_out) = WireSession::from_handover(&h, now);
        assert_eq!(left_out, 0);
        assert!(wire.check().is_ok());
        let back = wire.into_handover(now);
        assert_eq!(back.subscriptions, h.subscriptions);
        assert_eq!(back.inflight[0].pkid, 3);
        assert_eq!(back.inflight[0].state, InflightState::AwaitingPubcomp);
        assert_eq!(
            back.inflight[0].delivery.message.payload,
            h.inflight[0].delivery.message.payload
        );
        assert_eq!(back.queued[0].subscription_ids, vec![7]);
        assert_eq!((back.awaiting_rel, back.expiry_interval), (vec![9], 60));
    }

    #[test]
    fn a_session_too_large_keeps_its_oldest_messages() {
        let big = vec![0u8; MAX_QUEUED_BYTES / 3];
        let h = SessionHandover {
            queued: (0..5).map(|_| delivery(&big, QoS::AtLeastOnce)).collect(),
            ..SessionHandover::default()
        };
        let (wire, left_out) = WireSession::from_handover(&h, Instant::now());
        assert_eq!((wire.queued.len(), left_out), (2, 3));
    }
}
