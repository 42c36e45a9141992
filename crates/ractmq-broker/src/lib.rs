//! The ractmq actor system: supervisors, the listener, one actor per session, topic shards, the retained-message
//! janitor and the `$SYS` publisher, around the sans-IO protocol core of `ractmq-protocol`.
//!
//! Start with [`Broker::start`]; `supervision.md` at the repository root maps the tree and says where each
//! actor's state comes back from after a restart. Supervise actors of your own beside the broker's with
//! [`Broker::supervise`] and [`TreeSpec`], and feed them from the broker without losing messages with [`Inbox`].

pub mod arrivals;
pub mod broker;
pub mod cluster_hook;
pub mod config;
pub mod connection;
pub mod enhanced_auth;
pub mod fence;
pub mod flow;
pub mod guardian;
pub mod handover;
pub mod health;
pub mod inbox;
pub mod index;
pub mod inspect;
pub mod kernel;
pub mod listener;
pub mod metrics;
pub mod moving;
pub mod node;
pub mod publisher;
pub mod remote_sessions;
pub mod restart;
pub mod router;
pub mod routes;
pub mod session_actor;
pub mod session_msg;
pub mod session_store;
pub mod session_sup;
pub mod shard;
pub mod shared;
pub mod supervisor;
pub mod sys;
pub mod tls;
pub mod trace;
pub mod user_tree;
pub mod websocket;

pub use broker::{ApiError, Broker, Chaos, StartError, Subscription};
pub use cluster_hook::{ClusterHook, ClusterPlug, Node};
pub use config::{BrokerConfig, ListenerSpec};
pub use flow::{Backlog, Congestion};
pub use health::Health;
pub use inbox::{Delivery, Inbox, InboxReader};
pub use kernel::Kernel;
pub use metrics::Metrics;
pub use publisher::Publisher;
pub use remote_sessions::{RemoteSessions, SessionHandover};
pub use restart::RestartPolicy;
pub use routes::{Forward, RemoteMatch, RemoteMember, RemoteRouting, RouteKey};
pub use shared::SharedStrategy;
pub use supervisor::{ChildList, ChildSpec, Strategy, Supervisor, SupervisorArgs, SupervisorMsg};
pub use user_tree::{Tree, TreeError, TreeSpec};
