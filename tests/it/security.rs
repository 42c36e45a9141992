//! Authentication, authorization and bans over real sockets: an ACL file in Mosquitto's format decides what a
//! client may publish and subscribe to (and a reload applies to clients already connected), a Mosquitto
//! password file authenticates, bans and flapping refuse with the right codes, and a session belongs to the
//! user that created it.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use ractmq::parts::auth::authn::AuthnSource;
use ractmq::parts::auth::flapping::FlappingConfig;
use ractmq::parts::auth::password_file::ReloadablePasswordFile;
use ractmq::parts::broker::Metrics;
use ractmq::{BrokerConfig, Protocol};
use rumqttc::QoS;

/// A file in a fresh temporary folder, kept for the test's life.
struct TempFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn temp_file(name: &str, text: &str) -> TempFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    TempFile { _dir: dir, path }
}

/// Users alice and bob (passwords `a-pass`, `b-pass`), anonymous clients refused, and `acl` if given.
fn secured(acl: Option<&Path>) -> BrokerConfig {
    let mut config = test_config();
    config.users.insert("alice".into(), "a-pass".into());
    config.users.insert("bob".into(), "b-pass".into());
    config.security.acl_file = acl.map(Path::to_path_buf);
    config
}

fn as_user(addr: std::net::SocketAddr, id: &str, user: &str, password: &str) -> rumqttc::MqttOptions {
    let mut o = options(addr, id);
    o.set_credentials(user, password);
    o
}

/// The CONNACK code (3.1.1 return code or 5.0 reason code) a raw CONNECT gets.
async fn connack_code(addr: std::net::SocketAddr, connect: &[u8]) -> u8 {
    let mut raw = Raw::connect(addr).await;
    raw.send(connect).await;
    let frame = raw.read_frame().await;
    assert_eq!(frame[0], 0x20, "a CONNACK");
    frame[3]
}

const ACL: &str = "\
# alice: her own tree, and read-only access to public/# and devices/#
user alice
topic readwrite alice/#
topic read public/#
topic read devices/#

# everyone: publish to its own device topic only
pattern write devices/%c/up
";

