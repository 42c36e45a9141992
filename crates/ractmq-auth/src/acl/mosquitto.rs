//! Mosquitto's `acl_file`, read as-is, so an operator moving from Mosquitto keeps the file.
//!
//! The format (mosquitto.conf(5), `acl_file`): `#` comments and blank lines; `user NAME` starts a user's
//! section; `topic [read|write|readwrite|deny] TOPIC` grants (or denies) a topic to the current section's user,
//! and `topic` lines before any `user` line are for clients without a user name; `pattern [ACCESS] TOPIC`
//! applies to every client, with `%u` (user name) and `%c` (client id) substituted. The access word is
//! optional (read and write), which is why a topic containing a space needs it. `read` is subscribing (and
//! receiving), `write` is publishing.
//!
//! Evaluation mirrors Mosquitto's `mosquitto_acl_check_default` (src/security_default.c) step by step, as an
//! ordered rule list where the first match wins:
//!
//! 1. the client's own `topic` lines (its user's section, or the anonymous section for a client without a
//!    user name), `deny` lines first: Mosquitto keeps each section's list with denials at its front, so a
//!    `deny` beats a grant wherever the two are written;
//! 2. if the file has any `pattern` line, a client whose user name or client id contains `+` or `#` is denied
//!    everything here (Mosquitto's guard against identities that would widen a pattern);
//! 3. the `pattern` lines, `deny` lines first again; a pattern naming `%u` does not apply to a client without
//!    a user name;
//! 4. nothing matched: denied. A grant whose topic matches but whose access does not (a `read` line for a
//!    publish) does not stop the search, as in Mosquitto.
//!
//! Differences, all in the direction of refusing more: a substituted value containing `/` (or an empty
//! user name) makes its pattern match nothing (Mosquitto would substitute it, spanning levels); a SUBSCRIBE is
//! checked when it arrives, by whether a `read` pattern covers the whole filter, where Mosquitto 2 accepts
//! every subscription and checks `read` on each message delivered (a broker wanting that too asks
//! [`crate::acl::Action::Subscribe`] with the topic name of each delivery). Lenient where Mosquitto errs:
//! tabs separate words too, and a comment may be indented.

use std::path::Path;

use crate::acl::pattern::{shorten, Syntax, TopicPattern};
use crate::acl::rule::{Permission, Rule, RuleAction, Settings, UserMatch, Who};
use crate::acl::{Acl, MAX_RULES};
use crate::error::FileError;

/// Parse the text of a Mosquitto ACL file named `file`.
pub fn parse(file: &Path, text: &str) -> Result<Acl, FileError> {
    let mut user: Option<String> = None;
    let mut any_pattern = false;
    // The four groups of Mosquitto's evaluation order, each in file order.
    let mut topic_denies = Vec::new();
    let mut topic_grants = Vec::new();
    let mut pattern_denies = Vec::new();
    let mut pattern_grants = Vec::new();
    let mut count = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |message: String| FileError::at(file, line_no, message);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = split_word(line);
        match keyword {
            "user" => {
                let name = rest.trim();
                if name.is_empty() {
                    return Err(err("`user` needs a user name".into()));
                }
                user = Some(name.to_string());
            }
            "topic" | "pattern" => {
                let (first, after) = split_word(rest);
                if first.is_empty() {
                    return Err(err(format!(
                        "`{keyword}` needs a topic: `{keyword} [read|write|readwrite|deny] TOPIC`"
                    )));
                }
                let (access, topic) = match after.trim() {
                    // One word: it is the topic, with read and write access.
                    "" => (Access::ReadWrite, first),
                    topic => (Access::parse(first).ok_or_else(|| {
                        err(format!(
                            "unknown access `{}` (expected read, write, readwrite or deny; a topic with a space needs one)",
                            shorten(first)
                        ))
                    })?, topic),
                };
                let syntax = if keyword == "pattern" {
                    Syntax::Mosquitto
                } else {
                    Syntax::Literal
                };
                let pattern = TopicPattern::parse(topic, syntax).map_err(err)?;
                count += 1;
                if count > MAX_RULES {
                    return Err(err(format!("more than {MAX_RULES} rules in one file")));
                }
                let (permission, action) = access.rule();
                let mut rule = Rule::new(permission, action, vec![pattern]);
                let deny = permission == Permission::Deny;
                if keyword == "pattern" {
                    any_pattern = true;
                    if deny { &mut pattern_denies } else { &mut pattern_grants }.push(rule);
                } else {
                    rule.who.user = Some(match &user {
                        Some(name) => UserMatch::Name(name.clone()),
                        None => UserMatch::Anonymous,
                    });
                    if deny { &mut topic_denies } else { &mut topic_grants }.push(rule);
                }
            }
            other => {
                return Err(err(format!(
                    "unknown keyword `{}` (expected `user`, `topic` or `pattern`)",
                    shorten(other)
                )))
            }
        }
    }
    let mut rules = topic_denies;
    rules.append(&mut topic_grants);
    if any_pattern {
        let mut guard = Rule::new(Permission::Deny, RuleAction::All, vec![TopicPattern::all()]);
        guard.who = Who {
            wildcard_identity: true,
            ..Who::default()
        };
        rules.push(guard);
    }
    rules.append(&mut pattern_denies);
    rules.append(&mut pattern_grants);
    Ok(Acl::new(rules, Settings::default()))
}

