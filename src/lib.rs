//! ractmq: an MQTT 3.1, 3.1.1 and 5.0 broker built as a supervised actor system on ractor.
//!
//! This facade re-exports the parts a program embedding the broker needs; `examples/embedded.rs` shows the
//! whole embedding API, `examples/topology.rs` a supervision tree of the program's own actors fed by the
//! broker. The `ractmq` binary is a thin shell over [`Broker`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ractmq::{Broker, BrokerConfig, QoS};
//!
//! let broker = Broker::start(BrokerConfig::default()).await?; // MQTT on 0.0.0.0:1883
//! let mut alerts = broker.subscribe("alerts/#", 64).await?;
//! broker.publish("alerts/door", "open", QoS::AtLeastOnce, false).await?;
//! let message = alerts.recv().await.expect("broker running");
//! println!("{}: {:?}", message.topic, message.payload);
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod cluster_rules;

pub use cluster_rules::replicate_rules;
pub use ractmq_bridge::{BridgeInfo, Bridges, BridgesConfig, MqttBridgeConfig};
/// Reading PEM files into the TLS configuration of a [`ListenerSpec`].
pub use ractmq_broker::tls;
pub use ractmq_broker::{
    ApiError, Broker, BrokerConfig, BrokerView, CertIdentity, Chaos, ChildList, ChildSpec, Delivery, Durability, Inbox,
    InboxReader, ListenerSpec, Metrics, Publisher, RestartPolicy, SecurityConfig, SharedStrategy, StartError, Strategy,
    Subscription, Supervisor, SupervisorArgs, SupervisorMsg, Tree, TreeError, TreeSpec,
};
pub use ractmq_cluster::{Cluster, ClusterConfig, ClusterTls, Discovery, Member, MemberEvent, MemberState};
pub use ractmq_codec::{Protocol, QoS};
pub use ractmq_protocol::{Limits, ListenerKind, Message, OverflowPolicy, Pattern, QueueRule, Redirect};
pub use ractmq_rule_engine::{RuleConfig, RuleInfo, Rules, RulesConfig};

/// The crates behind the facade, for code that needs more than it re-exports.
pub mod parts {
    pub use ractmq_auth as auth;
    pub use ractmq_bridge as bridge;
    pub use ractmq_broker as broker;
    pub use ractmq_cluster as cluster;
    pub use ractmq_codec as codec;
    pub use ractmq_protocol as protocol;
    pub use ractmq_rule_engine as rule_engine;
    pub use ractmq_rules as rules;
}
