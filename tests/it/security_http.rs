//! Authorization by an HTTP service (EMQX's HTTP authorizer) over real sockets: an axum service in the test
//! answers by topic and counts what it is asked. Its allow and deny decide publishes, subscriptions and wills
//! for 3.1.1 and 5.0 clients as an ACL's would; its ignore, an error or a timeout leaves the no-match default;
//! the ACL file decides first; answers are cached per client; a slow service holds only the client that
//! waits for it; and no more requests are open at once than configured.

use crate::common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use ractmq::parts::auth::http_auth::{HttpAuthConfig, HttpAuthSource};
use ractmq::parts::broker::Metrics;
use ractmq::parts::codec::{Packet as Wire, Publish as WirePublish};
use ractmq::{BrokerConfig, Protocol};
use rumqttc::{Packet, QoS, SubscribeReasonCode};
use serde_json::{json, Value};

/// The service: what it was asked, and how many requests it had open at most.
#[derive(Default)]
struct Service {
    requests: Mutex<Vec<Value>>,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

impl Service {
    /// Requests about `topic` from `client` for `action`.
    fn asked(&self, client: &str, action: &str, topic: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r["clientid"] == client && r["action"] == action && r["topic"] == topic)
            .count()
    }

    fn total(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// allowed/... allow, denied/... deny, empty/... 204, error/... 500, slow/... later than any timeout here,
/// gate/... after 50 ms; anything else ignore.
async fn authz(State(service): State<Arc<Service>>, Json(body): Json<Value>) -> Response {
    service.requests.lock().unwrap().push(body.clone());
    let open = service.open.fetch_add(1, Ordering::SeqCst) + 1;
    service.most_open.fetch_max(open, Ordering::SeqCst);
    let topic = body["topic"].as_str().unwrap_or_default().to_string();
    let allow = || Json(json!({"result": "allow"})).into_response();
    let response = match topic.split('/').next().unwrap_or_default() {
        "allowed" => allow(),
        "denied" => Json(json!({"result": "deny"})).into_response(),
        "empty" => StatusCode::NO_CONTENT.into_response(),
        "error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            allow()
        }
        "gate" => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            allow()
        }
        _ => Json(json!({"result": "ignore"})).into_response(),
    };
    service.open.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn service() -> (String, Arc<Service>) {
    let service = Arc::new(Service::default());
    let app = Router::new().route("/authz", post(authz)).with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/authz"), service)
}

/// A node that asks the service at `url`, with `tweak`s to the source.
fn asking(url: &str, tweak: impl FnOnce(&mut HttpAuthConfig)) -> BrokerConfig {
    let mut http = HttpAuthConfig {
        authz_url: Some(url.into()),
        ..HttpAuthConfig::default()
    };
    tweak(&mut http);
    let mut config = test_config();
    config.security.http_authz = Some(Arc::new(HttpAuthSource::new(http).unwrap()));
    config
}

fn codes(suback: &rumqttc::SubAck) -> Vec<SubscribeReasonCode> {
    suback.return_codes.clone()
}

async fn puback(client: &mut Client) {
    client
        .expect("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await;
}

#[tokio::test]
async fn the_service_decides_publish_and_subscribe_for_a_3_1_1_client() {
    let (url, service) = service().await;
    let broker = start_with(asking(&url, |_| {})).await;
    let addr = broker.mqtt_addr();
    let mut c = Client::connect(addr, "c1").await;
    let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    assert_eq!(codes(&c.subscribe("allowed/#", QoS::AtLeastOnce).await), [granted]);
    assert_eq!(
        codes(&c.subscribe("denied/#", QoS::AtLeastOnce).await),
        [SubscribeReasonCode::Failure]
    );
    // Ignore, without an ACL file: allowed, as without any authorization.
    assert_eq!(codes(&c.subscribe("#", QoS::AtLeastOnce).await), [granted]);
    for topic in ["allowed/x", "denied/x", "other/x", "empty/x", "error/x", "allowed/end"] {
        c.publish(topic, QoS::AtLeastOnce, false, topic).await;
    }
    let mut got: Vec<String> = c
        .publishes_until("allowed/end")
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect();
    got.dedup(); // allowed/x matches two subscriptions
    assert_eq!(
        got,
        ["allowed/x", "other/x", "empty/x", "error/x"],
        "denied/x dropped (and acknowledged); ignore, 204 and 500 do not deny"
    );
    assert_eq!(
        Metrics::get(&broker.metrics().authz_denied),
        2,
        "a filter and a publish"
    );
    let first = service.requests.lock().unwrap()[0].clone();
    assert_eq!(
        first,
        json!({"clientid": "c1", "username": null, "peerhost": "127.0.0.1", "listener": "tcp",
               "action": "subscribe", "topic": "allowed/#", "qos": 1, "retain": false})
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_5_0_client_reads_the_service_s_denials_in_suback_puback_and_pubrec() {
    let (url, _service) = service().await;
    let broker = start_with(asking(&url, |_| {})).await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_packet(Protocol::V5, |c| c.client_id = "c5".into()))
        .await;
    assert_eq!(raw.read_frame().await[3], 0, "accepted");
    let subscribe = common::subscribe_packet(&["allowed/#", "denied/#", "$share/g/denied/x"]);
    raw.send_packet(subscribe, Protocol::V5).await;
    let suback = raw.read_frame().await;
    assert_eq!(suback[0], 0x90);
    assert_eq!(&suback[suback.len() - 3..], [0x01, 0x87, 0x87]);
    let publish = |topic: &str, qos, pkid| {
        Wire::Publish(WirePublish {
            qos,
            pkid,
            topic: topic.into(),
            payload: bytes::Bytes::from_static(b"x"),
            ..Default::default()
        })
    };
    raw.send_packet(publish("denied/a", ractmq::QoS::AtLeastOnce, 7), Protocol::V5)
        .await;
    let ack = raw.read_frame().await;
    assert_eq!((ack[0], ack[2], ack[3], ack[4]), (0x40, 0, 7, 0x87), "PUBACK 0x87");
    raw.send_packet(publish("denied/b", ractmq::QoS::ExactlyOnce, 8), Protocol::V5)
        .await;
    let rec = raw.read_frame().await;
    assert_eq!((rec[0], rec[2], rec[3], rec[4]), (0x50, 0, 8, 0x87), "PUBREC 0x87");
    raw.send_packet(publish("allowed/a", ractmq::QoS::AtLeastOnce, 9), Protocol::V5)
        .await;
    let mut frames = [raw.read_frame().await, raw.read_frame().await];
    frames.sort_by_key(|f| f[0]);
    assert_eq!(frames[0][0] >> 4, 3, "its own subscription delivers it");
    let ack = &frames[1];
    assert_eq!(
        (ack[0], ack[2], ack[3], ack.get(4).copied().unwrap_or(0)),
        (0x40, 0, 9, 0),
        "PUBACK success"
    );
    broker.shutdown().await;
}

/// A file in a fresh temporary folder, kept for the test's life.
fn acl_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acl");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[tokio::test]
async fn the_acl_file_decides_first_and_ignore_leaves_its_no_match_default() {
    let (url, service) = service().await;
    // alice: her own tree; allowed/secret denied whatever the service says. Mosquitto files deny what no rule
    // matches.
    let (_dir, acl) = acl_file("user alice\ntopic readwrite alice/#\ntopic deny allowed/secret\n");
    let mut config = asking(&url, |_| {});
    config.users.insert("alice".into(), "a-pass".into());
    config.security.acl_file = Some(acl);
    let broker = start_with(config).await;
    broker.view().add_user("root", "r-pass", true).await.unwrap();
    let addr = broker.mqtt_addr();
    let login = |id: &str, user: &str, password: &str| {
        let mut o = options(addr, id);
        o.set_credentials(user, password);
        o
    };
    let mut alice = Client::connect_with(login("a", "alice", "a-pass")).await;
    let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    assert_eq!(codes(&alice.subscribe("alice/#", QoS::AtLeastOnce).await), [granted]);
    assert_eq!(codes(&alice.subscribe("allowed/x", QoS::AtLeastOnce).await), [granted]);
    assert_eq!(
        codes(&alice.subscribe("other/#", QoS::AtLeastOnce).await),
        [SubscribeReasonCode::Failure],
        "ignored by the service, denied by the file's no-match"
    );
    for topic in ["alice/x", "allowed/x", "allowed/secret", "other/x", "alice/end"] {
        alice.publish(topic, QoS::AtLeastOnce, false, topic).await;
    }
    let got: Vec<String> = alice
        .publishes_until("alice/end")
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect();
    assert_eq!(got, ["alice/x", "allowed/x"]);
    assert_eq!(service.asked("a", "publish", "alice/x"), 0, "the file allowed it");
    assert_eq!(service.asked("a", "publish", "allowed/secret"), 0, "the file denied it");
    assert_eq!(service.asked("a", "publish", "other/x"), 1);

    // A superuser is asked about nothing.
    let before = service.total();
    let mut root = Client::connect_with(login("r", "root", "r-pass")).await;
    assert_eq!(codes(&root.subscribe("denied/#", QoS::AtLeastOnce).await), [granted]);
    root.publish("denied/x", QoS::AtLeastOnce, false, "x").await;
    assert_eq!(root.expect_publish().await.topic, "denied/x");
    assert_eq!(service.total(), before);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_will_the_service_denies_is_never_published() {
    let (url, service) = service().await;
    let broker = start_with(asking(&url, |_| {})).await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("#", QoS::AtMostOnce).await;
    for (id, topic) in [("w1", "denied/will"), ("w2", "allowed/will")] {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v311_will(id, 30, topic, "gone")).await;
        assert_eq!(raw.read_frame().await[3], 0, "accepted");
        drop(raw); // the connection is lost: the will is due
    }
    assert_eq!(watcher.expect_publish().await.topic, "allowed/will");
    watcher.publish("allowed/end", QoS::AtMostOnce, false, "").await;
    let got = watcher.publishes_until("allowed/end").await;
    assert!(got.is_empty(), "no other will: {got:?}");
    assert_eq!(service.asked("w1", "publish", "denied/will"), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_publishes_and_disconnects_at_once_is_not_cut_short_by_the_service() {
    let (url, _service) = service().await;
    let broker = start_with(asking(&url, |_| {})).await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("#", QoS::AtMostOnce).await;
    // CONNECT (with a will), PUBLISH and DISCONNECT in one write, then the socket closes, as mosquitto_pub does.
    let mut bytes = connect_v311_will("quick", 30, "allowed/will", "gone");
    bytes.extend(publish_v311("gate/quick", 0, 0, false, b"hello"));
    bytes.extend([0xE0, 0x00]);
    let mut raw = Raw::connect(addr).await;
    raw.send(&bytes).await;
    assert_eq!(raw.read_frame().await[3], 0, "accepted");
    drop(raw); // nothing unread: a FIN, not a reset
    assert_eq!(watcher.expect_publish().await.topic, "gate/quick");
    watcher.publish("allowed/end", QoS::AtMostOnce, false, "").await;
    let got = watcher.publishes_until("allowed/end").await;
    assert!(got.is_empty(), "a clean DISCONNECT: no will ({got:?})");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_slow_service_counts_as_ignore_and_holds_only_the_client_that_waits() {
    let (url, _service) = service().await;
    let broker = start_with(asking(&url, |c| c.timeout = Duration::from_secs(1))).await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("#", QoS::AtLeastOnce).await;
    let mut a = Client::connect(addr, "a").await;
    a.subscribe("allowed/to-a", QoS::AtLeastOnce).await;
    let mut b = Client::connect(addr, "b").await;

    let started = Instant::now();
    a.publish("slow/x", QoS::AtLeastOnce, false, "late").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.publish("allowed/to-a", QoS::AtLeastOnce, false, "meanwhile").await;
    puback(&mut b).await;
    let b_acked = started.elapsed();
    // a still gets its deliveries while its publish waits for the service.
    let first = a
        .expect("PUBLISH or PUBACK", |p| match p {
            Packet::Publish(p) => Some(Some(p.topic.clone())),
            Packet::PubAck(_) => Some(None),
            _ => None,
        })
        .await;
    assert_eq!(first.as_deref(), Some("allowed/to-a"), "delivered before a's PUBACK");
    puback(&mut a).await;
    let a_acked = started.elapsed();
    assert!(b_acked < Duration::from_millis(900), "b was not held: {b_acked:?}");
    assert!(
        a_acked >= Duration::from_secs(1),
        "a waited for the timeout: {a_acked:?}"
    );
    assert!(a_acked < Duration::from_secs(4), "but not for the service: {a_acked:?}");
    // No answer counts as ignore, which without an ACL file allows.
    let topics: Vec<String> = [watcher.expect_publish().await, watcher.expect_publish().await]
        .into_iter()
        .map(|p| p.topic)
        .collect();
    assert!(topics.contains(&"slow/x".to_string()), "{topics:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn answers_are_cached_per_client_until_the_ttl() {
    let (url, service) = service().await;
    let ttl = Duration::from_secs(2);
    let broker = start_with(asking(&url, |c| c.cache_ttl = ttl)).await;
    let addr = broker.mqtt_addr();
    let mut c1 = Client::connect(addr, "c1").await;
    let mut c2 = Client::connect(addr, "c2").await;
    let started = Instant::now();
    for _ in 0..3 {
        c1.publish("allowed/t", QoS::AtLeastOnce, false, "x").await;
        puback(&mut c1).await;
    }
    c1.subscribe("allowed/t", QoS::AtLeastOnce).await;
    c1.subscribe("allowed/t", QoS::AtLeastOnce).await;
    assert!(started.elapsed() < ttl, "the test is too slow for its TTL");
    assert_eq!(
        service.asked("c1", "publish", "allowed/t"),
        1,
        "one request within the TTL"
    );
    assert_eq!(service.asked("c1", "subscribe", "allowed/t"), 1);
    c2.publish("allowed/t", QoS::AtLeastOnce, false, "x").await;
    puback(&mut c2).await;
    assert_eq!(
        service.asked("c2", "publish", "allowed/t"),
        1,
        "each client has its own"
    );

    tokio::time::sleep(ttl).await;
    c1.publish("allowed/t", QoS::AtLeastOnce, false, "x").await;
    puback(&mut c1).await;
    assert_eq!(
        service.asked("c1", "publish", "allowed/t"),
        2,
        "asked again after the TTL"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn no_more_requests_are_open_than_configured() {
    let (url, service) = service().await;
    let broker = start_with(asking(&url, |c| c.max_in_flight = 2)).await;
    let addr = broker.mqtt_addr();
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(Client::connect(addr, &format!("c{i}")).await);
    }
    for (i, c) in clients.iter().enumerate() {
        for t in 0..4 {
            c.publish(&format!("gate/{i}/{t}"), QoS::AtLeastOnce, false, "x").await;
        }
    }
    for c in &mut clients {
        for _ in 0..4 {
            puback(c).await;
        }
    }
    assert_eq!(service.total(), 20);
    assert_eq!(service.most_open.load(Ordering::SeqCst), 2);
    broker.shutdown().await;
}

/// A service that is down fails every login of a reconnect storm: the node logs the first few failures of each
/// 10 s, not one line per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_is_logged_a_few_times_not_once_per_client() {
    let down = crate::common::mosquitto::free_port();
    let url = format!("http://127.0.0.1:{down}/auth");
    let node = crate::common::process::Process::start(&["--auth-http-url", &url]);
    for n in 0..30u8 {
        // Each from an address of its own: the node slows down repeated failures from one address, which
        // would spread the storm over minutes.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 1, n + 1], 0)))
            .unwrap();
        let mut raw = Raw::over(socket.connect(node.mqtt).await.unwrap());
        raw.send(&connect_packet(ractmq::Protocol::V3_1_1, |c| {
            c.client_id = format!("storm-{n}");
            c.username = Some("dev".into());
            c.password = Some(bytes::Bytes::from_static(b"pw"));
        }))
        .await;
        // The service cannot answer: the node answers the CONNECT with a refusal (a 3.1.1 CONNACK, code != 0).
        let connack = raw.read_frame().await;
        assert_eq!((connack[0], connack.len()), (0x20, 4));
        assert_ne!(connack[3], 0, "refused");
    }
    // Lines are read in order: once the stop's line is in, every failure's line before it is too.
    node.signal(libc::SIGTERM);
    eventually("the node logs that it stops", || {
        node.logged("stopping: no new connections")
    })
    .await;
    let failures = node
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("HTTP authentication failed"))
        .count();
    assert!((1..=5).contains(&failures), "{failures} lines for 30 failures");
}
