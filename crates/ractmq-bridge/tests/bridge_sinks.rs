//! Sink bridges end to end: a node with a bridge, MQTT publishers (rumqttc) on one side and a real HTTP server,
//! PostgreSQL or Kafka-protocol broker on the other. Each message the node acknowledged reaches the sink, through
//! failures of the sink and kills of the bridge; what fails past its retries is dead-lettered.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use ractmq_bridge::{BridgeConfig, Bridges, BridgesConfig, HttpConfig, KafkaConfig, PostgresConfig, SinkBridgeConfig};
use ractmq_broker::{Broker, BrokerConfig};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use support::kafka::{client, create_topic, read_partition, Tansu};
use support::postgres::PgServer;

const DEADLINE: Duration = Duration::from_secs(30);

async fn node_with(bridge: BridgeConfig) -> (Broker, Bridges) {
    let mut config = BridgesConfig::default();
    match bridge {
        BridgeConfig::Http(c) => config.http.push(c),
        BridgeConfig::Postgres(c) => config.postgres.push(c),
        BridgeConfig::Kafka(c) => config.kafka.push(c),
        BridgeConfig::Mqtt(c) => config.mqtt.push(c),
    }
    let broker = Broker::start(BrokerConfig {
        mqtt_listen: "127.0.0.1:0".parse().unwrap(),
        sys_interval: Duration::ZERO,
        ..BrokerConfig::default()
    })
    .await
    .unwrap();
    let bridges = Bridges::start(broker.view(), broker.bridges_tree().clone(), &config)
        .await
        .unwrap();
    let ready = bridges.clone();
    eventually("the bridge subscribed", move || ready.list()[0].stats.connected).await;
    (broker, bridges)
}

