//! Rules created at run time on one node run on every node of a cluster of real `ractmq` processes: created,
//! deleted, enabled or disabled with `ractmq ctl` on any node, seen by `ractmq ctl rules list` on the others,
//! and each message still evaluated once, on the node it was published on. A node that was down when rules
//! changed catches up when it comes back, deletes included; two nodes cut apart that both changed rules agree
//! once the link heals, and a delete made on the cut-off side survives its restart there.
//!
//! "Exactly once" is counted with a marker published last by the same client: messages from one publisher
//! keep their order across nodes, and a rule's republished copy is routed before the message that fed it is
//! acknowledged, so everything it caused has arrived when the marker has.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::Value;

use crate::common::cluster::{free_addrs, start_cluster, until_all_list, Node, COOKIE, WAIT};
use crate::common::process::ctl;
use crate::common::proxy::Proxy;
use crate::common::{eventually_within, Client};

/// Where `node`'s REST API listens now: the last address it logged (a restarted node logs a new one).
async fn api_of(node: &Node) -> SocketAddr {
    let latest = || {
        node.log.lock().unwrap().iter().rev().find_map(|l| {
            let at = l.find("http://")? + "http://".len();
            l[at..].split_whitespace().next()?.parse().ok()
        })
    };
    eventually_within(WAIT, &format!("{}'s API is up", node.name), || latest().is_some()).await;
    latest().unwrap()
}

