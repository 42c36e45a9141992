//! An entry of the cluster's replicated map as it is stored and sent: its version and value, and which of two
//! wins. Apart from `replicated.rs`, which sends and stores them, so that `wire.rs` can carry entries without
//! depending on the map's machinery.

use serde::{Deserialize, Serialize};

/// The version of an entry: ordered by `counter`, then by `node` (the writer's name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// A hybrid logical clock: above every counter the writer had seen when it wrote, and at least its wall
    /// clock then, in milliseconds since the Unix epoch.
    pub counter: u64,
    /// The node that wrote it.
    pub node: String,
}

/// One key's state: its version and value (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When and where it was written.
    pub version: Version,
    /// The bytes its owner encoded, or `None` for a delete (a tombstone, kept so the delete wins everywhere).
    pub value: Option<Vec<u8>>,
}

impl Entry {
    /// Whether this entry replaces `other` in a merge: the higher version; at an equal version (only when a
    /// node reused one, having lost its store) the greater value, so that every node keeps the same one.
    pub fn wins_over(&self, other: &Entry) -> bool {
        (&self.version, &self.value) > (&other.version, &other.value)
    }
}
