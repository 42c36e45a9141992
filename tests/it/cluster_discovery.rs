//! Finding peers by name with real `ractmq` processes: seeds given as `NAME@localhost:PORT`, a seed's name
//! resolved again when its node comes back at another address, `--discovery dns` taking every address of one
//! name (and finding a node that appears later), and a seed name that does not resolve yet.
//!
//! Names other than `localhost` resolve through a test-owned hosts file, bind-mounted over /etc/hosts in each
//! node's private mount namespace ([`HostsFile`]; needs root, as CI runs), so resolution is the system's own
//! getaddrinfo. The machine's /etc/hosts is never touched. Every wait is a bounded poll.

use crate::common;

use std::net::SocketAddr;

use common::cluster::{free_addrs, until_all_list, Brokers, HostsFile, Node, COOKIE, WAIT};
use common::process::json_of;
use common::{eventually_within, Client};
use rumqttc::QoS;

fn args(extra: &[&str]) -> Vec<String> {
    let mut all = vec!["--cookie".to_string(), COOKIE.to_string()];
    all.extend(extra.iter().map(|s| s.to_string()));
    all
}

/// `node`'s members as `ractmq ctl cluster status --json` lists them: (name, state, cluster address).
async fn members(node: &Node) -> Vec<(String, String, String)> {
    eventually_within(WAIT, &format!("{}'s API is up", node.name), || {
        node.api_addr().is_some()
    })
    .await;
    let v = json_of(node.api_addr().unwrap(), &["cluster", "status"]);
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("state"), s("cluster_addr"))
        })
        .collect()
}

