//! Persistent sessions, offline queues, clean sessions and takeover, with a real client (rumqttc 3.1.1).

use crate::common;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::OverflowPolicy;
use rumqttc::QoS;

fn persistent(addr: std::net::SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_clean_session(false);
    o
}

#[tokio::test]
async fn unacknowledged_messages_are_redelivered_with_dup_on_resume() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut o = persistent(addr, "dev");
    o.set_manual_acks(true);
    let mut sub = Client::connect_with(o.clone()).await;
    sub.subscribe("cmd", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, "pub").await;
    for i in 0..3 {
        publisher.publish("cmd", QoS::AtLeastOnce, false, format!("m{i}")).await;
    }
    for i in 0..3 {
        let p = sub.expect_publish().await;
        assert_eq!(p.payload.as_ref(), format!("m{i}").as_bytes());
        assert!(!p.dup);
    }
    // Drop the connection without acknowledging anything.
    sub.stop();
    eventually("broker saw the disconnect", || {
        Metrics::get(&broker.metrics().clients_connected) == 1
    })
    .await;
    publisher.publish("cmd", QoS::AtLeastOnce, false, "m3").await;

    let mut again = Client::start(o);
    let ack = again.expect_connack().await;
    assert!(ack.session_present, "the session is resumed");
    let mut got = Vec::new();
    for _ in 0..4 {
        let p = again.expect_publish().await;
        got.push((String::from_utf8(p.payload.to_vec()).unwrap(), p.dup));
        again.client.ack(&p).await.unwrap();
    }
    assert_eq!(
        got,
        vec![
            ("m0".into(), true),
            ("m1".into(), true),
            ("m2".into(), true),
            ("m3".into(), false)
        ],
        "in-flight messages come back first with DUP, then the one queued while offline"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_offline_queue_is_bounded_and_drops_are_counted() {
    let mut config = test_config();
    config.limits.max_offline_queue_len = 5;
    config.limits.offline_overflow = OverflowPolicy::DropOldest;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect_with(persistent(addr, "dev")).await;
    sub.subscribe("q", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    sub.expect_disconnect().await;
    eventually("session offline", || {
        Metrics::get(&broker.metrics().clients_connected) == 0
    })
    .await;

    let publisher = Client::connect(addr, "pub").await;
    for i in 0..10 {
        publisher.publish("q", QoS::AtLeastOnce, false, format!("{i}")).await;
    }
    eventually("five dropped from the offline queue", || {
        Metrics::get(&broker.metrics().dropped_offline_queue_full) == 5
    })
    .await;

    let mut again = Client::connect_with(persistent(addr, "dev")).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(String::from_utf8(again.expect_publish().await.payload.to_vec()).unwrap());
    }
    assert_eq!(got, vec!["5", "6", "7", "8", "9"], "drop-oldest keeps the newest five");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_clean_session_forgets_subscriptions() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect_with(persistent(addr, "dev")).await;
    sub.subscribe("x", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    sub.expect_disconnect().await;

    let mut clean = Client::connect(addr, "dev").await; // clean session
    clean.subscribe("marker", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, "pub").await;
    publisher.publish("x", QoS::AtLeastOnce, false, "lost").await;
    publisher.publish("marker", QoS::AtLeastOnce, false, "").await;
    assert!(clean.publishes_until("marker").await.is_empty());
    clean.client.disconnect().await.unwrap();
    clean.expect_disconnect().await;
    eventually("clean session removed at disconnect", || {
        broker.kernel().store.get("dev").is_none()
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_takes_the_session_over() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut first = Client::connect_with(persistent(addr, "dev")).await;
    first.subscribe("t", QoS::AtLeastOnce).await;
    let mut second = Client::start(persistent(addr, "dev"));
    assert!(second.expect_connack().await.session_present);
    first.expect_disconnect().await;
    let publisher = Client::connect(addr, "pub").await;
    publisher.publish("t", QoS::AtLeastOnce, false, "to-second").await;
    assert_eq!(second.expect_publish().await.payload.as_ref(), b"to-second");
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 2);
    broker.shutdown().await;
}
