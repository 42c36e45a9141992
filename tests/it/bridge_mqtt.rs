//! MQTT bridges against a real Mosquitto: messages both ways, Mosquitto restarted mid-stream, the bridge's
//! actor killed under load, loops, dead letters, and a node killed with messages still buffered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractmq::parts::bridge::{Bridges, BridgesConfig, MqttBridgeConfig};
use ractmq::Broker;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::sync::Mutex;
use tokio::sync::Notify;

use crate::common::load::numbered;
use crate::common::mosquitto::{free_port, Mosquitto};
use crate::common::process::Process;
use crate::common::{eventually, options, start_with, test_config, Client, DEADLINE};

/// A node with one bridge, started as the binary starts them.
async fn node_with(config: MqttBridgeConfig) -> (Broker, Bridges) {
    let bridges = BridgesConfig {
        mqtt: vec![config],
        ..BridgesConfig::default()
    };
    let broker = start_with(test_config()).await;
    let running = Bridges::start(broker.view(), broker.bridges_tree().clone(), &bridges)
        .await
        .expect("bridges start");
    (broker, running)
}

fn cloud(remote: SocketAddr, forward: &[&str], subscribe: &[&str]) -> MqttBridgeConfig {
    let mut c = MqttBridgeConfig::new("cloud", &remote.to_string());
    c.forward = forward.iter().map(|s| s.to_string()).collect();
    c.subscribe = subscribe.iter().map(|s| s.to_string()).collect();
    c.qos = 2;
    c.reconnect_max_ms = 500;
    c
}

async fn until_connected(bridges: &Bridges) {
    eventually("the bridge is connected and subscribed on both sides", || {
        bridges.get("cloud").is_some_and(|b| b.stats.connected)
    })
    .await;
}

/// A subscriber that counts numbered messages by number and survives its broker's restarts (persistent
/// session, reconnecting), so that nothing delivered after a restart goes uncounted.
struct Counter {
    seen: Arc<Mutex<HashMap<u32, usize>>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    async fn start(addr: SocketAddr, id: &str, filter: &str, qos: QoS) -> Counter {
        let mut o = options(addr, id);
        o.set_clean_session(false);
        Counter::start_with(o, filter, qos).await
    }

