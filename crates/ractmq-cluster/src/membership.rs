//! The membership view and its failure detector, as plain data: who is in the cluster, where to dial them,
//! and whether they are up.
//!
//! The agent feeds it what it hears (hellos) and the passage of time (sweeps); it answers with the changes
//! worth announcing. No I/O and no clock of its own, so the rules are tested with made-up instants. It lives
//! in the cluster's shared state, outside any actor, so an actor restart does not forget the membership.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::ClusterConfig;
use crate::wire::{Hello, PeerAddr, MAX_PEERS};

/// What this node knows of a member's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Known (a seed, or named by a peer) but not heard from yet.
    Connecting,
    /// Heard from within `down_after`.
    Up,
    /// Was up, then silent for `down_after`. It is still dialled, and comes back up when heard again.
    Down,
    /// Left the cluster for good (`ractmq ctl cluster leave`) or forgotten by an operator while down
    /// (`ractmq ctl cluster forget`): no longer dialled, its routes gone. A new run of it (a new incarnation)
    /// that dials in joins again.
    Left,
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Connecting => "connecting",
            MemberState::Up => "up",
            MemberState::Down => "down",
            MemberState::Left => "left",
        })
    }
}

/// One node of the cluster, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node name.
    pub name: String,
    /// Where nodes dial it: the cluster address it advertises (a seed's given address until it is heard).
    pub cluster_addr: SocketAddr,
    /// Its MQTT listener, once it has said.
    pub mqtt_addr: Option<SocketAddr>,
    /// Whether it is up, as this node last judged.
    pub state: MemberState,
    /// This node itself (always up).
    pub is_self: bool,
    /// A link to it is open (authenticated) right now, as the connector last saw (this node: true).
    pub linked: bool,
    /// Given with `--seed` (rather than learned from a peer).
    pub seed: bool,
    /// When it was last heard from (`None`: never, or this node).
    pub last_heard: Option<Instant>,
    /// Its process's incarnation, once heard: a new one means it restarted.
    pub incarnation: Option<u64>,
    /// The nodes it saw up when it last said hello (empty for this node and until heard): with every
    /// member's, the links of the whole cluster as this node knows them.
    pub sees: Vec<String>,
    /// The messages it had queued towards each node when it last said hello (bounded like `sees`).
    pub queues: Vec<(String, u64)>,
}

/// A change worth telling the rest of the broker (and the log) about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member is up: first heard, heard again after being down, or back with a new incarnation.
    Joined(Member),
    /// A member is down.
    Down {
        /// The member, as it is now.
        member: Member,
        /// Why it is down.
        reason: DownReason,
    },
    /// A member left for good, or was forgotten by an operator (`forgotten`).
    Left {
        /// The member, as it is now.
        member: Member,
        /// Forgotten while down, rather than left by itself.
        forgotten: bool,
    },
}

/// Why a member was marked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Not heard from for this long.
    Silent(Duration),
    /// It said hello with a new incarnation: its previous run ended (its state with it) before it was
    /// found silent. A `Joined` for the new run follows.
    Restarted,
}

impl fmt::Display for MemberEvent {
    /// The one log line for the change.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberEvent::Joined(m) => write!(f, "node {}@{} joined", m.name, m.cluster_addr),
            MemberEvent::Down {
                member,
                reason: DownReason::Silent(after),
            } => write!(f, "node {} down: no heartbeat for {}", member.name, human(*after)),
            MemberEvent::Down {
                member,
                reason: DownReason::Restarted,
            } => write!(
                f,
                "node {} down: it restarted, so its previous run is gone",
                member.name
            ),
            MemberEvent::Left {
                member,
                forgotten: false,
            } => write!(f, "node {} left the cluster; it is no longer dialled", member.name),
            MemberEvent::Left {
                member,
                forgotten: true,
            } => write!(
                f,
                "node {} forgotten by an operator; it is no longer dialled",
                member.name
            ),
        }
    }
}

/// "5 s", or "1500 ms" when it is not whole seconds.
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What reading a hello found: changes to announce, and warnings for the operator (each said once).
#[derive(Debug, Default)]
pub struct Heard {
    pub events: Vec<MemberEvent>,
    pub warnings: Vec<String>,
}

