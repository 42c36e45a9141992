//! The store in a node's data dir as operators see it, from real processes: `GET /api/v1/data`, `ractmq ctl
//! data stats` (a table, and the API's JSON with `--json`) and the `ractmq_store_*` Prometheus metrics; and a
//! `--durability memory` node saying it keeps nothing on disk.

use crate::common;

use common::process::{ctl, Process};
use common::{field, options, Client};
use rumqttc::{Packet, QoS};
use serde_json::{json, Value};

fn get(node: &Process, path: &str) -> Value {
    ureq::get(&node.url(path)).call().unwrap().into_json().unwrap()
}

fn ok(node: &Process, args: &[&str]) -> String {
    let (code, out, err) = ctl(node.api, args);
    assert_eq!(code, 0, "ractmq ctl {args:?} failed: {err}");
    out
}

fn exposition(node: &Process) -> String {
    ureq::get(&format!("http://{}/metrics", node.api))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// The value of the sample `name` (no labels) in a Prometheus exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in {text}"))
}

/// A persistent session left offline with a QoS 1 message queued for it: one session and one copy in the
/// store, written by at least one commit (the PUBACK waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_defaults_shows_its_store_everywhere() {
    let node = Process::start(&[]);
    let mut persistent = options(node.mqtt, "keeper");
    persistent.set_clean_session(false);
    let mut keeper = Client::connect_with(persistent).await;
    keeper.subscribe("meters/#", QoS::AtLeastOnce).await;
    keeper.client.disconnect().await.unwrap();
    keeper.expect_disconnect().await;
    common::eventually("keeper's session is offline", || {
        get(&node, "/clients/keeper")["connected"] == json!(false)
    })
    .await;
    let mut writer = Client::connect(node.mqtt, "writer").await;
    writer.publish("meters/1", QoS::AtLeastOnce, false, "42").await;
    writer
        .expect("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await;

    // REST.
    let at_least = |v: &Value, key: &str, n: u64| v[key].as_u64().is_some_and(|x| x >= n);
    common::eventually("the store holds keeper's session and its message", || {
        let v = get(&node, "/data");
        at_least(&v, "sessions", 1) && at_least(&v, "messages", 1) && at_least(&v, "commits", 1)
    })
    .await;
    let v = get(&node, "/data");
    assert_eq!(v["durability"], json!("disk"), "{v}");
    let dir = v["dir"].as_str().unwrap_or_else(|| panic!("dir is a string: {v}"));
    assert!(std::path::Path::new(dir).is_dir(), "{dir} is the node's data dir");
    assert!(at_least(&v, "file_bytes", 1), "{v}");
    assert!(at_least(&v, "ops", 2), "a session and a copy at least: {v}");
    for key in [
        "retained",
        "operator",
        "cancelled",
        "pending_ops",
        "pending_bytes",
        "last_commit_us",
    ] {
        assert!(v[key].is_u64(), "{key} in {v}");
    }

    // ractmq ctl: a table, and the same JSON with --json.
    let table = ok(&node, &["data", "stats"]);
    assert!(table.starts_with("FIELD"), "{table}");
    assert_eq!(field(&table, "durability"), "disk", "{table}");
    assert_eq!(field(&table, "dir"), dir, "{table}");
    let number = |name: &str| field(&table, name).parse::<u64>().unwrap();
    assert!(number("sessions") >= 1 && number("messages") >= 1, "{table}");
    assert!(number("commits") > 0 && number("file_bytes") > 0, "{table}");
    let json_out: Value = serde_json::from_str(&ok(&node, &["--json", "data", "stats"])).unwrap();
    assert_eq!(json_out["durability"], json!("disk"));
    assert!(at_least(&json_out, "sessions", 1) && at_least(&json_out, "messages", 1));

    // Prometheus: gauges and counters, with their HELP and TYPE lines.
    let text = exposition(&node);
    assert!(sample(&text, "ractmq_store_sessions") >= 1.0, "{text}");
    assert!(sample(&text, "ractmq_store_messages") >= 1.0, "{text}");
    assert!(sample(&text, "ractmq_store_file_bytes") > 0.0, "{text}");
    assert!(sample(&text, "ractmq_store_commits_total") > 0.0, "{text}");
    assert!(sample(&text, "ractmq_store_ops_total") >= 2.0, "{text}");
    assert!(sample(&text, "ractmq_store_last_commit_seconds") >= 0.0, "{text}");
    for gauge in [
        "ractmq_store_file_bytes",
        "ractmq_store_sessions",
        "ractmq_store_messages",
        "ractmq_store_retained",
        "ractmq_store_pending_ops",
        "ractmq_store_last_commit_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {gauge} gauge\n")), "{gauge} in {text}");
        assert!(text.contains(&format!("# HELP {gauge} ")), "{gauge} in {text}");
    }
    for counter in ["ractmq_store_commits", "ractmq_store_ops", "ractmq_store_cancelled"] {
        assert!(
            text.contains(&format!("# TYPE {counter} counter\n")),
            "{counter} in {text}"
        );
        sample(&text, &format!("{counter}_total"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_node_says_it_keeps_nothing_on_disk() {
    let node = Process::start(&["--durability", "memory"]);
    assert_eq!(get(&node, "/data"), json!({"durability": "memory"}));
    let line = ok(&node, &["data", "stats"]);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("nothing on disk") && line.contains("--durability memory"),
        "{line}"
    );
    let json_out: Value = serde_json::from_str(&ok(&node, &["--json", "data", "stats"])).unwrap();
    assert_eq!(json_out, json!({"durability": "memory"}));
    let text = exposition(&node);
    assert!(text.contains("ractmq_connections"), "{text}");
    assert!(!text.contains("ractmq_store_"), "{text}");
}
