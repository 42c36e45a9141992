//! Broker configuration with embedded defaults: `Broker::start(BrokerConfig::default())` runs a node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractmq_protocol::{queue_rules, Limits, QueuePolicy, QueueRule};

use crate::cert_identity::CertIdentity;
use crate::cluster_hook::ClusterPlug;
use crate::enhanced_auth::Authenticators;
use crate::restart::RestartPolicy;
use crate::security::SecurityConfig;
use crate::shared::SharedStrategy;

/// Everything a node starts with; `Default` is a single node on the defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// MQTT over TCP.
    pub mqtt_listen: SocketAddr,
    /// Further listeners: MQTT over TLS, over WebSocket, over WebSocket on TLS.
    pub listeners: Vec<ListenerSpec>,
    /// Partitions of the subscription index, one actor each.
    pub shards: usize,
    /// The protocol limits (see [`Limits`]); `queue_rules` may change a client's queue settings.
    pub limits: Limits,
    /// Per-client queue settings, in order: the first rule that matches a connecting client supplies the
    /// settings it names, `limits` the rest (see [`ractmq_protocol::queue_rules`]).
    pub queue_rules: Vec<QueueRule>,
    /// Connections accepted at once; more are refused with CONNACK Server unavailable.
    pub max_connections: usize,
    /// Resident memory in bytes above which the node sheds load (see `overload.rs`); 0: off. The default is
    /// 80% of the machine's memory.
    pub memory_high_watermark: u64,
    /// With mutual TLS: the client certificate field that becomes the user name, authenticating the client as
    /// that user without a password (`None`: the CONNECT's user name and password, as on any listener).
    pub tls_cert_as_username: Option<CertIdentity>,
    /// Clients each listener may have connected at once (0: only `max_connections`); more are refused with
    /// CONNACK Quota exceeded (3.1.1: Server unavailable).
    pub max_connections_per_listener: usize,
    /// Clients one peer address may have connected at once (0: no limit); refused as above.
    pub max_connections_per_peer: usize,
    /// Connections each listener accepts per second (0: no limit); faster ones wait in the listen backlog.
    pub listener_connections_per_s: u32,
    /// PUBLISH packets per second read from one client (0: no limit); a faster client's socket is read
    /// more slowly, and nothing is dropped.
    pub client_messages_per_s: u32,
    /// Bytes per second read from one client (0: no limit); as above.
    pub client_bytes_per_s: u32,
    /// Sockets that may wait for their CONNECT at once; more are closed at accept (see `peer_counts.rs`).
    pub max_handshakes: usize,
    /// Sockets from one peer address that may wait for their CONNECT at once.
    pub max_handshakes_per_peer: usize,
    /// How often `$SYS/broker/...` is published (zero disables it).
    pub sys_interval: Duration,
    /// Session actor restarts allowed before the session supervisor escalates.
    pub session_restarts: RestartPolicy,
    /// Topic shard restarts allowed before the shard supervisor escalates.
    pub shard_restarts: RestartPolicy,
    /// Restarts of the root's direct children before the broker stops.
    pub root_restarts: RestartPolicy,
    /// How a shared subscription group chooses the member for each message.
    pub shared_strategy: SharedStrategy,
    /// A connected session idle this long hibernates: its actor stops and its connection waits without one
    /// (zero: never).
    pub hibernate_after: Duration,
    /// Publish every message a subscriber's queue drops (its overflow policy, a stall) on
    /// `$dlq/$queue/{client id}/{topic}`, QoS 1, with user property `reason` (off by default).
    pub dead_letter_dropped: bool,
    /// Who may connect and what they may do: authentication sources, the ACL file, bans, flapping and
    /// failed-login throttling (see `security.rs`).
    pub security: SecurityConfig,
    /// Users added to the built-in user database at start when missing (name to password; stored hashed).
    /// They may also authenticate with SCRAM-SHA-256 (MQTT 5 enhanced authentication).
    pub users: HashMap<String, String>,
    /// Further enhanced authentication methods, besides the built-in SCRAM-SHA-256.
    pub authenticators: Authenticators,
    /// This node's name, as `$SYS/brokers` lists it ("local" for a node that is not clustered).
    pub node_name: String,
    /// Clustering (the `ractmq-cluster` crate sets it); `None` runs a single node.
    pub cluster: Option<ClusterPlug>,
    /// Where persistent sessions and retained messages live: in memory (the library's default), or in a store
    /// on disk that survives restarts and crashes (the `ractmq` command's default; see docs/durability.md).
    pub durability: Durability,
}

