//! How bridges are configured: the `[[bridges.mqtt]]` (and `http`, `postgres`, `kafka`) tables of the
//! configuration file, and the same as JSON over REST.
//!
//! Everything is checked when read (names, filters, addresses, templates), so a mistake is one line at start
//! or a 400 from the API, never a bridge that fails on every message.

use serde::{Deserialize, Serialize};

use crate::http::HttpConfig;
use crate::kafka::KafkaConfig;
use crate::postgres::PostgresConfig;

/// Every bridge of a node, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgesConfig {
    /// MQTT bridges to other brokers.
    pub mqtt: Vec<MqttBridgeConfig>,
    /// HTTP webhooks.
    pub http: Vec<SinkBridgeConfig<HttpConfig>>,
    /// PostgreSQL sinks.
    pub postgres: Vec<SinkBridgeConfig<PostgresConfig>>,
    /// Kafka producers.
    pub kafka: Vec<SinkBridgeConfig<KafkaConfig>>,
}

impl BridgesConfig {
    /// Every bridge, of every kind.
    pub fn all(&self) -> Vec<BridgeConfig> {
        let mqtt = self.mqtt.iter().cloned().map(BridgeConfig::Mqtt);
        let http = self.http.iter().cloned().map(BridgeConfig::Http);
        let postgres = self.postgres.iter().cloned().map(BridgeConfig::Postgres);
        let kafka = self.kafka.iter().cloned().map(BridgeConfig::Kafka);
        mqtt.chain(http).chain(postgres).chain(kafka).collect()
    }

    /// Every bridge checked, names unique; the error is one line.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for bridge in self.all() {
            bridge.validate()?;
            if !names.insert(bridge.name().to_string()) {
                return Err(format!(
                    "bridges: two bridges are named {:?}; names must be unique",
                    bridge.name()
                ));
            }
        }
        Ok(())
    }
}

/// One bridge of any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BridgeConfig {
    /// To and from another MQTT broker.
    Mqtt(MqttBridgeConfig),
    /// To an HTTP service.
    Http(SinkBridgeConfig<HttpConfig>),
    /// To a PostgreSQL table.
    Postgres(SinkBridgeConfig<PostgresConfig>),
    /// To Kafka topics.
    Kafka(SinkBridgeConfig<KafkaConfig>),
}

/// A bridge that takes local messages to a sink (HTTP, PostgreSQL): what every such bridge has, and the
/// sink's own settings beside them in the same table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SinkBridgeConfig<T> {
    /// The bridge's name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Local topic filters whose messages go to the sink.
    pub forward: Vec<String>,
    /// The QoS of the bridge's subscriptions (0, 1 or 2).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Messages the bridge's buffer holds while the sink is down or slow.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// What a full buffer does.
    #[serde(default)]
    pub overflow: Overflow,
    /// Where a message goes that failed past its retries (`{bridge}` and `{topic}` are filled in).
    #[serde(default = "default_dlq")]
    pub dlq_topic: String,
    /// Whether the bridge runs.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The sink's settings.
    #[serde(flatten)]
    pub sink: T,
}

/// The settings every sink bridge has, read apart from the sink's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    forward: Vec<String>,
    #[serde(default = "default_qos")]
    qos: u8,
    #[serde(default = "default_buffer")]
    buffer: usize,
    #[serde(default)]
    overflow: Overflow,
    #[serde(default = "default_dlq")]
    dlq_topic: String,
    #[serde(default = "default_true")]
    enabled: bool,
}

const COMMON: [&str; 7] = ["name", "forward", "qos", "buffer", "overflow", "dlq_topic", "enabled"];

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for SinkBridgeConfig<T> {
    /// The common settings and the sink's apart, each refusing keys it does not know (serde's `flatten` would
    /// let a misspelt one pass in silence).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut all = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let common: serde_json::Map<_, _> = COMMON.iter().filter_map(|k| all.remove_entry(*k)).collect();
        let common: Common = serde_json::from_value(common.into()).map_err(D::Error::custom)?;
        let sink: T = serde_json::from_value(all.into()).map_err(D::Error::custom)?;
        Ok(SinkBridgeConfig {
            name: common.name,
            forward: common.forward,
            qos: common.qos,
            buffer: common.buffer,
            overflow: common.overflow,
            dlq_topic: common.dlq_topic,
            enabled: common.enabled,
            sink,
        })
    }
}

