//! Authorization: what a connected client may publish and subscribe to.
//!
//! Three sources say it, each parsed into the same ordered rule list ([`rule`]): a Mosquitto `acl_file`
//! ([`mosquitto`]), ractmq's native TOML file ([`native`]), and the `acl` claim of a client's JWT ([`claims`]).
//! [`Acl`] indexes a list once; [`Acl::for_client`] gives each connection its [`ClientAcl`] at CONNECT, which
//! answers [`ClientAcl::check`] per PUBLISH and per SUBSCRIBE filter. Rules are tried in order and the first
//! match wins; [`Settings`] says what happens when none matches and what a denial costs the client.
//!
//! A [`ClientAcl`] is the protocol core's [`Authorizer`](ractmq_protocol::authz::Authorizer) for its
//! connection. Independently of any rule, clients never publish to `$SYS`: the core refuses that before it
//! asks ([`is_sys_topic`]).

pub mod claims;
pub mod mosquitto;
pub mod native;
pub mod pattern;
pub mod rule;

mod cache;
mod compiled;
mod index;
#[cfg(test)]
mod perf;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use compiled::{Acl, ClientAcl};
pub use pattern::{Syntax, TopicPattern};
pub use rule::{Action, Decision, DenyAction, Permission, QosSet, Rule, RuleAction, Settings, UserMatch, Who};

use crate::error::FileError;

/// The largest ACL file read: a bigger one is refused before it is parsed.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The most rules (for Mosquitto files, lines that add a rule; for native files, `[[rule]]` tables) a file may
/// hold.
pub const MAX_RULES: usize = 1_000_000;

/// True if `topic` is in the broker's own `$SYS` tree: the protocol core's rule, re-exported for the other
/// callers that must not let clients write there (Mosquitto refuses them too). Subscribing is left to the ACL.
pub use ractmq_protocol::authz::is_sys_topic;

/// The two file formats [`Acl::load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Mosquitto's `acl_file`: `user`, `topic` and `pattern` lines.
    Mosquitto,
    /// ractmq's TOML: `no_match`, `deny_action` and `[[rule]]` tables.
    Native,
}

impl Format {
    /// `mosquitto` or `native`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Mosquitto => "mosquitto",
            Format::Native => "native",
        }
    }

    /// The format of `text`, from its first line that is neither blank nor a comment: a Mosquitto keyword
    /// (`user`, `topic`, `pattern`) means Mosquitto, a TOML table header or `key = value` means native, and
    /// anything else is reported by the Mosquitto parser (most likely a misspelt keyword). A file with no such
    /// line is an empty Mosquitto file, which denies everything, as in Mosquitto.
    pub fn detect(text: &str) -> Format {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let word = line.split_whitespace().next().unwrap_or("");
            if matches!(word, "user" | "topic" | "pattern") {
                return Format::Mosquitto;
            }
            let key_value = line.split_once('=').is_some_and(|(key, _)| {
                let key = key.trim();
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '))
            });
            return if line.starts_with('[') || key_value {
                Format::Native
            } else {
                Format::Mosquitto
            };
        }
        Format::Mosquitto
    }
}

impl Acl {
    /// Read and parse the ACL file at `path`, in whichever format it is written ([`Format::detect`]). Every
    /// problem is one [`FileError`] naming the line.
    pub fn load(path: &Path) -> Result<Acl, FileError> {
        Acl::load_detected(path).map(|(acl, _)| acl)
    }

    /// [`Acl::load`], saying which format the file was read as (operators are shown it).
    pub fn load_detected(path: &Path) -> Result<(Acl, Format), FileError> {
        let text = read_bounded(path)?;
        let format = Format::detect(&text);
        Ok((Acl::from_text(path, &text)?, format))
    }

    /// Parse `text` as the contents of `file` (named in errors).
    pub fn from_text(file: &Path, text: &str) -> Result<Acl, FileError> {
        match Format::detect(text) {
            Format::Mosquitto => mosquitto::parse(file, text),
            Format::Native => native::parse(file, text),
        }
    }
}