/// Every member this node knows, itself included; at most [`MAX_PEERS`] + 1 (a peer cannot grow it beyond).
#[derive(Debug)]
pub struct Membership {
    me: String,
    members: BTreeMap<String, Member>,
    down_after: Duration,
    /// Warnings already given, so that a peer repeating itself every heartbeat is reported once.
    warned: HashSet<String>,
}

impl Membership {
    /// This node (up) and its seeds (connecting).
    pub fn new(config: &ClusterConfig, incarnation: u64) -> Self {
        let mut members = BTreeMap::new();
        members.insert(
            config.node_name.clone(),
            Member {
                name: config.node_name.clone(),
                cluster_addr: config.advertised(),
                mqtt_addr: None,
                state: MemberState::Up,
                is_self: true,
                linked: true,
                seed: false,
                last_heard: None,
                incarnation: Some(incarnation),
                sees: Vec::new(),
                queues: Vec::new(),
            },
        );
        for (name, addr) in config.other_seeds() {
            members.insert(name.clone(), Member::connecting(name, *addr, true));
        }
        Membership {
            me: config.node_name.clone(),
            members,
            down_after: config.down_after,
            warned: HashSet::new(),
        }
    }

    fn me(&self) -> &Member {
        &self.members[&self.me]
    }

    pub fn set_own_mqtt_addr(&mut self, addr: Option<SocketAddr>) {
        if let Some(me) = self.members.get_mut(&self.me) {
            me.mqtt_addr = addr;
        }
    }

    /// This node's hello: who it is and the members it sees up.
    pub fn hello(&self) -> Hello {
        let me = self.me();
        Hello {
            name: me.name.clone(),
            cluster_addr: me.cluster_addr,
            mqtt_addr: me.mqtt_addr,
            incarnation: me.incarnation.unwrap_or_default(),
            peers: self
                .members
                .values()
                .filter(|m| !m.is_self && m.state == MemberState::Up)
                .map(|m| PeerAddr {
                    name: m.name.clone(),
                    cluster_addr: m.cluster_addr,
                })
                .collect(),
            // Filled in by the agent, which sends it (with the queues).
            map_digest: 0,
            queues: Vec::new(),
        }
    }

    /// A peer's hello arrived at `now`.
    pub fn heard(&mut self, hello: &Hello, now: Instant) -> Heard {
        let mut out = Heard::default();
        let (my_addr, my_incarnation) = (self.me().cluster_addr, self.me().incarnation);
        if hello.name == self.me || hello.cluster_addr == my_addr {
            if hello.incarnation != my_incarnation.unwrap_or_default() {
                self.warn_once(
                    &mut out,
                    format!("clash:{}", hello.name),
                    format!(
                        "another node says it is {} at {} while this node is {} at {my_addr}: every node needs its own --node-name and --cluster-listen",
                        hello.name, hello.cluster_addr, self.me
                    ),
                );
            }
            return out;
        }
        if !self.members.contains_key(&hello.name) {
            self.forget_misnamed(hello, &mut out);
            if !self.has_room(&hello.name, &mut out) {
                return out;
            }
            self.members.insert(
                hello.name.clone(),
                Member::connecting(&hello.name, hello.cluster_addr, false),
            );
        }
        let member = self.members.get_mut(&hello.name).expect("inserted above");
        if member.state == MemberState::Left && member.incarnation == Some(hello.incarnation) {
            // The run that left (a hello still on its way): it stays gone.
            return out;
        }
        member.cluster_addr = hello.cluster_addr;
        member.mqtt_addr = hello.mqtt_addr;
        member.last_heard = Some(now);
        let restarted = member.incarnation.is_some_and(|i| i != hello.incarnation);
        member.incarnation = Some(hello.incarnation);
        // Bounded: a hello lists at most MAX_PEERS peers (checked when it is decoded).
        member.sees = hello.peers.iter().map(|p| p.name.clone()).collect();
        member.queues = hello.queues.clone();
        match member.state {
            MemberState::Up if restarted => {
                out.events.push(MemberEvent::Down {
                    member: member.clone(),
                    reason: DownReason::Restarted,
                });
                out.events.push(MemberEvent::Joined(member.clone()));
            }
            MemberState::Up => {}
            MemberState::Connecting | MemberState::Down | MemberState::Left => {
                member.state = MemberState::Up;
                out.events.push(MemberEvent::Joined(member.clone()));
            }
        }
        for peer in &hello.peers {
            if peer.name == self.me || peer.cluster_addr == my_addr || self.members.contains_key(&peer.name) {
                continue;
            }
            if self.has_room(&peer.name, &mut out) {
                self.members.insert(
                    peer.name.clone(),
                    Member::connecting(&peer.name, peer.cluster_addr, false),
                );
            }
        }
        out
    }