impl BridgeConfig {
    /// Read a bridge from JSON (REST): `kind` (`mqtt`, `http`, `postgres` or `kafka`; default `mqtt`) and its
    /// settings.
    pub fn from_json(mut value: serde_json::Value) -> Result<BridgeConfig, String> {
        let kind = match value.as_object_mut().map(|o| o.remove("kind")) {
            None => return Err("a bridge is a JSON object".into()),
            Some(None) => "mqtt".to_string(),
            Some(Some(serde_json::Value::String(kind))) => kind,
            Some(Some(other)) => {
                return Err(format!(
                    "kind = {other}: use \"mqtt\", \"http\", \"postgres\" or \"kafka\""
                ))
            }
        };
        let read = |e: serde_json::Error| e.to_string();
        match kind.as_str() {
            "mqtt" => serde_json::from_value(value).map(BridgeConfig::Mqtt).map_err(read),
            "http" => serde_json::from_value(value).map(BridgeConfig::Http).map_err(read),
            "postgres" => serde_json::from_value(value).map(BridgeConfig::Postgres).map_err(read),
            "kafka" => serde_json::from_value(value).map(BridgeConfig::Kafka).map_err(read),
            other => Err(format!(
                "kind = {other:?}: use \"mqtt\", \"http\", \"postgres\" or \"kafka\""
            )),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            BridgeConfig::Mqtt(c) => &c.name,
            BridgeConfig::Http(c) => &c.name,
            BridgeConfig::Postgres(c) => &c.name,
            BridgeConfig::Kafka(c) => &c.name,
        }
    }

    /// `mqtt`, `http`, `postgres` or `kafka`.
    pub fn kind(&self) -> &'static str {
        match self {
            BridgeConfig::Mqtt(_) => "mqtt",
            BridgeConfig::Http(_) => "http",
            BridgeConfig::Postgres(_) => "postgres",
            BridgeConfig::Kafka(_) => "kafka",
        }
    }

    /// Where it goes, as operators read it (no password).
    pub fn remote(&self) -> String {
        match self {
            BridgeConfig::Mqtt(c) => c.server.clone(),
            BridgeConfig::Http(c) => c.sink.url.clone(),
            BridgeConfig::Postgres(c) => without_password(&c.sink.url),
            BridgeConfig::Kafka(c) => c.sink.bootstrap.join(","),
        }
    }

    /// Local filters going out.
    pub fn forward(&self) -> &[String] {
        match self {
            BridgeConfig::Mqtt(c) => &c.forward,
            BridgeConfig::Http(c) => &c.forward,
            BridgeConfig::Postgres(c) => &c.forward,
            BridgeConfig::Kafka(c) => &c.forward,
        }
    }

    /// Remote filters coming in (MQTT only).
    pub fn subscribe(&self) -> &[String] {
        match self {
            BridgeConfig::Mqtt(c) => &c.subscribe,
            _ => &[],
        }
    }

    /// Whether it starts with the node.
    pub fn enabled(&self) -> bool {
        match self {
            BridgeConfig::Mqtt(c) => c.enabled,
            BridgeConfig::Http(c) => c.enabled,
            BridgeConfig::Postgres(c) => c.enabled,
            BridgeConfig::Kafka(c) => c.enabled,
        }
    }

    /// Set whether it starts with the node.
    pub fn set_enabled(&mut self, enabled: bool) {
        match self {
            BridgeConfig::Mqtt(c) => c.enabled = enabled,
            BridgeConfig::Http(c) => c.enabled = enabled,
            BridgeConfig::Postgres(c) => c.enabled = enabled,
            BridgeConfig::Kafka(c) => c.enabled = enabled,
        }
    }

    /// Its buffer's bound and policy.
    pub fn buffer(&self) -> (usize, Overflow) {
        match self {
            BridgeConfig::Mqtt(c) => (c.buffer, c.overflow),
            BridgeConfig::Http(c) => (c.buffer, c.overflow),
            BridgeConfig::Postgres(c) => (c.buffer, c.overflow),
            BridgeConfig::Kafka(c) => (c.buffer, c.overflow),
        }
    }

    /// Every setting checked (a sink's templates and addresses included); one line naming the bridge.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            BridgeConfig::Mqtt(c) => c.validate(),
            BridgeConfig::Http(c) => c.validate(|s| crate::http::HttpSink::new(s).map(drop)),
            BridgeConfig::Postgres(c) => c.validate(|s| crate::postgres::PostgresSink::new(s).map(drop)),
            BridgeConfig::Kafka(c) => c.validate(|s| crate::kafka::KafkaSink::new(s).map(drop)),
        }
    }

    /// The same with passwords replaced by `***`, for showing.
    pub fn redacted(&self) -> BridgeConfig {
        let mut c = self.clone();
        match &mut c {
            BridgeConfig::Mqtt(m) => {
                if m.password.is_some() {
                    m.password = Some("***".into());
                }
            }
            BridgeConfig::Http(_) | BridgeConfig::Kafka(_) => {}
            BridgeConfig::Postgres(p) => p.sink.url = without_password(&p.sink.url),
        }
        c
    }

    /// This configuration, edited from what [`redacted`](Self::redacted) showed of `old`: a password still
    /// shown as `***` is `old`'s, so that a dashboard can send back what it read.
    pub fn with_secrets_of(mut self, old: &BridgeConfig) -> BridgeConfig {
        match (&mut self, old) {
            (BridgeConfig::Mqtt(new), BridgeConfig::Mqtt(old)) if new.password.as_deref() == Some("***") => {
                new.password = old.password.clone();
            }
            (BridgeConfig::Postgres(new), BridgeConfig::Postgres(old))
                if new.sink.url != old.sink.url && new.sink.url == without_password(&old.sink.url) =>
            {
                new.sink.url = old.sink.url.clone();
            }
            _ => {}
        }
        self
    }
}

