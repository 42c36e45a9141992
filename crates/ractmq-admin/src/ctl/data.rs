//! `ractmq ctl data stats`: the store in the node's data dir, through the node's REST API.

use clap::Subcommand;

use super::{s, Api, Failed, Output};
use crate::table;

/// `ractmq ctl data ...`
#[derive(Subcommand)]
pub(crate) enum DataCommand {
    /// What the store holds (file size, sessions, messages, retained and operator records) and how its
    /// commits go.
    Stats,
}

/// The rows of the table, in this order: where and how big, what it holds, how the writer goes.
const FIELDS: &[&str] = &[
    "durability",
    "dir",
    "file_bytes",
    "sessions",
    "messages",
    "retained",
    "operator",
    "commits",
    "ops",
    "cancelled",
    "pending_ops",
    "pending_bytes",
    "last_commit_us",
];

pub(super) fn data(api: &Api, out: Output, command: &DataCommand) -> Result<(), Failed> {
    match command {
        DataCommand::Stats => {
            let v = api.json("GET", "/data", None)?;
            out.show(&v, &|v| {
                if v["durability"] == "memory" {
                    println!(
                        "this node keeps nothing on disk (--durability memory): a restart loses its sessions and retained messages"
                    );
                    return;
                }
                let rows: Vec<Vec<String>> = FIELDS.iter().map(|f| vec![f.to_string(), s(&v[*f])]).collect();
                print!("{}", table::render(&["FIELD", "VALUE"], &rows));
            });
        }
    }
    Ok(())
}
