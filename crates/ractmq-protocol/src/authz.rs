//! Authorization as the protocol core sees it: may this client publish to that topic, or subscribe to that
//! filter? The answer comes from an [`Authorizer`] (ACL files, JWT claims, an HTTP service: the `ractmq-auth`
//! crate) compiled for one client at CONNECT; the channel asks it on every PUBLISH, every filter of a
//! SUBSCRIBE and the will, and turns a denial into the reason code the spec gives. One rule holds whatever
//! the authorizer says: clients never write to `$SYS`, which is the broker's own.

use ractmq_codec::QoS;

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish to a topic name (a PUBLISH, or the will when it is registered).
    Publish,
    /// Subscribe to a topic filter.
    Subscribe,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refuse this packet with Not authorized (0x87) and carry on.
    Deny,
    /// Refuse and close the connection with Not authorized (0x87).
    DenyAndDisconnect,
}

/// One request the channel will put to its [`Authorizer`]: what [`Channel::authz_questions`] lists for a batch
/// before the batch is handled, so that an authorizer whose answers come from elsewhere (an HTTP service) can
/// fetch them first.
///
/// [`Channel::authz_questions`]: crate::channel::Channel::authz_questions
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Question<'a> {
    /// Publish or subscribe.
    pub action: Action,
    /// The topic name, or the filter (without `$share/GROUP/`).
    pub topic: &'a str,
    /// The QoS of the PUBLISH, or the QoS a subscription would be granted at most.
    pub qos: QoS,
    /// The PUBLISH's RETAIN flag; false for a subscribe.
    pub retain: bool,
}

/// Decides for one client. Called on the session's own task for every PUBLISH: keep it cheap (cache).
pub trait Authorizer: Send + Sync {
    /// May the client do `action` on `topic` (a topic name to publish to, or a filter to subscribe to; for a
    /// shared subscription the filter without `$share/GROUP/`), at `qos`, with `retain` (publish only)?
    fn authorize(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict;
}

/// Whether `topic` (a name or a filter) is under `$SYS`, which no client may publish to.
pub fn is_sys_topic(topic: &str) -> bool {
    topic
        .strip_prefix("$SYS")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_topics_are_recognised_exactly() {
        for t in ["$SYS", "$SYS/broker/version", "$SYS/#"] {
            assert!(is_sys_topic(t), "{t}");
        }
        for t in ["$SYSTEM/x", "sys/x", "a/$SYS", "$sys/x", ""] {
            assert!(!is_sys_topic(t), "{t}");
        }
    }
}
