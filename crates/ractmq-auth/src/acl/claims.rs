//! The ACL a client brings in its JWT (the `acl` claim), in EMQX's two forms, so tokens minted for EMQX work.
//!
//! * The old map form, `{"pub": [...], "sub": [...], "all": [...]}`: topic filters the client may publish,
//!   subscribe, or both. It is authoritative, as in EMQX (`emqx_authz_client_info`, "v1: always deny when no
//!   match"): whatever it does not allow is denied, and the file ACL behind it is never asked.
//! * The list form, `[{"permission": "allow", "action": "publish", "topic": "t/1", "qos": [0, 1],
//!   "retain": false}, ...]`: rules tried in order. It is not authoritative (EMQX: "passthrough when no rules
//!   match"): a request none of its rules matches gets [`Decision::NoMatch`](crate::acl::Decision), and a
//!   [`ClientAcl::chain`] passes it on to the file ACL.
//!
//! Topics take the native syntax: placeholders (`${username}`, `${clientid}`, `${peerhost}`, `%u`, `%c`,
//! `%i`) and the `eq ` prefix. In the list form `action` is `pub`/`publish`, `sub`/`subscribe` or `all`;
//! `topic` (one) or `topics` (a list); `qos` a level, a list of levels or a string like `"0,1"`; `retain`
//! a boolean, 0/1, their strings, or `"all"`; `ipaddr` and `listener` are who-conditions. Like EMQX, other
//! keys (`username`, `clientid`) are ignored; the regular-expression and zone conditions EMQX also has are
//! refused rather than ignored, since ignoring a condition would widen the rule.
//!
//! The claim's expiry is the token's: the authentication side decides when a connection's token (and with it
//! this ACL) is no longer valid.

use serde_json::{Map, Value};

use crate::acl::native::parse_net;
use crate::acl::pattern::{Syntax, TopicPattern};
use crate::acl::rule::{Permission, QosSet, Rule, RuleAction, Settings, Who};
use crate::acl::{Acl, ClientAcl};
use crate::client::ClientInfo;

/// The most rules, and the most topics, one claim may hold.
pub const MAX_CLAIM_RULES: usize = 10_000;

impl ClientAcl {
    /// The ACL in the JWT claim `acl` for `client`. The error says what is wrong with the claim, for the
    /// authentication side to refuse the token with.
    pub fn from_claims(acl: &Value, client: &ClientInfo) -> Result<ClientAcl, String> {
        let rules = rules_from_claims(acl)?;
        Ok(Acl::new(rules, Settings::default()).for_client(client))
    }
}

impl ClientAcl {
    /// A connection's ACL as the authentication chain left it: everything for a superuser; otherwise the
    /// source's `claims` (a JWT claim, an HTTP answer's `acl`) asked first, then the node's `file` ACL (none
    /// configured: everything allowed, as in Mosquitto without an `acl_file`). A malformed claim is an error,
    /// for the broker to refuse the CONNECT with (as EMQX refuses a token whose ACL does not parse).
    pub fn for_connection(
        file: Option<&Acl>,
        client: &ClientInfo,
        superuser: bool,
        claims: Option<&Value>,
    ) -> Result<ClientAcl, String> {
        if superuser {
            return Ok(ClientAcl::allow_all());
        }
        let file = file.map_or_else(ClientAcl::allow_all, |acl| acl.for_client(client));
        match claims {
            None => Ok(file),
            Some(claims) => Ok(ClientAcl::chain(ClientAcl::from_claims(claims, client)?, file)),
        }
    }
}

/// The rules of an `acl` claim, in order (for the map form, ending with a rule that denies everything).
pub fn rules_from_claims(acl: &Value) -> Result<Vec<Rule>, String> {
    match acl {
        Value::Object(map) => map_form(map),
        Value::Array(list) => list_form(list),
        other => Err(format!(
            "the acl claim must be an object or a list, not {}",
            kind(other)
        )),
    }
}

