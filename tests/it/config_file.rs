//! The configuration file as an operator uses it, with the real `ractmq` binary: `config check`,
//! `config defaults` and the reference in docs/configuration.md (the code's, naming only real flags), one
//! clear line for each kind of mistake, and the order of precedence when a node starts (file, then
//! environment, then flags), observed through what the node does.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::process::Process;
use serde_json::json;

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ractmq-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `ractmq config ARGS`: (exit code, stdout, stderr).
fn config(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .arg("config")
        .args(args)
        .env_remove("RACTMQ_COOKIE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one-line error `config check` gives for a file with `text`.
fn refused(name: &str, text: &str) -> String {
    let path = write(name, text);
    let (code, out, err) = config(&["check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{name} must be refused");
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().replace(&path.display().to_string(), "FILE")
}

#[test]
fn the_defaults_are_a_complete_file_that_checks() {
    let (code, defaults, _) = config(&["defaults"]);
    assert_eq!(code, 0);
    for section in [
        "[mqtt]",
        "[limits]",
        "[features]",
        "[cluster]",
        "[api]",
        "[log]",
        "[shutdown]",
    ] {
        assert!(defaults.contains(section), "{section}");
    }
    let path = write("defaults.toml", &defaults);
    let (code, out, err) = config(&["check", path.to_str().unwrap()]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out.trim_end(), format!("{}: OK", path.display()));
}

#[test]
fn the_queue_rule_example_of_the_defaults_checks_once_uncommented() {
    let (_, defaults, _) = config(&["defaults"]);
    let start = defaults.find("# [[limits.queue_rules]]").expect("an example rule");
    let end = start + defaults[start..].find("\n\n").expect("the end of [limits]");
    let uncommented: String = defaults[start..end].lines().map(|l| format!("{}\n", &l[2..])).collect();
    assert!(uncommented.contains("client_id = \"sensor-*\""), "{uncommented}");
    let text = format!("{}{uncommented}{}", &defaults[..start], &defaults[end..]);
    let path = write("rules.toml", &text);
    let (code, out, err) = config(&["check", path.to_str().unwrap()]);
    assert_eq!((code, err.as_str()), (0, ""), "{text}");
    assert_eq!(out.trim_end(), format!("{}: OK", path.display()));
}

#[test]
fn the_reference_in_the_repository_is_the_codes() {
    let (_, reference, _) = config(&["reference"]);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    assert_eq!(
        committed, reference,
        "regenerate it: ractmq config reference > docs/configuration.md"
    );
}

/// The flags `ractmq start -h` lists, as typed (`--user`).
fn start_flags() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["start", "-h"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // A flag's line starts with its names, `-c, --config <CONFIG>  The configuration file...`.
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split_whitespace().take_while(|t| t.starts_with('-')))
        .map(|t| t.trim_end_matches(','))
        .filter(|t| t.starts_with("--"))
        .map(str::to_string)
        .collect()
}

/// Every `--flag` the reference names, in its table or its text: `ractmq start` must accept each.
#[test]
fn every_flag_the_reference_names_is_a_flag_of_start() {
    let reference = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let named: Vec<&str> = reference
        .match_indices("--")
        .map(|(at, _)| {
            let rest = &reference[at + 2..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len());
            &reference[at..at + 2 + end]
        })
        .filter(|flag| flag[2..].starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    let real = start_flags();
    assert!(real.iter().any(|f| f == "--user"), "{real:?}");
    for flag in ["--user", "--seed", "--api-user", "--listen"] {
        assert!(named.contains(&flag), "the reference names {flag}");
    }
    for flag in named {
        assert!(
            real.iter().any(|f| f == flag),
            "{flag} is not a flag of ractmq start: {real:?}"
        );
    }
}

#[test]
fn discovery_settings_are_checked_in_one_line_each() {
    let cluster = "[cluster]\nnode_name = \"n1\"\nlisten = \"127.0.0.1:4370\"\ncookie = \"x\"\n";
    assert_eq!(
        refused("dns.toml", &format!("{cluster}discovery = \"dns\"\n")),
        "ractmq: --discovery dns needs --discovery-name (cluster.discovery_name): the DNS name whose A/AAAA records are the cluster's nodes (e.g. a Kubernetes headless service)"
    );
    assert_eq!(
        refused("dnss.toml", &format!("{cluster}discovery = \"dnss\"\n")),
        "ractmq: cluster.discovery 'dnss' is not a discovery: give static (the seeds only) or dns (with cluster.discovery_name)"
    );
    assert!(refused("name.toml", &format!("{cluster}discovery_name = \"peers\"\n")).contains("add --discovery dns"));
    assert!(refused("seed.toml", &format!("{cluster}seeds = [\"n2@bad host:1\"]\n")).contains("not a host name"));
    let ok = write(
        "ok.toml",
        &format!("{cluster}seeds = [\"n2@localhost:4371\"]\ndiscovery = \"dns\"\ndiscovery_name = \"peers.test\"\n"),
    );
    let (code, _, err) = config(&["check", ok.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn each_mistake_is_one_line_naming_the_key_the_value_and_the_fix() {
    assert_eq!(
        refused("typo.toml", "[limits]\nmax_inflite = 3\n"),
        "ractmq: FILE line 2: unknown field `max_inflite`, expected one of `max_packet_size`, `max_inflight`, `max_queue`, `max_queue_bytes`, `queue_overflow`, `stall_timeout_ms`, `max_offline_queue`, `max_offline_queue_bytes`, `offline_overflow`, `max_subscriptions`, `max_retained`, `receive_maximum`, `topic_alias_maximum`, `outbound_topic_aliases`, `client_messages_per_s`, `client_bytes_per_s`, `memory_high_watermark_pct`, `dead_letter_dropped`, `queue_rules`"
    );
    assert_eq!(
        refused("type.toml", "[mqtt]\nshards = \"many\"\n"),
        "ractmq: FILE line 2: invalid type: string \"many\", expected usize"
    );
    assert_eq!(
        refused("zero.toml", "[limits]\nmax_inflight = 0\n"),
        "ractmq: limits.max_inflight = 0: must be at least 1 (QoS 1/2 messages in flight to one client)"
    );
    assert_eq!(
        refused("policy.toml", "[limits]\nqueue_overflow = \"sometimes\"\n"),
        "ractmq: limits.queue_overflow = \"sometimes\": must be drop-oldest, drop-newest or disconnect"
    );
    assert_eq!(
        refused("addr.toml", "[mqtt]\nlisten = \"localhost\"\n"),
        "ractmq: mqtt.listen = \"localhost\": not an IP:PORT address (e.g. 0.0.0.0:1883)"
    );
    assert_eq!(
        refused("qos.toml", "[features]\nmax_qos = 3\n"),
        "ractmq: features.max_qos = 3: must be 0, 1 or 2"
    );
    assert_eq!(
        refused("format.toml", "[log]\nformat = \"xml\"\n"),
        "ractmq: log.format = \"xml\": must be text or json"
    );
    assert_eq!(
        refused("node.toml", "[cluster]\nnode_name = \"n1\"\n"),
        "ractmq: cluster.listen is empty: node n1 needs the address other nodes dial (--cluster-listen, e.g. 127.0.0.1:4370)"
    );
    assert!(refused(
        "cookie.toml",
        "[cluster]\nnode_name = \"n1\"\nlisten = \"127.0.0.1:4370\"\n"
    )
    .contains("--cookie is empty"));
    assert_eq!(
        refused(
            "tls.toml",
            "[cluster]\nnode_name = \"n1\"\nlisten = \"127.0.0.1:4370\"\ncookie = \"c\"\ntls_cert = \"a.pem\"\n"
        ),
        "ractmq: cluster.tls_cert, cluster.tls_key and cluster.tls_ca go together: give all three or none"
    );
    assert_eq!(
        refused("tls-listen.toml", "[mqtt]\ntls_listen = \"127.0.0.1:8883\"\n"),
        "ractmq: mqtt.tls_listen or mqtt.wss_listen is set but mqtt.tls_cert or mqtt.tls_key is empty: a TLS listener needs a certificate and its key (--tls-cert, --tls-key)"
    );
    let missing = refused(
        "tls-files.toml",
        "[mqtt]\nwss_listen = \"127.0.0.1:8084\"\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
    );
    assert!(
        missing.starts_with("ractmq: mqtt.tls_cert /nonexistent/cert.pem: cannot read it"),
        "{missing}"
    );
    assert_eq!(
        refused(
            "ws-path.toml",
            "[mqtt]\nws_listen = \"127.0.0.1:8083\"\nws_path = \"mqtt\"\n"
        ),
        "ractmq: mqtt.ws_path = \"mqtt\": must be an HTTP path starting with / (e.g. /mqtt)"
    );
    assert_eq!(
        refused("ws-listen.toml", "[mqtt]\nws_listen = \"localhost:8083\"\n"),
        "ractmq: mqtt.ws_listen = \"localhost:8083\": not an IP:PORT address (e.g. 0.0.0.0:8083)"
    );
    assert_eq!(
        refused("user.toml", "[auth]\nusers = [\"nopassword\"]\n"),
        "ractmq: auth.users: \"nopassword\" is not NAME:PASSWORD"
    );
    assert!(refused("open.toml", "[api]\nlisten = \"0.0.0.0:18083\"\n").contains("set --api-token"));
    assert_eq!(
        refused("stall.toml", "[limits]\nstall_timeout_ms = 0\n"),
        "ractmq: limits.stall_timeout_ms = 0: must be at least 1 (milliseconds a full queue may take to drain to half)"
    );
    assert_eq!(
        refused(
            "rule-listener.toml",
            "[[limits.queue_rules]]\nlistener = \"quic\"\nqueue_overflow = \"disconnect\"\n"
        ),
        "ractmq: limits.queue_rules[1].listener = \"quic\": must be tcp, tls, ws or wss"
    );
    assert_eq!(
        refused("rule-glob.toml", "[[limits.queue_rules]]\nclient_id = \"{a,b\"\nmax_queue = 5\n"),
        "ractmq: limits.queue_rules[1].client_id = \"{a,b\": not a glob pattern (unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)); use * for any characters, ? for one, [abc] for one of a set, or leave client_id out to match every client id"
    );
    assert_eq!(
        refused("rule-key.toml", "[[limits.queue_rules]]\nclient = \"a\"\n"),
        "ractmq: FILE line 2: unknown field `client`, expected one of `listener`, `client_id`, `username`, `max_queue`, `max_queue_bytes`, `queue_overflow`, `stall_timeout_ms`"
    );
    let (code, _, err) = config(&["check", "/nonexistent/ractmq.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("ractmq: /nonexistent/ractmq.toml: cannot read it"),
        "{err}"
    );
}

fn chaos_status(node: &Process) -> u16 {
    let r = ureq::post(&node.url("/chaos/kill")).send_json(json!({"kind": "shard", "target": "0"}));
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_file_is_overridden_by_the_environment_and_both_by_flags() {
    let path = write("precedence.toml", "[api]\nchaos = true\n[sys]\ninterval_s = 0\n");
    let file = path.to_str().unwrap();
    // From the file alone: chaos on.
    let node = Process::start(&["-c", file]);
    assert_eq!(chaos_status(&node), 200);
    drop(node);
    // The environment turns it off again.
    let node = Process::start_with_env(&["-c", file], &[("RACTMQ_API__CHAOS", "false")]);
    assert_eq!(chaos_status(&node), 403);
    drop(node);
    // A flag beats both.
    let node = Process::start_with_env(&["-c", file, "--api-chaos"], &[("RACTMQ_API__CHAOS", "false")]);
    assert_eq!(chaos_status(&node), 200);
    drop(node);
    // A bad environment variable stops the start in one line.
    let out = Command::new(env!("CARGO_BIN_EXE_ractmq"))
        .args(["start", "-c", file])
        .env("RACTMQ_MQTT__SHARDZ", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "ractmq: RACTMQ_MQTT__SHARDZ: there is no key mqtt.shardz (see docs/configuration.md)"
    );
}

#[test]
fn logs_can_be_json() {
    let node = Process::start(&["--log-format", "json"]);
    let lines = node.log.lock().unwrap().clone();
    let line = lines.iter().find(|l| l.contains("REST API listening")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["level"], json!("INFO"));
    assert!(parsed["fields"]["message"]
        .as_str()
        .unwrap()
        .contains("REST API listening"));
}
