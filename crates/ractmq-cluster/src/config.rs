//! What a node needs to know to join a cluster, and the checks that turn a bad setting into one line an
//! operator can act on before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tls::ClusterTls;

/// How this node joins the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (letters, digits, `.`, `_`, `-`).
    pub node_name: String,
    /// Where this node listens for other nodes. Peers dial this very address, so it must be one they can
    /// reach: a concrete IP and a fixed port.
    pub cluster_listen: SocketAddr,
    /// Where the other nodes dial this node, when not `cluster_listen` (behind a NAT, a port mapping or a
    /// proxy).
    pub advertise: Option<SocketAddr>,
    /// Nodes to join through, as (name, cluster address). One reachable seed is enough: the rest of the
    /// membership is learned from it. A seed that is this node is skipped, so every node can be given the
    /// same list.
    pub seeds: Vec<(String, SocketAddr)>,
    /// Seeds given by host name, as (node name, host, port): resolved again at every redial, so that a peer
    /// back at another address is found (see `discovery.rs`). A host seed named like this node is skipped.
    pub seed_hosts: Vec<HostSeed>,
    /// How peers are found besides the seeds: [`Discovery::Static`] (the seeds only) or DNS.
    pub discovery: Discovery,
    /// The shared secret every node must have; a peer with another cookie is refused.
    pub cookie: String,
    /// How often this node tells every peer it is alive.
    pub heartbeat_interval: Duration,
    /// A peer not heard from for this long is marked down.
    pub down_after: Duration,
    /// TLS between nodes (mutual, against one CA), when set.
    pub tls: Option<ClusterTls>,
    /// Messages queued towards one other node and not yet acknowledged by it; beyond, messages for that node
    /// are dropped and counted.
    pub forward_queue: usize,
}

impl ClusterConfig {
    /// A configuration with the default timings (heartbeat every 1 s, down after 5 s) and no seeds.
    pub fn new(node_name: impl Into<String>, cluster_listen: SocketAddr, cookie: impl Into<String>) -> Self {
        ClusterConfig {
            node_name: node_name.into(),
            cluster_listen,
            advertise: None,
            seeds: Vec::new(),
            seed_hosts: Vec::new(),
            discovery: Discovery::Static,
            cookie: cookie.into(),
            heartbeat_interval: Duration::from_secs(1),
            down_after: Duration::from_secs(5),
            forward_queue: 1_000_000,
            tls: None,
        }
    }

    /// Check the configuration; the error is one line that says what to change.
    pub fn validate(&self) -> Result<(), String> {
        check_name(&self.node_name).map_err(|e| format!("--node-name '{}' {e}", self.node_name))?;
        let listen = self.cluster_listen;
        if listen.ip().is_unspecified() {
            return Err(format!(
                "--cluster-listen {listen}: peers dial this address, so give the IP they reach this node on (not {})",
                listen.ip()
            ));
        }
        if listen.port() == 0 {
            return Err(format!(
                "--cluster-listen {listen}: peers dial this address, so give a fixed port (not 0)"
            ));
        }
        if let Some(advertise) = self.advertise {
            if advertise.ip().is_unspecified() || advertise.port() == 0 {
                return Err(format!(
                    "--cluster-advertise {advertise}: peers dial this address, so give a concrete IP and a fixed port"
                ));
            }
        }
        if self.cookie.is_empty() {
            return Err("--cookie is empty: give every node of the cluster the same secret".into());
        }
        if self.forward_queue == 0 {
            return Err("--forward-queue must be more than 0 (messages queued towards one other node)".into());
        }
        if self.heartbeat_interval.is_zero() {
            return Err("--heartbeat-interval-ms must be more than 0".into());
        }
        if self.down_after <= self.heartbeat_interval {
            return Err(format!(
                "--down-after-ms ({} ms) must be longer than --heartbeat-interval-ms ({} ms), or every peer looks down between two heartbeats",
                self.down_after.as_millis(),
                self.heartbeat_interval.as_millis()
            ));
        }
        for (name, addr) in &self.seeds {
            check_name(name).map_err(|e| format!("--seed {name}@{addr}: the name {e}"))?;
            if name == &self.node_name && *addr != listen && *addr != self.advertised() {
                return Err(format!(
                    "--seed {name}@{addr} has this node's name but another address: every node needs its own --node-name"
                ));
            }
        }
        for seed in &self.seed_hosts {
            check_name(&seed.name).map_err(|e| format!("--seed {seed}: the name {e}"))?;
            if seed.port == 0 {
                return Err(format!(
                    "--seed {seed}: give the port the node listens on for other nodes (not 0)"
                ));
            }
        }
        if let Discovery::Dns { name, port } = &self.discovery {
            if name.is_empty() {
                return Err("--discovery dns needs --discovery-name (cluster.discovery_name): the DNS name whose A/AAAA records are the cluster's nodes (e.g. a Kubernetes headless service)".into());
            }
            if *port == 0 {
                return Err(
                    "--discovery-port must be a port other than 0 (the port every node's --cluster-listen uses)".into(),
                );
            }
            if self.tls.is_some() {
                return Err("--discovery dns does not work with --cluster-tls-cert yet (a peer's certificate is checked against its node name, unknown before the handshake): give the peers as --seed NAME@HOST:PORT instead".into());
            }
        }
        Ok(())
    }

