//! Taking nodes out of a cluster of real `ractmq` processes: evacuating a node under QoS 1 load (its MQTT 5
//! clients are sent to the other nodes with a Server Reference and resume their sessions there, and nothing
//! acknowledged to a publisher is lost), a node leaving for good, and forgetting a node that died.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{start_cluster, until_all_list, Node, WAIT};
use common::{connect_packet, connect_v311, eventually_within, publish_v311, Raw};
use ractmq::parts::codec::{Ack, Decoder, Packet, Subscribe, SubscriptionRequest};
use ractmq::{Protocol, QoS};
use serde_json::Value;

/// Call the node's REST API (off the runtime: ureq blocks); the status and the JSON answer.
async fn api(node: &Node, method: &'static str, path: &str) -> (u16, Value) {
    let url = format!(
        "http://{}/api/v1{path}",
        node.api_addr().expect("the node logged its API address")
    );
    tokio::task::spawn_blocking(move || match ureq::request(method, &url).call() {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{method} {url}: {e}"),
    })
    .await
    .unwrap()
}

/// What one MQTT 5 subscriber saw.
#[derive(Default)]
struct Seen {
    /// Payload -> how many times it came, and how many of the repeats carried DUP.
    got: BTreeMap<String, (usize, usize)>,
    /// The Server References it was sent to, in order, and whether the session was there each time.
    moves: Vec<(u8, Option<String>, bool)>,
}

/// An MQTT 5 subscriber with a persistent session (clean start false, expiry 300 s) that acknowledges every
/// QoS 1 message and, sent away with a DISCONNECT, follows its Server Reference and resumes there.
async fn subscriber(id: String, mut addr: SocketAddr, filter: &str, seen: Arc<Mutex<Seen>>, ready: Arc<AtomicUsize>) {
    let connect = |id: &str, clean: bool| {
        connect_packet(Protocol::V5, |c| {
            c.client_id = id.into();
            c.clean_start = clean;
            c.properties.session_expiry_interval = Some(300);
        })
    };
    let mut first = true;
    let mut awaiting_suback = false;
    loop {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect(&id, first)).await;
        let connack = raw.read_frame().await;
        assert_eq!((connack[0], connack[3]), (0x20, 0), "{id}: CONNACK success from {addr}");
        let session_present = connack[2] & 1 == 1;
        if let Some(last) = seen.lock().unwrap().moves.last_mut() {
            last.2 = session_present;
        }
        let mut decoder = Decoder::new(1 << 20);
        let mut c = bytes::BytesMut::from(&connect(&id, false)[..]);
        decoder.decode(&mut c).unwrap();
        if first {
            let subscribe = Packet::Subscribe(Subscribe {
                pkid: 1,
                filters: vec![SubscriptionRequest {
                    filter: filter.into(),
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                }],
                ..Default::default()
            });
            raw.send_packet(subscribe, Protocol::V5).await;
            first = false;
            // Ready once the SUBACK is in, below: subscribed, as the node sees it.
            awaiting_suback = true;
        }
        loop {
            let frame = raw.read_frame().await;
            if frame[0] == 0x90 {
                // SUBACK: a packet only a server sends, which the (server's) decoder refuses.
                if std::mem::take(&mut awaiting_suback) {
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
            let mut buf = bytes::BytesMut::from(&frame[..]);
            match decoder
                .decode(&mut buf)
                .expect("a valid packet")
                .expect("a whole packet")
            {
                Packet::Publish(p) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    {
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.got.entry(payload).or_default();
                        entry.0 += 1;
                        if entry.0 > 1 && p.dup {
                            entry.1 += 1;
                        }
                    }
                    let ack = Packet::PubAck(Ack {
                        pkid: p.pkid,
                        ..Default::default()
                    });
                    raw.send_packet(ack, Protocol::V5).await;
                }
                Packet::Disconnect(d) => {
                    let reference = d.server_reference.clone();
                    seen.lock().unwrap().moves.push((d.reason, reference.clone(), false));
                    addr = reference.expect("a Server Reference").parse().unwrap();
                    break;
                }
                other => panic!("{id}: unexpected {}", other.kind()),
            }
        }
    }
}

/// On each of `nodes`: n3 is a member that left, and none of its routes is kept.
async fn n3_is_gone_from(nodes: &[&Node]) {
    for node in nodes {
        let members = states(node).await;
        assert_eq!(
            members.get("n3").map(String::as_str),
            Some("left"),
            "{}: {members:?}",
            node.name
        );
        assert!(!has_routes_from(node, "n3").await, "{} dropped n3's routes", node.name);
    }
}

