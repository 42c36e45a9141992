//! What a persistent session tells the node's store as its messages move, and which packets must wait for it.
//!
//! A broker that keeps sessions across a crash must write down, before certain packets leave, what those
//! packets promise: a QoS 2 message goes out only once its packet id is stored (sent again after a restart, it
//! must carry the same id, or the client takes it for a new message), and PUBREL, PUBREC and PUBCOMP only once
//! the state they end or begin is stored. The channel states these rules as [`Journal`] entries in its
//! effects, with [`Journal::must_precede_output`] saying which ones the packets of the same call wait for. It
//! writes entries only for what the store keeps: copies numbered by the store ([`crate::Delivery::stored`]) and
//! the QoS 2 receipts of a session marked [`crate::Session::persistent`].

/// One change to a persistent session's stored state (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Journal {
    /// The stored copy went out with `pkid` at QoS 1 or 2: after a restart it is sent again with that id.
    Sent {
        /// The copy's number in the store.
        stored: u64,
        /// The packet id it was sent with.
        pkid: u16,
        /// Sent at QoS 2: the id must be stored before the PUBLISH leaves.
        exactly_once: bool,
    },
    /// PUBREC came for a stored QoS 2 copy: after a restart PUBREL is sent again, not the message.
    Received {
        /// The copy's number in the store.
        stored: u64,
    },
    /// The copy is done with: acknowledged, refused, expired, too large, or sent at QoS 0.
    Done {
        /// The copy's number in the store.
        stored: u64,
    },
    /// An incoming QoS 2 message was accepted: its packet id awaits PUBREL, and a PUBLISH sent again with it
    /// is not routed twice, even after a restart.
    AwaitingRelease {
        /// The publisher's packet id.
        pkid: u16,
    },
    /// PUBREL came: the id is free again.
    Released {
        /// The publisher's packet id.
        pkid: u16,
    },
}

impl Journal {
    /// The packets written in the same call must not leave before this entry is stored: they promise what it
    /// records (a QoS 2 PUBLISH its id, PUBREL the receipt, PUBREC the accepted message, PUBCOMP the release).
    /// The other entries may be stored later: losing them in a crash costs a QoS 1 duplicate at most, or a
    /// PUBREL the client answers again.
    pub fn must_precede_output(&self) -> bool {
        match self {
            Journal::Sent { exactly_once, .. } => *exactly_once,
            Journal::Received { .. } | Journal::AwaitingRelease { .. } | Journal::Released { .. } => true,
            Journal::Done { .. } => false,
        }
    }
}
