//! A node's durable state in one embedded file: persistent sessions with their queued and in-flight messages,
//! their QoS 2 receipts, retained messages and operator state.
//!
//! The broker hands changes over as [`Op`]s from any thread, without waiting; one writer thread applies them in
//! order, many at a time, in one redb transaction each, and commits with an fsync (group commit). Each op gets
//! a [`Ticket`]; [`Store::committed`] waits until the commit that holds it, which is what a publisher's PUBACK
//! waits for. [`Store::open`] reads everything back first, as [`Recovered`], so that a node restores its
//! sessions before it accepts clients. Nothing here knows MQTT's rules: which op a session writes when, and
//! which packet waits for which commit, come from the protocol core's [`ractmq_protocol::Journal`].

#![deny(missing_docs)]

mod error;
mod op;
mod records;
mod recovery;
mod store;
mod tables;
mod writer;

pub use error::StoreError;
pub use op::Op;
pub use records::SessionRecord;
pub use recovery::{Recovered, RecoveredSession};
pub use store::{Group, Store, StoreOptions, StoreStats, Ticket};