#[tokio::test]
async fn seeds_given_as_localhost_form_a_cluster_that_routes_messages() {
    let addrs = free_addrs(6);
    let seed = format!("n1@localhost:{}", addrs[3].port());
    let mut nodes = vec![
        Node::new("n1", addrs[0], addrs[3], &args(&[])),
        Node::new("n2", addrs[1], addrs[4], &args(&["--seed", &seed])),
        Node::new("n3", addrs[2], addrs[5], &args(&["--seed", &seed])),
    ];
    for node in &mut nodes {
        node.start();
    }
    until_all_list(&nodes.iter().collect::<Vec<_>>(), "n1,n2,n3").await;

    // A message published on n2 reaches a subscriber on n3 (and n3's on n1), through links made by name.
    let mut sub = Client::connect(nodes[2].mqtt, "sub-n3").await;
    sub.subscribe("by-name/#", QoS::AtLeastOnce).await;
    let mut sub1 = Client::connect(nodes[0].mqtt, "sub-n1").await;
    sub1.subscribe("by-name/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[1].mqtt, "pub-n2").await;
    publisher.publish("by-name/1", QoS::AtLeastOnce, false, "hello").await;
    for s in [&mut sub, &mut sub1] {
        let p = s.expect_publish().await;
        assert_eq!((p.topic.as_str(), &p.payload[..]), ("by-name/1", &b"hello"[..]));
    }
}

#[tokio::test]
async fn a_seed_found_by_name_is_found_again_when_it_comes_back_at_another_address() {
    let addrs = free_addrs(4);
    let port = addrs[3].port();
    let first: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let second: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let hosts = HostsFile::new(&["127.0.0.1 ractmq-n1.test"]);
    // n1 has no seeds: only n2 dialling it by name can link the two.
    let mut n1 = Node::new("n1", addrs[0], first, &args(&[]));
    let seed = format!("n1@ractmq-n1.test:{port}");
    let mut n2 = Node::new("n2", addrs[1], addrs[2], &args(&["--seed", &seed])).with_hosts(&hosts);
    n1.start();
    n2.start();
    until_all_list(&[&n1, &n2], "n1,n2").await;

    // n1 dies and comes back at another IP; the name now says so.
    n1.kill();
    eventually_within(WAIT, "n2 logs n1 down", || n2.logged("node n1 down")).await;
    hosts.set(&["127.0.0.2 ractmq-n1.test"]);
    n1.cluster = second;
    n1.start();
    // n1 knows nobody: listing n2 means n2 dialled it at its new address.
    let watch = Brokers::watch(&n1).await;
    common::cluster::until_lists(&watch, "n1", "n1,n2").await;
    until_all_list(&[&n2], "n1,n2").await;
    let seen = members(&n2).await;
    assert!(
        seen.iter()
            .any(|(name, state, addr)| name == "n1" && state == "up" && *addr == second.to_string()),
        "n2 sees n1 up at {second}: {seen:?}"
    );
}

#[tokio::test]
async fn dns_discovery_takes_every_address_of_the_name_and_finds_a_node_that_appears_later() {
    let mqtt = free_addrs(4);
    let port = mqtt[3].port();
    let port_s = port.to_string();
    let dns = args(&[
        "--discovery",
        "dns",
        "--discovery-name",
        "ractmq-peers.test",
        "--discovery-port",
        &port_s,
    ]);
    // n1 and n2 see the name's two first records; n3, started later, sees only its own, so it dials nobody
    // and can only be found by the others resolving the name again once it has a record there too.
    let early = HostsFile::new(&["127.0.0.1 ractmq-peers.test", "127.0.0.2 ractmq-peers.test"]);
    let late = HostsFile::new(&["127.0.0.3 ractmq-peers.test"]);
    let cluster = |i: u8| -> SocketAddr { format!("127.0.0.{i}:{port}").parse().unwrap() };
    let mut nodes = vec![
        Node::new("n1", mqtt[0], cluster(1), &dns).with_hosts(&early),
        Node::new("n2", mqtt[1], cluster(2), &dns).with_hosts(&early),
        Node::new("n3", mqtt[2], cluster(3), &dns).with_hosts(&late),
    ];
    nodes[0].start();
    nodes[1].start();
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;

    nodes[2].start();
    let alone = Brokers::watch(&nodes[2]).await;
    common::cluster::until_lists(&alone, "n3", "n3").await;
    early.set(&[
        "127.0.0.1 ractmq-peers.test",
        "127.0.0.2 ractmq-peers.test",
        "127.0.0.3 ractmq-peers.test",
    ]);
    until_all_list(&nodes.iter().collect::<Vec<_>>(), "n1,n2,n3").await;
    for node in &nodes {
        let seen = members(node).await;
        let up: Vec<&str> = seen
            .iter()
            .filter(|(_, state, _)| state == "up")
            .map(|(n, _, _)| n.as_str())
            .collect();
        assert_eq!(up, ["n1", "n2", "n3"], "{}'s members: {seen:?}", node.name);
        assert_eq!(seen.len(), 3, "{}'s members: {seen:?}", node.name);
    }
    // Each skipped its own address: none dialled itself.
    for node in &nodes {
        assert!(!node.logged("is this node itself"), "{} dialled itself", node.name);
    }
}

#[tokio::test]
async fn a_seed_name_that_does_not_resolve_is_said_once_and_joined_once_it_resolves() {
    let addrs = free_addrs(4);
    let hosts = HostsFile::new(&[]);
    let seed = format!("n1@ractmq-late.test:{}", addrs[2].port());
    let mut n1 = Node::new("n1", addrs[0], addrs[2], &args(&[]));
    let mut n2 = Node::new("n2", addrs[1], addrs[3], &args(&["--seed", &seed])).with_hosts(&hosts);
    // The retries are logged at debug level: seeing several proves they happen, and are not warned about.
    n2.env
        .push(("RUST_LOG".into(), "info,ractmq_cluster::discovery=debug".into()));
    n1.start();
    n2.start();
    let warning = "cannot resolve cluster seed n1@ractmq-late.test";
    eventually_within(WAIT, "n2 says it cannot resolve its seed", || n2.logged(warning)).await;
    eventually_within(WAIT, "n2 retries resolving, three times", || {
        n2.log.lock().unwrap().iter().filter(|l| l.contains("(again)")).count() >= 3
    })
    .await;
    // It is running all the while: its MQTT listener answers.
    let watch = Brokers::watch(&n2).await;
    common::cluster::until_lists(&watch, "n2", "n2").await;

    hosts.set(&["127.0.0.1 ractmq-late.test"]);
    until_all_list(&[&n1, &n2], "n1,n2").await;
    // The log is read from the process's stderr by a thread of its own, so it may trail the cluster a little.
    eventually_within(WAIT, "n2 says the name resolves again", || {
        n2.logged("cluster seed n1@ractmq-late.test:") && n2.logged("resolves again")
    })
    .await;
    let warned = n2
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(warning) && !l.contains("(again)"))
        .count();
    assert_eq!(warned, 1, "one warning for the unresolvable seed");
}
