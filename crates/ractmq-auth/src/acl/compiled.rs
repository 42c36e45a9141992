//! A loaded ACL ([`Acl`], one per node, shared) and the view of it one connection checks against
//! ([`ClientAcl`], made once at CONNECT).
//!
//! The expensive work happens once per file: patterns go into per-action indexes (`index.rs`) and rules with
//! who-conditions into a lookup by user name and client id. At CONNECT, [`Acl::for_client`] only picks the
//! conditional rules that hold for this client (a hash lookup or two, plus the rules conditioned on addresses
//! or listeners) and keeps the client's placeholder values; it copies no rule. Every check then walks the
//! shared index, and a small per-connection cache answers repeated topics.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ractmq_codec::QoS;
use ractmq_protocol::authz::{Authorizer, Verdict};
use ractmq_protocol::topic::parse_shared;

use crate::acl::cache::DecisionCache;
use crate::acl::index::Index;
use crate::acl::pattern::{safe_value, Kind, Level, Piece, Values, Var};
use crate::acl::rule::{canonical, Action, Decision, DenyAction, Permission, QosSet, Rule, Settings, UserMatch};
use crate::client::ClientInfo;

/// An ACL ready to check: rules in order, indexed, with its [`Settings`]. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Acl {
    shared: Arc<Shared>,
}

struct Shared {
    rules: Vec<Rule>,
    meta: Vec<Meta>,
    settings: Settings,
    publish: Index,
    subscribe: Index,
    who: WhoIndex,
    /// Whether any pattern names `%i` (then each connection keeps its address as text).
    uses_peer: bool,
}

/// What a check needs of a rule besides its patterns, kept small and together.
#[derive(Debug, Clone, Copy)]
struct Meta {
    permission: Permission,
    qos: QosSet,
    retain: Option<bool>,
    conditional: bool,
}

/// The rules with who-conditions, findable by the condition that narrows them most.
#[derive(Default)]
struct WhoIndex {
    by_user: HashMap<String, Vec<u32>>,
    by_client: HashMap<String, Vec<u32>>,
    /// For clients without a user name (Mosquitto's anonymous section).
    anonymous: Vec<u32>,
    /// Conditioned on addresses, listeners or wildcard identities only: tried for every client.
    others: Vec<u32>,
}