/// `ractmq ctl rules list --json` on a node: (name, at_run_time, enabled) of each rule.
fn rules_on(api: SocketAddr) -> BTreeSet<(String, bool, bool)> {
    let (code, out, err) = ctl(api, &["rules", "list", "--json"]);
    assert_eq!(code, 0, "ractmq ctl rules list on {api}: {err}");
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}"));
    (list.as_array().unwrap().iter())
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["at_run_time"].as_bool().unwrap(),
                r["enabled"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Wait until every node in `apis` lists exactly the run-time rules `expected` (name, enabled); returns how
/// long it took. Polled: no event tells a client that another node applied a rule.
async fn until_rules(apis: &[SocketAddr], expected: &[(&str, bool)]) -> Duration {
    let want: BTreeSet<(String, bool, bool)> = expected.iter().map(|(n, e)| (n.to_string(), true, *e)).collect();
    let start = Instant::now();
    for api in apis {
        loop {
            let got = rules_on(*api);
            if got == want {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "the node at {api} lists {got:?}, expected {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    start.elapsed()
}

fn ctl_ok(api: SocketAddr, args: &[&str], said: &str) {
    let (code, out, err) = ctl(api, args);
    assert_eq!((code, out.trim()), (0, said), "ractmq ctl {args:?}: {err}");
}

/// Create rule `name` on the node at `api`: every message on `in/#` republished upper-cased to
/// `out/{name}/{publisher's client id}`, at QoS 1.
fn create(api: SocketAddr, name: &str) {
    let topic = format!("out/{name}/${{clientid}}");
    ctl_ok(
        api,
        &[
            "rules",
            "create",
            "--name",
            name,
            "--sql",
            r#"SELECT upper(payload) AS up, clientid FROM "in/#""#,
            "--republish",
            &topic,
            "--payload",
            "${up}",
            "--qos",
            "1",
        ],
        &format!("created rule {name}"),
    );
}

/// Publish `payload` on `in/x` from `publisher`, then the marker; what `reader` got in between, as sorted
/// (topic, payload).
async fn one_publish(publisher: &Client, reader: &mut Client, payload: &str) -> Vec<(String, String)> {
    publisher.publish("in/x", QoS::AtLeastOnce, false, payload).await;
    publisher.publish("end", QoS::AtLeastOnce, false, "").await;
    let mut got: Vec<(String, String)> = (reader.publishes_until("end").await.into_iter())
        .map(|p| (p.topic, String::from_utf8_lossy(&p.payload).into_owned()))
        .collect();
    got.sort();
    got
}

fn pair(topic: &str, payload: &str) -> (String, String) {
    (topic.to_string(), payload.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_created_on_one_node_runs_on_every_node_once_per_message_and_a_delete_reaches_all() {
    let nodes = start_cluster(3, &[]).await;
    let mut apis = Vec::new();
    for node in &nodes {
        apis.push(api_of(node).await);
    }
    // Every node has a subscriber to the input, so every message crosses to every node: a node that evaluated
    // messages it did not publish would republish them again.
    let mut inputs = Vec::new();
    for node in &nodes[..2] {
        let mut c = Client::connect(node.mqtt, &format!("in-{}", node.name)).await;
        c.subscribe("in/#", QoS::AtLeastOnce).await;
        inputs.push(c);
    }
    let mut reader = Client::connect(nodes[2].mqtt, "reader-n3").await;
    for filter in ["in/#", "out/#", "end"] {
        reader.subscribe(filter, QoS::AtLeastOnce).await;
    }

    create(apis[0], "shout");
    let took = until_rules(&apis, &[("shout", true)]).await;
    assert!(took < Duration::from_secs(5), "created on every node in {took:?}");
    let (code, _, err) = ctl(
        apis[1],
        &["rules", "create", "--name", "shout", "--sql", "SELECT * FROM \"a\""],
    );
    assert!(
        code == 1 && err.contains("exists already"),
        "n2 has the rule n1 created: {err}"
    );

    let mut publishers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        publishers.push(Client::connect(node.mqtt, &format!("p{}", i + 1)).await);
    }
    for (i, publisher) in publishers.iter().enumerate() {
        let (message, client) = (format!("m{}", i + 1), format!("p{}", i + 1));
        assert_eq!(
            one_publish(publisher, &mut reader, &message).await,
            vec![
                pair("in/x", &message),
                pair(&format!("out/shout/{client}"), &message.to_uppercase())
            ],
            "a message published on n{} is evaluated once, there",
            i + 1
        );
    }

    // Disabled on n3, deleted on n2: everywhere.
    ctl_ok(apis[2], &["rules", "disable", "shout"], "disabled rule shout");
    until_rules(&apis, &[("shout", false)]).await;
    assert_eq!(
        one_publish(&publishers[0], &mut reader, "quiet").await,
        vec![pair("in/x", "quiet")]
    );
    ctl_ok(apis[0], &["rules", "enable", "shout"], "enabled rule shout");
    until_rules(&apis, &[("shout", true)]).await;
    ctl_ok(apis[1], &["rules", "delete", "shout"], "deleted rule shout");
    until_rules(&apis, &[]).await;
    for (i, publisher) in publishers.iter().enumerate() {
        let message = format!("after-{i}");
        assert_eq!(
            one_publish(publisher, &mut reader, &message).await,
            vec![pair("in/x", &message)],
            "no node runs the deleted rule"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_when_rules_changed_catches_up_when_it_is_back() {
    let mut nodes = start_cluster(3, &[]).await;
    let mut apis = Vec::new();
    for node in &nodes {
        apis.push(api_of(node).await);
    }
    create(apis[0], "old");
    create(apis[2], "kept");
    until_rules(&apis, &[("old", true), ("kept", true)]).await;

    nodes[2].kill();
    // While n3 is down: one rule created, one deleted, one disabled.
    create(apis[1], "new");
    ctl_ok(apis[0], &["rules", "delete", "old"], "deleted rule old");
    ctl_ok(apis[1], &["rules", "disable", "kept"], "disabled rule kept");
    let now = [("kept", false), ("new", true)];
    until_rules(&apis[..2], &now).await;

    nodes[2].log.lock().unwrap().clear();
    nodes[2].start();
    apis[2] = api_of(&nodes[2]).await;
    until_rules(&apis[2..], &now).await;

    // What n3 runs now: "new" (created while it was down), not "old" (deleted meanwhile, though n3 had kept
    // it), nor "kept" (disabled).
    let mut reader = Client::connect(nodes[2].mqtt, "reader-n3").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    reader.subscribe("end", QoS::AtLeastOnce).await;
    let publisher = Client::connect(nodes[2].mqtt, "p3").await;
    assert_eq!(
        one_publish(&publisher, &mut reader, "back").await,
        vec![pair("out/new/p3", "BACK")]
    );
    // The three agree, and stay so.
    until_rules(&apis, &now).await;
}

/// Whether `node`'s API shows a link to `peer`.
async fn linked(node: &Node, peer: &str) -> bool {
    let api = api_of(node).await;
    let cluster: Value = ureq::get(&format!("http://{api}/api/v1/cluster"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let members = cluster["members"].as_array().unwrap().clone();
    members.iter().any(|m| m["name"] == peer && m["linked"] == true)
}

/// n1 and n2 are cut apart (each reached only through a proxy the test controls); both change rules, n2 is
/// restarted while still cut off, then the link heals: the two agree, last writer winning per rule, and the
/// rule n2 deleted stays deleted although n1 still had it (n2 kept the delete, with its version, in its
/// store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_cut_apart_that_both_changed_rules_agree_once_the_link_heals() {
    let addrs = free_addrs(4);
    let (mqtt, listen) = (&addrs[..2], &addrs[2..]);
    let proxies = [Proxy::start(listen[0]).await, Proxy::start(listen[1]).await];
    let node = |i: usize| {
        let mut args = vec![
            "--cookie".to_string(),
            COOKIE.to_string(),
            "--cluster-advertise".to_string(),
            proxies[i].addr.to_string(),
        ];
        if i == 1 {
            args.extend(["--seed".to_string(), format!("n1@{}", proxies[0].addr)]);
        }
        Node::new(&format!("n{}", i + 1), mqtt[i], listen[i], &args)
    };
    let mut nodes = [node(0), node(1)];
    for n in &mut nodes {
        n.start();
    }
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;
    let mut apis = [api_of(&nodes[0]).await, api_of(&nodes[1]).await];
    create(apis[0], "shared");
    create(apis[0], "edited");
    until_rules(&apis, &[("edited", true), ("shared", true)]).await;

    for p in &proxies {
        p.cut();
    }
    for (node, peer) in [(&nodes[0], "n2"), (&nodes[1], "n1")] {
        let start = Instant::now();
        while linked(node, peer).await {
            assert!(start.elapsed() < WAIT, "{} still shows a link to {peer}", node.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Cut off: n2 deletes "shared" and creates "mine"; n1 creates "theirs" and disables "edited", then n2
    // disables and enables it again: the last of these wins.
    ctl_ok(apis[1], &["rules", "delete", "shared"], "deleted rule shared");
    create(apis[1], "mine");
    create(apis[0], "theirs");
    ctl_ok(apis[0], &["rules", "disable", "edited"], "disabled rule edited");
    ctl_ok(apis[1], &["rules", "disable", "edited"], "disabled rule edited");
    ctl_ok(apis[1], &["rules", "enable", "edited"], "enabled rule edited");
    // n2 restarts, still cut off: what it changed must come back from its own store.
    nodes[1].kill();
    nodes[1].log.lock().unwrap().clear();
    nodes[1].start();
    apis[1] = api_of(&nodes[1]).await;
    until_rules(&apis[1..], &[("edited", true), ("mine", true)]).await;

    for p in &proxies {
        p.heal();
    }
    until_all_list(&[&nodes[0], &nodes[1]], "n1,n2").await;
    let agreed = [("edited", true), ("mine", true), ("theirs", true)];
    until_rules(&apis, &agreed).await;
}
