//! The banned list: clients refused at CONNECT by client id, user name or address, for a while or for good.
//!
//! Operators add bans over REST; the flapping detector and the login throttle add them automatically. The
//! list is plain data with serde, so it can travel over REST and between cluster nodes; time is always passed
//! in (unix seconds), never read here. A check costs hash lookups for the client id, the user name and the
//! exact address, then a scan of the banned networks, which are capped separately to keep that scan short.
//! The whole list is capped too: adding past the cap is an error the operator sees, never a silent eviction
//! of someone else's ban.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;

/// The default cap on the number of bans.
pub const DEFAULT_MAX_BANS: usize = 100_000;
/// The default cap on bans of networks wider than one address (each connect scans them).
pub const DEFAULT_MAX_NETWORK_BANS: usize = 1_000;

/// What a ban matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BanTarget {
    /// Exactly this client id.
    ClientId(String),
    /// Exactly this user name.
    Username(String),
    /// Peers in this network (a single address is a /32 or /128).
    Peer(IpNet),
}

impl BanTarget {
    /// The target an operator names as `kind` and `value`, EMQX's banned API's names: `clientid`, `username` or
    /// `peerhost` (an address or a network in CIDR notation).
    pub fn named(kind: &str, value: &str) -> Result<BanTarget, String> {
        if value.is_empty() {
            return Err(format!("ban {kind}: the value is empty"));
        }
        match kind {
            "clientid" => Ok(BanTarget::ClientId(value.to_string())),
            "username" => Ok(BanTarget::Username(value.to_string())),
            "peerhost" => crate::acl::native::parse_net(value)
                .map(BanTarget::Peer)
                .ok_or_else(|| format!("'{value}' is not an IP address or a network such as 10.0.0.0/8")),
            other => Err(format!("'{other}' is not clientid, username or peerhost")),
        }
    }

    /// The kind and value an operator names this target by (the inverse of [`BanTarget::named`]).
    pub fn name(&self) -> (&'static str, String) {
        match self {
            BanTarget::ClientId(id) => ("clientid", id.clone()),
            BanTarget::Username(name) => ("username", name.clone()),
            BanTarget::Peer(net) => ("peerhost", net.to_string()),
        }
    }

    /// Does this target name `client_id`, `username` or `peer`?
    pub fn covers(&self, client_id: &str, username: Option<&str>, peer: Option<std::net::IpAddr>) -> bool {
        match self {
            BanTarget::ClientId(id) => id == client_id,
            BanTarget::Username(name) => username == Some(name.as_str()),
            BanTarget::Peer(net) => peer.is_some_and(|p| net.contains(&p.to_canonical())),
        }
    }

    /// The same target with an address network's host bits cleared, so `10.1.2.3/8` and `10.0.0.0/8` are one.
    fn normalized(self) -> BanTarget {
        match self {
            BanTarget::Peer(net) => BanTarget::Peer(net.trunc()),
            other => other,
        }
    }
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::ClientId(id) => write!(f, "client id {id:?}"),
            BanTarget::Username(name) => write!(f, "user name {name:?}"),
            BanTarget::Peer(net) => write!(f, "address {net}"),
        }
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// Who is banned.
    pub who: BanTarget,
    /// Why, for the operator (and the log line of a refused CONNECT).
    pub reason: String,
    /// Who banned: an operator's name, `flapping detector`, `login throttle`.
    pub by: String,
    /// When the ban was made, unix seconds.
    pub at: u64,
    /// When it ends, unix seconds (exclusive); `None` for never.
    pub until: Option<u64>,
}

