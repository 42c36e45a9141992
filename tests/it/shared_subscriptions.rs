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

    let mut group = Vec::new();
    for m in &mut members {
        let got = seqs_until_marker(m).await;
        assert_eq!(got.len(), 10, "round-robin gives each of 3 members a third: {got:?}");
        group.extend(got);
    }
    assert_each_once(group, 30, "the group: every message to one member, once");
    assert_each_once(
        seqs_until_marker(&mut audit).await,
        30,
        "a one-member group gets everything",
    );
    assert_each_once(
        seqs_until_marker(&mut plain).await,
        30,
        "plain subscribers are unaffected",
    );
    broker.shutdown().await;
}

/// The sequence numbers a client receives until the marker, in order of arrival (repeats included).
async fn seqs_until_marker(client: &mut Client) -> Vec<u32> {
    client
        .publishes_until("marker")
        .await
        .iter()
        .map(|p| seq_of(&p.payload))
        .collect()
}

/// `got` is 0..n, each exactly once: a message delivered twice fails as surely as one lost.
fn assert_each_once(mut got: Vec<u32>, n: u32, what: &str) {
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "{what}");
}

/// Three members of `$share/g/sensor/+` on a broker with `strategy`; `publish` runs, then a marker is
/// published; checks that each of `expected` (topic, sequence number) reached exactly one member exactly once
/// and nothing else arrived, and returns how many messages each member got.
async fn shares_with(
    strategy: SharedStrategy,
    expected: &[(String, u32)],
    publish: impl AsyncFnOnce(std::net::SocketAddr),
) -> Vec<usize> {
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
    let mut all = Vec::new();
    for m in &mut members {
        let got = m.publishes_until("marker").await;
        counts.push(got.len());
        all.extend(got.iter().map(|p| (p.topic.clone(), seq_of(&p.payload))));
    }
    broker.shutdown().await;
    all.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(all, expected, "each message to exactly one member, once: {counts:?}");
    counts
}

/// (topic, n) for n in `range`.
fn on(topic: &str, range: std::ops::Range<u32>) -> Vec<(String, u32)> {
    range.map(|n| (topic.to_string(), n)).collect()
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
    let counts = shares_with(SharedStrategy::HashTopic, &on("sensor/7", 0..20), async |addr| {
        publish_as(addr, "p", "sensor/7", 20).await
    })
    .await;
    assert_eq!(members_used(&counts), 1, "one member got topic sensor/7: {counts:?}");
}

#[tokio::test]
async fn sticky_keeps_one_member() {
    let expected = [on("sensor/1", 0..10), on("sensor/2", 0..10)].concat();
    let counts = shares_with(SharedStrategy::Sticky, &expected, async |addr| {
        publish_as(addr, "p1", "sensor/1", 10).await;
        publish_as(addr, "p2", "sensor/2", 10).await;
    })
    .await;
    assert_eq!(members_used(&counts), 1, "every message to the same member: {counts:?}");
}

#[tokio::test]
async fn hash_clientid_sends_one_publisher_to_one_member() {
    // Different topics from one publisher: only the publisher's id decides.
    let expected: Vec<_> = (0..20).map(|i| (format!("sensor/{i}"), i)).collect();
    let counts = shares_with(SharedStrategy::HashClientId, &expected, async |addr| {
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
    assert_eq!(members_used(&counts), 1, "one publisher, one member: {counts:?}");
}

#[tokio::test]
async fn random_spreads_over_the_members_and_sends_each_message_once() {
    let counts = shares_with(SharedStrategy::Random, &on("sensor/r", 0..200), async |addr| {
        publish_as(addr, "p", "sensor/r", 200).await
    })
    .await;
    // All 200 to one member would be a 3 x (1/3)^200 chance.
    assert!(
        members_used(&counts) > 1,
        "random uses more than one member: {counts:?}"
    );
}

/// Two members of `$share/g/work`: a raw client that takes messages and never acknowledges them, and a
/// healthy one. After `n` messages, returns both and the sequence numbers the healthy one got, in order of
/// arrival (half of them, each once: round-robin gives the stuck member the other half).
async fn stuck_and_healthy(addr: std::net::SocketAddr, n: u32) -> (Raw, Client, Vec<u32>) {
    let mut stuck = Raw::connect(addr).await;
    stuck.send(&connect_v311("stuck")).await;
    stuck.read_exact(4).await;
    stuck.send(&subscribe_v311(1, "$share/g/work", 1)).await;
    assert_eq!(stuck.read_exact(5).await, vec![0x90, 0x03, 0x00, 0x01, 0x01]);
    let mut healthy = Client::connect(addr, "healthy").await;
    healthy.subscribe("$share/g/work", QoS::AtLeastOnce).await;
    healthy.subscribe("marker", QoS::AtLeastOnce).await;
    publish_numbered(addr, "work", n).await;
    let got = seqs_until_marker(&mut healthy).await;
    let distinct: BTreeSet<u32> = got.iter().copied().collect();
    assert_eq!(
        (got.len(), distinct.len()),
        (n as usize / 2, n as usize / 2),
        "round-robin: half of them, each once; the stuck member holds the other half: {got:?}"
    );
    (stuck, healthy, got)
}

/// Wait until the stuck member's `n` messages were handed to the healthy one, then publish a marker: the healthy
/// member has everything it will ever get once it has the marker.
async fn handed_off_then_marker(broker: &ractmq::Broker, n: u64) {
    eventually(&format!("{n} messages handed off"), || {
        Metrics::get(&broker.metrics().shared_handed_off) == n
    })
    .await;
    broker
        .publish("marker", "after the hand-off", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_member_that_leaves_hands_its_unacknowledged_messages_to_another() {
    let broker = start_broker().await;
    let (stuck, mut healthy, mut got) = stuck_and_healthy(broker.mqtt_addr(), 20).await;

    drop(stuck); // leaves without acknowledging anything
    handed_off_then_marker(&broker, 10).await;
    got.extend(seqs_until_marker(&mut healthy).await);
    assert_each_once(got, 20, "nothing lost with the member that left, nothing twice");
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
    handed_off_then_marker(&broker, 5).await;
    got.extend(seqs_until_marker(&mut healthy).await);
    assert_each_once(got, 10, "nothing lost with the member that unsubscribed, nothing twice");
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
