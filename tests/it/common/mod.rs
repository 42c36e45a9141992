//! Shared helpers for the integration tests: a broker on a free loopback port, and real MQTT clients
//! (rumqttc) wrapped so that a test waits for events instead of sleeping.
#![allow(dead_code)]

pub mod cluster;
pub mod load;
pub mod mosquitto;
pub mod process;
pub mod proxy;

use std::net::SocketAddr;
use std::time::Duration;

use ractmq::{Broker, BrokerConfig};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;

/// How long a test waits for something that must happen before it declares failure.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn test_config() -> BrokerConfig {
    BrokerConfig {
        mqtt_listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    }
}

pub async fn start_broker() -> Broker {
    start_with(test_config()).await
}

pub async fn start_with(config: BrokerConfig) -> Broker {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    Broker::start(config).await.expect("broker starts")
}

/// A rumqttc 3.1.1 client whose events are collected on a channel.
///
/// Dropping it closes its connection as soon as the broker sends it anything: its event loop stops when nobody
/// takes its events, and with it whatever [`Client::publish`] queued that rumqttc had not written yet. A test
/// that needs its last publishes to arrive waits for their acknowledgements before dropping the client.
pub struct Client {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<Packet, String>>,
    task: tokio::task::JoinHandle<()>,
}

pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(2 * 1024 * 1024, 2 * 1024 * 1024);
    o
}

impl Client {
    /// Connect with clean session and wait for CONNACK.
    pub async fn connect(addr: SocketAddr, id: &str) -> Client {
        Client::connect_with(options(addr, id)).await
    }

    pub async fn connect_with(opts: MqttOptions) -> Client {
        let mut c = Client::start(opts);
        c.expect_connack().await;
        c
    }

    /// Start the event loop without waiting for anything.
    pub fn start(opts: MqttOptions) -> Client {
        let (client, eventloop) = AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        Client { client, events, task }
    }

    pub async fn next(&mut self) -> Result<Packet, String> {
        match tokio::time::timeout(DEADLINE, self.events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => Err("event loop ended".into()),
            Err(_) => panic!("no MQTT event within {DEADLINE:?}"),
        }
    }