/// A 3.1.1 publisher on `addr` sending `prefix-N` at QoS 1 one at a time until `stop`; returns how many
/// were acknowledged (PUBACK read).
async fn publisher(addr: SocketAddr, id: String, topic: String, stop: Arc<AtomicBool>) -> usize {
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311(&id)).await;
    assert_eq!(raw.read_frame().await[..4], [0x20, 2, 0, 0]);
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let pkid = (n % 60_000) as u16 + 1;
        raw.send(&publish_v311(&topic, 1, pkid, false, format!("{id}-{n}").as_bytes()))
            .await;
        let puback = raw.read_frame().await;
        assert_eq!(puback, [0x40, 2, (pkid >> 8) as u8, pkid as u8], "PUBACK");
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_a_node_moves_its_clients_and_loses_nothing_acknowledged() {
    let nodes = start_cluster(3, &[]).await;
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);

    let ready = Arc::new(AtomicUsize::new(0));
    let subscribers: Vec<(String, Arc<Mutex<Seen>>)> = (0..3).map(|i| (format!("sub-{i}"), Arc::default())).collect();
    let mut tasks = Vec::new();
    for (id, seen) in &subscribers {
        tasks.push(tokio::spawn(subscriber(
            id.clone(),
            n1.mqtt,
            "load/#",
            seen.clone(),
            ready.clone(),
        )));
    }
    // A 3.1.1 client on n1 too.
    let mut old = Raw::connect(n1.mqtt).await;
    old.send(&connect_v311("old-v311")).await;
    assert_eq!(old.read_frame().await[..4], [0x20, 2, 0, 0]);
    eventually_within(WAIT, "the subscribers to subscribe", || {
        ready.load(Ordering::SeqCst) == 3
    })
    .await;
    // Their routes reach n2 before publishing starts (a SUBACK waits for that, the subscribers do not).
    eventually_within(WAIT, "n2 to know n1's route", || {
        let api = n2.api_addr().unwrap();
        ureq::get(&format!("http://{api}/api/v1/topics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .is_some_and(|t| t.contains("load/#"))
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..2)
        .map(|i| tokio::spawn(publisher(n2.mqtt, format!("pub{i}"), format!("load/{i}"), stop.clone())))
        .collect();
    let got = |seen: &Arc<Mutex<Seen>>| seen.lock().unwrap().got.len();
    eventually_within(WAIT, "every subscriber to receive 200 messages on n1", || {
        subscribers.iter().all(|(_, s)| got(s) >= 200)
    })
    .await;

    let started = std::time::Instant::now();
    let (status, v) = api(n1, "POST", "/node/evacuate?rate=20").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["evacuating"], true);

    // New clients are refused, and load balancers are told to look elsewhere.
    let mut late = Raw::connect(n1.mqtt).await;
    late.send(&connect_v311("late")).await;
    assert_eq!(
        late.read_frame().await[..4],
        [0x20, 2, 0, 3],
        "CONNACK 3 server unavailable"
    );
    let (ready_status, _) = api(n1, "GET", "/health/ready").await;
    assert_eq!(ready_status, 503);
    // The 3.1.1 client is disconnected.
    old.read_until_closed().await;

    eventually_within(WAIT, "every subscriber to be sent away and resume elsewhere", || {
        subscribers
            .iter()
            .all(|(_, s)| s.lock().unwrap().moves.first().is_some_and(|m| m.2))
    })
    .await;
    let others: BTreeSet<String> = [n2.mqtt.to_string(), n3.mqtt.to_string()].into();
    let mut references = BTreeSet::new();
    for (id, seen) in &subscribers {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.moves.len(), 1, "{id} moved once: {:?}", seen.moves);
        let (reason, reference, present) = seen.moves[0].clone();
        assert_eq!(reason, 0x9c, "{id}: DISCONNECT Use another server");
        let reference = reference.unwrap();
        assert!(
            others.contains(&reference),
            "{id} sent to {reference}, not another node"
        );
        assert!(present, "{id}: session present on {reference}");
        references.insert(reference);
    }
    assert_eq!(references, others, "the clients are spread over both other nodes");
    let mut status = Value::Null;
    for _ in 0..600 {
        status = api(n1, "GET", "/node/evacuate").await.1;
        if status["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["clients_connected"], 0, "n1's evacuation is done: {status}");
    eprintln!("evacuated in {:?}", started.elapsed());

    // Traffic goes on a little after the moves, then stops; everything acknowledged arrives.
    let before: Vec<usize> = subscribers.iter().map(|(_, s)| got(s)).collect();
    eventually_within(WAIT, "200 more messages each after the move", || {
        subscribers.iter().zip(&before).all(|((_, s), b)| got(s) >= b + 200)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for p in publishers {
        acked.push(p.await.unwrap());
    }
    let expected: BTreeSet<String> = acked
        .iter()
        .enumerate()
        .flat_map(|(i, n)| (0..*n).map(move |k| format!("pub{i}-{k}")))
        .collect();
    for (id, seen) in &subscribers {
        eventually_within(
            WAIT,
            &format!("{id} to receive all {} acknowledged", expected.len()),
            || {
                let seen = seen.lock().unwrap();
                expected.iter().all(|p| seen.got.contains_key(p))
            },
        )
        .await;
        let seen = seen.lock().unwrap();
        let repeats: usize = seen.got.values().map(|(n, _)| n - 1).sum();
        let without_dup: Vec<&String> = seen
            .got
            .iter()
            .filter(|(_, (n, dup))| n - 1 > *dup)
            .map(|(p, _)| p)
            .collect();
        eprintln!(
            "{id}: {} distinct, {repeats} repeated (all DUP: {})",
            seen.got.len(),
            without_dup.is_empty()
        );
        assert!(
            without_dup.is_empty(),
            "{id}: repeats without DUP: {:?}",
            &without_dup[..without_dup.len().min(10)]
        );
    }
    eprintln!("publishers acknowledged {acked:?}");
    for t in tasks {
        t.abort();
    }

    // Stopping the evacuation lets clients in again.
    let (status, _) = api(n1, "DELETE", "/node/evacuate").await;
    assert_eq!(status, 200);
    let mut back = Raw::connect(n1.mqtt).await;
    back.send(&connect_v311("back")).await;
    assert_eq!(back.read_frame().await[..4], [0x20, 2, 0, 0]);
}

/// The members as `node` lists them: name -> state.
async fn states(node: &Node) -> BTreeMap<String, String> {
    let (_, v) = api(node, "GET", "/cluster").await;
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether `node` still has routes from `from`.
async fn has_routes_from(node: &Node, from: &str) -> bool {
    let (_, v) = api(node, "GET", "/topics").await;
    v.as_array().unwrap().iter().any(|r| r["node"] == from)
}

/// Nothing dials `addr` within `window` (a listener there takes what comes).
async fn not_dialled(addr: SocketAddr, window: Duration) -> bool {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the left node's port is free");
    tokio::time::timeout(window, listener.accept()).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_dead_node_removes_it_everywhere() {
    let mut nodes = start_cluster(3, &[]).await;
    let mut c = common::Client::connect(nodes[2].mqtt, "on-n3").await;
    c.subscribe("n3/#", rumqttc::QoS::AtLeastOnce).await;
    let routed = {
        let n1 = &nodes[0];
        let mut ok = false;
        for _ in 0..300 {
            if has_routes_from(n1, "n3").await {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ok
    };
    assert!(routed, "n1 learns n3's route");

    // Refused while it is up, and for this node itself.
    let (status, v) = api(&nodes[0], "POST", "/cluster/forget/n3").await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("node n3 is up"), "{v}");
    let (status, v) = api(&nodes[0], "POST", "/cluster/forget/n1").await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = api(&nodes[0], "POST", "/cluster/forget/n9").await;
    assert_eq!(status, 404);

    nodes[2].kill();
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;
    let (status, v) = api(&nodes[0], "POST", "/cluster/forget/n3").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["unconfirmed"], serde_json::json!([]), "n2 confirmed");
    n3_is_gone_from(&[&nodes[0], &nodes[1]]).await;
    // Neither redials it: its cluster port stays quiet for longer than the longest redial backoff (3 s).
    assert!(
        not_dialled(nodes[2].cluster, Duration::from_secs(5)).await,
        "no node dials the forgotten n3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_exits_0_and_the_others_stop_dialling_it() {
    let mut nodes = start_cluster(3, &[]).await;
    // A persistent subscriber on n3, which the leave sends to another node, where it keeps receiving.
    let ready = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let task = tokio::spawn(subscriber(
        "mover".into(),
        nodes[2].mqtt,
        "news/#",
        seen.clone(),
        ready.clone(),
    ));
    eventually_within(WAIT, "the subscriber to subscribe", || {
        ready.load(Ordering::SeqCst) == 1
    })
    .await;

    let started = std::time::Instant::now();
    let (status, v) = api(&nodes[2], "POST", "/cluster/leave").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["unconfirmed"], serde_json::json!([]), "n1 and n2 confirmed: {v}");
    let exit = nodes[2].wait_exit(WAIT);
    assert_eq!(exit, Some(0), "n3 exits with 0 after leaving");
    eprintln!("left and exited in {:?}", started.elapsed());

    n3_is_gone_from(&[&nodes[0], &nodes[1]]).await;
    eventually_within(WAIT, "the subscriber to resume elsewhere", || {
        seen.lock().unwrap().moves.first().is_some_and(|m| m.2)
    })
    .await;
    let publisher = common::Client::connect(nodes[1].mqtt, "pub-n2").await;
    publisher
        .publish("news/1", rumqttc::QoS::AtLeastOnce, false, "after")
        .await;
    eventually_within(WAIT, "the moved subscriber to receive", || {
        seen.lock().unwrap().got.contains_key("after")
    })
    .await;
    task.abort();
    assert!(
        not_dialled(nodes[2].cluster, Duration::from_secs(5)).await,
        "no node dials n3, which left"
    );

    // Started again, it joins again through its seed.
    nodes[2].start();
    until_all_list(&[&nodes[0], &nodes[1], &nodes[2]], "n1,n2,n3").await;
}
