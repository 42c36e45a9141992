//! Chaos: QoS 1 traffic to 100 persistent-session clients while 10% of their session actors and one topic
//! shard are killed. Nobody else notices; the killed clients resume and lose nothing.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use ractmq::parts::broker::Metrics;
use rumqttc::{Packet, QoS};

const CLIENTS: usize = 100;
const MESSAGES: u32 = 30;

fn topic(i: usize) -> String {
    // Spread the subscriptions over several first levels, and so over several shards.
    format!("t{}/{i}", i % 8)
}

fn persistent(addr: std::net::SocketAddr, i: usize) -> rumqttc::MqttOptions {
    let mut o = options(addr, &format!("c{i}"));
    o.set_clean_session(false);
    o
}

/// Collect sequence numbers until all `MESSAGES` are seen; returns whether the connection dropped first.
async fn collect(client: &mut Client, seen: &mut BTreeSet<u32>) -> bool {
    while seen.len() < MESSAGES as usize {
        match client.next().await {
            Ok(Packet::Publish(p)) => {
                seen.insert(u32::from_be_bytes(p.payload[..4].try_into().unwrap()));
            }
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_sessions_and_a_shard_loses_no_acknowledged_message() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut c = Client::connect_with(persistent(addr, i)).await;
        c.subscribe(&topic(i), QoS::AtLeastOnce).await;
        clients.push(c);
    }
    let subscriptions_before = broker.kernel().router.subscription_count();
    assert_eq!(subscriptions_before, CLIENTS);

    // The publisher counts PUBACKs: every message it counts was acknowledged by the broker.
    let mut publisher = Client::connect(addr, "publisher").await;
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let publishing = tokio::spawn(async move {
        let mut reached_tx = Some(reached_tx);
        let mut killed_rx = Some(killed_rx);
        for seq in 0..MESSAGES {
            for i in 0..CLIENTS {
                publisher
                    .publish(&topic(i), QoS::AtLeastOnce, false, seq.to_be_bytes().to_vec())
                    .await;
            }
            if seq == MESSAGES / 3 {
                // Let the killer act while a third is out, and publish the rest after it did.
                reached_tx.take().unwrap().send(()).unwrap();
                killed_rx.take().unwrap().await.unwrap();
            }
        }
        let mut acked = 0u32;
        while acked < MESSAGES * CLIENTS as u32 {
            match publisher.next().await {
                Ok(Packet::PubAck(_)) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher disconnected: {e}"),
            }
        }
        acked
    });

    reached_rx.await.unwrap();
    let shard = broker.kernel().router.shard_of_filter(&topic(0));
    let victims: Vec<usize> = (0..CLIENTS).step_by(10).collect();
    for &i in &victims {
        assert!(broker.chaos().kill_session(&format!("c{i}")).await);
    }
    assert!(broker.chaos().kill_shard(shard).await);
    killed_tx.send(()).unwrap();

    let acked = publishing.await.unwrap();
    assert_eq!(acked, MESSAGES * CLIENTS as u32, "every publish acknowledged");

    for (i, client) in clients.iter_mut().enumerate() {
        let mut seen = BTreeSet::new();
        let dropped = collect(client, &mut seen).await;
        if victims.contains(&i) {
            if dropped {
                // Reconnect with the same persistent session and collect the rest.
                let mut again = Client::start(persistent(addr, i));
                assert!(again.expect_connack().await.session_present, "c{i} resumes its session");
                assert!(
                    !collect(&mut again, &mut seen).await,
                    "c{i} stays connected after resuming"
                );
            }
        } else {
            assert!(!dropped, "c{i} was not killed and must not be disconnected");
        }
        assert_eq!(seen.len(), MESSAGES as usize, "c{i} received every sequence number");
    }
    assert_eq!(Metrics::get(&broker.metrics().session_restarts), victims.len() as u64);
    assert_eq!(Metrics::get(&broker.metrics().shard_restarts), 1);
    assert_eq!(
        broker.kernel().router.subscription_count(),
        subscriptions_before,
        "the rebuilt shard lost nothing"
    );
    broker.shutdown().await;
}
