//! Shared subscriptions (`$share/{group}/{filter}`): one member of each group gets each message, by the
//! configured strategy; a member that leaves hands its unacknowledged messages to another, so none is lost.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::parts::codec::{Packet as Codec, Subscribe, SubscriptionRequest};
use ractmq::{BrokerConfig, Protocol, SharedStrategy};
use rumqttc::QoS;

fn seq(n: u32) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

fn seq_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap())
}

/// Publish `n` numbered QoS 1 messages on `topic` from a client, then one on `marker`: a subscriber that
/// has seen the marker has seen everything routed to it before.
async fn publish_numbered(addr: std::net::SocketAddr, topic: &str, n: u32) {
    let publisher = Client::connect(addr, "publisher").await;
    for i in 0..n {
        publisher.publish(topic, QoS::AtLeastOnce, false, seq(i)).await;
    }
    publisher.publish("marker", QoS::AtLeastOnce, false, "end").await;
}

#[tokio::test]
async fn each_message_goes_to_one_member_of_each_group_in_turn() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut members = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(addr, &format!("worker-{i}")).await;
        c.subscribe("$share/workers/jobs/#", QoS::AtLeastOnce).await;
        c.subscribe("marker", QoS::AtLeastOnce).await;
        members.push(c);
    }
    let mut audit = Client::connect(addr, "audit").await;
    audit.subscribe("$share/audit/jobs/+", QoS::AtLeastOnce).await;
    audit.subscribe("marker", QoS::AtLeastOnce).await;
    let mut plain = Client::connect(addr, "plain").await;
    plain.subscribe("jobs/#", QoS::AtLeastOnce).await;
    plain.subscribe("marker", QoS::AtLeastOnce).await;

    publish_numbered(addr, "jobs/a", 30).await;

    let mut all = BTreeSet::new();
    for m in &mut members {
        let got: Vec<u32> = m
            .publishes_until("marker")
            .await
            .iter()
            .map(|p| seq_of(&p.payload))
            .collect();
        assert_eq!(got.len(), 10, "round-robin gives each of 3 members a third: {got:?}");
        for s in got {
            assert!(all.insert(s), "message {s} went to two members of one group");
        }
    }
    assert_eq!(all.len(), 30, "the group got every message");
    let audit_got = audit.publishes_until("marker").await;
    assert_eq!(audit_got.len(), 30, "a one-member group gets everything");
    assert_eq!(
        plain.publishes_until("marker").await.len(),
        30,
        "plain subscribers are unaffected"
    );
    broker.shutdown().await;
}

/// Three members of `$share/g/sensor/+` on a broker with `strategy`; `publish` runs, then a marker is
/// published; returns how many messages each member got.
async fn shares_with(strategy: SharedStrategy, publish: impl AsyncFnOnce(std::net::SocketAddr)) -> Vec<usize> {
    let broker = start_with(BrokerConfig {
        shared_strategy: strategy,
        ..test_config()
    })
    .await;
    let addr = broker.mqtt_addr();
    let mut members = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(addr, &format!("m-{i}")).await;
        c.subscribe("$share/g/sensor/+", QoS::AtLeastOnce).await;
        c.subscribe("marker", QoS::AtLeastOnce).await;
        members.push(c);
    }
    publish(addr).await;
    let marker = Client::connect(addr, "marker-pub").await;
    marker.publish("marker", QoS::AtLeastOnce, false, "end").await;
    let mut counts = Vec::new();
    for m in &mut members {
        counts.push(m.publishes_until("marker").await.len());
    }
    broker.shutdown().await;
    counts
}

