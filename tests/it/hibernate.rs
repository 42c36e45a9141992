//! Hibernation: an idle connected session gives up its actor and keeps its connection (a new session starts
//! that way, until its client first speaks). Whatever arrives next —
//! a delivery, a packet from the client, a takeover, a kill, a keepalive timeout, a shutdown — is handled as if
//! it had never slept, in order and without loss.

use crate::common;

use std::time::Duration;

use common::*;
use ractmq::parts::broker::Metrics;
use ractmq::BrokerConfig;
use rumqttc::QoS;

fn hibernating_config() -> BrokerConfig {
    BrokerConfig {
        hibernate_after: Duration::from_millis(50),
        ..test_config()
    }
}

/// Wait until the session of `client_id` hibernates: its connection is parked and it has no actor.
async fn hibernating(broker: &ractmq::Broker, client_id: &str) {
    eventually(&format!("{client_id} hibernating"), || {
        broker.view().client(client_id).is_some_and(|c| c.hibernating)
    })
    .await;
}

fn persistent(addr: std::net::SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_clean_session(false);
    o
}

#[tokio::test]
async fn an_idle_subscriber_hibernates_and_gets_every_message_in_order() {
    let broker = start_with(hibernating_config()).await;
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "sleeper").await;
    sub.subscribe("h/t", QoS::AtLeastOnce).await;
    // It woke for its SUBSCRIBE; idle again, it goes back to sleep.
    hibernating(&broker, "sleeper").await;
    let woken = Metrics::get(&broker.metrics().sessions_woken);

    for i in 0..200u32 {
        broker
            .publish("h/t", i.to_be_bytes().to_vec(), ractmq::QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    for i in 0..200u32 {
        let p = sub.expect_publish().await;
        assert_eq!(p.payload.as_ref(), i.to_be_bytes(), "message {i} in order");
    }
    assert!(
        Metrics::get(&broker.metrics().sessions_woken) > woken,
        "the deliveries woke it"
    );
    hibernating(&broker, "sleeper").await;
    broker.shutdown().await;
}

#[tokio::test]
async fn a_hibernated_connection_answers_its_client_in_order() {
    let broker = start_with(hibernating_config()).await;
    let mut watcher = broker.subscribe("raw/#", 100).await.unwrap();
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v311("raw-sleeper")).await;
    assert_eq!(raw.read_exact(4).await, vec![0x20, 0x02, 0x00, 0x00]);
    hibernating(&broker, "raw-sleeper").await;

    // One write: a ping and twenty QoS 1 publishes reach the sleeping session together.
    let mut burst = vec![0xc0, 0x00];
    for id in 1..=20u16 {
        burst.extend(publish_v311("raw/t", 1, id, false, &id.to_be_bytes()));
    }
    raw.send(&burst).await;
    assert_eq!(raw.read_exact(2).await, vec![0xd0, 0x00], "PINGRESP first");
    for id in 1..=20u16 {
        let ack = raw.read_exact(4).await;
        assert_eq!(ack[..2], [0x40, 0x02], "PUBACK");
        assert_eq!(u16::from_be_bytes([ack[2], ack[3]]), id, "PUBACKs in order");
        let m = watcher.recv().await.unwrap();
        assert_eq!(m.payload.as_ref(), id.to_be_bytes(), "routed in order");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn keepalive_is_enforced_while_hibernated() {
    let broker = start_with(hibernating_config()).await;
    let mut watcher = broker.subscribe("will/sleeper", 10).await.unwrap();
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    let connect_sent = std::time::Instant::now();
    raw.send(&connect_v311_will("silent-sleeper", 1, "will/sleeper", "gone"))
        .await;
    assert_eq!(raw.read_exact(4).await, vec![0x20, 0x02, 0x00, 0x00]);
    hibernating(&broker, "silent-sleeper").await;
    let started = std::time::Instant::now();
    assert!(raw.read_until_closed().await.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "not closed long before 1.5 x keepalive"
    );
    assert_closed_within_keepalive(connect_sent, Duration::from_secs(1), "silent-sleeper");
    assert_eq!(
        watcher.recv().await.unwrap().payload.as_ref(),
        b"gone",
        "will published"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_new_connection_takes_over_a_hibernated_session() {
    let broker = start_with(hibernating_config()).await;
    let addr = broker.mqtt_addr();
    let mut old = Client::connect_with(persistent(addr, "dev")).await;
    old.subscribe("dev/in", QoS::AtLeastOnce).await;
    hibernating(&broker, "dev").await;

    let mut new = Client::start(persistent(addr, "dev"));
    assert!(new.expect_connack().await.session_present, "session resumed");
    old.expect_disconnect().await;
    broker
        .publish("dev/in", "hello", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(
        new.expect_publish().await.payload.as_ref(),
        b"hello",
        "subscription kept"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn killing_a_hibernated_session_restarts_it_from_the_store() {
    let broker = start_with(hibernating_config()).await;
    let addr = broker.mqtt_addr();
    let mut client = Client::connect_with(persistent(addr, "victim")).await;
    client.subscribe("victim/in", QoS::AtLeastOnce).await;
    hibernating(&broker, "victim").await;

    assert!(broker.chaos().kill_session("victim").await);
    client.expect_disconnect().await; // the connection goes with the session's actor
    assert_eq!(Metrics::get(&broker.metrics().session_restarts), 1);

    let mut again = Client::start(persistent(addr, "victim"));
    assert!(
        again.expect_connack().await.session_present,
        "session restored from the store"
    );
    broker
        .publish("victim/in", "still here", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(again.expect_publish().await.payload.as_ref(), b"still here");
    broker.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_hibernated_connections() {
    let broker = start_with(hibernating_config()).await;
    let mut raw = Raw::connect(broker.mqtt_addr()).await;
    raw.send(&connect_v311("closing")).await;
    raw.read_exact(4).await;
    hibernating(&broker, "closing").await;
    broker.shutdown().await;
    assert!(raw.read_until_closed().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_sleep_and_wake_constantly_lose_nothing_and_keep_order() {
    // Hibernate after 1 ms: every pause in the traffic races a wake against a hibernation.
    let broker = start_with(BrokerConfig {
        hibernate_after: Duration::from_millis(1),
        ..test_config()
    })
    .await;
    let addr = broker.mqtt_addr();
    const SUBSCRIBERS: usize = 20;
    const MESSAGES: u32 = 300;
    const BURST: u32 = 7;
    let mut subs = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut c = Client::connect(addr, &format!("flicker-{i}")).await;
        c.subscribe("flicker/t", QoS::AtLeastOnce).await;
        subs.push(c);
    }
    let publisher = Client::connect(addr, "flicker-pub").await;
    let woken_before = Metrics::get(&broker.metrics().sessions_woken);
    let mut bursts = 0;
    for first in (0..MESSAGES).step_by(BURST as usize) {
        // Every subscriber is asleep before each burst (waited for, not hoped for), so each burst wakes all
        // twenty, and each falls asleep again, racing the PUBACKs its client sends for the burst.
        for i in 0..SUBSCRIBERS {
            hibernating(&broker, &format!("flicker-{i}")).await;
        }
        let burst = first..(first + BURST).min(MESSAGES);
        for i in burst.clone() {
            publisher
                .publish("flicker/t", QoS::AtLeastOnce, false, i.to_be_bytes().to_vec())
                .await;
        }
        for (n, sub) in subs.iter_mut().enumerate() {
            for i in burst.clone() {
                let p = sub.expect_publish().await;
                assert_eq!(
                    p.payload.as_ref(),
                    i.to_be_bytes(),
                    "subscriber {n}: message {i} in order, none lost"
                );
            }
        }
        bursts += 1;
    }
    let woken = Metrics::get(&broker.metrics().sessions_woken) - woken_before;
    assert!(
        woken >= SUBSCRIBERS as u64 * bursts,
        "every subscriber slept before each of the {bursts} bursts and woke for it: {woken} wakes"
    );
    broker.shutdown().await;
}
