//! The task an MQTT bridge's actor owns: it moves messages between the bridge's local session (an in-process
//! connection to this node) and the remote broker, and acknowledges each side only once the other has.
//!
//! Egress: a message the local session delivers is published to the remote tagged with the acknowledgement
//! owed to the local session, which is sent when the remote's PUBACK (or PUBREC) comes back. Until then the
//! local session keeps the message (in memory and, with durability, in the store): a bridge killed, or a
//! remote that went away, loses none of them. Ingress works the same way round. While the remote is down the
//! pump stops taking QoS 0 messages past a small holding room and the local session's buffer takes the rest,
//! with its overflow policy.
//!
//! Loops: both subscriptions use No Local, so a message the bridge brought in is not sent back out, nor one it
//! sent out brought back in; an MQTT 3.1.1 remote is asked for the same with the bridge bit of the CONNECT
//! (Mosquitto's `try_private`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractmq_broker::BrokerView;
use ractmq_codec::{Packet, Protocol, Publish, QoS};
use ractmq_protocol::Message;
use tokio::sync::mpsc;

use crate::client::{Client, ClientOptions, Event, InboundAck};
use crate::config::{self, MqttBridgeConfig};
use crate::link::{self, BoxRead, BoxWrite, Link};
use crate::local_session::{self, LocalEnd};
use crate::stats::Counters;

/// Bytes of the in-process pipe to the local broker, each way.
const LOCAL_PIPE: usize = 256 * 1024;
/// How long a remote has to answer a connection attempt (TCP, TLS and CONNACK).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// QoS 0 messages held while the remote is down, before the local session's buffer holds the rest.
const QOS0_HOLD: usize = 1024;

/// What an outgoing message to the remote carries: the local acknowledgement it waits for, and since when.
struct ToRemote {
    /// `None` for a dead letter sent again: nothing to acknowledge.
    ack: Option<InboundAck>,
    since: Instant,
}

/// What an outgoing message to the local broker carries: the acknowledgement owed to the remote, and the
/// remote session it is owed to (a remote that comes back without its session knows none of them).
#[derive(Clone, Copy)]
struct ToLocal {
    ack: InboundAck,
    session: u64,
}

type Dial = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(BoxRead, BoxWrite), String>> + Send>>;

/// Ask the pump to stop (DISCONNECT both sides, keep both sessions).
pub(crate) enum Control {
    Stop,
}

pub(crate) struct Pump {
    config: Arc<MqttBridgeConfig>,
    view: BrokerView,
    /// Dead letters published, with the local message each replaces, to acknowledge once it is done.
    dead_letters_done: mpsc::UnboundedReceiver<Option<InboundAck>>,
    dead_letters_tx: mpsc::UnboundedSender<Option<InboundAck>>,
    /// QoS 2 messages dead-lettered and acknowledged: their PUBREL from the local broker is answered here.
    dead_qos2: HashSet<u16>,
    stats: Arc<Counters>,
    local: Client<ToLocal>,
    local_link: Link,
    remote: Client<ToRemote>,
    remote_link: Option<Link>,
    dialing: Option<Dial>,
    dial_started: Option<Instant>,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    /// QoS 0 messages taken while the remote was down.
    held: VecDeque<Publish>,
    remote_protocol: Protocol,
    /// The local session has its subscriptions (SUBACK seen).
    local_ready: bool,
    /// The remote connection is up with its subscriptions.
    remote_ready: bool,
    /// Counts the remote sessions: one more each time the remote comes back without the bridge's session.
    remote_session: u64,
    /// Packet ids of QoS 1/2 messages from the remote passed to the node and not yet acknowledged there: a
    /// resend of one (after a reconnect) is not passed on again.
    ingress: HashSet<u16>,
    events_local: Vec<Event<ToLocal>>,
    events_remote: Vec<Event<ToRemote>>,
    packets: Vec<Packet>,
}

