//! The node's configuration as an operator writes it: one TOML file (`ractmq start -c ractmq.toml`) whose every
//! key has a default, overridden by `RACTMQ_SECTION__KEY` environment variables and then by command-line flags
//! (see `layers.rs`). [`Settings::build`] checks it and turns it into the configurations of the broker, the
//! cluster and the API; every problem is one line naming the key, the value and the fix.
//!
//! The keys, their defaults and what they mean are listed once, in `reference.rs`, from which
//! `ractmq config defaults` and docs/configuration.md are made.

pub mod layers;
mod queue_rules;
pub mod reference;
mod security;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ractmq::{
    BrokerConfig, ClusterConfig, ClusterTls, Discovery, Durability, ListenerSpec, OverflowPolicy, QoS, Redirect,
    SharedStrategy,
};
use ractmq_admin::ApiConfig;
use serde::{Deserialize, Serialize};

pub use queue_rules::{queue_rule_table, QueueRule};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub mqtt: Mqtt,
    pub limits: Limits,
    pub features: Features,
    pub session: Session,
    pub auth: Auth,
    pub cluster: Cluster,
    pub api: Api,
    pub log: Log,
    pub shutdown: Shutdown,
    pub sys: Sys,
    pub bridges: ractmq::BridgesConfig,
    pub rules: ractmq::RulesConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    pub listen: String,
    pub tls_listen: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub tls_client_ca: String,
    pub tls_cert_as_username: String,
    pub ws_listen: String,
    pub wss_listen: String,
    pub ws_path: String,
    pub max_connections: usize,
    pub max_handshakes: usize,
    pub max_handshakes_per_peer: usize,
    pub connect_timeout_s: u64,
    pub max_connections_per_listener: usize,
    pub max_connections_per_peer: usize,
    pub listener_connections_per_s: u32,
    pub shards: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_packet_size: u32,
    pub max_inflight: u16,
    pub max_queue: usize,
    pub max_queue_bytes: usize,
    pub queue_overflow: String,
    pub stall_timeout_ms: u64,
    pub max_offline_queue: usize,
    pub max_offline_queue_bytes: usize,
    pub offline_overflow: String,
    pub max_subscriptions: usize,
    pub max_retained: usize,
    pub receive_maximum: u16,
    pub topic_alias_maximum: u16,
    pub outbound_topic_aliases: u16,
    pub client_messages_per_s: u32,
    pub client_bytes_per_s: u32,
    pub memory_high_watermark_pct: u8,
    pub dead_letter_dropped: bool,
    /// Last: a list of tables is written after the section's plain keys.
    pub queue_rules: Vec<QueueRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    pub max_qos: u8,
    pub retain_available: bool,
    pub wildcard_subscriptions: bool,
    pub subscription_identifiers: bool,
    pub shared_subscriptions: bool,
    pub shared_strategy: String,
    pub server_keep_alive: u16,
    pub response_information: String,
    pub redirect_to: String,
    pub redirect_permanent: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Session {
    pub hibernate_after_ms: u64,
    pub data_dir: String,
    pub durability: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// `auto` (on unless a source is configured), `true` or `false`; a TOML boolean works too.
    #[serde(deserialize_with = "auto_or_bool")]
    pub allow_anonymous: String,
    pub users: Vec<String>,
    pub user_db: String,
    pub password_file: String,
    pub acl_file: String,
    pub jwt_secret: String,
    pub jwt_public_key: String,
    pub jwt_jwks: String,
    pub jwt_from: String,
    pub http_url: String,
    pub http_authz_url: String,
    pub flapping_detect: bool,
    pub flapping_max_count: u32,
    pub flapping_window_s: u64,
    pub flapping_ban_s: u64,
}

