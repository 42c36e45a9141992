//! One change to the store, as the broker hands it over.

use std::sync::Arc;

use ractmq_protocol::{Delivery, Journal, Message};

use crate::records::SessionRecord;

/// One change to the store. Ops are applied in the order they were submitted.
#[derive(Debug, Clone)]
pub enum Op {
    /// Write (or replace) what the store keeps of a session besides its messages.
    Session {
        /// The client id.
        client: Arc<str>,
        /// The session.
        record: Box<SessionRecord>,
    },
    /// The session ended (expired, started clean, moved away): forget it, its copies and its receipts.
    EndSession {
        /// The client id.
        client: Arc<str>,
    },
    /// Keep a copy of a message queued for a session, under the number [`crate::Store::next_copy`] gave it.
    Copy {
        /// The client id.
        client: Arc<str>,
        /// The copy's number (also in `delivery.stored`).
        stored: u64,
        /// The copy.
        delivery: Delivery,
    },
    /// A change the session's protocol core journalled (see [`Journal`]).
    Journal {
        /// The client id.
        client: Arc<str>,
        /// The change.
        entry: Journal,
    },
    /// `message` is its topic's retained message now.
    Retain {
        /// The message.
        message: Arc<Message>,
    },
    /// The topic has no retained message any more.
    Unretain {
        /// The topic.
        topic: Arc<str>,
    },
    /// Operator state: set `key` in `space` (users, bans...) to `value`, encoded by its owner.
    Put {
        /// The kind of state, as its owner names it.
        space: &'static str,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Operator state: remove `key` from `space`.
    Delete {
        /// The kind of state.
        space: &'static str,
        /// The key.
        key: String,
    },
}

impl Op {
    /// Bytes the op holds while it waits for the writer, near enough to bound the wait by.
    pub(crate) fn size(&self) -> usize {
        64 + match self {
            Op::Copy { delivery, .. } => delivery.message.topic.len() + delivery.message.payload.len(),
            Op::Retain { message } => message.topic.len() + message.payload.len(),
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Session { record, .. } => record.session.subscriptions.len() * 64,
            _ => 0,
        }
    }
}
