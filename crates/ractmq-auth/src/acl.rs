//! Authorization: what a connected client may publish and subscribe to.
//!
//! Every source of rules is parsed into the same ordered rule list ([`rule`]). [`Acl`] indexes a list once;
//! [`Acl::for_client`] gives each connection its [`ClientAcl`] at CONNECT, which answers
//! [`ClientAcl::check`] per PUBLISH and per SUBSCRIBE filter. Rules are tried in order and the first match
//! wins; [`Settings`] says what happens when none matches and what a denial costs the client.
//!
//! Independently of any rule, clients never publish to `$SYS`: see [`is_sys_topic`].

pub mod pattern;
pub mod rule;

mod cache;
mod compiled;
mod index;
#[cfg(test)]
mod perf;

pub use compiled::{Acl, ClientAcl};
pub use pattern::{Syntax, TopicPattern};
pub use rule::{Action, Decision, DenyAction, Permission, QosSet, Rule, RuleAction, Settings, UserMatch, Who};

/// True if `topic` is in the broker's own `$SYS` tree. The broker refuses client publishes to these whatever
/// the ACL says (Mosquitto does the same); subscribing is left to the ACL.
pub fn is_sys_topic(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
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
}
