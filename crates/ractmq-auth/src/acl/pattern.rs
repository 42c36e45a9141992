//! ACL topic patterns: a topic filter that may name the client (`%u`, `%c`, `%i`), or an `eq` literal.
//!
//! A pattern is parsed once, when its file is loaded, into levels; placeholders stay unexpanded so that one
//! index serves every client (see `index.rs`). This module also holds the reference meaning of a pattern,
//! [`TopicPattern::covers`], which the index must agree with:
//!
//! * for a PUBLISH (a topic name), the pattern as a filter matches the name, `$` topics excepted from leading
//!   wildcards as in MQTT;
//! * for a SUBSCRIBE (a topic filter), the pattern covers the filter: every name the filter matches, the
//!   pattern matches too. `a/#` covers `a/b/+` and `a`; `a/+` does not cover `a/#`; a literal level covers
//!   only the same literal, never `+`.
//!
//! A placeholder is replaced by the client's value only when that value is safe in a topic level: present,
//! non-empty, and free of `+`, `#`, `/` and NUL. Otherwise the pattern (not the whole rule: its other topics
//! still count) matches nothing for that client, so an identity like `+` or `a/#` can never widen what a
//! pattern grants. Mosquitto substitutes `/` too; EMQX refuses all three characters by default, as here.

use std::fmt;

use ractmq_codec::topic::valid_filter;

/// The most levels a wildcard or placeholder pattern may have: matching recurses once per level.
pub const MAX_PATTERN_LEVELS: usize = 128;

/// A client fact a pattern can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Var {
    /// `%u` / `${username}`: the user name.
    Username,
    /// `%c` / `${clientid}`: the client id.
    ClientId,
    /// `%i` / `${peerhost}`: the peer address, as text (`10.0.0.1`, `2001:db8::1`).
    PeerIp,
}

/// A part of a level that mentions a placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Piece {
    /// Literal text.
    Text(Box<str>),
    /// The client's value of a placeholder.
    Var(Var),
}

/// One level of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Level {
    /// Exactly this text.
    Literal(Box<str>),
    /// `+`: any one level.
    Plus,
    /// `#`: this level and everything below, and the parent level itself.
    Hash,
    /// Text with placeholders, matching one level equal to its rendering.
    Template(Box<[Piece]>),
}

/// What placeholder syntax a pattern's source uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// No placeholders and no `eq`: Mosquitto `topic` lines.
    Literal,
    /// `%u` and `%c`: Mosquitto `pattern` lines.
    Mosquitto,
    /// `%u`, `%c`, `%i`, `${username}`, `${clientid}`, `${peerhost}` and the `eq ` prefix: native files and
    /// JWT claims (EMQX's syntax).
    Native,
}

/// A parsed ACL topic pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    text: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// Every topic, `$` topics included (no file syntax: the parsers' catch-all rules).
    All,
    /// `eq TOPIC`: exactly this string, wildcards and placeholders taken literally.
    Eq(Box<str>),
    /// A filter. All-literal filters have no wildcard and no placeholder.
    Filter(Box<[Level]>),
}

impl TopicPattern {
    /// Parse `text` in `syntax`. The error says what is wrong, for the caller to put in a `FileError`.
    pub fn parse(text: &str, syntax: Syntax) -> Result<TopicPattern, String> {
        if syntax == Syntax::Native {
            if let Some(exact) = text.strip_prefix("eq ") {
                if !valid_filter(exact) {
                    return Err(format!("invalid topic after `eq`: {exact:?}"));
                }
                return Ok(TopicPattern {
                    text: text.into(),
                    kind: Kind::Eq(exact.into()),
                });
            }
        }
        if !valid_filter(text) {
            return Err(format!(
                "invalid topic filter {:?} (`+` and `#` must be whole levels, `#` only last; not empty)",
                shorten(text)
            ));
        }
        let mut levels = Vec::new();
        for level in text.split('/') {
            levels.push(match level {
                "+" => Level::Plus,
                "#" => Level::Hash,
                _ => parse_level(level, syntax)?,
            });
        }
        let wild = levels.iter().any(|l| !matches!(l, Level::Literal(_)));
        if wild && levels.len() > MAX_PATTERN_LEVELS {
            return Err(format!(
                "topic pattern has {} levels; a pattern with wildcards or placeholders may have at most {MAX_PATTERN_LEVELS}",
                levels.len()
            ));
        }
        Ok(TopicPattern {
            text: text.into(),
            kind: Kind::Filter(levels.into()),
        })
    }

