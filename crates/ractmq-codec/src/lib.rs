//! Bytes to packets and back for MQTT 3.1, 3.1.1 and 5.0: mqttbytes 0.6 does the parsing and writing it
//! gets right, and a layer of ours around it does the rest.
//!
//! Decoding ([`Decoder`]):
//! - **Ours, for every packet:** the fixed header (flag nibble, minimal remaining length, maximum packet
//!   size from the header alone) and the packet order, which mqttbytes does not check.
//! - **Ours, then mqttbytes:** PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP and SUBSCRIBE at every level, and
//!   UNSUBSCRIBE in 3.x. A validation walk over the raw bytes first enforces what mqttbytes does not (no
//!   U+0000, topic names, packet identifier 0, subscription option reserved bits, no empty filter list,
//!   no trailing bytes, and the 5.0 property rules: allowed identifiers, no duplicates, value ranges,
//!   the property length boundary); then `mqttbytes::v4::*::read` (3.1 and 3.1.1, which share these
//!   forms) or `mqttbytes::v5::*::read` builds the packet, which is converted into our [`Packet`].
//!   PUBLISH payloads stay slices of the received buffer.
//! - **Ours alone:** CONNECT at every level (the protocol level is learned from it; mqttbytes cannot read
//!   3.1 "MQIsdp", does not tell 3.1.1 from 5.0 and reads passwords as UTF-8), AUTH (unknown to it), 5.0
//!   DISCONNECT (it refuses the short forms), 5.0 UNSUBSCRIBE (its reader prints to stderr via a leftover
//!   `dbg!`), and PINGREQ and 3.x DISCONNECT, which have no fields.
//!
//! Encoding ([`encode()`], [`encode_publish`]):
//! - **mqttbytes:** the 3.x PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK (`mqttbytes::v4` writers,
//!   byte-identical to what this crate wrote before, as the exact-bytes tests check).
//! - **Ours:** PUBLISH (the delivery hot path, written from borrowed fields without allocating), every
//!   packet with a string or binary field (mqttbytes silently truncates one over 65,535 bytes into a
//!   corrupt frame), 3.x CONNACK (return codes mapped from 5.0 reasons), 5.0 DISCONNECT (mqttbytes writes
//!   a form its own reader refuses), AUTH, and the other 5.0 packets, held in our own types.
//!
//! The protocol core sees one packet model for all levels. Nothing a peer sends can make the codec panic or
//! allocate more than the configured maximum packet size.

#![deny(missing_docs)]

pub mod packet;
pub mod reason;
pub mod topic;

pub use packet::*;
pub mod client_decode;
pub mod decode;
pub mod encode;

mod connect;
mod frame;
mod mqttbytes_layer;
mod reader;
mod sink;
mod v5_props;

pub use client_decode::ClientDecoder;
pub use decode::{DecodeError, Decoder};
pub use encode::{encode, encode_client, encode_publish, EncodeError, PublishOut};
