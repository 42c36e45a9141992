//! Moving a session from one node to another: a client id is unique cluster-wide, so a client that connects
//! to node B with the id of a session on node A takes that session over, as EMQX does.
//!
//! B asks the other nodes through [`RemoteSessions`] (the cluster layer carries the question); A's session
//! actor closes its connection (0x8E, as a takeover on one node does), ends its session there and, unless the
//! client starts clean, hands over its subscriptions, messages in flight and queued messages
//! ([`SessionHandover`]); B makes them its own ([`import`]) before the new connection attaches, so the client
//! finds its session present. What still reaches A for the session afterwards follows it to B (`moving.rs`).
//! Without a cluster layer none of this runs.

use std::sync::Arc;
use std::time::Duration;

use crate::arrivals::REMEMBER_FOR;
use crate::index::{index_entry, Change, Route, Target};
use crate::kernel::Kernel;
use crate::remote_sessions::SessionHandover;
use crate::session_msg::SessionSupMsg;

/// Longest this node waits for its own session actor to hand a session over.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Give up this node's session of `client_id` to node `to`: its connection is closed, the session ends here,
/// and (unless `clean_start`) what it held is returned, and what still reaches this node for it is relayed to
/// `to` for a while (see `moving.rs`). `None` if there is no such session.
pub async fn hand_over(kernel: &Kernel, client_id: &str, clean_start: bool, to: Arc<str>) -> Option<SessionHandover> {
    let sup = kernel.session_sup()?;
    let client_id = client_id.to_string();
    ractor::call_t!(
        sup,
        |reply| SessionSupMsg::HandOver {
            client_id,
            clean_start,
            to,
            reply
        },
        HAND_OVER_TIMEOUT.as_millis() as u64
    )
    .ok()
    .flatten()
}

/// Make `handover` this node's session of `client_id`, routes included, unless this node has one already (a
/// local session wins: it is the newer). Call before the client's connection attaches.
pub async fn import(kernel: &Kernel, client_id: Arc<str>, handover: SessionHandover) {
    let Some(sup) = kernel.session_sup() else {
        return;
    };
    let imported = ractor::call!(sup, |reply| SessionSupMsg::Import {
        client_id,
        handover: Box::new(handover),
        reply
    });
    let Ok(Some(shared)) = imported else {
        return;
    };
    let mut changes: Vec<Change> = shared
        .state
        .lock()
        .subscriptions
        .iter()
        .map(|(filter, options)| {
            let (path, key, group) = index_entry(filter, &shared.client_id);
            Change {
                filter: path.to_string(),
                key,
                route: Some(Route {
                    target: Target::Session(shared.clone()),
                    options: options.clone(),
                    shared: group,
                }),
            }
        })
        .collect();
    // Back where it was lately: this node's relay of it to the node it left for ends here (after its routes
    // are in, so that its filters are never withdrawn meanwhile).
    changes.extend(kernel.router.relays.end(&shared.client_id));
    kernel.router.apply(changes).await;
    // What reached it is remembered for a while only, whether or not messages keep coming.
    let shared = Arc::downgrade(&shared);
    tokio::spawn(async move {
        tokio::time::sleep(REMEMBER_FOR).await;
        if let Some(shared) = shared.upgrade() {
            shared.forget_arrivals();
        }
    });
}
