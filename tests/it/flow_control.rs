//! Flow control on the defaults a user gets: a subscriber that keeps reading gets every message however fast
//! publishers send, because publishers are held (their acknowledgements and their sockets) while its queue is
//! full; a subscriber that stops reading is found stalled after the stall timeout, its overflow policy applies,
//! and the publishers and the other subscribers go on, with its queue bounded in messages and in bytes.

use std::collections::HashMap;
use std::time::Duration;

use crate::common;

use common::load::{assert_each_once, numbered, publish_bursts, Subscriber};
use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::OverflowPolicy;
use rumqttc::QoS;

/// Four publishers send a burst to one subscriber that falls behind: it stops reading until publishers are
/// held, then reads again. On the defaults, it gets everything, exactly once, and nothing is dropped.
async fn fan_in_burst_is_delivered_in_full(qos: QoS, count: u32) {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Subscriber::connect(addr, "reader", "burst/#", qos).await;
    let publishers = publish_bursts(addr, 4, count, qos, 1024);
    // The subscriber does not read until its queue has filled and held the publishers.
    eventually("a publisher is held by the subscriber's full queue", || {
        Metrics::get(&broker.metrics().publishers_held) > 0
    })
    .await;
    let seen = sub.count_until_ends(4).await;
    for p in publishers {
        p.await.unwrap();
    }
    assert_each_once(&seen, 4, count, "the subscriber");
    assert_eq!(broker.metrics().dropped_total(), 0, "nothing dropped anywhere");
    assert_eq!(Metrics::get(&broker.metrics().subscribers_stalled), 0);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos0_burst_reaches_a_subscriber_that_fell_behind_in_full() {
    fan_in_burst_is_delivered_in_full(QoS::AtMostOnce, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_burst_reaches_a_subscriber_that_fell_behind_in_full() {
    fan_in_burst_is_delivered_in_full(QoS::AtLeastOnce, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos2_burst_reaches_a_subscriber_that_fell_behind_in_full() {
    fan_in_burst_is_delivered_in_full(QoS::ExactlyOnce, 2_000).await;
}

/// A held publisher's acknowledgements wait: a QoS 1 publish that filled a subscriber's queue is not
/// acknowledged while the subscriber does not read, and is acknowledged once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_publisher_gets_its_puback_only_once_the_queue_has_room() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut sub = Subscriber::connect(addr, "reader", "burst/#", QoS::AtLeastOnce).await;
    let mut publisher = Raw::connect(addr).await;
    publisher.send(&connect_v311("raw-pub")).await;
    publisher.read_exact(4).await;
    // Publish one at a time, each waiting for its PUBACK, until the broker holds the publisher instead of
    // acknowledging: the subscriber's queue is full.
    let mut held_at = None;
    for n in 1..=20_000u16 {
        publisher
            .send(&publish_v311("burst", 1, n, false, &numbered(0, u32::from(n), 1024)))
            .await;
        let held = eventually("a PUBACK, or the publisher held", || {
            Metrics::get(&broker.metrics().publishers_held) > 0
        });
        tokio::select! {
            ack = publisher.read_exact(4) => assert_eq!(ack, vec![0x40, 0x02, (n >> 8) as u8, n as u8]),
            () = held => {
                held_at = Some(n);
                break;
            }
        }
    }
    let held_at = held_at.expect("the publisher was held before 20,000 messages of 1 KB");
    assert_eq!(Metrics::get(&broker.metrics().publishers_held), 1);
    // The subscriber reads again: the PUBACK comes, and every message arrives once.
    let mut seen = HashMap::new();
    for _ in 1..=held_at {
        let p = sub.next_publish().await;
        *seen
            .entry(u32::from_be_bytes(p.payload[1..5].try_into().unwrap()))
            .or_insert(0) += 1;
    }
    assert_eq!(
        publisher.read_exact(4).await,
        vec![0x40, 0x02, (held_at >> 8) as u8, held_at as u8]
    );
    assert_eq!(seen.len(), held_at as usize);
    assert!(seen.values().all(|&c| c == 1), "no message twice");
    assert_eq!(broker.metrics().dropped_total(), 0);
    broker.shutdown().await;
}

/// A raw subscriber to `topic` that never reads from its socket after its SUBACK.
async fn stuck_subscriber(addr: std::net::SocketAddr, id: &str, topic: &str, qos: u8) -> Raw {
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_v311(id)).await;
    raw.read_exact(4).await;
    raw.send(&subscribe_v311(1, topic, qos)).await;
    assert_eq!(raw.read_exact(5).await, vec![0x90, 0x03, 0x00, 0x01, qos]);
    raw
}

/// One stuck subscriber among healthy ones, two publishers: the publishers are held for the stall timeout,
/// then the stuck subscriber's policy (drop-oldest, the default) applies and they go on; the healthy
/// subscribers get every message exactly once, and the stuck one's queue stays within its bounds.
async fn a_stuck_subscriber_holds_publishers_only_for_the_stall_timeout(qos: QoS) {
    let mut config = test_config();
    config.limits.stall_timeout = Duration::from_millis(500);
    let (max_len, max_bytes) = (config.limits.max_queue_len, config.limits.max_queue_bytes);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let _stuck = stuck_subscriber(addr, "stuck", "burst/#", qos as u8).await;
    let mut healthy = Vec::new();
    for i in 0..3 {
        healthy.push(Subscriber::connect(addr, &format!("healthy-{i}"), "burst/#", qos).await);
    }
    let count = 3_000;
    let publishers = publish_bursts(addr, 2, count, qos, 16 * 1024);
    let readers: Vec<_> = healthy
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let seen = s.count_until_ends(2).await;
                (seen, s)
            })
        })
        .collect();
    for p in publishers {
        p.await
            .expect("the publishers finish: the stuck subscriber holds them only for the stall timeout");
    }
    let mut healthy = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        let (seen, subscriber) = r.await.unwrap();
        assert_each_once(&seen, 2, count, &format!("healthy subscriber {i}"));
        healthy.push(subscriber);
    }
    let metrics = broker.metrics();
    assert_eq!(
        Metrics::get(&metrics.subscribers_stalled),
        1,
        "only the stuck one stalled"
    );
    assert!(Metrics::get(&metrics.publishers_held) > 0);
    assert!(
        Metrics::get(&metrics.dropped_queue_full) > 0,
        "the stuck subscriber's overflow is counted"
    );
    let stuck = broker.view().client("stuck").unwrap();
    let (len, bytes) = (stuck.queued, stuck.queued_bytes);
    // Past the stall its queue keeps to its bounds (a message may be in flight from each publisher).
    assert!(len <= max_len, "{len} messages queued for the stuck subscriber");
    assert!(bytes <= max_bytes, "{bytes} bytes queued for the stuck subscriber");
    let view = broker.view();
    let online =
        ["stuck", "healthy-0", "healthy-1", "healthy-2"].map(|id| view.client(id).is_some_and(|c| c.connected));
    assert_eq!(online, [true; 4], "no subscriber was disconnected");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_qos1_subscriber_holds_publishers_only_for_the_stall_timeout() {
    a_stuck_subscriber_holds_publishers_only_for_the_stall_timeout(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_qos2_subscriber_holds_publishers_only_for_the_stall_timeout() {
    a_stuck_subscriber_holds_publishers_only_for_the_stall_timeout(QoS::ExactlyOnce).await;
}

/// A subscriber to large messages that stops reading holds its byte bound, not its message bound's worth
/// (1,000 messages of 512 KB would be half a gigabyte), once it is found stalled; the healthy subscriber beside it
/// gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_subscriber_to_large_messages_holds_no_more_than_its_byte_bound() {
    let mut config = test_config();
    config.limits.stall_timeout = Duration::from_millis(500);
    let max_bytes = config.limits.max_queue_bytes;
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let _stuck = stuck_subscriber(addr, "stuck", "big", 0).await;
    let mut healthy = Subscriber::connect(addr, "healthy", "big", QoS::AtMostOnce).await;
    let publisher = Client::connect(addr, "publisher").await;
    let messages = 100u32;
    let reader = tokio::spawn(async move {
        let mut seen = HashMap::new();
        while seen.values().sum::<usize>() < messages as usize {
            let p = healthy.next_publish().await;
            *seen
                .entry(u32::from_be_bytes(p.payload[1..5].try_into().unwrap()))
                .or_insert(0) += 1;
        }
        seen
    });
    for n in 0..messages {
        publisher
            .publish("big", QoS::AtMostOnce, false, numbered(0, n, 512 * 1024))
            .await;
    }
    let seen = reader.await.unwrap();
    assert_eq!(
        seen.len(),
        messages as usize,
        "the healthy subscriber got every message once"
    );
    let bytes = broker.view().client("stuck").unwrap().queued_bytes;
    assert!(bytes <= max_bytes, "{bytes} bytes queued, bound {max_bytes}");
    assert_eq!(Metrics::get(&broker.metrics().subscribers_stalled), 1);
    assert!(
        Metrics::get(&broker.metrics().dropped_queue_full) > 0,
        "what it could not take is counted"
    );
    broker.shutdown().await;
}

/// A stuck subscriber with `max_queue` 10 among a healthy one, a publisher sending 300 numbered messages of
/// 64 KB and an end marker: returns the broker, what the stuck subscriber's session holds (see [`Stuck`]), and
/// both subscribers.
async fn stuck_with_policy(policy: OverflowPolicy) -> (ractmq::Broker, Stuck, Raw, Subscriber) {
    let mut config = test_config();
    config.limits.max_queue_len = 10;
    config.limits.queue_overflow = policy;
    config.limits.stall_timeout = Duration::from_millis(300);
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let stuck = stuck_subscriber(addr, "stuck", "burst/#", 1).await;
    let mut healthy = Subscriber::connect(addr, "healthy", "burst/#", QoS::AtLeastOnce).await;
    let publisher = publish_bursts(addr, 1, STUCK_COUNT, QoS::AtLeastOnce, 64 * 1024);
    let seen = healthy.count_until_ends(1).await;
    publisher.into_iter().next().unwrap().await.unwrap();
    assert_each_once(&seen, 1, STUCK_COUNT, "the healthy subscriber");
    assert_eq!(Metrics::get(&broker.metrics().subscribers_stalled), 1);
    let number = |m: &ractmq::Message| u32::from_be_bytes(m.payload[1..5].try_into().unwrap());
    let view = broker.view();
    let held = match (view.inflight_messages("stuck"), view.queued_messages("stuck")) {
        (Some(inflight), Some(queued)) => {
            let sent = inflight.iter().map(|m| number(m)).collect();
            let end_queued = queued.iter().any(|m| m.topic.as_ref() == "burst/end");
            let queued = queued
                .into_iter()
                .filter(|m| m.topic.as_ref() == "burst")
                .map(|m| number(&m))
                .collect();
            Stuck {
                sent,
                queued,
                end_queued,
            }
        }
        _ => Stuck::default(), // disconnected, and with a clean session, gone
    };
    (broker, held, stuck, healthy)
}

/// Numbered messages the stuck subscriber tests publish.
const STUCK_COUNT: u32 = 300;

/// What the stuck subscriber's session holds at the end.
#[derive(Default)]
struct Stuck {
    /// Numbers sent to its connection (in flight, unacknowledged: it reads nothing), oldest first.
    sent: Vec<u32>,
    /// Numbers left in its queue, oldest first.
    queued: Vec<u32>,
    /// The end marker, published last, is queued.
    end_queued: bool,
}

impl Stuck {
    /// The first number that never reached the connection: what came before went out in order, and the
    /// overflow policy chose among the rest, of which `dropped` are gone.
    fn first_unsent(&self, dropped: u64) -> u32 {
        let first = self.sent.len() as u32;
        assert_eq!(self.sent, (0..first).collect::<Vec<_>>(), "sent in order");
        // The numbers after the sent ones and the end marker: each one is either queued or dropped.
        let kept = self.queued.len() as u64 + u64::from(self.end_queued);
        assert_eq!(
            dropped + kept,
            u64::from(STUCK_COUNT - first) + 1,
            "every message not sent is queued or counted as dropped"
        );
        assert!(
            first + 20 < STUCK_COUNT,
            "well over the bound of 10 was left to choose from: {first} sent"
        );
        first
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_a_stalled_subscribers_newest_messages() {
    let (broker, stuck, _stuck, _healthy) = stuck_with_policy(OverflowPolicy::DropOldest).await;
    stuck.first_unsent(Metrics::get(&broker.metrics().dropped_queue_full));
    // The newest: the end marker and the 9 numbers before it; the older unsent ones were dropped.
    assert!(stuck.end_queued, "the newest message, the end marker, is kept");
    assert_eq!(
        stuck.queued,
        (STUCK_COUNT - 9..STUCK_COUNT).collect::<Vec<_>>(),
        "the newest are kept"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_newest_keeps_a_stalled_subscribers_oldest_messages() {
    let (broker, stuck, _stuck, _healthy) = stuck_with_policy(OverflowPolicy::DropNewest).await;
    let first = stuck.first_unsent(Metrics::get(&broker.metrics().dropped_queue_full));
    // The oldest it had not been sent: the 10 right after those that went out; the newer ones were dropped, the
    // end marker with them.
    assert_eq!(
        stuck.queued,
        (first..first + 10).collect::<Vec<_>>(),
        "the oldest are kept"
    );
    assert!(!stuck.end_queued, "the newest message, the end marker, is dropped");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_disconnects_only_the_stalled_subscriber() {
    let (broker, _, mut stuck, _healthy) = stuck_with_policy(OverflowPolicy::Disconnect).await;
    assert_eq!(Metrics::get(&broker.metrics().disconnected_slow_subscribers), 1);
    stuck.read_until_closed().await;
    assert!(broker.view().client("healthy").unwrap().connected);
    broker.shutdown().await;
}

/// A persistent session's offline queue is bounded in bytes too: 60 messages of 512 KB (30 MB) to a session
/// whose client is away leave at most `max_offline_queue_bytes` queued, the newest ones (drop-oldest), and the
/// client gets them when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_queue_keeps_within_its_byte_bound() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let max_bytes = test_config().limits.max_offline_queue_bytes;
    let away = |addr| {
        let mut o = options(addr, "away");
        o.set_clean_session(false);
        o
    };
    leave_offline_session(&broker, "away", "off/#").await;
    let publisher = Client::connect(addr, "publisher").await;
    let messages = 60u32;
    for n in 0..messages {
        publisher
            .publish("off/big", QoS::AtLeastOnce, false, numbered(0, n, 512 * 1024))
            .await;
    }
    publisher.publish("off/end", QoS::AtLeastOnce, false, vec![0]).await;
    eventually("every message routed", || {
        Metrics::get(&broker.metrics().messages_received) == u64::from(messages) + 1
    })
    .await;
    let session = broker.view().client("away").unwrap();
    let (len, bytes) = (session.queued, session.queued_bytes);
    assert!(bytes <= max_bytes, "{bytes} bytes queued offline, bound {max_bytes}");
    assert!(Metrics::get(&broker.metrics().dropped_offline_queue_full) > 0);
    // Back: it gets what was kept, the newest, in order, the end marker last.
    let mut back = Client::connect_with(away(addr)).await;
    let got: Vec<u32> = back
        .publishes_until("off/end")
        .await
        .iter()
        .map(|p| u32::from_be_bytes(p.payload[1..5].try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), len - 1, "every kept message but the marker");
    assert_eq!(got, (messages - got.len() as u32..messages).collect::<Vec<_>>());
    broker.shutdown().await;
}