/// A URL without the password in it.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl<T> SinkBridgeConfig<T> {
    fn validate(&self, sink: impl Fn(&T) -> Result<(), String>) -> Result<(), String> {
        check_name(&self.name)?;
        let bad = |what: String| format!("bridge {}: {what}", self.name);
        if self.forward.is_empty() {
            return Err(bad("nothing to bridge: give forward filters".into()));
        }
        for filter in &self.forward {
            if !ractmq_codec::topic::valid_filter(filter) {
                return Err(bad(format!("{filter:?} is not a valid topic filter")));
            }
        }
        if self.qos > 2 {
            return Err(bad(format!("qos = {}: use 0, 1 or 2", self.qos)));
        }
        if self.buffer == 0 {
            return Err(bad("buffer must be at least 1".into()));
        }
        sink(&self.sink).map_err(bad)
    }
}

/// What a bridge's local session does when its buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Drop the oldest buffered message for the new one (counted).
    #[default]
    DropOldest,
    /// Drop the new message (counted).
    DropNewest,
    /// Hold the publishers of the bridged topics until there is room.
    Block,
}

/// An MQTT bridge: `forward` local topics to the remote broker at `server`, and bring `subscribe`d remote
/// topics in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttBridgeConfig {
    /// The bridge's name: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The remote broker, `host:port`.
    pub server: String,
    /// Local topic filters whose messages go to the remote broker.
    #[serde(default)]
    pub forward: Vec<String>,
    /// Remote topic filters whose messages come to the local broker.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Prepended to a forwarded message's topic on the remote broker.
    #[serde(default)]
    pub remote_prefix: String,
    /// Prepended to an incoming message's topic on the local broker.
    #[serde(default)]
    pub local_prefix: String,
    /// The highest QoS of both directions' subscriptions (0, 1 or 2).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// `5` or `3.1.1`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Client id at the remote broker (default `ractmq-bridge-NAME`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name at the remote broker.
    #[serde(default)]
    pub username: Option<String>,
    /// Password at the remote broker.
    #[serde(default)]
    pub password: Option<String>,
    /// Start a new session at the remote on every connection (default false: the remote keeps the bridge's
    /// subscriptions and the messages for it while the link is down).
    #[serde(default)]
    pub clean_start: bool,
    /// Session expiry at an MQTT 5 remote, in seconds, when `clean_start` is false.
    #[serde(default = "default_remote_expiry")]
    pub session_expiry_s: u32,
    /// Keep alive towards the remote, in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u16,
    /// QoS 1 and 2 messages in flight each way.
    #[serde(default = "default_inflight")]
    pub max_inflight: u16,
    /// First wait before reconnecting, in milliseconds; doubled (with jitter) up to `reconnect_max_ms`.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    /// Longest wait before reconnecting, in milliseconds.
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// TLS to the remote.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Messages the bridge's buffer (its local session's queue) holds while the remote is down or slow.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// What a full buffer does.
    #[serde(default)]
    pub overflow: Overflow,
    /// Where a message the remote refuses goes (`{bridge}` and `{topic}` are filled in).
    #[serde(default = "default_dlq")]
    pub dlq_topic: String,
    /// Whether the bridge runs (a stopped bridge keeps its buffer).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// TLS towards a remote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust (default: the system's roots are not used; name one).
    pub ca_file: String,
    /// PEM client certificate chain, for mutual TLS.
    pub cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<String>,
    /// The name to verify in the server's certificate (default: the host of `server`).
    pub server_name: Option<String>,
}