impl Acl {
    /// Index `rules` (tried in this order, first match wins) with `settings`.
    ///
    /// # Panics
    /// With more than `u32::MAX` rules (the file parsers stop at a million).
    pub fn new(rules: Vec<Rule>, settings: Settings) -> Acl {
        assert!(u32::try_from(rules.len()).is_ok(), "too many ACL rules");
        let mut publish = Index::new();
        let mut subscribe = Index::new();
        let mut who = WhoIndex::default();
        let mut meta = Vec::with_capacity(rules.len());
        let mut uses_peer = false;
        for (i, rule) in rules.iter().enumerate() {
            let id = i as u32;
            for topic in &rule.topics {
                if rule.action.includes(Action::Publish) {
                    publish.insert(topic, id);
                }
                if rule.action.includes(Action::Subscribe) {
                    subscribe.insert(topic, id);
                }
                uses_peer |= names_peer(topic.kind());
            }
            let conditional = !rule.who.is_everyone();
            if conditional {
                match (&rule.who.user, &rule.who.client_id) {
                    (Some(UserMatch::Name(name)), _) => who.by_user.entry(name.clone()).or_default().push(id),
                    (Some(UserMatch::Anonymous), _) => who.anonymous.push(id),
                    (_, Some(client_id)) => who.by_client.entry(client_id.clone()).or_default().push(id),
                    _ => who.others.push(id),
                }
            }
            meta.push(Meta {
                permission: rule.permission,
                qos: rule.qos,
                retain: rule.retain,
                conditional,
            });
        }
        Acl {
            shared: Arc::new(Shared {
                rules,
                meta,
                settings,
                publish,
                subscribe,
                who,
                uses_peer,
            }),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.shared.rules
    }

    /// What happens when nothing matches, and after a denial.
    pub fn settings(&self) -> Settings {
        self.shared.settings
    }

    /// The ACL as it applies to `client`: the rules whose who-conditions hold for it, with its values for
    /// the placeholders. Done once, at CONNECT.
    pub fn for_client(&self, client: &ClientInfo) -> ClientAcl {
        let shared = &self.shared;
        let mut applicable = Vec::new();
        let by_user = match &client.username {
            Some(name) => shared.who.by_user.get(name).map_or(&[][..], Vec::as_slice),
            None => &shared.who.anonymous,
        };
        let by_client = shared
            .who
            .by_client
            .get(&client.client_id)
            .map_or(&[][..], Vec::as_slice);
        let candidates = by_user.iter().chain(by_client).chain(&shared.who.others);
        for &id in candidates {
            if shared.rules[id as usize].who.holds_for(client) {
                applicable.push(id);
            }
        }
        applicable.sort_unstable();
        applicable.dedup();
        let keep = |v: &str| safe_value(v).then(|| Box::<str>::from(v));
        let rules = RulesAcl {
            shared: Arc::clone(shared),
            username: client.username.as_deref().and_then(keep),
            client_id: keep(&client.client_id),
            peer: shared
                .uses_peer
                .then(|| canonical(client.peer).to_string())
                .and_then(|p| keep(&p)),
            applicable: applicable.into(),
            cache: DecisionCache::default(),
        };
        ClientAcl {
            inner: Arc::new(Inner::Rules(rules)),
        }
    }
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("rules", &self.shared.rules.len())
            .field("settings", &self.shared.settings)
            .finish()
    }
}

fn names_peer(kind: &Kind) -> bool {
    let Kind::Filter(levels) = kind else { return false };
    levels.iter().any(|level| match level {
        Level::Template(pieces) => pieces.contains(&Piece::Var(Var::PeerIp)),
        _ => false,
    })
}

/// One connection's ACL: what it may publish and subscribe to. Cheap to clone (one `Arc`), `Send + Sync`.
#[derive(Clone)]
pub struct ClientAcl {
    inner: Arc<Inner>,
}

enum Inner {
    AllowAll,
    Rules(RulesAcl),
    Chain(ClientAcl, ClientAcl),
}

struct RulesAcl {
    shared: Arc<Shared>,
    /// Placeholder values, `None` when missing or unsafe in a topic (see `pattern.rs`).
    username: Option<Box<str>>,
    client_id: Option<Box<str>>,
    peer: Option<Box<str>>,
    /// The conditional rules that hold for this client, sorted.
    applicable: Box<[u32]>,
    cache: DecisionCache,
}

impl ClientAcl {
    /// Everything allowed: a superuser, or a node without an ACL.
    pub fn allow_all() -> ClientAcl {
        ClientAcl {
            inner: Arc::new(Inner::AllowAll),
        }
    }

    /// `first`'s answer unless it is [`Decision::NoMatch`], then `then`'s: a JWT's claim ACL before the file
    /// ACL. The chain's [`Settings`] are `then`'s.
    pub fn chain(first: ClientAcl, then: ClientAcl) -> ClientAcl {
        ClientAcl {
            inner: Arc::new(Inner::Chain(first, then)),
        }
    }

    /// Whether the client may `action` on `topic` (a topic name for a publish, a filter for a subscribe; a
    /// `$share/{group}/` prefix is checked as the filter it shares, and a malformed one is denied; a topic
    /// name with [`Action::Subscribe`] asks whether a message published to it may be delivered) at `qos`,
    /// with `retain` (ignored for subscribes). A QoS above 2 is denied. [`Decision::NoMatch`] is for the caller to resolve with
    /// [`ClientAcl::settings`], or see [`ClientAcl::is_allowed`].
    pub fn check(&self, action: Action, topic: &str, qos: u8, retain: bool) -> Decision {
        match &*self.inner {
            Inner::AllowAll => Decision::Allow,
            Inner::Rules(rules) => rules.check(action, topic, qos, retain),
            Inner::Chain(first, then) => match first.check(action, topic, qos, retain) {
                Decision::NoMatch => then.check(action, topic, qos, retain),
                decided => decided,
            },
        }
    }

