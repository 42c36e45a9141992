//! The per-connection MQTT protocol after CONNECT: packets in, bytes and effects out.
//!
//! Modelled on EMQX's emqx_channel: four entry points — [`Channel::handle_in`] for a packet from the client,
//! [`Channel::deliver`] for a message routed to it, [`Channel::handle_timeout`] for the clock (due at
//! [`Channel::poll_timeout`]), and [`Channel::close_with`] for a close the broker decides — each appending
//! encoded packets and effects to an [`Effects`] value and never touching a socket or reading a clock. The
//! state that must survive the connection is the [`Session`] passed in by the caller.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ractmq_codec::{
    encode, encode_publish, reason, topic, Ack, Auth, Disconnect, Packet, Protocol, Publish, PublishOut, QoS,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

use crate::auth::Authenticator;
use crate::auth_flow::{AuthFlow, AuthProgress};
use crate::authz::{is_sys_topic, Action, Authorizer, Verdict};
use crate::config::Limits;
use crate::connect::{connack, Accepted};
use crate::journal::Journal;
use crate::message::{Delivery, Message};
use crate::session::{Inflight, InflightState, Session, SubOptions};
use crate::topic::parse_shared;

mod questions;
mod subscriptions;

/// A change to the subscription index that the broker must apply before the encoded SUBACK/UNSUBACK is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteChange {
    /// Add (or replace) the client's subscription to `filter`.
    Subscribe {
        /// The filter as the client sent it (`$share/...` included).
        filter: String,
        /// The options granted.
        options: SubOptions,
        /// The retained messages matching the filter go to the client now: Retain Handling 0, or 1 on a new
        /// subscription [MQTT-3.3.1-9, 3.3.1-10], never 2 [MQTT-3.3.1-11], never for a shared subscription
        /// (retained messages are not sent to a group a member joins, §4.8.2).
        send_retained: bool,
    },
    /// Remove the client's subscription to `filter`.
    Unsubscribe {
        /// The filter as the client sent it (`$share/...` included).
        filter: String,
    },
}

/// Why and how the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// 5.0 reason code (also for logs on 3.x connections).
    pub reason: u8,
    /// Publish the will (abnormal end, or DISCONNECT 0x04).
    pub publish_will: bool,
    /// One line for the log: what happened.
    pub why: String,
}

/// What a call into the channel produced. The caller applies `routes`, routes `publishes`, writes `out`, then
/// closes if `close` is set.
#[derive(Debug, Default)]
pub struct Effects {
    /// Encoded packets for the client, in order.
    pub out: BytesMut,
    /// Messages the client published, to route (and retain).
    pub publishes: Vec<Message>,
    /// Subscription index changes, in order, to apply before `out` is written.
    pub routes: Vec<RouteChange>,
    /// Set when the connection must end, after `out` is written.
    pub close: Option<Close>,
    /// The inflight window has room again: feed more deliveries.
    pub window_opened: bool,
    /// Requests refused by authorization (PUBLISH, SUBSCRIBE filters, the will), to count.
    pub denied: u32,
    /// Changes to the stored session, in order: the broker hands them to its store before it routes
    /// `publishes` (see `journal.rs`).
    pub journal: Vec<Journal>,
    /// When `Some` (the caller asks for it), the messages the client acknowledged (PUBACK, PUBCOMP), in order.
    pub acked: Option<Vec<Arc<Message>>>,
}

impl Effects {
    /// Record `entry` in the journal.
    fn journal(&mut self, entry: Journal) {
        self.journal.push(entry);
    }

