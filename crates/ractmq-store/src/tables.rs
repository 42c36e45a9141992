//! The file's layout: one redb table per kind of record, and the format version a file carries.
//!
//! Copies of messages are keyed by client id and copy number, so that a session's copies are one range: read in
//! order at recovery, removed at once when the session ends. What changes often about a copy (its packet id and
//! QoS 2 state) is kept apart from the copy itself, so that sending a message rewrites a few bytes, not it.

use redb::TableDefinition;

/// The format this version writes. A file of a newer format is refused; an older one would be migrated.
pub(crate) const FORMAT: u64 = 1;

/// `format` and other single values.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Client id -> [`crate::records::StoredSession`].
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (client id, copy number) -> [`crate::records::StoredCopy`].
pub(crate) const COPIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("copies");
/// (client id, copy number) -> (packet id, state) of a copy sent: 1 QoS 1 sent, 2 QoS 2 sent, 3 PUBREC received.
pub(crate) const SENT: TableDefinition<(&str, u64), (u16, u8)> = TableDefinition::new("sent");
/// (client id, packet id) of an incoming QoS 2 message awaiting PUBREL.
pub(crate) const RECEIPTS: TableDefinition<(&str, u16), ()> = TableDefinition::new("receipts");
/// Topic -> [`crate::records::StoredMessage`].
pub(crate) const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
/// (space, key) -> value: operator state (users, bans) as its owner encodes it.
pub(crate) const OPERATOR: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("operator");

pub(crate) const SENT_QOS1: u8 = 1;
pub(crate) const SENT_QOS2: u8 = 2;
pub(crate) const RECEIVED: u8 = 3;
