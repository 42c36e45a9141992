//! The MQTT client a bridge is, on each side, as a state machine: packets and time in, packets and events out.
//!
//! No sockets and no clock: the bridge's pump feeds it what it reads and the current instant, sends what it
//! outputs, and acts on its events. So a test drives every rule (packet ids, the send window the server's
//! Receive Maximum sets, QoS 2's two steps, resending after a reconnect, keep-alive) without a network.
//!
//! Each outgoing QoS 1 or 2 message carries a caller's tag, handed back in [`Event::Acked`] once the server
//! has taken responsibility for it (PUBACK, or PUBREC for QoS 2): the bridge tags a message with the
//! acknowledgement it owes the side the message came from, and so acknowledges it only then.
//!
//! A bridge relays QoS 2's second half too: the client neither answers a PUBREL nor sends one on its own
//! ([`Event::Released`], [`Client::complete`], [`Client::release`], [`Event::Completed`]), and a message may
//! keep the packet id it came with. A bridge that restarts has forgotten which packet ids are half done; the
//! brokers on both sides have not, and with the same ids on both sides their resends line up.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ractmq_codec::{
    reason, Ack, Connect, ConnectProperties, Disconnect, Packet, Protocol, Publish, QoS, RetainHandling, Subscribe,
    SubscriptionRequest, Unsubscribe,
};

/// How the client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Client identifier.
    pub client_id: String,
    /// Protocol level.
    pub protocol: Protocol,
    /// Clean start (5.0) or clean session (3.x).
    pub clean_start: bool,
    /// Session Expiry Interval (5.0), in seconds.
    pub session_expiry: u32,
    /// Keep alive, in seconds (0: none).
    pub keep_alive: u16,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// QoS 1 and 2 messages the server may send unacknowledged (5.0 Receive Maximum).
    pub receive_maximum: u16,
}

/// An acknowledgement owed to the server for a message it sent: give it back with [`Client::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundAck {
    /// The packet id.
    pub pkid: u16,
    /// QoS 1: PUBACK; QoS 2: PUBREC.
    pub qos: QoS,
}

/// What happened, for the caller to act on.
#[derive(Debug, PartialEq)]
pub enum Event<T> {
    /// CONNACK with success.
    Connected {
        /// Session Present.
        session_present: bool,
    },
    /// A message from the server; acknowledge it with `ack` (QoS 1 and 2) when it is safe.
    Message {
        /// The message.
        publish: Publish,
        /// What to acknowledge; `None` at QoS 0, and for a QoS 2 message already received.
        ack: Option<InboundAck>,
    },
    /// The server took responsibility for the message tagged `T` (PUBACK, or PUBREC at QoS 2: then send
    /// PUBREL with [`Client::release`] when ready).
    Acked(T),
    /// PUBCOMP: the QoS 2 exchange of this packet id is finished.
    Completed(u16),
    /// PUBREL from the server: answer with [`Client::complete`] when ready.
    Released(u16),
    /// The server refused the message tagged `T`, with this reason code (5.0 only); the message is given back.
    Refused(T, u8, Publish),
    /// SUBACK: one reason per filter.
    Subscribed(Vec<u8>),
}

