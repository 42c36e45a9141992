//! Every configuration key, the flag that overrides it and what it means, listed once: the source of
//! `ractmq config defaults` (a complete, commented ractmq.toml) and of docs/configuration.md.

use toml::{Table, Value};

use super::Settings;

/// (key, flag id of `ractmq start` that overrides it, meaning). The id is clap's, the field's name, which is
/// not always the flag as typed (`users` is `--user`): see [`flag_name`].
pub const KEYS: &[(&str, Option<&str>, &str)] = &[
    ("mqtt.listen", Some("listen"), "Address of the MQTT/TCP listener."),
    (
        "mqtt.tls_listen",
        Some("tls_listen"),
        "Address of the MQTT over TLS listener, e.g. 0.0.0.0:8883 (empty: none).",
    ),
    (
        "mqtt.tls_cert",
        Some("tls_cert"),
        "The TLS and secure WebSocket listeners' certificate chain (PEM).",
    ),
    (
        "mqtt.tls_key",
        Some("tls_key"),
        "The private key of mqtt.tls_cert (PEM).",
    ),
    (
        "mqtt.tls_client_ca",
        Some("tls_client_ca"),
        "Clients on TLS listeners must show a certificate this CA signed (PEM; empty: no client certificates).",
    ),
    (
        "mqtt.tls_cert_as_username",
        Some("tls_cert_as_username"),
        "With tls_client_ca: the client certificate's cn or san becomes the user name and authenticates the client (empty: the CONNECT's).",
    ),
    (
        "mqtt.ws_listen",
        Some("ws_listen"),
        "Address of the MQTT over WebSocket listener, e.g. 0.0.0.0:8083 (empty: none).",
    ),
    (
        "mqtt.wss_listen",
        Some("wss_listen"),
        "Address of the MQTT over secure WebSocket (TLS) listener, e.g. 0.0.0.0:8084 (empty: none).",
    ),
    (
        "mqtt.ws_path",
        Some("ws_path"),
        "The HTTP path WebSocket clients connect to.",
    ),
    (
        "mqtt.max_connections",
        Some("max_connections"),
        "Clients connected at once; more are refused.",
    ),
    (
        "mqtt.max_handshakes",
        Some("max_handshakes"),
        "Sockets that may wait for their CONNECT at once, over all peers; more are closed at accept.",
    ),
    (
        "mqtt.max_handshakes_per_peer",
        Some("max_handshakes_per_peer"),
        "Sockets from one peer address that may wait for their CONNECT at once; more are closed at accept.",
    ),
    (
        "mqtt.max_connections_per_listener",
        Some("max_connections_per_listener"),
        "Clients each listener may have connected at once (0: only max_connections); more get CONNACK Quota exceeded.",
    ),
    (
        "mqtt.max_connections_per_peer",
        Some("max_connections_per_peer"),
        "Clients one peer address may have connected at once (0: no limit); more get CONNACK Quota exceeded.",
    ),
    (
        "mqtt.listener_connections_per_s",
        Some("listener_connections_per_s"),
        "Connections each listener accepts per second (0: no limit); faster ones wait in the listen backlog.",
    ),
    (
        "mqtt.connect_timeout_s",
        Some("connect_timeout_s"),
        "Seconds a socket has to finish TLS, the WebSocket upgrade and its CONNECT (and AUTH exchange).",
    ),
    (
        "mqtt.shards",
        Some("shards"),
        "Partitions of the subscription index (one actor each).",
    ),
    (
        "limits.max_packet_size",
        Some("max_packet_size"),
        "Largest packet accepted from a client, in bytes.",
    ),
    (
        "limits.max_inflight",
        Some("max_inflight"),
        "Unacknowledged QoS 1/2 messages in flight to one client.",
    ),
    (
        "limits.max_queue",
        Some("max_queue"),
        "Messages queued for a connected client beyond its inflight window.",
    ),
    (
        "limits.max_queue_bytes",
        Some("max_queue_bytes"),
        "Bytes queued for a connected client (payload, topic and a fixed overhead per message).",
    ),
    (
        "limits.queue_overflow",
        Some("queue_overflow"),
        "What a stalled client's full queue does (see stall_timeout_ms): drop-oldest, drop-newest or disconnect.",
    ),
    (
        "limits.stall_timeout_ms",
        Some("stall_timeout_ms"),
        "Milliseconds a connected client's full queue may take to drain to half while its publishers wait; past \
         it the client is stalled, publishers go on and queue_overflow applies.",
    ),
    (
        "limits.max_offline_queue",
        Some("max_offline_queue"),
        "Messages queued for a disconnected persistent session.",
    ),
    (
        "limits.max_offline_queue_bytes",
        Some("max_offline_queue_bytes"),
        "Bytes queued for a disconnected persistent session.",
    ),
    (
        "limits.offline_overflow",
        Some("offline_overflow"),
        "When an offline queue is full: drop-oldest or drop-newest.",
    ),
    (
        "limits.max_subscriptions",
        Some("max_subscriptions"),
        "Subscriptions one client may hold (more get 0x97).",
    ),
    (
        "limits.max_retained",
        Some("max_retained"),
        "Topics with a retained message; retained messages for new topics beyond it are dropped.",
    ),
    (
        "limits.receive_maximum",
        Some("receive_maximum"),
        "QoS 2 messages an MQTT 5 client may have unreleased towards the broker.",
    ),
    (
        "limits.topic_alias_maximum",
        Some("topic_alias_maximum"),
        "Topic aliases an MQTT 5 client may use towards the broker.",
    ),
    (
        "limits.outbound_topic_aliases",
        Some("outbound_topic_aliases"),
        "Topic aliases the broker assigns towards an MQTT 5 client.",
    ),
    (
        "limits.client_messages_per_s",
        Some("client_messages_per_s"),
        "PUBLISH packets per second read from one client (0: no limit); a faster client is read more slowly, nothing is dropped.",
    ),
    (
        "limits.memory_high_watermark_pct",
        Some("memory_high_watermark_pct"),
        "Resident memory, as a percentage of the machine's, above which the node refuses new connections and then drops its largest queues (0: off).",
    ),
    (
        "limits.dead_letter_dropped",
        Some("dead_letter_dropped"),
        "Publish every message a subscriber's full queue drops on $dlq/$queue/{client id}/{topic} (QoS 1, user property reason).",
    ),
    (
        "limits.client_bytes_per_s",
        Some("client_bytes_per_s"),
        "Bytes per second read from one client (0: no limit); a faster client is read more slowly, nothing is dropped.",
    ),
    (
        "limits.queue_rules",
        Some("queue_rule"),
        "Per-client queue settings, in order: the first rule that matches a client supplies the settings it \
         names, the node-wide keys the rest (see \"Per-client queue rules\" in docs/configuration.md).",
    ),
    (
        "features.max_qos",
        Some("max_qos"),
        "Highest QoS accepted and granted (0, 1 or 2).",
    ),
    (
        "features.retain_available",
        Some("retain_available"),
        "Serve retained messages.",
    ),
    (
        "features.wildcard_subscriptions",
        Some("wildcard_subscriptions"),
        "Serve wildcard subscriptions.",
    ),
    (
        "features.subscription_identifiers",
        Some("subscription_identifiers"),
        "Serve subscription identifiers.",
    ),
    (
        "features.shared_subscriptions",
        Some("shared_subscriptions"),
        "Serve shared subscriptions ($share/GROUP/FILTER).",
    ),
    (
        "features.shared_strategy",
        Some("shared_strategy"),
        "How a shared group picks a member: round-robin, random, sticky, hash-clientid or hash-topic.",
    ),
    (
        "features.server_keep_alive",
        Some("server_keep_alive"),
        "Longest keepalive in seconds an MQTT 5 client may use (0: no cap).",
    ),
    (
        "features.response_information",
        Some("response_information"),
        "Response Information for MQTT 5 clients that ask; {clientid} is replaced (empty: none).",
    ),
    (
        "features.redirect_to",
        Some("redirect_to"),
        "Refuse MQTT 5 clients with 0x9C naming this server (HOST:PORT; empty: no redirection).",
    ),
    (
        "features.redirect_permanent",
        Some("redirect_permanent"),
        "With redirect_to: say Server moved (0x9D) instead.",
    ),
    (
        "session.hibernate_after_ms",
        Some("hibernate_after_ms"),
        "Milliseconds a connected client may be idle before its session actor hibernates (0: never).",
    ),
    (
        "session.data_dir",
        Some("data_dir"),
        "Where the node keeps persistent sessions, their queued and in-flight messages, retained messages, users and bans (one store file; created if missing). Two nodes cannot share one. `ractmq ctl data stats` shows what it holds.",
    ),
    (
        "session.durability",
        Some("durability"),
        "disk: a QoS 1/2 message for a persistent session (or retained) is acknowledged once it is committed in the data dir, and a restart or a crash loses nothing acknowledged; memory: nothing is written, a restart loses sessions and retained messages.",
    ),
    (
        "auth.allow_anonymous",
        Some("allow_anonymous"),
        "Accept clients that send neither user name nor password: auto (yes, unless a user or an authentication source is configured), true or false.",
    ),
    (
        "auth.users",
        Some("users"),
        "Users added to the built-in user database at start, as \"NAME:PASSWORD\" (stored hashed; also for SCRAM-SHA-256).",
    ),
    (
        "auth.user_db",
        Some("user_db"),
        "The built-in user database's file (JSON, written at every change; `ractmq ctl users` manages it). Empty: kept in memory.",
    ),
    (
        "auth.password_file",
        Some("password_file"),
        "A Mosquitto password file (mosquitto_passwd: $6$ and $7$ hashes; bcrypt, PBKDF2 and argon2 too), asked after the built-in database. Reloaded by SIGHUP and `ractmq ctl acl reload`.",
    ),
    (
        "auth.acl_file",
        Some("acl_file"),
        "Who may publish and subscribe to what: a Mosquitto acl_file, or the native TOML form (docs/security.md). Reloaded by SIGHUP and `ractmq ctl acl reload`. Empty: anything but $SYS.",
    ),
    (
        "auth.jwt_secret",
        Some("jwt_secret"),
        "Accept JWTs signed with this HMAC secret (HS256/384/512) as passwords.",
    ),
    (
        "auth.jwt_public_key",
        Some("jwt_public_key"),
        "Accept JWTs signed with the key of this PEM public key file (RSA, EC or Ed25519).",
    ),
    (
        "auth.jwt_jwks",
        Some("jwt_jwks"),
        "Accept JWTs signed with a key of this JWKS file.",
    ),
    (
        "auth.jwt_from",
        Some("jwt_from"),
        "Where clients put their JWT: password or username.",
    ),
    (
        "auth.http_url",
        Some("auth_http_url"),
        "Ask this HTTP service (POST JSON, EMQX's shape) whether a client may connect, after the other sources.",
    ),
    (
        "auth.http_authz_url",
        Some("http_authz_url"),
        "Ask this HTTP service (POST JSON, EMQX's HTTP authorizer) whether a client may publish or subscribe, for what JWT claims and acl_file leave undecided; answers are cached per client for 30 s, \"ignore\" or no answer within 5 s leaves the no-match default.",
    ),
    (
        "auth.flapping_detect",
        Some("flapping_detect"),
        "Ban a client id that connects flapping_max_count times within flapping_window_s, for flapping_ban_s.",
    ),
    (
        "auth.flapping_max_count",
        Some("flapping_max_count"),
        "Connects within the window that ban a client id (flapping detection).",
    ),
    (
        "auth.flapping_window_s",
        Some("flapping_window_s"),
        "The flapping detection window, in seconds.",
    ),
    (
        "auth.flapping_ban_s",
        Some("flapping_ban_s"),
        "How long flapping detection bans a client id, in seconds.",
    ),
    (
        "cluster.node_name",
        Some("node_name"),
        "This node's name in a cluster (empty: a single node).",
    ),
    (
        "cluster.listen",
        Some("cluster_listen"),
        "Where this node listens for other nodes: an IP and fixed port they can dial.",
    ),
    (
        "cluster.advertise",
        Some("cluster_advertise"),
        "Where other nodes dial this node, when not cluster.listen (empty: cluster.listen).",
    ),
    (
        "cluster.seeds",
        Some("seeds"),
        "Nodes to join through, as \"NAME@IP:PORT\" or \"NAME@HOST:PORT\" (the host resolved again at every redial); one reachable seed is enough.",
    ),
    (
        "cluster.discovery",
        Some("discovery"),
        "How peers are found besides the seeds: \"static\" (the seeds only) or \"dns\" (every A/AAAA record of discovery_name, resolved again every 5 s).",
    ),
    (
        "cluster.discovery_name",
        Some("discovery_name"),
        "With discovery = \"dns\": the DNS name whose records are the cluster's nodes (e.g. a Kubernetes headless service).",
    ),
    (
        "cluster.discovery_port",
        Some("discovery_port"),
        "With discovery = \"dns\": the cluster port of the nodes found (0: this node's cluster.listen port).",
    ),
    (
        "cluster.cookie",
        Some("cookie"),
        "The secret every node of the cluster shares (also RACTMQ_COOKIE).",
    ),
    (
        "cluster.heartbeat_interval_ms",
        Some("heartbeat_interval_ms"),
        "Milliseconds between two heartbeats to every other node.",
    ),
    (
        "cluster.down_after_ms",
        Some("down_after_ms"),
        "Milliseconds without a heartbeat after which a node is down and its routes dropped.",
    ),
    (
        "cluster.forward_queue",
        Some("forward_queue"),
        "Messages queued towards one other node, unacknowledged; past half, publishers are held.",
    ),
    (
        "cluster.tls_cert",
        Some("cluster_tls_cert"),
        "TLS between nodes: this node's certificate (PEM), with its node name (empty: no TLS).",
    ),
    (
        "cluster.tls_key",
        Some("cluster_tls_key"),
        "TLS between nodes: the certificate's private key (PEM).",
    ),
    (
        "cluster.tls_ca",
        Some("cluster_tls_ca"),
        "TLS between nodes: the CA every node's certificate is signed by (PEM).",
    ),
    (
        "api.enabled",
        Some("no_api"),
        "Serve the REST API and /metrics (--no-api turns it off).",
    ),
    ("api.listen", Some("api_listen"), "Where the REST API listens."),
    (
        "api.token",
        Some("api_token"),
        "Bearer token the API requires (also RACTMQ_API_TOKEN; empty: none).",
    ),
    (
        "api.users",
        Some("api_users"),
        "Users allowed into the API with basic authentication, as \"NAME:PASSWORD\".",
    ),
    (
        "api.chaos",
        Some("api_chaos"),
        "Serve the chaos API (killing actors on purpose).",
    ),
    (
        "log.level",
        Some("log_level"),
        "Log filter (tracing EnvFilter syntax); RUST_LOG, when set, wins.",
    ),
    ("log.format", Some("log_format"), "Log lines as text or json."),
    (
        "shutdown.drain_timeout_ms",
        Some("drain_timeout_ms"),
        "Milliseconds a stopping node waits for its clients to be told and flushed.",
    ),
    (
        "sys.interval_s",
        Some("sys_interval"),
        "Seconds between $SYS publications (0 disables them).",
    ),
    (
        "bridges.mqtt",
        None,
        "Bridges to other MQTT brokers: `[[bridges.mqtt]]` tables (docs/bridges.md). In the file only; at run \
         time, `ractmq ctl bridges create`.",
    ),
    (
        "bridges.http",
        None,
        "HTTP webhooks: `[[bridges.http]]` tables (docs/bridges.md). In the file only.",
    ),
    (
        "bridges.postgres",
        None,
        "PostgreSQL sinks: `[[bridges.postgres]]` tables (docs/bridges.md). In the file only.",
    ),
    (
        "bridges.kafka",
        None,
        "Kafka producers: `[[bridges.kafka]]` tables (docs/bridges.md). In the file only.",
    ),
];