    /// The pattern that matches every topic and filter, `$` topics included.
    pub fn all() -> TopicPattern {
        TopicPattern {
            text: "<all topics>".into(),
            kind: Kind::All,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The reference meaning of the pattern: does it, with `values` for its placeholders, match the topic
    /// name or cover the topic filter `topic`? The compiled index answers the same question faster.
    pub fn covers(&self, values: &Values<'_>, topic: &str) -> bool {
        match &self.kind {
            Kind::All => true,
            Kind::Eq(exact) => **exact == *topic,
            Kind::Filter(levels) => covers_levels(levels, values, topic),
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A client's placeholder values, each `None` when missing or unsafe in a topic level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values<'a> {
    /// The user name.
    pub username: Option<&'a str>,
    /// The client id.
    pub client_id: Option<&'a str>,
    /// The peer address as text.
    pub peer: Option<&'a str>,
}

impl<'a> Values<'a> {
    /// Keep each value only if it is safe to put in a topic level.
    pub fn new(username: Option<&'a str>, client_id: Option<&'a str>, peer: Option<&'a str>) -> Values<'a> {
        Values {
            username: username.filter(|v| safe_value(v)),
            client_id: client_id.filter(|v| safe_value(v)),
            peer: peer.filter(|v| safe_value(v)),
        }
    }

    pub(crate) fn get(&self, var: Var) -> Option<&'a str> {
        match var {
            Var::Username => self.username,
            Var::ClientId => self.client_id,
            Var::PeerIp => self.peer,
        }
    }
}

/// True if `value` can stand for (part of) one topic level without widening the pattern.
pub fn safe_value(value: &str) -> bool {
    !value.is_empty() && !value.contains(['+', '#', '/', '\0'])
}

/// True if `level` of a topic equals the template rendered with `values`.
pub(crate) fn template_matches(pieces: &[Piece], mut level: &str, values: &Values<'_>) -> bool {
    // Lengths first: most levels a template is tried against differ in length, and this is cheaper than
    // comparing text (the common `%u` level then costs one comparison of lengths).
    let mut len = 0usize;
    for piece in pieces {
        len += match piece {
            Piece::Text(text) => text.len(),
            Piece::Var(var) => match values.get(*var) {
                Some(value) => value.len(),
                None => return false,
            },
        };
    }
    if len != level.len() {
        return false;
    }
    for piece in pieces {
        let part = match piece {
            Piece::Text(text) => &**text,
            Piece::Var(var) => match values.get(*var) {
                Some(value) => value,
                None => return false,
            },
        };
        match level.strip_prefix(part) {
            Some(rest) => level = rest,
            None => return false,
        }
    }
    level.is_empty()
}

/// True if the template's text begins with a placeholder: such a first level must not match a `$` topic
/// (a client named `$SYS` must not turn `%u/#` into `$SYS/#`).
pub(crate) fn starts_with_var(pieces: &[Piece]) -> bool {
    matches!(pieces.first(), Some(Piece::Var(_)))
}

fn covers_levels(levels: &[Level], values: &Values<'_>, topic: &str) -> bool {
    let dollar = topic.starts_with('$');
    let mut topic_levels = topic.split('/');
    for (i, level) in levels.iter().enumerate() {
        let first = i == 0;
        if let Level::Hash = level {
            return !(first && dollar);
        }
        // A topic that ends here is covered only by a `#` here (it matches the parent level), handled above.
        let Some(t) = topic_levels.next() else {
            return false;
        };
        let ok = match level {
            Level::Plus => t != "#" && !(first && dollar),
            Level::Literal(text) => t != "+" && t != "#" && **text == *t,
            Level::Template(pieces) => {
                t != "+"
                    && t != "#"
                    && !(first && dollar && starts_with_var(pieces))
                    && template_matches(pieces, t, values)
            }
            Level::Hash => unreachable!("handled above"),
        };
        if !ok {
            return false;
        }
    }
    topic_levels.next().is_none()
}

fn parse_level(level: &str, syntax: Syntax) -> Result<Level, String> {
    if syntax == Syntax::Literal || !level.contains(['%', '$']) {
        return Ok(Level::Literal(level.into()));
    }
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = level;
    while !rest.is_empty() {
        let found = placeholder_at(rest, syntax);
        match found {
            Some((var, len)) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text).into()));
                }
                pieces.push(Piece::Var(var));
                rest = &rest[len..];
            }
            None => {
                if syntax == Syntax::Native && rest.starts_with("${") {
                    let name: String = rest[2..].chars().take_while(|c| *c != '}').take(40).collect();
                    return Err(format!(
                        "unknown placeholder `${{{name}}}` (known: ${{username}}, ${{clientid}}, ${{peerhost}}, %u, %c, %i)"
                    ));
                }
                let c = rest.chars().next().expect("rest is not empty");
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
        return Ok(Level::Literal(level.into()));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
    Ok(Level::Template(pieces.into()))
}

/// The placeholder at the start of `s`, with its length in bytes. `%` followed by anything else is a literal
/// `%`, as Mosquitto reads it.
fn placeholder_at(s: &str, syntax: Syntax) -> Option<(Var, usize)> {
    let short = [("%u", Var::Username), ("%c", Var::ClientId), ("%i", Var::PeerIp)];
    let long = [
        ("${username}", Var::Username),
        ("${clientid}", Var::ClientId),
        ("${peerhost}", Var::PeerIp),
    ];
    let known: &[(&str, Var)] = match syntax {
        Syntax::Literal => &[],
        Syntax::Mosquitto => &short[..2],
        Syntax::Native => &short,
    };
    let long: &[(&str, Var)] = if syntax == Syntax::Native { &long } else { &[] };
    known
        .iter()
        .chain(long)
        .find(|(token, _)| s.starts_with(token))
        .map(|(token, var)| (*var, token.len()))
}

/// At most 80 characters of `text`, for error messages about huge lines.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(77).collect();
        s.push_str("...");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> TopicPattern {
        TopicPattern::parse(text, Syntax::Native).unwrap()
    }

    const ALICE: Values<'static> = Values {
        username: Some("alice"),
        client_id: Some("c1"),
        peer: Some("10.0.0.1"),
    };

    #[test]
    fn covers_table() {
        // (pattern, topic, covered) with ALICE's values.
        let cases: &[(&str, &str, bool)] = &[
            // Names: the pattern as a filter matches the name.
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "x", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            // Filters: the pattern covers the filter.
            ("a/#", "a/b/+", true),
            ("a/#", "a/#", true),
            ("a/+", "a/#", false),
            ("a/+", "a/+", true),
            ("a/b", "a/+", false),
            ("a/+/#", "a/+", true),
            ("a/+/#", "a/#", false),
            ("#", "#", true),
            ("#", "+/a", true),
            ("+", "+", true),
            ("+", "#", false),
            ("a/b/c", "a/b/#", false),
            // Placeholders.
            ("users/%u/#", "users/alice/x", true),
            ("users/%u/#", "users/bob/x", false),
            ("users/%u/#", "users/+/x", false),
            ("users/${username}/#", "users/alice", true),
            ("d/%c/%i", "d/c1/10.0.0.1", true),
            ("d/pre-%c-post", "d/pre-c1-post", true),
            ("d/pre-%c-post", "d/pre-c2-post", false),
            ("%u/#", "alice/x", true),
            // `eq` is literal.
            ("eq t/#", "t/#", true),
            ("eq t/#", "t/a", false),
            ("eq t/%u", "t/alice", false),
            ("eq t/%u", "t/%u", true),
        ];
        for (pattern, topic, want) in cases {
            assert_eq!(p(pattern).covers(&ALICE, topic), *want, "{pattern} covers {topic}");
        }
    }

    #[test]
    fn unsafe_or_missing_values_match_nothing() {
        let values = Values::new(Some("a/b"), Some("+"), Some("10.0.0.1"));
        assert_eq!(values.username, None);
        assert_eq!(values.client_id, None);
        assert!(!p("u/%u/#").covers(&values, "u/a/b/x"));
        assert!(!p("c/%c").covers(&values, "c/+"));
        assert!(!p("c/%c").covers(&values, "c/x"));
        assert!(p("i/%i").covers(&values, "i/10.0.0.1"));
        let dollar = Values::new(Some("$SYS"), None, None);
        assert!(!p("%u/#").covers(&dollar, "$SYS/broker"));
        assert!(Values::new(Some(""), None, None).username.is_none());
    }

    #[test]
    fn syntaxes() {
        let lit = TopicPattern::parse("a/%u/b", Syntax::Literal).unwrap();
        assert!(lit.covers(&ALICE, "a/%u/b"));
        let mosq = TopicPattern::parse("a/%u/%i", Syntax::Mosquitto).unwrap();
        assert!(mosq.covers(&ALICE, "a/alice/%i"));
        // `eq ` is only native syntax: elsewhere it is a topic with a space.
        let spaced = TopicPattern::parse("eq a", Syntax::Mosquitto).unwrap();
        assert!(spaced.covers(&ALICE, "eq a"));
        assert!(p("100%/x").covers(&ALICE, "100%/x"));
        assert!(TopicPattern::parse("a/${nope}", Syntax::Native)
            .unwrap_err()
            .contains("unknown placeholder"));
        for bad in ["", "a/#/b", "a+", "eq ", "eq a/#/b"] {
            assert!(TopicPattern::parse(bad, Syntax::Native).is_err(), "{bad:?}");
        }
        let deep = vec!["x"; MAX_PATTERN_LEVELS + 1].join("/");
        assert!(
            TopicPattern::parse(&deep, Syntax::Native).is_ok(),
            "literal patterns may be deep"
        );
        assert!(TopicPattern::parse(&format!("{deep}/#"), Syntax::Native).is_err());
    }
}