    /// [`ClientAcl::check`] without the cache, to measure the index alone.
    #[cfg(test)]
    pub(crate) fn check_uncached(&self, action: Action, topic: &str, qos: u8, retain: bool) -> Decision {
        match &*self.inner {
            Inner::Rules(rules) => rules.compute(action, topic, qos, retain),
            _ => self.check(action, topic, qos, retain),
        }
    }

    /// [`ClientAcl::check`] with [`Settings::no_match`] applied.
    pub fn is_allowed(&self, action: Action, topic: &str, qos: u8, retain: bool) -> bool {
        self.check(action, topic, qos, retain)
            .is_allowed(self.settings().no_match)
    }

    /// The settings of the ACL this was made from (allow-all: no match allows).
    pub fn settings(&self) -> Settings {
        match &*self.inner {
            Inner::AllowAll => Settings {
                no_match: Permission::Allow,
                ..Settings::default()
            },
            Inner::Rules(rules) => rules.shared.settings,
            Inner::Chain(_, then) => then.settings(),
        }
    }
}

/// The channel's question: [`ClientAcl::is_allowed`], and a denial as [`Settings::deny_action`] says.
impl Authorizer for ClientAcl {
    fn authorize(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict {
        if self.is_allowed(action, topic, qos as u8, retain) {
            Verdict::Allow
        } else {
            match self.settings().deny_action {
                DenyAction::Ignore => Verdict::Deny,
                DenyAction::Disconnect => Verdict::DenyAndDisconnect,
            }
        }
    }
}

impl RulesAcl {
    fn check(&self, action: Action, topic: &str, qos: u8, retain: bool) -> Decision {
        // No such QoS: the codec refuses it first; here it is refused rather than matched by no rule.
        if qos > 2 {
            return Decision::Deny;
        }
        let retain = retain && action == Action::Publish;
        let key = (action == Action::Publish) as u8 | (retain as u8) << 1 | qos << 2;
        self.cache
            .get_or(key, topic, || self.compute(action, topic, qos, retain))
    }

    fn compute(&self, action: Action, topic: &str, qos: u8, retain: bool) -> Decision {
        let (index, topic) = match action {
            Action::Publish => (&self.shared.publish, topic),
            Action::Subscribe => match parse_shared(topic) {
                None => (&self.shared.subscribe, topic),
                Some(Ok(shared)) => (&self.shared.subscribe, shared.filter),
                Some(Err(())) => return Decision::Deny,
            },
        };
        let values = Values {
            username: self.username.as_deref(),
            client_id: self.client_id.as_deref(),
            peer: self.peer.as_deref(),
        };
        let meta = &self.shared.meta;
        let accept = |id: u32| {
            let m = &meta[id as usize];
            m.qos.contains(qos)
                && (action == Action::Subscribe || m.retain.is_none_or(|r| r == retain))
                && (!m.conditional || self.applicable.binary_search(&id).is_ok())
        };
        match index.first_match(topic, &values, &accept) {
            Some(id) => meta[id as usize].permission.decision(),
            None => Decision::NoMatch,
        }
    }
}

impl fmt::Debug for ClientAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::AllowAll => f.write_str("ClientAcl::AllowAll"),
            Inner::Rules(rules) => f
                .debug_struct("ClientAcl")
                .field("rules", &rules.shared.rules.len())
                .field("applicable_conditional", &rules.applicable.len())
                .finish(),
            Inner::Chain(first, then) => f.debug_tuple("ClientAcl::Chain").field(first).field(then).finish(),
        }
    }
}