    async fn start_with(o: rumqttc::MqttOptions, filter: &str, qos: QoS) -> Counter {
        let (client, mut events) = AsyncClient::new(o, 1000);
        client.subscribe(filter, qos).await.unwrap();
        let seen: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let subscribed = Arc::new(Notify::new());
        let (s, c, ready) = (seen.clone(), changed.clone(), subscribed.clone());
        let task = tokio::spawn(async move {
            let _client = client;
            let mut awaiting_release = std::collections::HashSet::new();
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        // A QoS 2 receiver delivers a packet id once until its PUBREL, also when its broker
                        // sends it again after a reconnect (rumqttc hands every copy over).
                        if p.qos == QoS::ExactlyOnce && !awaiting_release.insert(p.pkid) {
                            continue;
                        }
                        let n = u32::from_be_bytes(p.payload[1..5].try_into().unwrap());
                        *s.lock().unwrap().entry(n).or_insert(0) += 1;
                        c.notify_waiters();
                    }
                    Ok(Event::Incoming(Packet::PubRel(rel))) => {
                        awaiting_release.remove(&rel.pkid);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => ready.notify_one(),
                    Ok(_) => {}
                    // The broker restarting: rumqttc reconnects on the next poll; a pause between tries.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(DEADLINE, subscribed.notified())
            .await
            .expect("the counter subscribed");
        Counter { seen, changed, task }
    }

    /// A counter at a broker that asks for a password (user `edge`), subscribed to `sensors/#` at QoS 1.
    async fn start_as_edge(addr: SocketAddr) -> Counter {
        let mut o = options(addr, "remote-sub");
        o.set_clean_session(false);
        o.set_credentials("edge", "s3cret");
        Counter::start_with(o, "sensors/#", QoS::AtLeastOnce).await
    }

    fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `n` different numbers arrived (each new arrival restarts the deadline).
    async fn until_distinct(&self, n: usize) {
        self.until_distinct_or(n, String::new).await
    }

    /// [`Counter::until_distinct`], saying `context()` if they do not come.
    async fn until_distinct_or(&self, n: usize, context: impl Fn() -> String) {
        loop {
            let notified = self.changed.notified();
            if self.distinct() >= n {
                return;
            }
            if tokio::time::timeout(DEADLINE * 3, notified).await.is_err() {
                panic!("{} of {n} messages arrived; {}", self.distinct(), context());
            }
        }
    }

    /// (missing numbers of 0..n, numbers that came more than once, extra copies).
    fn tally(&self, n: u32) -> (usize, usize, usize) {
        let seen = self.seen.lock().unwrap();
        let missing = (0..n).filter(|i| !seen.contains_key(i)).count();
        let repeated = seen.values().filter(|&&c| c > 1).count();
        let extra = seen.values().map(|&c| c.saturating_sub(1)).sum();
        (missing, repeated, extra)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes 0..n numbered messages to `topic` and waits until each is acknowledged.
async fn publish_numbered(addr: SocketAddr, id: &str, topic: &str, range: std::ops::Range<u32>, qos: QoS) {
    let mut publisher = Client::connect(addr, id).await;
    let count = range.len();
    for n in range {
        publisher.publish(topic, qos, false, numbered(0, n, 16)).await;
    }
    let mut acked = 0;
    while acked < count {
        match publisher.next().await {
            Ok(Packet::PubAck(_)) | Ok(Packet::PubComp(_)) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("{id} lost its connection: {e}"),
        }
    }
}

async fn both_ways(protocol: &str) {
    let remote = Mosquitto::start("");
    let mut config = cloud(remote.addr, &["sensors/#"], &["commands/#"]);
    config.protocol = protocol.into();
    config.remote_prefix = "edge1/".into();
    config.local_prefix = "cloud/".into();
    let (broker, bridges) = node_with(config).await;
    until_connected(&bridges).await;

    let out = Counter::start(remote.addr, "remote-sub", "edge1/sensors/#", QoS::AtLeastOnce).await;
    let inbound = Counter::start(broker.mqtt_addr(), "local-sub", "cloud/commands/#", QoS::AtLeastOnce).await;
    publish_numbered(broker.mqtt_addr(), "local-pub", "sensors/a", 0..500, QoS::AtLeastOnce).await;
    publish_numbered(remote.addr, "remote-pub", "commands/a", 0..300, QoS::AtLeastOnce).await;
    out.until_distinct(500).await;
    inbound.until_distinct(300).await;
    // Nothing was lost or restarted on the way: every message came exactly once each way.
    assert_eq!(out.tally(500), (0, 0, 0), "MQTT {protocol}: local -> remote");
    assert_eq!(inbound.tally(300), (0, 0, 0), "MQTT {protocol}: remote -> local");
    // The remote's last acknowledgements may still be on their way after its subscriber has the messages.
    eventually("the remote acknowledged all 500", || {
        bridges.get("cloud").unwrap().stats.acked == 500
    })
    .await;
    let stats = bridges.get("cloud").unwrap().stats;
    assert_eq!((stats.sent, stats.acked, stats.received), (500, 500, 300), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_with_topic_prefixes_over_mqtt5() {
    both_ways("5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_with_topic_prefixes_over_mqtt311() {
    both_ways("3.1.1").await;
}

/// Mosquitto stopped and started again while the bridge sends to it: every message the node acknowledged
/// arrives; at QoS 2 exactly once.
///
/// The subscriber at Mosquitto is offline meanwhile (its persistent session queues what comes): Mosquitto
/// restored from its persistence file sends messages that were on their way to a connected subscriber
/// again, which is Mosquitto's own at-least-once, not the bridge's doing.
async fn remote_restart_mid_stream(qos: QoS) {
    let mut remote = Mosquitto::start("");
    let (broker, bridges) = node_with(cloud(remote.addr, &["sensors/#"], &[])).await;
    until_connected(&bridges).await;
    drop(Counter::start(remote.addr, "remote-sub", "sensors/#", qos).await);
    const N: u32 = 3000;
    let publishing = tokio::spawn(publish_numbered(
        broker.mqtt_addr(),
        "local-pub",
        "sensors/a",
        0..N,
        qos,
    ));
    let acked = |n: u32| {
        let bridges = bridges.clone();
        move || bridges.get("cloud").unwrap().stats.acked >= u64::from(n)
    };
    eventually("a third went across", acked(N / 3)).await;
    let remote = tokio::task::spawn_blocking(move || {
        remote.restart();
        remote
    })
    .await
    .unwrap();
    publishing.await.unwrap();
    eventually("the remote took every message", acked(N)).await;
    // A last message: Mosquitto queues in order, so once it has come, so has every copy before it.
    publish_numbered(broker.mqtt_addr(), "local-pub", "sensors/a", N..N + 1, qos).await;
    eventually("the remote took the last one", acked(N + 1)).await;
    let counter = Counter::start(remote.addr, "remote-sub", "sensors/#", qos).await;
    counter.until_distinct(N as usize + 1).await;
    let (missing, repeated, extra) = counter.tally(N + 1);
    assert_eq!(missing, 0, "every acknowledged message reached the remote");
    if qos == QoS::ExactlyOnce {
        assert_eq!(repeated, 0, "QoS 2: each exactly once across the remote's restart");
    }
    let stats = bridges.get("cloud").unwrap().stats;
    assert!(
        extra as u64 <= stats.retried,
        "a copy sent twice was one sent again after the reconnect ({extra}, {stats:?})"
    );
    drop(remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_restarted_mid_stream_loses_nothing_at_qos1() {
    remote_restart_mid_stream(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_restarted_mid_stream_loses_nothing_at_qos2() {
    remote_restart_mid_stream(QoS::ExactlyOnce).await;
}

/// Mosquitto restarted while it feeds the bridge: what Mosquitto acknowledged to its publisher before the
/// restart and after it all reaches the local subscriber. Restored from its persistence file, Mosquitto sends
/// messages that were on their way to the bridge again (DUP set), also at QoS 2; the bridge hands each on
/// and counts it as a possible duplicate. Every copy that arrived twice is one of those.
async fn remote_restart_inbound(qos: QoS) {
    let mut remote = Mosquitto::start("");
    let (broker, bridges) = node_with(cloud(remote.addr, &[], &["commands/#"])).await;
    until_connected(&bridges).await;
    let counter = Counter::start(broker.mqtt_addr(), "local-sub", "commands/#", qos).await;
    const N: u32 = 2000;
    publish_numbered(remote.addr, "remote-pub", "commands/a", 0..N / 2, qos).await;
    let mut remote = tokio::task::spawn_blocking(move || {
        remote.restart();
        remote
    })
    .await
    .unwrap();
    until_connected(&bridges).await;
    publish_numbered(remote.addr, "remote-pub-2", "commands/a", N / 2..N, qos).await;
    let state = || format!("bridge: {:?}", bridges.get("cloud"));
    counter.until_distinct_or(N as usize, state).await;
    // The barrier: a last message after the others, on the same path.
    publish_numbered(remote.addr, "remote-pub-3", "commands/a", N..N + 1, qos).await;
    counter.until_distinct(N as usize + 1).await;
    let (missing, _, extra) = counter.tally(N + 1);
    assert_eq!(missing, 0, "every message the remote acknowledged reached the node");
    let stats = bridges.get("cloud").unwrap().stats;
    assert!(extra as u64 <= stats.duplicates, "{extra} copies came twice; {stats:?}");
    remote.kill();
}

/// Mosquitto killed (SIGKILL, nothing saved) while it feeds the bridge at QoS 2 comes back without the bridge's
/// session: the QoS 2 exchanges it had begun will never finish from its side. The bridge finishes them with
/// the node and goes on: everything published after the crash arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_forgot_the_bridges_session_does_not_stall_it() {
    let mut remote = Mosquitto::start("");
    let (broker, bridges) = node_with(cloud(remote.addr, &[], &["commands/#"])).await;
    until_connected(&bridges).await;
    let counter = Counter::start(broker.mqtt_addr(), "local-sub", "commands/#", QoS::ExactlyOnce).await;
    publish_numbered(remote.addr, "remote-pub", "commands/a", 0..1000, QoS::ExactlyOnce).await;
    let mut remote = tokio::task::spawn_blocking(move || {
        remote.crash_and_restart();
        remote
    })
    .await
    .unwrap();
    until_connected(&bridges).await;
    publish_numbered(remote.addr, "remote-pub-2", "commands/a", 1000..2000, QoS::ExactlyOnce).await;
    let seen_after = || {
        (1000..2000)
            .filter(|n| counter.seen.lock().unwrap().contains_key(n))
            .count()
    };
    let deadline = tokio::time::Instant::now() + DEADLINE * 3;
    while seen_after() < 1000 {
        let state = bridges.get("cloud");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of 1000 after the crash; {state:?}",
            seen_after()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = counter.seen.lock().unwrap();
    assert!(
        (1000..2000).all(|n| seen[&n] == 1),
        "each published after the crash exactly once"
    );
    drop(seen);
    remote.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_restarted_while_feeding_the_node_loses_nothing_at_qos1() {
    remote_restart_inbound(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_restarted_while_feeding_the_node_loses_nothing_at_qos2() {
    remote_restart_inbound(QoS::ExactlyOnce).await;
}

/// `chaos kill bridge` under load: the supervisor restarts the actor, the local session gives it every message
/// not yet acknowledged, and nothing is lost. A copy the remote took just before the kill may be sent again:
/// that is allowed, and each such copy was counted as a possible duplicate.
async fn killed_under_load(qos: QoS) {
    let remote = Mosquitto::start("");
    let (broker, bridges) = node_with(cloud(remote.addr, &["sensors/#"], &[])).await;
    until_connected(&bridges).await;
    let counter = Counter::start(remote.addr, "remote-sub", "sensors/#", qos).await;
    const N: u32 = 4000;
    let publishing = tokio::spawn(publish_numbered(
        broker.mqtt_addr(),
        "local-pub",
        "sensors/a",
        0..N,
        qos,
    ));
    let state = || {
        let session = broker.view().client("$bridge/cloud");
        format!("bridge: {:?}; its session: {session:?}", bridges.get("cloud"))
    };
    for kill in 1..=3 {
        counter.until_distinct_or(N as usize * kill / 4, state).await;
        assert!(bridges.kill("cloud"), "the bridge's actor was running");
    }
    counter.until_distinct_or(N as usize, state).await;
    publishing.await.unwrap();
    let (missing, _, extra) = counter.tally(N);
    assert_eq!(missing, 0, "nothing acknowledged to the publisher was lost");
    let stats = bridges.get("cloud").unwrap().stats;
    assert_eq!(stats.restarts, 3, "{stats:?}");
    assert!(
        extra as u64 <= stats.duplicates,
        "every copy that arrived twice was one the node sent again and counted ({extra} extra, {stats:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_bridge_under_load_loses_nothing_at_qos1() {
    killed_under_load(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_bridge_under_load_loses_nothing_at_qos2() {
    killed_under_load(QoS::ExactlyOnce).await;
}

/// Topics received by `client` until every one of `markers` has come (those included).
async fn topics_until(client: &mut Client, markers: &[&str], into: &mut Vec<String>) {
    while !markers.iter().all(|m| into.iter().any(|t| t == m)) {
        into.push(client.expect_publish().await.topic);
    }
}

/// The same topics bridged in both directions: a message goes across once and does not come back.
async fn no_loop(protocol: &str) {
    let remote = Mosquitto::start("");
    let mut config = cloud(remote.addr, &["loop/#"], &["loop/#"]);
    config.protocol = protocol.into();
    let (broker, bridges) = node_with(config).await;
    until_connected(&bridges).await;
    let mut near = Client::connect(broker.mqtt_addr(), "local-sub").await;
    near.subscribe("loop/#", QoS::AtLeastOnce).await;
    let mut far = Client::connect(remote.addr, "remote-sub").await;
    far.subscribe("loop/#", QoS::AtLeastOnce).await;
    let (mut seen_near, mut seen_far) = (Vec::new(), Vec::new());

    near.publish("loop/from-local", QoS::AtLeastOnce, false, "a").await;
    near.publish("loop/marker-local", QoS::AtLeastOnce, false, "m").await;
    far.publish("loop/from-remote", QoS::AtLeastOnce, false, "b").await;
    far.publish("loop/marker-remote", QoS::AtLeastOnce, false, "m").await;
    // Each message has reached the other side, which routed it at once: had it looped, its copy on the way
    // back would be ahead of a second marker sent back along the same path.
    topics_until(&mut far, &["loop/marker-local"], &mut seen_far).await;
    topics_until(&mut near, &["loop/marker-remote"], &mut seen_near).await;
    far.publish("loop/marker2-remote", QoS::AtLeastOnce, false, "m").await;
    near.publish("loop/marker2-local", QoS::AtLeastOnce, false, "m").await;
    let last = ["loop/marker2-remote", "loop/marker2-local"];
    topics_until(&mut near, &last, &mut seen_near).await;
    topics_until(&mut far, &last, &mut seen_far).await;

    let mut every: Vec<String> = [
        "from-local",
        "marker-local",
        "marker2-local",
        "from-remote",
        "marker-remote",
        "marker2-remote",
    ]
    .iter()
    .map(|t| format!("loop/{t}"))
    .collect();
    every.sort();
    seen_near.sort();
    seen_far.sort();
    assert_eq!(
        seen_near, every,
        "MQTT {protocol}: each message exactly once at the node"
    );
    assert_eq!(
        seen_far, every,
        "MQTT {protocol}: each message exactly once at the remote"
    );
    let stats = bridges.get("cloud").unwrap().stats;
    assert_eq!((stats.sent, stats.received), (3, 3), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridging_the_same_topics_both_ways_does_not_loop_over_mqtt5() {
    no_loop("5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridging_the_same_topics_both_ways_does_not_loop_over_mqtt311() {
    no_loop("3.1.1").await;
}

/// Mosquitto refusing to take `secret/#` from anyone (PUBACK 0x87 to MQTT 5 clients).
fn refusing_remote() -> Mosquitto {
    Mosquitto::with_acl("topic readwrite sensors/#\n")
}

/// A message the remote refuses goes to the dead-letter topic, and leaves the bridge's buffer; its publisher
/// was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_remote_refuses_is_dead_lettered() {
    let remote = refusing_remote();
    let (broker, bridges) = node_with(cloud(remote.addr, &["sensors/#", "secret/#"], &[])).await;
    until_connected(&bridges).await;
    let mut dead = Client::connect(broker.mqtt_addr(), "dlq-reader").await;
    dead.subscribe("$dlq/cloud/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "local-pub").await;
    publisher.publish("secret/plans", QoS::AtLeastOnce, false, "x").await;
    let letter = dead.expect_publish().await;
    assert_eq!(letter.topic, "$dlq/cloud/secret/plans");
    assert_eq!(&letter.payload[..], b"x");
    publisher
        .expect("PUBACK", |p| matches!(p, Packet::PubAck(_)).then_some(()))
        .await;
    eventually("the refused message left the buffer", || {
        let b = bridges.get("cloud").unwrap();
        b.stats.dead_lettered == 1 && b.stats.failed == 1 && b.queued == 0
    })
    .await;
}

/// The reason travels as a user property, which MQTT 5 subscribers see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_carries_the_reason_as_a_user_property() {
    let remote = refusing_remote();
    let (broker, bridges) = node_with(cloud(remote.addr, &["secret/#"], &[])).await;
    until_connected(&bridges).await;
    let mut reader = ractmq::Broker::subscribe(&broker, "$dlq/cloud/#", 16).await.unwrap();
    let publisher = Client::connect(broker.mqtt_addr(), "local-pub").await;
    publisher.publish("secret/plans", QoS::AtLeastOnce, false, "x").await;
    let letter = tokio::time::timeout(DEADLINE, reader.recv()).await.unwrap().unwrap();
    let reason = letter.properties.user_properties.iter().find(|(k, _)| k == "reason");
    assert_eq!(
        reason.map(|(_, v)| v.as_str()),
        Some("remote refused: not authorized (0x87)")
    );
}

/// Messages the node acknowledged while the remote was down survive a kill -9 of the node: the bridge
/// delivers them once the node and the remote are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_bridge_buffered_survives_a_kill_of_the_node() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ractmq.toml");
    std::fs::write(
        &config,
        format!("[[bridges.mqtt]]\nname = \"cloud\"\nserver = \"127.0.0.1:{port}\"\nforward = [\"sensors/#\"]\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["-c", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()];
    let node = Process::start(&args);
    const N: u32 = 300;
    // The remote is down: the node acknowledges each message once it is in the bridge's buffer on disk.
    publish_numbered(node.mqtt, "local-pub", "sensors/a", 0..N, QoS::AtLeastOnce).await;
    node.signal(libc::SIGKILL);
    drop(node);
    let remote = Mosquitto::start_on(port, "");
    let counter = Counter::start(remote.addr, "remote-sub", "sensors/#", QoS::AtLeastOnce).await;
    let _node = Process::start(&args);
    counter.until_distinct(N as usize).await;
    assert_eq!(counter.tally(N), (0, 0, 0), "each buffered message exactly once");
}

/// TLS to the remote, with a user name and password: a wrong password is the bridge's last error and it
/// keeps trying; the right one carries messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_password() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let ca_file = write("ca.pem", ca.pem());
    let (cert_file, key_file) = (
        write("server.pem", cert.pem()),
        write("server.key", key.serialize_pem()),
    );
    let passwd = dir.path().join("passwd");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b", passwd.to_str().unwrap(), "edge", "s3cret"])
        .status()
        .expect("mosquitto_passwd runs");
    assert!(made.success());
    // A plain listener (the helper's, for the test's subscriber) and a TLS one for the bridge; both ask for a
    // password.
    let tls_port = free_port();
    let remote = Mosquitto::start(&format!(
        "allow_anonymous false\npassword_file {}\nlistener {tls_port} 127.0.0.1\ncafile {ca_file}\ncertfile {cert_file}\nkeyfile {key_file}",
        passwd.display()
    ));
    let tls_addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    let mut config = cloud(tls_addr, &["sensors/#"], &[]);
    config.tls = Some(ractmq::parts::bridge::config::TlsConfig {
        ca_file: ca_file.clone(),
        server_name: Some("localhost".into()),
        ..Default::default()
    });
    config.username = Some("edge".into());
    config.password = Some("wrong".into());
    let (broker, bridges) = node_with(config.clone()).await;
    eventually("the refusal is the bridge's last error", || {
        let b = bridges.get("cloud").unwrap();
        !b.stats.connected && b.stats.last_error.is_some_and(|e| e.contains("connection refused"))
    })
    .await;
    bridges.delete("cloud").await.unwrap();
    config.password = Some("s3cret".into());
    bridges
        .create(ractmq::parts::bridge::BridgeConfig::Mqtt(config))
        .await
        .unwrap();
    until_connected(&bridges).await;
    let counter = Counter::start_as_edge(remote.addr).await;
    publish_numbered(broker.mqtt_addr(), "local-pub", "sensors/a", 0..100, QoS::AtLeastOnce).await;
    counter.until_distinct(100).await;
    assert_eq!(counter.tally(100), (0, 0, 0));
}
