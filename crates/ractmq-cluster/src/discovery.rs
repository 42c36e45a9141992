//! Finding peers by name: seeds given as `NAME@HOST:PORT`, and `--discovery dns`, where every A/AAAA record
//! of one name is a peer (EMQX's DNS strategy, e.g. a Kubernetes headless service).
//!
//! Each is a [`Target`] the connector resolves again and again: a host seed whenever its node has no link
//! (at the pace of its own backoff, so a peer back at another address is found at the next redial), the DNS
//! name every [`DNS_EVERY`] and, while one of its addresses has no link, at the pace of its backoff. What
//! a resolution finds is dialled like any member (`connector.rs`); a peer found by DNS has no known name, the
//! handshake tells it, and the hello makes it a member. This node's own addresses are skipped, and a link
//! that turns out to be to this node itself is closed and its address never dialled again.
//!
//! Resolution is tokio's [`tokio::net::lookup_host`]: the system's getaddrinfo on tokio's blocking pool,
//! never in an actor (the connector spawns a task and hears the result as a message), each bounded by
//! [`RESOLVE_TIMEOUT`]. Chosen over hickory-resolver because it resolves exactly as every other program on
//! the host does (`/etc/hosts`, nsswitch, resolv.conf's search domains and ndots as Kubernetes sets them),
//! and adds no dependency; what it lacks (TTLs, cancelling a lookup under way: a timed-out one finishes on
//! its blocking thread and is dropped) does not matter at one lookup per target every few seconds.
//!
//! A name that does not resolve is not fatal: one warning per target until it resolves again (then one
//! line saying so), the retries at debug level.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, MAX_RETRY};
use crate::config::{ClusterConfig, Discovery};

/// How long one resolution may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the DNS discovery name is resolved again when all it gave is linked, so that nodes that
/// appear later are found.
pub const DNS_EVERY: Duration = Duration::from_secs(5);

/// A name to resolve into peers.
#[derive(Debug)]
pub struct Target {
    /// The node's name for a host seed; `None` for the DNS discovery name (any number of nodes).
    pub node: Option<String>,
    pub host: String,
    pub port: u16,
    /// What the last successful resolution gave.
    pub addrs: Vec<SocketAddr>,
    backoff: Backoff,
    /// When a DNS name is resolved again even with every address linked.
    next_refresh: Option<Instant>,
    resolving: bool,
    /// A failure was reported (until it resolves again).
    failing: bool,
}

impl Target {
    fn new(node: Option<String>, host: &str, port: u16) -> Target {
        Target {
            node,
            host: host.to_string(),
            port,
            addrs: Vec::new(),
            backoff: Backoff::default(),
            next_refresh: None,
            resolving: false,
            failing: false,
        }
    }

    /// The targets of `config`: its host seeds (other than this node) and its DNS name, if any.
    pub fn all(config: &ClusterConfig) -> Vec<Target> {
        let mut targets: Vec<Target> = config
            .other_seed_hosts()
            .map(|s| Target::new(Some(s.name.clone()), &s.host, s.port))
            .collect();
        if let Discovery::Dns { name, port } = &config.discovery {
            targets.push(Target::new(None, name, *port));
        }
        targets
    }

    /// How the operator gave it.
    pub fn describe(&self) -> String {
        match &self.node {
            Some(node) => format!("cluster seed {node}@{}:{}", self.host, self.port),
            None => format!("--discovery-name {}", self.host),
        }
    }

    /// Whether to resolve it at `now`. `wanted`: a host seed's node has no link, or one of the DNS name's
    /// addresses has none (then it goes at the pace of its backoff; else a host seed waits, and a DNS name is
    /// refreshed every [`DNS_EVERY`]). Starts the resolution when it says yes.
    pub fn start(&mut self, now: Instant, wanted: bool) -> bool {
        if self.resolving {
            return false;
        }
        let due = if wanted {
            self.backoff.due(now)
        } else {
            self.backoff = Backoff::default();
            self.node.is_none() && self.next_refresh.is_none_or(|t| now >= t)
        };
        if due {
            self.resolving = true;
            if wanted {
                self.backoff.attempt(now);
            }
            self.next_refresh = Some(now + DNS_EVERY);
        }
        due
    }

    /// A resolution finished; true when it found addresses (now in `addrs`) to dial.
    pub fn resolved(&mut self, result: Result<Vec<SocketAddr>, String>) -> bool {
        self.resolving = false;
        let result = result.and_then(|a| {
            if a.is_empty() {
                Err("no addresses".into())
            } else {
                Ok(a)
            }
        });
        match result {
            Ok(addrs) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!("{} resolves again, to {addrs:?}", self.describe());
                }
                self.addrs = addrs;
                true
            }
            Err(e) if !self.failing => {
                self.failing = true;
                let hint = match self.node {
                    Some(_) => "is the host name in --seed right, and do DNS or /etc/hosts know it?",
                    None => "is --discovery-name right, and does DNS know it yet?",
                };
                tracing::warn!(
                    "cannot resolve {}: {e}; retrying every {} s at most ({hint})",
                    self.describe(),
                    MAX_RETRY.as_secs()
                );
                false
            }
            Err(e) => {
                tracing::debug!("cannot resolve {} (again): {e}", self.describe());
                false
            }
        }
    }
}

/// Resolve `host:port`, within [`RESOLVE_TIMEOUT`]; the addresses in the order getaddrinfo gives them,
/// without repeats.
pub async fn resolve(host: String, port: u16) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await {
        Ok(Ok(found)) => {
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for a in found {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
            Ok(addrs)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_seed_is_resolved_only_while_its_node_has_no_link() {
        let mut t = Target::new(Some("n1".into()), "localhost", 4370);
        let now = Instant::now();
        assert!(t.start(now, true));
        // One at a time.
        assert!(!t.start(now + Duration::from_secs(10), true));
        assert!(t.resolved(Ok(vec!["127.0.0.1:4370".parse().unwrap()])));
        assert!(!t.start(now + Duration::from_secs(10), false));
        assert!(t.start(now + Duration::from_secs(10), true));
    }

    #[test]
    fn a_dns_name_is_refreshed_even_when_all_is_linked() {
        let mut t = Target::new(None, "peers.test", 4370);
        let now = Instant::now();
        assert!(t.start(now, false));
        assert!(t.resolved(Ok(vec!["127.0.0.1:4370".parse().unwrap()])));
        assert!(!t.start(now + Duration::from_secs(1), false));
        assert!(t.start(now + DNS_EVERY, false));
        assert!(!t.resolved(Err("nope".into())));
        assert_eq!(t.addrs.len(), 1, "a failure keeps what was found");
    }

    #[tokio::test]
    async fn localhost_resolves() {
        let addrs = resolve("localhost".into(), 4370).await.unwrap();
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 4370),
            "{addrs:?}"
        );
    }
}