/// Publish `n` QoS 1 messages on `topic` as client `id` (its PUBACKs all arrive before it returns).
async fn publish_as(addr: std::net::SocketAddr, id: &str, topic: &str, n: u32) {
    let mut p = Client::connect(addr, id).await;
    for i in 0..n {
        p.publish(topic, QoS::AtLeastOnce, false, seq(i)).await;
    }
    for _ in 0..n {
        p.expect("PUBACK", |pk| matches!(pk, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
}

fn members_used(counts: &[usize]) -> usize {
    counts.iter().filter(|&&c| c > 0).count()
}

#[tokio::test]
async fn hash_topic_sends_one_topic_to_one_member() {
    let counts = shares_with(SharedStrategy::HashTopic, async |addr| {
        publish_as(addr, "p", "sensor/7", 20).await
    })
    .await;
    assert_eq!(counts.iter().sum::<usize>(), 20);
    assert_eq!(members_used(&counts), 1, "one member got topic sensor/7: {counts:?}");
}

#[tokio::test]
async fn sticky_keeps_one_member() {
    let counts = shares_with(SharedStrategy::Sticky, async |addr| {
        publish_as(addr, "p1", "sensor/1", 10).await;
        publish_as(addr, "p2", "sensor/2", 10).await;
    })
    .await;
    assert_eq!(counts.iter().sum::<usize>(), 20);
    assert_eq!(members_used(&counts), 1, "every message to the same member: {counts:?}");
}

#[tokio::test]
async fn hash_clientid_sends_one_publisher_to_one_member() {
    // Different topics from one publisher: only the publisher's id decides.
    let counts = shares_with(SharedStrategy::HashClientId, async |addr| {
        let mut p = Client::connect(addr, "only-publisher").await;
        for i in 0..20u32 {
            p.publish(&format!("sensor/{i}"), QoS::AtLeastOnce, false, seq(i)).await;
        }
        for _ in 0..20 {
            p.expect("PUBACK", |pk| matches!(pk, rumqttc::Packet::PubAck(_)).then_some(()))
                .await;
        }
    })
    .await;
    assert_eq!(counts.iter().sum::<usize>(), 20);
    assert_eq!(members_used(&counts), 1, "one publisher, one member: {counts:?}");
}

#[tokio::test]
async fn random_spreads_over_the_members_and_sends_each_message_once() {
    let counts = shares_with(SharedStrategy::Random, async |addr| {
        publish_as(addr, "p", "sensor/r", 200).await
    })
    .await;
    assert_eq!(counts.iter().sum::<usize>(), 200, "each message to exactly one member");
    // All 200 to one member would be a 3 x (1/3)^200 chance.
    assert!(
        members_used(&counts) > 1,
        "random uses more than one member: {counts:?}"
    );
}

/// Two members of `$share/g/work`: a raw client that takes messages and never acknowledges them, and a
/// healthy one. After `n` messages, returns both and the sequence numbers the healthy one got (half of them:
/// round-robin gives the stuck member the other half).
async fn stuck_and_healthy(addr: std::net::SocketAddr, n: u32) -> (Raw, Client, BTreeSet<u32>) {
    let mut stuck = Raw::connect(addr).await;
    stuck.send(&connect_v311("stuck")).await;
    stuck.read_exact(4).await;
    stuck.send(&subscribe_v311(1, "$share/g/work", 1)).await;
    assert_eq!(stuck.read_exact(5).await, vec![0x90, 0x03, 0x00, 0x01, 0x01]);
    let mut healthy = Client::connect(addr, "healthy").await;
    healthy.subscribe("$share/g/work", QoS::AtLeastOnce).await;
    healthy.subscribe("marker", QoS::AtLeastOnce).await;
    publish_numbered(addr, "work", n).await;
    let got: BTreeSet<u32> = healthy
        .publishes_until("marker")
        .await
        .iter()
        .map(|p| seq_of(&p.payload))
        .collect();
    assert_eq!(
        got.len(),
        n as usize / 2,
        "round-robin: the stuck member holds the other half"
    );
    (stuck, healthy, got)
}

#[tokio::test]
async fn a_member_that_leaves_hands_its_unacknowledged_messages_to_another() {
    let broker = start_broker().await;
    let (stuck, mut healthy, mut got) = stuck_and_healthy(broker.mqtt_addr(), 20).await;

    drop(stuck); // leaves without acknowledging anything
    while got.len() < 20 {
        let p = healthy.expect_publish().await;
        if p.topic == "work" {
            got.insert(seq_of(&p.payload));
        }
    }
    assert_eq!(got, (0..20).collect(), "nothing lost with the member that left");
    assert_eq!(Metrics::get(&broker.metrics().shared_handed_off), 10);
    broker.shutdown().await;
}

#[tokio::test]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = start_broker().await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v5("nl")).await;
    assert_eq!(raw.read_frame().await[0], 0x20, "CONNACK");
    let subscribe = Codec::Subscribe(Subscribe {
        pkid: 1,
        filters: vec![SubscriptionRequest {
            filter: "$share/g/t".into(),
            no_local: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    raw.send_packet(subscribe, Protocol::V5).await;
    let (code, why) = v5_disconnect(&raw.read_until_closed().await);
    assert_eq!(code, 0x82, "Protocol Error");
    assert!(
        why.is_some_and(|w| w.contains("No Local")),
        "the reason string says why"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_member_that_unsubscribes_hands_its_unacknowledged_messages_to_another() {
    let broker = start_broker().await;
    let (mut stuck, mut healthy, mut got) = stuck_and_healthy(broker.mqtt_addr(), 10).await;

    // UNSUBSCRIBE $share/g/work, packet id 2, and stay connected.
    let filter = b"$share/g/work";
    let mut unsubscribe = vec![0xa2, (2 + 2 + filter.len()) as u8, 0, 2, 0, filter.len() as u8];
    unsubscribe.extend_from_slice(filter);
    stuck.send(&unsubscribe).await;
    while got.len() < 10 {
        got.insert(seq_of(&healthy.expect_publish().await.payload));
    }
    assert_eq!(got, (0..10).collect());
    broker.shutdown().await;
}

#[tokio::test]
async fn a_broker_without_shared_subscriptions_says_so_and_refuses_them() {
    let mut config = test_config();
    config.limits.shared_subscriptions = false;
    let broker = start_with(config).await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v5("no-share")).await;
    let connack = raw.read_frame().await;
    assert!(
        connack.windows(2).any(|w| w == [0x2a, 0x00]),
        "CONNACK says Shared Subscription Available = 0: {connack:02x?}"
    );
    let subscribe = Codec::Subscribe(Subscribe {
        pkid: 3,
        filters: vec![SubscriptionRequest {
            filter: "$share/g/t".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    raw.send_packet(subscribe, Protocol::V5).await;
    // Told so in CONNACK, a 5.0 client that subscribes anyway commits a Protocol Error (§3.2.2.3.13).
    let (code, _) = v5_disconnect(&raw.read_until_closed().await);
    assert_eq!(code, 0x9e, "DISCONNECT Shared Subscriptions not supported");
    // A 3.1.1 client, told nothing, gets a failure code for that filter and stays connected.
    let mut old = Raw::connect(broker.mqtt_addr()).await;
    old.send(&connect_v311("no-share-311")).await;
    old.read_exact(4).await;
    old.send(&subscribe_v311(1, "$share/g/t", 1)).await;
    assert_eq!(old.read_exact(5).await, vec![0x90, 0x03, 0x00, 0x01, 0x80]);
    broker.shutdown().await;
}