    /// The host seeds other than this node (by name: its address is not known before resolving).
    pub(crate) fn other_seed_hosts(&self) -> impl Iterator<Item = &HostSeed> {
        self.seed_hosts.iter().filter(|s| s.name != self.node_name)
    }

    /// Add a seed as [`parse_seed`] gives it.
    pub fn add_seed(&mut self, seed: Seed) {
        match seed {
            Seed::Addr(name, addr) => self.seeds.push((name, addr)),
            Seed::Host(host) => self.seed_hosts.push(host),
        }
    }

    /// The seeds other than this node.
    pub(crate) fn other_seeds(&self) -> impl Iterator<Item = &(String, SocketAddr)> {
        self.seeds.iter().filter(|(name, addr)| {
            name != &self.node_name && *addr != self.cluster_listen && *addr != self.advertised()
        })
    }

    /// Where the other nodes dial this node.
    pub(crate) fn advertised(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.cluster_listen)
    }
}

/// How a node finds its peers, besides what they tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Discovery {
    /// The seeds given (`--seed`), nothing more.
    #[default]
    Static,
    /// Every A/AAAA record of `name` is a peer listening on `port` (EMQX's DNS strategy, e.g. for a
    /// Kubernetes headless service), resolved again every few seconds so that nodes that appear later are
    /// found. The seeds are dialled too.
    Dns {
        /// The DNS name.
        name: String,
        /// The cluster port of every peer.
        port: u16,
    },
}

/// A seed given by host name: node `name` listens for other nodes on `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSeed {
    /// The node's name.
    pub name: String,
    /// Its host name (resolved at each dial).
    pub host: String,
    /// Its cluster port.
    pub port: u16,
}

impl std::fmt::Display for HostSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.name, self.host, self.port)
    }
}

/// A seed as given: at an address, or at a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seed {
    /// `NAME@IP:PORT`: dialled at that address, as it is.
    Addr(String, SocketAddr),
    /// `NAME@HOST:PORT`: the host resolved again at every redial.
    Host(HostSeed),
}

/// Parse a seed given as `NAME@IP:PORT` (e.g. `n2@127.0.0.1:4371`, `n2@[::1]:4371`) or `NAME@HOST:PORT`
/// (e.g. `n2@localhost:4371`, `n2@ractmq-2.ractmq.svc:4370`).
pub fn parse_seed(s: &str) -> Result<Seed, String> {
    const EXAMPLE: &str = "e.g. n2@127.0.0.1:4371 or n2@node2.example:4371";
    let Some((name, addr)) = s.split_once('@') else {
        return Err(format!("'{s}' is not NAME@HOST:PORT ({EXAMPLE})"));
    };
    check_name(name).map_err(|e| format!("'{s}': the name {e}"))?;
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return Ok(Seed::Addr(name.to_string(), addr));
    }
    let bad = || format!("'{s}': '{addr}' is not HOST:PORT ({EXAMPLE})");
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    check_host(host).map_err(|e| format!("'{s}': the host {e}"))?;
    Ok(Seed::Host(HostSeed {
        name: name.to_string(),
        host: host.to_string(),
        port,
    }))
}