impl Pump {
    pub(crate) fn new(config: Arc<MqttBridgeConfig>, view: &BrokerView, stats: Arc<Counters>) -> Pump {
        let remote_protocol = if config.protocol == "3.1.1" {
            Protocol::V3_1_1
        } else {
            Protocol::V5
        };
        let mut local = crate::local_session::client(&config.name, config.max_inflight);
        // What the bridge brings in is the node's once it took it (PUBREC): released at once. Exactly once
        // towards the node rests on `ingress`, which sends nothing twice while the remote resends it.
        local.set_auto_release();
        let remote = Client::new(ClientOptions {
            client_id: config.remote_client_id(),
            protocol: remote_protocol,
            clean_start: config.clean_start,
            session_expiry: if config.clean_start { 0 } else { config.session_expiry_s },
            keep_alive: config.keep_alive_s,
            username: config.username.clone(),
            password: config.password.clone().map(Into::into),
            receive_maximum: config.max_inflight,
        });
        let local_link = Link::new(view.connect_in_process(LOCAL_PIPE), Protocol::V5, false);
        let local_ready_at_start = config.forward.is_empty();
        let (dead_letters_tx, dead_letters_done) = mpsc::unbounded_channel();
        Pump {
            view: view.clone(),
            dead_letters_done,
            dead_letters_tx,
            dead_qos2: HashSet::new(),
            backoff: Duration::from_millis(config.reconnect_min_ms),
            config,
            stats,
            local,
            local_link,
            remote,
            remote_link: None,
            dialing: None,
            dial_started: None,
            reconnect_at: Some(Instant::now()),
            held: VecDeque::new(),
            remote_protocol,
            local_ready: local_ready_at_start,
            remote_ready: false,
            remote_session: 0,
            ingress: HashSet::new(),
            events_local: Vec::new(),
            events_remote: Vec::new(),
            packets: Vec::new(),
        }
    }

    /// Runs until told to stop (`Ok`) or the local connection fails (`Err`: the actor fails and is
    /// restarted). A remote failing is not an error: the pump reconnects with backoff.
    pub(crate) async fn run(mut self, mut control: mpsc::Receiver<Control>) -> Result<(), String> {
        let connect = self.local.connect(Instant::now());
        self.packets.push(connect);
        self.local_link
            .send(&mut self.packets)
            .await
            .map_err(|e| format!("local connection: {e}"))?;
        loop {
            let deadline = self.next_deadline();
            let take_local = self.held.len() < QOS0_HOLD;
            tokio::select! {
                read = self.local_link.read_more(), if take_local => {
                    if !read.map_err(|e| format!("local connection: {e}"))? {
                        return Err("the local broker closed the bridge's connection".into());
                    }
                    if let Err(end) = self.on_local_bytes() {
                        return local_session::pump_end(&self.config.name, end);
                    }
                }
                // A remote that sends faster than the node takes waits (TCP), whatever its protocol level lets
                // it keep in flight: what the bridge holds towards the node stays bounded.
                read = read_remote(&mut self.remote_link), if self.local.in_flight() < usize::from(self.config.max_inflight) * 2 => {
                    match read {
                        Ok(true) => {
                            if let Err(why) = self.on_remote_bytes() {
                                self.remote_down(why);
                            }
                        }
                        Ok(false) => self.remote_down("the remote closed the connection".into()),
                        Err(e) => self.remote_down(format!("read: {e}")),
                    }
                }
                dialed = poll_dial(&mut self.dialing) => {
                    self.dialing = None;
                    match dialed {
                        Ok((read, write)) => self.remote_dialed(read, write),
                        Err(why) => self.remote_down(why),
                    }
                }
                _ = sleep_until(deadline) => self.on_timers()?,
                Some(original) = self.dead_letters_done.recv() => {
                    Counters::add(&self.stats.dead_lettered, 1);
                    if let Some(original) = original {
                        if original.qos == QoS::ExactlyOnce {
                            self.dead_qos2.insert(original.pkid);
                        }
                        self.local.ack(original);
                    }
                }
                _ = self.stats.letters.replay_ready.notified() => self.replay(),
                // Stop asked for, or the actor gone.
                _ = control.recv() => return self.stop().await,
            }
            self.flush().await?;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let connecting = self.dial_started.map(|t| t + CONNECT_TIMEOUT);
        [self.remote.next_timeout(), self.reconnect_at, connecting]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timers(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if let Err(e) = self.remote.on_timeout(now) {
            self.remote_down(e.to_string());
        }
        if self.reconnect_at.is_some_and(|t| now >= t) && self.remote_link.is_none() && self.dialing.is_none() {
            self.reconnect_at = None;
            self.dial_started = Some(now);
            let server = self.config.server.clone();
            let tls = self.config.tls.clone();
            self.dialing = Some(Box::pin(async move {
                link::dial(&server, tls.as_ref(), CONNECT_TIMEOUT).await
            }));
        }
        if self.dial_started.is_some_and(|t| now >= t + CONNECT_TIMEOUT) && !self.remote.is_connected() {
            self.remote_down(format!(
                "no CONNACK from {} within {}s",
                self.config.server,
                CONNECT_TIMEOUT.as_secs()
            ));
        }
        Ok(())
    }

    fn remote_dialed(&mut self, read: BoxRead, write: BoxWrite) {
        let bridge_bit = self.remote_protocol == Protocol::V3_1_1;
        let mut link = Link::from_halves(read, write, self.remote_protocol, bridge_bit);
        let connect = self.remote.connect(Instant::now());
        self.packets.push(connect);
        // Written with the next flush, before whatever else the client outputs.
        if let Err(e) = link.queue(&mut self.packets) {
            return self.remote_down(e.to_string());
        }
        self.remote_link = Some(link);
    }

    fn remote_down(&mut self, why: String) {
        if self.remote_link.is_some() || self.dialing.is_some() || self.dial_started.is_some() {
            tracing::warn!(bridge = %self.config.name, server = %self.config.server, "bridge link down: {why}; reconnecting in {} ms", self.backoff.as_millis());
        }
        self.stats.set_error(Some(why));
        self.remote_ready = false;
        self.show_ready();
        self.remote_link = None;
        self.dialing = None;
        self.dial_started = None;
        self.remote.disconnected();
        self.reconnect_at = Some(Instant::now() + jittered(self.backoff));
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.config.reconnect_max_ms));
    }

