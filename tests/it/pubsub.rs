//! Publish and subscribe over real sockets with a real client (rumqttc, MQTT 3.1.1).

use crate::common;

use common::*;
use rumqttc::{QoS, SubscribeReasonCode};

#[tokio::test]
async fn qos0_qos1_qos2_are_delivered_at_the_effective_qos() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    let ack = sub.subscribe("t/q1", QoS::AtLeastOnce).await;
    assert_eq!(ack.return_codes, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    sub.subscribe("t/q2", QoS::ExactlyOnce).await;
    sub.subscribe("t/q0", QoS::AtMostOnce).await;
    let publisher = Client::connect(addr, "pub").await;

    // min(publish QoS, subscription QoS)
    publisher.publish("t/q1", QoS::ExactlyOnce, false, "a").await;
    publisher.publish("t/q2", QoS::ExactlyOnce, false, "b").await;
    publisher.publish("t/q0", QoS::ExactlyOnce, false, "c").await;
    publisher.publish("t/q2", QoS::AtMostOnce, false, "d").await;
    let got: Vec<(String, QoS, Vec<u8>)> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let p = sub.expect_publish().await;
            v.push((p.topic.clone(), p.qos, p.payload.to_vec()));
        }
        v
    };
    assert_eq!(
        got,
        vec![
            ("t/q1".into(), QoS::AtLeastOnce, b"a".to_vec()),
            ("t/q2".into(), QoS::ExactlyOnce, b"b".to_vec()),
            ("t/q0".into(), QoS::AtMostOnce, b"c".to_vec()),
            ("t/q2".into(), QoS::AtMostOnce, b"d".to_vec()),
        ]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn wildcards_match_per_the_specification() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("sport/#", QoS::AtMostOnce).await;
    sub.subscribe("+/+/player1", QoS::AtMostOnce).await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    sub.subscribe("done", QoS::AtMostOnce).await;
    let publisher = Client::connect(addr, "pub").await;
    for t in ["sport", "sport/tennis/player1", "$SYS/x", "other"] {
        publisher.publish(t, QoS::AtMostOnce, false, t).await;
    }
    publisher.publish("done", QoS::AtMostOnce, false, "").await;
    // Overlapping subscriptions deliver once; `$SYS/x` is not matched by `#`; `done` also matches `#`
    // but arrives once.
    let mut topics: Vec<String> = sub.publishes_until("done").await.into_iter().map(|p| p.topic).collect();
    topics.sort();
    assert_eq!(topics, vec!["other", "sport", "sport/tennis/player1"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_publisher_s_messages_arrive_in_order() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("seq/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, "pub").await;
    for i in 0..500u32 {
        let qos = if i % 2 == 0 { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        publisher
            .publish(&format!("seq/{}", i % 3), qos, false, i.to_be_bytes().to_vec())
            .await;
    }
    for i in 0..500u32 {
        let p = sub.expect_publish().await;
        assert_eq!(p.payload.as_ref(), i.to_be_bytes(), "message {i} out of order");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_burst_read_at_once_reaches_every_subscriber_once_and_in_order() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut exact = Client::connect(addr, "exact").await;
    exact.subscribe("burst/a", QoS::AtMostOnce).await;
    let mut wild = Client::connect(addr, "wild").await;
    wild.subscribe("burst/+", QoS::AtLeastOnce).await;
    // Overlapping subscriptions: one delivery of each message, at the higher QoS.
    let mut both = Client::connect(addr, "both").await;
    both.subscribe("burst/#", QoS::AtMostOnce).await;
    both.subscribe("burst/a", QoS::AtLeastOnce).await;
    for sub in [&mut exact, &mut wild, &mut both] {
        sub.subscribe("end", QoS::AtMostOnce).await;
    }

    // Runs of messages to one topic and single ones, QoS 0 and 1, written at once: read in one batch,
    // they are routed a run at a time.
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311("pub")).await;
    raw.read_exact(4).await;
    let mut burst = Vec::new();
    let mut sent = Vec::new();
    for (topic, n) in [
        ("burst/a", 20),
        ("burst/b", 10),
        ("burst/a", 1),
        ("burst/b", 1),
        ("burst/a", 30),
    ] {
        for _ in 0..n {
            let i = sent.len() as u32;
            let qos = u8::from(i.is_multiple_of(7));
            burst.extend(publish_v311(topic, qos, i as u16 + 1, false, &i.to_be_bytes()));
            sent.push((topic, i, qos));
        }
    }
    burst.extend(publish_v311("end", 0, 0, false, b""));
    raw.send(&burst).await;

    let qos = |q: u8| if q == 0 { QoS::AtMostOnce } else { QoS::AtLeastOnce };
    let got = |publishes: Vec<rumqttc::Publish>| -> Vec<(String, u32, QoS)> {
        let payload = |p: &rumqttc::Publish| u32::from_be_bytes(p.payload[..].try_into().unwrap());
        publishes.iter().map(|p| (p.topic.clone(), payload(p), p.qos)).collect()
    };
    let expected = |filter: fn(&str) -> bool, max: u8| -> Vec<(String, u32, QoS)> {
        sent.iter()
            .filter(|(topic, _, _)| filter(topic))
            .map(|&(topic, i, q)| (topic.to_string(), i, qos(q.min(max))))
            .collect()
    };
    assert_eq!(got(exact.publishes_until("end").await), expected(|t| t == "burst/a", 0));
    assert_eq!(got(wild.publishes_until("end").await), expected(|_| true, 1));
    let both_expected: Vec<_> = sent
        .iter()
        .map(|&(topic, i, q)| (topic.to_string(), i, qos(if topic == "burst/a" { q } else { 0 })))
        .collect();
    assert_eq!(got(both.publishes_until("end").await), both_expected);
    broker.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("a", QoS::AtMostOnce).await;
    sub.subscribe("marker", QoS::AtMostOnce).await;
    sub.client.unsubscribe("a").await.unwrap();
    sub.expect("UNSUBACK", |p| matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(()))
        .await;
    let publisher = Client::connect(addr, "pub").await;
    publisher.publish("a", QoS::AtMostOnce, false, "x").await;
    publisher.publish("marker", QoS::AtMostOnce, false, "").await;
    assert!(sub.publishes_until("marker").await.is_empty());
    broker.shutdown().await;
}

#[tokio::test]
async fn in_process_publish_and_subscribe_reach_mqtt_clients_and_back() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut local = broker.subscribe("from/mqtt/+", 16).await.unwrap();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("from/app", QoS::AtLeastOnce).await;
    assert_eq!(
        broker
            .publish("from/app", "hello", ractmq::QoS::AtLeastOnce, false)
            .await
            .unwrap(),
        1
    );
    let p = sub.expect_publish().await;
    assert_eq!((p.topic.as_str(), p.payload.as_ref()), ("from/app", &b"hello"[..]));
    sub.publish("from/mqtt/1", QoS::AtLeastOnce, false, "hi").await;
    let m = tokio::time::timeout(DEADLINE, local.recv()).await.unwrap().unwrap();
    assert_eq!((&*m.topic, &m.payload[..]), ("from/mqtt/1", &b"hi"[..]));
    drop(local);
    eventually("in-process subscription removed", || {
        broker.view().subscription_count() == 1
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_larger_than_the_outbox_high_water_mark_is_delivered_completely() {
    // Regression: a drain that encoded more than the outbox's high-water mark in one go, then wrote it all
    // directly to the socket, waited for a wake-up that never came, stranding the rest of the queue. A
    // persistent session that comes back to a large offline queue drains it in one go.
    const BACKLOG: u32 = 60_000;
    let mut config = test_config();
    config.limits.max_offline_queue_len = BACKLOG as usize;
    let broker = start_with(config).await;
    let mut o = options(broker.mqtt_addr(), "sub");
    o.set_clean_session(false);
    let mut sub = Client::connect_with(o.clone()).await;
    sub.subscribe("backlog", QoS::AtMostOnce).await;
    sub.client.disconnect().await.unwrap();
    sub.expect_disconnect().await;
    eventually("offline", || {
        ractmq::parts::broker::Metrics::get(&broker.metrics().clients_connected) == 0
    })
    .await;
    for i in 0..BACKLOG {
        broker
            .publish("backlog", i.to_be_bytes().to_vec(), ractmq::QoS::AtMostOnce, false)
            .await
            .unwrap();
    }
    let mut again = Client::connect_with(o).await;
    for i in 0..BACKLOG {
        assert_eq!(again.expect_publish().await.payload.as_ref(), i.to_be_bytes());
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "overlap").await;
    sub.subscribe("ov/#", QoS::AtMostOnce).await;
    sub.subscribe("ov/+", QoS::AtLeastOnce).await;
    sub.subscribe("ov/a", QoS::AtMostOnce).await;
    sub.subscribe("marker", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, "overlap-pub").await;
    publisher
        .publish("ov/a", QoS::AtLeastOnce, false, "three filters")
        .await;
    publisher.publish("marker", QoS::AtLeastOnce, false, "end").await;
    let got = sub.publishes_until("marker").await;
    assert_eq!(got.len(), 1, "one delivery for three matching filters");
    assert_eq!(got[0].qos, QoS::AtLeastOnce, "at the highest granted QoS");
    broker.shutdown().await;
}
