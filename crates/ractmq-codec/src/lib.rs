//! Bytes to packets and back for MQTT 3.1, 3.1.1 and 5.0.
//!
//! `mqttbytes` 0.6 cannot tell protocol levels apart, knows neither MQTT 3.1 nor AUTH, mis-reads 5.0
//! DISCONNECT and accepts much that the specification forbids; wrapping each of its readers in the missing
//! checks would have cost more than the parsing itself. So this crate frames, detects the level, parses and
//! checks every rule a receiver must check, and hands the protocol core one packet model ([`Packet`]) for all
//! levels; mqttbytes is kept only as an independent implementation to test against. Nothing a peer sends can
//! make it panic or allocate more than the configured maximum packet size.

pub mod packet;
pub mod reason;
pub mod topic;

pub use packet::*;
pub mod decode;
pub mod encode;

mod connect;
mod frame;
mod reader;
mod sink;
mod v5_props;

pub use decode::{DecodeError, Decoder};
pub use encode::{encode, encode_client, encode_publish, EncodeError, PublishOut};