/// Why the connection has to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// CONNACK with a failure reason (5.0 reason code, or 3.x return code mapped to one).
    Refused(u8),
    /// The server broke the protocol.
    Protocol(&'static str),
    /// The server sent DISCONNECT with this reason.
    Disconnected(u8),
    /// No PINGRESP within the keep alive.
    KeepAliveTimeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Refused(code) => {
                write!(f, "connection refused: {} (0x{code:02x})", reason::describe(*code))
            }
            ClientError::Protocol(why) => write!(f, "protocol error from the server: {why}"),
            ClientError::Disconnected(code) => {
                write!(
                    f,
                    "disconnected by the server: {} (0x{code:02x})",
                    reason::describe(*code)
                )
            }
            ClientError::KeepAliveTimeout => f.write_str("no answer to PINGREQ within the keep alive"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent,
    /// QoS 2 after PUBREC, waiting for the caller's [`Client::release`]. The tag has been handed back.
    Received,
    /// PUBREL sent, waiting for PUBCOMP.
    Released,
}

struct Outgoing<T> {
    /// `None` for a PUBREL relayed for a message sent in an earlier life.
    publish: Option<Publish>,
    tag: Option<T>,
    phase: Phase,
}

/// One MQTT client connection's rules, across reconnects. `T` tags outgoing messages.
pub struct Client<T> {
    options: ClientOptions,
    connected: bool,
    output: Vec<Packet>,
    /// QoS 1 and 2 messages sent and not finished, by packet id; kept across reconnects and sent again.
    outgoing: BTreeMap<u16, Outgoing<T>>,
    /// Messages waiting for the send window, in order.
    queued: VecDeque<(Publish, Option<T>)>,
    next_pkid: u16,
    /// The server's Receive Maximum.
    window: usize,
    /// QoS 2 messages received, PUBREC sent, PUBREL not yet: a resend of one is not a new message.
    received_qos2: HashSet<u16>,
    next_subscribe: u16,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
    keep_alive: Duration,
    /// Send PUBREL at once on PUBREC, instead of waiting for [`Client::release`].
    auto_release: bool,
}

impl<T> Client<T> {
    /// A client that has not connected yet.
    pub fn new(options: ClientOptions) -> Client<T> {
        let keep_alive = Duration::from_secs(options.keep_alive.into());
        Client {
            options,
            connected: false,
            output: Vec::new(),
            outgoing: BTreeMap::new(),
            queued: VecDeque::new(),
            next_pkid: 1,
            window: 65_535,
            received_qos2: HashSet::new(),
            next_subscribe: 1,
            last_sent: None,
            ping_sent: None,
            keep_alive,
            auto_release: false,
        }
    }

    /// Answer PUBREC with PUBREL at once (the caller has nothing to relay: the message is the server's now).
    pub fn set_auto_release(&mut self) {
        self.auto_release = true;
    }

    /// A new connection is open: the CONNECT to send first.
    pub fn connect(&mut self, now: Instant) -> Packet {
        self.connected = false;
        self.output.clear();
        self.ping_sent = None;
        self.last_sent = Some(now);
        let o = &self.options;
        let properties = ConnectProperties {
            session_expiry_interval: (o.protocol.is_v5() && o.session_expiry > 0).then_some(o.session_expiry),
            receive_maximum: o.protocol.is_v5().then_some(o.receive_maximum.max(1)),
            ..ConnectProperties::default()
        };
        Packet::Connect(Box::new(Connect {
            protocol: Some(o.protocol),
            clean_start: o.clean_start,
            keep_alive: o.keep_alive,
            client_id: o.client_id.clone(),
            will: None,
            username: o.username.clone(),
            password: o.password.clone(),
            properties,
        }))
    }

    /// The connection is gone. Messages in flight stay, to be sent again on the next one.
    pub fn disconnected(&mut self) {
        self.connected = false;
        self.output.clear();
    }

    /// True between a successful CONNACK and the end of the connection.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// QoS 1 and 2 messages sent and not acknowledged, and messages waiting for the window.
    pub fn in_flight(&self) -> usize {
        self.outgoing.len() + self.queued.len()
    }

    /// Send `publish`. QoS 1 and 2 messages wait for the send window and are sent again after a reconnect
    /// until acknowledged; `tag` comes back in [`Event::Acked`]. A packet id of 0 is the client's to choose;
    /// any other is kept (a message sent again with an id still in flight is not sent twice).
    pub fn publish(&mut self, mut publish: Publish, tag: Option<T>) {
        if publish.qos == QoS::AtMostOnce {
            if self.connected {
                publish.pkid = 0;
                publish.dup = false;
                self.output.push(Packet::Publish(publish));
            }
            return;
        }
        let pkid = publish.pkid;
        if pkid != 0 && (self.outgoing.contains_key(&pkid) || self.queued.iter().any(|(p, _)| p.pkid == pkid)) {
            return;
        }
        self.queued.push_back((publish, tag));
        self.send_queued();
    }

    /// Send PUBREL for `pkid`: after its [`Event::Acked`] at QoS 2, or for an exchange an earlier life of the
    /// caller began (the server answers PUBCOMP either way, and [`Event::Completed`] follows).
    pub fn release(&mut self, pkid: u16) {
        match self.outgoing.get_mut(&pkid) {
            Some(out) if out.phase == Phase::Received => out.phase = Phase::Released,
            Some(_) => return,
            None => {
                self.outgoing.insert(
                    pkid,
                    Outgoing {
                        publish: None,
                        tag: None,
                        phase: Phase::Released,
                    },
                );
            }
        }
        if self.connected {
            self.output.push(Packet::PubRel(Ack::new(pkid)));
        }
    }

    /// Answer the server's PUBREL for `pkid` ([`Event::Released`]) with PUBCOMP.
    pub fn complete(&mut self, pkid: u16) {
        if self.connected {
            self.output.push(Packet::PubComp(Ack::new(pkid)));
        }
    }

    /// Acknowledge a message the server sent.
    pub fn ack(&mut self, ack: InboundAck) {
        match ack.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.output.push(Packet::PubAck(Ack::new(ack.pkid))),
            QoS::ExactlyOnce => {
                self.received_qos2.insert(ack.pkid);
                self.output.push(Packet::PubRec(Ack::new(ack.pkid)));
            }
        }
    }

    /// Subscribe to `filters` (No Local and Retain As Published set: a bridge must not get its own messages
    /// back, and keeps retained flags as published; retained messages only when the subscription is new, so
    /// that a reconnect does not bring them again).
    pub fn subscribe(&mut self, filters: &[String], qos: QoS) {
        if filters.is_empty() {
            return;
        }
        let pkid = self.next_subscribe;
        self.next_subscribe = self.next_subscribe.checked_add(1).unwrap_or(1);
        self.output.push(Packet::Subscribe(Subscribe {
            pkid,
            filters: (filters.iter())
                .map(|f| SubscriptionRequest {
                    filter: f.clone(),
                    qos,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                })
                .collect(),
            ..Subscribe::default()
        }));
    }

    /// Unsubscribe from `filters` (what a bridge's configuration no longer names).
    pub fn unsubscribe(&mut self, filters: &[String]) {
        if filters.is_empty() {
            return;
        }
        let pkid = self.next_subscribe;
        self.next_subscribe = self.next_subscribe.checked_add(1).unwrap_or(1);
        self.output.push(Packet::Unsubscribe(Unsubscribe {
            pkid,
            filters: filters.to_vec(),
            ..Unsubscribe::default()
        }));
    }

    /// Handle a packet from the server.
    pub fn handle(&mut self, packet: Packet, now: Instant, events: &mut Vec<Event<T>>) -> Result<(), ClientError> {
        match packet {
            Packet::ConnAck(ack) if !self.connected => {
                if ack.reason >= 0x80 {
                    return Err(ClientError::Refused(ack.reason));
                }
                self.connected = true;
                self.window = usize::from(ack.properties.receive_maximum.unwrap_or(65_535).max(1));
                if let Some(keep_alive) = ack.properties.server_keep_alive {
                    self.keep_alive = Duration::from_secs(keep_alive.into());
                }
                if !ack.session_present {
                    self.received_qos2.clear();
                }
                self.resend(ack.session_present);
                events.push(Event::Connected {
                    session_present: ack.session_present,
                });
            }
            Packet::ConnAck(_) => return Err(ClientError::Protocol("second CONNACK")),
            _ if !self.connected => return Err(ClientError::Protocol("packet before CONNACK")),
            Packet::Publish(publish) => {
                let ack = match publish.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(InboundAck {
                        pkid: publish.pkid,
                        qos: QoS::AtLeastOnce,
                    }),
                    QoS::ExactlyOnce if self.received_qos2.contains(&publish.pkid) => {
                        // Received before and acknowledged with PUBREC: acknowledge again, deliver nothing.
                        self.output.push(Packet::PubRec(Ack::new(publish.pkid)));
                        return Ok(());
                    }
                    QoS::ExactlyOnce => Some(InboundAck {
                        pkid: publish.pkid,
                        qos: QoS::ExactlyOnce,
                    }),
                };
                events.push(Event::Message { publish, ack });
            }
            Packet::PubRel(rel) => {
                self.received_qos2.remove(&rel.pkid);
                events.push(Event::Released(rel.pkid));
            }
            Packet::PubAck(ack) => self.finish(ack, QoS::AtLeastOnce, events)?,
            Packet::PubRec(ack) => self.finish(ack, QoS::ExactlyOnce, events)?,
            Packet::PubComp(ack) => match self.outgoing.get(&ack.pkid) {
                Some(o) if o.phase == Phase::Released => {
                    self.outgoing.remove(&ack.pkid);
                    events.push(Event::Completed(ack.pkid));
                    self.send_queued();
                }
                // A PUBCOMP answering a PUBREL sent twice (once before a reconnect).
                _ => {}
            },
            Packet::SubAck(ack) => events.push(Event::Subscribed(ack.reasons)),
            Packet::UnsubAck(_) => {}
            Packet::PingResp => self.ping_sent = None,
            Packet::Disconnect(d) => return Err(ClientError::Disconnected(d.reason)),
            _ => return Err(ClientError::Protocol("packet type a server does not send")),
        }
        let _ = now;
        Ok(())
    }

    /// Keep-alive: call at [`Client::next_timeout`]. Sends PINGREQ when the connection was quiet for the keep
    /// alive; fails when a PINGREQ went unanswered that long.
    pub fn on_timeout(&mut self, now: Instant) -> Result<(), ClientError> {
        if !self.connected || self.keep_alive.is_zero() {
            return Ok(());
        }
        if let Some(sent) = self.ping_sent {
            if now >= sent + self.keep_alive {
                return Err(ClientError::KeepAliveTimeout);
            }
        } else if self.last_sent.is_some_and(|t| now >= t + self.keep_alive) {
            self.output.push(Packet::PingReq);
            self.ping_sent = Some(now);
        }
        Ok(())
    }

    /// When [`Client::on_timeout`] has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        if !self.connected || self.keep_alive.is_zero() {
            return None;
        }
        match self.ping_sent {
            Some(sent) => Some(sent + self.keep_alive),
            None => self.last_sent.map(|t| t + self.keep_alive),
        }
    }

    /// Take the packets to send, in order.
    pub fn take_output(&mut self, now: Instant, into: &mut Vec<Packet>) {
        if !self.output.is_empty() {
            self.last_sent = Some(now);
            into.append(&mut self.output);
        }
    }

    /// A DISCONNECT to close with (normal disconnection).
    pub fn disconnect_packet(&self) -> Packet {
        Packet::Disconnect(Disconnect::default())
    }

    fn finish(&mut self, ack: Ack, expected: QoS, events: &mut Vec<Event<T>>) -> Result<(), ClientError> {
        let Some(out) = self.outgoing.get_mut(&ack.pkid) else {
            // A late duplicate acknowledgement after a resend: nothing is waiting for it.
            return Ok(());
        };
        if out.phase != Phase::Sent || out.publish.as_ref().map(|p| p.qos) != Some(expected) {
            return Err(ClientError::Protocol("acknowledgement of the wrong kind"));
        }
        let tag = out.tag.take();
        if ack.reason >= 0x80 {
            let refused = self.outgoing.remove(&ack.pkid).and_then(|o| o.publish);
            if let (Some(tag), Some(publish)) = (tag, refused) {
                events.push(Event::Refused(tag, ack.reason, publish));
            }
        } else {
            if expected == QoS::ExactlyOnce && self.auto_release {
                out.phase = Phase::Released;
                self.output.push(Packet::PubRel(Ack::new(ack.pkid)));
            } else if expected == QoS::ExactlyOnce {
                out.phase = Phase::Received;
            } else {
                self.outgoing.remove(&ack.pkid);
            }
            if let Some(tag) = tag {
                events.push(Event::Acked(tag));
            }
        }
        self.send_queued();
        Ok(())
    }

    fn send_queued(&mut self) {
        if !self.connected {
            return;
        }
        while self.outgoing.len() < self.window {
            let Some((mut publish, tag)) = self.queued.pop_front() else {
                return;
            };
            if publish.pkid == 0 {
                publish.pkid = self.free_pkid();
            }
            let pkid = publish.pkid;
            self.output.push(Packet::Publish(publish.clone()));
            self.outgoing.insert(
                pkid,
                Outgoing {
                    publish: Some(publish),
                    tag,
                    phase: Phase::Sent,
                },
            );
        }
    }

    fn free_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.outgoing.contains_key(&pkid) && !self.queued.iter().any(|(p, _)| p.pkid == pkid) {
                return pkid;
            }
        }
    }

    /// After CONNACK: what was in flight goes again, in packet id order: PUBLISH with DUP when the server kept
    /// the session (as a new message, with the same id, when it did not: it knows none of them), and PUBREL
    /// for those released (the server answers PUBCOMP whether it remembers them or not).
    fn resend(&mut self, session_present: bool) {
        let mut again = VecDeque::new();
        let outgoing = std::mem::take(&mut self.outgoing);
        for (pkid, out) in outgoing {
            match (out.phase, out.publish) {
                (Phase::Sent, Some(mut publish)) if session_present => {
                    publish.dup = true;
                    self.output.push(Packet::Publish(publish.clone()));
                    self.outgoing.insert(
                        pkid,
                        Outgoing {
                            publish: Some(publish),
                            tag: out.tag,
                            phase: Phase::Sent,
                        },
                    );
                }
                (Phase::Sent, Some(mut publish)) => {
                    publish.dup = false;
                    again.push_back((publish, out.tag));
                }
                (phase, publish) => {
                    if phase == Phase::Released {
                        self.output.push(Packet::PubRel(Ack::new(pkid)));
                    }
                    self.outgoing.insert(
                        pkid,
                        Outgoing {
                            publish,
                            tag: out.tag,
                            phase,
                        },
                    );
                }
            }
        }
        again.append(&mut self.queued);
        self.queued = again;
        self.send_queued();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_codec::{ConnAck, ConnAckProperties};

    fn options() -> ClientOptions {
        ClientOptions {
            client_id: "bridge".into(),
            protocol: Protocol::V5,
            clean_start: false,
            session_expiry: 3600,
            keep_alive: 10,
            username: None,
            password: None,
            receive_maximum: 10,
        }
    }

    fn connack(session_present: bool, receive_maximum: Option<u16>) -> Packet {
        Packet::ConnAck(Box::new(ConnAck {
            session_present,
            reason: 0,
            properties: ConnAckProperties {
                receive_maximum,
                ..ConnAckProperties::default()
            },
        }))
    }

    fn message(topic: &str, qos: QoS) -> Publish {
        Publish {
            topic: topic.into(),
            qos,
            payload: "p".into(),
            ..Publish::default()
        }
    }

    fn sent(c: &mut Client<u32>, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        c.take_output(now, &mut out);
        out
    }

    #[test]
    fn acknowledgements_hand_back_tags_within_the_servers_window() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, Some(2)), now, &mut events).unwrap();
        for tag in 0..3 {
            c.publish(message("t", QoS::AtLeastOnce), Some(tag));
        }
        let out = sent(&mut c, now);
        assert_eq!(out.len(), 2, "the window of 2 holds the third");
        assert_eq!(c.in_flight(), 3, "two sent, one waiting");
        c.handle(Packet::PubAck(Ack::new(1)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Acked(0)));
        let out = sent(&mut c, now);
        assert!(matches!(&out[..], [Packet::Publish(p)] if p.pkid == 3));
    }

    #[test]
    fn qos2_hands_back_at_pubrec_and_finishes_at_pubcomp() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, None), now, &mut events).unwrap();
        c.publish(message("t", QoS::ExactlyOnce), Some(7));
        sent(&mut c, now);
        c.handle(Packet::PubRec(Ack::new(1)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Acked(7)));
        assert_eq!(sent(&mut c, now), vec![], "PUBREL waits for the caller");
        c.release(1);
        assert_eq!(sent(&mut c, now), vec![Packet::PubRel(Ack::new(1))]);
        assert_eq!(c.in_flight(), 1);
        c.handle(Packet::PubComp(Ack::new(1)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Completed(1)));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_reconnect_resends_with_dup_or_as_new() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, None), now, &mut events).unwrap();
        c.publish(message("a", QoS::AtLeastOnce), Some(1));
        c.publish(message("b", QoS::ExactlyOnce), Some(2));
        sent(&mut c, now);
        c.handle(Packet::PubRec(Ack::new(2)), now, &mut events).unwrap();
        c.release(2);
        sent(&mut c, now);
        c.disconnected();
        c.connect(now);
        c.handle(connack(true, None), now, &mut events).unwrap();
        let out = sent(&mut c, now);
        assert!(matches!(&out[0], Packet::Publish(p) if p.dup && p.pkid == 1));
        assert_eq!(out[1], Packet::PubRel(Ack::new(2)));
        c.disconnected();
        c.connect(now);
        c.handle(connack(false, None), now, &mut events).unwrap();
        let out = sent(&mut c, now);
        assert_eq!(
            out[0],
            Packet::PubRel(Ack::new(2)),
            "a release is sent again, whatever the server kept"
        );
        assert!(matches!(&out[1], Packet::Publish(p) if !p.dup && &*p.topic == "a" && p.pkid == 1));
    }

    #[test]
    fn a_resent_qos2_message_is_delivered_once() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, None), now, &mut events).unwrap();
        events.clear();
        let mut m = message("t", QoS::ExactlyOnce);
        m.pkid = 5;
        c.handle(Packet::Publish(m.clone()), now, &mut events).unwrap();
        let Some(Event::Message { ack: Some(ack), .. }) = events.pop() else {
            panic!()
        };
        c.ack(ack);
        m.dup = true;
        c.handle(Packet::Publish(m), now, &mut events).unwrap();
        assert!(events.is_empty());
        assert_eq!(
            sent(&mut c, now),
            vec![Packet::PubRec(Ack::new(5)), Packet::PubRec(Ack::new(5))]
        );
        c.handle(Packet::PubRel(Ack::new(5)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Released(5)));
        c.complete(5);
        assert_eq!(sent(&mut c, now), vec![Packet::PubComp(Ack::new(5))]);
    }

    #[test]
    fn auto_release_answers_pubrec_at_once() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.set_auto_release();
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, None), now, &mut events).unwrap();
        c.publish(message("t", QoS::ExactlyOnce), Some(3));
        sent(&mut c, now);
        c.handle(Packet::PubRec(Ack::new(1)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Acked(3)));
        assert_eq!(sent(&mut c, now), vec![Packet::PubRel(Ack::new(1))]);
        c.handle(Packet::PubComp(Ack::new(1)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Completed(1)));
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_callers_packet_id_is_kept_and_not_sent_twice() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        c.handle(connack(false, None), now, &mut events).unwrap();
        let mut m = message("t", QoS::ExactlyOnce);
        m.pkid = 4242;
        c.publish(m.clone(), Some(1));
        m.dup = true;
        c.publish(m, Some(2));
        let out = sent(&mut c, now);
        assert!(matches!(&out[..], [Packet::Publish(p)] if p.pkid == 4242));
        // A PUBREL for an exchange of an earlier life, and its PUBCOMP.
        c.release(77);
        assert_eq!(sent(&mut c, now), vec![Packet::PubRel(Ack::new(77))]);
        c.handle(Packet::PubComp(Ack::new(77)), now, &mut events).unwrap();
        assert_eq!(events.pop(), Some(Event::Completed(77)));
    }

    #[test]
    fn refusals_and_keep_alive() {
        let now = Instant::now();
        let mut c = Client::<u32>::new(options());
        c.connect(now);
        let mut events = Vec::new();
        let refused = Packet::ConnAck(Box::new(ConnAck {
            reason: reason::NOT_AUTHORIZED,
            ..ConnAck::default()
        }));
        assert_eq!(c.handle(refused, now, &mut events), Err(ClientError::Refused(0x87)));
        c.connect(now);
        c.handle(connack(false, None), now, &mut events).unwrap();
        let later = now + Duration::from_secs(10);
        assert_eq!(c.next_timeout(), Some(later));
        c.on_timeout(later).unwrap();
        assert_eq!(sent(&mut c, later), vec![Packet::PingReq]);
        assert_eq!(
            c.on_timeout(later + Duration::from_secs(10)),
            Err(ClientError::KeepAliveTimeout)
        );
    }
}