fn bridge<T>(name: &str, forward: &str, qos: u8, sink: T) -> SinkBridgeConfig<T> {
    SinkBridgeConfig {
        name: name.into(),
        forward: vec![forward.into()],
        qos,
        buffer: 100_000,
        overflow: Default::default(),
        dlq_topic: "$dlq/{bridge}/{topic}".into(),
        enabled: true,
        sink,
    }
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `range` as decimal payloads to `topic` over MQTT and waits for every acknowledgement.
async fn publish(addr: SocketAddr, topic: &str, range: std::ops::Range<u32>, qos: QoS) {
    let (client, mut events) = AsyncClient::new(MqttOptions::new("publisher", "127.0.0.1", addr.port()), 1000);
    let count = range.len();
    let topic = topic.to_string();
    tokio::spawn(async move {
        for n in range {
            client.publish(topic.clone(), qos, false, n.to_string()).await.unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < count {
        match tokio::time::timeout(DEADLINE, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            other => panic!("publisher: {other:?} after {acked} acknowledgements"),
        }
    }
}

/// An HTTP service that fails every third request with 503, answers 400 to paths with `bad` in them, and
/// records the messages of every request it took (2xx) by payload.
#[derive(Clone, Default)]
struct Hook {
    taken: Arc<Mutex<HashMap<String, usize>>>,
    requests: Arc<Mutex<u64>>,
    /// Take `bad` paths too (they are refused until this is set).
    mended: Arc<std::sync::atomic::AtomicBool>,
}

async fn hook(State(h): State<Hook>, uri: Uri, body: Bytes) -> StatusCode {
    let n = {
        let mut r = h.requests.lock().unwrap();
        *r += 1;
        *r
    };
    if uri.path().contains("bad") && !h.mended.load(std::sync::atomic::Ordering::Relaxed) {
        return StatusCode::BAD_REQUEST;
    }
    if n % 3 == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let records = match value {
        serde_json::Value::Array(a) => a,
        one => vec![one],
    };
    let mut taken = h.taken.lock().unwrap();
    for r in records {
        *taken.entry(r["payload"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    StatusCode::OK
}

impl Hook {
    async fn start() -> (Hook, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let h = Hook::default();
        let app = Router::new().fallback(hook).with_state(h.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (h, addr)
    }

    /// (numbers of 0..n missing, extra copies).
    fn tally(&self, n: u32) -> (usize, usize) {
        let taken = self.taken.lock().unwrap();
        let missing = (0..n).filter(|i| !taken.contains_key(&i.to_string())).count();
        let extra = taken.values().map(|c| c - 1).sum();
        (missing, extra)
    }
}

fn http_config(addr: SocketAddr) -> HttpConfig {
    HttpConfig {
        url: format!("http://{addr}/hook/${{topic}}"),
        batch_size: 10,
        retries: 5,
        retry_backoff_ms: 5,
        ..HttpConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_every_third_request_gets_every_message_once() {
    let (server, addr) = Hook::start().await;
    let (broker, bridges) = node_with(BridgeConfig::Http(bridge("hook", "alerts/#", 1, http_config(addr)))).await;
    publish(broker.mqtt_addr(), "alerts/door", 0..600, QoS::AtLeastOnce).await;
    eventually("the service took all 600", || server.tally(600).0 == 0).await;
    eventually("every message left the buffer", || {
        bridges.get("hook").unwrap().queued == 0
    })
    .await;
    assert_eq!(
        server.tally(600),
        (0, 0),
        "each message exactly once: a refused request took nothing"
    );
    let stats = bridges.get("hook").unwrap().stats;
    assert_eq!((stats.acked, stats.failed), (600, 0), "{stats:?}");
    assert!(
        stats.retried > 0,
        "every third request failed and was tried again: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_service_refuses_for_good_is_dead_lettered_with_the_reason() {
    let (server, addr) = Hook::start().await;
    let mut config = http_config(addr);
    config.batch_size = 1;
    let (broker, bridges) = node_with(BridgeConfig::Http(bridge("hook", "#", 1, config))).await;
    let mut letters = broker.subscribe("$dlq/hook/#", 16).await.unwrap();
    publish(broker.mqtt_addr(), "bad/input", 7..8, QoS::AtLeastOnce).await;
    publish(broker.mqtt_addr(), "alerts/fine", 8..9, QoS::AtLeastOnce).await;
    let letter = tokio::time::timeout(DEADLINE, letters.recv()).await.unwrap().unwrap();
    assert_eq!(&*letter.topic, "$dlq/hook/bad/input");
    assert_eq!(&letter.payload[..], b"7");
    let reason = letter
        .properties
        .user_properties
        .iter()
        .find(|(k, _)| k == "reason")
        .unwrap();
    assert!(reason.1.contains("400"), "{reason:?}");
    eventually("the good one arrived", || server.tally(9).0 == 8).await;
    eventually("counted", || bridges.get("hook").unwrap().stats.dead_lettered == 1).await;
    assert_eq!(bridges.get("hook").unwrap().stats.failed, 1);
}

/// `chaos kill bridge` while a webhook bridge works: nothing is lost; a batch the service took just before
/// a kill may be sent again, and each such copy was counted as a possible duplicate.
async fn killed_under_load(qos: QoS) {
    let (server, addr) = Hook::start().await;
    let (broker, bridges) = node_with(BridgeConfig::Http(bridge(
        "hook",
        "alerts/#",
        qos as u8,
        http_config(addr),
    )))
    .await;
    const N: u32 = 2000;
    let publishing = tokio::spawn(publish(broker.mqtt_addr(), "alerts/door", 0..N, qos));
    for kill in 1..=3u32 {
        eventually("the service is taking messages", || {
            server.taken.lock().unwrap().len() as u32 >= N * kill / 4
        })
        .await;
        assert!(bridges.kill("hook"));
    }
    publishing.await.unwrap();
    let state = || format!("{:?} missing; {:?}", server.tally(N), bridges.get("hook"));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while server.tally(N).0 != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service did not take all: {}",
            state()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually("every message left the buffer", || {
        bridges.get("hook").unwrap().queued == 0
    })
    .await;
    let (_, extra) = server.tally(N);
    let stats = bridges.get("hook").unwrap().stats;
    assert_eq!(stats.restarts, 3, "{stats:?}");
    assert!(extra as u64 <= stats.duplicates, "{extra} extra copies; {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_webhook_bridge_under_load_loses_nothing_at_qos1() {
    killed_under_load(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_webhook_bridge_under_load_loses_nothing_at_qos2() {
    killed_under_load(QoS::ExactlyOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_gets_one_row_per_message_through_an_outage() {
    let mut db = PgServer::start().await;
    let sql = db.client().await;
    sql.batch_execute("CREATE TABLE readings (topic text NOT NULL, n int NOT NULL, qos int NOT NULL)")
        .await
        .unwrap();
    let mut config = PostgresConfig::new(
        db.url(),
        "INSERT INTO readings (topic, n, qos) VALUES (${topic}, ${payload}, ${qos})",
    );
    config.batch_size = 50;
    config.retries = 30;
    config.retry_backoff_ms = 20;
    let (broker, bridges) = node_with(BridgeConfig::Postgres(bridge("db", "meters/#", 1, config))).await;
    const N: u32 = 1000;
    publish(broker.mqtt_addr(), "meters/1", 0..N / 2, QoS::AtLeastOnce).await;
    drop(sql);
    db.stop();
    // Acknowledged while the database is down: in the bridge's buffer.
    publish(broker.mqtt_addr(), "meters/1", N / 2..N, QoS::AtLeastOnce).await;
    db.restart().await;
    let sql = db.client().await;
    let count = || async {
        sql.query_one("SELECT count(*) FROM readings", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while count().await < i64::from(N) {
        assert!(tokio::time::Instant::now() < deadline, "{} rows of {N}", count().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = sql
        .query_one(
            "SELECT count(*), count(DISTINCT n), min(n), max(n) FROM readings WHERE topic = 'meters/1' AND qos = 1",
            &[],
        )
        .await
        .unwrap();
    let got: (i64, i64, i32, i32) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        got,
        (i64::from(N), i64::from(N), 0, N as i32 - 1),
        "one row per message"
    );
    let stats = bridges.get("db").unwrap().stats;
    assert!(stats.retried > 0, "the outage was retried through: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_gets_every_message_in_order() {
    let tansu = Tansu::start("bridge").await;
    let kafka = client(&tansu.addr()).await.unwrap();
    create_topic(&kafka, "readings", 1).await;
    let mut config = KafkaConfig::new(vec![tansu.addr()], "readings".to_string());
    config.batch_size = 50;
    let (broker, bridges) = node_with(BridgeConfig::Kafka(bridge("stream", "sensors/#", 1, config))).await;
    const N: u32 = 500;
    publish(broker.mqtt_addr(), "sensors/a", 0..N, QoS::AtLeastOnce).await;
    eventually("the bridge produced all", || {
        bridges.get("stream").unwrap().stats.acked == u64::from(N)
    })
    .await;
    let records = read_partition(&kafka, "readings", 0).await;
    let values: Vec<u32> = (records.iter())
        .map(|r| {
            String::from_utf8(r.record.value.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        values,
        (0..N).collect::<Vec<_>>(),
        "each message once, in the order published"
    );
    assert!(records
        .iter()
        .all(|r| r.record.key.as_deref() == Some(&b"sensors/a"[..])));
}

/// Dead letters are listed, and replayed once the service takes them: each then arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed() {
    let (server, addr) = Hook::start().await;
    let mut config = http_config(addr);
    config.batch_size = 1;
    let (broker, bridges) = node_with(BridgeConfig::Http(bridge("hook", "#", 1, config))).await;
    publish(broker.mqtt_addr(), "bad/a", 0..3, QoS::AtLeastOnce).await;
    eventually("three dead letters", || {
        bridges.dead_letters("hook").unwrap().len() == 3
    })
    .await;
    let letters = bridges.dead_letters("hook").unwrap();
    let mut payloads: Vec<_> = letters.iter().map(|l| l.payload.clone().unwrap()).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        ["0", "1", "2"],
        "in the order they failed, which concurrent sends decide"
    );
    assert!(
        letters.iter().all(|l| l.topic == "bad/a" && l.reason.contains("400")),
        "{letters:?}"
    );
    server.mended.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(bridges.replay("hook", Some(&[letters[1].id])).unwrap(), 1);
    eventually("the replayed one arrived", || server.tally(3) == (2, 0)).await;
    assert_eq!(bridges.replay("hook", None).unwrap(), 2);
    eventually("all arrived", || server.tally(3) == (0, 0)).await;
    assert!(bridges.dead_letters("hook").unwrap().is_empty());
    assert_eq!(bridges.get("hook").unwrap().stats.dead_lettered, 3);
}
