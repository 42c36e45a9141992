//! Routing across a cluster of real `ractmq` processes on loopback, checked with real MQTT clients: a message
//! published on one node reaches the subscribers on every node at the QoS they asked for and in the order it
//! was published; retained messages and wills cross nodes; a shared subscription balances over members on
//! every node; a node killed with SIGKILL during QoS 1 traffic costs the other two nothing, and when it comes
//! back it routes again both ways.
//!
//! A SUBACK means the other nodes know the route (the broker waits for them), so a test publishes right
//! after subscribing. "Nothing more arrived" is proven with a marker message published last: messages from
//! one publisher keep their order across nodes, so everything before the marker has arrived when it has.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::cluster::{assert_in_order, numbers_until, start_cluster, until_all_list, Node};
use common::load::{assert_each_once, publish_bursts, Subscriber};
use common::{options, Client};
use rumqttc::{Packet, QoS};

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

async fn client(node: &Node, id: &str) -> Client {
    Client::connect(node.mqtt, id).await
}

/// (topic, payload, qos) of every publish up to the marker topic.
async fn received_until(client: &mut Client, marker: &str) -> Vec<(String, String, u8)> {
    client
        .publishes_until(marker)
        .await
        .into_iter()
        .map(|p| (p.topic, String::from_utf8_lossy(&p.payload).into_owned(), p.qos as u8))
        .collect()
}

#[tokio::test]
async fn a_publish_on_one_node_reaches_subscribers_on_every_node_at_each_qos_in_order() {
    let nodes = start_cluster(3, &[]).await;
    let mut here = client(&nodes[0], "sub-n1").await;
    here.subscribe("t/#", QoS::ExactlyOnce).await;
    let mut sub2 = client(&nodes[1], "sub-n2").await;
    sub2.subscribe("t/#", QoS::ExactlyOnce).await;
    // Two overlapping filters on one node: still one copy, at the higher QoS.
    let mut sub3 = client(&nodes[2], "sub-n3").await;
    sub3.subscribe("t/+/x", QoS::AtLeastOnce).await;
    sub3.subscribe("t/#", QoS::AtMostOnce).await;

    let publisher = client(&nodes[0], "pub-n1").await;
    let mut expected = Vec::new();
    for q in 0..=2u8 {
        for i in 0..20 {
            let topic = format!("t/{q}/x");
            publisher.publish(&topic, qos(q), false, format!("{q}-{i}")).await;
            expected.push((topic, format!("{q}-{i}"), q));
        }
    }
    publisher.publish("t/end/x", QoS::AtLeastOnce, false, "end").await;

    assert_eq!(
        received_until(&mut here, "t/end/x").await,
        expected,
        "subscriber on the publishing node"
    );
    assert_eq!(received_until(&mut sub2, "t/end/x").await, expected, "subscriber on n2");
    let capped: Vec<(String, String, u8)> = expected
        .iter()
        .map(|(t, p, q)| (t.clone(), p.clone(), (*q).min(1)))
        .collect();
    assert_eq!(
        received_until(&mut sub3, "t/end/x").await,
        capped,
        "subscriber on n3 (QoS 1 at most)"
    );
}

