//! What rules do besides their SQL, on a node with real clients: event topics fed by real connects and
//! disconnects, a failed action's dead letter, rules feeding each other (cut at a depth), a rule feeding a
//! bridge to a real Mosquitto, and a missing bridge tried again and then dead-lettered.

use std::time::Duration;

use ractmq::{Broker, Rules, RulesConfig};
use rumqttc::QoS;
use serde_json::{json, Value};

use crate::common::mosquitto::Mosquitto;
use crate::common::{eventually, options, start_broker, Client, DEADLINE};

async fn node(rules: Value) -> (Broker, Rules) {
    let broker = start_broker().await;
    let config: RulesConfig = serde_json::from_value(rules).expect("rules read");
    let rules = Rules::start(broker.view(), broker.rules_tree().clone(), &config)
        .await
        .expect("rules start");
    (broker, rules)
}

async fn next_json(reader: &mut ractmq::Subscription) -> (String, Value) {
    let m = tokio::time::timeout(DEADLINE, reader.recv())
        .await
        .expect("a message in time")
        .unwrap();
    let v = serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{}: not JSON ({e})", m.topic));
    (m.topic.to_string(), v)
}

/// Each event topic, fed by one client's real connect, subscribe, delivery, acknowledgement, unsubscribe and
/// disconnect, and a publish nobody subscribes to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_topics_fire_on_real_client_activity() {
    let events = [
        (
            "connected",
            "client_connected",
            "clientid, peerhost, proto_ver, keepalive, clean_start, event",
        ),
        ("subscribed", "session_subscribed", "clientid, topic, qos, event"),
        (
            "delivered",
            "message_delivered",
            "clientid, from_clientid, topic, payload, qos, event",
        ),
        (
            "acked",
            "message_acked",
            "clientid, from_clientid, topic, payload, event",
        ),
        ("unsubscribed", "session_unsubscribed", "clientid, topic, event"),
        ("disconnected", "client_disconnected", "clientid, reason, event"),
        ("dropped", "message_dropped", "topic, reason, from_clientid, event"),
    ];
    let rules: Vec<Value> = events
        .iter()
        .map(|(name, event, fields)| {
            // Only the client under test: the rule's own reader connects and subscribes too.
            let filter = if *name == "dropped" {
                "from_clientid = 'pub'"
            } else {
                "clientid = 'c1'"
            };
            json!({
                "name": name,
                "sql": format!(r#"SELECT {fields} FROM "$events/{event}" WHERE {filter}"#),
                "actions": [{ "republish": { "topic": format!("ev/{name}") } }],
            })
        })
        .collect();
    let (broker, rules) = node(Value::Array(rules)).await;
    let mut reader = broker.subscribe("ev/#", 64).await.unwrap();

    let mut c1 = Client::connect(broker.mqtt_addr(), "c1").await;
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/connected".into(),
            json!({"clientid": "c1", "peerhost": "127.0.0.1", "proto_ver": 4, "keepalive": 30, "clean_start": true,
                   "event": "client.connected"})
        )
    );
    c1.subscribe("s/1", QoS::AtLeastOnce).await;
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/subscribed".into(),
            json!({"clientid": "c1", "topic": "s/1", "qos": 1, "event": "session.subscribed"})
        )
    );
    let publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("s/1", QoS::AtLeastOnce, false, "hello").await;
    assert_eq!(c1.expect_publish().await.payload, "hello");
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/delivered".into(),
            json!({"clientid": "c1", "from_clientid": "pub", "topic": "s/1", "payload": "hello", "qos": 1,
                   "event": "message.delivered"})
        )
    );
    // rumqttc acknowledges the delivery by itself.
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/acked".into(),
            json!({"clientid": "c1", "from_clientid": "pub", "topic": "s/1", "payload": "hello",
                   "event": "message.acked"})
        )
    );
    c1.client.unsubscribe("s/1").await.unwrap();
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/unsubscribed".into(),
            json!({"clientid": "c1", "topic": "s/1", "event": "session.unsubscribed"})
        )
    );
    publisher.publish("nobody/here", QoS::AtMostOnce, false, "x").await;
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/dropped".into(),
            json!({"topic": "nobody/here", "reason": "no_subscribers", "from_clientid": "pub",
                   "event": "message.dropped"})
        )
    );
    c1.client.disconnect().await.unwrap();
    assert_eq!(
        next_json(&mut reader).await,
        (
            "ev/disconnected".into(),
            json!({"clientid": "c1", "reason": "normal", "event": "client.disconnected"})
        )
    );
    // An action is counted once its message is routed, so a moment after the reader may have it.
    for (name, ..) in events {
        eventually(&format!("rule {name} counted one output carried out"), || {
            let r = rules.get(name).unwrap();
            (r.stats.passed, r.stats.actions[0].success) == (1, 1)
        })
        .await;
    }
}