    /// A member not yet heard from at the address a hello comes from, under another name, was named wrongly
    /// (a `--seed NAME@` that does not match the node there): the hello's name replaces it.
    fn forget_misnamed(&mut self, hello: &Hello, out: &mut Heard) {
        let misnamed: Vec<Member> = self
            .members
            .values()
            .filter(|m| !m.is_self && m.state == MemberState::Connecting && m.cluster_addr == hello.cluster_addr)
            .cloned()
            .collect();
        for m in misnamed {
            self.members.remove(&m.name);
            if m.seed {
                self.warn_once(
                    out,
                    format!("seed:{}", m.name),
                    format!(
                        "seed {}@{} answers as {}: fix --seed (carrying on with {})",
                        m.name, m.cluster_addr, hello.name, hello.name
                    ),
                );
            }
        }
    }

    fn has_room(&mut self, name: &str, out: &mut Heard) -> bool {
        if self.members.len() <= MAX_PEERS {
            return true;
        }
        self.warn_once(
            out,
            "full".to_string(),
            format!("node {name} ignored (and any more after it): this node already knows {MAX_PEERS} others, the most it keeps"),
        );
        false
    }

    fn warn_once(&mut self, out: &mut Heard, key: String, line: String) {
        if self.warned.insert(key) {
            out.warnings.push(line);
        }
    }

    /// The failure detector: members up but silent for `down_after` at `now` go down.
    pub fn sweep(&mut self, now: Instant) -> Vec<MemberEvent> {
        let mut events = Vec::new();
        for member in self.members.values_mut() {
            let silent = member
                .last_heard
                .is_some_and(|t| now.saturating_duration_since(t) >= self.down_after);
            if !member.is_self && member.state == MemberState::Up && silent {
                member.state = MemberState::Down;
                events.push(MemberEvent::Down {
                    member: member.clone(),
                    reason: DownReason::Silent(self.down_after),
                });
            }
        }
        events
    }

    /// Record which members have a link open: those whose name `is_linked`.
    pub fn set_links(&mut self, is_linked: impl Fn(&str) -> bool) {
        for member in self.members.values_mut().filter(|m| !m.is_self) {
            member.linked = is_linked(&member.name);
        }
    }

    /// Every member, this node included, by name.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// The names of the members that are up, this node included, sorted.
    pub fn nodes_up(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.state == MemberState::Up)
            .map(|m| m.name.clone())
            .collect()
    }

    /// The other members, to be dialled whenever there is no link to them (not those that left).
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        self.members
            .values()
            .filter(|m| !m.is_self && m.state != MemberState::Left)
    }

    /// Whether `name` left (or was forgotten).
    pub fn is_left(&self, name: &str) -> bool {
        self.members.get(name).is_some_and(|m| m.state == MemberState::Left)
    }

    /// Mark `name` left (its run `incarnation`, when known): gone for good, until a new run of it is heard.
    /// `None` when there is nothing to change (this node, unknown, or left already).
    pub fn mark_left(&mut self, name: &str, incarnation: Option<u64>, forgotten: bool) -> Option<MemberEvent> {
        let member = self.members.get_mut(name)?;
        if member.is_self || member.state == MemberState::Left {
            return None;
        }
        member.state = MemberState::Left;
        member.incarnation = incarnation.or(member.incarnation);
        member.linked = false;
        Some(MemberEvent::Left {
            member: member.clone(),
            forgotten,
        })
    }
}

