//! The `ractmq` binary as an operator meets it: one clear line when it cannot start.

use std::process::Command;

#[test]
fn a_busy_port_is_reported_in_one_line_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["start", "--listen", &addr.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(
        lines[0].starts_with(&format!("ractmq: cannot listen for MQTT on {addr}")),
        "{stderr}"
    );
    assert!(lines[0].contains("--listen"), "says how to fix it: {stderr}");
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
