//! Per-client queue policy: the rules that give some clients other queue bounds, another overflow policy or
//! another stall timeout than the node-wide limits.
//!
//! One node serves clients that want different things when they fall behind: a fleet of sensors on WebSocket is
//! better disconnected when stuck (they reconnect and resubscribe), a dashboard better served by dropping its
//! oldest messages, a bridge better given a deeper queue. Operators say so with an ordered list of
//! [`QueueRule`]s. Each matches clients by listener kind, client id glob and user name glob (every matcher it
//! has must match; one without matchers matches everyone), and names the settings it changes. The FIRST rule
//! that matches a client supplies the settings it names; the others come from the node-wide limits
//! ([`crate::Limits::online_queue`]). A rule that names no setting thus keeps the clients it matches on the
//! node-wide policy, whatever the rules after it say.
//!
//! Rules are resolved once, when a client connects ([`resolve`]): the result is a plain [`QueuePolicy`] kept
//! with the session, so they cost nothing on the publish path.
//!
//! Globs are [`globset`]'s, matched against the whole client id or user name: `*` is any run of characters
//! (`/` included), `?` one character, `[abc]` / `[!abc]` / `[a-z]` one character of (or not of) a set,
//! `{a,b}` either alternative, `\*` a literal `*`. Matching is case-sensitive, like client ids.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};

use crate::config::OverflowPolicy;
use crate::queue::QueuePolicy;

/// The kind of listener a client connected through, as `ListenerSpec::kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket on TLS.
    Wss,
}

impl ListenerKind {
    /// Every kind, in the order of the enum.
    pub const ALL: [ListenerKind; 4] = [
        ListenerKind::Tcp,
        ListenerKind::Tls,
        ListenerKind::Ws,
        ListenerKind::Wss,
    ];

    /// The kind's name in configuration: `tcp`, `tls`, `ws` or `wss`.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Tls => "tls",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }
}

impl FromStr for ListenerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ListenerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown listener kind '{s}': use tcp, tls, ws or wss"))
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A glob matched against a whole client id or user name (see the module doc for the syntax).
#[derive(Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compile `text`; the error says what is wrong with it, e.g. "unclosed character class; missing ']'".
    pub fn new(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing but an empty string".into());
        }
        let glob = GlobBuilder::new(text)
            // Client ids are not paths: `*` goes across `/` too.
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Pattern {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if `s`, whole, matches the pattern.
    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

/// One rule: which clients it is for, and which of their queue settings it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueRule {
    /// Only clients connected through this kind of listener.
    pub listener: Option<ListenerKind>,
    /// Only clients whose id matches.
    pub client_id: Option<Pattern>,
    /// Only clients whose user name matches (a client that sent none never matches).
    pub username: Option<Pattern>,
    /// [`QueuePolicy::max_len`] for the clients matched.
    pub max_len: Option<usize>,
    /// [`QueuePolicy::max_bytes`] for the clients matched.
    pub max_bytes: Option<usize>,
    /// [`QueuePolicy::overflow`] for the clients matched.
    pub overflow: Option<OverflowPolicy>,
    /// [`QueuePolicy::stall_timeout`] for the clients matched.
    pub stall_timeout: Option<Duration>,
}

impl QueueRule {
    /// Every matcher the rule has matches this client.
    pub fn matches(&self, listener: &str, client_id: &str, username: Option<&str>) -> bool {
        self.listener.is_none_or(|kind| kind.as_str() == listener)
            && self.client_id.as_ref().is_none_or(|p| p.is_match(client_id))
            && self
                .username
                .as_ref()
                .is_none_or(|p| username.is_some_and(|u| p.is_match(u)))
    }

    /// `node` with the settings this rule names in place of its own.
    pub fn apply(&self, node: QueuePolicy) -> QueuePolicy {
        QueuePolicy {
            max_len: self.max_len.unwrap_or(node.max_len),
            max_bytes: self.max_bytes.unwrap_or(node.max_bytes),
            overflow: self.overflow.unwrap_or(node.overflow),
            stall_timeout: self.stall_timeout.unwrap_or(node.stall_timeout),
        }
    }
}