    /// Wait for the next packet matching `pick`, skipping others (acks, pings).
    pub async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Ok(p) => {
                    if let Some(t) = pick(&p) {
                        return t;
                    }
                }
                Err(e) => panic!("connection ended while waiting for {what}: {e}"),
            }
        }
    }

    pub async fn expect_connack(&mut self) -> rumqttc::ConnAck {
        self.expect("CONNACK", |p| match p {
            Packet::ConnAck(a) => Some(a.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_publish(&mut self) -> Publish {
        self.expect("PUBLISH", |p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    pub async fn expect_suback(&mut self) -> rumqttc::SubAck {
        self.expect("SUBACK", |p| match p {
            Packet::SubAck(a) => Some(a.clone()),
            _ => None,
        })
        .await
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> rumqttc::SubAck {
        self.client.subscribe(filter, qos).await.unwrap();
        self.expect_suback().await
    }

    /// Queue a PUBLISH for the event loop to write (it may not be on the wire yet when this returns).
    pub async fn publish(&self, topic: &str, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, qos, retain, payload.into()).await.unwrap();
    }

    /// Wait until the connection ends; returns the error text.
    pub async fn expect_disconnect(&mut self) -> String {
        loop {
            if let Err(e) = self.next().await {
                return e;
            }
        }
    }

    /// Publishes received until (and excluding) one on `marker_topic`: a barrier that proves everything
    /// published before the marker was either delivered or not, without sleeping.
    pub async fn publishes_until(&mut self, marker_topic: &str) -> Vec<Publish> {
        let mut got = Vec::new();
        loop {
            let p = self.expect_publish().await;
            if p.topic == marker_topic {
                return got;
            }
            got.push(p);
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Packet, String>>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                // rumqttc acknowledges what it read before handing it over: packets read in the same batch
                // as the failure are still queued, and an application that polled on would see them.
                for event in eventloop.state.events.drain(..) {
                    if let Event::Incoming(p) = event {
                        let _ = tx.send(Ok(p));
                    }
                }
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    }
}

/// The latest a client silent since its CONNECT (sent at `connect_sent`) may be closed by: the broker must
/// close it after 1.5 x `keep_alive` [MQTT-3.1.2-24], and it checks with the granularity its reader documents
/// (`KEEPALIVE_SLACK` after the limit, and once more `KEEPALIVE_RECHECK` later if the session's clock, which
/// started a little later, disagrees). A test measuring from before the CONNECT left measures no less than
/// the broker's silence.
pub fn assert_closed_within_keepalive(connect_sent: std::time::Instant, keep_alive: Duration, what: &str) {
    use ractmq::parts::broker::{KEEPALIVE_RECHECK, KEEPALIVE_SLACK};
    let bound = keep_alive.mul_f32(1.5) + KEEPALIVE_SLACK + KEEPALIVE_RECHECK;
    let took = connect_sent.elapsed();
    assert!(
        took <= bound,
        "{what}: closed {took:?} after CONNECT, later than 1.5 x {keep_alive:?} and the check's granularity ({bound:?})"
    );
}

/// Wait until `cond` holds, polling a broker-side fact; panics after the deadline.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_within(DEADLINE, what, cond).await
}

/// [`eventually`] with another deadline (for facts that take whole processes starting or heartbeats
/// missing).
pub async fn eventually_within(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Make `client_id` a persistent session subscribed to `filter` at QoS 1 whose client has left, and wait until
/// the broker has it offline.
pub async fn leave_offline_session(broker: &Broker, client_id: &str, filter: &str) {
    let mut o = options(broker.mqtt_addr(), client_id);
    o.set_clean_session(false);
    let mut client = Client::connect_with(o).await;
    client.subscribe(filter, QoS::AtLeastOnce).await;
    client.client.disconnect().await.unwrap();
    client.expect_disconnect().await;
    eventually("the session is offline", || {
        broker.view().client(client_id).is_some_and(|c| !c.connected)
    })
    .await;
}

/// The value of `name` in a FIELD/VALUE table printed by `ractmq ctl`.
pub fn field(table: &str, name: &str) -> String {
    table
        .lines()
        .find_map(|row| {
            let mut cells = row.split_whitespace();
            (cells.next() == Some(name)).then(|| cells.collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| panic!("no {name} in {table}"))
}

/// A SUBSCRIBE (packet id 1) to each of `filters` at QoS 1, for a raw client.
pub fn subscribe_packet(filters: &[&str]) -> ractmq::parts::codec::Packet {
    use ractmq::parts::codec::{Packet, Subscribe, SubscriptionRequest};
    Packet::Subscribe(Subscribe {
        pkid: 1,
        filters: filters
            .iter()
            .map(|f| SubscriptionRequest {
                filter: (*f).into(),
                qos: ractmq::QoS::AtLeastOnce,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// A raw TCP connection for tests that need byte-level control.
pub struct Raw {
    pub stream: Box<dyn ByteStream>,
}

/// What a raw client talks over: TCP, TLS or a WebSocket seen as bytes.
pub trait ByteStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ByteStream for T {}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::over(tokio::net::TcpStream::connect(addr).await.unwrap())
    }

    pub fn over(stream: impl ByteStream + 'static) -> Raw {
        Raw {
            stream: Box::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        // The broker may already have closed the socket; tests check that separately.
        if self.stream.write_all(bytes).await.is_ok() {
            let _ = self.stream.flush().await;
        }
    }

    /// Encode and send a client packet with the project's codec.
    pub async fn send_packet(&mut self, packet: ractmq::parts::codec::Packet, protocol: ractmq::Protocol) {
        let mut buf = bytes::BytesMut::new();
        ractmq::parts::codec::encode(&packet, protocol, &mut buf).unwrap();
        self.send(&buf).await;
    }

    /// Read exactly `n` bytes (panics on EOF or after the deadline).
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; n];
        tokio::time::timeout(DEADLINE, self.stream.read_exact(&mut buf))
            .await
            .expect("bytes within the deadline")
            .expect("bytes before EOF");
        buf
    }

    /// Read one whole MQTT packet (fixed header included).
    pub async fn read_frame(&mut self) -> Vec<u8> {
        let mut frame = self.read_exact(2).await;
        let mut len = usize::from(frame[1] & 0x7f);
        let mut shift = 7;
        while frame.last().is_some_and(|b| b & 0x80 != 0) {
            let b = self.read_exact(1).await[0];
            frame.push(b);
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
        }
        let body = self.read_exact(len).await;
        frame.extend(body);
        frame
    }

    /// Read until the broker closes the connection; returns what it sent first.
    pub async fn read_until_closed(&mut self) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(DEADLINE, self.stream.read(&mut buf)).await {
                Err(_) => panic!("broker did not close the connection within {DEADLINE:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => return all,
                Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// A 3.1.1 CONNECT with clean session and keepalive 60.
pub fn connect_v311(id: &str) -> Vec<u8> {
    raw_connect(4, id)
}

/// A 5.0 CONNECT with clean start, keepalive 60 and no properties.
pub fn connect_v5(id: &str) -> Vec<u8> {
    raw_connect(5, id)
}

/// CONNECT of protocol `level` (4 or 5), clean start, keepalive 60, no will, credentials or properties.
fn raw_connect(level: u8, id: &str) -> Vec<u8> {
    let properties: &[u8] = if level == 5 { &[0] } else { &[] };
    let variable = [&[0, 4][..], b"MQTT", &[level, 0x02, 0, 60], properties].concat();
    let mut v = vec![0x10, (variable.len() + 2 + id.len()) as u8];
    v.extend_from_slice(&variable);
    v.extend_from_slice(&(id.len() as u16).to_be_bytes());
    v.extend_from_slice(id.as_bytes());
    v
}

/// A 3.1.1 CONNECT with clean session, the given keepalive and a QoS 0 will.
pub fn connect_v311_will(id: &str, keep_alive: u16, will_topic: &str, will_msg: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02 | 0x04];
    body.extend_from_slice(&keep_alive.to_be_bytes());
    for field in [id.as_bytes(), will_topic.as_bytes(), will_msg.as_bytes()] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field);
    }
    let mut v = vec![0x10, body.len() as u8];
    v.extend_from_slice(&body);
    v
}

/// Encode a CONNECT with the project's codec (client side).
pub fn connect_packet(protocol: ractmq::Protocol, tweak: impl FnOnce(&mut ractmq::parts::codec::Connect)) -> Vec<u8> {
    let mut c = ractmq::parts::codec::Connect {
        protocol: Some(protocol),
        clean_start: true,
        keep_alive: 60,
        client_id: "raw".into(),
        ..Default::default()
    };
    tweak(&mut c);
    let mut buf = bytes::BytesMut::new();
    ractmq::parts::codec::encode_client(&ractmq::parts::codec::Packet::Connect(Box::new(c)), protocol, &mut buf)
        .unwrap();
    buf.to_vec()
}

/// A 3.1.1 SUBSCRIBE for one filter.
pub fn subscribe_v311(pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut v = vec![0x82, (2 + 2 + filter.len() + 1) as u8];
    v.extend_from_slice(&pkid.to_be_bytes());
    v.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    v.extend_from_slice(filter.as_bytes());
    v.push(qos);
    v
}

/// A 3.1.1 PUBLISH.
pub fn publish_v311(topic: &str, qos: u8, pkid: u16, dup: bool, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut v = vec![0x30 | (qos << 1) | if dup { 0x08 } else { 0 }];
    // Remaining length, 7 bits a byte, least significant first.
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        v.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    v.extend_from_slice(&body);
    v
}

/// The reason code and reason string of a 5.0 DISCONNECT (`bytes` is the whole packet); panics if it is not
/// one.
pub fn v5_disconnect(bytes: &[u8]) -> (u8, Option<String>) {
    assert_eq!(bytes.first(), Some(&0xe0), "expected DISCONNECT, got {bytes:02x?}");
    let len = usize::from(bytes[1]);
    assert!(
        bytes[1] < 0x80 && bytes.len() == 2 + len,
        "one short DISCONNECT: {bytes:02x?}"
    );
    if len == 0 {
        return (0, None);
    }
    let mut reason_string = None;
    if len > 1 {
        let props = &bytes[4..4 + usize::from(bytes[3])];
        let mut i = 0;
        while i < props.len() {
            let id = props[i];
            let n = usize::from(u16::from_be_bytes([props[i + 1], props[i + 2]]));
            let text = String::from_utf8(props[i + 3..i + 3 + n].to_vec()).unwrap();
            if id == 0x1f {
                reason_string = Some(text);
            }
            i += 3 + n;
        }
    }
    (bytes[2], reason_string)
}
