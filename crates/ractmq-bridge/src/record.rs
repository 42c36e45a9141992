//! What a bridge hands to a sink: one message taken from its local session, in the fields templates name.

use std::sync::Arc;

use bytes::Bytes;
use ractmq_codec::QoS;

/// One message for a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The topic it was published to on the local broker.
    pub topic: Arc<str>,
    /// The payload, as published.
    pub payload: Bytes,
    /// The QoS the bridge received it with.
    pub qos: QoS,
    /// Its RETAIN flag.
    pub retain: bool,
    /// MQTT 5 user properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// When the bridge took it, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}
