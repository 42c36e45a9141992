//! Operating bridges on a running node (a real `ractmq` process): `ractmq ctl bridges` and the REST API, the
//! chaos kill, Prometheus, bridges created at run time across a restart, and a bridge's buffer policy.

use std::time::Duration;

use rumqttc::QoS;
use serde_json::{json, Value};

use crate::common::load::numbered;
use crate::common::mosquitto::{free_port, Mosquitto};
use crate::common::process::{ctl, json_of, Process};
use crate::common::{eventually, Client};

fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("ractmq.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn bridge<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no bridge {name} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_lists_the_configured_bridge_and_chaos_kills_it() {
    let remote = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        &format!(
            "[[bridges.mqtt]]\nname = \"cloud\"\nserver = \"{}\"\nforward = [\"sensors/#\"]\nsubscribe = [\"commands/#\"]\n",
            remote.addr
        ),
    );
    let node = Process::start(&["-c", &file, "--api-chaos"]);
    let connected = || bridge(&json_of(node.api, &["bridges", "list"]), "cloud")["connected"] == json!(true);
    eventually("the bridge connects", connected).await;
    let list = json_of(node.api, &["bridges", "list"]);
    let cloud = bridge(&list, "cloud");
    assert_eq!(cloud["kind"], "mqtt");
    assert_eq!(cloud["remote"], remote.addr.to_string());
    assert_eq!(cloud["status"], "running");
    assert_eq!(cloud["forward"], json!(["sensors/#"]));
    assert_eq!(cloud["subscribe"], json!(["commands/#"]));

    let (code, out, err) = ctl(node.api, &["chaos", "kill", "bridge", "cloud"]);
    assert_eq!((code, out.trim()), (0, "killed bridge cloud"), "{err}");
    eventually("the supervisor restarted it and it connected again", || {
        let list = json_of(node.api, &["bridges", "list"]);
        let cloud = bridge(&list, "cloud");
        cloud["restarts"] == json!(1) && cloud["connected"] == json!(true)
    })
    .await;
    let (code, _, err) = ctl(node.api, &["chaos", "kill", "bridge", "nonesuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("no bridge 'nonesuch'"), "{err}");

    // Messages flow after the restart.
    let mut far = Client::connect(remote.addr, "far").await;
    far.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let near = Client::connect(node.mqtt, "near").await;
    near.publish("sensors/1", QoS::AtLeastOnce, false, "after").await;
    assert_eq!(&far.expect_publish().await.payload[..], b"after");

    let metrics = ureq::get(&node.url("/metrics")).call().unwrap().into_string().unwrap();
    for line in [
        "ractmq_bridge_connected{bridge=\"cloud\",kind=\"mqtt\"} 1",
        "ractmq_bridge_restarts_total{bridge=\"cloud\",kind=\"mqtt\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

/// A bridge created with ctl is kept in the node's store: a restart on the same data dir brings it back,
/// and `delete` forgets it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_created_at_run_time_survives_a_restart_until_deleted() {
    let remote = Mosquitto::start("");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let spec = dir.path().join("edge.toml");
    std::fs::write(
        &spec,
        format!(
            "kind = \"mqtt\"\nname = \"edge\"\nserver = \"{}\"\nforward = [\"up/#\"]\n",
            remote.addr
        ),
    )
    .unwrap();
    let mut node = Process::start(&["--data-dir", data]);
    let (code, out, err) = ctl(node.api, &["bridges", "create", "--file", spec.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (0, "created bridge edge"), "{err}");
    let (code, _, err) = ctl(node.api, &["bridges", "create", "--file", spec.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("409") && err.contains("exists already"), "{err}");
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));

    let node = Process::start(&["--data-dir", data]);
    let connected = || bridge(&json_of(node.api, &["bridges", "list"]), "edge")["connected"] == json!(true);
    eventually("the run-time bridge came back and connected", connected).await;
    let mut far = Client::connect(remote.addr, "far").await;
    far.subscribe("up/#", QoS::AtLeastOnce).await;
    let near = Client::connect(node.mqtt, "near").await;
    near.publish("up/1", QoS::AtLeastOnce, false, "x").await;
    assert_eq!(far.expect_publish().await.topic, "up/1");

    let (code, out, err) = ctl(node.api, &["bridges", "delete", "edge"]);
    assert_eq!((code, out.trim()), (0, "deleted bridge edge"), "{err}");
    let mut node = node;
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
    let node = Process::start(&["--data-dir", data]);
    assert_eq!(json_of(node.api, &["bridges", "list"]), json!([]), "deleted for good");
}

/// A node whose bridge (2 in flight, a buffer of 5, `overflow`) goes to a port where nothing listens yet: the
/// port, the node's files and the node.
fn buffered_node(overflow: &str) -> (u16, tempfile::TempDir, Process) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        &format!(
            "[[bridges.mqtt]]\nname = \"cloud\"\nserver = \"127.0.0.1:{port}\"\nforward = [\"sensors/#\"]\n\
             max_inflight = 2\nbuffer = 5\noverflow = \"{overflow}\"\nreconnect_max_ms = 200\n"
        ),
    );
    let node = Process::start(&["-c", &file]);
    (port, dir, node)
}

