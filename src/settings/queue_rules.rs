//! Per-client queue rules as an operator writes them: `[[limits.queue_rules]]` tables in the file, or one rule on
//! one line (`client_id=sensor-*,queue_overflow=disconnect`) for `--queue-rule` and `RACTMQ_LIMITS__QUEUE_RULES`.
//! Each is checked and turned into the broker's [`ractmq::QueueRule`]; the matching itself lives in
//! `ractmq_protocol::queue_rules`.

use std::time::Duration;

use ractmq::{ListenerKind, Pattern};
use serde::{Deserialize, Serialize};

use super::{at_least, overflow_policy};

/// One `[[limits.queue_rules]]`: matchers (all given must match) and the queue settings it gives the clients
/// it matches. The first matching rule supplies the settings it names; the rest are the node-wide `limits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_overflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout_ms: Option<u64>,
}

/// The keys of a queue rule, and whether each takes a whole number (the others take text).
const QUEUE_RULE_KEYS: [(&str, bool); 7] = [
    ("listener", false),
    ("client_id", false),
    ("username", false),
    ("max_queue", true),
    ("max_queue_bytes", true),
    ("queue_overflow", false),
    ("stall_timeout_ms", true),
];

/// A queue rule written on one line, as `--queue-rule` and `RACTMQ_LIMITS__QUEUE_RULES` take it
/// (`client_id=sensor-*,queue_overflow=disconnect`), as the table `[[limits.queue_rules]]` would hold. Values are
/// taken as written, without quotes; a comma inside `{...}` or `[...]` belongs to the glob.
pub fn queue_rule_table(text: &str) -> Result<toml::Table, String> {
    let mut table = toml::Table::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    let keys = || QUEUE_RULE_KEYS.map(|(k, _)| k).join(", ");
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("\"{item}\" is not KEY=VALUE (keys: {})", keys()));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some((_, number)) = QUEUE_RULE_KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(format!("{key} is not a key of a queue rule (keys: {})", keys()));
        };
        let value = if *number {
            let n = value.parse::<u64>().ok().and_then(|n| i64::try_from(n).ok());
            toml::Value::Integer(n.ok_or_else(|| format!("{key}={value}: {key} takes a whole number"))?)
        } else {
            toml::Value::String(value.to_string())
        };
        if table.insert(key.to_string(), value).is_some() {
            return Err(format!("{key} is given twice"));
        }
    }
    if table.is_empty() {
        return Err("an empty rule: give KEY=VALUE pairs, e.g. client_id=sensor-*,queue_overflow=disconnect".into());
    }
    Ok(table)
}

