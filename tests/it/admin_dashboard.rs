//! The REST API a dashboard reads, on real `ractmq` processes over real HTTP: the live supervision tree (and
//! `ractmq ctl supervision`) following chaos kills, on a single node and on a clustered one; logging in for a
//! session token and out again; the ACL in force and flapping detection (and their ctl commands); searching
//! clients; editing a rule and a bridge in place, and an edited rule reaching every node of a cluster.

use crate::common;

use std::net::SocketAddr;

use common::cluster::{start_cluster, WAIT};
use common::process::{ctl, json_of, Process};
use common::{eventually, eventually_within, options, Client};
use rumqttc::QoS;
use serde_json::{json, Value};

fn get_at(api: SocketAddr, path: &str) -> Value {
    ureq::get(&format!("http://{api}/api/v1{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .into_json()
        .unwrap()
}

fn get(node: &Process, path: &str) -> Value {
    get_at(node.api, path)
}

fn status_of(result: Result<ureq::Response, ureq::Error>) -> u16 {
    match result {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

/// The answer's JSON, whatever its status.
fn json_body(result: Result<ureq::Response, ureq::Error>) -> (u16, Value) {
    match result {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

/// The child named `name` of the tree node `node`.
fn child<'a>(node: &'a Value, name: &str) -> &'a Value {
    (node["children"].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no child {name} under {}: {node}", node["name"]))
}

fn names(node: &Value) -> Vec<String> {
    (node["children"].as_array().into_iter().flatten())
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervision_tree_shows_each_actor_and_follows_a_kill() {
    // Sessions stay awake (no hibernation), so the client's actor is in the tree.
    let node = Process::start(&["--api-chaos", "--hibernate-after-ms", "0"]);
    let mut persistent = options(node.mqtt, "alice");
    persistent.set_clean_session(false);
    let mut alice = Client::connect_with(persistent.clone()).await;
    alice.subscribe("a/#", QoS::AtLeastOnce).await;

    let v = get(&node, "/supervision");
    assert_eq!((&v["node"], &v["chaos"]), (&json!("local"), &json!(true)));
    assert_eq!(v["restarts"], json!({"session": 0, "shard": 0, "other": 0}));
    let root = &v["tree"];
    assert_eq!(
        (&root["name"], &root["kind"], &root["status"], &root["strategy"]),
        (
            &json!("root"),
            &json!("supervisor"),
            &json!("running"),
            &json!("one-for-one")
        )
    );
    assert_eq!(root["intensity"], json!({"max_restarts": 5, "within_s": 30}));
    assert_eq!(root["kill"], json!(null));
    let top = names(root);
    assert_eq!(
        top[..8],
        [
            "shards",
            "sessions",
            "retained-janitor",
            "sys",
            "overload-guard",
            "user",
            "bridges",
            "rules"
        ],
        "in start order: {top:?}"
    );
    assert!(top.contains(&"mqtt-listener".to_string()), "{top:?}");
    assert_eq!(root["children_count"], json!(top.len()));
    assert_eq!(root["more"], json!(0));

    let shards = child(root, "shards");
    assert_eq!(shards["intensity"], json!({"max_restarts": 10, "within_s": 10}));
    assert_eq!(names(shards), ["shard-0", "shard-1", "shard-2", "shard-3"]);
    let shard2 = child(shards, "shard-2");
    assert_eq!(
        (&shard2["kind"], &shard2["status"], &shard2["kill"]),
        (
            &json!("worker"),
            &json!("running"),
            &json!({"kind": "shard", "target": "2"})
        )
    );
    let sessions = child(root, "sessions");
    assert_eq!(
        (&sessions["kind"], &sessions["strategy"], &sessions["hibernated"]),
        (&json!("supervisor"), &json!("one-for-one"), &json!(0))
    );
    assert_eq!(sessions["intensity"], json!({"max_restarts": 1000, "within_s": 10}));
    let session = child(sessions, "alice");
    assert_eq!(
        (&session["status"], &session["restarts"], &session["kill"]),
        (
            &json!("running"),
            &json!(0),
            &json!({"kind": "session", "target": "alice"})
        )
    );
    assert_eq!(child(root, "sys")["kill"], json!(null), "chaos has no kind for it");
    assert!(child(root, "sys").get("hibernated").is_none(), "only sessions have it");

    // What the tree says to send is what kills the session: it is restarted, counted, and running again.
    let kill = ureq::post(&node.url("/chaos/kill")).send_json(session["kill"].clone());
    assert_eq!(status_of(kill), 200);
    alice.expect_disconnect().await;
    let alice_in_tree = || {
        let v = get(&node, "/supervision");
        child(child(&v["tree"], "sessions"), "alice").clone()
    };
    eventually("the tree shows alice restarted once and running", || {
        let a = alice_in_tree();
        a["restarts"] == json!(1) && a["status"] == json!("running")
    })
    .await;
    assert_eq!(get(&node, "/supervision")["restarts"]["session"], json!(1));
    let mut again = Client::start(persistent);
    assert!(again.expect_connack().await.session_present);
    assert_eq!(alice_in_tree()["status"], json!("running"));

    let kill = ureq::post(&node.url("/chaos/kill")).send_json(shard2["kill"].clone());
    assert_eq!(status_of(kill), 200);
    eventually("the tree shows shard-2 restarted once and running", || {
        let v = get(&node, "/supervision");
        let s = child(child(&v["tree"], "shards"), "shard-2").clone();
        s["restarts"] == json!(1) && s["status"] == json!("running") && v["restarts"]["shard"] == json!(1)
    })
    .await;

    // ctl draws the same tree, and `tree` is the short name.
    let (code, text, err) = ctl(node.api, &["supervision"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.starts_with("node local: restarts since start: 1 sessions, 1 shards, 0 others (chaos on"),
        "{text}"
    );
    assert!(
        text.contains("root  (supervisor, one-for-one, 5 restarts in 30 s, running)"),
        "{text}"
    );
    assert!(
        text.contains("│   └── alice  (worker, running, restarted once, kill: session alice)"),
        "{text}"
    );
    assert!(
        text.contains("shard-2  (worker, running, restarted once, kill: shard 2)"),
        "{text}"
    );
    let tree = json_of(node.api, &["tree"]);
    assert_eq!(tree["tree"]["name"], json!("root"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernated_sessions_are_counted_not_listed() {
    let node = Process::start(&["--hibernate-after-ms", "100"]);
    let _idle = Client::connect(node.mqtt, "sleepy").await;
    eventually("the idle session hibernated", || {
        let v = get(&node, "/supervision");
        let sessions = child(&v["tree"], "sessions");
        sessions["hibernated"] == json!(1) && sessions["children"] == json!([])
    })
    .await;
}

/// A clustered node's tree has the cluster's subtree, each actor with its chaos target; a rule edited on one
/// node is edited on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clustered_node_shows_its_cluster_subtree_and_an_edited_rule_reaches_every_node() {
    let nodes = start_cluster(2, &["--api-chaos"]).await;
    eventually_within(WAIT, "both APIs are up", || {
        nodes.iter().all(|n| n.api_addr().is_some())
    })
    .await;
    let (n1, n2) = (nodes[0].api_addr().unwrap(), nodes[1].api_addr().unwrap());
    let v = get_at(n1, "/supervision");
    assert_eq!(v["node"], json!("n1"));
    let cluster = child(&v["tree"], "cluster");
    assert_eq!(
        (&cluster["kind"], &cluster["strategy"], &cluster["status"]),
        (&json!("supervisor"), &json!("one-for-one"), &json!("running"))
    );
    assert_eq!(names(cluster), ["node-server", "agent", "forwarder", "connector"]);
    for name in names(cluster) {
        assert_eq!(
            child(cluster, &name)["kill"],
            json!({"kind": "cluster", "target": name})
        );
    }
    let kill = ureq::post(&format!("http://{n1}/api/v1/chaos/kill")).send_json(child(cluster, "agent")["kill"].clone());
    assert_eq!(status_of(kill), 200);
    eventually("the tree shows the agent restarted and running", || {
        let v = get_at(n1, "/supervision");
        let agent = child(child(&v["tree"], "cluster"), "agent").clone();
        agent["restarts"] == json!(1)
            && agent["status"] == json!("running")
            && v["restarts"]["other"].as_u64() >= Some(1)
    })
    .await;

    // A rule created and then edited on n1 is edited on n2 too.
    let rule = |topic: &str| {
        json!({"name": "copy", "sql": r#"SELECT payload FROM "in/#""#,
            "actions": [{"republish": {"topic": topic, "payload": "${payload}"}}]})
    };
    let created = ureq::post(&format!("http://{n1}/api/v1/rules")).send_json(rule("out/old"));
    assert_eq!(status_of(created), 201);
    let edited = ureq::put(&format!("http://{n1}/api/v1/rules/copy")).send_json(rule("out/new"));
    assert_eq!(status_of(edited), 200);
    let topic_on = |api: SocketAddr| match ureq::get(&format!("http://{api}/api/v1/rules/copy")).call() {
        Ok(r) => r.into_json::<Value>().unwrap()["config"]["actions"][0]["republish"]["topic"].clone(),
        Err(_) => Value::Null,
    };
    eventually_within(WAIT, "n2 has the edited rule", || topic_on(n2) == json!("out/new")).await;
    let mut reader = Client::connect(nodes[1].mqtt, "reader").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    let writer = Client::connect(nodes[1].mqtt, "writer").await;
    writer.publish("in/1", QoS::AtLeastOnce, false, "hello").await;
    let got = reader.expect_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("out/new", &b"hello"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_hands_out_a_session_token_that_logout_revokes() {
    let node = Process::start(&["--api-token", "s3cret", "--api-user", "ops:pa55"]);
    let login = |body: Value| json_body(ureq::post(&node.url("/login")).send_json(body));
    let status_with = |token: &str| {
        status_of(
            ureq::get(&node.url("/status"))
                .set("Authorization", &format!("Bearer {token}"))
                .call(),
        )
    };
    assert_eq!(
        get(&node, "/login"),
        json!({"required": true, "token": true, "users": true}),
        "asked without credentials"
    );

    let (code, answer) = login(json!({"username": "ops", "password": "pa55"}));
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (&answer["user"], &answer["expires_in_s"]),
        (&json!("ops"), &json!(3600))
    );
    let token = answer["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    assert_eq!(status_with(&token), 200);
    let (code, by_token) = login(json!({"token": "s3cret"}));
    assert_eq!((code, &by_token["user"]), (200, &json!("token")));
    assert_ne!(by_token["token"], answer["token"]);

    for bad in [
        json!({"username": "ops", "password": "wrong"}),
        json!({"username": "nobody", "password": "pa55"}),
        json!({"token": "nope"}),
    ] {
        let (code, answer) = login(bad.clone());
        assert_eq!(code, 401, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().starts_with("login failed"),
            "{answer}"
        );
    }
    let (code, answer) = login(json!({"user": "ops"}));
    assert_eq!(code, 400, "{answer}");
    assert_eq!(status_with("not-a-session"), 401);
    let stats = ureq::get(&node.url("/stats"))
        .set("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(stats.into_json::<Value>().unwrap()["api_logins_failed"], json!(3));

    // Logging out forgets the token it is called with, and only that one.
    let out = ureq::post(&node.url("/logout"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(out.into_json::<Value>().unwrap(), json!({"logged_out": true}));
    assert_eq!(status_with(&token), 401, "logged out");
    assert_eq!(status_with(by_token["token"].as_str().unwrap()), 200);
    let again = ureq::post(&node.url("/logout"))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    assert_eq!(status_of(again), 401);

    // Too many failures lock the login for the rest of the minute; the node's token still works.
    for _ in 0..17 {
        assert_eq!(login(json!({"token": "guess"})).0, 401);
    }
    let (code, answer) = login(json!({"username": "ops", "password": "pa55"}));
    assert_eq!(code, 429, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("too many failed logins"),
        "{answer}"
    );
    assert_eq!(status_with("s3cret"), 200);

    // Without authentication, a login is not needed, and any body gets a token anyway.
    let open = Process::start(&[]);
    assert_eq!(
        get(&open, "/login"),
        json!({"required": false, "token": false, "users": false})
    );
    let (code, answer) = json_body(ureq::post(&open.url("/login")).send_json(json!({})));
    assert_eq!((code, &answer["user"]), (200, &json!("anonymous")), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_in_force_is_listed_rule_by_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acl");
    std::fs::write(&file, "topic read public/#\nuser alice\ntopic readwrite alice/#\n").unwrap();
    let node = Process::start(&["--acl-file", file.to_str().unwrap()]);
    let v = get(&node, "/acl");
    assert_eq!(v["file"], json!(file.to_str().unwrap()));
    assert_eq!(
        (
            &v["format"],
            &v["no_match"],
            &v["count"],
            &v["http_authz"],
            &v["jwt_claims"]
        ),
        (
            &json!("mosquitto"),
            &json!("deny"),
            &json!(2),
            &json!(false),
            &json!(false)
        )
    );
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(
        (
            &rules[0]["who"],
            &rules[0]["permission"],
            &rules[0]["action"],
            &rules[0]["topic"]
        ),
        (
            &json!("anonymous"),
            &json!("allow"),
            &json!("subscribe"),
            &json!("public/#")
        )
    );
    assert_eq!(
        (
            &rules[1]["who"],
            &rules[1]["username"],
            &rules[1]["action"],
            &rules[1]["topic"]
        ),
        (&json!("user alice"), &json!("alice"), &json!("all"), &json!("alice/#"))
    );
    assert_eq!(rules[1]["text"], json!("allow all alice/# for user alice"));
    let second = get(&node, "/acl?page=2&limit=1");
    assert_eq!(second["rules"].as_array().unwrap().len(), 1);
    assert_eq!(second["rules"][0]["topic"], json!("alice/#"));
    assert_eq!(status_of(ureq::get(&node.url("/acl?limit=0")).call()), 400);

    let (code, table, err) = ctl(node.api, &["acl", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("(mosquitto format): 2 rules; no match: deny"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("2 ") && l.contains("alice/#") && l.contains("user alice")),
        "{table}"
    );
}

/// The 3.1.1 CONNACK return code of one CONNECT by `client_id`.
async fn connack_code(addr: SocketAddr, client_id: &str) -> u8 {
    let mut raw = common::Raw::connect(addr).await;
    raw.send(&common::connect_v311(client_id)).await;
    let frame = raw.read_frame().await;
    assert_eq!(frame[0], 0x20, "a CONNACK");
    frame[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_shows_its_settings_what_it_counts_and_the_bans_it_made() {
    let node = Process::start(&["--flapping-detect", "--flapping-max-count", "3"]);
    for _ in 0..2 {
        assert_eq!(connack_code(node.mqtt, "flappy").await, 0);
    }
    assert_eq!(
        connack_code(node.mqtt, "flappy").await,
        5,
        "banned at the third connect"
    );
    assert_eq!(connack_code(node.mqtt, "steady").await, 0);
    let banned = ureq::post(&node.url("/banned")).send_json(json!({"as": "clientid", "who": "by-hand"}));
    assert_eq!(status_of(banned), 201);
    let v = get(&node, "/flapping");
    assert_eq!(v["enabled"], json!(true));
    assert_eq!(v["config"], json!({"max_count": 3, "window_s": 60, "ban_s": 300}));
    assert_eq!(
        v["tracked"],
        json!(1),
        "steady is counted; flappy's count went with its ban"
    );
    let bans = v["banned"].as_array().unwrap();
    assert_eq!(bans.len(), 1, "not the ban made by hand: {bans:?}");
    assert_eq!(
        (&bans[0]["as"], &bans[0]["who"], &bans[0]["by"]),
        (&json!("clientid"), &json!("flappy"), &json!("flapping detector"))
    );
    assert_eq!(get(&node, "/stats")["banned_flapping"], json!(1));
    let (code, text, err) = ctl(node.api, &["flapping"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("connects 3 times within 60 s is banned for 300 s; 1 client ids counted now"),
        "{text}"
    );
    assert!(text.contains("flappy") && !text.contains("by-hand"), "{text}");

    let off = Process::start(&[]);
    assert_eq!(
        get(&off, "/flapping"),
        json!({"enabled": false, "config": null, "tracked": 0, "banned": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_found_by_id_user_name_or_peer() {
    let node = Process::start(&["--user", "Alice:pw", "--user", "bob:pw"]);
    let mut as_alice = options(node.mqtt, "sensor-7");
    as_alice.set_credentials("Alice", "pw");
    let _alice = Client::connect_with(as_alice).await;
    let mut as_bob = options(node.mqtt, "pump-1");
    as_bob.set_credentials("bob", "pw");
    let _bob = Client::connect_with(as_bob).await;
    // A client has its CONNACK a moment before the node lists its connection (peer, user name).
    common::eventually("both clients listed as connected", || {
        get(&node, "/clients?connected=true")["meta"]["count"] == json!(2)
    })
    .await;
    let found = |q: &str| -> Vec<String> {
        let v = get(&node, &format!("/clients?q={q}"));
        (v["data"].as_array().unwrap().iter())
            .map(|c| c["client_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(found("alice"), ["sensor-7"], "by user name, whatever the case");
    assert_eq!(found("PUMP"), ["pump-1"], "by client id, whatever the case");
    assert_eq!(found("127.0.0.1"), ["pump-1", "sensor-7"], "by peer address");
    let bob_port = get(&node, "/clients/pump-1")["peer"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(found(&format!(":{bob_port}")), ["pump-1"], "by peer port");
    assert!(found("nobody").is_empty());
    assert_eq!(
        get(&node, "/clients?like=sensor")["meta"]["count"],
        json!(1),
        "like still works"
    );
    assert_eq!(
        get(&node, "/clients?username=bob")["data"][0]["client_id"],
        json!("pump-1")
    );
    let listed = json_of(node.api, &["clients", "list", "--search", "ALICE"]);
    assert_eq!(listed["data"][0]["client_id"], json!("sensor-7"));

    // A refused login is counted in /stats.
    let mut wrong = options(node.mqtt, "intruder");
    wrong.set_credentials("bob", "nope");
    let mut intruder = Client::start(wrong);
    intruder.expect_disconnect().await;
    eventually("the failed login is counted", || {
        get(&node, "/stats")["authn_failed"] == json!(1)
    })
    .await;
}

/// Publish one message on `in/1`, then a marker: the topics the rule copied it to, as `reader` got them.
async fn copied_to(writer: &Client, reader: &mut Client) -> Vec<String> {
    writer.publish("in/1", QoS::AtLeastOnce, false, "x").await;
    writer.publish("out/end", QoS::AtLeastOnce, false, "").await;
    (reader.publishes_until("out/end").await.into_iter())
        .map(|p| p.topic)
        .collect()
}

/// Rules of the run-time kind: `PUT` changes what the rule does, keeps it disabled if it was, and leaves it
/// alone when the new SQL does not compile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_rule_changes_what_it_does() {
    let node = Process::start(&[]);
    let rule = |topic: &str| {
        json!({"sql": r#"SELECT payload FROM "in/#""#,
            "actions": [{"republish": {"topic": topic, "payload": "${payload}"}}]})
    };
    let mut created = rule("out/old");
    created["name"] = json!("copy");
    assert_eq!(status_of(ureq::post(&node.url("/rules")).send_json(created)), 201);
    let mut reader = Client::connect(node.mqtt, "reader").await;
    reader.subscribe("out/#", QoS::AtLeastOnce).await;
    let writer = Client::connect(node.mqtt, "writer").await;
    let put = |name: &str, body: Value| json_body(ureq::put(&node.url(&format!("/rules/{name}"))).send_json(body));
    assert_eq!(copied_to(&writer, &mut reader).await, ["out/old"]);

    let (code, edited) = put("copy", rule("out/new"));
    assert_eq!(code, 200, "{edited}");
    assert_eq!(edited["enabled"], json!(true));
    assert_eq!(
        copied_to(&writer, &mut reader).await,
        ["out/new"],
        "the edit took effect at once"
    );

    // Disabled, then edited without saying: it stays disabled. Edited with enabled: it runs.
    assert_eq!(status_of(ureq::post(&node.url("/rules/copy/disable")).call()), 200);
    let (code, edited) = put("copy", rule("out/newer"));
    assert_eq!((code, &edited["enabled"]), (200, &json!(false)), "{edited}");
    assert!(copied_to(&writer, &mut reader).await.is_empty(), "still disabled");
    let mut enable = rule("out/newer");
    enable["enabled"] = json!(true);
    assert_eq!(put("copy", enable).0, 200);
    assert_eq!(copied_to(&writer, &mut reader).await, ["out/newer"]);

    // Mistakes are one line, and change nothing.
    let (code, answer) = put("copy", json!({"sql": "SELECT * FROM"}));
    assert_eq!(code, 400, "{answer}");
    let (code, answer) = put("nothing", rule("x"));
    assert_eq!(code, 404, "{answer}");
    let mut renamed = rule("x");
    renamed["name"] = json!("other");
    let (code, answer) = put("copy", renamed);
    assert_eq!(code, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("rename"), "{answer}");
    let shown = get(&node, "/rules/copy");
    assert_eq!(shown["config"]["actions"][0]["republish"]["topic"], json!("out/newer"));
}

/// A bridge edited in place forwards what its new configuration says, with the password it had (the API
/// shows it as `***`, and a dashboard sends back what it was shown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_bridge_changes_what_it_forwards_and_keeps_its_password() {
    let remote = Process::start(&["--user", "edge:secret"]);
    let node = Process::start(&[]);
    let created = ureq::post(&node.url("/bridges")).send_json(json!({
        "kind": "mqtt", "name": "edge", "server": remote.mqtt.to_string(),
        "username": "edge", "password": "secret", "forward": ["up/#"]}));
    assert_eq!(status_of(created), 201);
    let connected = || get(&node, "/bridges/edge")["connected"] == json!(true);
    eventually("the bridge connected", connected).await;
    let mut far_options = options(remote.mqtt, "far");
    far_options.set_credentials("edge", "secret");
    let mut far = Client::connect_with(far_options).await;
    far.subscribe("#", QoS::AtLeastOnce).await;
    let near = Client::connect(node.mqtt, "near").await;

    let mut config = get(&node, "/bridges/edge")["config"].clone();
    assert_eq!(config["password"], json!("***"));
    config["forward"] = json!(["down/#"]);
    let (code, edited) = json_body(ureq::put(&node.url("/bridges/edge")).send_json(config.clone()));
    assert_eq!(code, 200, "{edited}");
    assert_eq!(
        (&edited["forward"], &edited["status"]),
        (&json!(["down/#"]), &json!("running"))
    );
    eventually("the edited bridge connected with the password it had", connected).await;
    near.publish("up/1", QoS::AtLeastOnce, false, "old").await;
    near.publish("down/1", QoS::AtLeastOnce, false, "new").await;
    let got = far.expect_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("down/1", &b"new"[..]),
        "up/ is no longer forwarded"
    );

    config["enabled"] = json!(false);
    let (code, edited) = json_body(ureq::put(&node.url("/bridges/edge")).send_json(config));
    assert_eq!((code, &edited["status"]), (200, &json!("stopped")), "{edited}");
    let (code, _) = json_body(ureq::put(&node.url("/bridges/nope")).send_json(json!({"server": "x:1"})));
    assert_eq!(code, 404);
}
