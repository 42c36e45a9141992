//! `ractmq ctl rules ...`: the node's rules through its REST API: list, show, create, delete, enable, disable,
//! and test a rule's SQL on a message without publishing anything.

use clap::Subcommand;
use serde_json::{json, Value};

use super::{print_pairs, print_table, segment, Api, Failed, Output};

/// `ractmq ctl rules ...`
#[derive(Subcommand)]
pub(crate) enum RulesCommand {
    /// Every rule: its FROM, whether it runs, and its counters.
    List,
    /// One rule, with its configuration.
    Show { name: String },
    /// Create a rule, from a file (TOML or JSON, as a `[[rules]]` table of the configuration file) or from
    /// --name, --sql and action flags.
    Create {
        /// The rule's file.
        #[arg(long, conflicts_with_all = ["name", "sql"])]
        file: Option<std::path::PathBuf>,
        /// The rule's name.
        #[arg(long, requires = "sql")]
        name: Option<String>,
        /// The rule's SQL.
        #[arg(long, requires = "name")]
        sql: Option<String>,
        /// Republish each output to this topic (a template: `alerts/${clientid}`).
        #[arg(long)]
        republish: Option<String>,
        /// The republished payload (a template); the output as JSON by default.
        #[arg(long, requires = "republish")]
        payload: Option<String>,
        /// The republished QoS; the matched message's by default.
        #[arg(long, requires = "republish")]
        qos: Option<u8>,
        /// Send each output to this bridge.
        #[arg(long)]
        bridge: Option<String>,
        /// Log each output.
        #[arg(long)]
        log: bool,
    },
    /// Stop a rule and forget it.
    Delete { name: String },
    /// Run a disabled rule.
    Enable { name: String },
    /// Stop running a rule (it stays, with its counters).
    Disable { name: String },
    /// Show what SQL outputs for one message, without publishing anything.
    Test {
        /// The SQL.
        #[arg(long)]
        sql: String,
        /// The message's topic.
        #[arg(long, default_value = "")]
        topic: String,
        /// The message's payload.
        #[arg(long, default_value = "")]
        payload: String,
        /// The publisher's client id.
        #[arg(long)]
        clientid: Option<String>,
        /// The publisher's user name.
        #[arg(long)]
        username: Option<String>,
        /// The message's QoS.
        #[arg(long, default_value_t = 0)]
        qos: u8,
        /// The message is retained.
        #[arg(long)]
        retain: bool,
        /// Test an event rule: the event topic (`$events/client_connected`...).
        #[arg(long)]
        event: Option<String>,
    },
}

const LIST_KEYS: [&str; 9] = [
    "name",
    "enabled",
    "from",
    "matched",
    "passed",
    "failed",
    "no_result",
    "actions_success",
    "actions_failed",
];
const LIST_HEADERS: [&str; 9] = [
    "NAME",
    "ENABLED",
    "FROM",
    "MATCHED",
    "PASSED",
    "FAILED",
    "NO-RESULT",
    "ACTIONS-OK",
    "ACTIONS-FAILED",
];

/// The list with each rule's action counters summed, for the table.
fn with_action_totals(v: &Value) -> Value {
    let mut v = v.clone();
    for rule in v.as_array_mut().into_iter().flatten() {
        let sum = |key: &str| -> u64 {
            (rule["actions"].as_array().into_iter().flatten())
                .filter_map(|a| a[key].as_u64())
                .sum()
        };
        let (ok, failed) = (sum("success"), sum("failed"));
        let from = (rule["from"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        rule["actions_success"] = json!(ok);
        rule["actions_failed"] = json!(failed);
        rule["from"] = json!(from);
    }
    v
}

pub(super) fn rules(api: &Api, out: Output, command: &RulesCommand) -> Result<(), Failed> {
    match command {
        RulesCommand::List => {
            let v = api.json("GET", "/rules", None)?;
            out.show(&v, &|v| print_table(&LIST_HEADERS, &LIST_KEYS, &with_action_totals(v)));
        }
        RulesCommand::Show { name } => {
            let v = api.json("GET", &format!("/rules/{}", segment("rule", name)?), None)?;
            out.show(&v, &|v| {
                let mut shown = v.clone();
                if let Some(o) = shown.as_object_mut() {
                    o.remove("config");
                    o.remove("actions");
                }
                print_pairs(&shown);
                print_table(
                    &["ACTION", "SUCCESS", "FAILED", "RETRIED"],
                    &["kind", "success", "failed", "retried"],
                    &v["actions"],
                );
            });
        }
        RulesCommand::Create {
            file,
            name,
            sql,
            republish,
            payload,
            qos,
            bridge,
            log,
        } => {
            let body = match (file, name, sql) {
                (Some(file), _, _) => super::read_table(file)?,
                (None, Some(name), Some(sql)) => {
                    let mut actions = Vec::new();
                    if let Some(topic) = republish {
                        actions.push(json!({ "republish": { "topic": topic, "payload": payload, "qos": qos } }));
                    }
                    if let Some(bridge) = bridge {
                        actions.push(json!({ "bridge": { "name": bridge } }));
                    }
                    if *log {
                        actions.push(json!({ "log": {} }));
                    }
                    json!({ "name": name, "sql": sql, "actions": actions })
                }
                _ => {
                    return Err(Failed(
                        "ractmq ctl rules create: give --file, or --name and --sql".into(),
                    ))
                }
            };
            let v = api.json("POST", "/rules", Some(strip_nulls(body)))?;
            out.show(&v, &|v| println!("created rule {}", v["name"].as_str().unwrap_or("?")));
        }
        RulesCommand::Delete { name } => {
            let v = api.json("DELETE", &format!("/rules/{}", segment("rule", name)?), None)?;
            out.show(&v, &|_| println!("deleted rule {name}"));
        }
        RulesCommand::Enable { name } => act(api, out, name, "enable", "enabled")?,
        RulesCommand::Disable { name } => act(api, out, name, "disable", "disabled")?,
        RulesCommand::Test {
            sql,
            topic,
            payload,
            clientid,
            username,
            qos,
            retain,
            event,
        } => {
            let body = json!({
                "sql": sql, "topic": topic, "payload": payload, "clientid": clientid, "username": username,
                "qos": qos, "retain": retain, "event": event,
            });
            let v = api.json("POST", "/rule_test", Some(strip_nulls(body)))?;
            out.show(&v, &|v| match v["outcome"].as_str() {
                Some("rows") => {
                    for row in v["rows"].as_array().into_iter().flatten() {
                        println!("{}", serde_json::to_string(row).unwrap_or_default());
                    }
                }
                Some("failed") => println!("the rule failed: {}", v["error"].as_str().unwrap_or("?")),
                _ => println!("no result: the rule's WHERE (or INCASE) is false for this message"),
            });
        }
    }
    Ok(())
}

/// `body` without its null fields (flags not given).
fn strip_nulls(mut body: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|_, v| !v.is_null());
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut body);
    body
}

fn act(api: &Api, out: Output, name: &str, action: &str, done: &str) -> Result<(), Failed> {
    let v = api.json("POST", &format!("/rules/{}/{action}", segment("rule", name)?), None)?;
    out.show(&v, &|_| println!("{done} rule {name}"));
    Ok(())
}