fn map_form(map: &Map<String, Value>) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    let mut topics_seen = 0usize;
    for (key, action) in [
        ("pub", RuleAction::Publish),
        ("sub", RuleAction::Subscribe),
        ("all", RuleAction::All),
    ] {
        let Some(value) = map.get(key) else { continue };
        let Value::Array(list) = value else {
            return Err(format!("acl.{key} must be a list of topic filters"));
        };
        topics_seen += list.len();
        if topics_seen > MAX_CLAIM_RULES {
            return Err(format!("the acl claim has more than {MAX_CLAIM_RULES} topics"));
        }
        let topics = list
            .iter()
            .map(|t| topic(t).map_err(|e| format!("acl.{key}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if !topics.is_empty() {
            rules.push(Rule::new(Permission::Allow, action, topics));
        }
    }
    // Authoritative: what the lists do not allow is denied, `$` topics included.
    rules.push(Rule::new(Permission::Deny, RuleAction::All, vec![TopicPattern::all()]));
    Ok(rules)
}

fn list_form(list: &[Value]) -> Result<Vec<Rule>, String> {
    if list.len() > MAX_CLAIM_RULES {
        return Err(format!("the acl claim has more than {MAX_CLAIM_RULES} rules"));
    }
    let mut topics_seen = 0usize;
    list.iter()
        .enumerate()
        .map(|(i, raw)| {
            let rule = list_rule(raw).map_err(|e| format!("acl[{i}]: {e}"))?;
            topics_seen += rule.topics.len();
            if topics_seen > MAX_CLAIM_RULES {
                return Err(format!("the acl claim has more than {MAX_CLAIM_RULES} topics"));
            }
            Ok(rule)
        })
        .collect()
}

fn list_rule(raw: &Value) -> Result<Rule, String> {
    let Value::Object(map) = raw else {
        return Err(format!("a rule must be an object, not {}", kind(raw)));
    };
    for refused in ["username_re", "clientid_re", "zone", "zone_re", "listener_re"] {
        if map.contains_key(refused) {
            return Err(format!("`{refused}` is not supported"));
        }
    }
    let permission = match map.get("permission").and_then(Value::as_str) {
        Some("allow") => Permission::Allow,
        Some("deny") => Permission::Deny,
        _ => return Err("`permission` must be \"allow\" or \"deny\"".into()),
    };
    let action = match map.get("action").and_then(Value::as_str) {
        Some("pub" | "publish") => RuleAction::Publish,
        Some("sub" | "subscribe") => RuleAction::Subscribe,
        Some("all") => RuleAction::All,
        _ => return Err("`action` must be \"publish\", \"subscribe\" or \"all\"".into()),
    };
    let topics = match (map.get("topic"), map.get("topics")) {
        (Some(one), _) => vec![topic(one)?],
        (None, Some(Value::Array(list))) if list.len() <= MAX_CLAIM_RULES => {
            list.iter().map(topic).collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(_)) => return Err("`topics` must be a list of topic filters".into()),
        (None, None) => return Err("a rule needs `topic` or `topics`".into()),
    };
    let qos = match map.get("qos") {
        None | Some(Value::Null) => QosSet::ALL,
        Some(q) => qos(q).ok_or_else(|| format!("invalid `qos` {}", short(q)))?,
    };
    // EMQX reads `retain` for publish and all rules only.
    let retain = match (action, map.get("retain")) {
        (RuleAction::Subscribe, _) => None,
        (_, None) => None,
        (_, Some(r)) => retain(r).ok_or_else(|| format!("invalid `retain` {}", short(r)))?,
    };
    let ipaddr = match map.get("ipaddr") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(parse_net)
                .ok_or_else(|| format!("invalid `ipaddr` {}", short(v)))?,
        ),
    };
    let listener = match map.get("listener") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(format!("invalid `listener` {}", short(v))),
    };
    Ok(Rule {
        permission,
        action,
        topics,
        who: Who {
            ipaddr,
            listener,
            ..Who::default()
        },
        qos,
        retain,
    })
}

fn topic(value: &Value) -> Result<TopicPattern, String> {
    match value {
        Value::String(s) => TopicPattern::parse(s, Syntax::Native),
        other => Err(format!("a topic must be a string, not {}", kind(other))),
    }
}

/// `0`, `[0, 1]`, `"0,1"`, `["0", 1]`.
fn qos(value: &Value) -> Option<QosSet> {
    fn level(v: &Value) -> Option<u8> {
        match v {
            Value::Number(n) => n.as_u64().filter(|q| *q <= 2).map(|q| q as u8),
            Value::String(s) => s.trim().parse::<u8>().ok().filter(|q| *q <= 2),
            _ => None,
        }
    }
    let levels: Vec<u8> = match value {
        Value::Number(_) => vec![level(value)?],
        Value::String(s) => s
            .split(',')
            .map(|part| level(&Value::String(part.into())))
            .collect::<Option<_>>()?,
        Value::Array(list) if !list.is_empty() && list.len() <= 3 => list.iter().map(level).collect::<Option<_>>()?,
        _ => return None,
    };
    QosSet::from_levels(levels)
}