/// (flag id, key) for every key a flag overrides.
pub fn flag_keys() -> Vec<(String, String)> {
    KEYS.iter()
        .filter_map(|(key, flag, _)| flag.map(|f| (f.to_string(), key.to_string())))
        .collect()
}

/// The flag with id `id` of `start` (the `ractmq start` command) as an operator types it: `--user` for `users`.
pub fn flag_name(start: &clap::Command, id: &str) -> String {
    let arg = start
        .get_arguments()
        .find(|a| a.get_id() == id)
        .unwrap_or_else(|| panic!("ractmq start has no flag with id {id}"));
    let long = arg
        .get_long()
        .unwrap_or_else(|| panic!("the flag with id {id} has no long name"));
    format!("--{long}")
}

fn default_value(defaults: &Table, key: &str) -> Value {
    let (section, name) = key.split_once('.').expect("keys are section.key");
    defaults[section][name].clone()
}

/// A complete ractmq.toml with every default, each key under the comment that says what it is.
pub fn defaults_toml() -> String {
    let defaults = Table::try_from(Settings::default()).expect("the defaults are a table");
    let mut out = String::from(
        "# ractmq configuration: every key with its default. Run a node with `ractmq start -c ractmq.toml`.\n\
         # Environment variables RACTMQ_SECTION__KEY override the file; command-line flags override both.\n",
    );
    let mut section = "";
    for (key, _, meaning) in KEYS {
        let (sec, name) = key.split_once('.').expect("keys are section.key");
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        if *key == "limits.queue_rules" {
            // A commented example rather than `queue_rules = []`, which an added [[limits.queue_rules]] would clash with.
            out.push_str(&format!("# {meaning}\n{QUEUE_RULES_EXAMPLE}"));
            continue;
        }
        out.push_str(&format!("# {meaning}\n{name} = {}\n", default_value(&defaults, key)));
    }
    out.push_str(RULES_EXAMPLE);
    out
}

