//! A cut link between two `ractmq` nodes that heals: every node is reached only through a proxy the test
//! controls (`--cluster-advertise`), the proxies cut the link in the middle of QoS 1 traffic, and once they
//! heal, the subscriber on the other node has every message the publisher's node acknowledged, once each and
//! in order. The cut is shorter than --down-after-ms, so neither node is marked down: the messages wait in
//! the publishing node's queue for that node and are sent again on the new link.

use crate::common;

use common::cluster::{assert_in_order, free_addrs, numbers_until, until_all_list, Node, COOKIE, WAIT};
use common::proxy::Proxy;
use common::{eventually, eventually_within, Client};
use rumqttc::{Packet, QoS};

#[tokio::test]
async fn messages_acknowledged_during_a_cut_arrive_once_the_link_heals() {
    let addrs = free_addrs(4);
    let (mqtt, listen) = (&addrs[..2], &addrs[2..]);
    let proxies = [Proxy::start(listen[0]).await, Proxy::start(listen[1]).await];
    let node = |i: usize, seed: Option<&Proxy>| {
        let mut args = vec![
            "--cookie".to_string(),
            COOKIE.to_string(),
            "--cluster-advertise".to_string(),
            proxies[i].addr.to_string(),
            "--down-after-ms".to_string(),
            "30000".to_string(),
        ];
        if let Some(seed) = seed {
            args.extend(["--seed".to_string(), format!("n1@{}", seed.addr)]);
        }
        Node::new(&format!("n{}", i + 1), mqtt[i], listen[i], &args)
    };
    let mut nodes = [node(0, None), node(1, Some(&proxies[0]))];
    for n in &mut nodes {
        n.start();
    }
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;

    let mut sub = Client::connect(nodes[1].mqtt, "sub-n2").await;
    sub.subscribe("p/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(nodes[0].mqtt, "pub-n1").await;
    let sender = publisher.client.clone();
    const N: usize = 300;
    let publish = |range: std::ops::Range<usize>| {
        let sender = sender.clone();
        async move {
            for i in range {
                sender
                    .publish("p/q1", QoS::AtLeastOnce, false, i.to_string())
                    .await
                    .unwrap();
            }
        }
    };
    // A first third crosses while the link is up (so the link is in use when it is cut) ...
    publish(0..N / 3).await;
    let mut got: Vec<usize> = Vec::new();
    while got.len() < N / 3 {
        got.push(
            String::from_utf8_lossy(&sub.expect_publish().await.payload)
                .parse()
                .unwrap(),
        );
    }
    // ... the second is acknowledged by n1 while the link is cut ...
    for p in &proxies {
        p.cut();
    }
    eventually("the proxies carry no connection", || {
        proxies.iter().all(|p| p.open_connections() == 0)
    })
    .await;
    // Both nodes saw the link go: what n1 acknowledges from now on cannot have crossed it.
    for (node, peer) in [(&nodes[0], "n2"), (&nodes[1], "n1")] {
        eventually_within(WAIT, &format!("{} shows no link to {peer}", node.name), || {
            !linked(node, peer)
        })
        .await;
    }
    publish(N / 3..2 * N / 3).await;
    // n1 has acknowledged every one of them (PUBACK) before the link heals.
    let mut acked = 0;
    while acked < 2 * N / 3 {
        if let Packet::PubAck(_) = publisher.next().await.unwrap() {
            acked += 1;
        }
    }
    // ... and the last third follows the heal.
    for p in &proxies {
        p.heal();
    }
    publish(2 * N / 3..N).await;
    publisher.publish("p/end", QoS::AtLeastOnce, false, "end").await;
    got.extend(numbers_until(&mut sub, "p/end").await);
    assert_in_order(&got, N, "every message, once, in order");
    assert!(
        nodes[0].logged("link to node n2 up: sending again the"),
        "n1 sent on the new link what the cut had left unacknowledged"
    );
    assert!(
        nodes.iter().all(|n| !n.logged("down:")),
        "the cut was shorter than --down-after-ms: no node was marked down"
    );
}

/// Whether `node`'s API shows a link to `peer`.
fn linked(node: &Node, peer: &str) -> bool {
    let api = node.api_addr().expect("the node logged where its API listens");
    let cluster: serde_json::Value = ureq::get(&format!("http://{api}/api/v1/cluster"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let members = cluster["members"].as_array().unwrap().clone();
    members.iter().any(|m| m["name"] == peer && m["linked"] == true)
}
