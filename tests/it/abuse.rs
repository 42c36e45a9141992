//! Abuse controls over real sockets: `$SYS` cannot be spoofed by a client, and one host holding silent
//! sockets cannot keep other hosts out (the waiting-socket bound per peer address).

use crate::common;

use std::net::SocketAddr;

use common::*;
use ractmq::parts::broker::Metrics;
use rumqttc::QoS;

/// A retained `$SYS/broker/version` published by a client is refused (PUBACK 0x87 for 5.0, dropped for
/// 3.1.1): no subscriber sees it and nothing is retained, so the broker's own value is what readers get.
#[tokio::test]
async fn a_client_cannot_spoof_sys_topics() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut reader = Client::connect(addr, "reader").await;
    reader.subscribe("$SYS/spoofed/#", QoS::AtLeastOnce).await;
    let spoofer = Client::connect(addr, "spoofer").await;
    spoofer
        .publish("$SYS/spoofed/version", QoS::AtLeastOnce, true, "9.9.9")
        .await;
    spoofer.publish("marker", QoS::AtLeastOnce, false, "").await;
    eventually("both publishes handled", || {
        Metrics::get(&broker.metrics().authz_denied) == 1
    })
    .await;
    assert!(
        broker.view().retained_message("$SYS/spoofed/version").is_none(),
        "nothing retained under $SYS"
    );
    // The reader got nothing: a marker published to it after the spoof arrives first.
    reader.subscribe("marker2", QoS::AtLeastOnce).await;
    spoofer.publish("marker2", QoS::AtLeastOnce, false, "m").await;
    assert_eq!(reader.expect_publish().await.topic, "marker2");

    // A 5.0 client reads the refusal in its PUBACK.
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v5("spoofer5")).await;
    let _connack = raw.read_frame().await;
    raw.send(&publish_v5_qos1("$SYS/x", 5)).await;
    let puback = raw.read_frame().await;
    assert_eq!((puback[0], puback[2..4].to_vec(), puback[4]), (0x40, vec![0, 5], 0x87));
    broker.shutdown().await;
}

/// A 5.0 QoS 1 PUBLISH with no properties.
fn publish_v5_qos1(topic: &str, pkid: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((topic.len() as u16).to_be_bytes());
    body.extend(topic.as_bytes());
    body.extend(pkid.to_be_bytes());
    body.push(0); // no properties
    body.extend(b"x");
    let mut frame = vec![0x32, body.len() as u8];
    frame.extend(body);
    frame
}

/// A TCP connection to `addr` from the local address `from` (any of 127.0.0.0/8 works on Linux loopback).
async fn connect_from(from: &str, addr: SocketAddr) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    Raw::over(socket.connect(addr).await.unwrap())
}

/// With at most 3 sockets waiting per address, a fourth silent socket from the same host is closed at once
/// and counted, while a client from another address connects as usual.
#[tokio::test]
async fn one_host_holding_silent_sockets_does_not_keep_others_out() {
    let mut config = test_config();
    config.max_handshakes_per_peer = 3;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(connect_from("127.0.0.1", addr).await);
    }
    eventually("three sockets waiting", || broker.view().waiting_for_connect() == 3).await;
    let mut fourth = connect_from("127.0.0.1", addr).await;
    assert!(
        fourth.read_until_closed().await.is_empty(),
        "closed at accept, nothing sent"
    );
    assert_eq!(Metrics::get(&broker.metrics().dropped_at_accept), 1);

    let mut other = connect_from("127.0.0.2", addr).await;
    other.send(&connect_v311("other-host")).await;
    let connack = other.read_frame().await;
    assert_eq!(connack, [0x20, 2, 0, 0], "accepted");
    drop(silent);
    eventually("the silent sockets' places are freed", || {
        broker.view().waiting_for_connect() == 0
    })
    .await;
    broker.shutdown().await;
}

