//! QoS 2, exactly once: a PUBLISH re-sent before PUBREL is acknowledged again but delivered once; and every
//! message whose PUBCOMP the publisher received is delivered exactly once when the subscriber's session actor,
//! the publisher's, or every session (the session supervisor escalating) is killed with QoS 2 exchanges open.
//!
//! The clients of the kill tests are raw 3.1.1 clients with persistent sessions that keep their side of each
//! QoS 2 exchange across connections, as the specification asks of them: the publisher sends again what got no
//! PUBREC (DUP) and the PUBRELs that got no PUBCOMP [MQTT-4.4.0-1]; the subscriber remembers the packet ids it
//! acknowledged with PUBREC until their PUBREL, and does not deliver a PUBLISH with such an id again
//! [MQTT-4.3.3-2]. rumqttc cannot play either part across a new connection (a fresh event loop answers a
//! PUBREL it has no record of with an error), so every duplicate counted here is one the broker made.

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use common::load::{assert_each_once, numbered};
use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::{Protocol, RestartPolicy};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_resent_qos2_publish_is_not_delivered_twice() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("x/#", QoS::ExactlyOnce).await;

    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311("pub")).await;
    raw.read_exact(4).await;
    raw.send(&publish_v311("x/once", 2, 5, false, b"one")).await;
    assert_eq!(raw.read_exact(4).await, vec![0x50, 0x02, 0x00, 0x05], "PUBREC");
    raw.send(&publish_v311("x/once", 2, 5, true, b"one")).await; // DUP re-send before PUBREL
    assert_eq!(raw.read_exact(4).await, vec![0x50, 0x02, 0x00, 0x05], "PUBREC again");
    raw.send(&[0x62, 0x02, 0x00, 0x05]).await; // PUBREL
    assert_eq!(raw.read_exact(4).await, vec![0x70, 0x02, 0x00, 0x05], "PUBCOMP");
    raw.send(&publish_v311("x/marker", 0, 0, false, b"")).await;

    let got = sub.publishes_until("x/marker").await;
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].payload.as_ref(), b"one");
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
    broker.shutdown().await;
}

/// Numbered messages each kill test publishes, and the topics they go to.
const MESSAGES: u32 = 3000;
/// Messages delivered (or published) before the kill: the rest, more than a subscriber's queue holds on the
/// defaults (1,000), cannot all have been taken yet, so the publisher is mid-stream.
const KILL_AFTER: u32 = 500;
const TOPIC: &str = "q2/t";
const END: &str = "q2/end";
/// QoS 2 exchanges the publisher keeps open at a time.
const WINDOW: usize = 32;

/// One connection of a raw 3.1.1 client with Clean Session 0 and no keepalive.
struct Conn {
    id: &'static str,
    stream: BufStream<TcpStream>,
}

impl Conn {
    /// Connect as `id`: `Some(session present)` once accepted, `None` if refused or closed (a broker whose
    /// session supervisor is being restarted refuses with return code 3 for that moment).
    async fn open(addr: SocketAddr, id: &'static str) -> Option<(Conn, bool)> {
        let stream = TcpStream::connect(addr).await.ok()?;
        let mut conn = Conn {
            id,
            stream: BufStream::new(stream),
        };
        conn.send(&connect_packet(Protocol::V3_1_1, |c| {
            c.client_id = id.into();
            c.clean_start = false;
            c.keep_alive = 0;
        }))
        .await;
        let connack = conn.frame().await?;
        assert_eq!(connack[..2], [0x20, 0x02], "{id}: CONNACK");
        (connack[3] == 0).then_some((conn, connack[2] & 1 == 1))
    }