/// An example rule, commented out, for `ractmq config defaults`.
const RULES_EXAMPLE: &str = r#"
# Rules: SQL over the node's messages and its clients' events, with actions (docs/rules.md).
# [[rules]]
# name = "hot"
# sql = 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30'
# actions = [{ republish = { topic = "alerts/${clientid}", payload = '{"t": ${t}}', qos = 1 } }]
"#;

/// An example of limits.queue_rules, commented out, for `ractmq config defaults`.
const QUEUE_RULES_EXAMPLE: &str = "\
# [[limits.queue_rules]]
# listener = \"ws\"              # tcp, tls, ws or wss
# client_id = \"sensor-*\"       # a glob: * any characters, ? one, [abc] one of a set, {a,b} either
# username = \"fleet\"           # a glob; a client without a user name never matches
# max_queue = 100
# max_queue_bytes = 1048576
# queue_overflow = \"disconnect\"
# stall_timeout_ms = 1000
";

/// The section of docs/configuration.md on limits.queue_rules.
const QUEUE_RULES_DOC: &str = r#"
## Per-client queue rules

A connected client's outgoing queue is bounded by `limits.max_queue` messages and `limits.max_queue_bytes` bytes.
While it is full and the client makes progress, the clients publishing to it wait. A client whose full queue does
not drain to half within `limits.stall_timeout_ms` is stalled: its publishers go on, and `limits.queue_overflow`
applies to it (drop its oldest messages, drop the new ones, or disconnect it).

