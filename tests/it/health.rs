//! Health as probes see it, and a broker whose root supervisor gives up: the process must exit with a failure
//! and one line naming what gave up, not run on with a dead MQTT port.

use crate::common;

use std::time::Duration;

use common::process::Process;
use serde_json::Value;

/// (status, body) of a GET without credentials.
fn probe(node: &Process, path: &str) -> (u16, Value) {
    match ureq::get(&node.url(path)).call() {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_node_is_live_and_ready_and_probes_need_no_credentials() {
    let node = Process::start(&["--api-token", "secret"]);
    let (status, health) = probe(&node, "/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (&health["live"], &health["ready"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    for actor in [
        "root",
        "root/sessions",
        "root/shards/shard-0",
        "root/mqtt-listener",
        "accepting",
    ] {
        assert_eq!(health["checks"][actor], Value::Bool(true), "{actor} in {health}");
    }
    assert_eq!(probe(&node, "/health/live").0, 200);
    assert_eq!(probe(&node, "/health/ready").0, 200);
    assert_eq!(
        probe(&node, "/status").0,
        401,
        "the rest of the API still asks for the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_is_live_but_not_ready() {
    let broker = common::start_broker().await;
    assert!(broker.health().await.ready);
    assert_eq!(broker.drain(Duration::from_secs(1)).await, 0);
    let health = broker.health().await;
    assert!(health.live && !health.ready, "{health:?}");
    assert!(health.checks.contains(&("accepting".to_string(), false)));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_supervisor_that_gives_up_ends_the_process_with_a_failure() {
    let mut node = Process::start(&["--api-chaos"]);
    // Each kill of a shard is a restart for the shard supervisor (10 in 10 s allowed); past that it fails and
    // the root restarts it (5 in 30 s allowed); past that the root gives up. Kill until the process is gone.
    let (mut kills, mut attempts) = (0, 0);
    let code = loop {
        if let Some(code) = node.wait(Duration::from_millis(1)) {
            break code;
        }
        attempts += 1;
        assert!(attempts < 2_000, "still running after {kills} kills");
        let body = serde_json::json!({"kind": "shard", "target": "0"});
        // While the shard supervisor restarts there is briefly no shard to kill (404); once the process is
        // gone the request fails: both are fine here, the exit code decides.
        if let Ok(r) = ureq::post(&node.url("/chaos/kill")).send_json(body) {
            assert_eq!(r.status(), 200);
            kills += 1;
        }
    };
    assert_ne!(code, 0, "a broker that stopped by itself exits with a failure");
    let line = "ractmq: the broker stopped: root: restart intensity exceeded by shards";
    common::eventually("the reason on stderr", || node.logged(line)).await;
    assert!(
        kills > 10,
        "the shard supervisor absorbed its intensity first ({kills} kills)"
    );
}
