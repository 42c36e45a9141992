//! Chaos: QoS 1 traffic to 100 persistent-session clients while 10% of their session actors and one topic
//! shard are killed. Nobody else notices (each message exactly once); the killed clients resume and lose
//! nothing, and get a message twice only as QoS 1 allows it after a reconnection (see [`assert_received`]).

use crate::common;

use std::collections::HashMap;

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

/// The last message on each client's topic, after every numbered one.
const END: u32 = u32::MAX;

/// What one client received: for each sequence number, the DUP flag of each copy, per connection.
type Received = Vec<HashMap<u32, Vec<bool>>>;

/// Record what `client` (connection number `connection`) receives until the end marker; returns whether the
/// connection dropped first.
async fn collect(client: &mut Client, connection: usize, received: &mut Received) -> bool {
    received.resize_with(connection + 1, HashMap::new);
    loop {
        match client.next().await {
            Ok(Packet::Publish(p)) => {
                let seq = u32::from_be_bytes(p.payload[..4].try_into().unwrap());
                if seq == END {
                    return false;
                }
                received[connection].entry(seq).or_default().push(p.dup);
            }
            Ok(_) => {}
            Err(_) => return true,
        }
    }
}

/// Wait for `count` PUBACKs on `publisher`; returns how many came.
async fn pubacks(publisher: &mut Client, count: u32) -> u32 {
    let mut acked = 0u32;
    while acked < count {
        match publisher.next().await {
            Ok(Packet::PubAck(_)) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher disconnected: {e}"),
        }
    }
    acked
}

/// Every sequence number arrived. On one connection each came exactly once. A client whose session was
/// killed may get a message again on the connection that resumed the session, but only as QoS 1 allows
/// there: a message sent on the killed connection whose PUBACK the broker had not handled is sent again on
/// the next one with DUP set [MQTT-3.3.1-1] (3.1.1 §4.4: re-sent on reconnection, its only redelivery). So
/// per connection no number twice, and a number seen on both connections is a DUP on the second.
fn assert_received(client: usize, received: &Received) {
    for seq in 0..MESSAGES {
        let copies: Vec<&Vec<bool>> = received.iter().filter_map(|on| on.get(&seq)).collect();
        assert!(!copies.is_empty(), "c{client} never got {seq}");
        for (connection, on) in received.iter().enumerate() {
            let dups = on.get(&seq).map_or(&[][..], |d| &d[..]);
            assert!(
                dups.len() <= 1,
                "c{client} got {seq} {} times on connection {connection}",
                dups.len()
            );
            let earlier = received[..connection].iter().any(|before| before.contains_key(&seq));
            if !dups.is_empty() && earlier {
                assert_eq!(
                    dups,
                    [true],
                    "c{client} got {seq} again on connection {connection}: only as a DUP re-send"
                );
            }
        }
    }
    for (connection, on) in received.iter().enumerate() {
        let stray: Vec<&u32> = on.keys().filter(|&&seq| seq >= MESSAGES).collect();
        assert!(stray.is_empty(), "c{client} got {stray:?} on connection {connection}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_sessions_and_a_shard_loses_no_acknowledged_message() {
    kill_under_load(start_broker().await).await;
}

/// The same with every session and acknowledged message also kept on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_sessions_and_a_shard_with_durability_on_loses_no_acknowledged_message() {
    let data = tempfile::tempdir().unwrap();
    let config = ractmq::BrokerConfig {
        durability: ractmq::Durability::Disk(data.path().to_path_buf()),
        ..test_config()
    };
    kill_under_load(start_with(config).await).await;
}

async fn kill_under_load(broker: ractmq::Broker) {
    let addr = broker.mqtt_addr();
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut c = Client::connect_with(persistent(addr, i)).await;
        c.subscribe(&topic(i), QoS::AtLeastOnce).await;
        clients.push(c);
    }
    let subscriptions_before = broker.view().subscription_count();
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
        let acked = pubacks(&mut publisher, MESSAGES * CLIENTS as u32).await;
        // Last on each topic: a client that has it has everything it will get. The markers are acknowledged
        // before the publisher goes, like the rest: `publish` only queues them in rumqttc, and a client
        // dropped meanwhile closes its connection with those not yet written (see `Client`), so a marker
        // the broker never received would be waited for in vain.
        for i in 0..CLIENTS {
            publisher
                .publish(&topic(i), QoS::AtLeastOnce, false, END.to_be_bytes().to_vec())
                .await;
        }
        assert_eq!(pubacks(&mut publisher, CLIENTS as u32).await, CLIENTS as u32);
        acked
    });

    reached_rx.await.unwrap();
    let shard = broker.view().shard_of_filter(&topic(0));
    let victims: Vec<usize> = (0..CLIENTS).step_by(10).collect();
    for &i in &victims {
        assert!(broker.chaos().kill_session(&format!("c{i}")).await);
    }
    assert!(broker.chaos().kill_shard(shard).await);
    killed_tx.send(()).unwrap();

    let acked = publishing.await.unwrap();
    assert_eq!(acked, MESSAGES * CLIENTS as u32, "every publish acknowledged");

    for (i, client) in clients.iter_mut().enumerate() {
        let mut received = Received::new();
        let dropped = collect(client, 0, &mut received).await;
        if victims.contains(&i) {
            assert!(dropped, "c{i}'s connection went with its killed session");
            // Reconnect with the same persistent session and collect the rest.
            let mut again = Client::start(persistent(addr, i));
            assert!(again.expect_connack().await.session_present, "c{i} resumes its session");
            assert!(
                !collect(&mut again, 1, &mut received).await,
                "c{i} stays connected after resuming"
            );
        } else {
            assert!(!dropped, "c{i} was not killed and must not be disconnected");
        }
        assert_received(i, &received);
    }
    assert_eq!(Metrics::get(&broker.metrics().session_restarts), victims.len() as u64);
    assert_eq!(Metrics::get(&broker.metrics().shard_restarts), 1);
    assert_eq!(
        broker.view().subscription_count(),
        subscriptions_before,
        "the rebuilt shard lost nothing"
    );
    broker.shutdown().await;
}