`limits.queue_rules` changes these settings for some clients. Each rule has matchers, all optional:

- `listener`: the kind of listener the client connected through, `tcp`, `tls`, `ws` or `wss`;
- `client_id`: a glob the whole client id must match;
- `username`: a glob the whole user name must match (a client without a user name never matches);

and settings, all optional: `max_queue`, `max_queue_bytes`, `queue_overflow`, `stall_timeout_ms`. A client gets the
settings named by the FIRST rule whose matchers all match it (a rule without matchers matches every client), and
the node-wide value of every setting that rule does not name. Rules are resolved once, when a client connects.

```toml
# Sensors on WebSocket are disconnected when stuck for a second; they reconnect and resubscribe.
[[limits.queue_rules]]
listener = "ws"
client_id = "sensor-*"
queue_overflow = "disconnect"
stall_timeout_ms = 1000

# Bridges get a deeper queue.
[[limits.queue_rules]]
username = "bridge-*"
max_queue = 100000
max_queue_bytes = 268435456
```

Globs: `*` is any run of characters (`/` included), `?` one character, `[abc]`, `[a-z]` and `[!abc]` one character
of (or not of) a set, `{a,b}` either alternative, `\*` a literal `*`; matching is case-sensitive.

On the command line each `--queue-rule` gives one rule as `KEY=VALUE` pairs separated by commas, values without
quotes: `--queue-rule 'listener=ws,client_id=sensor-*,queue_overflow=disconnect'`; repeat the flag for more rules,
in order. The environment takes the same, rules separated by `;`:
`RACTMQ_LIMITS__QUEUE_RULES='client_id=sensor-*,queue_overflow=disconnect;username=bridge-*,max_queue=100000'`.
Rules from the environment replace the file's, and rules from flags replace both. In errors, rules are numbered
from 1: `limits.queue_rules[2]` is the second.
"#;

