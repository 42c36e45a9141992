//! ractmq's own ACL file: TOML, with every rule feature the engine has (EMQX's `acl.conf` model in TOML).
//!
//! ```toml
//! no_match = "deny"          # or "allow"; default "deny"
//! deny_action = "ignore"     # or "disconnect"; default "ignore"
//!
//! [[rule]]
//! permission = "allow"       # or "deny"
//! action = "publish"         # "subscribe" | "all" (EMQX's "pub" and "sub" too)
//! topics = ["sensors/%c/#", "eq t/#"]   # or one `topic = "..."`
//! user = "alice"             # optional who-conditions, all of which must hold:
//! clientid = "c1"            #   exact user name, exact client id,
//! ipaddr = "10.0.0.0/8"      #   peer network (or one address),
//! listener = "tcp"           #   listener name
//! qos = [0, 1]               # optional: only these QoS levels (or `qos = 1`)
//! retain = false             # optional, publishes only: only (non-)retained messages
//! ```
//!
//! Topics are filters with placeholders `%u`/`${username}`, `%c`/`${clientid}` and `%i`/`${peerhost}`; an
//! `eq ` prefix makes the rest a literal string (no wildcards, no placeholders), as in EMQX. Rules are tried
//! in file order; the first whose conditions all hold decides. Unknown keys are errors, so a misspelt
//! condition never silently widens a rule.

