//! Input columns resolved by name once, at compile time, so evaluation reads a struct field instead of
//! looking a string up per message.

use crate::input::{Env, Input};
use crate::value::{Map, Value};

macro_rules! columns {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// One column of [`Input`] (or of [`Env`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Column { $($variant),* }

        impl Column {
            /// All columns, in the order `SELECT *` lists them.
            pub(crate) const ALL: &'static [Column] = &[$(Column::$variant),*];

            pub(crate) fn by_name(name: &str) -> Option<Column> {
                match name { $($name => Some(Column::$variant),)* _ => None }
            }

            pub(crate) fn name(self) -> &'static str {
                match self { $(Column::$variant => $name),* }
            }
        }
    };
}

columns! {
    Id => "id",
    Event => "event",
    ClientId => "clientid",
    Username => "username",
    Topic => "topic",
    Payload => "payload",
    Qos => "qos",
    Flags => "flags",
    Retain => "retain",
    PubProps => "pub_props",
    UserProperties => "user_properties",
    Peerhost => "peerhost",
    Peername => "peername",
    Sockname => "sockname",
    FromClientId => "from_clientid",
    FromUsername => "from_username",
    Reason => "reason",
    ProtoName => "proto_name",
    ProtoVer => "proto_ver",
    Keepalive => "keepalive",
    CleanStart => "clean_start",
    ExpiryInterval => "expiry_interval",
    IsBridge => "is_bridge",
    Mountpoint => "mountpoint",
    ConnectedAt => "connected_at",
    DisconnectedAt => "disconnected_at",
    ConnProps => "conn_props",
    DisconnProps => "disconn_props",
    SubProps => "sub_props",
    UnsubProps => "unsub_props",
    PublishReceivedAt => "publish_received_at",
    Timestamp => "timestamp",
    Node => "node",
}

fn s(v: Option<&str>) -> Option<Value> {
    v.map(Value::from)
}

impl Column {
    /// The column's value, `None` when the input does not carry it (it then reads as `null`).
    pub(crate) fn get(self, i: &Input<'_>, env: &Env<'_>) -> Option<Value> {
        match self {
            Column::Id => s(i.id),
            Column::Event => Some(Value::from(i.event.name())),
            Column::ClientId => s(i.clientid),
            Column::Username => s(i.username),
            Column::Topic => s(i.topic),
            // Raw text, as EMQX shows it; invalid UTF-8 is replaced rather than refused.
            Column::Payload => i.payload.map(|p| Value::Str(String::from_utf8_lossy(p).into_owned())),
            Column::Qos => i.qos.map(|q| Value::Int(q.into())),
            Column::Flags => {
                if i.retain.is_none() && i.dup.is_none() {
                    return None;
                }
                let mut m = Map::new();
                m.insert("retain".into(), Value::Bool(i.retain.unwrap_or(false)));
                m.insert("dup".into(), Value::Bool(i.dup.unwrap_or(false)));
                Some(Value::Object(m))
            }
            Column::Retain => i.retain.map(Value::Bool),
            Column::PubProps => i.pub_props.cloned(),
            Column::UserProperties => match i.pub_props {
                Some(Value::Object(m)) => m.get("User-Property").cloned(),
                _ => None,
            },
            Column::Peerhost => s(i.peerhost),
            Column::Peername => s(i.peername),
            Column::Sockname => s(i.sockname),
            Column::FromClientId => s(i.from_clientid),
            Column::FromUsername => s(i.from_username),
            Column::Reason => s(i.reason),
            Column::ProtoName => s(i.proto_name),
            Column::ProtoVer => i.proto_ver.map(|v| Value::Int(v.into())),
            Column::Keepalive => i.keepalive.map(|v| Value::Int(v.into())),
            Column::CleanStart => i.clean_start.map(Value::Bool),
            Column::ExpiryInterval => i.expiry_interval.map(|v| Value::Int(v.into())),
            Column::IsBridge => i.is_bridge.map(Value::Bool),
            Column::Mountpoint => s(i.mountpoint),
            Column::ConnectedAt => i.connected_at.map(Value::Int),
            Column::DisconnectedAt => i.disconnected_at.map(Value::Int),
            Column::ConnProps => i.conn_props.cloned(),
            Column::DisconnProps => i.disconn_props.cloned(),
            Column::SubProps => i.sub_props.cloned(),
            Column::UnsubProps => i.unsub_props.cloned(),
            Column::PublishReceivedAt => i.publish_received_at.map(Value::Int),
            Column::Timestamp => Some(Value::Int(i.timestamp)),
            Column::Node => Some(Value::from(env.node)),
        }
    }

    /// Borrowed access for columns that are already values, so `pub_props.x` does not clone the whole map.
    pub(crate) fn get_ref<'a>(self, i: &Input<'a>) -> Option<&'a Value> {
        match self {
            Column::PubProps => i.pub_props,
            Column::ConnProps => i.conn_props,
            Column::DisconnProps => i.disconn_props,
            Column::SubProps => i.sub_props,
            Column::UnsubProps => i.unsub_props,
            _ => None,
        }
    }
}

/// All columns the input carries, in `SELECT *` order. `user_properties` is left out: it repeats
/// `pub_props.'User-Property'`.
pub(crate) fn all_columns(i: &Input<'_>, env: &Env<'_>) -> Map {
    let mut m = Map::new();
    for c in Column::ALL.iter().filter(|c| **c != Column::UserProperties) {
        if let Some(v) = c.get(i, env) {
            m.insert(c.name().to_owned(), v);
        }
    }
    m
}