/// The reference of docs/configuration.md; `start` is the `ractmq start` command, whose flags it names.
pub fn markdown(start: &clap::Command) -> String {
    let defaults = Table::try_from(Settings::default()).expect("the defaults are a table");
    let mut out = String::from(
        "<!-- Made by `ractmq config reference`; a test keeps it equal to the code. -->\n\n\
         # Configuration reference\n\n\
         A node reads one TOML file (`ractmq start -c ractmq.toml`). Every key has a default, so an empty file (or \
         none) runs a node. Each value can be overridden, in this order of precedence (last wins):\n\n\
         1. the default;\n2. the file;\n\
         3. an environment variable `RACTMQ_SECTION__KEY`, e.g. `RACTMQ_MQTT__LISTEN=0.0.0.0:1884` (lists are \
         comma-separated: `RACTMQ_AUTH__USERS=alice:pw1,bob:pw2`);\n\
         4. the command-line flag, when given.\n\n\
         `ractmq config check FILE` checks a file (with the environment) without starting anything; \
         `ractmq config defaults` prints a complete file with every default. A mistake is reported in one line \
         naming the key, the value and what to change.\n\n\
         | key | default | flag | environment | meaning |\n|---|---|---|---|---|\n",
    );
    for (key, flag, meaning) in KEYS {
        let (sec, name) = key.split_once('.').expect("keys are section.key");
        let flag = flag.map_or(String::from("-"), |id| format!("`{}`", flag_name(start, id)));
        let env = format!("`RACTMQ_{}__{}`", sec.to_uppercase(), name.to_uppercase());
        let default = default_value(&defaults, key).to_string().replace('|', "\\|");
        out.push_str(&format!("| `{key}` | `{default}` | {flag} | {env} | {meaning} |\n"));
    }
    out.push_str(QUEUE_RULES_DOC);
    out.push_str(RULES_DOC);
    out
}