/// With at most 2 clients per address, a third from the same host is refused with Quota exceeded (5.0) or
/// Server unavailable (3.1.1), while another host connects; when one leaves, its place is free again.
#[tokio::test]
async fn connections_per_peer_address_are_bounded() {
    let mut config = test_config();
    config.max_connections_per_peer = 2;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut first = connect_from("127.0.0.1", addr).await;
    first.send(&connect_v311("first")).await;
    assert_eq!(first.read_frame().await[3], 0);
    let mut second = connect_from("127.0.0.1", addr).await;
    second.send(&connect_v311("second")).await;
    assert_eq!(second.read_frame().await[3], 0);
    let mut third = connect_from("127.0.0.1", addr).await;
    third.send(&connect_v5("third")).await;
    assert_eq!(third.read_frame().await[3], 0x97, "5.0: Quota exceeded");
    let mut third = connect_from("127.0.0.1", addr).await;
    third.send(&connect_v311("third")).await;
    assert_eq!(third.read_frame().await[3], 3, "3.1.1: server unavailable");
    let mut elsewhere = connect_from("127.0.0.2", addr).await;
    elsewhere.send(&connect_v311("elsewhere")).await;
    assert_eq!(elsewhere.read_frame().await[3], 0, "another address is not affected");
    drop(first);
    eventually("the first client's place is freed", || {
        Metrics::get(&broker.metrics().clients_connected) == 2
    })
    .await;
    let mut again = connect_from("127.0.0.1", addr).await;
    again.send(&connect_v311("again")).await;
    assert_eq!(again.read_frame().await[3], 0);
    broker.shutdown().await;
}

/// A client limited to 50 messages a second that publishes 150 QoS 1 messages at once is slowed, not cut:
/// every message arrives, exactly once and in order, and the limiter is seen to have waited.
#[tokio::test]
async fn a_client_over_its_message_rate_is_slowed_and_loses_nothing() {
    let mut config = test_config();
    config.client_messages_per_s = 50;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sub").await;
    sub.subscribe("rate/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(addr, "pub").await;
    for n in 0..150u32 {
        publisher
            .publish("rate/n", QoS::AtLeastOnce, false, n.to_be_bytes())
            .await;
    }
    publisher.publish("rate/end", QoS::AtLeastOnce, false, "").await;
    let got: Vec<u32> = sub
        .publishes_until("rate/end")
        .await
        .iter()
        .map(|p| u32::from_be_bytes(p.payload[..4].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..150).collect::<Vec<_>>(), "every message once, in order");
    assert!(Metrics::get(&broker.metrics().rate_limited) > 0, "the reader waited");
    assert_eq!(broker.metrics().dropped_total(), 0);
    broker.shutdown().await;
}

/// Above the memory high watermark the node refuses new clients (5.0: 0x89 Server busy), reports not ready,
/// and then drops its largest queue (an offline session's 40 messages), counted; back under it, clients get in.
#[tokio::test]
async fn above_the_memory_high_watermark_the_node_sheds_load_then_recovers() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    leave_offline_session(&broker, "away", "load/#").await;
    let publisher = Client::connect(addr, "publisher").await;
    for n in 0..40u32 {
        publisher
            .publish("load/n", QoS::AtLeastOnce, false, n.to_be_bytes())
            .await;
    }
    eventually("40 messages queued for the offline session", || {
        broker.view().client("away").is_some_and(|c| c.queued == 40)
    })
    .await;

    broker.view().set_memory_high_watermark(1); // any process is above one byte
    eventually("overloaded", || broker.view().memory_high_watermark().1).await;
    let mut refused = Raw::connect(addr).await;
    refused.send(&connect_v5("newcomer")).await;
    assert_eq!(refused.read_frame().await[3], 0x89, "Server busy");
    assert!(!broker.view().health().await.ready, "not ready while overloaded");
    eventually("the largest queue is dropped", || {
        Metrics::get(&broker.metrics().dropped_overload) == 40
    })
    .await;
    assert_eq!(broker.view().client("away").unwrap().queued, 0);
    assert_eq!(
        Metrics::get(&broker.metrics().overload_episodes),
        1,
        "one episode, counted once"
    );

    broker.view().set_memory_high_watermark(u64::MAX);
    eventually("recovered", || !broker.view().memory_high_watermark().1).await;
    let mut welcome = Raw::connect(addr).await;
    welcome.send(&connect_v5("newcomer")).await;
    assert_eq!(welcome.read_frame().await[3], 0);
    broker.shutdown().await;
}