impl Ban {
    /// True if the ban is in force at `now`.
    pub fn is_active(&self, now: u64) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Why a ban was not added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanError {
    /// The list holds its maximum number of bans (even after dropping those expired at the new ban's `at`).
    Full {
        /// The cap.
        max: usize,
    },
    /// The network-ban part of the list is full.
    TooManyNetworks {
        /// The cap.
        max: usize,
    },
    /// `until` is not after `at`: the ban would never be in force.
    EndsBeforeItStarts,
}

impl fmt::Display for BanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanError::Full { max } => write!(
                f,
                "the banned list is full ({max} bans); delete some or raise the limit"
            ),
            BanError::TooManyNetworks { max } => {
                write!(
                    f,
                    "too many network bans ({max}); ban a wider network or raise the limit"
                )
            }
            BanError::EndsBeforeItStarts => write!(f, "the ban ends (`until`) before it starts (`at`)"),
        }
    }
}

impl std::error::Error for BanError {}

/// The bans in force on this node.
#[derive(Debug, Clone)]
pub struct BannedList {
    by_client_id: HashMap<String, Ban>,
    by_username: HashMap<String, Ban>,
    /// Single addresses, found by hash.
    by_address: HashMap<IpAddr, Ban>,
    /// Wider networks, scanned.
    networks: Vec<Ban>,
    max: usize,
    max_networks: usize,
}

impl Default for BannedList {
    fn default() -> Self {
        BannedList::new(DEFAULT_MAX_BANS, DEFAULT_MAX_NETWORK_BANS)
    }
}

impl BannedList {
    /// An empty list holding at most `max` bans, of which at most `max_networks` ban networks wider than one
    /// address.
    pub fn new(max: usize, max_networks: usize) -> BannedList {
        BannedList {
            by_client_id: HashMap::new(),
            by_username: HashMap::new(),
            by_address: HashMap::new(),
            networks: Vec::new(),
            max,
            max_networks,
        }
    }

    /// The number of bans.
    pub fn len(&self) -> usize {
        self.by_client_id.len() + self.by_username.len() + self.by_address.len() + self.networks.len()
    }

    /// True if nobody is banned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add `ban`, replacing any ban of the same target (returned). When the list is full, bans already expired
    /// at the new ban's `at` are dropped first.
    pub fn add(&mut self, mut ban: Ban) -> Result<Option<Ban>, BanError> {
        if ban.until.is_some_and(|until| until <= ban.at) {
            return Err(BanError::EndsBeforeItStarts);
        }
        ban.who = ban.who.normalized();
        let replaces = self.get(&ban.who).is_some();
        if !replaces && self.len() >= self.max {
            self.expire(ban.at);
            if self.len() >= self.max {
                return Err(BanError::Full { max: self.max });
            }
        }
        Ok(match &ban.who {
            BanTarget::ClientId(id) => self.by_client_id.insert(id.clone(), ban),
            BanTarget::Username(name) => self.by_username.insert(name.clone(), ban),
            BanTarget::Peer(net) if is_single_address(net) => self.by_address.insert(net.addr(), ban),
            BanTarget::Peer(net) => {
                let net = *net;
                if let Some(old) = self.networks.iter_mut().find(|b| b.who == BanTarget::Peer(net)) {
                    Some(std::mem::replace(old, ban))
                } else if self.networks.len() >= self.max_networks {
                    return Err(BanError::TooManyNetworks { max: self.max_networks });
                } else {
                    self.networks.push(ban);
                    None
                }
            }
        })
    }

    /// The ban of exactly `target`, expired or not.
    pub fn get(&self, target: &BanTarget) -> Option<&Ban> {
        match target.clone().normalized() {
            BanTarget::ClientId(id) => self.by_client_id.get(&id),
            BanTarget::Username(name) => self.by_username.get(&name),
            BanTarget::Peer(net) if is_single_address(&net) => self.by_address.get(&net.addr()),
            BanTarget::Peer(net) => self.networks.iter().find(|b| b.who == BanTarget::Peer(net)),
        }
    }