/// The section of docs/configuration.md on `[[rules]]`.
const RULES_DOC: &str = r#"
## Rules

`[[rules]]` tables at the top of the file, one per rule (docs/rules.md): SQL over the messages published on the
node and its clients' events, with actions. In the file only; at run time, `ractmq ctl rules create`.

```toml
[[rules]]
name = "hot"
sql = 'SELECT payload.temp AS t, clientid FROM "sensors/#" WHERE payload.temp > 30'
actions = [{ republish = { topic = "alerts/${clientid}", payload = '{"t": ${t}}', qos = 1 } }]
```

| key | default | meaning |
|---|---|---|
| `name` | (required) | 1 to 64 letters, digits, `-`, `_` or `.` |
| `sql` | (required) | `SELECT ... FROM "filter", "$events/..." [WHERE ...]` or `FOREACH ... [DO ...] [INCASE ...] FROM ...` |
| `actions` | `[]` | `{ republish = { topic, payload, qos, retain, user_properties } }`, `{ bridge = { name, topic, payload, qos } }`, `{ log = { message } }` |
| `enabled` | `true` | whether the rule runs |
| `description` | `""` | a note for operators |
| `max_retries` | `3` | times a failed action is tried again before its output is dead-lettered |
| `retry_backoff_ms` | `500` | the wait before the first retry, doubled for each next one |
| `dlq_topic` | `"$dlq/$rule/{rule}/{topic}"` | where an output goes that failed past its retries |
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_settings_is_listed_once_and_only_those() {
        let defaults = Table::try_from(Settings::default()).unwrap();
        let mut from_settings: Vec<String> = defaults
            .iter()
            .filter_map(|(s, t)| Some((s, t.as_table()?)))
            .flat_map(|(s, t)| t.keys().map(move |k| format!("{s}.{k}")))
            .collect();
        // The one list of tables at the top, documented on its own (RULES_DOC).
        let top_lists: Vec<&String> = defaults.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k).collect();
        assert_eq!(top_lists, ["rules"]);
        let mut listed: Vec<String> = KEYS.iter().map(|(k, _, _)| k.to_string()).collect();
        from_settings.sort();
        listed.sort();
        assert_eq!(listed, from_settings);
    }

    #[test]
    fn the_defaults_file_reads_back_as_the_defaults() {
        let text = defaults_toml();
        let back: Settings = toml::from_str(&text).unwrap();
        assert_eq!(back, Settings::default());
        assert!(back.build().is_ok());
    }
}