/// `allow_anonymous` as a word (`auto`, `true`, `false`) or, as older files have it, a TOML boolean.
fn auto_or_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Word(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::Bool(b) => b.to_string(),
        Either::Word(w) => w,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    pub node_name: String,
    pub listen: String,
    pub advertise: String,
    pub seeds: Vec<String>,
    pub discovery: String,
    pub discovery_name: String,
    pub discovery_port: u16,
    pub cookie: String,
    pub heartbeat_interval_ms: u64,
    pub down_after_ms: u64,
    pub forward_queue: usize,
    pub tls_cert: String,
    pub tls_key: String,
    pub tls_ca: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    pub enabled: bool,
    pub listen: String,
    pub token: String,
    pub users: Vec<String>,
    pub chaos: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub level: String,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sys {
    pub interval_s: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let broker = BrokerConfig::default();
        let l = &broker.limits;
        Settings {
            mqtt: Mqtt {
                listen: "0.0.0.0:1883".into(),
                tls_listen: String::new(),
                tls_cert: String::new(),
                tls_key: String::new(),
                tls_client_ca: String::new(),
                tls_cert_as_username: String::new(),
                ws_listen: String::new(),
                wss_listen: String::new(),
                ws_path: "/mqtt".into(),
                max_connections: broker.max_connections,
                max_handshakes: broker.max_handshakes,
                max_handshakes_per_peer: broker.max_handshakes_per_peer,
                connect_timeout_s: l.connect_timeout_secs,
                max_connections_per_listener: 0,
                max_connections_per_peer: 0,
                listener_connections_per_s: 0,
                shards: 4,
            },
            limits: Limits {
                max_packet_size: l.max_packet_size,
                max_inflight: l.max_inflight,
                max_queue: l.max_queue_len,
                max_queue_bytes: l.max_queue_bytes,
                queue_overflow: l.queue_overflow.to_string(),
                stall_timeout_ms: l.stall_timeout.as_millis() as u64,
                max_offline_queue: l.max_offline_queue_len,
                max_offline_queue_bytes: l.max_offline_queue_bytes,
                offline_overflow: l.offline_overflow.to_string(),
                max_subscriptions: l.max_subscriptions,
                max_retained: l.max_retained,
                receive_maximum: l.receive_maximum,
                topic_alias_maximum: l.topic_alias_maximum,
                outbound_topic_aliases: l.outbound_topic_aliases,
                client_messages_per_s: 0,
                client_bytes_per_s: 0,
                memory_high_watermark_pct: 80,
                dead_letter_dropped: false,
                queue_rules: Vec::new(),
            },
            features: Features {
                max_qos: 2,
                retain_available: true,
                wildcard_subscriptions: true,
                subscription_identifiers: true,
                shared_subscriptions: true,
                shared_strategy: "round-robin".into(),
                server_keep_alive: 0,
                response_information: String::new(),
                redirect_to: String::new(),
                redirect_permanent: false,
            },
            session: Session {
                hibernate_after_ms: 1000,
                data_dir: "data".into(),
                durability: "disk".into(),
            },
            auth: Auth {
                allow_anonymous: "auto".into(),
                users: Vec::new(),
                user_db: String::new(),
                password_file: String::new(),
                acl_file: String::new(),
                jwt_secret: String::new(),
                jwt_public_key: String::new(),
                jwt_jwks: String::new(),
                jwt_from: "password".into(),
                http_url: String::new(),
                http_authz_url: String::new(),
                flapping_detect: false,
                flapping_max_count: 15,
                flapping_window_s: 60,
                flapping_ban_s: 300,
            },
            cluster: Cluster {
                node_name: String::new(),
                listen: String::new(),
                advertise: String::new(),
                seeds: Vec::new(),
                discovery: "static".into(),
                discovery_name: String::new(),
                discovery_port: 0,
                cookie: String::new(),
                heartbeat_interval_ms: 1000,
                down_after_ms: 5000,
                forward_queue: 1_000_000,
                tls_cert: String::new(),
                tls_key: String::new(),
                tls_ca: String::new(),
            },
            api: Api {
                enabled: true,
                listen: "127.0.0.1:18083".into(),
                token: String::new(),
                users: Vec::new(),
                chaos: false,
            },
            log: Log {
                level: "info,ractor_cluster=error".into(),
                format: "text".into(),
            },
            shutdown: Shutdown { drain_timeout_ms: 5000 },
            sys: Sys { interval_s: 10 },
            bridges: ractmq::BridgesConfig::default(),
            rules: ractmq::RulesConfig::default(),
        }
    }
}

macro_rules! default_sections {
    ($($t:ident => $field:ident),*) => {
        $(impl Default for $t {
            fn default() -> Self {
                Settings::default().$field
            }
        })*
    };
}
default_sections!(Mqtt => mqtt, Limits => limits, Features => features, Session => session, Auth => auth,
    Cluster => cluster, Api => api, Log => log, Shutdown => shutdown, Sys => sys);

/// Everything a node runs with, checked.
pub struct Built {
    pub broker: BrokerConfig,
    pub bridges: ractmq::BridgesConfig,
    pub rules: ractmq::RulesConfig,
    pub cluster: Option<ClusterConfig>,
    pub api: Option<ApiConfig>,
    pub drain_timeout: Duration,
    pub log_level: String,
    pub log_json: bool,
}

fn addr(key: &str, value: &str, example: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{key} = \"{value}\": not an IP:PORT address (e.g. {example})"))
}