    /// Remove the ban of exactly `target` (a network ban is not lifted by deleting one address in it).
    pub fn delete(&mut self, target: &BanTarget) -> Option<Ban> {
        match target.clone().normalized() {
            BanTarget::ClientId(id) => self.by_client_id.remove(&id),
            BanTarget::Username(name) => self.by_username.remove(&name),
            BanTarget::Peer(net) if is_single_address(&net) => self.by_address.remove(&net.addr()),
            BanTarget::Peer(net) => {
                let at = self.networks.iter().position(|b| b.who == BanTarget::Peer(net))?;
                Some(self.networks.swap_remove(at))
            }
        }
    }

    /// Every ban, expired ones included until [`BannedList::expire`] drops them; in no particular order.
    pub fn list(&self) -> Vec<&Ban> {
        self.by_client_id
            .values()
            .chain(self.by_username.values())
            .chain(self.by_address.values())
            .chain(&self.networks)
            .collect()
    }

    /// The ban in force at `now` that refuses `client`, if any: by client id, then user name, then address,
    /// then network.
    pub fn check(&self, client: &ClientInfo, now: u64) -> Option<&Ban> {
        let peer = client.peer.to_canonical();
        let active = |b: &&Ban| b.is_active(now);
        self.by_client_id
            .get(&client.client_id)
            .filter(active)
            .or_else(|| {
                client
                    .username
                    .as_ref()
                    .and_then(|u| self.by_username.get(u))
                    .filter(active)
            })
            .or_else(|| self.by_address.get(&peer).filter(active))
            .or_else(|| {
                self.networks
                    .iter()
                    .filter(active)
                    .find(|b| matches!(&b.who, BanTarget::Peer(net) if net.contains(&peer)))
            })
    }

    /// Drop the bans that ended at or before `now`; returns how many.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.len();
        self.by_client_id.retain(|_, b| b.is_active(now));
        self.by_username.retain(|_, b| b.is_active(now));
        self.by_address.retain(|_, b| b.is_active(now));
        self.networks.retain(|b| b.is_active(now));
        before - self.len()
    }
}

