//! Cluster membership with real `ractmq` processes on loopback: three nodes find each other through one seed,
//! a node killed with SIGKILL is marked down by the others, and comes back when restarted on the same ports;
//! a frozen node (SIGSTOP) is marked down and comes back when it thaws; a wrong cookie, an unreachable seed
//! and a silent socket are dealt with. Every node is watched through its `$SYS/brokers` topic, as an
//! operator would.
//!
//! Every wait is a bounded poll; every process started is killed when its guard drops, also when a test
//! fails (and then its log is printed).

use crate::common;

use common::cluster::{free_addrs, until_lists, Brokers, Node, COOKIE, WAIT};
use common::eventually_within;

#[tokio::test]
async fn three_nodes_join_through_one_seed_see_one_die_and_see_it_return() {
    let addrs = free_addrs(6);
    let seed = vec![
        "--cookie".to_string(),
        COOKIE.to_string(),
        "--seed".to_string(),
        format!("n1@{}", addrs[3]),
    ];
    let mut nodes = vec![
        Node::new("n1", addrs[0], addrs[3], &seed[..2]),
        Node::new("n2", addrs[1], addrs[4], &seed),
        Node::new("n3", addrs[2], addrs[5], &seed),
    ];
    for node in &mut nodes {
        node.start();
    }
    let mut watches = Vec::new();
    for node in &nodes {
        watches.push(Brokers::watch(node).await);
    }

    // n2 and n3 know only n1, yet every node comes to list all three.
    for (watch, node) in watches.iter().zip(&nodes) {
        until_lists(watch, &node.name, "n1,n2,n3").await;
    }
    for (node, other) in [(0, "n2"), (0, "n3"), (1, "n3"), (2, "n2")] {
        let line = format!("node {other}@");
        let n = &nodes[node];
        eventually_within(WAIT, &format!("{} logs '{line}... joined'", n.name), || n.logged(&line)).await;
    }

    // kill -9 n3: the survivors mark it down once its heartbeats stop.
    nodes[2].kill();
    watches.pop();
    until_lists(&watches[0], "n1", "n1,n2").await;
    until_lists(&watches[1], "n2", "n1,n2").await;
    for n in &nodes[..2] {
        eventually_within(WAIT, &format!("{} logs n3 down", n.name), || {
            n.logged("node n3 down: no heartbeat for 2 s")
        })
        .await;
    }

    // Restarted on the same ports, n3 rejoins and every node lists all three again.
    nodes[2].start();
    watches.push(Brokers::watch(&nodes[2]).await);
    for (watch, node) in watches.iter().zip(&nodes) {
        until_lists(watch, &node.name, "n1,n2,n3").await;
    }
}

#[tokio::test]
async fn a_node_with_another_cookie_is_refused_and_both_sides_say_why() {
    let addrs = free_addrs(4);
    let mut n1 = Node::new("n1", addrs[0], addrs[2], &["--cookie".into(), "right".into()]);
    let mut n2 = Node::new(
        "n2",
        addrs[1],
        addrs[3],
        &[
            "--cookie".into(),
            "wrong".into(),
            "--seed".into(),
            format!("n1@{}", addrs[2]),
        ],
    );
    n1.start();
    n2.start();
    eventually_within(WAIT, "n2 says n1 refused its cookie", || {
        n2.logged("refused this node's cookie; check that --cookie is the same on every node")
    })
    .await;
    eventually_within(WAIT, "n1 says n2 failed authentication", || {
        n1.logged("n2@127.0.0.1") && n1.logged("failed authentication: check that --cookie")
    })
    .await;
    let watch = Brokers::watch(&n1).await;
    until_lists(&watch, "n1", "n1").await;
}

#[tokio::test]
async fn an_unreachable_seed_is_named_in_one_warning() {
    let addrs = free_addrs(3);
    let nobody = addrs[2];
    let mut n1 = Node::new(
        "n1",
        addrs[0],
        addrs[1],
        &[
            "--cookie".into(),
            COOKIE.into(),
            "--seed".into(),
            format!("n9@{nobody}"),
        ],
    );
    n1.start();
    let line = format!("cannot reach cluster node n9 at {nobody}");
    eventually_within(WAIT, "n1 says it cannot reach its seed", || n1.logged(&line)).await;
    let watch = Brokers::watch(&n1).await;
    until_lists(&watch, "n1", "n1").await;
    assert_eq!(
        n1.log.lock().unwrap().iter().filter(|l| l.contains(&line)).count(),
        1,
        "said once, not at every retry"
    );
}

#[tokio::test]
async fn a_frozen_node_is_marked_down_and_rejoins_when_it_thaws() {
    let addrs = free_addrs(4);
    let cookie = ["--cookie".to_string(), COOKIE.to_string()];
    let mut n1 = Node::new("n1", addrs[0], addrs[2], &cookie);
    let mut seeded = cookie.to_vec();
    seeded.extend(["--seed".to_string(), format!("n1@{}", addrs[2])]);
    let mut n2 = Node::new("n2", addrs[1], addrs[3], &seeded);
    n1.start();
    n2.start();
    let watch1 = Brokers::watch(&n1).await;
    let watch2 = Brokers::watch(&n2).await;
    until_lists(&watch1, "n1", "n1,n2").await;
    until_lists(&watch2, "n2", "n1,n2").await;

    // SIGSTOP: n2's kernel keeps its sockets open, but n2 says nothing. n1 marks it down, and drops the
    // silent link (if one is open: the two may have just settled on one link of the two they dialled) so that
    // it can be dialled afresh: its API shows n2 unlinked.
    n2.signal(libc::SIGSTOP);
    until_lists(&watch1, "n1", "n1").await;
    let api = n1.api_addr().expect("n1 logged where its API listens");
    eventually_within(WAIT, "n1 shows no link to the silent n2", || {
        let cluster: serde_json::Value = ureq::get(&format!("http://{api}/api/v1/cluster"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let members = cluster["members"].as_array().unwrap().clone();
        members.iter().any(|m| m["name"] == "n2" && m["linked"] == false)
    })
    .await;

    // Thawed, n2 is linked and up again on both sides.
    n2.signal(libc::SIGCONT);
    until_lists(&watch1, "n1", "n1,n2").await;
    until_lists(&watch2, "n2", "n1,n2").await;
    // The backlog of handshakes a thawing node works through is not taken for a cookie problem.
    for n in [&n1, &n2] {
        assert!(!n.logged("--cookie is the same"), "{} blamed the cookie", n.name);
    }
}

#[tokio::test]
async fn a_socket_that_never_authenticates_is_closed() {
    use tokio::io::AsyncReadExt;

    let addrs = free_addrs(2);
    let mut n1 = Node::new("n1", addrs[0], addrs[1], &["--cookie".into(), COOKIE.into()]);
    n1.start();
    let _watch = Brokers::watch(&n1).await;
    let mut silent = tokio::net::TcpStream::connect(addrs[1]).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "n1 closes a cluster socket that never starts the handshake"
    );
}
