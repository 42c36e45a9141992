//! MQTT 5.0 features checked byte by byte over a real socket: topic aliases the broker assigns, reason
//! strings governed by Request Problem Information, and an operator sending a client to another server.

use crate::common;

use common::*;
use ractmq::parts::codec::{Decoder, Packet, Publish, Subscribe, SubscriptionRequest};
use ractmq::{Protocol, QoS};

/// A raw 5.0 client that decodes what the broker sends with the project's decoder (server side: it parses
/// PUBLISH and acks the same way in both directions).
struct V5Client {
    raw: Raw,
    decoder: Decoder,
}

impl V5Client {
    async fn connect(addr: std::net::SocketAddr, tweak: impl FnOnce(&mut ractmq::parts::codec::Connect)) -> Self {
        let mut raw = Raw::connect(addr).await;
        raw.send(&connect_packet(Protocol::V5, tweak)).await;
        assert_eq!(raw.read_frame().await[0], 0x20, "CONNACK");
        // The decoder learns the protocol level from a CONNECT.
        let mut decoder = Decoder::new(1 << 20);
        let mut connect = bytes::BytesMut::from(&connect_packet(Protocol::V5, |_| {})[..]);
        decoder.decode(&mut connect).unwrap();
        V5Client { raw, decoder }
    }

    async fn subscribe(&mut self, filter: &str) {
        let subscribe = Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![SubscriptionRequest {
                filter: filter.into(),
                qos: QoS::AtLeastOnce,
                ..Default::default()
            }],
            ..Default::default()
        });
        self.raw.send_packet(subscribe, Protocol::V5).await;
        assert_eq!(self.raw.read_frame().await[0], 0x90, "SUBACK");
    }

    /// The next packet, decoded.
    async fn next(&mut self) -> Packet {
        let frame = self.raw.read_frame().await;
        let mut buf = bytes::BytesMut::from(&frame[..]);
        // PUBLISH and acks read the same in both directions.
        self.decoder
            .decode(&mut buf)
            .expect("valid packet")
            .expect("whole packet")
    }
}

#[tokio::test]
async fn the_broker_sets_up_and_uses_topic_aliases_when_the_client_allows_them() {
    let broker = start_broker().await;
    let mut client = V5Client::connect(broker.mqtt_addr(), |c| {
        c.client_id = "aliased".into();
        c.properties.topic_alias_maximum = Some(1);
    })
    .await;
    client.subscribe("alias/#").await;
    for topic in ["alias/one", "alias/one", "alias/two"] {
        broker.publish(topic, "x", QoS::AtMostOnce, false).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        match client.next().await {
            Packet::Publish(Publish { topic, properties, .. }) => {
                seen.push((topic.to_string(), properties.topic_alias))
            }
            other => panic!("expected PUBLISH, got {}", other.kind()),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("alias/one".to_string(), Some(1)), // set up
            (String::new(), Some(1)),           // used: the topic is left out
            ("alias/two".to_string(), None),    // the client allows one alias only
        ]
    );
    broker.shutdown().await;
}

/// A QoS 1 PUBLISH announcing a UTF-8 payload that is not UTF-8.
fn bad_utf8_publish() -> Packet {
    let mut p = Publish {
        qos: QoS::AtLeastOnce,
        topic: "pf/t".into(),
        pkid: 9,
        payload: bytes::Bytes::from_static(&[0xff, 0xfe]),
        ..Default::default()
    };
    p.properties.payload_format_indicator = Some(1);
    Packet::Publish(p)
}

#[tokio::test]
async fn failed_acks_explain_themselves_unless_the_client_asked_not_to() {
    let broker = start_broker().await;
    for (request_problem_information, explained) in [(None, true), (Some(0), false)] {
        let mut client = V5Client::connect(broker.mqtt_addr(), |c| {
            c.client_id = format!("problem-{explained}");
            c.properties.request_problem_information = request_problem_information;
        })
        .await;
        client.raw.send_packet(bad_utf8_publish(), Protocol::V5).await;
        match client.next().await {
            Packet::PubAck(ack) => {
                assert_eq!(ack.pkid, 9);
                assert_eq!(ack.reason, 0x99, "Payload format invalid");
                assert_eq!(
                    ack.reason_string.is_some(),
                    explained,
                    "reason string {:?} with Request Problem Information {request_problem_information:?}",
                    ack.reason_string
                );
            }
            other => panic!("expected PUBACK, got {}", other.kind()),
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn the_operator_can_send_a_client_to_another_server() {
    let broker = start_broker().await;
    let mut watcher = broker.subscribe("will/moved", 10).await.unwrap();
    let mut client = V5Client::connect(broker.mqtt_addr(), |c| {
        c.client_id = "movable".into();
        c.will = Some(ractmq::parts::codec::Will {
            topic: "will/moved".into(),
            payload: bytes::Bytes::from_static(b"gone elsewhere"),
            ..Default::default()
        });
    })
    .await;
    let moved = broker
        .disconnect_client("movable", 0x9c, Some("other.example:1883".into()))
        .await;
    assert!(moved, "the client has a session here");
    match client.next().await {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason, 0x9c, "Use another server");
            assert_eq!(d.server_reference.as_deref(), Some("other.example:1883"));
        }
        other => panic!("expected DISCONNECT, got {}", other.kind()),
    }
    assert!(client.raw.read_until_closed().await.is_empty(), "and the socket closes");
    assert_eq!(
        watcher.recv().await.unwrap().payload.as_ref(),
        b"gone elsewhere",
        "a server disconnect publishes the will"
    );
    assert!(!broker.disconnect_client("nobody", 0x9c, None).await);
    broker.shutdown().await;
}