    fn on_local_bytes(&mut self) -> Result<(), LocalEnd> {
        let now = Instant::now();
        while let Some(packet) = self.local_link.next_packet()? {
            self.local.handle(packet, now, &mut self.events_local)?;
        }
        let events = std::mem::take(&mut self.events_local);
        for event in events {
            match event {
                Event::Connected { .. } => {
                    let qos = QoS::from_u8(self.config.qos).unwrap_or(QoS::AtLeastOnce);
                    let stale = local_session::stale(&self.view, &self.config.name, &self.config.forward);
                    self.local.unsubscribe(&stale);
                    self.local.subscribe(&self.config.forward, qos);
                }
                Event::Message { publish, ack } => self.egress(publish, ack, now),
                // The local broker took a message from the remote: acknowledge it there.
                Event::Acked(sent) => self.owe_remote(sent),
                Event::Refused(sent, code, _) => {
                    // The local broker refused what the bridge brought in (a quota): counted, and acknowledged at
                    // the remote all the same, which would otherwise send it forever.
                    Counters::add(&self.stats.failed, 1);
                    tracing::warn!(bridge = %self.config.name, "local broker refused a message (0x{code:02x})");
                    self.owe_remote(sent);
                }
                // QoS 2's second half, relayed with the same packet ids.
                Event::Released(pkid) if self.dead_qos2.remove(&pkid) => self.local.complete(pkid),
                Event::Released(pkid) => self.remote.release(pkid),
                // The node finished a message the bridge brought in: nothing owed to the remote any more.
                Event::Completed(_) => {}
                Event::Subscribed(reasons) => {
                    self.check_suback("local", &reasons);
                    self.local_ready = true;
                    self.show_ready();
                }
            }
        }
        Ok(())
    }