fn default_qos() -> u8 {
    1
}
fn default_protocol() -> String {
    "5".into()
}
fn default_remote_expiry() -> u32 {
    3600
}
fn default_keep_alive() -> u16 {
    30
}
fn default_inflight() -> u16 {
    256
}
fn default_reconnect_min() -> u64 {
    200
}
fn default_reconnect_max() -> u64 {
    30_000
}
fn default_buffer() -> usize {
    100_000
}
fn default_dlq() -> String {
    "$dlq/{bridge}/{topic}".into()
}
fn default_true() -> bool {
    true
}

/// A bridge name: what REST paths, ctl, metrics labels and the local client id carry.
pub fn check_name(name: &str) -> Result<(), String> {
    check_name_of("bridge", name)
}

/// The name of an operator's object (`what`: "bridge", "rule"): 1 to 64 letters, digits, `-`, `_` or `.`, so
/// that it can go into URL paths, metric labels, client ids and topics as it is.
pub fn check_name_of(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && (name.chars()).all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

impl MqttBridgeConfig {
    /// A bridge to `server` with every other setting at its default.
    pub fn new(name: &str, server: &str) -> MqttBridgeConfig {
        MqttBridgeConfig {
            name: name.into(),
            server: server.into(),
            forward: Vec::new(),
            subscribe: Vec::new(),
            remote_prefix: String::new(),
            local_prefix: String::new(),
            qos: default_qos(),
            protocol: default_protocol(),
            client_id: None,
            username: None,
            password: None,
            clean_start: false,
            session_expiry_s: default_remote_expiry(),
            keep_alive_s: default_keep_alive(),
            max_inflight: default_inflight(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_ms: default_reconnect_max(),
            tls: None,
            buffer: default_buffer(),
            overflow: Overflow::default(),
            dlq_topic: default_dlq(),
            enabled: true,
        }
    }

    /// Every setting checked; the error is one line naming the bridge and the setting.
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.name)?;
        let bad = |what: String| format!("bridge {}: {what}", self.name);
        if self
            .server
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(bad(format!(
                "server = {:?}: use host:port, e.g. \"broker.example.com:1883\"",
                self.server
            )));
        }
        if self.forward.is_empty() && self.subscribe.is_empty() {
            return Err(bad(
                "nothing to bridge: give forward (local -> remote) or subscribe (remote -> local) filters".into(),
            ));
        }
        for filter in self.forward.iter().chain(&self.subscribe) {
            if !ractmq_codec::topic::valid_filter(filter) {
                return Err(bad(format!("{filter:?} is not a valid topic filter")));
            }
        }
        if self.qos > 2 {
            return Err(bad(format!("qos = {}: use 0, 1 or 2", self.qos)));
        }
        if !matches!(self.protocol.as_str(), "5" | "3.1.1") {
            return Err(bad(format!("protocol = {:?}: use \"5\" or \"3.1.1\"", self.protocol)));
        }
        if self.max_inflight == 0 || self.buffer == 0 {
            return Err(bad("max_inflight and buffer must be at least 1".into()));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_ms < self.reconnect_min_ms {
            return Err(bad(
                "reconnect_min_ms must be at least 1 and at most reconnect_max_ms".into()
            ));
        }
        if !self.dlq_topic.contains("{topic}") && self.dlq_topic.contains(['+', '#']) {
            return Err(bad(format!("dlq_topic = {:?} is not a topic name", self.dlq_topic)));
        }
        Ok(())
    }

    /// The client id at the remote broker.
    pub fn remote_client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("ractmq-bridge-{}", self.name))
    }
}

/// The client id of a bridge's session on the local broker: in-process connections alone may use `$` ids, so
/// no MQTT client can take it over.
pub fn local_client_id(bridge: &str) -> String {
    format!("$bridge/{bridge}")
}