/// A template that names a field the row lacks (the SQL is `SELECT *`, so it could not be checked when the
/// rule was made) fails the action: the row goes to the rule's dead-letter topic with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_naming_a_missing_field_dead_letters_the_row() {
    let (broker, rules) = node(json!([{
        "name": "star",
        "sql": r#"SELECT * FROM "in/#""#,
        "actions": [{ "republish": { "topic": "out/${nosuch}" } }],
    }]))
    .await;
    let mut letters = broker.subscribe("$dlq/#", 8).await.unwrap();
    let mut outs = broker.subscribe("out/#", 8).await.unwrap();
    let publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("in/x", QoS::AtLeastOnce, false, "{}").await;
    let letter = tokio::time::timeout(DEADLINE, letters.recv()).await.unwrap().unwrap();
    assert_eq!(&*letter.topic, "$dlq/$rule/star/in/x");
    let reason = letter.properties.user_properties.iter().find(|(k, _)| k == "reason");
    let reason = reason.map(|(_, v)| v.as_str()).unwrap_or_default();
    assert!(reason.contains("nosuch"), "{reason}");
    let row: Value = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(
        (row["topic"].as_str(), row["clientid"].as_str()),
        (Some("in/x"), Some("pub"))
    );
    let star = rules.get("star").unwrap();
    assert_eq!(
        (
            star.stats.passed,
            star.stats.actions[0].failed,
            star.stats.actions[0].success
        ),
        (1, 1, 0)
    );
    // Nothing was republished: the action failed before the letter was sent, and a marker comes first.
    broker
        .publish("out/marker", "m", ractmq::QoS::AtLeastOnce, false)
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, outs.recv()).await.unwrap().unwrap();
    assert_eq!(&*first.topic, "out/marker");
}

/// Two rules that republish into each other's source would feed each other forever: the chain is cut at
/// depth 8, counted, and the node goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_feeding_each_other_are_cut_at_a_depth() {
    let (broker, rules) = node(json!([
        { "name": "ping", "sql": r#"SELECT * FROM "ping/#""#, "actions": [{ "republish": { "topic": "pong/x", "payload": "${payload}" } }] },
        { "name": "pong", "sql": r#"SELECT * FROM "pong/#""#, "actions": [{ "republish": { "topic": "ping/x", "payload": "${payload}" } }] },
    ]))
    .await;
    let mut all = Client::connect(broker.mqtt_addr(), "all").await;
    all.subscribe("ping/#", QoS::AtMostOnce).await;
    all.subscribe("pong/#", QoS::AtMostOnce).await;
    all.subscribe("end", QoS::AtMostOnce).await;
    let publisher = Client::connect(broker.mqtt_addr(), "pub").await;
    publisher.publish("ping/start", QoS::AtLeastOnce, false, "ball").await;
    publisher.publish("end", QoS::AtLeastOnce, false, "").await;
    let got = all.publishes_until("end").await;
    // The client's message, then eight republished by the rules in turn.
    let topics: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "ping/start",
            "pong/x",
            "ping/x",
            "pong/x",
            "ping/x",
            "pong/x",
            "ping/x",
            "pong/x",
            "ping/x"
        ]
    );
    assert!(got.iter().all(|p| p.payload == "ball"));
    assert_eq!(rules.chains_cut(), 1);
}