/// A DNS host name: labels of letters, digits and '-' (and '_', found in service names), separated by dots.
pub fn check_host(host: &str) -> Result<(), String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return Err("must be 1 to 253 characters long".into());
    }
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!(
            "'{host}' is not a host name (letters, digits and '-' between dots) nor an IP address"
        ));
    }
    Ok(())
}

/// Longest node name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Node names appear in log lines and in the comma-separated `$SYS/brokers`: keep them plain.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters long"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("may only contain letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        ClusterConfig::new("n1", "127.0.0.1:4370".parse().unwrap(), "secret")
    }

    #[test]
    fn defaults_are_one_second_heartbeats_and_five_seconds_to_down() {
        let c = config();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(1));
        assert_eq!(c.down_after, Duration::from_secs(5));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn seeds_parse_as_name_at_address() {
        assert_eq!(
            parse_seed("n2@127.0.0.1:4371"),
            Ok(Seed::Addr("n2".to_string(), "127.0.0.1:4371".parse().unwrap()))
        );
        assert_eq!(
            parse_seed("n2@[::1]:4371"),
            Ok(Seed::Addr("n2".to_string(), "[::1]:4371".parse().unwrap()))
        );
        assert_eq!(
            parse_seed("n2@localhost:4371"),
            Ok(Seed::Host(HostSeed {
                name: "n2".into(),
                host: "localhost".into(),
                port: 4371
            }))
        );
        assert!(matches!(
            parse_seed("n2@ractmq-2.ractmq.svc.cluster.local:4370"),
            Ok(Seed::Host(_))
        ));
        assert!(parse_seed("127.0.0.1:4371").unwrap_err().contains("NAME@HOST:PORT"));
        assert!(parse_seed("n2@somewhere").unwrap_err().contains("not HOST:PORT"));
        assert!(parse_seed("n2@somewhere:x").unwrap_err().contains("not HOST:PORT"));
        assert!(parse_seed("n2@some where:1").unwrap_err().contains("not a host name"));
        assert!(parse_seed("n,2@127.0.0.1:1").unwrap_err().contains("may only contain"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_flag_to_fix() {
        let mut c = config();
        c.cluster_listen = "0.0.0.0:4370".parse().unwrap();
        assert!(c.validate().unwrap_err().starts_with("--cluster-listen"));
        let mut c = config();
        c.cluster_listen = "127.0.0.1:0".parse().unwrap();
        assert!(c.validate().unwrap_err().contains("fixed port"));
        let mut c = config();
        c.cookie.clear();
        assert!(c.validate().unwrap_err().starts_with("--cookie"));
        let mut c = config();
        c.down_after = c.heartbeat_interval;
        assert!(c.validate().unwrap_err().starts_with("--down-after-ms"));
        let mut c = config();
        c.node_name = "n 1".into();
        assert!(c.validate().unwrap_err().starts_with("--node-name"));
        let mut c = config();
        c.seeds.push(("n1".into(), "127.0.0.1:4999".parse().unwrap()));
        assert!(c.validate().unwrap_err().contains("its own --node-name"));
        let mut c = config();
        c.discovery = Discovery::Dns {
            name: String::new(),
            port: 4370,
        };
        assert!(c.validate().unwrap_err().contains("needs --discovery-name"));
    }

    #[test]
    fn a_seed_that_is_this_node_is_skipped() {
        let mut c = config();
        c.seeds = vec![
            ("n1".into(), "127.0.0.1:4370".parse().unwrap()),
            ("n2".into(), "127.0.0.1:4371".parse().unwrap()),
        ];
        assert_eq!(c.validate(), Ok(()));
        let others: Vec<_> = c.other_seeds().map(|(n, _)| n.as_str()).collect();
        assert_eq!(others, ["n2"]);
    }
}