/// The dead-letter topic of a message of `topic` on `bridge`.
pub fn dlq_topic(pattern: &str, bridge: &str, topic: &str) -> String {
    pattern.replace("{bridge}", bridge).replace("{topic}", topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_reads_with_defaults() {
        let config: BridgesConfig = toml::from_str(
            r#"
            [[mqtt]]
            name = "cloud"
            server = "127.0.0.1:1883"
            forward = ["sensors/#"]
            subscribe = ["commands/#"]
            "#,
        )
        .unwrap();
        let cloud = &config.mqtt[0];
        cloud.validate().unwrap();
        assert_eq!((cloud.qos, cloud.protocol.as_str(), cloud.buffer), (1, "5", 100_000));
        assert_eq!(cloud.remote_client_id(), "ractmq-bridge-cloud");
    }

    #[test]
    fn mistakes_are_one_line_naming_the_setting() {
        let mut c = MqttBridgeConfig::new("cloud", "localhost");
        c.forward = vec!["a/#".into()];
        assert!(c.validate().unwrap_err().contains("server = \"localhost\""));
        c.server = "localhost:1883".into();
        c.forward = vec!["a/#/b".into()];
        assert!(c.validate().unwrap_err().contains("not a valid topic filter"));
        c.forward.clear();
        assert!(c.validate().unwrap_err().contains("nothing to bridge"));
        assert!(check_name("a b").is_err());
        let unknown = toml::from_str::<BridgesConfig>("[[mqtt]]\nname = \"x\"\nserver = \"h:1\"\nforwad = []\n");
        assert!(unknown.unwrap_err().to_string().contains("forwad"));
    }

    #[test]
    fn sink_bridges_read_their_own_settings_beside_the_common_ones() {
        let config: BridgesConfig = toml::from_str(
            r#"
            [[http]]
            name = "hook"
            forward = ["alerts/#"]
            url = "http://127.0.0.1:9/hook"
            batch_size = 10

            [[postgres]]
            name = "db"
            forward = ["meters/#"]
            url = "postgres://ractmq:secret@127.0.0.1:5432/ractmq"
            sql = "INSERT INTO readings (topic) VALUES (${topic})"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.http[0].sink.batch_size, 10);
        let db = BridgeConfig::Postgres(config.postgres[0].clone());
        assert_eq!(db.remote(), "postgres://ractmq:***@127.0.0.1:5432/ractmq");
        let typo = toml::from_str::<BridgesConfig>(
            "[[http]]\nname = \"h\"\nforward = [\"a\"]\nurl = \"http://h/\"\nbatch_sise = 1\n",
        );
        assert!(typo.unwrap_err().to_string().contains("batch_sise"));
        let json = serde_json::json!({"kind": "http", "name": "h", "forward": ["a/#"], "url": "http://h/${topic}"});
        assert_eq!(BridgeConfig::from_json(json).unwrap().kind(), "http");
    }

    #[test]
    fn an_edit_of_the_redacted_configuration_keeps_the_passwords() {
        let mut mqtt = MqttBridgeConfig::new("cloud", "h:1883");
        mqtt.password = Some("s3cret".into());
        let old = BridgeConfig::Mqtt(mqtt);
        let kept = old.redacted().with_secrets_of(&old);
        assert_eq!(kept, old, "sent back as shown: the password it had");
        let BridgeConfig::Mqtt(mut changed) = old.redacted() else {
            unreachable!()
        };
        changed.password = Some("new".into());
        let BridgeConfig::Mqtt(changed) = BridgeConfig::Mqtt(changed).with_secrets_of(&old) else {
            unreachable!()
        };
        assert_eq!(changed.password.as_deref(), Some("new"), "a new password is taken");

        let json = serde_json::json!({"kind": "postgres", "name": "db", "forward": ["m/#"],
            "url": "postgres://u:pw@h:5432/d", "sql": "INSERT INTO t (x) VALUES (${topic})"});
        let old = BridgeConfig::from_json(json).unwrap();
        let BridgeConfig::Postgres(edited) = old.redacted().with_secrets_of(&old) else {
            unreachable!()
        };
        assert_eq!(edited.sink.url, "postgres://u:pw@h:5432/d");
    }

    #[test]
    fn dead_letter_topics_name_bridge_and_topic() {
        assert_eq!(dlq_topic(&default_dlq(), "cloud", "a/b"), "$dlq/cloud/a/b");
    }
}
