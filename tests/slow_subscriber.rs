//! A subscriber that stops reading cannot slow publishers or other subscribers: its outgoing queue is bounded
//! and its overflow policy applies, with every drop counted.

mod common;

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

async fn run(policy: OverflowPolicy) -> ractmq::Broker {
    let mut config = test_config();
    config.limits.max_queue_len = 10;
    config.limits.queue_overflow = policy;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let _stalled = stalled_subscriber(addr).await;
    let mut o = options(addr, "healthy");
    o.set_max_packet_size(PAYLOAD + 100, PAYLOAD + 100);
    let mut healthy = Client::connect_with(o).await;
    healthy.subscribe("big", QoS::AtMostOnce).await;

    let mut o = options(addr, "publisher");
    o.set_max_packet_size(PAYLOAD + 100, PAYLOAD + 100);
    // One message in flight at a time: the healthy subscriber keeps up by construction, so any overflow is the
    // stalled subscriber's, and every PUBACK proves the publisher was never held up by it.
    o.set_inflight(1);
    let mut publisher = Client::connect_with(o).await;
    for i in 0..MESSAGES {
        let mut payload = vec![0u8; PAYLOAD];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        publisher
            .publish("big", QoS::AtLeastOnce, false, payload)
            .await;
    }
    let mut acked = 0;
    while acked < MESSAGES {
        if let Ok(rumqttc::Packet::PubAck(_)) = publisher.next().await {
            acked += 1;
        }
    }
    for i in 0..MESSAGES {
        let p = healthy.expect_publish().await;
        assert_eq!(
            &p.payload[..4],
            (i as u32).to_be_bytes(),
            "the healthy subscriber gets everything in order"
        );
    }
    broker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_bounds_the_queue_and_counts() {
    let broker = run(OverflowPolicy::DropNewest).await;
    assert!(
        Metrics::get(&broker.metrics().dropped_queue_full) > 0,
        "the stalled subscriber's overflow was counted"
    );
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 3);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_bounds_the_queue_and_counts() {
    let broker = run(OverflowPolicy::DropOldest).await;
    assert!(Metrics::get(&broker.metrics().dropped_queue_full) > 0);
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 3);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_disconnects_only_the_slow_subscriber() {
    let broker = run(OverflowPolicy::Disconnect).await;
    eventually("slow subscriber disconnected", || {
        Metrics::get(&broker.metrics().disconnected_slow_subscribers) == 1
            && Metrics::get(&broker.metrics().clients_connected) == 2
    })
    .await;
    broker.shutdown().await;
}
