//! The rule model every ACL source compiles to.
//!
//! A Mosquitto `acl_file`, a native TOML file and a JWT's `acl` claim all say the same things in different
//! words: allow or deny, publish or subscribe, these topics, for these clients, at these QoS levels. Each
//! parser turns its words into an ordered list of [`Rule`]s; [`crate::acl::Acl`] indexes that list once and
//! answers checks from it. First match wins; what happens when nothing matches is a [`Settings`] value.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::acl::pattern::TopicPattern;
use crate::client::ClientInfo;

/// What a client asks to do: the protocol core's own type, so the channel's questions need no translation.
/// With a topic name, [`Action::Subscribe`] asks whether a message published to it may be received.
pub use ractmq_protocol::authz::Action;

/// The answer of an ACL to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// A rule allows it.
    Allow,
    /// A rule denies it.
    Deny,
    /// No rule says anything about it: the caller applies [`Settings::no_match`] (or asks the next ACL).
    NoMatch,
}

impl Decision {
    /// Whether the request may go ahead, with `no_match` deciding what [`Decision::NoMatch`] means.
    pub fn is_allowed(self, no_match: Permission) -> bool {
        match self {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::NoMatch => no_match == Permission::Allow,
        }
    }
}

/// Allow or deny: what a rule says when it matches, and what [`Settings::no_match`] says when none does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Let the request through.
    Allow,
    /// Refuse it.
    Deny,
}

impl Permission {
    /// `allow` or `deny`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Deny => "deny",
        }
    }

    /// The decision a matching rule with this permission gives.
    pub fn decision(self) -> Decision {
        match self {
            Permission::Allow => Decision::Allow,
            Permission::Deny => Decision::Deny,
        }
    }
}

/// What the broker does to a client after a denied request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DenyAction {
    /// Refuse the request (a failure reason code in SUBACK/PUBACK, or the QoS 0 message dropped) and go on.
    #[default]
    Ignore,
    /// Refuse the request and close the connection.
    Disconnect,
}

/// How an ACL ends when no rule matched, and what a denial costs the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings {
    /// What a request no rule matches gets. Mosquitto files always deny; the native file defaults to deny too
    /// (EMQX's `authorization.no_match` defaults to allow, but a file of rules that forgot the line is safer
    /// closed).
    pub no_match: Permission,
    /// What follows a denial.
    pub deny_action: DenyAction,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            no_match: Permission::Deny,
            deny_action: DenyAction::Ignore,
        }
    }
}

/// The actions a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Publishing only (Mosquitto's `write`).
    Publish,
    /// Subscribing and receiving only (Mosquitto's `read`).
    Subscribe,
    /// Both (Mosquitto's `readwrite`).
    All,
}

impl RuleAction {
    /// `publish`, `subscribe` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            RuleAction::Publish => "publish",
            RuleAction::Subscribe => "subscribe",
            RuleAction::All => "all",
        }
    }

    /// Whether a rule with this action says anything about `action`.
    pub fn includes(self, action: Action) -> bool {
        matches!(
            (self, action),
            (RuleAction::All, _) | (RuleAction::Publish, Action::Publish) | (RuleAction::Subscribe, Action::Subscribe)
        )
    }
}

/// A set of QoS levels (0, 1, 2) a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QosSet(u8);

impl QosSet {
    /// Every QoS level: the default of a rule that names none.
    pub const ALL: QosSet = QosSet(0b111);

    /// The set of the given levels; `None` if one is above 2.
    pub fn from_levels(levels: impl IntoIterator<Item = u8>) -> Option<QosSet> {
        let mut bits = 0u8;
        for qos in levels {
            if qos > 2 {
                return None;
            }
            bits |= 1 << qos;
        }
        Some(QosSet(bits))
    }

    /// Whether `qos` is in the set (a QoS above 2 never is).
    pub fn contains(self, qos: u8) -> bool {
        qos <= 2 && self.0 & (1 << qos) != 0
    }
}

impl Default for QosSet {
    fn default() -> Self {
        QosSet::ALL
    }
}

/// A condition on the client's user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserMatch {
    /// The client authenticated as exactly this user name.
    Name(String),
    /// The client has no user name (Mosquitto's `topic` lines before the first `user` line).
    Anonymous,
}

