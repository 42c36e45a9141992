//! The state of a client that outlives its connection: subscriptions, messages in flight, QoS 2 receipts.
//!
//! This is what a persistent session resumes and what a restarted session actor recovers: the broker keeps it
//! outside the actor that may die (see supervision.md). The per-connection protocol in `channel` reads and
//! writes it, and `lifecycle` rules it between connections; nothing here knows about sockets or clocks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use ractmq_codec::{QoS, RetainHandling, Will};

use crate::message::Delivery;

/// Options of one subscription, as granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubOptions {
    /// Granted QoS: the most a delivery through this subscription gets.
    pub qos: QoS,
    /// MQTT 5 No Local: the client's own publishes are not delivered back to it.
    pub no_local: bool,
    /// MQTT 5 Retain As Published: deliveries keep the RETAIN flag they were published with.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling: when retained messages are sent at subscribe.
    pub retain_handling: RetainHandling,
    /// MQTT 5 Subscription Identifier, sent with every delivery through this subscription.
    pub subscription_id: Option<u32>,
}

impl Default for SubOptions {
    fn default() -> Self {
        SubOptions {
            qos: QoS::AtMostOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
            subscription_id: None,
        }
    }
}

/// What an outgoing QoS 1/2 message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent.
    AwaitingPuback,
    /// QoS 2 PUBLISH sent.
    AwaitingPubrec,
    /// PUBREL sent; the message itself is delivered.
    AwaitingPubcomp,
}

/// An outgoing QoS 1/2 message sent and not yet completed.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// The packet identifier it was sent with.
    pub pkid: u16,
    /// What was sent, kept to send again (DUP) when the session resumes.
    pub delivery: Delivery,
    /// The acknowledgement it waits for.
    pub state: InflightState,
}

/// The state of one client that outlives its connections (see the module doc).
#[derive(Debug)]
pub struct Session {
    /// The client identifier the session belongs to.
    pub client_id: Arc<str>,
    /// Filter (as the client sent it, `$share/...` included) to options.
    pub subscriptions: HashMap<String, SubOptions>,
    /// Outgoing QoS 1/2 messages not yet completed, in the order they were sent.
    pub inflight: VecDeque<Inflight>,
    /// Packet ids of incoming QoS 2 messages that were routed and await PUBREL.
    pub awaiting_rel: HashSet<u16>,
    /// Seconds the session lives after its connection closes (0: ends with the connection).
    pub expiry_interval: u32,
    /// The will of the current (or last) connection, cleared by a normal DISCONNECT.
    pub will: Option<Will>,
    /// While disconnected: when the will's delay is over, if it waits (see `lifecycle`).
    pub will_due: Option<Instant>,
    /// While disconnected: when the session expires, unless it never does.
    pub expires_at: Option<Instant>,
    /// The user name of the client that created the session (none for an anonymous one). Where clients
    /// authenticate, the session belongs to that identity: another user presenting the client id is refused.
    pub owner: Option<Arc<str>>,
    /// The node's store keeps this session across restarts: its QoS 2 receipts are journalled (see
    /// [`crate::Journal`]).
    pub persistent: bool,
    next_pkid: u16,
}

impl Session {
    /// An empty session for `client_id` that ends with its connection (expiry interval 0).
    pub fn new(client_id: Arc<str>) -> Session {
        Session {
            client_id,
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            awaiting_rel: HashSet::new(),
            expiry_interval: 0,
            will: None,
            will_due: None,
            expires_at: None,
            owner: None,
            persistent: false,
            next_pkid: 0,
        }
    }

    /// Forget everything (clean start on an existing session).
    pub fn clear(&mut self) {
        self.subscriptions.clear();
        self.inflight.clear();
        self.awaiting_rel.clear();
        self.will = None;
        self.will_due = None;
        self.expires_at = None;
        self.owner = None;
        self.next_pkid = 0;
    }

    /// The next packet id not used by a message in flight. Callers check the window first, so a free id
    /// exists (the window is far below 65,535).
    pub fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            if self.next_pkid == 0 {
                self.next_pkid = 1;
            }
            let id = self.next_pkid;
            if !self.inflight.iter().any(|i| i.pkid == id) {
                return id;
            }
        }
    }

    /// Take the messages of shared subscriptions that were sent but not acknowledged (or not received, for
    /// QoS 2), optionally only those of one group: the member is leaving and another member must get them.
    /// QoS 2 messages whose PUBREC arrived stay: this client has them.
    pub fn take_shared_unacked(&mut self, group: Option<&str>) -> Vec<Delivery> {
        let mut taken = Vec::new();
        self.inflight.retain(|entry| {
            let leaving = entry.state != InflightState::AwaitingPubcomp
                && entry
                    .delivery
                    .shared
                    .as_deref()
                    .is_some_and(|g| group.is_none_or(|want| want == g));
            if leaving {
                taken.push(entry.delivery.clone());
            }
            !leaving
        });
        taken
    }

    /// Where the in-flight message sent with `pkid` is in `inflight`, if it is there.
    pub fn inflight_position(&self, pkid: u16) -> Option<usize> {
        self.inflight.iter().position(|i| i.pkid == pkid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn packet_ids_skip_ids_in_flight_and_zero() {
        let mut s = Session::new("c".into());
        let msg = Arc::new(Message::new("t", "x", QoS::AtLeastOnce, false));
        s.next_pkid = 65_534;
        let a = s.next_packet_id();
        s.inflight.push_back(Inflight {
            pkid: 1,
            delivery: Delivery {
                message: msg,
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: vec![],
                shared: None,
                stored: None,
            },
            state: InflightState::AwaitingPuback,
        });
        let b = s.next_packet_id();
        assert_eq!((a, b), (65_535, 2), "wraps past 0 and skips 1, which is in flight");
    }
}