impl Member {
    fn connecting(name: &str, cluster_addr: SocketAddr, seed: bool) -> Member {
        Member {
            name: name.to_string(),
            cluster_addr,
            mqtt_addr: None,
            state: MemberState::Connecting,
            is_self: false,
            linked: false,
            seed,
            last_heard: None,
            incarnation: None,
            sees: Vec::new(),
            queues: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn n1() -> Membership {
        let mut config = ClusterConfig::new("n1", addr(4370), "secret");
        config.seeds = vec![("n2".into(), addr(4371))];
        Membership::new(&config, 1)
    }

    fn hello(name: &str, port: u16, incarnation: u64, peers: &[(&str, u16)]) -> Hello {
        Hello {
            name: name.into(),
            cluster_addr: addr(port),
            mqtt_addr: Some(addr(port + 1000)),
            incarnation,
            peers: peers
                .iter()
                .map(|(n, p)| PeerAddr {
                    name: n.to_string(),
                    cluster_addr: addr(*p),
                })
                .collect(),
            map_digest: 0,
            queues: Vec::new(),
        }
    }

    fn states(m: &Membership) -> Vec<(String, MemberState)> {
        m.members().into_iter().map(|m| (m.name, m.state)).collect()
    }

    #[test]
    fn starts_with_itself_up_and_its_seeds_connecting() {
        let m = n1();
        assert_eq!(
            states(&m),
            [("n1".into(), MemberState::Up), ("n2".into(), MemberState::Connecting)]
        );
        assert_eq!(m.nodes_up(), ["n1"]);
        assert_eq!(m.others().map(|m| m.cluster_addr).collect::<Vec<_>>(), [addr(4371)]);
    }

    #[test]
    fn a_hello_brings_a_member_up_once_and_teaches_its_peers() {
        let mut m = n1();
        let t = Instant::now();
        let heard = m.heard(&hello("n2", 4371, 7, &[("n3", 4372), ("n1", 4370)]), t);
        assert_eq!(heard.events.len(), 1);
        assert_eq!(heard.events[0].to_string(), "node n2@127.0.0.1:4371 joined");
        assert_eq!(
            states(&m),
            [
                ("n1".into(), MemberState::Up),
                ("n2".into(), MemberState::Up),
                ("n3".into(), MemberState::Connecting)
            ]
        );
        assert_eq!(m.members()[1].mqtt_addr, Some(addr(5371)));
        // Heard again: nothing new to say.
        assert!(m.heard(&hello("n2", 4371, 7, &[]), t).events.is_empty());
        // Its hello passes on the members it sees up.
        let mine = m.hello();
        assert_eq!(mine.name, "n1");
        assert_eq!(mine.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["n2"]);
    }

    #[test]
    fn silence_for_down_after_marks_a_member_down_and_a_hello_brings_it_back() {
        let mut m = n1();
        let t = Instant::now();
        m.heard(&hello("n2", 4371, 7, &[]), t);
        assert!(m.sweep(t + Duration::from_millis(4999)).is_empty());
        let down = m.sweep(t + Duration::from_secs(5));
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].to_string(), "node n2 down: no heartbeat for 5 s");
        assert_eq!(m.nodes_up(), ["n1"]);
        assert!(m.sweep(t + Duration::from_secs(60)).is_empty(), "said once");
        let back = m.heard(&hello("n2", 4371, 8, &[]), t + Duration::from_secs(61));
        assert!(matches!(&back.events[..], [MemberEvent::Joined(j)] if j.name == "n2"));
        assert_eq!(m.nodes_up(), ["n1", "n2"]);
    }

    #[test]
    fn a_new_incarnation_while_up_is_a_restart() {
        let mut m = n1();
        let t = Instant::now();
        m.heard(&hello("n2", 4371, 7, &[]), t);
        let heard = m.heard(&hello("n2", 4371, 9, &[]), t);
        assert_eq!(heard.events.len(), 2);
        assert!(heard.events[0].to_string().contains("restarted"));
        assert!(matches!(heard.events[1], MemberEvent::Joined(_)));
    }