/// A rule's output handed to a bridge reaches the remote broker (a real Mosquitto); a rule naming a bridge
/// that does not exist is tried again by its actor, then dead-lettered with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_feeds_a_bridge_and_a_missing_bridge_is_retried_then_dead_lettered() {
    let remote = Mosquitto::start("");
    let broker = start_broker().await;
    let mut cloud = ractmq::MqttBridgeConfig::new("cloud", &remote.addr.to_string());
    cloud.forward = vec!["never/#".into()];
    let bridges = ractmq::BridgesConfig {
        mqtt: vec![cloud],
        ..ractmq::BridgesConfig::default()
    };
    let bridges = ractmq::Bridges::start(broker.view(), broker.bridges_tree().clone(), &bridges)
        .await
        .unwrap();
    eventually("the bridge connects", || {
        bridges.get("cloud").is_some_and(|b| b.stats.connected)
    })
    .await;
    let config: RulesConfig = serde_json::from_value(json!([
        { "name": "up", "sql": r#"SELECT payload.v AS v, clientid FROM "sensors/#""#,
          "actions": [{ "bridge": { "name": "cloud", "topic": "edge/${clientid}" } }] },
        { "name": "lost", "sql": r#"SELECT payload.v AS v FROM "sensors/#""#, "max_retries": 2, "retry_backoff_ms": 20,
          "actions": [{ "bridge": { "name": "nope" } }] },
    ]))
    .unwrap();
    let rules = Rules::start(broker.view(), broker.rules_tree().clone(), &config)
        .await
        .unwrap();
    let mut far = Client::connect(remote.addr, "far").await;
    far.subscribe("edge/#", QoS::AtLeastOnce).await;
    let mut letters = broker.subscribe("$dlq/#", 8).await.unwrap();
    let publisher = Client::connect(broker.mqtt_addr(), "dev1").await;
    publisher
        .publish("sensors/1", QoS::AtLeastOnce, false, r#"{"v": 7}"#)
        .await;

    let p = far.expect_publish().await;
    assert_eq!(p.topic, "edge/dev1");
    assert_eq!(
        serde_json::from_slice::<Value>(&p.payload).unwrap(),
        json!({"v": 7, "clientid": "dev1"})
    );

    let letter = tokio::time::timeout(DEADLINE, letters.recv()).await.unwrap().unwrap();
    assert_eq!(&*letter.topic, "$dlq/$rule/lost/sensors/1");
    assert_eq!(
        serde_json::from_slice::<Value>(&letter.payload).unwrap(),
        json!({"v": 7})
    );
    let reason = letter
        .properties
        .user_properties
        .iter()
        .find(|(k, _)| k == "reason")
        .unwrap();
    assert_eq!(reason.1, "no bridge named \"nope\" on this node (after 2 retries)");
    eventually("the counters show the retries and the failure", || {
        let lost = rules.get("lost").unwrap();
        lost.stats.actions[0].retried == 2 && lost.stats.actions[0].failed == 1 && lost.pending_retries == 0
    })
    .await;
    eventually("the bridge action is counted", || {
        rules.get("up").unwrap().stats.actions[0].success == 1
    })
    .await;
    assert_eq!(bridges.get("cloud").unwrap().stats.acked, 1);
    // Exactly one copy reached the remote: a marker sent after it comes next.
    let mut o = options(remote.addr, "marker");
    o.set_keep_alive(Duration::from_secs(5));
    let marker = Client::connect_with(o).await;
    marker.publish("edge/marker", QoS::AtLeastOnce, false, "m").await;
    assert_eq!(far.expect_publish().await.topic, "edge/marker");
}
