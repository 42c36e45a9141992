//! The REST API of a real `ractmq` process, over real HTTP, with real MQTT clients making the state it
//! reports: clients (paged, filtered, shown, kicked), subscriptions, routes, retained messages (listed, read,
//! cleared), counters, listeners, publishing over HTTP, the chaos API (off unless asked for), tracing a
//! client, the OpenAPI document, and authentication by token and by user.

use crate::common;

use std::io::{BufRead, BufReader};

use common::process::Process;
use common::{options, Client};
use rumqttc::QoS;
use serde_json::{json, Value};

fn get(node: &Process, path: &str) -> Value {
    ureq::get(&node.url(path)).call().unwrap().into_json().unwrap()
}

fn status_of(result: Result<ureq::Response, ureq::Error>) -> u16 {
    match result {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reports_and_steers_what_clients_do() {
    let node = Process::start(&["--ws-listen", "127.0.0.1:0", "--ws-path", "/ws"]);
    let mut persistent = options(node.mqtt, "alice");
    persistent.set_clean_session(false);
    let mut alice = Client::connect_with(persistent).await;
    alice.subscribe("sensors/#", QoS::AtLeastOnce).await;
    let bob = Client::connect(node.mqtt, "bob").await;
    bob.publish("sensors/1", QoS::AtLeastOnce, true, "21.5").await;
    assert_eq!(&alice.expect_publish().await.payload[..], b"21.5");

    let nodes = get(&node, "/nodes");
    assert_eq!(nodes[0]["name"], json!("local"));
    assert_eq!(nodes[0]["state"], json!("up"));
    let status = get(&node, "/status");
    assert_eq!(status["clients_connected"], json!(2));
    assert_eq!(status["node"], json!("local"));

    // Clients: paged and filtered.
    let all = get(&node, "/clients");
    assert_eq!(all["meta"]["count"], json!(2));
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice", "bob"]);
    let page2 = get(&node, "/clients?page=2&limit=1");
    assert_eq!(page2["data"][0]["client_id"], json!("bob"));
    assert_eq!(get(&node, "/clients?like=ali")["meta"]["count"], json!(1));
    let alice_info = get(&node, "/clients/alice");
    assert_eq!(alice_info["connected"], json!(true));
    assert_eq!(alice_info["protocol"], json!("3.1.1"));
    assert_eq!(alice_info["subscriptions"], json!(1));
    assert_eq!(status_of(ureq::get(&node.url("/clients/nobody")).call()), 404);
    assert_eq!(status_of(ureq::get(&node.url("/clients?limit=0")).call()), 400);

    // Subscriptions and routes.
    let subs = get(&node, "/subscriptions");
    assert_eq!(
        subs,
        json!([{"client_id": "alice", "filter": "sensors/#", "qos": 1, "no_local": false,
        "retain_as_published": false, "subscription_id": null}])
    );
    assert_eq!(get(&node, "/topics"), json!([{"topic": "sensors/#", "node": "local"}]));

    // Retained: listed, read, cleared (the subscriber sees the clearing, as from a client).
    let retained = get(&node, "/retained");
    assert!(retained
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["topic"] == json!("sensors/1")));
    assert_eq!(get(&node, "/retained/sensors/1")["payload"], json!("21.5"));
    let deleted = ureq::delete(&node.url("/retained/sensors/1")).call().unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(alice.expect_publish().await.payload.is_empty());
    assert_eq!(status_of(ureq::get(&node.url("/retained/sensors/1")).call()), 404);

    // Publish over HTTP reaches the subscriber.
    let published: Value = ureq::post(&node.url("/publish"))
        .send_json(json!({"topic": "sensors/2", "payload": "from http", "qos": 1}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(published["delivered"], json!(1));
    assert_eq!(&alice.expect_publish().await.payload[..], b"from http");
    let bad = ureq::post(&node.url("/publish")).send_json(json!({"topic": "a/+", "payload": "x"}));
    assert_eq!(status_of(bad), 400);

    // Counters and listeners.
    let stats = get(&node, "/stats");
    assert!(stats["messages_received"].as_u64().unwrap() >= 2);
    let listeners = get(&node, "/listeners");
    assert_eq!(listeners[0]["bound"], json!(node.mqtt.to_string()));
    assert_eq!(listeners[0]["running"], json!(true));
    assert_eq!(listeners[1]["name"], json!("mqtt:ws"));
    assert_eq!(listeners[1]["configured"], json!("127.0.0.1:0"));
    assert_eq!(listeners[1]["websocket_path"], json!("/ws"));
    assert_eq!(listeners[1]["running"], json!(true));
    assert_eq!(listeners[0]["connections"], json!(2), "alice and bob");
    assert_eq!(listeners[1]["connections"], json!(0), "nobody over WebSocket");
    let ws_port: std::net::SocketAddr = listeners[1]["bound"].as_str().unwrap().parse().unwrap();
    assert_ne!(ws_port.port(), 0, "the port the listener got");

    // Chaos is off by default.
    let chaos = ureq::post(&node.url("/chaos/kill")).send_json(json!({"kind": "session", "target": "alice"}));
    assert_eq!(status_of(chaos), 403);

    // Trace: bob's packets as they pass.
    let trace = ureq::get(&node.url("/trace/clients/bob")).call().unwrap();
    let mut lines = BufReader::new(trace.into_reader()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("tracing client bob"));
    bob.publish("sensors/3", QoS::AtLeastOnce, false, "traced").await;
    let traced: Vec<String> = (0..2).map(|_| lines.next().unwrap().unwrap()).collect();
    assert!(
        traced[0].starts_with("in ") && traced[0].contains("sensors/3"),
        "{traced:?}"
    );
    assert!(traced[1].starts_with("out PUBACK"), "{traced:?}");

    // Kick: alice's connection ends with 0x98; her session stays.
    let kicked = ureq::delete(&node.url("/clients/alice")).call().unwrap();
    assert_eq!(kicked.status(), 200);
    alice.expect_disconnect().await;
    common::eventually("alice shows as disconnected", || {
        get(&node, "/clients/alice")["connected"] == json!(false)
    })
    .await;

    // The OpenAPI document names every path.
    let spec = get(&node, "/openapi.json");
    assert_eq!(spec["openapi"], json!("3.0.3"));
    for path in [
        "/clients",
        "/clients/{id}",
        "/retained/{topic}",
        "/chaos/kill",
        "/metrics",
        "/cluster",
        "/data",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    // So is the client_id that narrows /topics to one client's.
    let topics_params = spec["paths"]["/topics"]["get"]["parameters"].as_array().unwrap();
    assert!(
        topics_params
            .iter()
            .any(|p| p["name"] == "client_id" && p["in"] == "query"),
        "{topics_params:?}"
    );
}

/// Each kill is followed by what supervision promises: the restart counter moves, and the restarted actor serves
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_api_kills_what_it_is_told_when_enabled() {
    let node = Process::start(&["--api-chaos"]);
    let stat = |name: &str| get(&node, "/stats")[name].as_u64().unwrap();
    let kill = |kind: &str, target: &str| {
        status_of(ureq::post(&node.url("/chaos/kill")).send_json(json!({"kind": kind, "target": target})))
    };
    let mut persistent = options(node.mqtt, "victim");
    persistent.set_clean_session(false);
    let mut victim = Client::connect_with(persistent.clone()).await;
    victim.subscribe("x", QoS::AtLeastOnce).await;
    // Filters that begin with a wildcard are kept by shard 0.
    let mut wild = Client::connect(node.mqtt, "wild").await;
    wild.subscribe("+/w", QoS::AtLeastOnce).await;
    let publisher = Client::connect(node.mqtt, "publisher").await;

    // A session: its connection goes, it is restarted from the store, and its client resumes it.
    assert_eq!(kill("session", "victim"), 200);
    victim.expect_disconnect().await;
    common::eventually("the killed session restarted", || stat("session_restarts") == 1).await;
    let mut again = Client::start(persistent);
    assert!(again.expect_connack().await.session_present, "the session is back");
    publisher.publish("x", QoS::AtLeastOnce, false, "after the kill").await;
    assert_eq!(&again.expect_publish().await.payload[..], b"after the kill");

    // A shard: restarted with the subscriptions it held, and it takes new ones (a SUBSCRIBE goes through it).
    assert_eq!(kill("shard", "0"), 200);
    common::eventually("the killed shard restarted", || stat("shard_restarts") == 1).await;
    let mut late = Client::connect(node.mqtt, "late").await;
    late.subscribe("+/late", QoS::AtLeastOnce).await;
    publisher.publish("a/w", QoS::AtLeastOnce, false, "kept").await;
    publisher.publish("a/late", QoS::AtLeastOnce, false, "new").await;
    assert_eq!(&wild.expect_publish().await.payload[..], b"kept");
    assert_eq!(&late.expect_publish().await.payload[..], b"new");

    assert_eq!(kill("session", "nobody"), 404);
    assert_eq!(kill("bridge", "b1"), 404, "no bridges yet");
    assert_eq!(kill("cluster", "agent"), 404, "not clustered");
    assert_eq!(kill("planet", "earth"), 400);
    assert_eq!(
        (stat("session_restarts"), stat("shard_restarts")),
        (1, 1),
        "one restart for each kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_or_users_every_request_must_authenticate() {
    let node = Process::start(&["--api-token", "s3cret", "--api-user", "ops:pa55"]);
    assert_eq!(status_of(ureq::get(&node.url("/status")).call()), 401);
    assert_eq!(
        status_of(ureq::get(&format!("http://{}/metrics", node.api)).call()),
        401
    );
    let wrong = ureq::get(&node.url("/status"))
        .set("Authorization", "Bearer nope")
        .call();
    assert_eq!(status_of(wrong), 401);
    let ok = ureq::get(&node.url("/status"))
        .set("Authorization", "Bearer s3cret")
        .call();
    assert_eq!(status_of(ok), 200);
    // ops:pa55 in base64.
    let basic = ureq::get(&node.url("/status"))
        .set("Authorization", "Basic b3BzOnBhNTU=")
        .call();
    assert_eq!(status_of(basic), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_mqtt5_client_is_told_administrative_action() {
    let node = Process::start(&[]);
    let mut v5 = common::Raw::connect(node.mqtt).await;
    v5.send(&common::connect_v5("kick-me")).await;
    assert_eq!(v5.read_frame().await[0], 0x20, "CONNACK");
    let kicked = ureq::delete(&node.url("/clients/kick-me")).call().unwrap();
    assert_eq!(kicked.status(), 200);
    assert_eq!(common::v5_disconnect(&v5.read_frame().await).0, 0x98);
}