#[tokio::test]
async fn an_acl_file_in_mosquitto_format_decides_publish_and_subscribe() {
    let acl = temp_file("acl", ACL);
    let broker = start_with(secured(Some(&acl.path))).await;
    let addr = broker.mqtt_addr();
    let mut alice = Client::connect_with(as_user(addr, "dev1", "alice", "a-pass")).await;

    // SUBSCRIBE: granted where a rule allows reading, failure (3.1.1: 0x80) elsewhere.
    let granted = alice.subscribe("alice/#", QoS::AtLeastOnce).await;
    assert_eq!(
        granted.return_codes,
        [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let refused = alice.subscribe("secret/#", QoS::AtLeastOnce).await;
    assert_eq!(refused.return_codes, [rumqttc::SubscribeReasonCode::Failure]);
    alice.subscribe("public/#", QoS::AtLeastOnce).await;
    alice.subscribe("devices/#", QoS::AtLeastOnce).await;

    // PUBLISH: read-only public/# and another device's topic are dropped (and acknowledged, 3.1.1); the
    // allowed ones arrive, each once, in order.
    for topic in ["public/x", "devices/dev2/up", "alice/a", "devices/dev1/up", "alice/end"] {
        alice.publish(topic, QoS::AtLeastOnce, false, topic).await;
    }
    let got: Vec<String> = alice
        .publishes_until("alice/end")
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect();
    assert_eq!(got, ["alice/a", "devices/dev1/up"]);
    assert_eq!(
        Metrics::get(&broker.metrics().authz_denied),
        3,
        "one filter and two publishes refused"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_5_0_client_reads_the_refusals_in_suback_and_puback() {
    let acl = temp_file("acl", ACL);
    let broker = start_with(secured(Some(&acl.path))).await;
    let addr = broker.mqtt_addr();
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_packet(Protocol::V5, |c| {
        c.client_id = "dev1".into();
        c.username = Some("alice".into());
        c.password = Some("a-pass".into());
    }))
    .await;
    assert_eq!(raw.read_frame().await[3], 0, "accepted");
    let subscribe = subscribe_packet(&["alice/#", "secret/#"]);
    raw.send_packet(subscribe, Protocol::V5).await;
    let suback = raw.read_frame().await;
    assert_eq!(suback[0], 0x90);
    assert_eq!(
        &suback[suback.len() - 2..],
        [0x01, 0x87],
        "granted QoS 1, then Not authorized"
    );
    let publish = ractmq::parts::codec::Packet::Publish(ractmq::parts::codec::Publish {
        qos: ractmq::QoS::AtLeastOnce,
        pkid: 7,
        topic: "public/x".into(),
        payload: bytes::Bytes::from_static(b"x"),
        ..Default::default()
    });
    raw.send_packet(publish, Protocol::V5).await;
    let puback = raw.read_frame().await;
    assert_eq!((puback[0], puback[2], puback[3], puback[4]), (0x40, 0, 7, 0x87));
    broker.shutdown().await;
}

#[tokio::test]
async fn an_acl_reload_applies_to_connected_clients_without_dropping_them() {
    let acl = temp_file("acl", "user alice\ntopic readwrite t/#\n");
    let broker = start_with(secured(Some(&acl.path))).await;
    let addr = broker.mqtt_addr();
    let mut alice = Client::connect_with(as_user(addr, "a", "alice", "a-pass")).await;
    alice.subscribe("t/#", QoS::AtLeastOnce).await;
    alice.publish("t/1", QoS::AtLeastOnce, false, "before").await;
    assert_eq!(alice.expect_publish().await.topic, "t/1");

    std::fs::write(&acl.path, "user alice\ntopic read t/#\ntopic readwrite t/end\n").unwrap();
    let said = broker.view().reload_security().expect("the new file is valid");
    assert!(said.contains("3 rules") || said.contains("rules"), "{said}");
    alice.publish("t/2", QoS::AtLeastOnce, false, "after").await;
    alice.publish("t/end", QoS::AtLeastOnce, false, "").await;
    let got: Vec<String> = alice
        .publishes_until("t/end")
        .await
        .into_iter()
        .map(|p| p.topic)
        .collect();
    assert!(got.is_empty(), "t/2 is no longer writable: {got:?}");
    assert_eq!(Metrics::get(&broker.metrics().clients_connected), 1, "still connected");

    // A file with an error keeps the rules in force.
    std::fs::write(&acl.path, "user alice\ntopic sometimes t/#\n").unwrap();
    let error = broker.view().reload_security().unwrap_err();
    assert!(error.contains(":2:"), "names the line: {error}");
    alice.publish("t/end", QoS::AtLeastOnce, false, "").await;
    assert_eq!(alice.expect_publish().await.topic, "t/end");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_mosquitto_password_file_authenticates_and_anonymous_clients_are_refused() {
    // Written by the real mosquitto_passwd (crates/ractmq-auth/testdata/README.md): alice's password is
    // "correct horse", stored as $7$ (PBKDF2-SHA512).
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/ractmq-auth/testdata/mosquitto.passwd"
    );
    let mut config = test_config();
    let source = ReloadablePasswordFile::open(file).unwrap();
    config
        .security
        .sources
        .push(AuthnSource::PasswordFile(std::sync::Arc::new(source)));
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let login = |user: &str, password: &str| {
        let (user, password) = (user.to_string(), password.to_string());
        connect_packet(Protocol::V3_1_1, move |c| {
            c.username = Some(user);
            c.password = Some(password.into_bytes().into());
        })
    };
    assert_eq!(
        connack_code(addr, &login("alice", "correct horse")).await,
        0,
        "accepted"
    );
    assert_eq!(
        connack_code(addr, &login("alice", "wrong")).await,
        4,
        "bad user name or password"
    );
    assert_eq!(connack_code(addr, &login("mallory", "x")).await, 4, "unknown user");
    let anonymous = connect_packet(Protocol::V3_1_1, |_| {});
    assert_eq!(
        connack_code(addr, &anonymous).await,
        5,
        "anonymous: not authorized, a source being configured"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_banned_client_is_kicked_and_refused_until_the_ban_is_lifted() {
    let broker = start_broker().await;
    let addr = broker.mqtt_addr();
    let mut victim = Client::connect(addr, "victim").await;
    let ban = broker.view().ban("clientid", "victim", None, "testing").await.unwrap();
    assert_eq!(ban.reason, "testing");
    victim.expect_disconnect().await;
    assert_eq!(
        connack_code(addr, &connect_v311("victim")).await,
        5,
        "3.1.1: not authorized"
    );
    assert_eq!(connack_code(addr, &connect_v5("victim")).await, 0x8A, "5.0: Banned");
    assert_eq!(
        connack_code(addr, &connect_v311("bystander")).await,
        0,
        "others connect"
    );
    assert_eq!(broker.view().bans().len(), 1);

    broker
        .view()
        .ban("peerhost", "127.0.0.0/8", Some(Duration::from_secs(60)), "")
        .await
        .unwrap();
    assert_eq!(
        connack_code(addr, &connect_v5("anyone")).await,
        0x8A,
        "an address range ban"
    );
    assert!(broker.view().unban("peerhost", "127.0.0.0/8").await.unwrap());
    assert!(broker.view().unban("clientid", "victim").await.unwrap());
    assert_eq!(connack_code(addr, &connect_v311("victim")).await, 0, "lifted");
    assert!(
        broker.view().ban("nickname", "x", None, "").await.is_err(),
        "an unknown kind is refused"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_id_that_connects_too_often_is_banned_for_a_while() {
    let mut config = test_config();
    config.security.flapping = Some(FlappingConfig {
        max_count: 3,
        window: Duration::from_secs(60),
        ban_time: Duration::from_secs(60),
        ..FlappingConfig::default()
    });
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let codes: Vec<u8> = {
        let mut codes = Vec::new();
        for _ in 0..4 {
            codes.push(connack_code(addr, &connect_v5("flapper")).await);
        }
        codes
    };
    assert_eq!(
        codes,
        [0, 0, 0x8A, 0x8A],
        "the third connect within the window bans the client id"
    );
    assert_eq!(Metrics::get(&broker.metrics().banned_flapping), 1);
    assert_eq!(
        connack_code(addr, &connect_v5("steady")).await,
        0,
        "other clients are not affected"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_session_belongs_to_the_user_that_created_it() {
    let broker = start_with(secured(None)).await;
    let addr = broker.mqtt_addr();
    broker.view().add_user("root", "r-pass", true).await.unwrap();
    let persistent = |user: &str, password: &str| {
        let mut o = as_user(addr, "shared-id", user, password);
        o.set_clean_session(false);
        o
    };
    let mut alice = Client::connect_with(persistent("alice", "a-pass")).await;
    alice.subscribe("alice/inbox", QoS::AtLeastOnce).await;

    // bob presents alice's client id: refused (3.1.1: 5 Not authorized), and alice is not kicked.
    let bob = connect_packet(Protocol::V3_1_1, |c| {
        c.client_id = "shared-id".into();
        c.clean_start = false;
        c.username = Some("bob".into());
        c.password = Some("b-pass".into());
    });
    assert_eq!(connack_code(addr, &bob).await, 5, "bob may not take alice's session");
    alice
        .publish("alice/inbox", QoS::AtLeastOnce, false, "still mine")
        .await;
    assert_eq!(alice.expect_publish().await.payload.as_ref(), b"still mine");

    // A superuser may take it over, and finds it (session present).
    let mut root = Client::start(persistent("root", "r-pass"));
    assert!(root.expect_connack().await.session_present);
    alice.expect_disconnect().await;
    broker.shutdown().await;
}

/// Failed logins are throttled and, past the limit, ban the client id: after 3 wrong passwords even the right
/// one is refused with Banned, while another client id of the same user still gets in.
#[tokio::test]
async fn repeated_failed_logins_ban_the_client_id() {
    let mut config = secured(None);
    config.security.login_throttle = ractmq::parts::auth::login_throttle::ThrottleConfig {
        free_failures: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_failures_per_client: Some(3),
        max_failures_per_peer: None,
        ..Default::default()
    };
    let broker = start_with(config).await;
    let addr = broker.mqtt_addr();
    let login = |id: &str, password: &str| {
        let (id, password) = (id.to_string(), password.to_string());
        connect_packet(Protocol::V5, move |c| {
            c.client_id = id;
            c.username = Some("alice".into());
            c.password = Some(password.into_bytes().into());
        })
    };
    for _ in 0..3 {
        assert_eq!(connack_code(addr, &login("guess", "wrong")).await, 0x86);
    }
    assert_eq!(
        connack_code(addr, &login("guess", "a-pass")).await,
        0x8A,
        "banned after 3 failures"
    );
    assert_eq!(
        connack_code(addr, &login("other", "a-pass")).await,
        0,
        "the ban is of the client id"
    );
    assert_eq!(Metrics::get(&broker.metrics().authn_failed), 3);
    broker.shutdown().await;
}

/// A `--user` entry may carry a hash instead of a password (here one written by the real mosquitto_passwd,
/// for "correct horse"), so that no password sits in the configuration.
#[tokio::test]
async fn a_configured_user_may_be_given_as_a_hash() {
    let passwd = include_str!("../../crates/ractmq-auth/testdata/mosquitto.passwd");
    let alice = passwd.lines().find_map(|l| l.strip_prefix("alice:")).unwrap();
    let mut config = test_config();
    config.users.insert("alice".into(), alice.into());
    let broker = start_with(config).await;
    let login = |password: &str| {
        let password = password.to_string();
        connect_packet(Protocol::V3_1_1, move |c| {
            c.username = Some("alice".into());
            c.password = Some(password.into_bytes().into());
        })
    };
    let addr = broker.mqtt_addr();
    assert_eq!(connack_code(addr, &login("correct horse")).await, 0);
    assert_eq!(
        connack_code(addr, &login(alice)).await,
        4,
        "the hash is not the password"
    );
    broker.shutdown().await;
}
