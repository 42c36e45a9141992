//! Wills: published on abnormal close and keepalive timeout, not after a normal DISCONNECT.

use crate::common;

use common::*;
use rumqttc::{LastWill, QoS};

fn with_will(addr: std::net::SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_last_will(LastWill::new(
        "will/topic",
        format!("{id} is gone"),
        QoS::AtLeastOnce,
        false,
    ));
    o
}

#[tokio::test]
async fn the_will_is_published_when_the_connection_drops() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("will/topic", QoS::AtLeastOnce).await;
    let device = Client::connect_with(with_will(addr, "device")).await;
    device.stop(); // socket closed without DISCONNECT
    let will = watcher.expect_publish().await;
    assert_eq!(will.payload.as_ref(), b"device is gone");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    broker.shutdown().await;
}

#[tokio::test]
async fn no_will_after_a_normal_disconnect() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("will/topic", QoS::AtLeastOnce).await;
    watcher.subscribe("marker", QoS::AtLeastOnce).await;
    let mut device = Client::connect_with(with_will(addr, "device")).await;
    device.client.disconnect().await.unwrap();
    device.expect_disconnect().await;
    eventually("device session gone", || broker.view().client("device").is_none()).await;
    broker
        .publish("marker", "", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert!(
        watcher.publishes_until("marker").await.is_empty(),
        "no will after DISCONNECT"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn keepalive_timeout_closes_the_connection_and_publishes_the_will() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "watcher").await;
    watcher.subscribe("will/ka", QoS::AtMostOnce).await;
    let mut raw = Raw::connect(addr).await;
    let connect_sent = std::time::Instant::now();
    raw.send(&connect_v311_will("silent", 1, "will/ka", "timed out")).await;
    assert_eq!(raw.read_exact(4).await, vec![0x20, 0x02, 0x00, 0x00]);
    let started = std::time::Instant::now();
    // Say nothing: the broker must close after 1.5 x keepalive, and not much later.
    assert!(raw.read_until_closed().await.is_empty());
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1400),
        "not closed before 1.5 x keepalive"
    );
    assert_closed_within_keepalive(connect_sent, std::time::Duration::from_secs(1), "silent");
    assert_eq!(watcher.expect_publish().await.payload.as_ref(), b"timed out");
    broker.shutdown().await;
}

#[tokio::test]
async fn pingreq_keeps_the_connection_alive() {
    let broker = start_broker().await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v311_will("pinger", 1, "w", "x")).await;
    raw.read_exact(4).await;
    for _ in 0..3 {
        // Each PINGRESP arrives only after its PINGREQ: three round trips span more than 1.5 s of keepalive
        // only if the pings kept the connection open.
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        raw.send(&[0xc0, 0x00]).await;
        assert_eq!(raw.read_exact(2).await, vec![0xd0, 0x00]);
    }
    broker.shutdown().await;
}