    /// Connect again, as soon as the broker accepts; the session must be there.
    async fn resume(addr: SocketAddr, id: &'static str) -> Conn {
        let started = Instant::now();
        loop {
            if let Some((conn, present)) = Conn::open(addr, id).await {
                assert!(present, "{id}: CONNACK Session Present: the session survived");
                return conn;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{id}: not accepted again within {DEADLINE:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Send bytes; a connection the broker closed shows on the next read.
    async fn send(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).await.is_ok() {
            let _ = self.stream.flush().await;
        }
    }

    /// Read, without answering, until the broker closes the connection (panics if it does not).
    async fn drain(&mut self) {
        while self.frame().await.is_some() {}
    }

    /// The next whole packet, or `None` once the broker closed the connection.
    async fn frame(&mut self) -> Option<Vec<u8>> {
        match tokio::time::timeout(DEADLINE, read_frame(&mut self.stream)).await {
            Ok(frame) => frame.ok(),
            Err(_) => panic!("{}: nothing from the broker within {DEADLINE:?}", self.id),
        }
    }
}

async fn read_frame(stream: &mut BufStream<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut frame = vec![stream.read_u8().await?];
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = stream.read_u8().await?;
        frame.push(b);
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let start = frame.len();
    frame.resize(start + len, 0);
    stream.read_exact(&mut frame[start..]).await?;
    Ok(frame)
}

/// The packet id of an ack (PUBREC, PUBREL, PUBCOMP).
fn ack_id(frame: &[u8]) -> u16 {
    assert_eq!(frame.len(), 4, "a 3.1.1 ack: {frame:02x?}");
    u16::from_be_bytes([frame[2], frame[3]])
}

/// A QoS 2 publisher of numbered messages on a persistent session.
struct Sender {
    addr: SocketAddr,
    id: &'static str,
    conn: Conn,
    next: u32,
    /// PUBLISH sent, no PUBREC yet (packet id to number; the end marker is `u32::MAX`).
    unacked: BTreeMap<u16, u32>,
    /// PUBREL sent, no PUBCOMP yet.
    released: BTreeMap<u16, u32>,
    /// Numbers whose PUBCOMP came: the broker has taken them for good.
    completed: Vec<u32>,
    reconnects: usize,
}

impl Sender {
    async fn connect(addr: SocketAddr, id: &'static str) -> Sender {
        let (conn, _) = Conn::open(addr, id).await.expect("the publisher connects");
        Sender {
            addr,
            id,
            conn,
            next: 0,
            unacked: BTreeMap::new(),
            released: BTreeMap::new(),
            completed: Vec::new(),
            reconnects: 0,
        }
    }

    fn in_flight(&self) -> usize {
        self.unacked.len() + self.released.len()
    }

    fn pkid(n: u32) -> u16 {
        match n {
            u32::MAX => 65_535,
            n => (n % 65_000) as u16 + 1,
        }
    }

    async fn send_publish(&mut self, n: u32, dup: bool) {
        let (topic, payload) = match n {
            u32::MAX => (END, vec![0]),
            n => (TOPIC, numbered(0, n, 5)),
        };
        self.conn
            .send(&publish_v311(topic, 2, Sender::pkid(n), dup, &payload))
            .await;
    }

    /// Publish up to number `until` (excluded), with at most [`WINDOW`] exchanges open.
    async fn publish_until(&mut self, until: u32) {
        while self.next < until {
            if self.in_flight() < WINDOW {
                let n = self.next;
                self.unacked.insert(Sender::pkid(n), n);
                self.send_publish(n, false).await;
                self.next += 1;
            } else {
                self.step().await;
            }
        }
    }

    /// Publish the end marker and wait until every exchange is complete.
    async fn finish(&mut self) {
        self.unacked.insert(Sender::pkid(u32::MAX), u32::MAX);
        self.send_publish(u32::MAX, false).await;
        while self.in_flight() > 0 {
            self.step().await;
        }
    }

    /// Connect again and go on with every open exchange [MQTT-4.4.0-1]: PUBREL again what got no PUBCOMP,
    /// PUBLISH again (DUP) what got no PUBREC.
    async fn resume(&mut self) {
        self.conn = Conn::resume(self.addr, self.id).await;
        self.reconnects += 1;
        for &pkid in self.released.keys() {
            self.conn.send(&[0x62, 0x02, (pkid >> 8) as u8, pkid as u8]).await;
        }
        let unacked: Vec<u32> = self.unacked.values().copied().collect();
        for n in unacked {
            self.send_publish(n, true).await;
        }
    }

    /// Read one packet and answer it; if the broker closed the connection, resume the session.
    async fn step(&mut self) {
        let Some(frame) = self.conn.frame().await else {
            return self.resume().await;
        };
        let pkid = ack_id(&frame);
        match frame[0] {
            0x50 => {
                // PUBREC: release it.
                let n = self.unacked.remove(&pkid);
                let n = n.unwrap_or_else(|| panic!("{}: PUBREC for {pkid}, which awaits none", self.id));
                self.released.insert(pkid, n);
                self.conn.send(&[0x62, 0x02, frame[2], frame[3]]).await;
            }
            0x70 => {
                let n = self.released.remove(&pkid);
                let n = n.unwrap_or_else(|| panic!("{}: PUBCOMP for {pkid}, which awaits none", self.id));
                if n != u32::MAX {
                    self.completed.push(n);
                }
            }
            _ => panic!("{}: unexpected {frame:02x?}", self.id),
        }
    }
}

/// A QoS 2 subscriber to `q2/#` on a persistent session, counting what it delivers.
struct Receiver {
    addr: SocketAddr,
    id: &'static str,
    conn: Conn,
    /// Packet ids acknowledged with PUBREC whose PUBREL has not come: a PUBLISH with one of them is the same
    /// message sent again.
    unreleased: HashSet<u16>,
    /// How often each numbered message was delivered (publisher 0, number).
    counts: HashMap<(u8, u32), usize>,
    delivered: usize,
    ended: bool,
    reconnects: usize,
}

impl Receiver {
    async fn connect(addr: SocketAddr, id: &'static str) -> Receiver {
        let (mut conn, _) = Conn::open(addr, id).await.expect("the subscriber connects");
        conn.send(&subscribe_v311(1, "q2/#", 2)).await;
        assert_eq!(
            conn.frame().await,
            Some(vec![0x90, 0x03, 0x00, 0x01, 0x02]),
            "SUBACK QoS 2"
        );
        Receiver {
            addr,
            id,
            conn,
            unreleased: HashSet::new(),
            counts: HashMap::new(),
            delivered: 0,
            ended: false,
            reconnects: 0,
        }
    }

    /// Read and answer packets until `done`; resume the session whenever the broker closes the connection.
    async fn until(&mut self, done: impl Fn(&Receiver) -> bool) {
        while !done(self) {
            self.step().await;
        }
    }

    async fn step(&mut self) {
        let Some(frame) = self.conn.frame().await else {
            // The broker sends again what it has in flight: PUBLISH (DUP) or PUBREL.
            self.conn = Conn::resume(self.addr, self.id).await;
            self.reconnects += 1;
            return;
        };
        match frame[0] & 0xf0 {
            0x30 => {
                let (dup, qos) = (frame[0] & 0x08 != 0, (frame[0] >> 1) & 0x03);
                assert_eq!(qos, 2, "{}: delivered at QoS 2: {frame:02x?}", self.id);
                let len_bytes = frame[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
                let body = &frame[1 + len_bytes..];
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = std::str::from_utf8(&body[2..2 + topic_len]).unwrap();
                let pkid = u16::from_be_bytes([body[2 + topic_len], body[3 + topic_len]]);
                let payload = &body[4 + topic_len..];
                if self.unreleased.insert(pkid) {
                    if topic == END {
                        self.ended = true;
                    } else {
                        let key = (payload[0], u32::from_be_bytes(payload[1..5].try_into().unwrap()));
                        *self.counts.entry(key).or_insert(0) += 1;
                        self.delivered += 1;
                    }
                } else {
                    assert!(
                        dup,
                        "{}: packet id {pkid} again before its PUBREL: a re-send, which carries DUP [MQTT-3.3.1-1]",
                        self.id
                    );
                }
                let pkid = pkid.to_be_bytes();
                self.conn.send(&[0x50, 0x02, pkid[0], pkid[1]]).await; // PUBREC
            }
            0x60 => {
                self.unreleased.remove(&ack_id(&frame));
                self.conn.send(&[0x70, 0x02, frame[2], frame[3]]).await; // PUBCOMP
            }
            _ => panic!("{}: unexpected {frame:02x?}", self.id),
        }
    }
}

/// Every message was completed (PUBCOMP) and delivered exactly once.
fn assert_completed_and_delivered_once(sender: &Sender, receiver: &Receiver) {
    let mut completed = sender.completed.clone();
    completed.sort_unstable();
    assert_eq!(
        completed,
        (0..MESSAGES).collect::<Vec<_>>(),
        "the publisher got one PUBCOMP for each message"
    );
    assert_each_once(&receiver.counts, 1, MESSAGES, "the QoS 2 subscriber");
}

/// A broker whose offline queues hold every message of these tests: while a killed session's client is away,
/// its queue is bounded by the offline limits and drops the oldest beyond them, as configured; that is not what
/// these tests are about, and each checks that nothing was dropped.
fn roomy_config() -> ractmq::BrokerConfig {
    let mut config = test_config();
    config.limits.max_offline_queue_len = 100_000;
    config
}

/// Nothing was dropped anywhere: every message is accounted for by delivery alone.
fn assert_nothing_dropped(broker: &ractmq::Broker) {
    assert_eq!(broker.metrics().dropped_total(), 0, "nothing dropped by a queue bound");
}

/// Publish [`MESSAGES`] and the end marker as `q2-pub` in a task of its own.
fn publish_all(addr: SocketAddr) -> tokio::task::JoinHandle<Sender> {
    tokio::spawn(async move {
        let mut sender = Sender::connect(addr, "q2-pub").await;
        sender.publish_until(MESSAGES).await;
        sender.finish().await;
        sender
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_qos2_subscribers_session_mid_stream_delivers_each_completed_message_once() {
    let broker = start_with(roomy_config()).await;
    let addr = broker.mqtt_addr();
    let mut receiver = Receiver::connect(addr, "q2-sub").await;
    let publishing = publish_all(addr);
    receiver.until(|r| r.delivered >= KILL_AFTER as usize).await;
    assert!(
        !receiver.unreleased.is_empty() && !publishing.is_finished(),
        "killed mid-stream: exchanges open on both sides"
    );
    assert!(broker.chaos().kill_session("q2-sub").await);
    receiver.until(|r| r.ended).await;
    let sender = publishing.await.unwrap();
    assert_eq!(receiver.reconnects, 1, "the kill closed the subscriber's connection");
    assert_eq!(sender.reconnects, 0, "the publisher's connection was not touched");
    assert_eq!(Metrics::get(&broker.metrics().session_restarts), 1);
    assert_nothing_dropped(&broker);
    assert_completed_and_delivered_once(&sender, &receiver);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_qos2_publishers_session_mid_stream_delivers_each_completed_message_once() {
    let broker = start_with(roomy_config()).await;
    let addr = broker.mqtt_addr();
    let mut receiver = Receiver::connect(addr, "q2-sub").await;
    let receiving = tokio::spawn(async move {
        receiver.until(|r| r.ended).await;
        receiver
    });
    let mut sender = Sender::connect(addr, "q2-pub").await;
    sender.publish_until(KILL_AFTER).await;
    // The broker has taken every PUBLISH sent so far, among them some whose PUBREC the publisher has not read.
    eventually("the broker routed every message sent so far", || {
        Metrics::get(&broker.metrics().messages_received) == u64::from(KILL_AFTER)
    })
    .await;
    assert_eq!(
        sender.in_flight(),
        WINDOW,
        "killed mid-stream: a window of exchanges open"
    );
    assert!(!sender.unacked.is_empty(), "some of them without PUBREC");
    assert!(broker.chaos().kill_session("q2-pub").await);
    // The acks the broker sent before the kill are lost with the connection, as when a network fails: the
    // publisher sends those PUBLISHes again (DUP), which the broker has routed already, and PUBRELs again.
    sender.conn.drain().await;
    sender.resume().await;
    sender.publish_until(MESSAGES).await;
    sender.finish().await;
    let receiver = receiving.await.unwrap();
    assert_eq!(sender.reconnects, 1, "the publisher connected again once");
    assert_eq!(receiver.reconnects, 0, "the subscriber's connection was not touched");
    assert_eq!(Metrics::get(&broker.metrics().session_restarts), 1);
    assert_nothing_dropped(&broker);
    assert_completed_and_delivered_once(&sender, &receiver);
    broker.shutdown().await;
}

/// The session supervisor exceeds its restart intensity while QoS 2 traffic flows: the root restarts it, it
/// restarts every session from the store, the publisher's and the subscriber's included, and both resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_traffic_through_a_session_supervisor_escalation_is_delivered_once() {
    let mut config = roomy_config();
    config.session_restarts = RestartPolicy::new(1, 60);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut bystanders = Vec::new();
    for id in ["a", "b"] {
        bystanders.push(Conn::open(addr, id).await.expect("a bystander connects"));
    }
    let mut receiver = Receiver::connect(addr, "q2-sub").await;
    let publishing = publish_all(addr);
    receiver.until(|r| r.delivered >= KILL_AFTER as usize).await;
    assert!(
        !receiver.unreleased.is_empty() && !publishing.is_finished(),
        "escalated mid-stream: exchanges open on both sides"
    );

    assert!(broker.chaos().panic_session("a").await);
    eventually("a restarted alone", || {
        Metrics::get(&broker.metrics().session_restarts) == 1
    })
    .await;
    let other_restarts = Metrics::get(&broker.metrics().other_restarts);
    assert!(broker.chaos().panic_session("b").await);
    eventually("the root restarted the session supervisor", || {
        Metrics::get(&broker.metrics().other_restarts) == other_restarts + 1
    })
    .await;

    receiver.until(|r| r.ended).await;
    let sender = publishing.await.unwrap();
    // A client that comes back while the supervisors restart may find its new connection closed once more.
    assert!(
        receiver.reconnects >= 1,
        "the escalation closed the subscriber's connection"
    );
    assert!(
        sender.reconnects >= 1,
        "the escalation closed the publisher's connection"
    );
    assert_nothing_dropped(&broker);
    assert_completed_and_delivered_once(&sender, &receiver);
    broker.shutdown().await;
}