fn is_single_address(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_names_targets_as_emqx_does() {
        for (kind, value) in [("clientid", "c1"), ("username", "alice"), ("peerhost", "10.0.0.0/8")] {
            let target = BanTarget::named(kind, value).unwrap();
            assert_eq!(target.name(), (kind, value.to_string()));
        }
        assert_eq!(
            BanTarget::named("peerhost", "10.1.2.3").unwrap().name().1,
            "10.1.2.3/32"
        );
        assert!(BanTarget::named("peerhost", "not-an-address")
            .unwrap_err()
            .contains("not an IP address"));
        assert!(BanTarget::named("nickname", "x").is_err());
        assert!(BanTarget::named("clientid", "").is_err());
    }

    fn ban(who: BanTarget, at: u64, until: Option<u64>) -> Ban {
        Ban {
            who,
            reason: "test".into(),
            by: "tester".into(),
            at,
            until,
        }
    }

    fn client(id: &str, user: Option<&str>, ip: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            username: user.map(Into::into),
            peer: ip.parse().unwrap(),
            listener: "tcp".into(),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn check_by_each_target_with_expiry() {
        let mut list = BannedList::default();
        list.add(ban(BanTarget::ClientId("c1".into()), 100, Some(200))).unwrap();
        list.add(ban(BanTarget::Username("mallory".into()), 100, None)).unwrap();
        list.add(ban(BanTarget::Peer(net("192.0.2.7/32")), 100, Some(150)))
            .unwrap();
        list.add(ban(BanTarget::Peer(net("198.51.100.9/24")), 100, None))
            .unwrap();
        list.add(ban(BanTarget::Peer(net("2001:db8::/32")), 100, None)).unwrap();
        let cases = [
            (client("c1", None, "10.0.0.1"), 150, true),
            (client("c1", None, "10.0.0.1"), 200, false),
            (client("c2", Some("mallory"), "10.0.0.1"), 10_000, true),
            (client("c2", Some("alice"), "192.0.2.7"), 149, true),
            (client("c2", Some("alice"), "192.0.2.7"), 150, false),
            (client("c2", None, "::ffff:192.0.2.7"), 120, true),
            (client("c2", None, "198.51.100.200"), 120, true),
            (client("c2", None, "198.51.101.1"), 120, false),
            (client("c2", None, "2001:db8::42"), 120, true),
            (client("c2", None, "2001:db9::42"), 120, false),
        ];
        for (c, now, banned) in &cases {
            assert_eq!(list.check(c, *now).is_some(), *banned, "{c:?} at {now}");
        }
        assert_eq!(list.len(), 5);
        assert_eq!(list.expire(200), 2);
        assert_eq!(list.len(), 3);
        assert_eq!(list.list().len(), 3);
    }

    #[test]
    fn add_replaces_the_same_target_and_delete_removes_it() {
        let mut list = BannedList::default();
        assert_eq!(
            list.add(ban(BanTarget::Peer(net("10.1.2.3/8")), 1, None)).unwrap(),
            None
        );
        // The same network written differently is the same target.
        let old = list
            .add(ban(BanTarget::Peer(net("10.0.0.0/8")), 2, None))
            .unwrap()
            .unwrap();
        assert_eq!(old.at, 1);
        assert_eq!(list.len(), 1);
        assert!(list.get(&BanTarget::Peer(net("10.9.9.9/8"))).is_some());
        // Deleting one address inside does not lift the network ban.
        assert_eq!(list.delete(&BanTarget::Peer(net("10.0.0.1/32"))), None);
        assert!(list.delete(&BanTarget::Peer(net("10.0.0.0/8"))).is_some());
        assert!(list.is_empty());
        list.add(ban(BanTarget::ClientId("x".into()), 1, None)).unwrap();
        assert!(list
            .add(ban(BanTarget::ClientId("x".into()), 5, Some(9)))
            .unwrap()
            .is_some());
        assert_eq!(list.get(&BanTarget::ClientId("x".into())).unwrap().until, Some(9));
        assert_eq!(
            list.add(ban(BanTarget::Username("u".into()), 10, Some(10))),
            Err(BanError::EndsBeforeItStarts)
        );
    }

    #[test]
    fn the_list_is_bounded() {
        let mut list = BannedList::new(3, 1);
        list.add(ban(BanTarget::ClientId("a".into()), 1, Some(10))).unwrap();
        list.add(ban(BanTarget::ClientId("b".into()), 1, None)).unwrap();
        list.add(ban(BanTarget::Peer(net("10.0.0.0/8")), 1, None)).unwrap();
        let full = list.add(ban(BanTarget::ClientId("c".into()), 5, None)).unwrap_err();
        assert_eq!(full, BanError::Full { max: 3 });
        assert!(full.to_string().contains("full (3 bans)"));
        // Replacing an existing ban is fine when full.
        list.add(ban(BanTarget::ClientId("b".into()), 5, None)).unwrap();
        // A ban made after `a` expired makes room by dropping it.
        list.add(ban(BanTarget::ClientId("c".into()), 10, None)).unwrap();
        assert!(list.get(&BanTarget::ClientId("a".into())).is_none());
        list.delete(&BanTarget::ClientId("c".into()));
        assert_eq!(
            list.add(ban(BanTarget::Peer(net("11.0.0.0/8")), 10, None)),
            Err(BanError::TooManyNetworks { max: 1 })
        );
    }

    #[test]
    fn bans_round_trip_through_json() {
        let b = ban(BanTarget::Peer(net("10.0.0.0/8")), 7, Some(9));
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"who":{"peer":"10.0.0.0/8"},"reason":"test","by":"tester","at":7,"until":9}"#
        );
        assert_eq!(serde_json::from_str::<Ban>(&json).unwrap(), b);
        let id: Ban =
            serde_json::from_str(r#"{"who":{"client_id":"c"},"reason":"","by":"","at":0,"until":null}"#).unwrap();
        assert_eq!(id.who, BanTarget::ClientId("c".into()));
    }
}
