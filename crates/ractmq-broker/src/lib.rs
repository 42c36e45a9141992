//! The ractmq actor system: supervisors, the listener, one actor per session, topic shards, the retained-message
//! janitor and the `$SYS` publisher, around the sans-IO protocol core of `ractmq-protocol`.
//!
//! Start with [`Broker::start`]; `supervision.md` at the repository root maps the tree and says where each
//! actor's state comes back from after a restart. Supervise actors of your own beside the broker's with
//! [`Broker::supervise`] and [`TreeSpec`], and feed them from the broker without losing messages with [`Inbox`].

#![deny(missing_docs)]

pub(crate) mod arrivals;
pub(crate) mod broker;
pub(crate) mod cert_identity;
pub(crate) mod cluster_hook;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod dead_letters;
pub(crate) mod durable;
pub(crate) mod enhanced_auth;
pub(crate) mod fence;
pub(crate) mod flow;
pub(crate) mod guardian;
pub(crate) mod handover;
pub(crate) mod health;
pub(crate) mod hooks;
pub(crate) mod inbox;
pub(crate) mod index;
pub(crate) mod kernel;
pub(crate) mod listener;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod moving;
pub(crate) mod node;
pub(crate) mod overload;
pub(crate) mod peer_counts;
pub(crate) mod publisher;
pub(crate) mod rate_limit;
pub(crate) mod remote_sessions;
pub(crate) mod restart;
pub(crate) mod router;
pub(crate) mod routes;
pub(crate) mod security;
pub(crate) mod session_actor;
pub(crate) mod session_msg;
pub(crate) mod session_store;
pub(crate) mod session_sup;
pub(crate) mod shard;
pub(crate) mod shared;
pub(crate) mod supervisor;
pub(crate) mod sys;
pub mod tls;
pub(crate) mod trace;
pub(crate) mod tree_view;
pub(crate) mod user_tree;
pub(crate) mod view;
pub(crate) mod websocket;

pub use broker::{ApiError, Broker, Chaos, StartError, Subscription};
pub use cert_identity::CertIdentity;
pub use cluster_hook::{ClusterHook, ClusterPlug, Node, StateWrite};
pub use config::{BrokerConfig, Durability, ListenerSpec};
pub use connection::{KEEPALIVE_RECHECK, KEEPALIVE_SLACK};
pub use flow::{Backlog, Congestion};
pub use health::Health;
pub use hooks::{ClientEvent, ClientRef, HookKind, Hooks};
pub use inbox::{Delivery, Inbox, InboxReader};
pub use memory::total_memory;
pub use metrics::{Metrics, ROUTE_BUCKETS_NS};
pub use publisher::Publisher;
pub use ractmq_store::StoreStats;
pub use remote_sessions::{RemoteSessions, SessionHandover};
pub use restart::RestartPolicy;
pub use routes::{Forward, RemoteMatch, RemoteMember, RemoteRouting, RouteKey};
pub use security::{AclInForce, SecurityConfig};
pub use shared::SharedStrategy;
pub use supervisor::{
    ChildInfo, ChildList, ChildSpec, Strategy, Supervisor, SupervisorArgs, SupervisorInfo, SupervisorMsg,
};
pub use tree_view::{TreeNode, MAX_LISTED};
pub use user_tree::{Tree, TreeError, TreeSpec};
pub use view::{BrokerView, ClientInfo, ListenerInfo, SubscriptionInfo};
pub use websocket::WsBytes;