    /// `out` must wait until the journal is stored (see [`Journal::must_precede_output`]).
    pub fn output_waits_for_journal(&self) -> bool {
        self.journal.iter().any(Journal::must_precede_output)
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverOutcome {
    /// Encoded into `out`; a QoS 1 or 2 delivery is now in flight in the session.
    Sent,
    /// The message expired before it could be sent.
    Expired,
    /// Larger than the client's Maximum Packet Size.
    TooLarge,
}

/// The protocol state of one connection after CONNECT (see the module doc). What must outlive the
/// connection is in the [`Session`] passed to each call.
pub struct Channel {
    protocol: Protocol,
    limits: Arc<Limits>,
    client_id: Arc<str>,
    keep_alive: Duration,
    last_activity: Instant,
    /// The client's 5.0 Receive Maximum: our outgoing window never exceeds it.
    client_receive_max: u16,
    client_max_packet: u32,
    /// Topic aliases the client set up towards us.
    inbound_aliases: HashMap<u16, Arc<str>>,
    /// Topic aliases we set up towards the client: the first topics sent get one each, up to the smaller of
    /// the client's Topic Alias Maximum and ours; later topics are sent in full.
    outbound_aliases: HashMap<Arc<str>, u16>,
    outbound_alias_max: u16,
    /// The session expiry agreed at CONNECT (0 may not become non-zero at DISCONNECT).
    connect_expiry: u32,
    /// The client wants reason strings on failed acks (5.0 Request Problem Information, default 1).
    problem_info: bool,
    /// The method the client authenticated with at CONNECT, and a re-authentication in progress.
    reauth: Option<ReAuth>,
    /// Who decides what the client may publish and subscribe to; everything (but `$SYS`) when none.
    authz: Option<Arc<dyn Authorizer>>,
}

struct ReAuth {
    authenticator: Arc<dyn Authenticator>,
    in_progress: Option<AuthFlow>,
}

impl Channel {
    /// Start the protocol for an accepted CONNECT: encodes the CONNACK and, when the session is resumed,
    /// re-sends every message in flight with DUP set (PUBREL for those already received).
    pub fn start(
        connect: &ractmq_codec::Connect,
        accepted: &Accepted,
        session: &mut Session,
        session_present: bool,
        limits: Arc<Limits>,
        now: Instant,
        fx: &mut Effects,
    ) -> Channel {
        let mut channel = Channel {
            protocol: accepted.protocol,
            client_id: accepted.client_id.clone(),
            keep_alive: Duration::from_secs(u64::from(accepted.keep_alive)),
            last_activity: now,
            client_receive_max: connect.properties.receive_maximum.unwrap_or(u16::MAX),
            client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
            inbound_aliases: HashMap::new(),
            outbound_aliases: HashMap::new(),
            outbound_alias_max: connect
                .properties
                .topic_alias_maximum
                .unwrap_or(0)
                .min(limits.outbound_topic_aliases),
            connect_expiry: accepted.session_expiry,
            problem_info: connect.properties.request_problem_information != Some(0),
            reauth: None,
            authz: None,
            limits,
        };
        session.expiry_interval = accepted.session_expiry;
        // A will to `$SYS` would be a client writing there: it is dropped, as any will authorization refuses.
        session.will = connect.will.clone().filter(|w| !is_sys_topic(&w.topic));
        let ack = connack(accepted, session_present, &channel.limits);
        channel.send(&Packet::ConnAck(Box::new(ack)), fx);
        if session_present {
            channel.resend_inflight(session, now, fx);
        }
        channel
    }

    /// The protocol level the client connected with.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The client identifier in force (chosen by the broker if the client sent an empty one).
    pub fn client_id(&self) -> &Arc<str> {
        &self.client_id
    }

    /// How many more QoS 1/2 deliveries may be sent now.
    pub fn window_room(&self, session: &Session) -> usize {
        let window = usize::from(self.limits.max_inflight.min(self.client_receive_max));
        window.saturating_sub(session.inflight.len())
    }

    /// How long the client may stay silent: one and a half times its Keep Alive [MQTT-3.1.2-24], if it has one.
    pub fn keepalive_limit(&self) -> Option<Duration> {
        (!self.keep_alive.is_zero()).then(|| self.keep_alive.mul_f32(1.5))
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the time the connection must have shown a
    /// sign of life by, if keepalive is on.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.keepalive_limit().map(|limit| self.last_activity + limit)
    }

    /// A packet from the client.
    pub fn handle_in(&mut self, session: &mut Session, packet: Packet, now: Instant, fx: &mut Effects) {
        self.last_activity = now;
        match packet {
            Packet::Publish(p) => self.publish_in(session, p, now, fx),
            Packet::PubAck(ack) => self.puback_in(session, ack, fx),
            Packet::PubRec(ack) => self.pubrec_in(session, ack, fx),
            Packet::PubRel(ack) => self.pubrel_in(session, ack, fx),
            Packet::PubComp(ack) => self.pubcomp_in(session, ack, fx),
            Packet::Subscribe(s) => self.subscribe_in(session, s, fx),
            Packet::Unsubscribe(u) => self.unsubscribe_in(session, u, fx),
            Packet::PingReq => self.send(&Packet::PingResp, fx),
            Packet::Disconnect(d) => self.disconnect_in(session, d, fx),
            Packet::Auth(auth) => self.auth_in(auth, fx),
            other => self.violation(reason::PROTOCOL_ERROR, other.kind(), fx),
        }
    }

    /// The clock reached `now`: a client silent for one and a half times its Keep Alive is disconnected with
    /// 0x8D [MQTT-3.1.2-22].
    pub fn handle_timeout(&mut self, now: Instant, fx: &mut Effects) {
        if let Some(deadline) = self.poll_timeout() {
            if now > deadline && fx.close.is_none() {
                self.close_with(reason::KEEP_ALIVE_TIMEOUT, true, "keepalive timeout".into(), fx);
            }
        }
    }

    /// The broker ends the connection (takeover, shutdown, overflow...). 5.0 clients get a DISCONNECT.
    pub fn close_with(&mut self, reason_code: u8, publish_will: bool, why: String, fx: &mut Effects) {
        self.close_to(reason_code, None, publish_will, why, fx);
    }

    /// [`close_with`](Self::close_with), naming another server for the client to use (5.0 Server Reference,
    /// with 0x9C Use another server or 0x9D Server moved).
    pub fn close_to(
        &mut self,
        reason_code: u8,
        server_reference: Option<String>,
        publish_will: bool,
        why: String,
        fx: &mut Effects,
    ) {
        if self.protocol.is_v5() {
            // A reason string is allowed on DISCONNECT whatever the client's Request Problem Information.
            let disconnect = Disconnect {
                reason_string: (reason_code >= 0x80).then(|| why.clone()),
                server_reference,
                ..Disconnect::with_reason(reason_code)
            };
            self.send(&Packet::Disconnect(disconnect), fx);
        }
        fx.close = Some(Close {
            reason: reason_code,
            publish_will,
            why,
        });
    }

    /// Send one routed message. The caller checks [`Channel::window_room`] before a QoS 1/2 delivery.
    pub fn deliver(
        &mut self,
        session: &mut Session,
        delivery: Delivery,
        now: Instant,
        fx: &mut Effects,
    ) -> DeliverOutcome {
        let expiry = delivery.message.remaining_expiry(now);
        if expiry == Some(0) {
            done(&delivery, fx);
            return DeliverOutcome::Expired;
        }
        let pkid = if delivery.qos == QoS::AtMostOnce {
            0
        } else {
            session.next_packet_id()
        };
        let mark = fx.out.len();
        let (written, new_alias) = self.encode_delivery(&delivery, pkid, false, expiry, fx);
        if written.is_none_or(|n| n > self.client_max_packet as usize) {
            fx.out.truncate(mark);
            if new_alias {
                // The client never saw the alias being set up.
                self.outbound_aliases.remove(&delivery.message.topic);
            }
            done(&delivery, fx);
            return DeliverOutcome::TooLarge;
        }
        if delivery.qos == QoS::AtMostOnce {
            done(&delivery, fx);
        } else {
            let exactly_once = delivery.qos == QoS::ExactlyOnce;
            if let Some(stored) = delivery.stored {
                fx.journal(Journal::Sent {
                    stored,
                    pkid,
                    exactly_once,
                });
            }
            let state = if exactly_once {
                InflightState::AwaitingPubrec
            } else {
                InflightState::AwaitingPuback
            };
            session.inflight.push_back(Inflight { pkid, delivery, state });
        }
        DeliverOutcome::Sent
    }

    /// Encode one PUBLISH for the client; returns its size (None if it cannot be encoded) and whether a new
    /// outbound topic alias was set up by it.
    ///
    /// A QoS 0 delivery with nothing of the subscriber's own in it (no topic alias, no subscription
    /// identifier, the RETAIN flag as published, no Message Expiry Interval to count down) is the same frame
    /// for every subscriber at the protocol level's family: it is encoded once and kept with the message
    /// while other deliveries of it may follow, and appended as it is by the next ones.
    fn encode_delivery(
        &mut self,
        d: &Delivery,
        pkid: u16,
        dup: bool,
        expiry: Option<u32>,
        fx: &mut Effects,
    ) -> (Option<usize>, bool) {
        let m = &d.message;
        let (topic, topic_alias, new_alias) = self.outbound_alias(&m.topic);
        let shared = topic_alias.is_none()
            && d.qos == QoS::AtMostOnce
            && d.retain == m.retain
            && d.subscription_ids.is_empty()
            && expiry.is_none();
        if shared {
            if let Some(frame) = m.shared_frame(self.protocol) {
                fx.out.extend_from_slice(frame);
                return (Some(frame.len()), new_alias);
            }
        }
        let out = PublishOut {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            pkid,
            payload: &m.payload,
            properties: Some(&m.properties),
            topic_alias,
            subscription_identifiers: &d.subscription_ids,
            message_expiry_interval: expiry,
        };
        let mark = fx.out.len();
        let written = encode_publish(&out, self.protocol, &mut fx.out).ok();
        // Kept only if other deliveries still hold the message: a message with one subscriber costs no copy.
        if shared && written.is_some() && Arc::strong_count(m) > 1 {
            m.keep_shared_frame(self.protocol, &fx.out[mark..]);
        }
        (written, new_alias)
    }

    /// How `topic` is sent: the topic name (empty when the client knows its alias), the alias, and whether
    /// the alias is set up now. The first topics sent get one each, up to the smaller of the client's Topic
    /// Alias Maximum and ours; later topics are sent in full.
    fn outbound_alias<'t>(&mut self, topic: &'t Arc<str>) -> (&'t str, Option<u16>, bool) {
        match self.outbound_aliases.get(topic) {
            // The client knows this alias: the topic name can be left out [MQTT-3.3.2-12].
            Some(&alias) => ("", Some(alias), false),
            None if self.outbound_aliases.len() < usize::from(self.outbound_alias_max) => {
                let alias = self.outbound_aliases.len() as u16 + 1;
                self.outbound_aliases.insert(topic.clone(), alias);
                (topic, Some(alias), true)
            }
            None => (topic, None, false),
        }
    }

    fn resend_inflight(&mut self, session: &mut Session, now: Instant, fx: &mut Effects) {
        for entry in &session.inflight {
            match entry.state {
                InflightState::AwaitingPubcomp => self.send(&Packet::PubRel(Ack::new(entry.pkid)), fx),
                _ => {
                    let expiry = entry.delivery.message.remaining_expiry(now);
                    // A message in flight is sent again even if it expired meanwhile: the client may hold
                    // half of its QoS 2 exchange.
                    let _ = self.encode_delivery(&entry.delivery, entry.pkid, true, expiry.map(|e| e.max(1)), fx);
                }
            }
        }
    }

    fn publish_in(&mut self, session: &mut Session, mut p: Publish, now: Instant, fx: &mut Effects) {
        if p.qos > self.limits.max_qos {
            return self.violation(reason::QOS_NOT_SUPPORTED, "PUBLISH above the maximum QoS", fx);
        }
        if p.retain && !self.limits.retain_available {
            return self.violation(
                reason::RETAIN_NOT_SUPPORTED,
                "retained PUBLISH while retain is unavailable",
                fx,
            );
        }
        let Some(topic) = self.resolve_alias(&p, fx) else {
            return;
        };
        if p.properties.payload_format_indicator == Some(1) && std::str::from_utf8(&p.payload).is_err() {
            if p.qos == QoS::AtMostOnce {
                return self.violation(reason::PAYLOAD_FORMAT_INVALID, "payload is not UTF-8 as announced", fx);
            }
            return self.ack_publish(
                &p,
                reason::PAYLOAD_FORMAT_INVALID,
                "payload is not UTF-8 as announced",
                fx,
            );
        }
        // A QoS 2 PUBLISH sent again before PUBREL was allowed the first time.
        let resent = p.qos == QoS::ExactlyOnce && session.awaiting_rel.contains(&p.pkid);
        if !resent && !self.authorized(Action::Publish, &topic, p.qos, p.retain, fx) {
            // 5.0 clients read 0x87 in the PUBACK or PUBREC; 3.x acks carry no reason, so for them the message
            // is dropped and acknowledged, as MQTT 3.1.1 §4.7 allows. A PUBREC with 0x87 ends a QoS 2 exchange.
            if fx.close.is_none() {
                self.ack_publish(
                    &p,
                    reason::NOT_AUTHORIZED,
                    "not authorized to publish to this topic",
                    fx,
                );
            }
            return;
        }
        if p.qos == QoS::ExactlyOnce {
            if session.awaiting_rel.contains(&p.pkid) {
                // A re-sent QoS 2 PUBLISH before PUBREL: acknowledge again, do not route again.
                return self.send(&Packet::PubRec(Ack::new(p.pkid)), fx);
            }
            if session.awaiting_rel.len() >= usize::from(self.limits.receive_maximum) {
                return self.violation(
                    reason::RECEIVE_MAXIMUM_EXCEEDED,
                    "more QoS 2 messages in flight than Receive Maximum",
                    fx,
                );
            }
            session.awaiting_rel.insert(p.pkid);
            if session.persistent {
                fx.journal(Journal::AwaitingRelease { pkid: p.pkid });
            }
        }
        // Moved, not cloned: the acknowledgement below needs only the QoS and the packet identifier.
        let mut properties = std::mem::take(&mut p.properties);
        properties.topic_alias = None;
        fx.publishes.push(Message {
            topic,
            payload: std::mem::take(&mut p.payload),
            qos: p.qos,
            retain: p.retain,
            properties,
            publisher: Some(self.client_id.clone()),
            received_at: now,
            origin: None,
            frames: Default::default(),
        });
        self.ack_publish(&p, reason::SUCCESS, "", fx);
    }

    /// Authorize the client's requests with `authz` from now on (set once, right after [`Channel::start`]).
    /// The will registered at CONNECT is checked now, as the publish it will become: a will the client may
    /// not publish is dropped, and counted in `fx.denied`.
    pub fn set_authorizer(&mut self, session: &mut Session, authz: Arc<dyn Authorizer>, fx: &mut Effects) {
        self.authz = Some(authz);
        if let Some(will) = &session.will {
            let (topic, qos, retain) = (will.topic.clone(), will.qos, will.retain);
            if self.verdict(Action::Publish, &topic, qos, retain) != Verdict::Allow {
                session.will = None;
                fx.denied += 1;
            }
        }
    }

    /// What the authorizer says, with `$SYS` never writable by clients whatever it says.
    fn verdict(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict {
        if action == Action::Publish && is_sys_topic(topic) {
            return Verdict::Deny;
        }
        self.authz
            .as_ref()
            .map_or(Verdict::Allow, |a| a.authorize(action, topic, qos, retain))
    }

    /// Is the request allowed? A refusal is counted, and closes the connection (0x87) when the rules say so.
    fn authorized(&mut self, action: Action, topic: &str, qos: QoS, retain: bool, fx: &mut Effects) -> bool {
        let verdict = self.verdict(action, topic, qos, retain);
        if verdict != Verdict::Allow {
            fx.denied += 1;
        }
        if verdict == Verdict::DenyAndDisconnect {
            let what = match action {
                Action::Publish => "publish to",
                Action::Subscribe => "subscribe to",
            };
            self.close_with(
                reason::NOT_AUTHORIZED,
                true,
                format!("not authorized to {what} '{topic}'"),
                fx,
            );
        }
        verdict == Verdict::Allow
    }

    /// The client authenticated with `authenticator` at CONNECT: it may re-authenticate with the same method
    /// (AUTH 0x19) while connected.
    pub fn allow_reauthentication(&mut self, authenticator: Arc<dyn Authenticator>) {
        self.reauth = Some(ReAuth {
            authenticator,
            in_progress: None,
        });
    }

    /// Re-authentication (MQTT 5 §4.12.1): AUTH 0x19 starts it, AUTH 0x18 continues it; success is answered
    /// with AUTH 0x00, failure with DISCONNECT 0x87. The connection keeps working meanwhile.
    fn auth_in(&mut self, auth: Auth, fx: &mut Effects) {
        let Some(ReAuth {
            authenticator,
            in_progress,
        }) = self.reauth.as_mut()
        else {
            return self.violation(
                reason::PROTOCOL_ERROR,
                "AUTH on a connection without enhanced authentication",
                fx,
            );
        };
        let progress = match (auth.reason, in_progress.as_mut()) {
            (reason::RE_AUTHENTICATE, None) if auth.method.as_deref() == Some(authenticator.method()) => {
                let (flow, progress) =
                    AuthFlow::start(authenticator.as_ref(), auth.data.as_deref().unwrap_or_default());
                *in_progress = Some(flow);
                progress
            }
            (reason::RE_AUTHENTICATE, None) => {
                return self.violation(reason::PROTOCOL_ERROR, "AUTH with another authentication method", fx)
            }
            (_, Some(flow)) => flow.handle(auth),
            (_, None) => return self.violation(reason::PROTOCOL_ERROR, "AUTH out of sequence", fx),
        };
        let method = authenticator.method().to_string();
        let (code, data) = match progress {
            AuthProgress::Challenge(challenge) => return self.send(&Packet::Auth(challenge), fx),
            AuthProgress::Success { data, .. } => {
                *in_progress = None;
                (reason::SUCCESS, data)
            }
            AuthProgress::Failure {
                code: reason::NOT_AUTHORIZED,
                why,
            } => {
                let why = format!("re-authentication failed: {why}");
                return self.close_with(reason::NOT_AUTHORIZED, true, why, fx);
            }
            AuthProgress::Failure { code, why } => return self.violation(code, &why, fx),
        };
        let reply = Auth {
            reason: code,
            method: Some(method),
            data,
            ..Auth::default()
        };
        self.send(&Packet::Auth(reply), fx);
    }

    fn ack_publish(&mut self, p: &Publish, code: u8, why: &str, fx: &mut Effects) {
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.send(&Packet::PubAck(self.ack(p.pkid, code, why)), fx),
            QoS::ExactlyOnce => self.send(&Packet::PubRec(self.ack(p.pkid, code, why)), fx),
        }
    }

    /// An ack with `code`; a failure carries `why` as its reason string unless the client asked for none
    /// (Request Problem Information = 0 [MQTT-3.1.2-29]).
    fn ack(&self, pkid: u16, code: u8, why: &str) -> Ack {
        Ack {
            reason_string: self.problem(code, why),
            ..Ack::with_reason(pkid, code)
        }
    }

    fn problem(&self, code: u8, why: &str) -> Option<String> {
        (self.protocol.is_v5() && self.problem_info && code >= 0x80).then(|| why.to_string())
    }

    /// The topic of an incoming PUBLISH, after 5.0 topic alias rules.
    fn resolve_alias(&mut self, p: &Publish, fx: &mut Effects) -> Option<Arc<str>> {
        let Some(alias) = p.properties.topic_alias else {
            return Some(p.topic.clone());
        };
        if alias == 0 || alias > self.limits.topic_alias_maximum {
            self.violation(reason::TOPIC_ALIAS_INVALID, "topic alias out of range", fx);
            return None;
        }
        if !p.topic.is_empty() {
            self.inbound_aliases.insert(alias, p.topic.clone());
            return Some(p.topic.clone());
        }
        match self.inbound_aliases.get(&alias) {
            Some(topic) => Some(topic.clone()),
            None => {
                self.violation(reason::PROTOCOL_ERROR, "unknown topic alias", fx);
                None
            }
        }
    }

    fn puback_in(&mut self, session: &mut Session, ack: Ack, fx: &mut Effects) {
        if let Some(pos) = session.inflight_position(ack.pkid) {
            if session.inflight[pos].state == InflightState::AwaitingPuback {
                completed(session, pos, fx);
            }
        }
    }

    fn pubrec_in(&mut self, session: &mut Session, ack: Ack, fx: &mut Effects) {
        let Some(pos) = session.inflight_position(ack.pkid) else {
            if self.protocol.is_v5() {
                let ack = self.ack(
                    ack.pkid,
                    reason::PACKET_IDENTIFIER_NOT_FOUND,
                    "PUBREC for a packet id not in flight",
                );
                self.send(&Packet::PubRel(ack), fx);
            }
            return;
        };
        if ack.reason >= 0x80 {
            // The client refused the message: the exchange ends here.
            completed(session, pos, fx);
            return;
        }
        let entry = &mut session.inflight[pos];
        if entry.state == InflightState::AwaitingPubrec {
            if let Some(stored) = entry.delivery.stored {
                fx.journal(Journal::Received { stored });
            }
        }
        entry.state = InflightState::AwaitingPubcomp;
        self.send(&Packet::PubRel(Ack::new(ack.pkid)), fx);
    }

    fn pubrel_in(&mut self, session: &mut Session, ack: Ack, fx: &mut Effects) {
        let released = session.awaiting_rel.remove(&ack.pkid);
        if released && session.persistent {
            fx.journal(Journal::Released { pkid: ack.pkid });
        }
        let code = if released || !self.protocol.is_v5() {
            reason::SUCCESS
        } else {
            reason::PACKET_IDENTIFIER_NOT_FOUND
        };
        let ack = self.ack(ack.pkid, code, "PUBREL for a packet id not awaiting release");
        self.send(&Packet::PubComp(ack), fx);
    }

    fn pubcomp_in(&mut self, session: &mut Session, ack: Ack, fx: &mut Effects) {
        if let Some(pos) = session.inflight_position(ack.pkid) {
            if session.inflight[pos].state == InflightState::AwaitingPubcomp {
                completed(session, pos, fx);
            }
        }
    }

    fn disconnect_in(&mut self, session: &mut Session, d: Disconnect, fx: &mut Effects) {
        if let Some(expiry) = d.session_expiry_interval {
            if self.connect_expiry == 0 && expiry != 0 {
                return self.violation(reason::PROTOCOL_ERROR, "session expiry raised from 0 at DISCONNECT", fx);
            }
            session.expiry_interval = expiry.min(self.limits.max_session_expiry);
        }
        let publish_will = d.reason == reason::DISCONNECT_WITH_WILL;
        if !publish_will {
            session.will = None;
        }
        fx.close = Some(Close {
            reason: d.reason,
            publish_will,
            why: "client disconnected".into(),
        });
    }

    /// The client broke a rule: close, with a DISCONNECT carrying `code` for 5.0 clients, and publish the will.
    fn violation(&mut self, code: u8, what: &str, fx: &mut Effects) {
        self.close_with(code, true, format!("protocol violation: {what}"), fx);
    }

    fn send(&self, packet: &Packet, fx: &mut Effects) {
        // Encoding fails only for fields over 65,535 bytes, which the broker never builds from valid input,
        // or a packet the level lacks; dropping it then is the safe choice.
        let mark = fx.out.len();
        let _ = encode(packet, self.protocol, &mut fx.out);
        if fx.out.len() - mark > self.client_max_packet as usize {
            // The reason string and user properties go first rather than exceed the client's Maximum Packet
            // Size [MQTT-3.4.2-2, 3.9.2-1, 3.14.2-3 and their siblings].
            fx.out.truncate(mark);
            let _ = encode(&without_diagnostics(packet), self.protocol, &mut fx.out);
        }
    }
}

/// `packet` without its reason string and user properties.
/// The message in flight at `pos` is completed: it leaves the session (and the store).
fn completed(session: &mut Session, pos: usize, fx: &mut Effects) {
    if let Some(entry) = session.inflight.remove(pos) {
        done(&entry.delivery, fx);
        if let Some(acked) = fx.acked.as_mut() {
            acked.push(entry.delivery.message);
        }
    }
    fx.window_opened = true;
}

/// The store may forget `delivery`'s copy, if it keeps one.
fn done(delivery: &Delivery, fx: &mut Effects) {
    if let Some(stored) = delivery.stored {
        fx.journal(Journal::Done { stored });
    }
}

fn without_diagnostics(packet: &Packet) -> Packet {
    let mut lean = packet.clone();
    match &mut lean {
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            a.reason_string = None;
            a.user_properties.clear();
        }
        Packet::SubAck(a) => {
            a.reason_string = None;
            a.user_properties.clear();
        }
        Packet::UnsubAck(a) => {
            a.reason_string = None;
            a.user_properties.clear();
        }
        Packet::Disconnect(d) => {
            d.reason_string = None;
            d.user_properties.clear();
        }
        Packet::Auth(a) => {
            a.reason_string = None;
            a.user_properties.clear();
        }
        _ => {}
    }
    lean
}
