//! ractor_cluster's link events, brought to the connector: a session opened, authenticated, or closed.
//!
//! The node server calls a subscription synchronously and must not block, so [`LinkEvents`] only turns each
//! call into a message. The connector uses them to time out handshakes (`handshakes.rs`) and to diagnose a
//! wrong cookie (`auth_watch.rs`).

use std::net::SocketAddr;

use ractor::{ActorId, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeSessionMessage};

/// One session's event, as the connector needs it.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    Opened {
        session: ActorRef<NodeSessionMessage>,
    },
    Authenticated {
        session: ActorId,
        peer: Option<String>,
    },
    Closed {
        session: ActorId,
        peer: Option<String>,
        /// Whether the peer dialled us (true) or we dialled it.
        incoming: bool,
        /// The far end of the socket.
        peer_addr: String,
    },
}

/// The subscription handed to the node server: forwards every event to the connector. (The methods are
/// synchronous and must not block the node server, hence a message.)
pub struct LinkEvents(pub ActorRef<ConnectorMsg>);

impl LinkEvents {
    fn forward(&self, event: LinkEvent) {
        // The connector being gone (restarting) only costs a diagnostic.
        let _ = self.0.send_message(ConnectorMsg::Link(event));
    }
}

fn peer_name(ses: &NodeServerSessionInformation) -> Option<String> {
    ses.peer_name.as_ref().map(|p| p.name.clone())
}

impl NodeEventSubscription for LinkEvents {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.forward(LinkEvent::Opened { session: ses.actor });
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.forward(LinkEvent::Authenticated {
            session: ses.actor.get_id(),
            peer: peer_name(&ses),
        });
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.forward(LinkEvent::Closed {
            session: ses.actor.get_id(),
            peer: peer_name(&ses),
            incoming: ses.is_server,
            peer_addr: ses.peer_addr.clone(),
        });
    }
}

/// What the connector is sent: its own timer, its dials' results, and the link events forwarded here.
pub enum ConnectorMsg {
    /// Time to look for members without a link.
    Check,
    /// A dial finished opening its socket (the handshake goes on in the node server), or failed.
    Dialled {
        addr: SocketAddr,
        result: Result<(), String>,
    },
    /// A link event from the node server.
    Link(LinkEvent),
    /// A resolution of discovery target number `target` finished (see `discovery.rs`).
    Resolved {
        target: usize,
        result: Result<Vec<SocketAddr>, String>,
    },
}

// Local only: never sent to another node (ractor's cluster mode asks every message type to say so).
impl ractor::Message for ConnectorMsg {}
