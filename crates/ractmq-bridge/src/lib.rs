//! Bridges: each one a supervised actor that takes messages from the local broker and hands them to a remote
//! system (an MQTT broker, an HTTP service, Kafka, PostgreSQL), or brings a remote broker's messages in.
//!
//! A bridge reads the local broker as an MQTT client of it, over an in-process connection to a persistent
//! session of its own: that session is the bridge's buffer (bounded, with the node's overflow policies, and
//! kept in the node's store), and a message leaves it only when the bridge acknowledges it, which it does once
//! the remote has. The sinks in this crate deliver batches of [`Record`]s and say whether they were taken.

#![deny(missing_docs)]

mod actor;
mod client;
pub mod config;
mod dead_letters;
pub mod http;
pub mod kafka;
mod link;
mod local_session;
mod mqtt_pump;
pub mod postgres;
mod record;
mod registry;
pub mod sink;
mod sink_pump;
mod sinks;
mod stats;
pub mod template;

pub use config::{BridgeConfig, BridgesConfig, MqttBridgeConfig, SinkBridgeConfig};
pub use dead_letters::DeadLetter;
pub use http::{HttpConfig, HttpSink};
pub use kafka::{KafkaConfig, KafkaSink};
pub use postgres::{PostgresConfig, PostgresSink};
pub use record::Record;
pub use registry::{BridgeError, BridgeInfo, Bridges};
pub use stats::{Counters, Stats};