    fn on_remote_bytes(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let Some(link) = self.remote_link.as_mut() else {
            return Ok(());
        };
        while let Some(packet) = link.next_packet()? {
            self.remote
                .handle(packet, now, &mut self.events_remote)
                .map_err(|e| e.to_string())?;
        }
        let events = std::mem::take(&mut self.events_remote);
        for event in events {
            match event {
                Event::Connected { session_present } => self.remote_connected(session_present),
                Event::Message { mut publish, ack } => {
                    if publish.dup {
                        Counters::add(&self.stats.duplicates, 1);
                    }
                    Counters::add(&self.stats.received, 1);
                    publish.topic = format!("{}{}", self.config.local_prefix, publish.topic).into();
                    strip_for(Protocol::V5, &mut publish);
                    // Same packet id as at the remote (see the module doc).
                    if let Some(ack) = ack {
                        if !self.ingress.insert(ack.pkid) {
                            // Sent again before the node acknowledged it: the first copy's acknowledgement answers.
                            continue;
                        }
                    }
                    let session = self.remote_session;
                    // The node's packet id is the bridge's own: the remote's ids start over with a new session.
                    publish.pkid = 0;
                    self.local.publish(publish, ack.map(|ack| ToLocal { ack, session }));
                }
                Event::Acked(sent) => {
                    Counters::add(&self.stats.acked, 1);
                    self.stats.observe_latency(sent.since.elapsed().as_micros() as u64);
                    if let Some(ack) = sent.ack {
                        self.local.ack(ack);
                    }
                }
                Event::Refused(sent, code, publish) => self.dead_letter(sent.ack, code, publish),
                // The remote's PUBREL of a message the node already took.
                Event::Released(pkid) => self.remote.complete(pkid),
                Event::Completed(pkid) => self.local.complete(pkid),
                Event::Subscribed(reasons) => {
                    self.check_suback("remote", &reasons);
                    self.remote_ready = true;
                    self.show_ready();
                }
            }
        }
        Ok(())
    }

    /// The local broker took a message from the remote: acknowledge it there, if the remote session it came in
    /// is still the remote's.
    fn owe_remote(&mut self, sent: ToLocal) {
        if sent.session == self.remote_session {
            self.ingress.remove(&sent.ack.pkid);
            self.remote.ack(sent.ack);
        }
    }

    fn remote_connected(&mut self, session_present: bool) {
        tracing::info!(bridge = %self.config.name, server = %self.config.server, session_present, "bridge connected");
        if !session_present {
            // The remote forgot the bridge's session: what it sent is acknowledged to nobody there, and its
            // packet ids start over.
            self.remote_session += 1;
            self.ingress.clear();
        }
        self.stats.set_error(None);
        self.remote_ready = self.config.subscribe.is_empty();
        self.show_ready();
        self.dial_started = None;
        self.backoff = Duration::from_millis(self.config.reconnect_min_ms);
        let resent = self.remote.in_flight() as u64;
        Counters::add(&self.stats.retried, resent);
        let qos = QoS::from_u8(self.config.qos).unwrap_or(QoS::AtLeastOnce);
        self.remote.subscribe(&self.config.subscribe, qos);
        while let Some(publish) = self.held.pop_front() {
            Counters::add(&self.stats.sent, 1);
            self.remote.publish(publish, None);
        }
    }

    fn egress(&mut self, mut publish: Publish, ack: Option<InboundAck>, now: Instant) {
        if publish.dup {
            Counters::add(&self.stats.duplicates, 1);
        }
        publish.topic = format!("{}{}", self.config.remote_prefix, publish.topic).into();
        strip_for(self.remote_protocol, &mut publish);
        match ack {
            Some(ack) => {
                Counters::add(&self.stats.sent, 1);
                self.remote.publish(
                    publish,
                    Some(ToRemote {
                        ack: Some(ack),
                        since: now,
                    }),
                );
            }
            None if self.remote.is_connected() => {
                Counters::add(&self.stats.sent, 1);
                self.remote.publish(publish, None);
            }
            // Read only while there is room (see `run`), so this holds at most QOS0_HOLD.
            None => self.held.push_back(publish),
        }
    }

