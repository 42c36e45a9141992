//! Per-client queue rules, over real sockets: two subscribers that stop reading, one publisher publishing to
//! both. The one a rule matches gets the rule's queue (10 messages, stalled after 300 ms, then disconnected);
//! the other keeps the node-wide one (20 messages, stalled after 1 s, then its oldest messages dropped) and stays
//! connected, still served once it reads again.

use crate::common;

use std::time::Duration;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::{ListenerKind, OverflowPolicy, Pattern, QueueRule};
use rumqttc::QoS;

const MESSAGES: usize = 300;
const PAYLOAD: usize = 64 * 1024;

/// A raw 3.1.1 subscriber to `big` at QoS 0 that reads nothing after its SUBACK.
async fn stuck_subscriber(addr: std::net::SocketAddr, id: &str) -> Raw {
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311(id)).await;
    assert_eq!(raw.read_exact(4).await, vec![0x20, 0x02, 0x00, 0x00], "CONNACK of {id}");
    raw.send(&subscribe_v311(1, "big", 0)).await;
    assert_eq!(
        raw.read_exact(5).await,
        vec![0x90, 0x03, 0x00, 0x01, 0x00],
        "SUBACK of {id}"
    );
    raw
}

/// The payload of a 3.1.1 QoS 0 PUBLISH frame, or None for another packet.
fn payload(frame: &[u8]) -> Option<&[u8]> {
    if frame[0] & 0xf0 != 0x30 {
        return None;
    }
    let header = 1 + frame[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let topic_len = usize::from(u16::from_be_bytes([frame[header], frame[header + 1]]));
    Some(&frame[header + 2 + topic_len..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_disconnects_the_stuck_subscriber_it_matches_and_not_the_other() {
    let mut config = test_config();
    config.limits.max_queue_len = 20;
    config.limits.queue_overflow = OverflowPolicy::DropOldest;
    config.limits.stall_timeout = Duration::from_secs(1);
    config.queue_rules = vec![
        // Matches no client here (they are all on TCP): the listener kind counts.
        QueueRule {
            listener: Some(ListenerKind::Ws),
            overflow: Some(OverflowPolicy::Disconnect),
            ..QueueRule::default()
        },
        QueueRule {
            client_id: Some(Pattern::new("slow-*").unwrap()),
            max_len: Some(10),
            overflow: Some(OverflowPolicy::Disconnect),
            stall_timeout: Some(Duration::from_millis(300)),
            ..QueueRule::default()
        },
    ];
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let mut slow = stuck_subscriber(addr, "slow-1").await;
    let mut stuck = stuck_subscriber(addr, "stuck-1").await;

    let mut o = options(addr, "publisher");
    o.set_max_packet_size(PAYLOAD + 100, PAYLOAD + 100);
    let mut publisher = Client::connect_with(o).await;
    for i in 0..MESSAGES {
        let mut payload = vec![0u8; PAYLOAD];
        payload[..4].copy_from_slice(&(i as u32).to_be_bytes());
        publisher.publish("big", QoS::AtLeastOnce, false, payload).await;
    }
    // Every publish is acknowledged: neither stuck subscriber holds the publisher for good.
    let mut acked = 0;
    while acked < MESSAGES {
        if let Ok(rumqttc::Packet::PubAck(_)) = publisher.next().await {
            acked += 1;
        }
    }

    // Both were found stalled; only the one the rule matches was disconnected.
    let metrics = broker.metrics();
    eventually("both stuck subscribers stalled, slow-1 disconnected", || {
        Metrics::get(&metrics.subscribers_stalled) == 2
            && Metrics::get(&metrics.disconnected_slow_subscribers) == 1
            && Metrics::get(&metrics.clients_connected) == 2
    })
    .await;
    let view = broker.view();
    assert!(
        !view.client("slow-1").is_some_and(|c| c.connected),
        "slow-1 is no longer connected"
    );
    let other = view.client("stuck-1").expect("stuck-1 has a session");
    assert!(other.connected, "stuck-1 stays connected");
    assert!(
        other.queued > 10 && other.queued <= 20,
        "stuck-1's queue has the node-wide bound (20), not the rule's (10): {} queued",
        other.queued
    );
    assert!(
        Metrics::get(&metrics.dropped_queue_full) > 0,
        "stuck-1's oldest messages were dropped"
    );

    // Once read, slow-1's socket ends: the broker closed it after what it had already written.
    slow.read_until_closed().await;

    // stuck-1 is still served: it answers a ping, and the newest message reached it (drop-oldest kept it).
    stuck.send(&[0xc0, 0x00]).await;
    let (mut ponged, mut newest) = (false, false);
    while !(ponged && newest) {
        let frame = stuck.read_frame().await;
        if frame == [0xd0, 0x00] {
            ponged = true;
        } else if let Some(p) = payload(&frame) {
            newest |= p[..4] == ((MESSAGES - 1) as u32).to_be_bytes();
        }
    }
    assert_eq!(Metrics::get(&metrics.disconnected_slow_subscribers), 1);
    broker.shutdown().await;
}