    #[test]
    fn links_are_recorded_by_name() {
        let mut m = n1();
        m.heard(&hello("n3", 4372, 7, &[]), Instant::now());
        m.set_links(|name| name == "n3");
        let linked: Vec<(String, bool)> = m.members().into_iter().map(|m| (m.name, m.linked)).collect();
        assert_eq!(linked, [("n1".into(), true), ("n2".into(), false), ("n3".into(), true)]);
    }

    #[test]
    fn a_member_that_left_is_not_dialled_until_a_new_run_of_it_says_hello() {
        let mut m = n1();
        let t = Instant::now();
        m.heard(&hello("n2", 4371, 7, &[]), t);
        let left = m.mark_left("n2", Some(7), false).unwrap();
        assert_eq!(left.to_string(), "node n2 left the cluster; it is no longer dialled");
        assert!(m.mark_left("n2", Some(7), false).is_none(), "said once");
        assert!(m.mark_left("n1", None, true).is_none(), "never this node");
        assert_eq!(m.others().count(), 0);
        assert_eq!(m.nodes_up(), ["n1"]);
        assert!(m.sweep(t + Duration::from_secs(60)).is_empty());
        // A late hello of the run that left changes nothing; a new run joins again.
        assert!(m.heard(&hello("n2", 4371, 7, &[]), t).events.is_empty());
        assert_eq!(states(&m)[1].1, MemberState::Left);
        let back = m.heard(&hello("n2", 4371, 8, &[]), t);
        assert!(matches!(&back.events[..], [MemberEvent::Joined(j)] if j.name == "n2"));
        assert_eq!(m.nodes_up(), ["n1", "n2"]);
    }

    #[test]
    fn a_member_says_whom_it_sees_and_what_it_queued_in_each_hello() {
        let mut m = n1();
        let mut said = hello("n2", 4371, 7, &[("n3", 4372)]);
        said.queues = vec![("n3".into(), 12)];
        m.heard(&said, Instant::now());
        let n2 = |m: &Membership| m.members().into_iter().find(|x| x.name == "n2").unwrap();
        assert_eq!(n2(&m).sees, ["n3"]);
        assert_eq!(n2(&m).queues, [("n3".to_string(), 12)]);
        // The latest hello replaces what it saw before.
        m.heard(&hello("n2", 4371, 7, &[]), Instant::now());
        assert!(n2(&m).sees.is_empty());
    }

    #[test]
    fn connecting_members_are_never_swept() {
        let mut m = n1();
        assert!(m.sweep(Instant::now() + Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn a_misnamed_seed_is_replaced_by_the_name_its_node_gives() {
        let mut m = n1();
        let heard = m.heard(&hello("n5", 4371, 7, &[]), Instant::now());
        assert_eq!(heard.warnings.len(), 1);
        assert!(heard.warnings[0].contains("seed n2@127.0.0.1:4371 answers as n5"));
        assert_eq!(m.nodes_up(), ["n1", "n5"]);
        assert_eq!(m.members().len(), 2);
    }

    #[test]
    fn another_node_with_this_name_is_reported_once() {
        let mut m = n1();
        let t = Instant::now();
        let first = m.heard(&hello("n1", 4999, 99, &[]), t);
        assert_eq!(first.warnings.len(), 1);
        assert!(first.warnings[0].contains("its own --node-name"));
        assert!(m.heard(&hello("n1", 4999, 99, &[]), t).warnings.is_empty());
        assert_eq!(m.nodes_up(), ["n1"]);
    }

    #[test]
    fn a_peer_cannot_grow_the_membership_without_bound() {
        let mut m = n1();
        let names: Vec<String> = (0..MAX_PEERS + 10).map(|i| format!("x{i}")).collect();
        let peers: Vec<(&str, u16)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), 10_000 + i as u16))
            .collect();
        let heard = m.heard(&hello("n2", 4371, 7, &peers), Instant::now());
        assert_eq!(m.members().len(), MAX_PEERS + 1);
        assert_eq!(heard.warnings.len(), 1);
    }

    #[test]
    fn durations_read_as_an_operator_writes_them() {
        assert_eq!(human(Duration::from_secs(5)), "5 s");
        assert_eq!(human(Duration::from_millis(1500)), "1500 ms");
    }
}