/// The first whitespace-separated word of `s` and what follows it.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(at) => (&s[..at], &s[at..]),
        None => (s, ""),
    }
}

#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        Some(match word {
            "read" => Access::Read,
            "write" => Access::Write,
            "readwrite" => Access::ReadWrite,
            "deny" => Access::Deny,
            _ => return None,
        })
    }

    fn rule(self) -> (Permission, RuleAction) {
        match self {
            Access::Read => (Permission::Allow, RuleAction::Subscribe),
            Access::Write => (Permission::Allow, RuleAction::Publish),
            Access::ReadWrite => (Permission::Allow, RuleAction::All),
            Access::Deny => (Permission::Deny, RuleAction::All),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::rule::{Action, Decision};
    use crate::client::ClientInfo;

    const FILE: &str = "\
# Anonymous clients: the lines before any `user` line.
topic read public/#
topic readwrite anon/chat

user alice
topic readwrite alice/#
topic read shared/+/status
# A deny after the grants still wins for alice.
topic deny alice/secret
topic read with space/x y

user bob
topic write bob/out
topic bob/both

pattern write sensors/%c/data
pattern read users/%u/inbox/#
pattern deny sensors/%c/data/blocked
pattern read $SYS/broker/connection/%c/state
";

    fn client(user: Option<&str>, id: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            username: user.map(Into::into),
            peer: "127.0.0.1".parse().unwrap(),
            listener: "tcp".into(),
        }
    }

    #[test]
    fn evaluation_table() {
        let acl = parse(Path::new("acl"), FILE).unwrap();
        assert_eq!(acl.settings().no_match, Permission::Deny);
        use Action::{Publish as P, Subscribe as S};
        // (user, client id, action, topic, allowed)
        let cases: &[(Option<&str>, &str, Action, &str, bool)] = &[
            (None, "a1", S, "public/news", true),
            (None, "a1", S, "public/#", true),
            (None, "a1", P, "public/news", false),
            (None, "a1", P, "anon/chat", true),
            (None, "a1", S, "alice/x", false),
            (Some("alice"), "c1", P, "alice/x", true),
            (Some("alice"), "c1", S, "alice/#", true),
            (Some("alice"), "c1", P, "alice/secret", false),
            (Some("alice"), "c1", S, "alice/secret", false),
            (Some("alice"), "c1", S, "shared/x/status", true),
            (Some("alice"), "c1", S, "shared/+/status", true),
            (Some("alice"), "c1", S, "shared/#", false),
            (Some("alice"), "c1", S, "with space/x y", true),
            // Named users do not get the anonymous lines.
            (Some("alice"), "c1", S, "public/news", false),
            (Some("bob"), "c2", P, "bob/out", true),
            (Some("bob"), "c2", S, "bob/out", false),
            (Some("bob"), "c2", S, "bob/both", true),
            (Some("bob"), "c2", P, "bob/both", true),
            // A user without a section gets the patterns only.
            (Some("carol"), "c3", P, "sensors/c3/data", true),
            (Some("carol"), "c3", P, "sensors/c4/data", false),
            (Some("carol"), "c3", S, "sensors/c3/data", false),
            (Some("carol"), "c3", S, "users/carol/inbox/#", true),
            (Some("carol"), "c3", S, "users/carol/inbox/x", true),
            (Some("carol"), "c3", S, "users/+/inbox/x", false),
            (Some("carol"), "c3", S, "$SYS/broker/connection/c3/state", true),
            (Some("carol"), "c3", S, "$SYS/broker/connection/c4/state", false),
            // `%u` patterns do not apply without a user name; `%c` ones do.
            (None, "c5", S, "users/c5/inbox/x", false),
            (None, "c5", P, "sensors/c5/data", true),
            // Pattern denials come before pattern grants.
            (None, "c5", P, "sensors/c5/data/blocked", false),
            // The guard: a wildcard in the identity denies everything once patterns exist.
            (Some("ev+l"), "c6", P, "sensors/c6/data", false),
            (Some("eve"), "c#", P, "sensors/c#/data", false),
        ];
        for (user, id, action, topic, want) in cases {
            let c = acl.for_client(&client(*user, id));
            assert_eq!(
                c.is_allowed(*action, topic, 0, false),
                *want,
                "{user:?}/{id} {action:?} {topic}"
            );
        }
    }

    #[test]
    fn user_sections_merge_and_the_guard_only_exists_with_patterns() {
        let acl = parse(
            Path::new("acl"),
            "user a\ntopic read x\nuser b\ntopic read y\nuser a\ntopic read z\n",
        )
        .unwrap();
        let a = acl.for_client(&client(Some("a"), "id"));
        assert!(a.is_allowed(Action::Subscribe, "x", 0, false));
        assert!(a.is_allowed(Action::Subscribe, "z", 0, false));
        assert!(!a.is_allowed(Action::Subscribe, "y", 0, false));
        // Without patterns, a wildcard identity just gets its own topic lines.
        let odd = parse(Path::new("acl"), "user a+\ntopic read x\n").unwrap();
        let c = odd.for_client(&client(Some("a+"), "id"));
        assert_eq!(c.check(Action::Subscribe, "x", 0, false), Decision::Allow);
    }

    #[test]
    fn empty_file_denies_everything() {
        let acl = parse(Path::new("acl"), "").unwrap();
        let c = acl.for_client(&client(None, "x"));
        assert!(!c.is_allowed(Action::Publish, "a", 0, false));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("topic read a\nuser\n", 2, "`user` needs a user name"),
            ("\n\ntopic\n", 3, "`topic` needs a topic"),
            ("pattern   \n", 1, "`pattern` needs a topic"),
            ("topic read a/#/b\n", 1, "invalid topic filter"),
            ("topic reed a\n", 1, "unknown access `reed`"),
            ("topic a b\n", 1, "unknown access `a`"),
            ("# ok\ntopix read a\n", 2, "unknown keyword `topix`"),
            ("topic read a+\n", 1, "invalid topic filter"),
            ("pattern read a/%u/#/x\n", 1, "invalid topic filter"),
        ];
        for (text, line, message) in cases {
            let e = parse(Path::new("/etc/acl"), text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
            assert!(e.to_string().starts_with(&format!("/etc/acl:{line}: ")));
        }
    }

    #[test]
    fn crlf_and_single_word_topics() {
        let acl = parse(Path::new("acl"), "user u\r\ntopic read\r\ntopic write x\r\n").unwrap();
        let c = acl.for_client(&client(Some("u"), "id"));
        // `topic read` alone grants read and write on the topic `read`, as Mosquitto reads it.
        assert!(c.is_allowed(Action::Publish, "read", 0, false));
        assert!(c.is_allowed(Action::Publish, "x", 0, false));
    }
}