/// `Some(condition)`, where `None` is "either" (`"all"`, `null`).
fn retain(value: &Value) -> Option<Option<bool>> {
    Some(match value {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64()? {
            0 => Some(false),
            1 => Some(true),
            _ => return None,
        },
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            "all" => None,
            _ => return None,
        },
        _ => return None,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message, cut to 60 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    crate::acl::pattern::shorten(&text).chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::acl::rule::{Action, Decision};

    fn client() -> ClientInfo {
        ClientInfo {
            client_id: "dev1".into(),
            username: Some("alice".into()),
            peer: "10.0.0.7".parse().unwrap(),
            listener: "tcp".into(),
        }
    }

    #[test]
    fn map_form_is_authoritative() {
        let acl = ClientAcl::from_claims(
            &json!({"pub": ["up/${clientid}/#"], "sub": ["down/%u/#"], "all": ["both"], "exp": 1}),
            &client(),
        )
        .unwrap();
        use Action::{Publish as P, Subscribe as S};
        use Decision::{Allow, Deny};
        let cases = [
            (P, "up/dev1/x", Allow),
            (P, "up/dev2/x", Deny),
            (S, "up/dev1/x", Deny),
            (S, "down/alice/#", Allow),
            (P, "down/alice/x", Deny),
            (P, "both", Allow),
            (S, "both", Allow),
            (S, "$SYS/#", Deny),
            (P, "elsewhere", Deny),
        ];
        for (action, topic, want) in cases {
            assert_eq!(acl.check(action, topic, 0, false), want, "{action:?} {topic}");
        }
        // Chained before a permissive file ACL, it still decides alone.
        let chained = ClientAcl::chain(acl, ClientAcl::allow_all());
        assert_eq!(chained.check(P, "elsewhere", 0, false), Deny);
        // An empty map allows nothing.
        let empty = ClientAcl::from_claims(&json!({}), &client()).unwrap();
        assert_eq!(empty.check(P, "a", 0, false), Deny);
    }

    #[test]
    fn list_form_passes_through() {
        let claim = json!([
            {"permission": "deny", "action": "pub", "topic": "t/secret"},
            {"permission": "allow", "action": "publish", "topics": ["t/#"], "qos": [0, 1], "retain": false},
            {"permission": "allow", "action": "all", "topic": "eq q/#", "qos": "0,2", "retain": "all"},
            {"permission": "allow", "action": "sub", "topic": "net/%i", "ipaddr": "10.0.0.0/24", "retain": 7},
            {"permission": "allow", "action": "sub", "topic": "other-listener", "listener": "ws"},
            {"permission": "allow", "action": "sub", "topic": "ignored-keys", "username": "bob", "clientid": "x"}
        ]);
        let acl = ClientAcl::from_claims(&claim, &client()).unwrap();
        use Action::{Publish as P, Subscribe as S};
        use Decision::{Allow, Deny, NoMatch};
        let cases = [
            (P, "t/secret", 0, false, Deny),
            (P, "t/a", 1, false, Allow),
            (P, "t/a", 2, false, NoMatch),
            (P, "t/a", 0, true, NoMatch),
            (S, "q/#", 2, false, Allow),
            (S, "q/#", 1, false, NoMatch),
            (S, "q/a", 0, false, NoMatch),
            (S, "net/10.0.0.7", 0, false, Allow),
            (S, "other-listener", 0, false, NoMatch),
            (S, "ignored-keys", 0, false, Allow),
        ];
        for (action, topic, qos, retain, want) in cases {
            assert_eq!(
                acl.check(action, topic, qos, retain),
                want,
                "{action:?} {topic} {qos} {retain}"
            );
        }
        // Chained: NoMatch goes on to the file ACL.
        let chained = ClientAcl::chain(acl, ClientAcl::allow_all());
        assert_eq!(chained.check(P, "t/a", 2, false), Allow);
        assert_eq!(chained.check(P, "t/secret", 0, false), Deny);
    }

    /// Random JSON shaped somewhat like a claim: any answer is fine, a panic is not.
    #[test]
    fn random_claims_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn value(next: &mut impl FnMut() -> u64, depth: u32) -> Value {
            let words = [
                "permission",
                "action",
                "topic",
                "topics",
                "qos",
                "retain",
                "ipaddr",
                "listener",
                "pub",
                "sub",
                "all",
                "allow",
                "deny",
                "publish",
                "a/#",
                "+",
                "#",
                "%u",
                "${clientid}",
                "eq a",
                "0,1",
                "true",
                "10.0.0.0/8",
                "",
                "$SYS/#",
            ];
            let word = |n: u64| Value::String(words[(n % words.len() as u64) as usize].into());
            match next() % if depth > 3 { 4 } else { 7 } {
                0 => Value::Null,
                1 => Value::from(next() % 5),
                2 => Value::Bool(next() & 1 == 0),
                3 => word(next()),
                4 | 5 => Value::Array((0..next() % 5).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 6)
                        .map(|_| {
                            let key = words[(next() % words.len() as u64) as usize].to_string();
                            (key, value(next, depth + 1))
                        })
                        .collect(),
                ),
            }
        }
        for _ in 0..5000 {
            let claim = value(&mut next, 0);
            if let Ok(acl) = ClientAcl::from_claims(&claim, &client()) {
                acl.check(Action::Publish, "a/b", 1, true);
                acl.check(Action::Subscribe, "a/#", 2, false);
            }
        }
    }

    #[test]
    fn for_connection_composes_superuser_claims_and_file() {
        let file = Acl::new(
            vec![Rule::new(
                Permission::Allow,
                RuleAction::All,
                vec![TopicPattern::parse("file/#", Syntax::Native).unwrap()],
            )],
            Settings::default(),
        );
        let claims = json!([{"permission": "allow", "action": "all", "topic": "claim/#"}]);
        let c = client();
        let both = ClientAcl::for_connection(Some(&file), &c, false, Some(&claims)).unwrap();
        assert!(both.is_allowed(Action::Publish, "claim/x", 0, false));
        assert!(both.is_allowed(Action::Publish, "file/x", 0, false));
        assert!(
            !both.is_allowed(Action::Publish, "other", 0, false),
            "the file's no_match denies"
        );
        let file_only = ClientAcl::for_connection(Some(&file), &c, false, None).unwrap();
        assert!(!file_only.is_allowed(Action::Publish, "claim/x", 0, false));
        let superuser = ClientAcl::for_connection(Some(&file), &c, true, Some(&claims)).unwrap();
        assert!(superuser.is_allowed(Action::Publish, "other", 0, false));
        let no_file = ClientAcl::for_connection(None, &c, false, Some(&json!({"pub": ["a"]}))).unwrap();
        assert!(
            !no_file.is_allowed(Action::Publish, "b", 0, false),
            "the map form is authoritative"
        );
        assert!(ClientAcl::for_connection(None, &c, false, Some(&json!("bad"))).is_err());
    }

    #[test]
    fn bad_claims_are_errors() {
        let cases = [
            (json!("pub"), "must be an object or a list"),
            (json!({"pub": "a"}), "acl.pub must be a list"),
            (json!({"sub": [1]}), "acl.sub: a topic must be a string"),
            (json!({"all": ["a/#/b"]}), "invalid topic filter"),
            (json!([1]), "acl[0]: a rule must be an object"),
            (json!([{"action": "pub", "topic": "a"}]), "`permission`"),
            (
                json!([{"permission": "allow", "action": "write", "topic": "a"}]),
                "`action`",
            ),
            (json!([{"permission": "allow", "action": "pub"}]), "needs `topic`"),
            (
                json!([{"permission": "allow", "action": "pub", "topics": "a"}]),
                "`topics` must be a list",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "qos": 3}]),
                "invalid `qos`",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "qos": []}]),
                "invalid `qos`",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "retain": "yes"}]),
                "invalid `retain`",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "ipaddr": "x"}]),
                "invalid `ipaddr`",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "listener": 1}]),
                "invalid `listener`",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a", "username_re": "^a"}]),
                "not supported",
            ),
            (
                json!([{"permission": "allow", "action": "pub", "topic": "a/${nope}"}]),
                "unknown placeholder",
            ),
        ];
        for (claim, message) in cases {
            let e = ClientAcl::from_claims(&claim, &client()).unwrap_err();
            assert!(e.contains(message), "{claim}: {e}");
        }
        let many: Vec<Value> = (0..=MAX_CLAIM_RULES)
            .map(|i| json!({"permission": "allow", "action": "pub", "topic": format!("t/{i}")}))
            .collect();
        assert!(ClientAcl::from_claims(&Value::Array(many), &client())
            .unwrap_err()
            .contains("more than"));
    }
}
