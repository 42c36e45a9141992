//! What a session carries from one node to another, and what a cluster layer provides to move it: the types
//! the session record, the supervisor and the cluster crate share (the moving itself is in `handover.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractmq_protocol::session::Inflight;
use ractmq_protocol::{Delivery, SubOptions};

/// What a session carries from one node to another.
#[derive(Debug, Clone, Default)]
pub struct SessionHandover {
    /// Filter (as the client sent it) and options.
    pub subscriptions: Vec<(String, SubOptions)>,
    /// Outgoing QoS 1/2 messages not yet completed, with their packet ids, oldest first.
    pub inflight: Vec<Inflight>,
    /// Incoming QoS 2 packet ids routed and awaiting PUBREL.
    pub awaiting_rel: Vec<u16>,
    /// Session Expiry Interval in seconds.
    pub expiry_interval: u32,
    /// Messages queued for the client, oldest first.
    pub queued: Vec<Delivery>,
    /// The user the session belongs to (see `security.rs`).
    pub owner: Option<Arc<str>>,
}

/// What a cluster layer provides for sessions across nodes; installed with `Kernel::set_remote_sessions`.
pub trait RemoteSessions: Send + Sync + 'static {
    /// Have every other node give up its session of `client_id` (closing its connection); the session, if one
    /// was found and `clean_start` is false. Bounded in time: a node that does not answer is taken to have
    /// none.
    fn take_over<'a>(
        &'a self,
        client_id: &'a str,
        clean_start: bool,
    ) -> Pin<Box<dyn Future<Output = Option<SessionHandover>> + Send + 'a>>;

    /// The takeover of `client_id` is over (its session, if one came, is imported): messages the old node
    /// relayed for it meanwhile, held until now, are routed to it (see `moving.rs`). Called after every
    /// [`RemoteSessions::take_over`].
    fn taken_over(&self, client_id: &str);
}