/// Which clients a rule applies to. Every condition present must hold; a `Who` with none applies to everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Who {
    /// The user name condition.
    pub user: Option<UserMatch>,
    /// The client id must be exactly this.
    pub client_id: Option<String>,
    /// The peer address must be in this network.
    pub ipaddr: Option<IpNet>,
    /// The client must have connected through the listener of this name.
    pub listener: Option<String>,
    /// Only clients whose user name or client id contains `+` or `#`. Mosquitto denies such clients
    /// everything once any `pattern` line exists (a wildcard in an identity would widen the patterns); its file
    /// parser expresses that with a deny rule carrying this condition.
    pub wildcard_identity: bool,
}

impl Who {
    /// True if the rule applies to every client.
    pub fn is_everyone(&self) -> bool {
        *self == Who::default()
    }

    /// True if every condition holds for `client`.
    pub fn holds_for(&self, client: &ClientInfo) -> bool {
        let user_ok = match (&self.user, &client.username) {
            (None, _) => true,
            (Some(UserMatch::Anonymous), name) => name.is_none(),
            (Some(UserMatch::Name(want)), Some(name)) => want == name,
            (Some(UserMatch::Name(_)), None) => false,
        };
        user_ok
            && self.client_id.as_ref().is_none_or(|id| *id == client.client_id)
            && self.ipaddr.is_none_or(|net| net.contains(&canonical(client.peer)))
            && self.listener.as_ref().is_none_or(|l| *l == client.listener)
            && (!self.wildcard_identity || identity_has_wildcard(client))
    }
}

/// For operators: `all`, or the conditions joined by ` and ` (`user alice and ipaddr 10.0.0.0/8`).
impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        match &self.user {
            Some(UserMatch::Name(name)) => parts.push(format!("user {name}")),
            Some(UserMatch::Anonymous) => parts.push("anonymous".into()),
            None => {}
        }
        if let Some(id) = &self.client_id {
            parts.push(format!("clientid {id}"));
        }
        if let Some(net) = &self.ipaddr {
            parts.push(format!("ipaddr {net}"));
        }
        if let Some(listener) = &self.listener {
            parts.push(format!("listener {listener}"));
        }
        if self.wildcard_identity {
            parts.push("a wildcard in its user name or client id".into());
        }
        if parts.is_empty() {
            f.write_str("all")
        } else {
            f.write_str(&parts.join(" and "))
        }
    }
}

/// True if the client's user name or client id contains an MQTT wildcard character.
pub(crate) fn identity_has_wildcard(client: &ClientInfo) -> bool {
    client.client_id.contains(['+', '#']) || client.username.as_ref().is_some_and(|u| u.contains(['+', '#']))
}

/// An IPv4 peer seen through an IPv6 socket (`::ffff:10.0.0.1`) as the IPv4 address it is, so that
/// `10.0.0.0/8` matches it.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// One rule: if the client, the action, the topic, the QoS and the retain flag all match, `permission` is
/// the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub permission: Permission,
    /// Publish, subscribe or both.
    pub action: RuleAction,
    /// The topic patterns; the rule matches a request whose topic any of them matches.
    pub topics: Vec<TopicPattern>,
    /// The clients the rule applies to.
    pub who: Who,
    /// The QoS levels the rule applies to (the PUBLISH's QoS, or the QoS a SUBSCRIBE asks for).
    pub qos: QosSet,
    /// For publishes: only retained (`Some(true)`) or only non-retained (`Some(false)`) messages. Subscribe
    /// checks ignore it.
    pub retain: Option<bool>,
}

impl QosSet {
    /// The levels in the set, lowest first.
    pub fn levels(self) -> Vec<u8> {
        (0..=2).filter(|q| self.contains(*q)).collect()
    }
}