#[tokio::test]
async fn retained_messages_and_wills_are_seen_on_every_node() {
    let nodes = start_cluster(3, &[]).await;
    let mut watcher = client(&nodes[2], "watcher-n3").await;
    watcher.subscribe("marker", QoS::AtLeastOnce).await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;

    let publisher = client(&nodes[0], "pub-n1").await;
    publisher.publish("r/1", QoS::AtLeastOnce, true, "kept").await;
    publisher.publish("marker", QoS::AtLeastOnce, false, "after r/1").await;
    // The marker left n1 after the retained message, on the same link: n3 has it now.
    assert!(watcher.publishes_until("marker").await.is_empty());
    let mut late = client(&nodes[2], "late-n3").await;
    late.subscribe("r/#", QoS::AtLeastOnce).await;
    let p = late.expect_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.retain),
        ("r/1", &b"kept"[..], true)
    );

    // Cleared on n1, cleared everywhere.
    publisher.publish("r/1", QoS::AtLeastOnce, true, "").await;
    publisher
        .publish("marker", QoS::AtLeastOnce, false, "after clearing")
        .await;
    watcher.publishes_until("marker").await;
    let mut later = client(&nodes[1], "later-n2").await;
    later.subscribe("r/#", QoS::AtLeastOnce).await;
    later.subscribe("marker", QoS::AtLeastOnce).await;
    publisher
        .publish("marker", QoS::AtLeastOnce, false, "nothing retained before me")
        .await;
    assert!(
        later.publishes_until("marker").await.is_empty(),
        "a cleared retained message is gone on n2"
    );
    watcher.publishes_until("marker").await;

    // A client of n1 that vanishes without DISCONNECT: its will reaches n3.
    let mut o = options(nodes[0].mqtt, "mortal-n1");
    o.set_last_will(rumqttc::LastWill::new("will/mortal", "gone", QoS::AtLeastOnce, false));
    let mortal = Client::connect_with(o).await;
    mortal.stop();
    let p = watcher.expect_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("will/mortal", &b"gone"[..]));
}

#[tokio::test]
async fn a_shared_subscription_balances_over_members_on_every_node() {
    let nodes = start_cluster(3, &[]).await;
    let got: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut done = Vec::new();
    for (node, id) in [(1, "m1-n2"), (1, "m2-n2"), (2, "m3-n3")] {
        let mut member = client(&nodes[node], id).await;
        member.subscribe("$share/g/s/#", QoS::AtLeastOnce).await;
        member.subscribe("marker", QoS::AtLeastOnce).await;
        let got = got.clone();
        let id = id.to_string();
        done.push(tokio::spawn(async move {
            let mine = member.publishes_until("marker").await;
            let payloads = mine
                .into_iter()
                .map(|p| String::from_utf8_lossy(&p.payload).into_owned());
            got.lock().unwrap().insert(id, payloads.collect());
        }));
    }
    let publisher = client(&nodes[0], "pub-n1").await;
    for i in 0..60 {
        publisher
            .publish(&format!("s/{i}"), QoS::AtLeastOnce, false, i.to_string())
            .await;
    }
    publisher.publish("marker", QoS::AtLeastOnce, false, "end").await;
    for task in done {
        task.await.unwrap();
    }
    let got = got.lock().unwrap();
    let mut all: Vec<u32> = got.values().flatten().map(|p| p.parse().unwrap()).collect();
    all.sort();
    assert_eq!(
        all,
        (0..60).collect::<Vec<_>>(),
        "each message reached exactly one member"
    );
    for (member, mine) in got.iter() {
        assert!(!mine.is_empty(), "{member} got a share: {got:?}");
    }
}

#[tokio::test]
async fn killing_a_node_loses_nothing_between_the_others_and_it_routes_again_when_back() {
    let mut nodes = start_cluster(3, &[]).await;
    let mut sub = client(&nodes[1], "sub-n2").await;
    sub.subscribe("load/#", QoS::AtLeastOnce).await;
    let mut doomed = client(&nodes[2], "sub-n3").await;
    doomed.subscribe("load/#", QoS::AtLeastOnce).await;
    let publisher = client(&nodes[0], "pub-n1").await;

    const N: usize = 2000;
    let mut killer = Some(());
    for i in 0..N {
        publisher
            .publish("load/q1", QoS::AtLeastOnce, false, i.to_string())
            .await;
        if i == N / 2 && killer.take().is_some() {
            nodes[2].kill();
        }
    }
    publisher.publish("load/end", QoS::AtLeastOnce, false, "end").await;
    // Neither n2's subscriber nor n1's publisher lost its connection: a message twice would be a bug.
    let got = numbers_until(&mut sub, "load/end").await;
    assert_in_order(&got, N, "n2 got every message from n1, once each, in order");
    drop(doomed);

    // n3 comes back on the same ports; once every node lists it, it routes both ways.
    nodes[2].start();
    until_all_list(&[&nodes[0], &nodes[1], &nodes[2]], "n1,n2,n3").await;
    let mut back = client(&nodes[2], "sub-n3-again").await;
    back.subscribe("again/#", QoS::AtLeastOnce).await;
    publisher.publish("again/from-n1", QoS::AtLeastOnce, false, "1").await;
    assert_eq!(back.expect_publish().await.topic, "again/from-n1");
    sub.subscribe("again/#", QoS::AtLeastOnce).await;
    let from_n3 = client(&nodes[2], "pub-n3").await;
    from_n3.publish("again/from-n3", QoS::AtLeastOnce, false, "3").await;
    let p = sub.expect("again/from-n3", |p| match p {
        Packet::Publish(p) if p.topic == "again/from-n3" => Some(p.clone()),
        _ => None,
    });
    assert_eq!(&p.await.payload[..], b"3");
}

