//! Sessions across a cluster of real `ractmq` processes, with real MQTT clients: a client id is unique
//! cluster-wide, so connecting on another node takes the session over — the old connection is closed, and a
//! client that resumes finds its subscriptions and the messages queued for it on the new node.

use crate::common;

use common::cluster::start_cluster;
use common::{options, Client};
use rumqttc::QoS;

fn persistent(node: &common::cluster::Node, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(node.mqtt, id);
    o.set_clean_session(false);
    o
}

#[tokio::test]
async fn connecting_on_another_node_takes_the_live_session_over() {
    let nodes = start_cluster(3, &[]).await;
    let mut first = Client::connect_with(persistent(&nodes[0], "device")).await;
    first.subscribe("cmd/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[2].mqtt, "pub-n3").await;
    publisher.publish("cmd/1", QoS::AtLeastOnce, false, "one").await;
    assert_eq!(&first.expect_publish().await.payload[..], b"one");

    let mut second = Client::start(persistent(&nodes[1], "device"));
    let connack = second.expect_connack().await;
    assert!(connack.session_present, "the session on n1 was resumed on n2");
    first.expect_disconnect().await;

    // The subscription moved with the session: n3's messages now reach the device on n2.
    publisher.publish("cmd/2", QoS::AtLeastOnce, false, "two").await;
    let p = second.expect_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("cmd/2", &b"two"[..]));
}

#[tokio::test]
async fn messages_queued_for_an_offline_session_follow_it_to_another_node() {
    let nodes = start_cluster(3, &[]).await;
    let device = Client::connect_with(persistent(&nodes[0], "sleeper")).await;
    let mut device = device;
    device.subscribe("inbox/#", QoS::AtLeastOnce).await;
    device.client.disconnect().await.unwrap();
    device.expect_disconnect().await;

    // A watcher on n1 proves the messages from n3 have reached n1 (they cross in order).
    let mut watcher = Client::connect(nodes[0].mqtt, "watcher-n1").await;
    watcher.subscribe("marker", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[2].mqtt, "pub-n3").await;
    for i in 0..5 {
        publisher
            .publish(&format!("inbox/{i}"), QoS::AtLeastOnce, false, i.to_string())
            .await;
    }
    publisher.publish("marker", QoS::AtLeastOnce, false, "sent").await;
    watcher.publishes_until("marker").await;

    let mut resumed = Client::start(persistent(&nodes[1], "sleeper"));
    assert!(resumed.expect_connack().await.session_present);
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(String::from_utf8_lossy(&resumed.expect_publish().await.payload).into_owned());
    }
    assert_eq!(got, ["0", "1", "2", "3", "4"]);

    // A clean start on a third node discards the session everywhere.
    resumed.client.disconnect().await.unwrap();
    resumed.expect_disconnect().await;
    let mut fresh = Client::start(options(nodes[2].mqtt, "sleeper"));
    assert!(!fresh.expect_connack().await.session_present);
    let mut again = Client::start(persistent(&nodes[0], "sleeper"));
    assert!(
        !again.expect_connack().await.session_present,
        "the clean start ended the session cluster-wide"
    );
}

fn number(p: &rumqttc::Publish) -> usize {
    String::from_utf8_lossy(&p.payload).parse().unwrap()
}

/// The publisher on n3 keeps sending while the session moves from n1 to n2: messages that were on their way
/// to n1 when the session left it are passed on to n2, and none reaches the client on n2 twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_taken_over_under_load_loses_nothing_and_repeats_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    // Queues long enough for everything: a subscriber that falls behind loses the oldest beyond the bound, and
    // that is not what this test is about.
    let nodes = start_cluster(3, &["--max-queue", "100000", "--max-offline-queue", "100000"]).await;
    let mut old = Client::connect_with(persistent(&nodes[0], "mover")).await;
    old.subscribe("flow/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[2].mqtt, "pub-n3").await;
    let sender = publisher.client.clone();
    // The publisher runs from before the move until well after it: it is sending throughout the moment the
    // other nodes still route to n1.
    let (sent, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let feed = tokio::spawn({
        let (sent, stop) = (sent.clone(), stop.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                sender
                    .publish("flow/n", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
                i += 1;
                sent.store(i, Ordering::Relaxed);
            }
            i
        }
    });
    let mut on_old = Vec::new();
    while on_old.len() < 500 {
        on_old.push(number(&old.expect_publish().await));
    }
    let mut new = Client::start(persistent(&nodes[1], "mover"));
    assert!(new.expect_connack().await.session_present);
    let published_before_connack = sent.load(Ordering::Relaxed);
    while let Ok(packet) = old.next().await {
        if let rumqttc::Packet::Publish(p) = packet {
            on_old.push(number(&p));
        }
    }
    let mut on_new = Vec::new();
    while !on_new.iter().any(|&n| n >= published_before_connack + 500) {
        on_new.push(number(&new.expect_publish().await));
    }
    stop.store(true, Ordering::Relaxed);
    let total = feed.await.unwrap();
    // Every number must arrive on one connection or the other (messages the old connection had not
    // acknowledged come again on the new one); relayed ones may come after later ones, so wait for the set.
    let mut missing: std::collections::BTreeSet<usize> = (0..total)
        .filter(|i| !on_old.contains(i) && !on_new.contains(i))
        .collect();
    while !missing.is_empty() {
        match tokio::time::timeout(common::DEADLINE, new.events.recv()).await {
            Ok(Some(Ok(rumqttc::Packet::Publish(p)))) => {
                let n = number(&p);
                missing.remove(&n);
                on_new.push(n);
            }
            Ok(Some(Ok(_))) => {}
            other => panic!(
                "{} of {total} never arrived (first {:?}); the new connection: {other:?}",
                missing.len(),
                missing.iter().take(10).collect::<Vec<_>>()
            ),
        }
    }
    let mut unique = on_new.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), on_new.len(), "a message reached the new connection twice");
}
