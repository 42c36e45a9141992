//! `ractmq ctl`: the operator's command line, a client of a node's REST API.
//!
//! Every command is one HTTP call (trace streams); the answer is printed as a table, or as the API's JSON
//! with `--json` for scripts. A node that cannot be reached is one line saying so, exit code 1.

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use clap::{Args, Subcommand};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::table;

mod bridges;
mod data;
mod rules;
mod security;
mod supervision;

use bridges::BridgesCommand;
use data::DataCommand;
use rules::RulesCommand;
use security::{AclCommand, BannedCommand, UsersCommand};

/// The arguments of `ractmq ctl`: where the node's API is, how to authenticate, and the command.
#[derive(Args)]
pub struct CtlArgs {
    /// The node's REST API, HOST:PORT.
    #[arg(long, env = "RACTMQ_CTL_API", default_value = "127.0.0.1:18083", global = true)]
    pub(crate) api: String,
    /// Bearer token, if the API asks for one.
    #[arg(long, env = "RACTMQ_API_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// NAME:PASSWORD for basic authentication, if the API asks for it.
    #[arg(long, global = true)]
    pub(crate) user: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: CtlCommand,
}

#[derive(Subcommand)]
pub(crate) enum CtlCommand {
    /// This node: version, uptime, clients, sessions.
    Status,
    /// The cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// This node: evacuate it.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Client sessions.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Subscriptions.
    #[command(subcommand)]
    Subscriptions(ListCommand),
    /// Routes: filters with subscribers, by node.
    #[command(subcommand)]
    Topics(ListCommand),
    /// Retained messages.
    #[command(subcommand)]
    Retained(RetainedCommand),
    /// The MQTT listeners.
    Listeners,
    /// The store in the data dir.
    #[command(subcommand)]
    Data(DataCommand),
    /// Bridges to other brokers, HTTP services, PostgreSQL and Kafka.
    #[command(subcommand)]
    Bridges(BridgesCommand),
    /// Rules: SQL over messages and client events, with actions that republish, feed bridges or log.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// The Prometheus exposition of the node.
    Metrics,
    /// Kill actors on purpose (the node must run with --api-chaos).
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// The supervision tree as it runs now: supervisors, their strategies and intensities, restarts, and
    /// what `chaos kill` takes to kill each actor.
    #[command(alias = "tree")]
    Supervision,
    /// Watch packets as they pass.
    #[command(subcommand)]
    Trace(TraceCommand),
    /// The built-in user database.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Banned client ids, user names and addresses.
    #[command(subcommand)]
    Banned(BannedCommand),
    /// Authorization rules.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Flapping detection: its settings, the client ids it counts, the bans it made.
    Flapping,
}

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// Every member and its link state (up, down, connecting, or left).
    Status,
    /// Evacuate this node, tell the other nodes it left for good, and stop it (exit code 0).
    Leave {
        /// Clients disconnected per second while evacuating.
        #[arg(long)]
        rate: Option<u32>,
    },
    /// Forget a member that is down, on every node: no longer dialled, its routes gone; it shows as left.
    Forget { node: String },
}

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Refuse new clients, report not ready, and send the connected ones to the other nodes (MQTT 5:
    /// DISCONNECT 0x9C with a Server Reference); with --status, how far it got; with --stop, undo it.
    Evacuate {
        /// Clients disconnected per second (default 500).
        #[arg(long, conflicts_with_all = ["status", "stop"])]
        rate: Option<u32>,
        /// Show the evacuation's progress: the clients still connected.
        #[arg(long, conflicts_with = "stop")]
        status: bool,
        /// Stop evacuating: admit clients again.
        #[arg(long)]
        stop: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum ClientsCommand {
    /// Sessions, paged.
    List {
        #[arg(long)]
        connected: Option<bool>,
        /// Only client ids containing this.
        #[arg(long)]
        like: Option<String>,
        /// Only clients whose id, user name or peer address contains this, whatever the case.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One session.
    Show { client_id: String },
    /// Disconnect a client (0x98); its session stays.
    Kick { client_id: String },
}

#[derive(Subcommand)]
pub(crate) enum ListCommand {
    List {
        /// Only this client's (topics: the routes of its subscriptions on this node).
        #[arg(long)]
        client_id: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum RetainedCommand {
    List,
    /// Clear a topic's retained message, cluster-wide. Any topic, spaces, `?`, `#` or `%` in it included: it is
    /// sent percent-encoded.
    Delete {
        topic: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ChaosCommand {
    /// Kill an actor: session CLIENT_ID, shard INDEX, cluster ACTOR (node-server, agent, forwarder,
    /// connector), bridge NAME or rule NAME.
    Kill { kind: String, target: String },
}

#[derive(Subcommand)]
pub(crate) enum TraceCommand {
    /// Stream one client's packets until interrupted.
    Client { client_id: String },
}

struct Api {
    base: String,
    auth: Option<String>,
    agent: ureq::Agent,
    shown: String,
}

/// A failure, as the one line printed.
struct Failed(String);

impl Api {
    fn new(args: &CtlArgs, read_timeout: Option<Duration>) -> Api {
        let auth = match (&args.token, &args.user) {
            (Some(t), _) => Some(format!("Bearer {t}")),
            (None, Some(u)) => Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(u))),
            (None, None) => None,
        };
        let mut builder = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(5));
        if let Some(t) = read_timeout {
            builder = builder.timeout_read(t);
        }
        Api {
            base: format!("http://{}/api/v1", args.api),
            auth,
            agent: builder.build(),
            shown: args.api.clone(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<ureq::Response, Failed> {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(auth) = &self.auth {
            request = request.set("Authorization", auth);
        }
        let result = match body {
            Some(b) => request.send_json(b),
            None => request.call(),
        };
        match result {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => {
                let detail = r
                    .into_json::<Value>()
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_default();
                Err(Failed(format!("ractmq ctl: the node answered {code}: {detail}")))
            }
            Err(ureq::Error::Transport(t)) => Err(Failed(format!(
                "ractmq ctl: cannot reach the API at {} ({}): is the node running, and is --api right?",
                self.shown,
                std::error::Error::source(&t)
                    .map(|e| e.to_string())
                    .or_else(|| t.message().map(str::to_string))
                    .unwrap_or_else(|| t.kind().to_string())
            ))),
        }
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failed> {
        self.call(method, path, body)?
            .into_json()
            .map_err(|e| Failed(format!("ractmq ctl: the node's answer is not JSON ({e})")))
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows(v: &Value, keys: &[&str]) -> Vec<Vec<String>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|item| keys.iter().map(|k| s(&item[*k])).collect())
                .collect()
        })
        .unwrap_or_default()
}

fn print_table(headers: &[&str], keys: &[&str], v: &Value) {
    print!("{}", table::render(headers, &rows(v, keys)));
}

fn print_pairs(v: &Value) {
    let pairs: Vec<Vec<String>> = v
        .as_object()
        .map(|o| o.iter().map(|(k, v)| vec![k.clone(), s(v)]).collect())
        .unwrap_or_default();
    print!("{}", table::render(&["FIELD", "VALUE"], &pairs));
}

/// Run one `ractmq ctl` command.
pub fn run(args: CtlArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(line)) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &CtlArgs) -> Result<(), Failed> {
    // A trace streams; leaving waits for the clients to go.
    let unbounded = matches!(
        args.command,
        CtlCommand::Trace(_) | CtlCommand::Cluster(ClusterCommand::Leave { .. })
    );
    let api = Api::new(args, (!unbounded).then_some(Duration::from_secs(30)));
    let out = Output { json: args.json };
    match &args.command {
        CtlCommand::Status => out.show(&api.json("GET", "/status", None)?, &print_pairs),
        CtlCommand::Cluster(ClusterCommand::Status) => cluster_status(&api, out)?,
        CtlCommand::Cluster(ClusterCommand::Leave { rate }) => {
            let path = rate.map_or("/cluster/leave".to_string(), |r| format!("/cluster/leave?rate={r}"));
            let v = api.json("POST", &path, None)?;
            out.show(&v, &|v| {
                let unconfirmed = v["unconfirmed"].as_array().map_or(0, Vec::len);
                if unconfirmed == 0 {
                    println!("{} left the cluster and is stopping", s(&v["node"]));
                } else {
                    println!(
                        "{} left the cluster and is stopping; not confirmed by {} (forget it there with `ractmq ctl cluster forget`)",
                        s(&v["node"]),
                        s(&v["unconfirmed"])
                    );
                }
            })
        }
        CtlCommand::Cluster(ClusterCommand::Forget { node }) => {
            let v = api.json("POST", &format!("/cluster/forget/{}", segment("node", node)?), None)?;
            out.show(&v, &|_| println!("forgot {node}"))
        }
        CtlCommand::Node(NodeCommand::Evacuate { rate, status, stop }) => {
            let v = if *status {
                api.json("GET", "/node/evacuate", None)?
            } else if *stop {
                api.json("DELETE", "/node/evacuate", None)?
            } else {
                let path = rate.map_or("/node/evacuate".to_string(), |r| format!("/node/evacuate?rate={r}"));
                api.json("POST", &path, None)?
            };
            out.show(&v, &print_pairs)
        }
        CtlCommand::Clients(command) => clients(&api, out, command)?,
        CtlCommand::Subscriptions(ListCommand::List { client_id }) => subscriptions(&api, out, client_id.as_deref())?,
        CtlCommand::Topics(ListCommand::List { client_id }) => topics(&api, out, client_id.as_deref())?,
        CtlCommand::Retained(command) => retained(&api, out, command)?,
        CtlCommand::Listeners => listeners(&api, out)?,
        CtlCommand::Data(command) => data::data(&api, out, command)?,
        CtlCommand::Bridges(command) => bridges::bridges(&api, out, command)?,
        CtlCommand::Rules(command) => rules::rules(&api, out, command)?,
        CtlCommand::Metrics => metrics(&api)?,
        CtlCommand::Chaos(ChaosCommand::Kill { kind, target }) => {
            let v = api.json("POST", "/chaos/kill", Some(json!({"kind": kind, "target": target})))?;
            out.show(&v, &|_| println!("killed {kind} {target}"))
        }
        CtlCommand::Supervision => supervision::supervision(&api, out)?,
        CtlCommand::Trace(TraceCommand::Client { client_id }) => trace_client(&api, client_id)?,
        CtlCommand::Users(command) => security::users(&api, out, command)?,
        CtlCommand::Banned(command) => security::banned(&api, out, command)?,
        CtlCommand::Acl(command) => security::acl(&api, out, command)?,
        CtlCommand::Flapping => security::flapping(&api, out)?,
    }
    Ok(())
}

/// How an answer is printed: the API's JSON with `--json`, a table (or a line) otherwise.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn show(self, v: &Value, table: &dyn Fn(&Value)) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            table(v);
        }
    }
}

fn cluster_status(api: &Api, out: Output) -> Result<(), Failed> {
    let v = api.json("GET", "/cluster", None)?;
    out.show(&v, &|v| {
        let keys = [
            "name",
            "state",
            "linked",
            "cluster_addr",
            "mqtt_addr",
            "last_heard_ms_ago",
            "queued_to",
        ];
        let headers = [
            "NODE",
            "STATE",
            "LINKED",
            "CLUSTER ADDRESS",
            "MQTT ADDRESS",
            "LAST HEARD (ms)",
            "QUEUED",
        ];
        let mut members = v["members"].clone();
        if let Some(a) = members.as_array_mut() {
            for m in a.iter_mut().filter(|m| m["is_self"] == json!(true)) {
                m["name"] = json!(format!("{} (this node)", s(&m["name"])));
            }
        }
        print_table(&headers, &keys, &members);
    });
    Ok(())
}

fn clients(api: &Api, out: Output, command: &ClientsCommand) -> Result<(), Failed> {
    match command {
        ClientsCommand::List {
            connected,
            like,
            search,
            page,
            limit,
        } => {
            let filters = ClientFilters {
                connected: *connected,
                like: like.as_deref(),
                search: search.as_deref(),
            };
            clients_list(api, out, filters, *page, *limit)?
        }
        ClientsCommand::Show { client_id } => out.show(
            &api.json("GET", &format!("/clients/{}", segment("client id", client_id)?), None)?,
            &print_pairs,
        ),
        ClientsCommand::Kick { client_id } => {
            let v = api.json(
                "DELETE",
                &format!("/clients/{}", segment("client id", client_id)?),
                None,
            )?;
            out.show(&v, &|_| println!("kicked {client_id}"))
        }
    }
    Ok(())
}

/// What `ctl clients list` narrows the list by.
struct ClientFilters<'a> {
    connected: Option<bool>,
    like: Option<&'a str>,
    search: Option<&'a str>,
}

fn clients_list(api: &Api, out: Output, filters: ClientFilters<'_>, page: usize, limit: usize) -> Result<(), Failed> {
    let mut path = format!("/clients?page={page}&limit={limit}");
    if let Some(c) = filters.connected {
        path += &format!("&connected={c}");
    }
    if let Some(l) = filters.like {
        path += &format!("&like={}", component(l));
    }
    if let Some(q) = filters.search {
        path += &format!("&q={}", component(q));
    }
    let v = api.json("GET", &path, None)?;
    out.show(&v, &|v| {
        let keys = [
            "client_id",
            "connected",
            "protocol",
            "peer",
            "subscriptions",
            "queued",
            "inflight",
        ];
        let headers = [
            "CLIENT ID",
            "CONNECTED",
            "PROTOCOL",
            "PEER",
            "SUBSCRIPTIONS",
            "QUEUED",
            "INFLIGHT",
        ];
        print_table(&headers, &keys, &v["data"]);
        let meta = &v["meta"];
        println!(
            "page {} of {} clients ({} per page)",
            s(&meta["page"]),
            s(&meta["count"]),
            s(&meta["limit"])
        );
    });
    Ok(())
}

fn subscriptions(api: &Api, out: Output, client_id: Option<&str>) -> Result<(), Failed> {
    let path = match client_id {
        Some(c) => format!("/subscriptions?client_id={}", component(c)),
        None => "/subscriptions".into(),
    };
    let v = api.json("GET", &path, None)?;
    out.show(&v, &|v| {
        print_table(&["CLIENT ID", "FILTER", "QOS"], &["client_id", "filter", "qos"], v)
    });
    Ok(())
}

fn topics(api: &Api, out: Output, client_id: Option<&str>) -> Result<(), Failed> {
    let path = match client_id {
        Some(c) => format!("/topics?client_id={}", component(c)),
        None => "/topics".into(),
    };
    let v = api.json("GET", &path, None)?;
    out.show(&v, &|v| print_table(&["TOPIC FILTER", "NODE"], &["topic", "node"], v));
    Ok(())
}

fn retained(api: &Api, out: Output, command: &RetainedCommand) -> Result<(), Failed> {
    match command {
        RetainedCommand::List => {
            let v = api.json("GET", "/retained", None)?;
            out.show(&v, &|v| {
                print_table(
                    &["TOPIC", "QOS", "BYTES", "PAYLOAD"],
                    &["topic", "qos", "payload_bytes", "payload"],
                    v,
                )
            })
        }
        RetainedCommand::Delete { topic } => {
            let v = api.json("DELETE", &format!("/retained/{}", segment("topic", topic)?), None)?;
            out.show(&v, &|_| println!("deleted the retained message of {topic}"))
        }
    }
    Ok(())
}

fn listeners(api: &Api, out: Output) -> Result<(), Failed> {
    let v = api.json("GET", "/listeners", None)?;
    let keys = ["name", "bound", "running", "connections", "max_connections"];
    out.show(&v, &|v| {
        print_table(&["LISTENER", "BOUND", "RUNNING", "CONNECTIONS", "MAX"], &keys, v)
    });
    Ok(())
}

/// The Prometheus exposition, printed as it is (never JSON).
fn metrics(api: &Api) -> Result<(), Failed> {
    let text = api
        .call("GET", "/metrics", None)?
        .into_string()
        .map_err(|e| Failed(format!("ractmq ctl: cannot read the answer ({e})")))?;
    print!("{text}");
    Ok(())
}

/// Print the client's packets as the node streams them, until the stream or stdout ends.
fn trace_client(api: &Api, client_id: &str) -> Result<(), Failed> {
    let path = format!("/trace/clients/{}", segment("client id", client_id)?);
    let response = api.call("GET", &path, None)?;
    let mut out = std::io::stdout();
    for line in BufReader::new(response.into_reader()).lines() {
        let Ok(line) = line else { break };
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
    Ok(())
}

/// What a path segment or a query value keeps as it is: RFC 3986's unreserved characters. Everything else is
/// encoded, `/` too, so that a topic `a/b c` is the one segment `a%2Fb%20c`, which the API decodes back.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` as a query value.
fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// `text` (a topic, a client id: `what`) as one path segment. `.` and `..` cannot be one: URL parsers resolve
/// them as the current and the parent folder, encoded or not, so the request would name another resource.
/// A TOML or JSON file (a bridge, a rule), as JSON for the API.
fn read_table(file: &std::path::Path) -> Result<Value, Failed> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failed(format!("ractmq ctl: cannot read {}: {e}", file.display())))?;
    let is_json = file.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(&text).map_err(|e| Failed(format!("ractmq ctl: {} is not JSON: {e}", file.display())))
    } else {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| Failed(format!("ractmq ctl: {} is not TOML: {e}", file.display())))?;
        serde_json::to_value(table).map_err(|e| Failed(format!("ractmq ctl: {}: {e}", file.display())))
    }
}

fn segment(what: &str, text: &str) -> Result<String, Failed> {
    if text == "." || text == ".." {
        return Err(Failed(format!(
            "ractmq ctl: the {what} '{text}' cannot be named in the API's URLs"
        )));
    }
    Ok(component(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_keeps_the_unreserved_and_encodes_the_rest() {
        let encoded = |t: &str| segment("topic", t).ok().unwrap();
        assert_eq!(encoded("a/b c/#x"), "a%2Fb%20c%2F%23x");
        assert_eq!(encoded("50%?q=1&r+s"), "50%25%3Fq%3D1%26r%2Bs");
        assert_eq!(encoded("Az09-_.~"), "Az09-_.~");
        assert_eq!(encoded("..."), "...");
        assert_eq!(encoded("température"), "temp%C3%A9rature");
        assert!(segment("topic", "..").is_err() && segment("topic", ".").is_err());
    }
}
