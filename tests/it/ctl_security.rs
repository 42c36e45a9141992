//! The security commands of `ractmq ctl` against a real node: users added at run time authenticate at once
//! and, with `--user-db`, still do after the node is killed with SIGKILL and started again; bans refuse and
//! are lifted; `acl reload` applies an edited ACL file; SIGHUP does the same.

use crate::common;

use std::net::SocketAddr;

use common::process::{ctl, Process};
use common::{connect_packet, Raw};
use ractmq::Protocol;

fn ok(node: &Process, args: &[&str]) -> String {
    let (code, out, err) = ctl(node.api, args);
    assert_eq!(code, 0, "ractmq ctl {args:?} failed: {err}");
    out
}

/// The 3.1.1 CONNACK return code for `client_id` logging in as `user` (anonymous with `None`).
async fn login(addr: SocketAddr, client_id: &str, user: Option<(&str, &str)>) -> u8 {
    let packet = connect_packet(Protocol::V3_1_1, |c| {
        c.client_id = client_id.into();
        if let Some((name, password)) = user {
            c.username = Some(name.into());
            c.password = Some(password.to_string().into_bytes().into());
        }
    });
    let mut raw = Raw::connect(addr).await;
    raw.send(&packet).await;
    let frame = raw.read_frame().await;
    assert_eq!(frame[0], 0x20, "a CONNACK");
    frame[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_added_with_ctl_authenticate_and_survive_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.json");
    let args = ["--user-db", db.to_str().unwrap(), "--allow-anonymous", "false"];
    let node = Process::start(&args);
    assert_eq!(login(node.mqtt, "c", None).await, 5, "anonymous refused");
    assert_eq!(
        ok(&node, &["users", "add", "carol", "c-pass"]).trim(),
        "added user carol"
    );
    assert_eq!(login(node.mqtt, "c", Some(("carol", "c-pass"))).await, 0);
    assert_eq!(login(node.mqtt, "c", Some(("carol", "wrong"))).await, 4);
    let (code, _, err) = ctl(node.api, &["users", "add", "carol", "again"]);
    assert_eq!(code, 1);
    assert!(err.contains("409") && err.contains("already exists"), "{err}");
    ok(&node, &["users", "passwd", "carol", "n3w"]);
    assert_eq!(
        login(node.mqtt, "c", Some(("carol", "c-pass"))).await,
        4,
        "the old password"
    );
    assert_eq!(login(node.mqtt, "c", Some(("carol", "n3w"))).await, 0, "the new one");
    let list = ok(&node, &["users", "list"]);
    assert!(list.starts_with("NAME") && list.contains("carol"), "{list}");
    assert!(
        !std::fs::read_to_string(&db).unwrap().contains("n3w"),
        "no password in clear on disk"
    );

    // "added" was a promise: the user is on disk before the answer, so SIGKILL loses nothing.
    node.signal(libc::SIGKILL);
    drop(node);
    let node = Process::start(&args);
    assert_eq!(
        login(node.mqtt, "c", Some(("carol", "n3w"))).await,
        0,
        "carol survived the kill"
    );
    ok(&node, &["users", "delete", "carol"]);
    assert_eq!(login(node.mqtt, "c", Some(("carol", "n3w"))).await, 4, "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_and_acl_reloads_from_ctl_and_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite t/#\n").unwrap();
    let node = Process::start(&["--acl-file", acl.to_str().unwrap()]);

    assert_eq!(
        ok(&node, &["banned", "add", "clientid", "evil"]).trim(),
        "banned clientid evil"
    );
    assert_eq!(login(node.mqtt, "evil", None).await, 5, "3.1.1: not authorized");
    assert_eq!(login(node.mqtt, "good", None).await, 0);
    let list = ok(&node, &["banned", "list"]);
    assert!(list.contains("clientid") && list.contains("evil"), "{list}");
    ok(&node, &["banned", "delete", "clientid", "evil"]);
    assert_eq!(login(node.mqtt, "evil", None).await, 0, "lifted");
    let (code, _, err) = ctl(node.api, &["banned", "add", "peerhost", "not-an-address"]);
    assert_eq!(code, 1);
    assert!(err.contains("not an IP address"), "{err}");

    let said = ok(&node, &["acl", "reload"]);
    assert!(said.contains("1 rules"), "{said}");
    std::fs::write(&acl, "topic readwrite t/#\ntopic read u/#\n").unwrap();
    assert!(ok(&node, &["acl", "reload"]).contains("2 rules"));
    std::fs::write(&acl, "topic everything t/#\n").unwrap();
    let (code, _, err) = ctl(node.api, &["acl", "reload"]);
    assert_eq!(code, 1);
    assert!(err.contains(":1:") && err.contains("unchanged"), "{err}");
    std::fs::write(&acl, "topic readwrite t/#\ntopic read u/#\ntopic read v/#\n").unwrap();
    node.signal(libc::SIGHUP);
    common::eventually("SIGHUP reloaded the ACL", || node.logged("SIGHUP: reloaded")).await;
    assert!(node.logged("3 rules"));
}
