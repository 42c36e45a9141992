//! A node that keeps its state on disk (`Durability::Disk`), restarted in the same process on the same data
//! dir: persistent sessions, their acknowledged messages and retained messages come back, and what ended is
//! gone. The crash cases (kill -9 of a real process) are in tests/python/test_durability.py.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use ractmq::{Broker, BrokerConfig, Durability};
use rumqttc::{Packet, QoS};

async fn durable(dir: &Path) -> Broker {
    start_with(BrokerConfig {
        durability: Durability::Disk(dir.to_path_buf()),
        ..test_config()
    })
    .await
}

fn persistent(broker: &Broker, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(broker.mqtt_addr(), id);
    o.set_clean_session(false);
    o
}

/// Wait until the publisher has seen `count` PUBACKs and PUBCOMPs.
async fn completions(publisher: &mut Client, count: usize) {
    let mut done = 0;
    while done < count {
        match publisher.next().await {
            Ok(Packet::PubAck(_) | Packet::PubComp(_)) => done += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher disconnected: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_and_its_acknowledged_messages_come_back_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let broker = durable(data.path()).await;
    let mut meter = Client::connect_with(persistent(&broker, "meter")).await;
    meter.subscribe("m/#", QoS::ExactlyOnce).await;
    meter.client.disconnect().await.unwrap();
    meter.expect_disconnect().await;
    eventually("meter is offline", || {
        broker.view().client("meter").is_some_and(|c| !c.connected)
    })
    .await;

    let mut publisher = Client::connect(broker.mqtt_addr(), "publisher").await;
    for n in 0..50u32 {
        publisher
            .publish("m/1", QoS::AtLeastOnce, false, format!("q1-{n}"))
            .await;
        publisher
            .publish("m/2", QoS::ExactlyOnce, false, format!("q2-{n}"))
            .await;
    }
    publisher.publish("r/1", QoS::AtLeastOnce, true, "kept").await;
    completions(&mut publisher, 101).await;
    let stats = broker.view().data_stats().expect("a store");
    assert_eq!((stats.sessions, stats.messages, stats.retained), (1, 100, 1));
    drop(publisher);
    broker.shutdown().await;

    let broker = durable(data.path()).await;
    assert!(
        broker.view().client("meter").is_some_and(|c| !c.connected),
        "the session is back before its client is"
    );
    let mut meter = Client::start(persistent(&broker, "meter"));
    assert!(meter.expect_connack().await.session_present);
    let mut got: HashMap<String, (usize, rumqttc::QoS)> = HashMap::new();
    while got.values().map(|(n, _)| n).sum::<usize>() < 100 {
        let p = meter.expect_publish().await;
        let entry = got
            .entry(String::from_utf8(p.payload.to_vec()).unwrap())
            .or_insert((0, p.qos));
        entry.0 += 1;
    }
    for n in 0..50 {
        assert_eq!(got.get(&format!("q1-{n}")), Some(&(1, QoS::AtLeastOnce)), "q1-{n}");
        assert_eq!(got.get(&format!("q2-{n}")), Some(&(1, QoS::ExactlyOnce)), "q2-{n}");
    }

    let mut reader = Client::connect(broker.mqtt_addr(), "reader").await;
    reader.subscribe("r/#", QoS::AtLeastOnce).await;
    let retained = reader.expect_publish().await;
    assert_eq!((retained.payload.as_ref(), retained.retain), (&b"kept"[..], true));
    eventually("the delivered copies leave the store", || {
        broker.view().data_stats().is_some_and(|s| s.messages == 0)
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_sessions_leave_nothing_on_disk_and_an_ended_session_is_forgotten() {
    let data = tempfile::tempdir().unwrap();
    let broker = durable(data.path()).await;
    let mut clean = Client::connect(broker.mqtt_addr(), "clean").await;
    clean.subscribe("c/#", QoS::AtLeastOnce).await;
    leave_offline_session(&broker, "gone", "c/#").await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "publisher").await;
    publisher.publish("c/1", QoS::AtLeastOnce, false, "x").await;
    completions(&mut publisher, 1).await;
    clean.expect_publish().await;
    let stats = broker.view().data_stats().unwrap();
    assert_eq!(
        (stats.sessions, stats.messages),
        (1, 1),
        "only the persistent session's copy"
    );

    // The same client id starting clean ends the stored session.
    let mut again = Client::start(options(broker.mqtt_addr(), "gone"));
    assert!(!again.expect_connack().await.session_present);
    eventually("the ended session leaves the store", || {
        broker
            .view()
            .data_stats()
            .is_some_and(|s| s.sessions == 0 && s.messages == 0)
    })
    .await;
    drop((again, clean, publisher));
    broker.shutdown().await;

    let broker = durable(data.path()).await;
    assert!(broker.view().client("gone").is_none());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_node_writes_nothing() {
    let broker = start_broker().await;
    assert!(broker.view().data_stats().is_none());
    broker.shutdown().await;
}

/// Leave `id` as an offline persistent session subscribed to `filter` at QoS 1.
async fn offline_subscriber(broker: &Broker, id: &str, filter: &str) {
    let mut c = Client::connect_with(persistent(broker, id)).await;
    c.subscribe(filter, QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    c.expect_disconnect().await;
    eventually("the subscriber is offline", || {
        broker.view().client(id).is_some_and(|c| !c.connected)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_will_of_a_client_connected_when_the_node_stopped_reaches_a_persistent_subscriber() {
    let data = tempfile::tempdir().unwrap();
    let broker = durable(data.path()).await;
    offline_subscriber(&broker, "watcher", "wills/#").await;
    let mut o = persistent(&broker, "device");
    o.set_last_will(rumqttc::LastWill::new("wills/device", "gone", QoS::AtLeastOnce, false));
    let device = Client::connect_with(o).await;
    broker.shutdown().await;
    device.stop();

    // The node went away under the device: its connection counts as lost (at the stop or at the restart), and
    // its will reaches the subscriber, which was offline throughout.
    let broker = durable(data.path()).await;
    let mut watcher = Client::start(persistent(&broker, "watcher"));
    assert!(watcher.expect_connack().await.session_present);
    let will = watcher.expect_publish().await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("wills/device", &b"gone"[..]));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_whose_expiry_passed_while_the_node_was_down_is_not_delivered() {
    let data = tempfile::tempdir().unwrap();
    let broker = durable(data.path()).await;
    offline_subscriber(&broker, "late", "exp/#").await;
    let mut short = ractmq::Message::new("exp/short", "stale", ractmq::QoS::AtLeastOnce, false);
    short.properties.message_expiry_interval = Some(1);
    let long = ractmq::Message::new("exp/long", "fresh", ractmq::QoS::AtLeastOnce, false);
    assert_eq!(broker.view().publish(short).await, 1);
    assert_eq!(broker.view().publish(long).await, 1);
    broker.shutdown().await;
    // The downtime itself is what this test is about: the node is down for longer than the short expiry.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let broker = durable(data.path()).await;
    let mut late = Client::start(persistent(&broker, "late"));
    assert!(late.expect_connack().await.session_present);
    let mut marker = ractmq::Message::new("exp/marker", "end", ractmq::QoS::AtLeastOnce, false);
    marker.properties.message_expiry_interval = None;
    broker.view().publish(marker).await;
    let got: Vec<String> = late
        .publishes_until("exp/marker")
        .await
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    assert_eq!(got, ["fresh"]);
    broker.shutdown().await;
}

/// A persistent session kicked right after its SUBSCRIBE, while the subscription's commit is still on its way:
/// the client still gets the SUBACK and the DISCONNECT (0x98) before its socket closes, which were dropped with
/// the connection when they waited for that commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_right_after_a_subscribe_still_says_why() {
    use ractmq::parts::codec::{Subscribe, SubscriptionRequest};
    use ractmq::Protocol;

    let data = tempfile::tempdir().unwrap();
    let broker = durable(data.path()).await;
    for i in 0..20 {
        let id = format!("kicked-{i}");
        let mut raw = Raw::connect(broker.mqtt_addr()).await;
        raw.send(&connect_packet(Protocol::V5, |c| {
            c.client_id = id.clone();
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(300);
        }))
        .await;
        assert_eq!(raw.read_frame().await[0], 0x20, "CONNACK");
        let subscribe = ractmq::parts::codec::Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![SubscriptionRequest {
                filter: format!("k/{i}"),
                qos: ractmq::QoS::AtLeastOnce,
                ..Default::default()
            }],
            ..Default::default()
        });
        raw.send_packet(subscribe, Protocol::V5).await;
        assert!(broker.disconnect_client(&id, 0x98, None).await, "{id} kicked");
        // Everything the node sent before closing: a SUBACK if the SUBSCRIBE was read before the kick, then
        // the DISCONNECT.
        let frames = frames_of(&raw.read_until_closed().await);
        let disconnect = frames.iter().find(|f| f[0] == 0xE0);
        let kinds: Vec<u8> = frames.iter().map(|f| f[0]).collect();
        assert_eq!(
            disconnect.map(|d| d[2]),
            Some(0x98),
            "{id}: DISCONNECT 0x98 last, got {kinds:x?}"
        );
        assert_eq!(kinds.last(), Some(&0xE0), "{id}: {kinds:x?}");
    }
    broker.shutdown().await;
}

/// Split bytes into MQTT frames (fixed header, remaining length, body).
fn frames_of(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (mut len, mut shift, mut at) = (0usize, 0, 1);
        loop {
            let b = bytes[at];
            len |= usize::from(b & 0x7F) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        frames.push(bytes[..at + len].to_vec());
        bytes = &bytes[at + len..];
    }
    frames
}
