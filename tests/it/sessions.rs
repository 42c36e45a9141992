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
        broker.view().client("dev").is_none()
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

/// A 5.0 session with a Session Expiry Interval of 1 s whose client leaves: once it expired, the client that
/// comes back with Clean Start 0 finds nothing of it: CONNACK Session Present 0 [MQTT-3.2.2-3] (the broker
/// has no session), no subscription and nothing of what was queued for it.
#[tokio::test]
async fn a_session_that_expired_is_not_resumed_and_its_queue_is_gone() {
    use ractmq::parts::codec::{Packet as Codec, Subscribe, SubscriptionRequest};
    use ractmq::Protocol;

    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let view = broker.view();
    let connect = connect_packet(Protocol::V5, |c| {
        c.client_id = "expiring".into();
        c.clean_start = false;
        c.properties.session_expiry_interval = Some(1);
    });
    let subscribe = |pkid: u16, filter: &str| {
        Codec::Subscribe(Subscribe {
            pkid,
            filters: vec![SubscriptionRequest {
                filter: filter.into(),
                qos: ractmq::QoS::AtLeastOnce,
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect).await;
    let connack = raw.read_frame().await;
    assert_eq!(
        (connack[0], connack[2], connack[3]),
        (0x20, 0x00, 0x00),
        "CONNACK, no session yet"
    );
    raw.send_packet(subscribe(1, "exp/t"), Protocol::V5).await;
    assert_eq!(
        raw.read_frame().await,
        vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x01],
        "SUBACK"
    );
    raw.send(&[0xe0, 0x00]).await; // DISCONNECT, normal: the session stays for its expiry interval
    raw.read_until_closed().await;
    eventually("the session is offline", || {
        view.client("expiring").is_some_and(|c| !c.connected)
    })
    .await;
    for i in 0..5 {
        broker
            .publish("exp/t", format!("{i}"), ractmq::QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    assert_eq!(
        view.client("expiring").unwrap().queued,
        5,
        "queued for the offline session"
    );

    eventually("the session expired", || view.client("expiring").is_none()).await;
    let mut back = Raw::connect(addr).await;
    back.send(&connect).await;
    let connack = back.read_frame().await;
    assert_eq!(
        (connack[0], connack[2] & 1, connack[3]),
        (0x20, 0, 0x00),
        "CONNACK Session Present 0: the expired session is not resumed"
    );
    let back_session = view.client("expiring").unwrap();
    assert_eq!(
        (back_session.queued, back_session.queued_bytes),
        (0, 0),
        "nothing queued"
    );
    // Nothing comes before a marker published now: neither what was queued nor, with the subscription gone,
    // a message to exp/t.
    back.send_packet(subscribe(2, "marker"), Protocol::V5).await;
    assert_eq!(
        back.read_frame().await,
        vec![0x90, 0x04, 0x00, 0x02, 0x00, 0x01],
        "SUBACK"
    );
    for (topic, payload) in [("exp/t", "after the expiry"), ("marker", "end")] {
        broker
            .publish(topic, payload, ractmq::QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    let first = back.read_frame().await;
    assert_eq!(first[0] & 0xf0, 0x30, "a PUBLISH: {first:02x?}");
    assert_eq!(
        &first[4..10],
        b"marker",
        "the first message is the marker: {first:02x?}"
    );
    broker.shutdown().await;
}
