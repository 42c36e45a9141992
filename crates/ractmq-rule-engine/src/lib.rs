//! The rule engine of a ractmq node: rules written in SQL (compiled by `ractmq-rules`) over the messages
//! published on the node and its clients' events, with actions that republish, feed a bridge's buffer or log.
//!
//! Rules run inline where a message is published, found through the same topic trie as subscriptions
//! (`hook.rs`); what their actions route is part of the publisher's routing, so its acknowledgement waits for
//! it. Each rule has an actor under the broker's `rules` supervisor that retries failed actions and
//! dead-letters what fails past its retries (`actor.rs`). [`Rules`] is what the binary, ctl and REST use.

#![deny(missing_docs)]

pub mod actions;
pub mod actor;
pub mod compiled;
pub mod config;
pub mod hook;
pub mod live;
pub mod registry;
pub mod rule_msg;
pub mod stats;
pub mod test_rule;

pub use config::{ActionConfig, BridgeActionConfig, LogConfig, RepublishConfig, RuleConfig, RulesConfig};
pub use registry::{RuleError, RuleInfo, RuleReplica, Rules};
pub use stats::{ActionStats, RuleStats};
pub use test_rule::{TestMessage, TestOutput};