/// Numbers 0..20 on `sensors/1` at QoS 1.
async fn publish_twenty(publisher: &Client) {
    for n in 0..20 {
        publisher
            .publish("sensors/1", QoS::AtLeastOnce, false, numbered(0, n, 8))
            .await;
    }
}

/// A bridge's buffer holds `buffer` messages beyond those in flight while the remote is down; drop-oldest
/// keeps the newest, and each drop is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let (port, _dir, node) = buffered_node("drop-oldest");
    // The remote is down: 2 messages go in flight to the bridge, 5 wait in its buffer, 13 are dropped.
    let mut publisher = Client::connect(node.mqtt, "near").await;
    publish_twenty(&publisher).await;
    for _ in 0..20 {
        publisher
            .expect("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
    let list = json_of(node.api, &["bridges", "list"]);
    assert_eq!(bridge(&list, "cloud")["dropped"], json!(13), "{list}");
    let remote = Mosquitto::start_on(port, "");
    let mut far = Client::connect(remote.addr, "far").await;
    far.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let mut got = Vec::new();
    for _ in 0..7 {
        let p = far.expect_publish().await;
        got.push(u32::from_be_bytes(p.payload[1..5].try_into().unwrap()));
    }
    got.sort();
    assert_eq!(got, [0, 1, 15, 16, 17, 18, 19], "the two in flight and the newest five");
}

/// `overflow = "block"`: past its buffer, the bridge holds the publishers of its topics instead of dropping;
/// once the remote is back, every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_buffer_drops_nothing() {
    let (port, _dir, node) = buffered_node("block");
    let mut publisher = Client::connect(node.mqtt, "near").await;
    publish_twenty(&publisher).await;
    // The buffer filled (2 in flight, 5 queued, and what the node took before it held the publisher): the rest
    // waits in the publisher, whose socket the node stops reading.
    eventually("the buffer filled", || {
        bridge(&json_of(node.api, &["bridges", "list"]), "cloud")["queued"].as_u64() >= Some(7)
    })
    .await;
    let list = json_of(node.api, &["bridges", "list"]);
    assert_eq!(bridge(&list, "cloud")["dropped"], json!(0), "{list}");
    let remote = Mosquitto::start_on(port, "");
    let mut far = Client::connect(remote.addr, "far").await;
    far.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let mut got = Vec::new();
    for _ in 0..20 {
        let p = far.expect_publish().await;
        got.push(u32::from_be_bytes(p.payload[1..5].try_into().unwrap()));
    }
    got.sort();
    assert_eq!(got, (0..20).collect::<Vec<_>>(), "each once");
    for _ in 0..20 {
        publisher
            .expect("PUBACK", |p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
}

/// A bridge's local session keeps its subscriptions across restarts: a filter dropped from `forward` in the
/// configuration file is unsubscribed when the bridge starts again, so its messages no longer cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_dropped_from_forward_is_no_longer_forwarded_after_a_restart() {
    let remote = Process::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let bridge_with = |forward: &str| {
        format!(
            "[[bridges.mqtt]]\nname = \"edge\"\nserver = \"{}\"\nforward = [{forward}]\n",
            remote.mqtt
        )
    };
    let file = config_file(&dir, &bridge_with(r#""up/#", "keep/#""#));
    let mut node = Process::start(&["-c", &file, "--data-dir", data]);
    let connected =
        |node: &Process| bridge(&json_of(node.api, &["bridges", "list"]), "edge")["connected"] == json!(true);
    eventually("the bridge connects", || connected(&node)).await;
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));

    config_file(&dir, &bridge_with(r#""keep/#""#));
    let node = Process::start(&["-c", &file, "--data-dir", data]);
    let filters = || {
        let subs = json_of(node.api, &["subscriptions", "list", "--client-id", "$bridge/edge"]);
        (subs.as_array().unwrap().iter())
            .map(|s| s["filter"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    eventually("the dropped filter is unsubscribed", || {
        connected(&node) && filters() == ["keep/#"]
    })
    .await;
    let mut far = Client::connect(remote.mqtt, "far").await;
    far.subscribe("#", QoS::AtLeastOnce).await;
    let near = Client::connect(node.mqtt, "near").await;
    near.publish("up/1", QoS::AtLeastOnce, false, "dropped").await;
    near.publish("keep/1", QoS::AtLeastOnce, false, "kept").await;
    assert_eq!(far.expect_publish().await.topic, "keep/1", "up/ no longer crosses");
}
