//! Operating rules on a running node (a real `ractmq` process): a rule from the configuration file (the
//! issue's example as written), `ractmq ctl rules` (list, show, create, enable, disable, delete, test),
//! errors as one line naming the position, Prometheus, the chaos kill of a rule's actor, run-time rules
//! across a restart, and republished copies of acknowledged messages through a kill -9.

use std::time::Duration;

use rumqttc::QoS;
use serde_json::{json, Value};

use crate::common::process::{ctl, json_of, Process};
use crate::common::{eventually, options, Client};

fn rule<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no rule {name} in {list}"))
}

/// The issue's example, as a user writes it in the configuration file.
const HOT: &str = r#"
[[rules]]
name = "hot"
sql = 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30'
actions = [{ republish = { topic = "alerts/${clientid}", payload = '{"t": ${t}}', qos = 1 } }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_of_the_configuration_file_runs_and_ctl_lists_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ractmq.toml");
    std::fs::write(&file, HOT).unwrap();
    let node = Process::start(&["-c", file.to_str().unwrap(), "--api-chaos"]);
    let mut alerts = Client::connect(node.mqtt, "watcher").await;
    alerts.subscribe("alerts/#", QoS::AtLeastOnce).await;
    let sensor = Client::connect(node.mqtt, "dev1").await;
    for payload in [r#"{"temp": 35}"#, r#"{"temp": 20}"#, "not json"] {
        sensor.publish("sensors/room1", QoS::AtLeastOnce, false, payload).await;
    }
    sensor.publish("alerts/marker", QoS::AtLeastOnce, false, "m").await;
    let got = alerts.publishes_until("alerts/marker").await;
    assert_eq!(got.len(), 1, "exactly one alert: {got:?}");
    assert_eq!(
        (got[0].topic.as_str(), &got[0].payload[..]),
        ("alerts/dev1", &br#"{"t": 35}"#[..])
    );
    assert_eq!(got[0].qos, QoS::AtLeastOnce);

    let list = json_of(node.api, &["rules", "list"]);
    let hot = rule(&list, "hot");
    assert_eq!(hot["from"], json!(["sensors/#"]));
    assert_eq!(hot["enabled"], json!(true));
    assert_eq!(
        (&hot["matched"], &hot["passed"], &hot["no_result"], &hot["failed"]),
        (&json!(3), &json!(1), &json!(2), &json!(0))
    );
    assert_eq!(
        hot["actions"],
        json!([{"kind": "republish", "success": 1, "failed": 0, "retried": 0}])
    );
    let (code, table, err) = ctl(node.api, &["rules", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(table.contains("hot") && table.contains("sensors/#"), "{table}");

    let metrics = ureq::get(&node.url("/metrics")).call().unwrap().into_string().unwrap();
    for line in [
        "ractmq_rule_matched_total{rule=\"hot\"} 3",
        "ractmq_rule_passed_total{rule=\"hot\"} 1",
        "ractmq_rule_no_result_total{rule=\"hot\"} 2",
        "ractmq_rule_action_success_total{rule=\"hot\",action=\"1\",kind=\"republish\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }

    // The rule's actor killed: its supervisor restarts it, and the rule goes on.
    let (code, out, err) = ctl(node.api, &["chaos", "kill", "rule", "hot"]);
    assert_eq!((code, out.trim()), (0, "killed rule hot"), "{err}");
    eventually("the rule's actor was restarted", || {
        rule(&json_of(node.api, &["rules", "list"]), "hot")["restarts"] == json!(1)
    })
    .await;
    sensor
        .publish("sensors/room2", QoS::AtLeastOnce, false, r#"{"temp": 50}"#)
        .await;
    let p = alerts.expect_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("alerts/dev1", &br#"{"t": 50}"#[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_creates_disables_enables_and_deletes_rules_and_they_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut node = Process::start(&["--data-dir", data]);
    let sql = r#"SELECT upper(payload) AS up FROM "in/#""#;
    let (code, out, err) = ctl(
        node.api,
        &[
            "rules",
            "create",
            "--name",
            "shout",
            "--sql",
            sql,
            "--republish",
            "out/shout",
            "--payload",
            "${up}",
        ],
    );
    assert_eq!((code, out.trim()), (0, "created rule shout"), "{err}");
    let (code, _, err) = ctl(node.api, &["rules", "create", "--name", "shout", "--sql", sql]);
    assert_eq!(code, 1);
    assert!(err.contains("409") && err.contains("exists already"), "{err}");

    let mut reader = Client::connect(node.mqtt, "reader").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(node.mqtt, "pub").await;
    publisher.publish("in/1", QoS::AtLeastOnce, false, "hi").await;
    assert_eq!(reader.expect_publish().await.payload, "HI");

    let (code, out, err) = ctl(node.api, &["rules", "disable", "shout"]);
    assert_eq!((code, out.trim()), (0, "disabled rule shout"), "{err}");
    publisher.publish("in/1", QoS::AtLeastOnce, false, "quiet").await;
    publisher.publish("out/marker", QoS::AtLeastOnce, false, "m").await;
    assert_eq!(
        reader.publishes_until("out/marker").await.len(),
        0,
        "a disabled rule runs no action"
    );
    let (code, _, err) = ctl(node.api, &["rules", "enable", "shout"]);
    assert_eq!(code, 0, "{err}");
    publisher.publish("in/1", QoS::AtLeastOnce, false, "again").await;
    assert_eq!(reader.expect_publish().await.payload, "AGAIN");

    // `rules test` shows what a rule would output, publishing nothing.
    let (code, out, err) = ctl(
        node.api,
        &[
            "rules",
            "test",
            "--sql",
            r#"SELECT payload.t * 2 AS d, topic FROM "t/#""#,
            "--topic",
            "t/1",
            "--payload",
            r#"{"t": 4}"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap(),
        json!({"d": 8, "topic": "t/1"})
    );
    let (code, out, _) = ctl(
        node.api,
        &[
            "rules",
            "test",
            "--sql",
            r#"SELECT * FROM "t/#" WHERE payload.t > 5"#,
            "--topic",
            "t/1",
            "--payload",
            "{\"t\": 4}",
        ],
    );
    assert_eq!(
        (code, out.trim()),
        (0, "no result: the rule's WHERE (or INCASE) is false for this message")
    );

    node.signal(libc::SIGTERM);
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
    let node = Process::start(&["--data-dir", data]);
    let list = json_of(node.api, &["rules", "list"]);
    assert_eq!(rule(&list, "shout")["at_run_time"], json!(true));
    let show = json_of(node.api, &["rules", "show", "shout"]);
    assert_eq!(show["config"]["sql"], json!(sql));
    let mut reader = Client::connect(node.mqtt, "reader").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    let publisher = Client::connect(node.mqtt, "pub").await;
    publisher.publish("in/1", QoS::AtLeastOnce, false, "back").await;
    assert_eq!(reader.expect_publish().await.payload, "BACK");

    let (code, out, err) = ctl(node.api, &["rules", "delete", "shout"]);
    assert_eq!((code, out.trim()), (0, "deleted rule shout"), "{err}");
    let mut node = node;
    node.signal(libc::SIGTERM);
    assert_eq!(node.wait(Duration::from_secs(10)), Some(0));
    let node = Process::start(&["--data-dir", data]);
    assert_eq!(json_of(node.api, &["rules", "list"]), json!([]), "deleted for good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_one_line_that_says_where() {
    let node = Process::start(&[]);
    let create = |name: &str, sql: &str, republish: &str| {
        ctl(
            node.api,
            &[
                "rules",
                "create",
                "--name",
                name,
                "--sql",
                sql,
                "--republish",
                republish,
            ],
        )
    };
    let (code, _, err) = create("typo", r#"SELECT * FROM "a/#" WHER x > 1"#, "out/x");
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("400") && err.contains("SQL error at line 1, column 21"),
        "{err}"
    );

    let (code, _, err) = create("nofrom", "SELECT payload", "out/x");
    assert_eq!(code, 1);
    assert!(err.contains("SQL error"), "{err}");

    let (code, _, err) = create("unknownfn", r#"SELECT frobnicate(payload) FROM "a/#""#, "out/x");
    assert_eq!(code, 1);
    assert!(err.contains("frobnicate"), "{err}");

    let (code, _, err) = create("loop", r#"SELECT * FROM "a/#""#, "a/${clientid}");
    assert_eq!(code, 1);
    assert!(err.contains("would feed the rule its own output"), "{err}");

    let (code, _, err) = create("missing", r#"SELECT payload.t AS t FROM "a/#""#, "out/${nosuch}");
    assert_eq!(code, 1);
    assert!(err.contains("${nosuch}") && err.contains("it outputs t"), "{err}");

    let (code, _, err) = ctl(
        node.api,
        &["rules", "test", "--sql", "SELECT FROM WHERE", "--topic", "a"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("SQL error at line 1"), "{err}");

    // Over REST, the same line is the error's message.
    let response = ureq::post(&node.url("/rules")).send_json(json!({"name": "x", "sql": "SELECT * FROM"}));
    let Err(ureq::Error::Status(400, response)) = response else {
        panic!("expected a 400")
    };
    let body: Value = response.into_json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("SQL error at line 1"),
        "{body}"
    );
    assert_eq!(json_of(node.api, &["rules", "list"]), json!([]), "nothing was created");
}

/// A message the node acknowledged has its republished copy stored with it: after a kill -9, the persistent
/// subscriber that was offline gets every alert, exactly once at QoS 2 (and here once at QoS 1 too: the
/// copies were never sent before the kill).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republished_copies_of_acknowledged_messages_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ractmq.toml");
    std::fs::write(
        &file,
        r#"
[[rules]]
name = "copy"
sql = 'SELECT payload FROM "sensors/#"'
actions = [{ republish = { topic = "alerts/${payload}", payload = "${payload}" } }]
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["-c", file.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    let node = Process::start(&args);
    let session = |addr| {
        let mut o = options(addr, "keeper");
        o.set_clean_session(false);
        o
    };
    {
        let mut keeper = Client::connect_with(session(node.mqtt)).await;
        keeper.subscribe("alerts/#", QoS::ExactlyOnce).await;
        keeper.client.disconnect().await.unwrap();
        keeper.expect_disconnect().await;
    }
    let mut publisher = Client::connect(node.mqtt, "pub").await;
    const EACH: usize = 50;
    for n in 0..EACH {
        publisher
            .publish("sensors/q1", QoS::AtLeastOnce, false, format!("q1-{n}"))
            .await;
        publisher
            .publish("sensors/q2", QoS::ExactlyOnce, false, format!("q2-{n}"))
            .await;
    }
    // Every flow completed: PUBACK for QoS 1, PUBCOMP for QoS 2.
    let (mut acks, mut comps) = (0, 0);
    while acks < EACH || comps < EACH {
        match publisher.next().await.expect("publisher connected") {
            rumqttc::Packet::PubAck(_) => acks += 1,
            rumqttc::Packet::PubComp(_) => comps += 1,
            _ => {}
        }
    }
    drop(node); // kill -9
    let node = Process::start(&args);
    let mut keeper = Client::connect_with(session(node.mqtt)).await;
    let mut got = std::collections::BTreeMap::<String, usize>::new();
    while got.values().sum::<usize>() < 2 * EACH {
        let p = keeper.expect_publish().await;
        *got.entry(String::from_utf8_lossy(&p.payload).into_owned()).or_default() += 1;
    }
    // Nothing more: a marker published now comes next.
    let marker = Client::connect(node.mqtt, "marker").await;
    marker.publish("alerts/marker", QoS::AtLeastOnce, false, "m").await;
    assert_eq!(keeper.publishes_until("alerts/marker").await.len(), 0);
    for n in 0..EACH {
        for q in ["q1", "q2"] {
            assert_eq!(got.get(&format!("{q}-{n}")), Some(&1), "{q}-{n} in {got:?}");
        }
    }
}
