//! A subscriber that stops reading cannot slow publishers or other subscribers: its outgoing queue is bounded
//! and its overflow policy applies, with every drop counted.

use crate::common;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::OverflowPolicy;
use rumqttc::QoS;

const MESSAGES: usize = 300;
const PAYLOAD: usize = 64 * 1024;

/// A raw subscriber to `big` that never reads from its socket.
async fn stalled_subscriber(addr: std::net::SocketAddr) -> Raw {
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311("stalled")).await;
    raw.read_exact(4).await;
    raw.send(&subscribe_v311(1, "big", 0)).await;
    assert_eq!(raw.read_exact(5).await, vec![0x90, 0x03, 0x00, 0x01, 0x00]);
    raw
}

/// Returns the broker and the stalled subscriber's socket (kept open: dropping it would disconnect it).
async fn run(policy: OverflowPolicy) -> (ractmq::Broker, Raw) {
    let mut config = test_config();
    config.limits.max_queue_len = 10;
    config.limits.queue_overflow = policy;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let stalled = stalled_subscriber(addr).await;
    let mut o = options(addr, "healthy");
    o.set_max_packet_size(PAYLOAD + 100, PAYLOAD + 100);
    let mut healthy = Client::connect_with(o).await;
    healthy.subscribe("big", QoS::AtMostOnce).await;

    let mut publisher = Client::connect_with({
        let mut o = options(addr, "publisher");
        o.set_max_packet_size(PAYLOAD + 100, PAYLOAD + 100);
        o
    })
    .await;
    // Lockstep with the healthy subscriber: message i+1 is published once message i arrived there, so the
    // healthy subscriber never has a backlog and any overflow is the stalled subscriber's alone.
    for i in 0..MESSAGES {
        let mut payload = vec![0u8; PAYLOAD];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        publisher.publish("big", QoS::AtLeastOnce, false, payload).await;
        let p = healthy.expect_publish().await;
        assert_eq!(
            &p.payload[..4],
            (i as u32).to_be_bytes(),
            "the healthy subscriber gets everything in order"
        );
    }
    // Every publish was acknowledged: the stalled subscriber never held the publisher up.
    let mut acked = 0;
    while acked < MESSAGES {
        if let Ok(rumqttc::Packet::PubAck(_)) = publisher.next().await {
            acked += 1;
        }
    }
    (broker, stalled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_bounds_the_queue_and_counts() {
    let (broker, _stalled) = run(OverflowPolicy::DropNewest).await;
    assert!(
        Metrics::get(&broker.metrics().dropped_queue_full) > 0,
        "the stalled subscriber's overflow was counted"
    );
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 3);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_bounds_the_queue_and_counts() {
    let (broker, _stalled) = run(OverflowPolicy::DropOldest).await;
    assert!(Metrics::get(&broker.metrics().dropped_queue_full) > 0);
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 3);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_disconnects_only_the_slow_subscriber() {
    let (broker, _stalled) = run(OverflowPolicy::Disconnect).await;
    eventually("slow subscriber disconnected", || {
        Metrics::get(&broker.metrics().disconnected_slow_subscribers) == 1
            && Metrics::get(&broker.metrics().clients_connected) == 2
    })
    .await;
    broker.shutdown().await;
}
