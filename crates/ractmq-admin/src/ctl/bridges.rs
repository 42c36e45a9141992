//! `ractmq ctl bridges ...`: the node's bridges through its REST API: list, show, create, delete, start, stop,
//! restart, and their dead letters.

use clap::Subcommand;
use serde_json::json;

use super::{print_pairs, print_table, segment, Api, Failed, Output};

/// `ractmq ctl bridges ...`
#[derive(Subcommand)]
pub(crate) enum BridgesCommand {
    /// Every bridge: kind, where it goes, status, buffer and counters.
    List,
    /// One bridge, with its configuration (passwords hidden).
    Show { name: String },
    /// Create a bridge from a file (TOML or JSON): `kind` ("mqtt", "http", "postgres" or "kafka", default
    /// "mqtt"), `name` and the kind's settings, as in a `[[bridges.KIND]]` table of the configuration file.
    Create {
        /// The bridge's file.
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Stop a bridge and forget it, with its buffer.
    Delete { name: String },
    /// Start a stopped bridge.
    Start { name: String },
    /// Stop a bridge (its buffer stays and keeps filling, by its overflow policy).
    Stop { name: String },
    /// Stop and start a bridge.
    Restart { name: String },
    /// The bridge's recent dead letters.
    Dlq { name: String },
    /// Send dead letters again through the bridge (all of them, or those given with --id).
    Replay {
        name: String,
        /// A dead letter's id (repeat for more).
        #[arg(long = "id")]
        ids: Vec<u64>,
    },
}

const LIST_KEYS: [&str; 10] = [
    "name",
    "kind",
    "remote",
    "status",
    "connected",
    "queued",
    "sent",
    "acked",
    "failed",
    "dead_lettered",
];
const LIST_HEADERS: [&str; 10] = [
    "NAME",
    "KIND",
    "REMOTE",
    "STATUS",
    "CONNECTED",
    "QUEUED",
    "SENT",
    "ACKED",
    "FAILED",
    "DEAD-LETTERED",
];

pub(super) fn bridges(api: &Api, out: Output, command: &BridgesCommand) -> Result<(), Failed> {
    match command {
        BridgesCommand::List => {
            let v = api.json("GET", "/bridges", None)?;
            out.show(&v, &|v| print_table(&LIST_HEADERS, &LIST_KEYS, v));
        }
        BridgesCommand::Show { name } => {
            let v = api.json("GET", &format!("/bridges/{}", segment("bridge", name)?), None)?;
            out.show(&v, &|v| {
                let mut shown = v.clone();
                if let Some(o) = shown.as_object_mut() {
                    o.remove("config");
                }
                print_pairs(&shown);
                println!("{}", serde_json::to_string_pretty(&v["config"]).unwrap_or_default());
            });
        }
        BridgesCommand::Create { file } => {
            let body = super::read_table(file)?;
            let v = api.json("POST", "/bridges", Some(body))?;
            out.show(&v, &|v| {
                println!("created bridge {}", v["name"].as_str().unwrap_or("?"))
            });
        }
        BridgesCommand::Delete { name } => {
            let v = api.json("DELETE", &format!("/bridges/{}", segment("bridge", name)?), None)?;
            out.show(&v, &|_| println!("deleted bridge {name}"));
        }
        BridgesCommand::Start { name } => act(api, out, name, "start", "started")?,
        BridgesCommand::Stop { name } => act(api, out, name, "stop", "stopped")?,
        BridgesCommand::Restart { name } => act(api, out, name, "restart", "restarted")?,
        BridgesCommand::Dlq { name } => {
            let v = api.json("GET", &format!("/bridges/{}/dlq", segment("bridge", name)?), None)?;
            out.show(&v, &|v| {
                print_table(
                    &["ID", "TOPIC", "REASON", "AT (ms)"],
                    &["id", "topic", "reason", "at_ms"],
                    v,
                )
            });
        }
        BridgesCommand::Replay { name, ids } => {
            let body = if ids.is_empty() {
                json!({})
            } else {
                json!({ "ids": ids })
            };
            let path = format!("/bridges/{}/dlq/replay", segment("bridge", name)?);
            let v = api.json("POST", &path, Some(body))?;
            out.show(&v, &|v| {
                println!("replaying {} dead letters through bridge {name}", v["replayed"])
            });
        }
    }
    Ok(())
}

fn act(api: &Api, out: Output, name: &str, action: &str, done: &str) -> Result<(), Failed> {
    let v = api.json("POST", &format!("/bridges/{}/{action}", segment("bridge", name)?), None)?;
    out.show(&v, &|_| println!("{done} bridge {name}"));
    Ok(())
}
