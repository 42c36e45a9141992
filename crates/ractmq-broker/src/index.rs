//! The entries of the subscription index: who a route delivers to, with which options, and the changes the
//! shards apply. Shared by the router, the shards, the session actor and the relays of sessions that moved,
//! so it depends on none of them.

use std::sync::Arc;

use ractmq_protocol::topic::parse_shared;
use ractmq_protocol::trie::SubscriptionTrie;
use ractmq_protocol::{Message, SubOptions};
use tokio::sync::mpsc;

use crate::session_store::SessionShared;
use crate::shared::member_key;

/// Who receives a delivery.
#[derive(Clone)]
pub enum Target {
    Session(Arc<SessionShared>),
    /// An in-process subscriber of the embedding program.
    Local(mpsc::Sender<Arc<Message>>),
    /// A session that moved to `node` a moment ago: pass its messages on (see `moving.rs`).
    Relay {
        node: Arc<str>,
        client: Arc<str>,
    },
}

#[derive(Clone)]
pub struct Route {
    pub target: Target,
    pub options: SubOptions,
    /// For a member of a shared subscription: the group's full filter, `$share/{group}/{filter}`.
    pub shared: Option<Arc<str>>,
}

impl Route {
    /// Connected (or in-process) subscribers are preferred when a shared group chooses a member.
    pub(crate) fn is_online(&self) -> bool {
        match &self.target {
            Target::Session(s) => s.is_online(),
            Target::Local(_) => true,
            Target::Relay { .. } => false,
        }
    }

    pub(crate) fn is_client(&self, client_id: &str) -> bool {
        matches!(&self.target, Target::Session(s) if &*s.client_id == client_id)
    }
}

pub type Index = SubscriptionTrie<Arc<str>, Route>;

/// One change to the index, for `Router::apply`.
pub struct Change {
    pub filter: String,
    pub key: Arc<str>,
    /// `Some` subscribes (or replaces), `None` unsubscribes.
    pub route: Option<Route>,
}

/// Where a client's subscription to `filter` (as the client sent it) sits in the index: the filter path, the
/// key, and for a shared subscription the group's full filter.
pub fn index_entry<'a>(filter: &'a str, client_id: &Arc<str>) -> (&'a str, Arc<str>, Option<Arc<str>>) {
    match parse_shared(filter) {
        Some(Ok(parts)) => (parts.filter, member_key(filter, client_id), Some(filter.into())),
        _ => (filter, client_id.clone(), None),
    }
}
