//! How bridges are configured: the `[[bridges.mqtt]]` (and `http`, `postgres`, `kafka`) tables of the
//! configuration file, and the same as JSON over REST.
//!
//! Everything is checked when read (names, filters, addresses, templates), so a mistake is one line at start
//! or a 400 from the API, never a bridge that fails on every message.

use serde::{Deserialize, Serialize};

/// Every bridge of a node, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgesConfig {
    /// MQTT bridges to other brokers.
    pub mqtt: Vec<MqttBridgeConfig>,
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
    let ok = !name.is_empty()
        && name.len() <= 64
        && (name.chars()).all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bridge name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
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
    fn dead_letter_topics_name_bridge_and_topic() {
        assert_eq!(dlq_topic(&default_dlq(), "cloud", "a/b"), "$dlq/cloud/a/b");
    }
}
