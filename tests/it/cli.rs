//! The `ractmq` binary as an operator meets it: one clear line when it cannot start.

use std::process::Command;

#[test]
fn a_busy_port_is_reported_in_one_line_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let line = one_line_failure(&["start", "--listen", &addr.to_string()]);
    assert!(
        line.starts_with(&format!("ractmq: cannot listen for MQTT on {addr}")),
        "{line}"
    );
    assert!(line.contains("--listen"), "says how to fix it: {line}");
}

#[test]
fn a_busy_websocket_port_is_reported_in_one_line_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // The TCP listener starts first and says so at info level: only warnings and errors are looked at here.
    let line = one_line_failure(&[
        "start",
        "--log-level",
        "warn",
        "--listen",
        "127.0.0.1:0",
        "--no-api",
        "--ws-listen",
        &addr.to_string(),
    ]);
    assert!(
        line.starts_with(&format!("ractmq: cannot listen for MQTT over WS on {addr}")),
        "{line}"
    );
    assert!(line.contains("--ws-listen"), "says how to fix it: {line}");
}

/// Run `ractmq` with `args`; it must fail with exactly one line on stderr, which is returned.
fn one_line_failure(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq")).args(args).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    lines[0].to_string()
}

#[test]
fn a_bad_flag_value_names_the_flag_and_the_choices() {
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["start", "--queue-overflow", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--queue-overflow"), "{stderr}");
    assert!(stderr.contains("drop-oldest, drop-newest or disconnect"), "{stderr}");
}

#[test]
fn a_busy_cluster_port_is_reported_in_one_line_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cluster = addr.to_string();
    let line = one_line_failure(&[
        "start",
        "--listen",
        "127.0.0.1:0",
        "--node-name",
        "n1",
        "--cookie",
        "secret",
        "--cluster-listen",
        &cluster,
    ]);
    assert!(
        line.starts_with(&format!("ractmq: cannot listen for cluster nodes on {addr}")),
        "{line}"
    );
    assert!(line.contains("--cluster-listen"), "says how to fix it: {line}");
}

#[test]
fn cluster_flags_name_what_is_missing_or_wrong() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
            .arg("start")
            .args(args)
            .env_remove("RACTMQ_COOKIE")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8(out.stderr).unwrap()
    };
    let e = run(&["--node-name", "n1", "--cookie", "s"]);
    assert!(e.contains("--cluster-listen"), "{e}");
    let e = run(&["--node-name", "n1", "--cluster-listen", "127.0.0.1:4370"]);
    assert!(e.contains("--cookie"), "{e}");
    let e = run(&["--seed", "127.0.0.1:4371"]);
    assert!(e.contains("--seed") && e.contains("NAME@IP:PORT"), "{e}");
    let e = run(&["--node-name", "n1", "--cookie", "s", "--cluster-listen", "0.0.0.0:4370"]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("ractmq: --cluster-listen 0.0.0.0:4370"), "{e}");
}
