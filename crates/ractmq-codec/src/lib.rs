//! Bytes to packets and back for MQTT 3.1, 3.1.1 and 5.0.
//!
//! `mqttbytes` 0.6 parses most packet bodies, but it cannot tell protocol levels apart, knows neither MQTT 3.1
//! nor AUTH, mis-reads 5.0 DISCONNECT and accepts much that the specification forbids. This crate is the layer
//! around it: it frames, detects the level, checks every rule a receiver must check, and hands the protocol core
//! one packet model ([`Packet`]) for all levels. Nothing a peer sends can make it panic or allocate more than
//! the configured maximum packet size.

pub mod packet;
pub mod topic;
pub mod reason;

pub use packet::*;
pub mod decode;
pub mod encode;

pub use decode::{DecodeError, Decoder};
pub use encode::{encode, encode_publish, EncodeError, PublishOut};
