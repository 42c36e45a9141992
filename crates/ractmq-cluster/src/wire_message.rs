//! A published message as it crosses from one node to another: the protocol's [`MessageSnapshot`], which
//! carries the time the message has left rather than an `Instant` that means nothing on another machine, and
//! whose `check` refuses what the broker would never have accepted from a client before it is routed.

pub use ractmq_protocol::snapshot::{message_size, MessageSnapshot as WireMessage};