/// Where a node keeps what must outlive it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is written to disk: a restart loses persistent sessions and retained messages.
    #[default]
    Memory,
    /// In the store in this directory: a QoS 1/2 message for a persistent session (or retained) is
    /// acknowledged once it is committed there, and a restart brings everything back.
    Disk(std::path::PathBuf),
}

impl BrokerConfig {
    /// The bounds, overflow policy and stall timeout of one connected client's queue: the first of
    /// `queue_rules` that matches it over the node-wide limits. Called once per CONNECT, with the listener's
    /// [`ListenerSpec::kind`].
    pub fn queue_policy(&self, listener: &str, client_id: &str, username: Option<&str>) -> QueuePolicy {
        queue_rules::resolve(
            &self.queue_rules,
            self.limits.online_queue(),
            listener,
            client_id,
            username,
        )
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mqtt_listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            listeners: Vec::new(),
            shards: 4,
            limits: Limits::default(),
            queue_rules: Vec::new(),
            max_connections: 100_000,
            tls_cert_as_username: None,
            memory_high_watermark: crate::memory::total_memory().map_or(0, |m| m / 10 * 8),
            max_connections_per_listener: 0,
            max_connections_per_peer: 0,
            listener_connections_per_s: 0,
            client_messages_per_s: 0,
            client_bytes_per_s: 0,
            max_handshakes: 4096,
            max_handshakes_per_peer: 1024,
            sys_interval: Duration::from_secs(10),
            session_restarts: RestartPolicy::new(1000, 10),
            shard_restarts: RestartPolicy::new(10, 10),
            root_restarts: RestartPolicy::new(5, 30),
            shared_strategy: SharedStrategy::RoundRobin,
            hibernate_after: Duration::from_secs(1),
            dead_letter_dropped: false,
            security: SecurityConfig::default(),
            users: HashMap::new(),
            authenticators: Authenticators::default(),
            node_name: "local".to_string(),
            cluster: None,
            durability: Durability::Memory,
        }
    }
}

/// A listener besides the plain TCP one (`mqtt_listen`): TLS on the accepted socket, a WebSocket upgrade, or
/// both. Every listener serves the same broker; only how bytes reach it differs.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// The address to bind.
    pub listen: SocketAddr,
    /// TLS on the accepted socket (see [`crate::tls::server_config`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// MQTT over WebSocket, upgraded at this HTTP path (e.g. "/mqtt").
    pub websocket_path: Option<String>,
}

impl ListenerSpec {
    /// The listener's kind, as logs, the API and `Broker::listener_addr` name it: "tls", "ws", "wss" or "tcp".
    pub fn kind(&self) -> &'static str {
        match (self.tls.is_some(), self.websocket_path.is_some()) {
            (true, false) => "tls",
            (false, true) => "ws",
            (true, true) => "wss",
            (false, false) => "tcp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractmq_protocol::{ListenerKind, OverflowPolicy, Pattern};

    #[test]
    fn the_queue_policy_is_the_first_matching_rule_over_the_node_wide_limits() {
        let mut config = BrokerConfig::default();
        config.limits.max_queue_len = 100;
        config.queue_rules = vec![
            QueueRule {
                listener: Some(ListenerKind::Ws),
                overflow: Some(OverflowPolicy::Disconnect),
                ..QueueRule::default()
            },
            QueueRule {
                username: Some(Pattern::new("bridge-*").unwrap()),
                max_len: Some(50_000),
                ..QueueRule::default()
            },
        ];
        let node = config.limits.online_queue();
        assert_eq!(config.queue_policy("tcp", "c", None), node);
        assert_eq!(
            config.queue_policy("ws", "c", Some("bridge-1")).overflow,
            OverflowPolicy::Disconnect
        );
        assert_eq!(config.queue_policy("ws", "c", Some("bridge-1")).max_len, 100);
        assert_eq!(config.queue_policy("tls", "c", Some("bridge-1")).max_len, 50_000);
    }

    #[test]
    fn every_listener_kind_can_be_named_by_a_rule() {
        let plain = |ws: Option<&str>| ListenerSpec {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            websocket_path: ws.map(String::from),
        };
        for spec in [plain(None), plain(Some("/mqtt"))] {
            assert_eq!(spec.kind().parse::<ListenerKind>().unwrap().as_str(), spec.kind());
        }
        for kind in ["tls", "wss"] {
            assert!(kind.parse::<ListenerKind>().is_ok());
        }
    }
}
