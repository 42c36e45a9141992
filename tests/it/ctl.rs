//! `ractmq ctl` as an operator runs it, against real nodes: every command, as a table and with `--json`, and
//! the one line it prints when the node cannot be reached.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::cluster::{start_cluster, WAIT};
use common::process::{ctl, Process};
use common::{eventually_within, field, options, Client};
use rumqttc::QoS;
use serde_json::Value;

fn ok(node: &Process, args: &[&str]) -> String {
    let (code, out, err) = ctl(node.api, args);
    assert_eq!(code, 0, "ractmq ctl {args:?} failed: {err}");
    out
}

fn json(node: &Process, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(node, &all)).unwrap()
}

/// The topics with a retained message, sorted.
fn retained_topics(node: &Process) -> Vec<String> {
    let mut topics: Vec<String> = json(node, &["retained", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["topic"].as_str().unwrap().to_string())
        .collect();
    topics.sort();
    topics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_from_a_running_node() {
    let node = Process::start(&["--api-chaos"]);
    let mut o = options(node.mqtt, "meter-7");
    o.set_clean_session(false);
    let mut meter = Client::connect_with(o).await;
    meter.subscribe("cmd/meter-7", QoS::AtLeastOnce).await;
    let writer = Client::connect(node.mqtt, "writer").await;
    writer.publish("state/meter-7", QoS::AtLeastOnce, true, "on").await;
    common::eventually("the retained message is kept", || {
        json(&node, &["retained", "list"])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;

    let status = ok(&node, &["status"]);
    assert_eq!(field(&status, "clients_connected"), "2", "{status}");
    assert_eq!(json(&node, &["status"])["clients_connected"], 2);
    let clients = ok(&node, &["clients", "list"]);
    assert!(clients.starts_with("CLIENT ID"), "{clients}");
    assert!(clients.contains("meter-7") && clients.contains("writer"), "{clients}");
    assert!(clients.contains("page 1 of 2 clients"), "{clients}");
    assert_eq!(json(&node, &["clients", "list", "--like", "meter"])["meta"]["count"], 1);
    let meter_7 = ok(&node, &["clients", "show", "meter-7"]);
    assert_eq!(field(&meter_7, "client_id"), "meter-7", "{meter_7}");
    assert_eq!(field(&meter_7, "connected"), "true", "{meter_7}");
    assert_eq!(field(&meter_7, "subscriptions"), "1", "{meter_7}");
    assert_eq!(rows(&ok(&node, &["subscriptions", "list"])), ["meter-7 cmd/meter-7 1"]);
    assert_eq!(rows(&ok(&node, &["topics", "list"])), ["cmd/meter-7 local"]);
    let retained = ok(&node, &["retained", "list"]);
    assert!(
        retained.contains("state/meter-7") && retained.contains("on"),
        "{retained}"
    );
    assert!(ok(&node, &["listeners"]).contains(&node.mqtt.to_string()));
    assert!(ok(&node, &["metrics"]).contains("ractmq_connections 2"));
    let cluster = ok(&node, &["cluster", "status"]);
    assert!(cluster.contains("(this node)") && cluster.contains("up"), "{cluster}");

    // Trace streams meter-7's packets until interrupted.
    let mut trace = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["ctl", "--api", &node.api.to_string(), "trace", "client", "meter-7"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(trace.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("tracing client meter-7"));
    writer.publish("cmd/meter-7", QoS::AtLeastOnce, false, "reset").await;
    let line = lines.next().unwrap().unwrap();
    assert!(line.starts_with("out PUBLISH"), "{line}");
    trace.kill().unwrap();
    let _ = trace.wait();

    ok(&node, &["retained", "delete", "state/meter-7"]);
    assert!(retained_topics(&node).is_empty());
    assert_eq!(ok(&node, &["clients", "kick", "meter-7"]).trim_end(), "kicked meter-7");
    meter.expect_disconnect().await;
    ok(&node, &["chaos", "kill", "shard", "0"]);
    let (code, _, err) = ctl(node.api, &["clients", "show", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("ractmq ctl: the node answered 404"), "{err}");
}

/// A topic goes into the URL percent-encoded: `?`, `#`, `%`, `&`, `+`, spaces and `/` reach the node as they
/// are, so exactly that topic is cleared (`q/a?b=1` or `q/a#x` unencoded would clear `q/a`). `#` and `+` cannot
/// be in a topic a client publishes to, so they are the 404 naming the topic as typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_delete_clears_exactly_the_topic_given() {
    let node = Process::start(&[]);
    let writer = Client::connect(node.mqtt, "writer").await;
    let mut left = vec![
        "q/a",
        "q/a?b=1",
        "rate/50%",
        "room 1/temp",
        "x&y=z/a b",
        "/lead",
        "é/..",
    ];
    for topic in &left {
        writer.publish(topic, QoS::AtLeastOnce, true, *topic).await;
    }
    left.sort();
    common::eventually("every message is retained", || retained_topics(&node) == left).await;

    for topic in ["q/a?b=1", "rate/50%", "room 1/temp", "x&y=z/a b", "/lead", "é/.."] {
        assert_eq!(
            ok(&node, &["retained", "delete", topic]).trim_end(),
            format!("deleted the retained message of {topic}")
        );
        left.retain(|t| *t != topic);
        common::eventually(&format!("only {topic} is cleared"), || retained_topics(&node) == left).await;
    }
    assert_eq!(retained_topics(&node), ["q/a"]);

    for topic in ["q/a?b=1", "q/a#x", "q/+", "q/#"] {
        let (code, _, err) = ctl(node.api, &["retained", "delete", topic]);
        assert_eq!(code, 1);
        assert_eq!(
            err.trim_end(),
            format!("ractmq ctl: the node answered 404: no retained message on '{topic}'")
        );
    }
    let (code, _, err) = ctl(node.api, &["retained", "delete", ".."]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("'..' cannot be named"), "{err}");
    assert_eq!(retained_topics(&node), ["q/a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_list_with_a_client_id_lists_only_that_clients() {
    let node = Process::start(&[]);
    let mut ann = Client::connect(node.mqtt, "ann+1 &x").await;
    ann.subscribe("a/1", QoS::AtLeastOnce).await;
    ann.subscribe("shared/#", QoS::AtMostOnce).await;
    let mut bob = Client::connect(node.mqtt, "bob").await;
    bob.subscribe("b/1", QoS::AtLeastOnce).await;
    bob.subscribe("shared/#", QoS::AtMostOnce).await;

    let mut all = rows(&ok(&node, &["topics", "list"]));
    all.sort();
    assert_eq!(all, ["a/1 local", "b/1 local", "shared/# local"]);

    let mut ann_topics = rows(&ok(&node, &["topics", "list", "--client-id", "ann+1 &x"]));
    ann_topics.sort();
    assert_eq!(ann_topics, ["a/1 local", "shared/# local"]);
    assert_eq!(
        json(&node, &["topics", "list", "--client-id", "bob"]),
        serde_json::json!([{"topic": "b/1", "node": "local"}, {"topic": "shared/#", "node": "local"}])
    );
    assert!(rows(&ok(&node, &["topics", "list", "--client-id", "ann"])).is_empty());
}

/// The rows of a table without its header, cells joined by one space.
fn rows(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|row| row.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn an_unreachable_node_is_one_line() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out, err) = ctl(free, &["status"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach the API at {free}")) && err.contains("--api"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_status_shows_every_member_and_its_link() {
    let nodes = start_cluster(3, &[]).await;
    eventually_within(WAIT, "n1's API is up", || nodes[0].api_addr().is_some()).await;
    let api = nodes[0].api_addr().unwrap();
    let (code, out, err) = ctl(api, &["cluster", "status"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows[0].starts_with("NODE") && rows[0].contains("LINKED"), "{out}");
    assert!(rows.iter().any(|r| r.starts_with("n1 (this node)")), "{out}");
    for other in ["n2", "n3"] {
        let row = rows
            .iter()
            .find(|r| r.starts_with(other))
            .unwrap_or_else(|| panic!("{other} in {out}"));
        assert!(row.contains("up") && row.contains("true"), "{row}");
    }
    let (code, json_out, err) = ctl(api, &["--json", "cluster", "status"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
}