    /// The remote refused a message for good: publish it on the dead-letter topic, with the reason, and
    /// acknowledge the original once that is done (its publishers were acknowledged long ago; now its copy
    /// in the dead-letter topic's subscribers' queues replaces it).
    fn dead_letter(&mut self, original: Option<InboundAck>, code: u8, publish: Publish) {
        Counters::add(&self.stats.failed, 1);
        let reason = format!(
            "remote refused: {} (0x{code:02x})",
            ractmq_codec::reason::describe(code)
        );
        tracing::warn!(bridge = %self.config.name, topic = %publish.topic, "dead-lettered: {reason}");
        // The topic as it was locally, without the remote prefix.
        let topic = publish
            .topic
            .strip_prefix(self.config.remote_prefix.as_str())
            .unwrap_or(&publish.topic);
        let properties = publish.properties.user_properties.clone();
        self.stats
            .letters
            .record(topic, publish.payload.clone(), &reason, properties);
        let topic = config::dlq_topic(&self.config.dlq_topic, &self.config.name, topic);
        let mut letter = Message::new(topic, publish.payload, QoS::AtLeastOnce, false);
        letter.properties = publish.properties;
        letter.properties.user_properties.push(("reason".into(), reason));
        letter
            .properties
            .user_properties
            .push(("bridge".into(), self.config.name.clone()));
        let (view, done) = (self.view.clone(), self.dead_letters_tx.clone());
        tokio::spawn(async move {
            view.publish(letter).await;
            let _ = done.send(original);
        });
    }

    /// Dead letters an operator asked to replay: sent again as new messages (QoS 1), acknowledged to nobody.
    fn replay(&mut self) {
        for letter in self.stats.letters.take_replays() {
            let publish = Publish {
                topic: format!("{}{}", self.config.remote_prefix, letter.topic).into(),
                qos: QoS::AtLeastOnce,
                payload: letter.bytes,
                properties: ractmq_codec::PublishProperties {
                    user_properties: letter.user_properties,
                    ..Default::default()
                },
                ..Publish::default()
            };
            Counters::add(&self.stats.retried, 1);
            Counters::add(&self.stats.sent, 1);
            let tag = ToRemote {
                ack: None,
                since: Instant::now(),
            };
            self.remote.publish(publish, Some(tag));
        }
    }

    /// `connected` in the counters means messages flow both ways: the remote is connected and both sides have
    /// their subscriptions.
    fn show_ready(&self) {
        let ready = self.local_ready && self.remote_ready;
        self.stats.connected.store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    fn check_suback(&self, side: &str, reasons: &[u8]) {
        if let Some(code) = reasons.iter().find(|&&r| r >= 0x80) {
            let why = format!("{side} broker refused a subscription (0x{code:02x})");
            tracing::error!(bridge = %self.config.name, "{why}");
            self.stats.set_error(Some(why));
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        let now = Instant::now();
        self.local.take_output(now, &mut self.packets);
        self.local_link
            .send(&mut self.packets)
            .await
            .map_err(|e| format!("local connection: {e}"))?;
        if let Some(link) = self.remote_link.as_mut() {
            self.remote.take_output(now, &mut self.packets);
            if let Err(e) = link.send(&mut self.packets).await {
                self.remote_down(format!("write: {e}"));
            }
        }
        Ok(())
    }

    async fn stop(mut self) -> Result<(), String> {
        self.packets.push(self.local.disconnect_packet());
        let _ = self.local_link.send(&mut self.packets).await;
        if let Some(link) = self.remote_link.as_mut() {
            self.packets.push(self.remote.disconnect_packet());
            let _ = link.send(&mut self.packets).await;
        }
        self.stats.connected.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// What the other side's protocol cannot carry is removed: 3.1.1 has no properties; a topic alias and
/// subscription identifiers belong to one connection.
fn strip_for(protocol: Protocol, publish: &mut Publish) {
    publish.properties.topic_alias = None;
    publish.properties.subscription_identifiers.clear();
    if !protocol.is_v5() {
        publish.properties = Default::default();
    }
}

async fn read_remote(link: &mut Option<Link>) -> std::io::Result<bool> {
    match link {
        Some(link) => link.read_more().await,
        None => std::future::pending().await,
    }
}

async fn poll_dial(dialing: &mut Option<Dial>) -> Result<(BoxRead, BoxWrite), String> {
    match dialing {
        Some(dial) => dial.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// `base` give or take a quarter, so that bridges of many nodes to one remote do not reconnect in step.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let quarter = (base.as_millis() as u64 / 4).max(1);
    let offset = nanos % (2 * quarter);
    Duration::from_millis((base.as_millis() as u64 + offset).saturating_sub(quarter).max(1))
}