#[tokio::test]
async fn a_filling_queue_towards_a_node_holds_the_publisher_instead_of_dropping() {
    // n2 is frozen (SIGSTOP) while n1's client publishes more than n1 may queue for it. The client is held
    // (its acknowledgements wait) rather than its messages dropped; once n2 thaws, every one arrives.
    let mut nodes = start_cluster(2, &["--forward-queue", "500", "--down-after-ms", "30000"]).await;
    let mut sub = client(&nodes[1], "sub-n2").await;
    sub.subscribe("bp/#", QoS::AtLeastOnce).await;
    let mut publisher = client(&nodes[0], "pub-n1").await;
    nodes[1].signal(libc::SIGSTOP);
    const N: usize = 1500;
    let sender = publisher.client.clone();
    let publishing = tokio::spawn(async move {
        for i in 0..N {
            sender
                .publish("bp/q1", QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap();
        }
    });
    // Some are acknowledged (queued for n2), then the client is held once 250 (half the queue) wait: at least
    // 150 are acknowledged first, as the client has at most 100 unacknowledged at a time.
    let mut acked = 0;
    while acked < 100 {
        if let Packet::PubAck(_) = publisher.next().await.unwrap() {
            acked += 1;
        }
    }
    // n1 holds the client: its acknowledgements stop short of what it sent.
    let n1 = nodes[0].api_addr().expect("n1 serves its API");
    until_counter(n1, "publishers_held", 1).await;
    assert_eq!(counter(n1, "dropped_forward"), 0);
    nodes[1].signal(libc::SIGCONT);
    publishing.await.unwrap();
    publisher.publish("bp/end", QoS::AtLeastOnce, false, "end").await;
    let got = numbers_until(&mut sub, "bp/end").await;
    assert_in_order(&got, N, "nothing dropped, in order");
}

/// A counter from a node's `/api/v1/stats`.
fn counter(api: std::net::SocketAddr, name: &str) -> u64 {
    let stats: serde_json::Value = ureq::get(&format!("http://{api}/api/v1/stats"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {stats}"))
}

/// Wait until a node's counter reaches `at_least`.
async fn until_counter(api: std::net::SocketAddr, name: &str, at_least: u64) {
    common::eventually(&format!("{name} reaches {at_least} on {api}"), || {
        counter(api, name) >= at_least
    })
    .await;
}

/// A subscriber on n2 falls behind publishers on n1, on the defaults: n2 holds its acknowledgements, n1's
/// queue towards n2 fills and holds the publishers, and once the subscriber reads again it gets every message
/// exactly once, with nothing dropped on either node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_falling_behind_holds_publishers_on_another_node() {
    let nodes = start_cluster(2, &[]).await;
    let (n1, n2) = (nodes[0].api_addr().unwrap(), nodes[1].api_addr().unwrap());
    let mut sub = Subscriber::connect(nodes[1].mqtt, "reader", "burst/#", QoS::AtLeastOnce).await;
    let count = 8_000;
    let publishers = publish_bursts(nodes[0].mqtt, 2, count, QoS::AtLeastOnce, 4096);
    until_counter(n1, "publishers_held", 1).await;
    let seen = sub.count_until_ends(2).await;
    for p in publishers {
        p.await.unwrap();
    }
    assert_each_once(&seen, 2, count, "the subscriber on n2");
    for (node, api) in [("n1", n1), ("n2", n2)] {
        for name in ["dropped_queue_full", "dropped_forward", "subscribers_stalled"] {
            assert_eq!(counter(api, name), 0, "{name} on {node}");
        }
    }
}
