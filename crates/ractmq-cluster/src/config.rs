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
        Ok(())
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

/// Parse a seed given as `NAME@HOST:PORT`, e.g. `n2@127.0.0.1:4371`.
pub fn parse_seed(s: &str) -> Result<(String, SocketAddr), String> {
    let Some((name, addr)) = s.split_once('@') else {
        return Err(format!("'{s}' is not NAME@IP:PORT (e.g. n2@127.0.0.1:4371)"));
    };
    check_name(name).map_err(|e| format!("'{s}': the name {e}"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("'{s}': '{addr}' is not IP:PORT (e.g. n2@127.0.0.1:4371)"))?;
    Ok((name.to_string(), addr))
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
            Ok(("n2".to_string(), "127.0.0.1:4371".parse().unwrap()))
        );
        assert_eq!(
            parse_seed("n2@[::1]:4371"),
            Ok(("n2".to_string(), "[::1]:4371".parse().unwrap()))
        );
        assert!(parse_seed("127.0.0.1:4371").unwrap_err().contains("NAME@IP:PORT"));
        assert!(parse_seed("n2@somewhere").unwrap_err().contains("not IP:PORT"));
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