pub(crate) fn at_least(key: &str, value: u64, min: u64, what: &str) -> Result<(), String> {
    if value < min {
        return Err(format!("{key} = {value}: must be at least {min} ({what})"));
    }
    Ok(())
}

/// `NAME:PASSWORD` as (name, password); the name may not be empty, the password may.
pub fn split_name_password(entry: &str) -> Option<(String, String)> {
    match entry.split_once(':') {
        Some((name, password)) if !name.is_empty() => Some((name.to_string(), password.to_string())),
        _ => None,
    }
}

fn name_password(key: &str, entry: &str) -> Result<(String, String), String> {
    split_name_password(entry).ok_or_else(|| format!("{key}: \"{entry}\" is not NAME:PASSWORD"))
}

pub(crate) fn overflow_policy(key: &str, v: &str) -> Result<OverflowPolicy, String> {
    v.parse::<OverflowPolicy>()
        .map_err(|_| format!("{key} = \"{v}\": must be drop-oldest, drop-newest or disconnect"))
}

fn optional(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl Settings {
    /// Check every key and build the node's configuration; the error is one line.
    pub fn build(&self) -> Result<Built, String> {
        self.check_bounds()?;
        let (limits, queue_rules) = self.protocol_limits()?;
        self.bridges.validate()?;
        ractmq::parts::rule_engine::compiled::check(&self.rules)?;
        let shared_strategy = self.features.shared_strategy.parse::<SharedStrategy>().map_err(|_| {
            format!(
                "features.shared_strategy = \"{}\": must be round-robin, random, sticky, hash-clientid or hash-topic",
                self.features.shared_strategy
            )
        })?;
        let broker = BrokerConfig {
            mqtt_listen: addr("mqtt.listen", &self.mqtt.listen, "0.0.0.0:1883")?,
            listeners: self.listeners()?,
            shards: self.mqtt.shards,
            max_connections: self.mqtt.max_connections,
            max_handshakes: self.mqtt.max_handshakes,
            max_handshakes_per_peer: self.mqtt.max_handshakes_per_peer,
            tls_cert_as_username: match self.mqtt.tls_cert_as_username.as_str() {
                "" => None,
                field => Some(field.parse().map_err(|e| {
                    format!("mqtt.tls_cert_as_username = \"{field}\": {e} (or empty: the CONNECT's user name)")
                })?),
            },
            max_connections_per_listener: self.mqtt.max_connections_per_listener,
            max_connections_per_peer: self.mqtt.max_connections_per_peer,
            listener_connections_per_s: self.mqtt.listener_connections_per_s,
            client_messages_per_s: self.limits.client_messages_per_s,
            client_bytes_per_s: self.limits.client_bytes_per_s,
            memory_high_watermark: match self.limits.memory_high_watermark_pct {
                0 => 0,
                pct @ 1..=100 => ractmq::parts::broker::total_memory().map_or(0, |m| m / 100 * u64::from(pct)),
                pct => {
                    return Err(format!(
                        "limits.memory_high_watermark_pct = {pct}: must be 0 (off) to 100"
                    ))
                }
            },
            sys_interval: Duration::from_secs(self.sys.interval_s),
            hibernate_after: Duration::from_millis(self.session.hibernate_after_ms),
            dead_letter_dropped: self.limits.dead_letter_dropped,
            shared_strategy,
            security: self.security()?,
            durability: self.durability()?,
            users: self
                .auth
                .users
                .iter()
                .map(|u| name_password("auth.users", u))
                .collect::<Result<_, _>>()?,
            queue_rules,
            limits,
            ..BrokerConfig::default()
        };
        Ok(Built {
            broker,
            bridges: self.bridges.clone(),
            rules: self.rules.clone(),
            cluster: self.cluster_config()?,
            api: self.api_config()?,
            drain_timeout: Duration::from_millis(self.shutdown.drain_timeout_ms),
            log_level: self.log.level.clone(),
            log_json: match self.log.format.as_str() {
                "text" => false,
                "json" => true,
                other => return Err(format!("log.format = \"{other}\": must be text or json")),
            },
        })
    }

    /// Where persistent sessions, retained messages and operator state live.
    fn durability(&self) -> Result<Durability, String> {
        match self.session.durability.as_str() {
            "disk" if self.session.data_dir.is_empty() => {
                Err("session.data_dir is empty: name a directory, or set session.durability = \"memory\"".into())
            }
            "disk" => Ok(Durability::Disk(PathBuf::from(&self.session.data_dir))),
            "memory" => Ok(Durability::Memory),
            other => Err(format!("session.durability = \"{other}\": must be disk or memory")),
        }
    }

    /// The lower bounds of the numeric keys that cannot be 0 (or, for the packet size, below 16).
    fn check_bounds(&self) -> Result<(), String> {
        let l = &self.limits;
        at_least(
            "mqtt.shards",
            self.mqtt.shards as u64,
            1,
            "partitions of the subscription index",
        )?;
        at_least(
            "mqtt.max_connections",
            self.mqtt.max_connections as u64,
            1,
            "clients connected at once",
        )?;
        at_least(
            "limits.max_packet_size",
            u64::from(l.max_packet_size),
            16,
            "bytes in one MQTT packet",
        )?;
        at_least(
            "limits.max_inflight",
            u64::from(l.max_inflight),
            1,
            "QoS 1/2 messages in flight to one client",
        )?;
        at_least(
            "limits.receive_maximum",
            u64::from(l.receive_maximum),
            1,
            "QoS 2 messages a client may have unreleased",
        )?;
        at_least(
            "limits.max_queue",
            l.max_queue as u64,
            1,
            "messages queued for a connected client",
        )?;
        at_least(
            "limits.max_queue_bytes",
            l.max_queue_bytes as u64,
            1,
            "bytes queued for a connected client",
        )?;
        at_least(
            "limits.max_offline_queue_bytes",
            l.max_offline_queue_bytes as u64,
            1,
            "bytes queued for a disconnected session",
        )?;
        at_least(
            "limits.stall_timeout_ms",
            l.stall_timeout_ms,
            1,
            "milliseconds a full queue may take to drain to half",
        )
    }

    /// The protocol core's limits from `[limits]` and `[features]`, and the per-client queue rules.
    fn protocol_limits(&self) -> Result<(ractmq::Limits, Vec<ractmq::QueueRule>), String> {
        let (l, f) = (&self.limits, &self.features);
        let queue_overflow = overflow_policy("limits.queue_overflow", &l.queue_overflow)?;
        let offline_overflow = overflow_policy("limits.offline_overflow", &l.offline_overflow)?;
        let queue_rules = l
            .queue_rules
            .iter()
            .enumerate()
            .map(|(i, rule)| rule.build(&format!("limits.queue_rules[{}]", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let max_qos = match f.max_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            q => return Err(format!("features.max_qos = {q}: must be 0, 1 or 2")),
        };
        let limits = ractmq::Limits {
            max_packet_size: l.max_packet_size,
            max_inflight: l.max_inflight,
            max_queue_len: l.max_queue,
            max_queue_bytes: l.max_queue_bytes,
            queue_overflow,
            stall_timeout: Duration::from_millis(l.stall_timeout_ms),
            max_offline_queue_len: l.max_offline_queue,
            max_offline_queue_bytes: l.max_offline_queue_bytes,
            offline_overflow,
            max_subscriptions: l.max_subscriptions,
            max_retained: l.max_retained,
            receive_maximum: l.receive_maximum,
            topic_alias_maximum: l.topic_alias_maximum,
            outbound_topic_aliases: l.outbound_topic_aliases,
            max_qos,
            retain_available: f.retain_available,
            wildcard_subscriptions: f.wildcard_subscriptions,
            subscription_identifiers: f.subscription_identifiers,
            shared_subscriptions: f.shared_subscriptions,
            server_keep_alive: (f.server_keep_alive > 0).then_some(f.server_keep_alive),
            response_information: optional(&f.response_information),
            redirect: optional(&f.redirect_to).map(|reference| Redirect {
                reference,
                permanent: f.redirect_permanent,
            }),
            connect_timeout_secs: self.mqtt.connect_timeout_s,
            ..ractmq::Limits::default()
        };
        Ok((limits, queue_rules))
    }

    /// The TLS, WebSocket and secure WebSocket listeners that are configured, their files read.
    fn listeners(&self) -> Result<Vec<ListenerSpec>, String> {
        let m = &self.mqtt;
        let listen = |key: &str, value: &str, example: &str| match value {
            "" => Ok(None),
            v => addr(key, v, example).map(Some),
        };
        let tls_listen = listen("mqtt.tls_listen", &m.tls_listen, "0.0.0.0:8883")?;
        let ws_listen = listen("mqtt.ws_listen", &m.ws_listen, "0.0.0.0:8083")?;
        let wss_listen = listen("mqtt.wss_listen", &m.wss_listen, "0.0.0.0:8084")?;
        if !m.ws_path.starts_with('/') {
            return Err(format!(
                "mqtt.ws_path = \"{}\": must be an HTTP path starting with / (e.g. /mqtt)",
                m.ws_path
            ));
        }
        let tls = if tls_listen.is_some() || wss_listen.is_some() {
            if m.tls_cert.is_empty() || m.tls_key.is_empty() {
                return Err("mqtt.tls_listen or mqtt.wss_listen is set but mqtt.tls_cert or mqtt.tls_key is empty: a TLS listener needs a certificate and its key (--tls-cert, --tls-key)".into());
            }
            let (cert, key, ca) = (
                Path::new(&m.tls_cert),
                Path::new(&m.tls_key),
                Path::new(&m.tls_client_ca),
            );
            Some(ractmq::tls::server_config(&ractmq::tls::ServerFiles {
                cert: (cert, "mqtt.tls_cert"),
                key: (key, "mqtt.tls_key"),
                client_ca: (!m.tls_client_ca.is_empty()).then_some((ca, "mqtt.tls_client_ca")),
            })?)
        } else {
            None
        };
        let ws_path = Some(m.ws_path.clone());
        let specs = [
            tls_listen.map(|listen| ListenerSpec {
                listen,
                tls: tls.clone(),
                websocket_path: None,
            }),
            ws_listen.map(|listen| ListenerSpec {
                listen,
                tls: None,
                websocket_path: ws_path.clone(),
            }),
            wss_listen.map(|listen| ListenerSpec {
                listen,
                tls: tls.clone(),
                websocket_path: ws_path.clone(),
            }),
        ];
        Ok(specs.into_iter().flatten().collect())
    }

    fn cluster_config(&self) -> Result<Option<ClusterConfig>, String> {
        let c = &self.cluster;
        if c.node_name.is_empty() {
            if !c.listen.is_empty() || !c.seeds.is_empty() || c.discovery != "static" {
                return Err("cluster.node_name is empty but cluster.listen, cluster.seeds or cluster.discovery is set: give this node a name to cluster it (--node-name)".into());
            }
            return Ok(None);
        }
        if c.listen.is_empty() {
            return Err(format!(
                "cluster.listen is empty: node {} needs the address other nodes dial (--cluster-listen, e.g. 127.0.0.1:4370)",
                c.node_name
            ));
        }
        let mut config = ClusterConfig::new(
            c.node_name.clone(),
            addr("cluster.listen", &c.listen, "127.0.0.1:4370")?,
            c.cookie.clone(),
        );
        config.advertise = match c.advertise.as_str() {
            "" => None,
            a => Some(addr("cluster.advertise", a, "10.0.0.5:4370")?),
        };
        for seed in &c.seeds {
            config.add_seed(ractmq::parts::cluster::parse_seed(seed).map_err(|e| format!("cluster.seeds: {e}"))?);
        }
        config.discovery = match c.discovery.as_str() {
            "static" => {
                if !c.discovery_name.is_empty() {
                    return Err(format!(
                        "cluster.discovery_name '{}' is set but cluster.discovery is static: add --discovery dns (cluster.discovery = \"dns\") to find peers by that name",
                        c.discovery_name
                    ));
                }
                Discovery::Static
            }
            "dns" => Discovery::Dns {
                name: c.discovery_name.clone(),
                port: match c.discovery_port {
                    0 => config.cluster_listen.port(),
                    p => p,
                },
            },
            other => {
                return Err(format!(
                    "cluster.discovery '{other}' is not a discovery: give static (the seeds only) or dns (with cluster.discovery_name)"
                ))
            }
        };
        config.heartbeat_interval = Duration::from_millis(c.heartbeat_interval_ms);
        config.down_after = Duration::from_millis(c.down_after_ms);
        config.forward_queue = c.forward_queue;
        config.tls = match (c.tls_cert.as_str(), c.tls_key.as_str(), c.tls_ca.as_str()) {
            ("", "", "") => None,
            (cert, key, ca) if !cert.is_empty() && !key.is_empty() && !ca.is_empty() => Some(ClusterTls {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
                ca: PathBuf::from(ca),
            }),
            _ => {
                return Err(
                    "cluster.tls_cert, cluster.tls_key and cluster.tls_ca go together: give all three or none".into(),
                )
            }
        };
        config.validate()?;
        Ok(Some(config))
    }

    fn api_config(&self) -> Result<Option<ApiConfig>, String> {
        let a = &self.api;
        if !a.enabled {
            return Ok(None);
        }
        let config = ApiConfig {
            listen: addr("api.listen", &a.listen, "127.0.0.1:18083")?,
            token: optional(&a.token),
            users: a
                .users
                .iter()
                .map(|u| name_password("api.users", u))
                .collect::<Result<_, _>>()?,
            chaos: a.chaos,
        };
        config.validate()?;
        Ok(Some(config))
    }
}
