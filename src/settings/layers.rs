//! Where a setting's value comes from, in order, each overriding the last: the default, the file
//! (`-c ractmq.toml`), an environment variable `RACTMQ_SECTION__KEY` (e.g. `RACTMQ_MQTT__LISTEN=0.0.0.0:1884`),
//! and a command-line flag given explicitly.
//!
//! The layers meet as one TOML table: a value from the environment or a flag is read as the type the key
//! already has (number, true/false, text, or a list for repeated flags), so a wrong one is reported with its
//! key like a wrong value in the file. Queue rules, tables in the file, are written on one line there
//! (`client_id=sensor-*,queue_overflow=disconnect`, several separated by `;`).

use std::path::Path;

use toml::{Table, Value};

use super::reference::flag_keys;
use super::Settings;

/// The settings from `file` (if any) and the environment `env`, before command-line flags.
pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Table, String> {
    let mut table = Table::try_from(Settings::default()).expect("the defaults are a table");
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it ({e}); give an existing file to -c", path.display()))?;
        let from_file: Table = text.parse().map_err(|e: toml::de::Error| located(path, &text, &e))?;
        // Checked whole (unknown keys, wrong types) before it is merged, so the error names the file's line.
        let parsed: Result<Settings, toml::de::Error> = toml::from_str(&text);
        parsed.map_err(|e| located(path, &text, &e))?;
        merge(&mut table, from_file);
    }
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("RACTMQ_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue; // RACTMQ_COOKIE and RACTMQ_API_TOKEN are read by their flags.
        };
        let (section, key) = (section.to_lowercase(), key.to_lowercase());
        set(&mut table, &section, &key, &[value], &name)?;
    }
    Ok(table)
}

/// Apply command-line flags given explicitly: (flag id, raw values).
pub fn apply_flags(table: &mut Table, flags: &[(String, Vec<String>)]) -> Result<(), String> {
    let keys = flag_keys();
    for (id, values) in flags {
        if id == "no_api" {
            set(table, "api", "enabled", &["false".into()], "--no-api")?;
            continue;
        }
        if let Some((_, key)) = keys.iter().find(|(flag, _)| flag == id) {
            let (section, key) = key.split_once('.').expect("keys are section.key");
            set(table, section, key, values, &format!("--{}", id.replace('_', "-")))?;
        }
    }
    Ok(())
}

/// The settings the table holds, checked.
pub fn settings(table: Table) -> Result<Settings, String> {
    Settings::deserialize(Value::Table(table)).map_err(|e| e.message().to_string())
}

use serde::Deserialize;

/// Set `section.key` from text `values`, read as the type the key has; `source` names where they came from.
fn set(table: &mut Table, section: &str, key: &str, values: &[String], source: &str) -> Result<(), String> {
    if section == "rules" {
        return Err(format!(
            "{source}: rules are set in the configuration file ([[rules]]) or at run time with ractmq ctl rules \
             create, not here"
        ));
    }
    let Some(Value::Table(sec)) = table.get_mut(section) else {
        return Err(format!(
            "{source}: there is no section [{section}] (see docs/configuration.md)"
        ));
    };
    let Some(current) = sec.get(key) else {
        return Err(format!(
            "{source}: there is no key {section}.{key} (see docs/configuration.md)"
        ));
    };
    let one = || values.last().cloned().unwrap_or_default();
    let value = match current {
        Value::Integer(_) => {
            let text = one();
            Value::Integer(
                text.parse()
                    .map_err(|_| format!("{source} = \"{text}\": {section}.{key} takes a whole number"))?,
            )
        }
        Value::Boolean(_) => {
            let text = one();
            Value::Boolean(match text.as_str() {
                "true" | "" => true,
                "false" => false,
                _ => return Err(format!("{source} = \"{text}\": {section}.{key} takes true or false")),
            })
        }
        Value::Array(_) if section == "bridges" => {
            return Err(format!(
                "{source}: bridges are set in the configuration file ([[bridges.{key}]]) or at run time with \
                 ractmq ctl bridges create, not here"
            ))
        }
        Value::Array(_) if (section, key) == ("limits", "queue_rules") => {
            // One rule per flag, written on one line (`client_id=sensor-*,queue_overflow=disconnect`); one value may
            // hold several separated by `;`, which is how the environment gives more than one.
            let mut rules = Vec::new();
            for text in values.iter().flat_map(|v| v.split(';')).map(str::trim) {
                if !text.is_empty() {
                    let table = super::queue_rule_table(text).map_err(|e| format!("{source} = \"{text}\": {e}"))?;
                    rules.push(Value::Table(table));
                }
            }
            Value::Array(rules)
        }
        Value::Array(_) => {
            // A list from the environment is comma-separated; repeated flags give one value each.
            let items: Vec<Value> = if values.len() == 1 && values[0].contains(',') {
                values[0]
                    .split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .collect()
            } else {
                values.iter().map(|s| Value::String(s.clone())).collect()
            };
            Value::Array(items)
        }
        _ => Value::String(one()),
    };
    sec.insert(key.to_string(), value);
    Ok(())
}

fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(key, v);
            }
        }
    }
}

/// A TOML error as one line: file, line, what is wrong.
fn located(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
        .map(|l| format!(" line {l}"))
        .unwrap_or_default();
    format!("{}{line}: {}", path.display(), e.message().trim().replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("ractmq-layers-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_override_both() {
        let path = file("[mqtt]\nlisten = \"127.0.0.1:1884\"\nshards = 8\n[limits]\nmax_queue = 10\n");
        let env = [
            ("RACTMQ_LIMITS__MAX_QUEUE".to_string(), "20".to_string()),
            ("RACTMQ_AUTH__USERS".to_string(), "a:1,b:2".to_string()),
            ("RACTMQ_COOKIE".to_string(), "not mine".to_string()),
        ];
        let mut table = load(Some(&path), env.into_iter()).unwrap();
        apply_flags(&mut table, &[("shards".into(), vec!["16".into()])]).unwrap();
        let s = settings(table).unwrap();
        assert_eq!(s.mqtt.listen, "127.0.0.1:1884");
        assert_eq!(s.limits.max_queue, 20);
        assert_eq!(s.mqtt.shards, 16);
        assert_eq!(s.auth.users, ["a:1", "b:2"]);
        assert_eq!(s.limits.max_inflight, Settings::default().limits.max_inflight);
    }

    #[test]
    fn mistakes_are_one_line_naming_the_place() {
        let e = load(Some(&file("[limits]\nmax_inflite = 3\n")), std::iter::empty()).unwrap_err();
        assert!(e.contains("line 2") && e.contains("max_inflite"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = load(Some(&file("[mqtt]\nshards = \"many\"\n")), std::iter::empty()).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let env = [("RACTMQ_MQTT__SHARDZ".to_string(), "3".to_string())];
        let e = load(None, env.into_iter()).unwrap_err();
        assert_eq!(
            e,
            "RACTMQ_MQTT__SHARDZ: there is no key mqtt.shardz (see docs/configuration.md)"
        );
        let env = [("RACTMQ_MQTT__SHARDS".to_string(), "lots".to_string())];
        let e = load(None, env.into_iter()).unwrap_err();
        assert_eq!(e, "RACTMQ_MQTT__SHARDS = \"lots\": mqtt.shards takes a whole number");
        let e = load(Some(Path::new("/nonexistent/ractmq.toml")), std::iter::empty()).unwrap_err();
        assert!(e.starts_with("/nonexistent/ractmq.toml: cannot read it"), "{e}");
    }
}