/// The queue policy of a client connecting through `listener` ("tcp", "tls", "ws" or "wss"): the first rule
/// that matches it applied over the node-wide policy `node`, or `node` itself if none matches.
pub fn resolve(
    rules: &[QueueRule],
    node: QueuePolicy,
    listener: &str,
    client_id: &str,
    username: Option<&str>,
) -> QueuePolicy {
    match rules.iter().find(|r| r.matches(listener, client_id, username)) {
        Some(rule) => rule.apply(node),
        None => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> QueuePolicy {
        QueuePolicy {
            max_len: 1000,
            max_bytes: 1 << 24,
            overflow: OverflowPolicy::DropOldest,
            stall_timeout: Duration::from_secs(5),
        }
    }

    fn glob(s: &str) -> Option<Pattern> {
        Some(Pattern::new(s).unwrap())
    }

    #[test]
    fn no_rules_or_no_match_is_the_node_wide_policy() {
        assert_eq!(resolve(&[], node(), "tcp", "a", None), node());
        let rules = [QueueRule {
            client_id: glob("sensor-*"),
            max_len: Some(5),
            ..QueueRule::default()
        }];
        assert_eq!(resolve(&rules, node(), "tcp", "dashboard", None), node());
    }

    #[test]
    fn a_rule_sets_only_what_it_names() {
        let rules = [QueueRule {
            client_id: glob("sensor-*"),
            overflow: Some(OverflowPolicy::Disconnect),
            ..QueueRule::default()
        }];
        let policy = resolve(&rules, node(), "tcp", "sensor-1", None);
        assert_eq!(
            policy,
            QueuePolicy {
                overflow: OverflowPolicy::Disconnect,
                ..node()
            }
        );
        let all = QueueRule {
            max_len: Some(10),
            max_bytes: Some(100),
            overflow: Some(OverflowPolicy::DropNewest),
            stall_timeout: Some(Duration::from_millis(300)),
            ..QueueRule::default()
        };
        assert_eq!(
            all.apply(node()),
            QueuePolicy {
                max_len: 10,
                max_bytes: 100,
                overflow: OverflowPolicy::DropNewest,
                stall_timeout: Duration::from_millis(300),
            }
        );
    }

    #[test]
    fn the_first_matching_rule_wins_whole() {
        let rules = [
            QueueRule {
                client_id: glob("sensor-*"),
                max_len: Some(10),
                ..QueueRule::default()
            },
            QueueRule {
                client_id: glob("sensor-1*"),
                max_len: Some(20),
                overflow: Some(OverflowPolicy::Disconnect),
                ..QueueRule::default()
            },
        ];
        // Both match sensor-17; the first alone applies: its max_len, and the node's overflow, not the second's.
        let policy = resolve(&rules, node(), "tcp", "sensor-17", None);
        assert_eq!(policy.max_len, 10);
        assert_eq!(policy.overflow, OverflowPolicy::DropOldest);
    }

    #[test]
    fn a_rule_without_settings_keeps_its_clients_on_the_node_wide_policy() {
        let rules = [
            QueueRule {
                client_id: glob("admin-*"),
                ..QueueRule::default()
            },
            QueueRule {
                overflow: Some(OverflowPolicy::Disconnect),
                ..QueueRule::default()
            },
        ];
        assert_eq!(resolve(&rules, node(), "tcp", "admin-1", None), node());
        assert_eq!(
            resolve(&rules, node(), "tcp", "anyone", None).overflow,
            OverflowPolicy::Disconnect,
            "a rule without matchers matches everyone"
        );
    }

    #[test]
    fn every_matcher_a_rule_has_must_match() {
        let rule = QueueRule {
            listener: Some(ListenerKind::Ws),
            client_id: glob("sensor-*"),
            username: glob("fleet"),
            max_len: Some(1),
            ..QueueRule::default()
        };
        assert!(rule.matches("ws", "sensor-1", Some("fleet")));
        assert!(!rule.matches("tcp", "sensor-1", Some("fleet")), "listener");
        assert!(!rule.matches("ws", "probe-1", Some("fleet")), "client id");
        assert!(!rule.matches("ws", "sensor-1", Some("other")), "user name");
        assert!(
            !rule.matches("ws", "sensor-1", None),
            "a client without a user name never matches a user name pattern"
        );
    }

    #[test]
    fn listener_kinds_match_exactly() {
        for kind in ListenerKind::ALL {
            let rule = QueueRule {
                listener: Some(kind),
                ..QueueRule::default()
            };
            for other in ListenerKind::ALL {
                assert_eq!(
                    rule.matches(other.as_str(), "c", None),
                    kind == other,
                    "{kind} vs {other}"
                );
            }
            assert_eq!(kind.as_str().parse::<ListenerKind>(), Ok(kind));
        }
        assert_eq!(
            "quic".parse::<ListenerKind>(),
            Err("unknown listener kind 'quic': use tcp, tls, ws or wss".to_string())
        );
        assert!("WS".parse::<ListenerKind>().is_err(), "kinds are lower case");
    }

    #[test]
    fn globs_match_whole_ids() {
        let p = |s: &str| Pattern::new(s).unwrap();
        assert!(p("sensor-*").is_match("sensor-"));
        assert!(p("sensor-*").is_match("sensor-12/a/b"), "* crosses /");
        assert!(!p("sensor-*").is_match("my-sensor-1"), "anchored at the start");
        assert!(!p("sensor").is_match("sensor-1"), "anchored at the end");
        assert!(p("dev-?").is_match("dev-7"));
        assert!(!p("dev-?").is_match("dev-77"));
        assert!(p("dev-[0-4]").is_match("dev-3"));
        assert!(!p("dev-[0-4]").is_match("dev-5"));
        assert!(p("dev-[!0-4]").is_match("dev-5"));
        assert!(p("{sensor,probe}-*").is_match("probe-1"));
        assert!(!p("Sensor-*").is_match("sensor-1"), "case-sensitive");
        assert!(p(r"odd\*").is_match("odd*"));
        assert!(!p(r"odd\*").is_match("odd1"));
        assert!(p("*").is_match("anything at all"));
    }

    #[test]
    fn bad_globs_are_refused_with_the_reason() {
        let e = Pattern::new("dev-[0-4").unwrap_err();
        assert!(e.contains("unclosed character class"), "{e}");
        assert!(Pattern::new("{a,b").unwrap_err().contains("unclosed alternate group"));
        assert!(Pattern::new("").is_err());
        assert_eq!(Pattern::new("a*").unwrap().as_str(), "a*");
    }
}