use std::ops::Range;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::acl::pattern::{Syntax, TopicPattern};
use crate::acl::rule::{DenyAction, Permission, QosSet, Rule, RuleAction, Settings, UserMatch, Who};
use crate::acl::{line_of, Acl, MAX_RULES};
use crate::error::FileError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    no_match: Option<PermissionWord>,
    deny_action: Option<DenyWord>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum PermissionWord {
    Allow,
    Deny,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum DenyWord {
    Ignore,
    Disconnect,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ActionWord {
    #[serde(alias = "pub")]
    Publish,
    #[serde(alias = "sub")]
    Subscribe,
    All,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum QosWord {
    One(u8),
    Many(Vec<u8>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    permission: PermissionWord,
    action: ActionWord,
    topics: Option<Vec<Spanned<String>>>,
    topic: Option<Spanned<String>>,
    #[serde(alias = "username")]
    user: Option<String>,
    clientid: Option<String>,
    ipaddr: Option<Spanned<String>>,
    listener: Option<String>,
    qos: Option<Spanned<QosWord>>,
    retain: Option<Spanned<bool>>,
}

impl From<PermissionWord> for Permission {
    fn from(word: PermissionWord) -> Permission {
        match word {
            PermissionWord::Allow => Permission::Allow,
            PermissionWord::Deny => Permission::Deny,
        }
    }
}

/// Parse the text of a native ACL file named `file`.
pub fn parse(file: &Path, text: &str) -> Result<Acl, FileError> {
    let at = |span: Range<usize>, message: String| FileError::at(file, line_of(text, span.start), message);
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(text, s.start));
        FileError::at(file, line, e.message().trim_end().replace('\n', " "))
    })?;
    if raw.rule.len() > MAX_RULES {
        let span = raw.rule[MAX_RULES].span();
        return Err(at(span, format!("more than {MAX_RULES} rules in one file")));
    }
    let mut patterns = 0usize;
    let mut rules = Vec::with_capacity(raw.rule.len());
    for spanned in raw.rule {
        let span = spanned.span();
        let r = spanned.into_inner();
        let topics: Vec<Spanned<String>> = match (r.topics, r.topic) {
            (Some(_), Some(t)) => return Err(at(t.span(), "give `topic` or `topics`, not both".into())),
            (Some(list), None) => list,
            (None, Some(one)) => vec![one],
            (None, None) => return Err(at(span, "a rule needs `topics = [...]` (or `topic = \"...\"`)".into())),
        };
        if topics.is_empty() {
            return Err(at(span, "`topics` is empty: the rule would match nothing".into()));
        }
        patterns += topics.len();
        if patterns > MAX_RULES {
            return Err(at(span, format!("more than {MAX_RULES} topics in one file")));
        }
        let topics = topics
            .into_iter()
            .map(|t| TopicPattern::parse(t.get_ref(), Syntax::Native).map_err(|m| at(t.span(), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let action = match r.action {
            ActionWord::Publish => RuleAction::Publish,
            ActionWord::Subscribe => RuleAction::Subscribe,
            ActionWord::All => RuleAction::All,
        };
        let ipaddr = match r.ipaddr {
            None => None,
            Some(s) => Some(parse_net(s.get_ref()).ok_or_else(|| {
                at(
                    s.span(),
                    format!(
                        "invalid `ipaddr` {:?}: expected a network like 10.0.0.0/8 or an address",
                        s.get_ref()
                    ),
                )
            })?),
        };
        let qos = match r.qos {
            None => QosSet::ALL,
            Some(q) => {
                let levels = match q.get_ref() {
                    QosWord::One(n) => vec![*n],
                    QosWord::Many(list) => list.clone(),
                };
                if levels.is_empty() {
                    return Err(at(q.span(), "`qos` is empty: the rule would match nothing".into()));
                }
                QosSet::from_levels(levels).ok_or_else(|| at(q.span(), "`qos` levels are 0, 1 and 2".into()))?
            }
        };
        if let (Some(retain), RuleAction::Subscribe) = (&r.retain, action) {
            return Err(at(
                retain.span(),
                "`retain` applies to publishes; this rule is for subscribes".into(),
            ));
        }
        rules.push(Rule {
            permission: r.permission.into(),
            action,
            topics,
            who: Who {
                user: r.user.map(UserMatch::Name),
                client_id: r.clientid,
                ipaddr,
                listener: r.listener,
                wildcard_identity: false,
            },
            qos,
            retain: r.retain.map(|s| s.into_inner()),
        });
    }
    let settings = Settings {
        no_match: raw.no_match.map_or(Permission::Deny, Permission::from),
        deny_action: match raw.deny_action {
            None | Some(DenyWord::Ignore) => DenyAction::Ignore,
            Some(DenyWord::Disconnect) => DenyAction::Disconnect,
        },
    };
    Ok(Acl::new(rules, settings))
}

/// A network (`10.0.0.0/8`, `2001:db8::/32`) or one address, with host bits cleared.
pub(crate) fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|net| net.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rule::{Action, Decision};
    use crate::acl::ClientAcl;
    use crate::client::test_client as client;

    const FILE: &str = r#"
no_match = "allow"
deny_action = "disconnect"

[[rule]]
permission = "deny"
action = "all"
topics = ["secret/#"]

[[rule]]
permission = "allow"
action = "publish"
topics = ["sensors/%c/#", "eq t/#"]
qos = [0, 1]
retain = false

[[rule]]
permission = "deny"
action = "publish"
topics = ["sensors/#", "t/#"]

[[rule]]
permission = "allow"
action = "sub"
topic = "users/${username}/#"
user = "alice"
ipaddr = "10.0.0.0/8"
listener = "tcp"

[[rule]]
permission = "deny"
action = "subscribe"
topics = ["users/#"]
"#;

    #[test]
    fn a_full_file() {
        let acl = parse(Path::new("acl.toml"), FILE).unwrap();
        assert_eq!(acl.settings().no_match, Permission::Allow);
        assert_eq!(acl.settings().deny_action, DenyAction::Disconnect);
        let alice = acl.for_client(&client(Some("alice"), "c1", "10.1.1.1", "tcp"));
        let alice_ws = acl.for_client(&client(Some("alice"), "c1", "10.1.1.1", "ws"));
        let bob = acl.for_client(&client(Some("bob"), "c2", "10.1.1.1", "tcp"));
        use Action::{Publish as P, Subscribe as S};
        use Decision::{Allow, Deny, NoMatch};
        let cases: &[(&ClientAcl, Action, &str, u8, bool, Decision)] = &[
            (&alice, P, "secret/x", 0, false, Deny),
            (&alice, P, "sensors/c1/t", 0, false, Allow),
            (&alice, P, "sensors/c1/t", 2, false, Deny),
            (&alice, P, "sensors/c1/t", 1, true, Deny),
            (&alice, P, "sensors/c2/t", 0, false, Deny),
            (&alice, S, "sensors/c1/t", 0, false, NoMatch),
            (&alice, S, "t/#", 0, false, NoMatch),
            (&alice, S, "users/alice/#", 1, false, Allow),
            (&alice_ws, S, "users/alice/#", 1, false, Deny),
            (&bob, S, "users/bob/#", 1, false, Deny),
            (&bob, S, "other", 1, false, NoMatch),
        ];
        for (acl, action, topic, qos, retain, want) in cases {
            assert_eq!(
                acl.check(*action, topic, *qos, *retain),
                *want,
                "{acl:?} {action:?} {topic} {qos} {retain}"
            );
        }
        // `eq t/#` is the literal filter: publishing to a topic under t/ is not it.
        let c = acl.for_client(&client(None, "x", "1.1.1.1", "tcp"));
        assert_eq!(c.check(P, "t/a", 0, false), Deny);
        assert!(c.is_allowed(S, "anything", 0, false), "no_match = allow");
    }

    #[test]
    fn defaults_deny_and_ignore() {
        let acl = parse(
            Path::new("acl.toml"),
            "[[rule]]\npermission = \"allow\"\naction = \"all\"\ntopic = \"a\"\n",
        )
        .unwrap();
        assert_eq!(acl.settings(), Settings::default());
        assert_eq!(acl.settings().no_match, Permission::Deny);
    }

    #[test]
    fn malformed_files_name_the_line() {
        let rule = "[[rule]]\npermission = \"allow\"\naction = \"all\"\n";
        let cases: Vec<(String, usize, &str)> = vec![
            ("no_match = \"maybe\"\n".into(), 1, "unknown variant"),
            ("deny_action = 3\n".into(), 1, ""),
            ("colour = \"red\"\n".into(), 1, "unknown field"),
            (format!("{rule}topics = [\"a/#/b\"]\n"), 4, "invalid topic filter"),
            (
                format!("{rule}topics = [\"ok\",\n  \"a+\"]\n"),
                5,
                "invalid topic filter",
            ),
            (format!("{rule}topics = []\n"), 1, "`topics` is empty"),
            (rule.to_string(), 1, "a rule needs `topics"),
            (format!("{rule}topic = \"a\"\ntopics = [\"b\"]\n"), 4, "not both"),
            (
                format!("{rule}topic = \"a\"\nipaddr = \"10.0.0.0/33\"\n"),
                5,
                "invalid `ipaddr`",
            ),
            (format!("{rule}topic = \"a\"\nqos = [0, 3]\n"), 5, "`qos` levels"),
            (format!("{rule}topic = \"a\"\nqos = []\n"), 5, "`qos` is empty"),
            (format!("{rule}topic = \"a\"\nqos = -1\n"), 5, ""),
            (format!("{rule}topic = \"a\"\nuser_name = \"x\"\n"), 5, "unknown field"),
            (format!("{rule}topic = \"a/${{who}}\"\n"), 4, "unknown placeholder"),
            (
                "[[rule]]\npermission = \"allow\"\naction = \"sub\"\ntopic = \"a\"\nretain = true\n".into(),
                5,
                "`retain` applies to publishes",
            ),
            (
                "[[rule]]\npermission = \"allow\"\naction = \"read\"\ntopic = \"a\"\n".into(),
                3,
                "unknown variant",
            ),
            (
                "[[rule]]\naction = \"all\"\ntopic = \"a\"\n".into(),
                1,
                "missing field `permission`",
            ),
            ("no_match = \"deny\"\n[[rule]\n".into(), 2, ""),
        ];
        for (text, line, message) in &cases {
            let e = parse(Path::new("a.toml"), text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn ipaddr_accepts_an_address_and_clears_host_bits() {
        assert_eq!(parse_net("10.1.2.3/8"), Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(parse_net("10.1.2.3"), Some("10.1.2.3/32".parse().unwrap()));
        assert_eq!(parse_net("::1"), Some("::1/128".parse().unwrap()));
        assert_eq!(parse_net("nope"), None);
    }
}