impl QueueRule {
    /// The broker's rule, every value checked; `key` names the rule in errors (`limits.queue_rules[2]`).
    pub(super) fn build(&self, key: &str) -> Result<ractmq::QueueRule, String> {
        let pattern = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    Pattern::new(v).map_err(|e| {
                        format!(
                            "{key}.{name} = \"{v}\": not a glob pattern ({e}); use * for any characters, ? for one, [abc] for one of a set, or leave {name} out to match every {}",
                            if name == "username" { "user name" } else { "client id" }
                        )
                    })
                })
                .transpose()
        };
        let bound = |name: &str, value: Option<u64>, what: &str| -> Result<(), String> {
            match value {
                Some(v) => at_least(&format!("{key}.{name}"), v, 1, what),
                None => Ok(()),
            }
        };
        bound(
            "max_queue",
            self.max_queue.map(|v| v as u64),
            "messages queued for a matching client",
        )?;
        bound(
            "max_queue_bytes",
            self.max_queue_bytes.map(|v| v as u64),
            "bytes queued for a matching client",
        )?;
        bound(
            "stall_timeout_ms",
            self.stall_timeout_ms,
            "milliseconds a matching client's full queue may take to drain to half",
        )?;
        Ok(ractmq::QueueRule {
            listener: self
                .listener
                .as_deref()
                .map(|v| {
                    v.parse::<ListenerKind>()
                        .map_err(|_| format!("{key}.listener = \"{v}\": must be tcp, tls, ws or wss"))
                })
                .transpose()?,
            client_id: pattern("client_id", &self.client_id)?,
            username: pattern("username", &self.username)?,
            max_len: self.max_queue,
            max_bytes: self.max_queue_bytes,
            overflow: self
                .queue_overflow
                .as_deref()
                .map(|v| overflow_policy(&format!("{key}.queue_overflow"), v))
                .transpose()?,
            stall_timeout: self.stall_timeout_ms.map(Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{layers, Built, Settings};
    use ractmq::OverflowPolicy;
    use std::time::Duration;

    fn built(text: &str) -> Result<Built, String> {
        toml::from_str::<Settings>(text).map_err(|e| e.to_string())?.build()
    }

    fn error(text: &str) -> String {
        let e = built(text).err().expect("refused");
        assert_eq!(e.lines().count(), 1, "{e}");
        e
    }

    #[test]
    fn node_wide_queue_keys_reach_the_limits() {
        let b = built("[limits]\nmax_queue_bytes = 4096\nmax_offline_queue_bytes = 8192\nstall_timeout_ms = 250\n")
            .unwrap();
        let l = &b.broker.limits;
        assert_eq!(
            (l.max_queue_bytes, l.max_offline_queue_bytes, l.stall_timeout),
            (4096, 8192, Duration::from_millis(250))
        );
        let defaults = ractmq::Limits::default();
        let d = Settings::default().build().unwrap().broker.limits;
        assert_eq!(
            (d.max_queue_bytes, d.max_offline_queue_bytes, d.stall_timeout),
            (
                defaults.max_queue_bytes,
                defaults.max_offline_queue_bytes,
                defaults.stall_timeout
            )
        );
        assert!(Settings::default().build().unwrap().broker.queue_rules.is_empty());
    }

    #[test]
    fn queue_rules_in_the_file_reach_the_broker_in_order() {
        let b = built(
            r#"
[limits]
max_queue = 500
queue_overflow = "drop-newest"

[[limits.queue_rules]]
listener = "ws"
client_id = "sensor-*"
queue_overflow = "disconnect"
stall_timeout_ms = 300

[[limits.queue_rules]]
username = "bridge-?"
max_queue = 100000
max_queue_bytes = 1048576
"#,
        )
        .unwrap();
        let config = &b.broker;
        assert_eq!(config.queue_rules.len(), 2);
        let sensor = config.queue_policy("ws", "sensor-1", Some("bridge-1"));
        assert_eq!(sensor.overflow, OverflowPolicy::Disconnect);
        assert_eq!(sensor.stall_timeout, Duration::from_millis(300));
        assert_eq!(sensor.max_len, 500, "the first rule names no max_queue: the node's");
        let bridge = config.queue_policy("tcp", "sensor-1", Some("bridge-1"));
        assert_eq!((bridge.max_len, bridge.max_bytes), (100_000, 1_048_576));
        assert_eq!(bridge.overflow, OverflowPolicy::DropNewest);
        assert_eq!(config.queue_policy("tcp", "other", None), config.limits.online_queue());
    }

    #[test]
    fn queue_rules_on_one_line_from_the_environment_and_flags() {
        let env = [(
            "RACTMQ_LIMITS__QUEUE_RULES".to_string(),
            "client_id={a,b}-*,queue_overflow=disconnect; listener=tls,max_queue=7".to_string(),
        )];
        let table = layers::load(None, env.clone().into_iter()).unwrap();
        let s = layers::settings(table).unwrap();
        assert_eq!(
            s.limits.queue_rules,
            [
                QueueRule {
                    client_id: Some("{a,b}-*".into()),
                    queue_overflow: Some("disconnect".into()),
                    ..QueueRule::default()
                },
                QueueRule {
                    listener: Some("tls".into()),
                    max_queue: Some(7),
                    ..QueueRule::default()
                }
            ]
        );
        let config = s.build().unwrap().broker;
        assert_eq!(
            config.queue_policy("tcp", "b-1", None).overflow,
            OverflowPolicy::Disconnect
        );
        assert_eq!(config.queue_policy("tls", "c-1", None).max_len, 7);

        // Flags replace the environment's rules, one rule per flag.
        let mut table = layers::load(None, env.into_iter()).unwrap();
        let flags = [(
            "queue_rule".to_string(),
            vec![
                "username=u*,stall_timeout_ms=100".to_string(),
                "max_queue_bytes=2048".to_string(),
            ],
        )];
        layers::apply_flags(&mut table, &flags).unwrap();
        let rules = layers::settings(table).unwrap().limits.queue_rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].stall_timeout_ms, Some(100));
        assert_eq!(rules[1].max_queue_bytes, Some(2048));
    }

    #[test]
    fn a_queue_rule_on_one_line_with_a_mistake_is_one_line() {
        let flag = |rule: &str| {
            let mut table = layers::load(None, std::iter::empty()).unwrap();
            layers::apply_flags(&mut table, &[("queue_rule".to_string(), vec![rule.to_string()])]).unwrap_err()
        };
        assert_eq!(
            flag("client_id=a,max_qeue=3"),
            "--queue-rule = \"client_id=a,max_qeue=3\": max_qeue is not a key of a queue rule (keys: listener, client_id, username, max_queue, max_queue_bytes, queue_overflow, stall_timeout_ms)"
        );
        assert_eq!(
            flag("max_queue=many"),
            "--queue-rule = \"max_queue=many\": max_queue=many: max_queue takes a whole number"
        );
        assert_eq!(
            flag("max_queue=-1"),
            "--queue-rule = \"max_queue=-1\": max_queue=-1: max_queue takes a whole number"
        );
        assert_eq!(
            flag("client_id"),
            "--queue-rule = \"client_id\": \"client_id\" is not KEY=VALUE (keys: listener, client_id, username, max_queue, max_queue_bytes, queue_overflow, stall_timeout_ms)"
        );
        assert_eq!(
            flag("max_queue=1,max_queue=2"),
            "--queue-rule = \"max_queue=1,max_queue=2\": max_queue is given twice"
        );
        let env = [(
            "RACTMQ_LIMITS__QUEUE_RULES".to_string(),
            "listener=ws;bogus".to_string(),
        )];
        let e = layers::load(None, env.into_iter()).unwrap_err();
        assert!(e.starts_with("RACTMQ_LIMITS__QUEUE_RULES = \"bogus\": "), "{e}");
    }

    #[test]
    fn bad_queue_settings_are_one_line_naming_the_key_the_value_and_the_fix() {
        assert_eq!(
            error("[limits]\nmax_queue_bytes = 0\n"),
            "limits.max_queue_bytes = 0: must be at least 1 (bytes queued for a connected client)"
        );
        assert_eq!(
            error("[limits]\nmax_queue = 0\n"),
            "limits.max_queue = 0: must be at least 1 (messages queued for a connected client)"
        );
        assert_eq!(
            error("[limits]\nmax_offline_queue_bytes = 0\n"),
            "limits.max_offline_queue_bytes = 0: must be at least 1 (bytes queued for a disconnected session)"
        );
        assert_eq!(
            error("[limits]\nstall_timeout_ms = 0\n"),
            "limits.stall_timeout_ms = 0: must be at least 1 (milliseconds a full queue may take to drain to half)"
        );
        let rule = |body: &str| {
            error(&format!(
                "[[limits.queue_rules]]\nmax_queue = 5\n[[limits.queue_rules]]\n{body}\n"
            ))
        };
        assert_eq!(
            rule("listener = \"quic\""),
            "limits.queue_rules[2].listener = \"quic\": must be tcp, tls, ws or wss"
        );
        assert_eq!(
            rule("client_id = \"sensor-[0-9\""),
            "limits.queue_rules[2].client_id = \"sensor-[0-9\": not a glob pattern (unclosed character class; missing ']'); use * for any characters, ? for one, [abc] for one of a set, or leave client_id out to match every client id"
        );
        assert!(
            rule("username = \"\"").starts_with("limits.queue_rules[2].username = \"\": not a glob pattern"),
            "an empty pattern"
        );
        assert_eq!(
            rule("queue_overflow = \"sometimes\""),
            "limits.queue_rules[2].queue_overflow = \"sometimes\": must be drop-oldest, drop-newest or disconnect"
        );
        assert_eq!(
            rule("max_queue = 0"),
            "limits.queue_rules[2].max_queue = 0: must be at least 1 (messages queued for a matching client)"
        );
        assert_eq!(
            rule("max_queue_bytes = 0"),
            "limits.queue_rules[2].max_queue_bytes = 0: must be at least 1 (bytes queued for a matching client)"
        );
        assert_eq!(
            rule("stall_timeout_ms = 0"),
            "limits.queue_rules[2].stall_timeout_ms = 0: must be at least 1 (milliseconds a matching client's full queue may take to drain to half)"
        );
        // Unknown keys and wrong types are found as the file is read, with their line (see layers.rs).
        let read = |body: &str| {
            let path =
                std::env::temp_dir().join(format!("ractmq-queue-rules-{}-{}.toml", std::process::id(), body.len()));
            std::fs::write(
                &path,
                format!("[limits]\nmax_queue = 5\n[[limits.queue_rules]]\n{body}\n"),
            )
            .unwrap();
            let e = layers::load(Some(&path), std::iter::empty()).unwrap_err();
            let _ = std::fs::remove_file(&path);
            assert_eq!(e.lines().count(), 1, "{e}");
            e.split_once(".toml ").unwrap().1.to_string()
        };
        assert_eq!(
            read("max_queu = 3"),
            "line 4: unknown field `max_queu`, expected one of `listener`, `client_id`, `username`, `max_queue`, `max_queue_bytes`, `queue_overflow`, `stall_timeout_ms`"
        );
        assert_eq!(
            read("max_queue = -1"),
            "line 4: invalid value: integer `-1`, expected usize"
        );
        assert_eq!(
            read("client_id = 5"),
            "line 4: invalid type: integer `5`, expected a string"
        );
    }
}
