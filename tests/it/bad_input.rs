//! Bad input closes only the offending connection, with the right reason code for 5.0 clients, and costs
//! no other client anything. Each case runs next to a healthy subscriber that must keep receiving.

use crate::common;

use common::*;
use ractmq::parts::broker::Metrics;
use rumqttc::QoS;

/// Run `case` against a broker with a healthy subscriber beside it, then prove the subscriber still works.
async fn isolated(case: impl AsyncFnOnce(std::net::SocketAddr)) {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut healthy = Client::connect(addr, "healthy").await;
    healthy.subscribe("still/alive", QoS::AtLeastOnce).await;
    case(addr).await;
    broker
        .publish("still/alive", "yes", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(healthy.expect_publish().await.payload.as_ref(), b"yes");
    assert_eq!(
        Metrics::get(&broker.metrics().clients_connected),
        1,
        "only the healthy client is left"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn garbage_bytes_close_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]).await;
        assert!(raw.read_until_closed().await.is_empty(), "no CONNACK for garbage");
    })
    .await;
}

#[tokio::test]
async fn publish_before_connect_closes_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&[0x30, 0x05, 0x00, 0x01, b't', b'h', b'i']).await;
        assert!(raw.read_until_closed().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_second_connect_closes_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v311("twice")).await;
        assert_eq!(raw.read_exact(4).await, vec![0x20, 0x02, 0x00, 0x00]);
        raw.send(&connect_v311("twice")).await;
        assert!(raw.read_until_closed().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_second_connect_on_v5_gets_disconnect_protocol_error() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v5("twice5")).await;
        let head = raw.read_exact(2).await;
        assert_eq!(head[0], 0x20);
        let ack = raw.read_exact(head[1] as usize).await;
        assert_eq!(ack[1], 0x00, "CONNACK success");
        raw.send(&connect_v5("twice5")).await;
        let (code, why) = v5_disconnect(&raw.read_until_closed().await);
        assert_eq!(code, 0x82, "DISCONNECT 0x82");
        assert!(
            why.is_some_and(|w| w.contains("CONNECT")),
            "the reason string says what was wrong"
        );
    })
    .await;
}

#[tokio::test]
async fn a_malformed_remaining_length_closes_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v311("len")).await;
        raw.read_exact(4).await;
        raw.send(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]).await; // five length bytes
        assert!(raw.read_until_closed().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_topic_closes_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v5("utf8")).await;
        let head = raw.read_exact(2).await;
        raw.read_exact(head[1] as usize).await;
        raw.send(&[0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x00, b'x']).await;
        let (code, why) = v5_disconnect(&raw.read_until_closed().await);
        assert_eq!(code, 0x81, "DISCONNECT 0x81 malformed");
        assert!(why.is_some());
    })
    .await;
}

#[tokio::test]
async fn a_wildcard_in_a_publish_topic_closes_the_connection() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_v5("wild")).await;
        let head = raw.read_exact(2).await;
        raw.read_exact(head[1] as usize).await;
        raw.send(&[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00]).await;
        let (code, why) = v5_disconnect(&raw.read_until_closed().await);
        assert_eq!(code, 0x90, "DISCONNECT 0x90 topic name invalid");
        assert!(why.is_some());
    })
    .await;
}

#[tokio::test]
async fn an_oversized_packet_is_refused_before_it_arrives() {
    let mut config = test_config();
    config.limits.max_packet_size = 1024;
    let broker = start_with(config).await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v5("big")).await;
    let head = raw.read_exact(2).await;
    raw.read_exact(head[1] as usize).await;
    // Announce a 100 MB publish; send only its header. The broker must not wait for (or buffer) the body.
    raw.send(&[0x30, 0x80, 0x80, 0x80, 0x30]).await;
    let (code, why) = v5_disconnect(&raw.read_until_closed().await);
    assert_eq!(code, 0x95, "DISCONNECT 0x95 packet too large");
    assert!(why.is_some());
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unsupported_protocol_level_gets_return_code_1() {
    isolated(async |addr| {
        let mut raw = Raw::connect(addr).await;
        let mut c = connect_v311("lvl");
        c[8] = 9; // protocol level 9
        raw.send(&c).await;
        assert_eq!(raw.read_until_closed().await, vec![0x20, 0x02, 0x00, 0x01]);
    })
    .await;
}
