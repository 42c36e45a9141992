//! The cluster's actors under the broker's supervision: each one killed is restarted, the membership view
//! survives, the node goes on hearing its peer, and messages still cross both ways. One node runs in this test's process (so that its actors
//! can be killed), its peer is a real `ractmq` process.
//!
//! ractor's process groups are global to a process, so this file holds a single test: two in-process nodes
//! would see each other's agents as local.

use crate::common;

use std::time::{Duration, Instant};

use common::cluster::{free_addrs, Brokers, Node, COOKIE, WAIT};
use common::{eventually_within, start_with, test_config, Client};
use ractmq::parts::cluster::DownReason;
use ractmq::{Cluster, ClusterConfig, MemberEvent, MemberState, Metrics};

fn n2_heard_since(cluster: &Cluster, since: Instant) -> bool {
    cluster
        .members()
        .iter()
        .any(|m| m.name == "n2" && m.state == MemberState::Up && m.linked && m.last_heard.is_some_and(|t| t > since))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_cluster_actors_are_restarted_and_the_membership_survives() {
    let addrs = free_addrs(3);
    let mut settings = ClusterConfig::new("n1", addrs[0], COOKIE);
    settings.heartbeat_interval = Duration::from_millis(250);
    settings.down_after = Duration::from_secs(2);
    let cluster = Cluster::new(settings).unwrap();
    let mut config = test_config();
    config.sys_interval = Duration::from_secs(1);
    cluster.install(&mut config);
    let broker = start_with(config).await;

    let mut n2 = Node::new(
        "n2",
        addrs[1],
        addrs[2],
        &[
            "--cookie".into(),
            COOKIE.into(),
            "--seed".into(),
            format!("n1@{}", addrs[0]),
        ],
    );
    n2.start();
    let start = Instant::now();
    eventually_within(WAIT, "n1 hears n2", || n2_heard_since(&cluster, start)).await;
    assert_eq!(cluster.nodes_up(), ["n1", "n2"]);
    let n2_seen = || cluster.members().into_iter().find(|m| m.name == "n2").unwrap();
    assert_eq!(n2_seen().cluster_addr, addrs[2]);
    // Its first hello may come before its MQTT listener is bound; a later one says where it is.
    eventually_within(WAIT, "n1 learns n2's MQTT address", || {
        n2_seen().mqtt_addr == Some(addrs[1])
    })
    .await;
    let mut events = cluster.subscribe();

    for actor in ["node-server", "agent", "forwarder", "connector"] {
        let restarts = Metrics::get(&broker.metrics().other_restarts);
        let killed_at = Instant::now();
        assert!(cluster.kill_actor(actor).await, "{actor} is running");
        eventually_within(WAIT, &format!("{actor} restarted"), || {
            Metrics::get(&broker.metrics().other_restarts) > restarts
        })
        .await;
        eventually_within(WAIT, &format!("n2 heard after the {actor} restart"), || {
            n2_heard_since(&cluster, killed_at)
        })
        .await;
        assert_eq!(cluster.nodes_up(), ["n1", "n2"], "after the {actor} restart");
    }
    // The membership (n2's incarnation with it) was kept through the restarts: n2 is not taken for a
    // restarted node. (A reconnection slower than down_after may show as down and joined again; that is
    // the failure detector doing its job.)
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(
                event,
                MemberEvent::Down {
                    reason: DownReason::Restarted,
                    ..
                }
            ),
            "{event}"
        );
    }

    // And the peer sees this node throughout.
    let watch = Brokers::watch(&n2).await;
    common::cluster::until_lists(&watch, "n2", "n1,n2").await;

    // Routing works both ways after every cluster actor was restarted: the new forwarder told n2 this
    // node's routes again and learnt n2's.
    let mut here = broker.subscribe("back/#", 16).await.unwrap();
    let mut there = Client::connect(n2.mqtt, "sub-n2").await;
    there.subscribe("forth/#", rumqttc::QoS::AtLeastOnce).await;
    let from_n2 = Client::connect(n2.mqtt, "pub-n2").await;
    from_n2
        .publish("back/1", rumqttc::QoS::AtLeastOnce, false, "to n1")
        .await;
    let got = tokio::time::timeout(WAIT, here.recv()).await.unwrap().unwrap();
    assert_eq!(&got.payload[..], b"to n1");
    broker
        .publish("forth/1", &b"to n2"[..], ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(&there.expect_publish().await.payload[..], b"to n2");

    // n2 dies: once it is found down (--down-after-ms), its routes are gone from this node.
    let n2_routes = || {
        cluster
            .remote_routes()
            .iter()
            .filter(|(node, _)| &**node == "n2")
            .count()
    };
    assert!(n2_routes() > 0, "n2's subscription is known here");
    n2.kill();
    eventually_within(WAIT, "n2's routes dropped once it is down", || {
        n2_routes() == 0 && cluster.nodes_up() == ["n1"]
    })
    .await;
    broker.shutdown().await;
}