// The broker keeps one per connection and may hand it across tasks.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<ClientAcl>();
    send_sync::<Acl>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::pattern::{Syntax, TopicPattern};
    use crate::acl::rule::{RuleAction, Who};
    use Action::{Publish as P, Subscribe as S};
    use Decision::{Allow, Deny, NoMatch};

    fn rule(permission: Permission, action: RuleAction, topics: &[&str]) -> Rule {
        let topics = topics
            .iter()
            .map(|t| TopicPattern::parse(t, Syntax::Native).unwrap())
            .collect();
        Rule::new(permission, action, topics)
    }

    fn allow(action: RuleAction, topics: &[&str]) -> Rule {
        rule(Permission::Allow, action, topics)
    }

    fn deny(action: RuleAction, topics: &[&str]) -> Rule {
        rule(Permission::Deny, action, topics)
    }

    fn client(user: Option<&str>, id: &str, ip: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            username: user.map(Into::into),
            peer: ip.parse().unwrap(),
            listener: "tcp".into(),
        }
    }

    fn alice() -> ClientInfo {
        client(Some("alice"), "c1", "10.0.0.1")
    }

    /// Check each case twice: the second answer comes from the cache and must be the same.
    fn table(acl: &ClientAcl, cases: &[(Action, &str, u8, bool, Decision)]) {
        for round in 0..2 {
            for (action, topic, qos, retain, want) in cases {
                let got = acl.check(*action, topic, *qos, *retain);
                assert_eq!(
                    got, *want,
                    "{action:?} {topic} qos {qos} retain {retain} (round {round})"
                );
            }
        }
    }

    #[test]
    fn first_match_wins_in_rule_order() {
        let acl = Acl::new(
            vec![
                deny(RuleAction::Publish, &["a/secret"]),
                allow(RuleAction::All, &["a/#"]),
                deny(RuleAction::All, &["a/b"]),
                allow(RuleAction::Subscribe, &["#"]),
            ],
            Settings::default(),
        )
        .for_client(&alice());
        table(
            &acl,
            &[
                (P, "a/secret", 0, false, Deny),
                (S, "a/secret", 0, false, Allow),
                (P, "a/b", 0, false, Allow),
                (P, "b", 0, false, NoMatch),
                (S, "b/c", 0, false, Allow),
                (S, "#", 0, false, Allow),
                (S, "$SYS/x", 0, false, NoMatch),
            ],
        );
    }

    #[test]
    fn placeholders_substitute_per_client_and_unsafe_values_match_nothing() {
        let shared = Acl::new(
            vec![
                allow(RuleAction::All, &["users/%u/#", "public/#"]),
                allow(RuleAction::Publish, &["devices/%c/up", "net/%i/#"]),
                allow(RuleAction::Subscribe, &["x/${clientid}-${username}"]),
            ],
            Settings::default(),
        );
        let a = shared.for_client(&alice());
        table(
            &a,
            &[
                (P, "users/alice/x", 0, false, Allow),
                (P, "users/bob/x", 0, false, NoMatch),
                (S, "users/+/x", 0, false, NoMatch),
                (P, "devices/c1/up", 0, false, Allow),
                (P, "devices/c2/up", 0, false, NoMatch),
                (P, "net/10.0.0.1/a", 0, false, Allow),
                (S, "x/c1-alice", 0, false, Allow),
                (S, "x/c1-bob", 0, false, NoMatch),
            ],
        );
        // No user name: the `%u` pattern matches nothing, the rule's other pattern still counts.
        let anon = shared.for_client(&client(None, "c2", "::ffff:10.0.0.2"));
        table(
            &anon,
            &[
                (P, "users/alice/x", 0, false, NoMatch),
                (P, "public/a", 0, false, Allow),
                (P, "devices/c2/up", 0, false, Allow),
                (P, "net/10.0.0.2/a", 0, false, Allow),
            ],
        );
        // Values with wildcards or separators never widen a pattern.
        let odd = shared.for_client(&client(Some("#"), "a/b", "10.0.0.3"));
        table(
            &odd,
            &[
                (S, "users/#", 0, false, NoMatch),
                (P, "users/#/x", 0, false, NoMatch),
                (P, "devices/a/b/up", 0, false, NoMatch),
                (P, "public/a", 0, false, Allow),
            ],
        );
    }

    #[test]
    fn eq_topics_are_literal_and_subscriptions_must_be_covered() {
        let acl = Acl::new(
            vec![
                allow(RuleAction::Subscribe, &["eq t/#", "s/+/temp", "all/#"]),
                allow(RuleAction::Publish, &["eq p/%c"]),
            ],
            Settings::default(),
        )
        .for_client(&alice());
        table(
            &acl,
            &[
                (S, "t/#", 0, false, Allow),
                (S, "t/a", 0, false, NoMatch),
                (S, "t/+", 0, false, NoMatch),
                (S, "s/1/temp", 0, false, Allow),
                (S, "s/+/temp", 0, false, Allow),
                (S, "s/#", 0, false, NoMatch),
                (S, "s/1/#", 0, false, NoMatch),
                (S, "all/b/+", 0, false, Allow),
                (S, "all", 0, false, Allow),
                (S, "all/#", 0, false, Allow),
                (P, "p/%c", 0, false, Allow),
                (P, "p/c1", 0, false, NoMatch),
            ],
        );
    }

    #[test]
    fn qos_and_retain_conditions() {
        let mut qos01 = allow(RuleAction::All, &["q/#"]);
        qos01.qos = QosSet::from_levels([0, 1]).unwrap();
        let mut no_retain = allow(RuleAction::Publish, &["r/#"]);
        no_retain.retain = Some(false);
        let mut only_retain = allow(RuleAction::Publish, &["rr/#"]);
        only_retain.retain = Some(true);
        let mut sub_retain = allow(RuleAction::All, &["sr/#"]);
        sub_retain.retain = Some(true);
        let acl = Acl::new(
            vec![qos01, no_retain, only_retain, sub_retain, deny(RuleAction::All, &["#"])],
            Settings::default(),
        )
        .for_client(&alice());
        table(
            &acl,
            &[
                (P, "q/a", 0, false, Allow),
                (P, "q/a", 1, true, Allow),
                (P, "q/a", 2, false, Deny),
                (S, "q/a", 1, false, Allow),
                (S, "q/a", 2, false, Deny),
                (P, "q/a", 7, false, Deny),
                (P, "r/a", 2, false, Allow),
                (P, "r/a", 2, true, Deny),
                (P, "rr/a", 0, true, Allow),
                (P, "rr/a", 0, false, Deny),
                // Retain conditions do not apply to subscriptions.
                (S, "sr/a", 0, true, Allow),
                (S, "sr/a", 0, false, Allow),
            ],
        );
    }

    #[test]
    fn no_match_setting_and_is_allowed() {
        for (no_match, allowed) in [(Permission::Allow, true), (Permission::Deny, false)] {
            let settings = Settings {
                no_match,
                ..Settings::default()
            };
            let acl = Acl::new(vec![deny(RuleAction::Publish, &["x"])], settings).for_client(&alice());
            assert_eq!(acl.check(P, "y", 0, false), NoMatch);
            assert_eq!(acl.is_allowed(P, "y", 0, false), allowed);
            assert!(!acl.is_allowed(P, "x", 0, false));
            assert_eq!(acl.settings(), settings);
        }
    }

    #[test]
    fn who_conditions_are_settled_at_connect() {
        let mut for_alice = allow(RuleAction::All, &["a/#"]);
        for_alice.who.user = Some(UserMatch::Name("alice".into()));
        let mut for_c2 = allow(RuleAction::All, &["c2/#"]);
        for_c2.who.client_id = Some("c2".into());
        let mut for_net = allow(RuleAction::All, &["net/#"]);
        for_net.who = Who {
            ipaddr: Some("10.0.0.0/24".parse().unwrap()),
            listener: Some("tcp".into()),
            ..Who::default()
        };
        let mut alice_on_c9 = deny(RuleAction::All, &["a/#"]);
        alice_on_c9.who = Who {
            user: Some(UserMatch::Name("alice".into())),
            client_id: Some("c9".into()),
            ..Who::default()
        };
        let acl = Acl::new(vec![alice_on_c9, for_alice, for_c2, for_net], Settings::default());
        let cases = [
            (alice(), "a/x", Allow),
            (alice(), "c2/x", NoMatch),
            (alice(), "net/x", Allow),
            (client(Some("alice"), "c9", "10.0.0.1"), "a/x", Deny),
            (client(Some("bob"), "c2", "10.0.1.1"), "c2/x", Allow),
            (client(Some("bob"), "c2", "10.0.1.1"), "net/x", NoMatch),
            (client(Some("bob"), "c2", "10.0.1.1"), "a/x", NoMatch),
        ];
        for (c, topic, want) in cases {
            assert_eq!(acl.for_client(&c).check(P, topic, 0, false), want, "{c:?} {topic}");
        }
    }

    #[test]
    fn shared_subscriptions_are_checked_as_the_filter_they_share() {
        let acl = Acl::new(vec![allow(RuleAction::Subscribe, &["jobs/#"])], Settings::default()).for_client(&alice());
        table(
            &acl,
            &[
                (S, "$share/workers/jobs/+", 1, false, Allow),
                (S, "$share/workers/other", 1, false, NoMatch),
                (S, "$share//jobs/a", 1, false, Deny),
                (S, "$share/g", 1, false, Deny),
            ],
        );
    }

    #[test]
    fn the_channel_asks_through_the_authorizer_trait() {
        for (deny_action, refused) in [
            (DenyAction::Ignore, Verdict::Deny),
            (DenyAction::Disconnect, Verdict::DenyAndDisconnect),
        ] {
            let settings = Settings {
                no_match: Permission::Deny,
                deny_action,
            };
            let acl = Acl::new(vec![allow(RuleAction::Publish, &["up/%c"])], settings).for_client(&alice());
            let authz: Arc<dyn Authorizer> = Arc::new(acl);
            assert_eq!(authz.authorize(P, "up/c1", QoS::ExactlyOnce, true), Verdict::Allow);
            assert_eq!(authz.authorize(P, "up/c2", QoS::AtMostOnce, false), refused);
            assert_eq!(
                authz.authorize(S, "up/c1", QoS::AtMostOnce, false),
                refused,
                "no match denies"
            );
        }
    }

    #[test]
    fn chain_and_allow_all() {
        let claims = Acl::new(vec![deny(RuleAction::Publish, &["x/#"])], Settings::default()).for_client(&alice());
        let file = Acl::new(
            vec![allow(RuleAction::All, &["#"])],
            Settings {
                no_match: Permission::Deny,
                deny_action: DenyAction::Disconnect,
            },
        )
        .for_client(&alice());
        let chained = ClientAcl::chain(claims, file);
        assert_eq!(chained.check(P, "x/1", 0, false), Deny);
        assert_eq!(chained.check(P, "y/1", 0, false), Allow);
        assert_eq!(chained.check(P, "$SYS/x", 0, false), NoMatch);
        assert_eq!(chained.settings().deny_action, DenyAction::Disconnect);
        let all = ClientAcl::allow_all();
        assert_eq!(all.check(S, "#", 2, false), Allow);
        assert!(all.is_allowed(P, "$SYS/x", 0, true));
        // Shared across threads like the broker does.
        let clone = chained.clone();
        std::thread::spawn(move || assert_eq!(clone.check(P, "x/2", 0, false), Deny))
            .join()
            .unwrap();
    }
}
