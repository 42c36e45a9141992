//! Relays for sessions that moved to another node a moment ago: what still reaches this node for them is
//! passed on to their new node (see `moving.rs`).

use super::*;

impl Router {
    /// Route a message another node relayed here for `client`, a session that moved here from there: to that
    /// client's matching subscriptions only, or, with `members`, to its memberships of those shared groups. If
    /// the session has moved on again meanwhile, the message follows it.
    pub fn route_relayed(
        &self,
        message: Arc<Message>,
        client: &str,
        members: &[(Arc<str>, Arc<str>)],
        congestion: &mut Congestion,
    ) -> usize {
        let delivered = match members {
            [] => match self.deliver_one(&message, None, Some(client), congestion) {
                0 => match self.relays.node_of(client) {
                    Some(node) => {
                        self.relay(&message, &node, &client.into(), congestion);
                        1
                    }
                    None => 0,
                },
                here => here,
            },
            _ => members
                .iter()
                .filter(|(group, member)| self.deliver_to_member(group, member, &message, congestion))
                .count(),
        };
        if delivered == 0 {
            Metrics::add(&self.metrics.messages_no_subscribers, 1);
        }
        delivered
    }

    /// Pass `message` on to `client`, a session that moved to `node`.
    pub(super) fn relay(
        &self,
        message: &Arc<Message>,
        node: &Arc<str>,
        client: &Arc<str>,
        congestion: &mut Congestion,
    ) {
        self.relay_shared(message, node, client, Vec::new(), congestion);
    }

    /// Pass `message` on to `client`, a session that moved to `node`: to its subscriptions, or to its
    /// memberships in `members` (group, member key).
    pub(super) fn relay_shared(
        &self,
        message: &Arc<Message>,
        node: &Arc<str>,
        client: &Arc<str>,
        members: Vec<(Arc<str>, Arc<str>)>,
        congestion: &mut Congestion,
    ) {
        if let Some(remote) = self.remote.get() {
            let relay = Forward {
                node: node.clone(),
                deliver: false,
                shared: members,
                relay_to: Some(client.clone()),
            };
            if let Some(backlog) = remote.forward(message, relay) {
                congestion.add(backlog);
            }
        }
    }
}
