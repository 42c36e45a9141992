//! The `ractmq` command: a thin shell over the broker library. `start` runs a node from its settings (see
//! `settings/`: defaults, file, environment, flags), `ctl` talks to a node's REST API, `config` checks and
//! prints configuration files.

mod settings;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use ractmq::{Broker, Cluster, OverflowPolicy, SharedStrategy};

use settings::layers;
use settings::reference::flag_keys;
use settings::{Built, Settings};

#[derive(Parser)]
#[command(
    name = "ractmq",
    version,
    about = "An MQTT broker built as a supervised actor system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker node (embedded defaults: MQTT on 0.0.0.0:1883, REST API on 127.0.0.1:18083).
    Start(Box<StartArgs>),
    /// Watch and steer a running node through its REST API.
    Ctl(Box<ractmq_admin::ctl::CtlArgs>),
    /// Configuration files: check one, or print one with every default.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check FILE (with the RACTMQ_... environment) as `ractmq start -c FILE` would, without starting.
    Check { file: PathBuf },
    /// Print a complete ractmq.toml with every key at its default, each explained.
    Defaults,
    /// Print the configuration reference (docs/configuration.md).
    Reference,
}

/// The flags of `ractmq start`. Each overrides a key of the configuration (docs/configuration.md); only flags
/// given explicitly count, so a file's values are not undone by the flags' defaults.
#[derive(clap::Args)]
struct StartArgs {
    /// The configuration file (TOML); every key has a default, see `ractmq config defaults`.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Log filter, e.g. "debug" or "info,ractmq_cluster=debug" (RUST_LOG, when set, wins).
    #[arg(long, default_value = "info,ractor_cluster=error")]
    log_level: String,
    /// Log lines as text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
    /// Address of the MQTT/TCP listener.
    #[arg(long, default_value = "0.0.0.0:1883")]
    listen: SocketAddr,
    /// Address of an MQTT over TLS listener, e.g. 0.0.0.0:8883; needs --tls-cert and --tls-key.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// Certificate chain (PEM) of the TLS and secure WebSocket listeners.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Require clients on TLS listeners to show a certificate signed by this CA (PEM).
    #[arg(long)]
    tls_client_ca: Option<std::path::PathBuf>,
    /// With --tls-client-ca: the client certificate's cn or san becomes the user name and authenticates the
    /// client (unset: the CONNECT's user name and password).
    #[arg(long, value_parser = ["cn", "san"])]
    tls_cert_as_username: Option<String>,
    /// Address of an MQTT over WebSocket listener, e.g. 0.0.0.0:8083.
    #[arg(long)]
    ws_listen: Option<SocketAddr>,
    /// Address of an MQTT over secure WebSocket listener, e.g. 0.0.0.0:8084; needs --tls-cert and --tls-key.
    #[arg(long)]
    wss_listen: Option<SocketAddr>,
    /// The HTTP path WebSocket clients connect to.
    #[arg(long, default_value = "/mqtt")]
    ws_path: String,
    /// Partitions of the subscription index (one actor each).
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Largest packet accepted from a client, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_packet_size: u32,
    /// Unacknowledged QoS 1/2 messages in flight to one client.
    #[arg(long, default_value_t = 100)]
    max_inflight: u16,
    /// Messages queued for a connected client beyond its inflight window. While the queue is full, clients
    /// publishing to it wait, until it drains to half or the client is stalled (--stall-timeout-ms).
    #[arg(long, default_value_t = 1000)]
    max_queue: usize,
    /// Bytes queued for a connected client (payload, topic and a fixed overhead per message); full at either bound.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_queue_bytes: usize,
    /// What a connected client's full queue does once the client is stalled (its queue did not drain to half
    /// within --stall-timeout-ms): drop-oldest, drop-newest or disconnect. Until then publishers wait.
    #[arg(long, default_value = "drop-oldest")]
    queue_overflow: OverflowPolicy,
    /// Milliseconds a connected client's full queue may take to drain to half while its publishers wait; past
    /// it the client is stalled, publishers go on and --queue-overflow applies.
    #[arg(long, default_value_t = 5000)]
    stall_timeout_ms: u64,
    /// Queue settings for some clients, as KEY=VALUE pairs separated by commas: matchers listener
    /// (tcp, tls, ws, wss), client_id and username (globs), settings max_queue, max_queue_bytes, queue_overflow
    /// and stall_timeout_ms, e.g. 'client_id=sensor-*,queue_overflow=disconnect'. Repeat for more rules: the
    /// first that matches a client supplies the settings it names, the node-wide ones the rest.
    #[arg(long = "queue-rule", value_name = "RULE")]
    queue_rule: Vec<String>,
    /// Messages queued for a disconnected persistent session.
    #[arg(long, default_value_t = 1000)]
    max_offline_queue: usize,
    /// Bytes queued for a disconnected persistent session.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_offline_queue_bytes: usize,
    /// What happens when an offline queue is full: drop-oldest or drop-newest.
    #[arg(long, default_value = "drop-oldest")]
    offline_overflow: OverflowPolicy,
    /// Subscriptions one client may hold (more are refused with 0x97).
    #[arg(long, default_value_t = 10_000)]
    max_subscriptions: usize,
    /// Topics with a retained message, broker-wide (retained messages for new topics beyond it are dropped).
    #[arg(long, default_value_t = 1_000_000)]
    max_retained: usize,
    /// Connections accepted at once.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Sockets that may wait for their CONNECT at once, over all peers; more are closed at accept.
    #[arg(long, default_value_t = 4096)]
    max_handshakes: usize,
    /// Sockets from one peer address that may wait for their CONNECT at once; more are closed at accept.
    #[arg(long, default_value_t = 1024)]
    max_handshakes_per_peer: usize,
    /// Seconds a socket has to finish TLS, the WebSocket upgrade and its CONNECT.
    #[arg(long, default_value_t = 10)]
    connect_timeout_s: u64,
    /// Clients each listener may have connected at once (0: only --max-connections).
    #[arg(long, default_value_t = 0)]
    max_connections_per_listener: usize,
    /// Clients one peer address may have connected at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_connections_per_peer: usize,
    /// Connections each listener accepts per second (0: no limit); faster ones wait in the listen backlog.
    #[arg(long, default_value_t = 0)]
    listener_connections_per_s: u32,
    /// PUBLISH packets per second read from one client (0: no limit); a faster client is read more slowly.
    #[arg(long, default_value_t = 0)]
    client_messages_per_s: u32,
    /// Bytes per second read from one client (0: no limit); a faster client is read more slowly.
    #[arg(long, default_value_t = 0)]
    client_bytes_per_s: u32,
    /// Resident memory, as a percentage of the machine's, above which the node refuses new connections and
    /// then drops its largest queues (0: off).
    #[arg(long, default_value_t = 80)]
    memory_high_watermark_pct: u8,
    /// Publish every message a subscriber's full queue drops on $dlq/$queue/{client id}/{topic} (QoS 1, user
    /// property reason).
    #[arg(long)]
    dead_letter_dropped: bool,
    /// Seconds between $SYS publications (0 disables them).
    #[arg(long, default_value_t = 10)]
    sys_interval: u64,
    /// Highest QoS the broker accepts and grants (0, 1 or 2); announced in CONNACK as Maximum QoS.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    max_qos: u8,
    /// Retained messages are served; when false a retained PUBLISH is refused (0x9A) and CONNACK says so.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    retain_available: bool,
    /// Wildcard subscriptions are served; when false they get 0xA2 and CONNACK says so.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    wildcard_subscriptions: bool,
    /// Subscription Identifiers are served; when false a SUBSCRIBE with one is disconnected with 0xA1.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    subscription_identifiers: bool,
    /// Topic aliases an MQTT 5 client may use towards the broker (its Topic Alias Maximum).
    #[arg(long, default_value_t = 64)]
    topic_alias_maximum: u16,
    /// QoS 2 messages an MQTT 5 client may have unreleased towards the broker (its Receive Maximum).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..))]
    receive_maximum: u16,
    /// Longest keepalive, in seconds, an MQTT 5 client may use: one asking for more, or for none, is told this
    /// one as Server Keep Alive in CONNACK.
    #[arg(long)]
    server_keep_alive: Option<u16>,
    /// Response Information for MQTT 5 clients that request it; `{clientid}` is replaced by the client id
    /// (e.g. "replies/{clientid}/").
    #[arg(long)]
    response_information: Option<String>,
    /// Refuse MQTT 5 clients with Use another server (0x9C) naming this Server Reference (HOST:PORT).
    #[arg(long)]
    redirect_to: Option<String>,
    /// With --redirect-to: say Server moved (0x9D) instead, a permanent redirection.
    #[arg(long)]
    redirect_permanent: bool,
    /// Topic aliases the broker assigns towards an MQTT 5 client (at most the client's Topic Alias Maximum).
    #[arg(long, default_value_t = 64)]
    outbound_topic_aliases: u16,
    /// Serve shared subscriptions ($share/GROUP/FILTER); when false they are refused with 0x9E.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    shared_subscriptions: bool,
    /// How a shared subscription group ($share/GROUP/FILTER) picks the member for each message:
    /// round-robin, random, sticky, hash-clientid (of the publisher) or hash-topic.
    #[arg(long, default_value = "round-robin")]
    shared_strategy: SharedStrategy,
    /// Milliseconds a connected client may be idle before its session actor hibernates (0: never). A
    /// hibernated session keeps its connection and wakes on the next packet or delivery.
    #[arg(long, default_value_t = 1000)]
    hibernate_after_ms: u64,
    /// Where the node keeps persistent sessions, retained messages, users and bans (created if missing).
    #[arg(long, default_value = "data")]
    data_dir: std::path::PathBuf,
    /// disk: acknowledge QoS 1/2 messages for persistent sessions once committed to the data dir; memory:
    /// write nothing (a restart loses sessions and retained messages).
    #[arg(long, default_value = "disk", value_parser = ["disk", "memory"])]
    durability: String,
    /// Accept clients that send neither user name nor password: auto (yes, unless a user or an authentication
    /// source is configured), true or false.
    #[arg(long, default_value = "auto", value_parser = ["auto", "true", "false"])]
    allow_anonymous: String,
    /// The built-in user database's file (written at every change; `ractmq ctl users` manages it).
    #[arg(long)]
    user_db: Option<std::path::PathBuf>,
    /// A Mosquitto password file (from mosquitto_passwd), asked after the built-in user database.
    #[arg(long)]
    password_file: Option<std::path::PathBuf>,
    /// Who may publish and subscribe to what: a Mosquitto acl_file or the native TOML form (docs/security.md).
    #[arg(long)]
    acl_file: Option<std::path::PathBuf>,
    /// Accept JWTs signed with this HMAC secret as passwords.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Accept JWTs signed with the key in this PEM public key file.
    #[arg(long)]
    jwt_public_key: Option<std::path::PathBuf>,
    /// Accept JWTs signed with a key of this JWKS file.
    #[arg(long)]
    jwt_jwks: Option<std::path::PathBuf>,
    /// Where clients put their JWT: password or username.
    #[arg(long, default_value = "password", value_parser = ["password", "username"])]
    jwt_from: String,
    /// Ask this HTTP service whether a client may connect (POST JSON, as EMQX's HTTP authentication).
    #[arg(long)]
    auth_http_url: Option<String>,
    /// Ask this HTTP service whether a client may publish or subscribe, for what the ACL file and JWT claims
    /// leave undecided (POST JSON, as EMQX's HTTP authorizer).
    #[arg(long)]
    http_authz_url: Option<String>,
    /// Ban a client id that connects too often (see --flapping-max-count).
    #[arg(long)]
    flapping_detect: bool,
    /// Connects within --flapping-window-s that ban a client id.
    #[arg(long, default_value_t = 15)]
    flapping_max_count: u32,
    /// The flapping detection window, in seconds.
    #[arg(long, default_value_t = 60)]
    flapping_window_s: u64,
    /// How long flapping detection bans a client id, in seconds.
    #[arg(long, default_value_t = 300)]
    flapping_ban_s: u64,
    /// A user allowed to connect, as NAME:PASSWORD (repeat for more users), with the password in CONNECT or by
    /// MQTT 5 enhanced authentication with SCRAM-SHA-256.
    #[arg(long = "user", value_parser = parse_user)]
    users: Vec<(String, String)>,
    /// This node's name in a cluster (letters, digits, '.', '_', '-'). Turns clustering on, with
    /// --cluster-listen and --cookie; without it the broker is a single node.
    #[arg(long, requires_all = ["cluster_listen", "cookie"])]
    node_name: Option<String>,
    /// Where this node listens for other nodes (not MQTT clients), e.g. 127.0.0.1:4370: an IP and port that
    /// the other nodes can dial.
    #[arg(long, requires = "node_name")]
    cluster_listen: Option<SocketAddr>,
    /// Where the other nodes dial this node, when not --cluster-listen (behind a port mapping or a proxy).
    #[arg(long, requires = "node_name")]
    cluster_advertise: Option<SocketAddr>,
    /// A node to join through, as NAME@IP:PORT or NAME@HOST:PORT, e.g. n2@127.0.0.1:4371 or
    /// n2@node2.example:4371 (repeat for more). A host name is resolved again at every redial, so a node back
    /// at another address is found. One reachable seed is enough: the rest of the cluster is learned from it.
    /// A seed that is this node is skipped.
    #[arg(long = "seed", value_parser = ractmq_cluster::parse_seed, requires = "node_name")]
    seeds: Vec<ractmq_cluster::Seed>,
    /// How peers are found besides --seed: static (the seeds only) or dns (every A/AAAA record of
    /// --discovery-name is a node listening on --discovery-port, resolved again every 5 s; e.g. a Kubernetes
    /// headless service).
    #[arg(long, value_parser = ["static", "dns"], default_value = "static", requires = "node_name")]
    discovery: String,
    /// With --discovery dns: the DNS name whose A/AAAA records are the cluster's nodes.
    #[arg(long, requires = "node_name")]
    discovery_name: Option<String>,
    /// With --discovery dns: the port the nodes found by DNS listen on for other nodes (0: this node's
    /// --cluster-listen port).
    #[arg(long, default_value_t = 0, requires = "node_name")]
    discovery_port: u16,
    /// The secret every node of the cluster shares (or set RACTMQ_COOKIE, which keeps it out of `ps`).
    #[arg(long, env = "RACTMQ_COOKIE", hide_env_values = true)]
    cookie: Option<String>,
    /// Milliseconds between two heartbeats to every other node.
    #[arg(long, default_value_t = 1000)]
    heartbeat_interval_ms: u64,
    /// Milliseconds without a heartbeat after which a node is marked down (and its routes dropped).
    #[arg(long, default_value_t = 5000)]
    down_after_ms: u64,
    /// TLS between nodes: this node's certificate (PEM), with its node name among its DNS names. With
    /// --cluster-tls-key and --cluster-tls-ca; every node then needs a certificate from that CA.
    #[arg(long, requires_all = ["cluster_tls_key", "cluster_tls_ca", "node_name"])]
    cluster_tls_cert: Option<std::path::PathBuf>,
    /// The private key of --cluster-tls-cert (PEM).
    #[arg(long, requires = "cluster_tls_cert")]
    cluster_tls_key: Option<std::path::PathBuf>,
    /// The certificate authority of the cluster (PEM): peers must show a certificate it signed.
    #[arg(long, requires = "cluster_tls_cert")]
    cluster_tls_ca: Option<std::path::PathBuf>,
    /// Where the REST API (and Prometheus /metrics) listens; port 0 picks a free one, logged at start.
    #[arg(long, default_value = "127.0.0.1:18083")]
    api_listen: SocketAddr,
    /// A bearer token every API request must carry (or set RACTMQ_API_TOKEN). Needed to listen beyond loopback.
    #[arg(long, env = "RACTMQ_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// A user allowed into the API with basic authentication, as NAME:PASSWORD (repeat for more).
    #[arg(long = "api-user", value_parser = parse_user)]
    api_users: Vec<(String, String)>,
    /// Serve the chaos API (killing sessions, shards and cluster actors on purpose).
    #[arg(long)]
    api_chaos: bool,
    /// Milliseconds a stopping node (SIGTERM, Ctrl-C) waits for its clients to be told and their queued
    /// messages written before it closes what is left.
    #[arg(long, default_value_t = 5000)]
    drain_timeout_ms: u64,
    /// Do not serve the REST API.
    #[arg(long, conflicts_with_all = ["api_token", "api_users", "api_chaos"])]
    no_api: bool,
    /// Messages queued towards one other node and not yet acknowledged by it. Past half of it, clients
    /// publishing to that node are held until it drains; when full, messages for it are dropped (and counted).
    #[arg(long, default_value_t = 1_000_000)]
    forward_queue: usize,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    settings::split_name_password(s).ok_or_else(|| format!("'{s}' is not NAME:PASSWORD"))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Start(args) => {
            let start_matches = matches.subcommand_matches("start").expect("the start subcommand");
            let built = match settings_of(args.config.as_deref(), start_matches).and_then(|s| s.build()) {
                Ok(built) => built,
                Err(e) => {
                    eprintln!("ractmq: {e}");
                    return ExitCode::FAILURE;
                }
            };
            init_logging(&built);
            runtime().block_on(start(built))
        }
        Command::Ctl(args) => ractmq_admin::ctl::run(*args),
        Command::Config(ConfigCommand::Defaults) => {
            print!("{}", settings::reference::defaults_toml());
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Reference) => {
            let cli = Cli::command();
            let start = cli.find_subcommand("start").expect("the start subcommand");
            print!("{}", settings::reference::markdown(start));
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let checked = layers::load(Some(&file), std::env::vars())
                .and_then(layers::settings)
                .and_then(|s| s.build())
                .and_then(|b| match b.cluster {
                    // Reads the TLS files too, as a start would.
                    Some(c) => Cluster::new(c).map(|_| ()),
                    None => Ok(()),
                });
            match checked {
                Ok(()) => {
                    println!("{}: OK", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ractmq: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The settings of `ractmq start`: defaults, then the file, the environment, and the flags given.
fn settings_of(file: Option<&std::path::Path>, matches: &ArgMatches) -> Result<Settings, String> {
    let mut table = layers::load(file, std::env::vars())?;
    let mut given = Vec::new();
    for (id, _) in flag_keys() {
        let explicit = matches!(
            matches.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        if explicit {
            let raw: Vec<String> = matches
                .get_raw(&id)
                .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            given.push((id, raw));
        }
    }
    layers::apply_flags(&mut table, &given)?;
    layers::settings(table)
}

fn init_logging(built: &Built) {
    // ractor_cluster narrates every link at info level and every closed one as a warning; ractmq says what
    // matters (joins, downs, why a node cannot join) itself, hence the default filter's ractor_cluster=error.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&built.log_level));
    let colours = log_colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    if built.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
}

/// Colours in the logs only on a terminal: a file, a pipe or journald gets plain lines. `NO_COLOR` set to
/// anything but the empty string turns them off there too (<https://no-color.org>).
fn log_colours(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

async fn start(built: Built) -> ExitCode {
    let Built {
        mut broker,
        bridges,
        rules,
        cluster,
        api,
        drain_timeout,
        ..
    } = built;
    let mut clustered = None;
    if let Some(cluster) = cluster {
        match Cluster::new(cluster) {
            Ok(cluster) => {
                cluster.install(&mut broker);
                clustered = Some(cluster);
            }
            Err(e) => {
                eprintln!("ractmq: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let broker = match Broker::start(broker).await {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("ractmq: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bridges = match ractmq::Bridges::start(broker.view(), broker.bridges_tree().clone(), &bridges).await {
        Ok(bridges) => bridges,
        Err(e) => {
            eprintln!("ractmq: {e}");
            broker.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let rules = match ractmq::Rules::start(broker.view(), broker.rules_tree().clone(), &rules).await {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("ractmq: {e}");
            broker.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    // Rules start after the broker (their hooks need it): only now does the node apply what the cluster's
    // replicated rules hold, read from the store before the node joined and merged with its peers' since.
    if let Some(cluster) = &clustered {
        ractmq::replicate_rules(cluster, &rules).await;
    }
    let api_server = match api {
        Some(api) => match ractmq_admin::start(api, broker.view(), clustered, Some(bridges), Some(rules)).await {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("ractmq: {e}");
                broker.shutdown().await;
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    tracing::info!(addr = %broker.mqtt_addr(), "ractmq node running; Ctrl-C or SIGTERM stops it");
    // SIGHUP reloads the ACL and password files, as Mosquitto's does; clients stay connected.
    let view = broker.view();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match view.reload_security() {
                Ok(what) => tracing::info!("SIGHUP: reloaded {what}"),
                Err(e) => tracing::error!("SIGHUP: {e}; the rules in force are unchanged"),
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    // `ractmq ctl cluster leave` ends with the process stopping, as SIGTERM does.
    let left = async {
        match &api_server {
            Some(api) => api.left().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = left => {}
        why = broker.stopped() => {
            // Nothing serves clients any more: say why in one line and fail, so that a process supervisor
            // (systemd, Kubernetes) restarts the node.
            eprintln!("ractmq: {why}");
            broker.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    tracing::info!("stopping: no new connections; disconnecting clients (MQTT 5: 0x8B Server shutting down)");
    let left = broker.drain(drain_timeout).await;
    if left > 0 {
        tracing::warn!("{left} clients were still connected after the drain timeout; closing them");
    }
    broker.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ractmq start --help` shows the flags' defaults: they must be the configuration's.
    #[test]
    fn every_flag_default_is_the_configuration_default() {
        let defaults = toml::Table::try_from(Settings::default()).unwrap();
        let cli = Cli::command();
        let start = cli.find_subcommand("start").unwrap();
        for (id, key) in flag_keys() {
            let arg = start
                .get_arguments()
                .find(|a| a.get_id().as_str() == id)
                .unwrap_or_else(|| panic!("flag {id} of {key} exists"));
            let Some(shown) = arg.get_default_values().first() else {
                continue;
            };
            let (section, name) = key.split_once('.').unwrap();
            let value = &defaults[section][name];
            let expected = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(shown.to_string_lossy(), expected, "--{id} and {key}");
        }
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(log_colours(true, Some("".into())), "an empty NO_COLOR is not set");
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some("".into())));
    }

    /// The reference names each flag as it is typed, which is not always its id (`users` is `--user`).
    #[test]
    fn the_reference_names_each_flag_by_its_long_name() {
        let cli = Cli::command();
        let start = cli.find_subcommand("start").unwrap();
        // Each id is a flag of start with a long name (flag_name panics otherwise).
        for (id, _) in flag_keys() {
            settings::reference::flag_name(start, &id);
        }
        let reference = settings::reference::markdown(start);
        for (key, flag) in [
            ("auth.users", "--user"),
            ("cluster.seeds", "--seed"),
            ("api.users", "--api-user"),
            ("api.enabled", "--no-api"),
            ("limits.queue_rules", "--queue-rule"),
        ] {
            let row = reference
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("a row for {key}"));
            // | key | default | flag | environment | meaning |
            let cell = row.split(" | ").nth(2).unwrap();
            assert_eq!(cell, format!("`{flag}`"), "{row}");
        }
    }
}