fn read_bounded(path: &Path) -> Result<String, FileError> {
    let file = File::open(path).map_err(|e| FileError::at(path, 0, format!("cannot open the ACL file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::at(path, 0, format!("cannot read the ACL file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::at(
            path,
            0,
            format!(
                "the ACL file is larger than {} MiB; split or trim it",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..valid].iter().filter(|b| **b == b'\n').count() + 1;
        FileError::at(path, line, "not valid UTF-8")
    })
}

/// The 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_topics() {
        for sys in ["$SYS", "$SYS/broker/uptime", "$SYS/"] {
            assert!(is_sys_topic(sys), "{sys}");
        }
        for not in ["$SYSTEM/x", "SYS/x", "a/$SYS/x", "$sys/x", "$share/g/$SYS"] {
            assert!(!is_sys_topic(not), "{not}");
        }
    }

    #[test]
    fn format_detection() {
        let cases = [
            ("", Format::Mosquitto),
            ("# only a comment\n\n", Format::Mosquitto),
            ("topic read a/#\n", Format::Mosquitto),
            ("  # indented comment\nuser bob\n", Format::Mosquitto),
            ("pattern write s/%u\n", Format::Mosquitto),
            ("topix read a\n", Format::Mosquitto),
            ("no_match = \"deny\"\n", Format::Native),
            ("# c\n[[rule]]\npermission = \"allow\"\n", Format::Native),
            ("deny_action=\"disconnect\"\n", Format::Native),
        ];
        for (text, want) in cases {
            assert_eq!(Format::detect(text), want, "{text:?}");
        }
    }

    /// A small deterministic generator, enough to shake the parsers.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    #[test]
    fn garbage_never_panics_and_every_error_names_a_line() {
        let tokens = [
            "topic",
            "pattern",
            "user",
            "read",
            "write",
            "readwrite",
            "deny",
            "a/#",
            "+",
            "#",
            "a/+/b",
            "%u",
            "%c",
            "${username}",
            "${x}",
            "eq ",
            " ",
            "  ",
            "\t",
            "\n",
            "\n",
            "\n",
            "=",
            "[[rule]]",
            "[rule]",
            "[",
            "]",
            "\"",
            "'",
            "permission",
            "action",
            "topics",
            "qos",
            "retain",
            "ipaddr",
            "no_match",
            "deny_action",
            "\"allow\"",
            "\"all\"",
            "[0, 1]",
            "[\"a/#\"]",
            "true",
            "10.0.0.0/8",
            "\u{0}",
            "é",
            "🦀",
            "$SYS",
            "/",
            "{",
            "}",
            "-1",
            "99999999999999999999",
            "#comment",
            "[[",
            "]]",
            "\"\"\"",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let (mut oks, mut errors) = (0, 0);
        for case in 0..3000 {
            let mut text = String::new();
            let len = rng.next() % 60;
            for _ in 0..len {
                text.push_str(rng.pick(&tokens));
            }
            // Some inputs start like a native file, some like a Mosquitto one.
            if case % 3 == 0 {
                text.insert_str(0, "no_match = \"deny\"\n");
            }
            let lines = text.lines().count().max(1);
            match Acl::from_text(Path::new("fuzz"), &text) {
                Ok(acl) => {
                    oks += 1;
                    let client = crate::client::ClientInfo {
                        client_id: rng.pick(&tokens).into(),
                        username: Some(rng.pick(&tokens).into()),
                        peer: "10.0.0.1".parse().unwrap(),
                        listener: "tcp".into(),
                    };
                    let c = acl.for_client(&client);
                    for _ in 0..5 {
                        let topic = rng.pick(&tokens);
                        c.check(Action::Publish, topic, (rng.next() % 4) as u8, rng.next() & 1 == 0);
                        c.check(Action::Subscribe, topic, 1, false);
                    }
                }
                Err(e) => {
                    errors += 1;
                    assert!(e.line >= 1 && e.line <= lines + 1, "{text:?}: {e}");
                    assert!(!e.to_string().contains('\n'), "{text:?}: {e}");
                }
            }
        }
        assert!(
            oks > 50 && errors > 50,
            "{oks} parsed, {errors} refused: the generator should reach both"
        );
    }

    #[test]
    fn load_reports_unreadable_and_non_utf8_files() {
        let dir = std::env::temp_dir().join(format!("ractmq-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.acl");
        let e = Acl::load(&missing).unwrap_err();
        assert_eq!(e.line, 0);
        assert!(e
            .to_string()
            .starts_with(&format!("{}: cannot open", missing.display())));
        let bad = dir.join("bad.acl");
        std::fs::write(&bad, b"user a\ntopic read a/\xff\n").unwrap();
        let e = Acl::load(&bad).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "not valid UTF-8"));
        let good = dir.join("good.acl");
        std::fs::write(&good, "topic read a/#\n").unwrap();
        assert_eq!(Acl::load(&good).unwrap().rules().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
