//! The MQTT protocol core of ractmq, free of sockets, tasks and actors.
//!
//! Like `quinn-proto` under `quinn`, everything here is driven by calls: a decoded packet, a delivery or a clock
//! tick goes in; encoded bytes and effects (route this message, subscribe that filter, close with this reason)
//! come out. The broker crate owns the I/O and the actors; this crate owns the rules, and every rule can be
//! tested with a fake clock and no network.
//!
//! The split follows EMQX: [`channel`] is the per-connection protocol (emqx_channel), [`session`] the state that
//! outlives a connection (emqx_session) and [`lifecycle`] its rules between connections, [`auth_flow`] the AUTH
//! exchange at CONNECT and after, [`topic`] and [`trie`] the topic rules and subscription index (emqx_topic,
//! emqx_trie), [`retained`] the retained-message rules. `tests/spec_cases.rs` holds the spec's rules as a table
//! of cases named by normative statement.

#![deny(missing_docs)]

pub mod auth;
pub mod auth_flow;
pub mod authz;
pub mod channel;
pub mod config;
pub mod connect;
pub mod journal;
pub mod lifecycle;
pub mod log_limit;
pub mod message;
pub mod queue;
pub mod queue_rules;
pub mod retained;
pub mod scram;
pub mod session;
pub mod snapshot;
pub mod topic;
pub mod trie;

pub use authz::{Action, Authorizer, Question, Verdict};
pub use channel::{Channel, Close, Effects, RouteChange};
pub use config::{Limits, OverflowPolicy, Redirect};
pub use journal::Journal;
pub use lifecycle::{Attached, Lapse};
pub use message::{Delivery, Message, Origin};
pub use queue::{BoundedQueue, Mode as QueueMode, PushOutcome, QueuePolicy, Queued};
pub use queue_rules::{ListenerKind, Pattern, QueueRule};
pub use session::{Session, SubOptions};
pub use snapshot::SessionSnapshot;
