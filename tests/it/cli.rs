//! The `ractmq` binary as an operator meets it: one clear line when it cannot start, and logs that are plain
//! text when they go to a file or a pipe (`2>node.log`, journald), coloured only on a terminal.

use crate::common;

use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::process::Process;

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

#[test]
fn a_data_dir_in_use_is_reported_in_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let _first = Process::start(&["--data-dir", path]);
    let line = one_line_failure(&["start", "--listen", "127.0.0.1:0", "--no-api", "--data-dir", path]);
    assert!(line.contains(&format!("data dir {path} is in use")), "{line}");
    assert!(line.contains("--data-dir"), "says how to fix it: {line}");
}

#[test]
fn a_damaged_store_is_reported_in_one_line_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ractmq.redb"), vec![0x5a; 64 * 1024]).unwrap();
    let path = dir.path().to_str().unwrap();
    let line = one_line_failure(&["start", "--listen", "127.0.0.1:0", "--no-api", "--data-dir", path]);
    assert!(line.contains("ractmq.redb is damaged"), "{line}");
    assert!(
        line.contains("backup") && line.contains("move it away"),
        "says how to fix it: {line}"
    );
}

/// Run `ractmq` with `args`; it must fail with exactly one line on stderr, which is returned. A node started
/// without a data dir of the test's own gets a temporary one.
fn one_line_failure(args: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = args.to_vec();
    if args.first() == Some(&"start") && !args.contains(&"--data-dir") {
        args.extend(["--data-dir", data.path().to_str().unwrap()]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq")).args(&args).output().unwrap();
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
    assert!(e.contains("--seed") && e.contains("NAME@HOST:PORT"), "{e}");
    let e = run(&[
        "--node-name",
        "n1",
        "--cookie",
        "s",
        "--cluster-listen",
        "127.0.0.1:4370",
        "--discovery",
        "dns",
    ]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("--discovery dns needs --discovery-name"), "{e}");
    let e = run(&["--node-name", "n1", "--cookie", "s", "--cluster-listen", "0.0.0.0:4370"]);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("ractmq: --cluster-listen 0.0.0.0:4370"), "{e}");
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    // Process pipes stderr and leaves NO_COLOR unset: the node must not colour on its own.
    let node = Process::start(&[]);
    let log = node.log.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("INFO")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("\x1b[")), "{log:#?}");
}

#[test]
fn logs_to_a_terminal_are_coloured_unless_no_color_is_set() {
    let coloured = log_on_a_terminal(None);
    assert!(coloured.contains("\x1b["), "{coloured:?}");
    let plain = log_on_a_terminal(Some("1"));
    assert!(plain.contains("INFO") && !plain.contains("\x1b["), "{plain:?}");
}

/// What a node writes to stderr when it is a terminal (a pseudo-terminal here), up to the line saying it runs;
/// `no_color` is NO_COLOR's value, if set.
fn log_on_a_terminal(no_color: Option<&str>) -> String {
    let (mut leader, mut follower) = (-1, -1);
    let opened = unsafe {
        libc::openpty(
            &mut leader,
            &mut follower,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    let (leader, follower) = unsafe { (std::fs::File::from_raw_fd(leader), OwnedFd::from_raw_fd(follower)) };
    let mut command = Command::new(env!("CARGO_BIN_EXE_ractmq"));
    command
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            "--sys-interval",
            "0",
        ])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(follower));
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let mut child = command.spawn().expect("ractmq starts");
    // The child has the terminal now; without this copy, reading ends when the child does.
    drop(command);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(leader).lines() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("node running") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(common::DEADLINE * 3);
    let _ = child.kill();
    let _ = child.wait();
    let seen = seen.expect("the node logs that it runs");
    assert!(seen.contains("node running"), "{seen:?}");
    seen
}