/// For operators, one line: `allow publish a/# b/+ for user alice`, with ` qos 0,1` and ` retained` or
/// ` not retained` when the rule narrows those.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topics: Vec<&str> = self.topics.iter().map(|t| t.as_str()).collect();
        write!(
            f,
            "{} {} {} for {}",
            self.permission.name(),
            self.action.name(),
            topics.join(" "),
            self.who
        )?;
        if self.qos != QosSet::ALL {
            let levels: Vec<String> = self.qos.levels().iter().map(u8::to_string).collect();
            write!(f, " qos {}", levels.join(","))?;
        }
        match self.retain {
            Some(true) => f.write_str(" retained"),
            Some(false) => f.write_str(" not retained"),
            None => Ok(()),
        }
    }
}

impl Rule {
    /// A rule for everyone, every QoS and either retain flag.
    pub fn new(permission: Permission, action: RuleAction, topics: Vec<TopicPattern>) -> Rule {
        Rule {
            permission,
            action,
            topics,
            who: Who::default(),
            qos: QosSet::ALL,
            retain: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::pattern::Syntax;
    use crate::client::test_client as client;

    #[test]
    fn who_conditions_must_all_hold() {
        let alice = client(Some("alice"), "c1", "10.1.2.3", "tcp");
        let anon = client(None, "c2", "::ffff:10.9.9.9", "ws");
        let cases: &[(Who, bool, bool)] = &[
            (Who::default(), true, true),
            (
                Who {
                    user: Some(UserMatch::Name("alice".into())),
                    ..Who::default()
                },
                true,
                false,
            ),
            (
                Who {
                    user: Some(UserMatch::Anonymous),
                    ..Who::default()
                },
                false,
                true,
            ),
            (
                Who {
                    client_id: Some("c2".into()),
                    ..Who::default()
                },
                false,
                true,
            ),
            (
                // The IPv4-mapped IPv6 peer is in the IPv4 network.
                Who {
                    ipaddr: Some("10.0.0.0/8".parse().unwrap()),
                    ..Who::default()
                },
                true,
                true,
            ),
            (
                Who {
                    ipaddr: Some("10.1.0.0/16".parse().unwrap()),
                    listener: Some("tcp".into()),
                    ..Who::default()
                },
                true,
                false,
            ),
            (
                Who {
                    user: Some(UserMatch::Name("alice".into())),
                    listener: Some("ws".into()),
                    ..Who::default()
                },
                false,
                false,
            ),
            (
                Who {
                    wildcard_identity: true,
                    ..Who::default()
                },
                false,
                false,
            ),
        ];
        for (who, for_alice, for_anon) in cases {
            assert_eq!(who.holds_for(&alice), *for_alice, "{who:?} for alice");
            assert_eq!(who.holds_for(&anon), *for_anon, "{who:?} for anon");
        }
        let wild = client(Some("a+b"), "c", "1.2.3.4", "tcp");
        assert!(Who {
            wildcard_identity: true,
            ..Who::default()
        }
        .holds_for(&wild));
    }

    #[test]
    fn a_rule_reads_as_one_line() {
        let topics = vec![TopicPattern::parse("a/#", Syntax::Literal).unwrap()];
        let mut rule = Rule::new(Permission::Deny, RuleAction::Publish, topics);
        assert_eq!(rule.to_string(), "deny publish a/# for all");
        rule.who = Who {
            user: Some(UserMatch::Name("alice".into())),
            ipaddr: Some("10.0.0.0/8".parse().unwrap()),
            ..Who::default()
        };
        rule.qos = QosSet::from_levels([0, 1]).unwrap();
        rule.retain = Some(true);
        assert_eq!(
            rule.to_string(),
            "deny publish a/# for user alice and ipaddr 10.0.0.0/8 qos 0,1 retained"
        );
    }

    #[test]
    fn qos_sets_and_decisions() {
        let set = QosSet::from_levels([0, 2]).unwrap();
        assert!(set.contains(0) && !set.contains(1) && set.contains(2) && !set.contains(3));
        assert_eq!(QosSet::from_levels([3]), None);
        assert!(QosSet::ALL.contains(1));
        assert!(Decision::NoMatch.is_allowed(Permission::Allow));
        assert!(!Decision::NoMatch.is_allowed(Permission::Deny));
        assert!(!Decision::Deny.is_allowed(Permission::Allow));
        assert!(RuleAction::All.includes(Action::Publish));
        assert!(!RuleAction::Subscribe.includes(Action::Publish));
    }
}
