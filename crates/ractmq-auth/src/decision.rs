//! What one authentication source answers about a client, and why a client is refused: shared by the chain
//! (`authn.rs`) and every source (JWT, the HTTP service), so that none of them imports another.

use serde_json::Value;

/// Why a client is refused. The broker maps it to CONNACK: 0x86 / 0x87 in MQTT 5, 4 / 5 in 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The credentials are wrong, or nobody vouched for them.
    BadUsernameOrPassword,
    /// The credentials may be right, but this client may not connect (a service said "deny").
    NotAuthorized,
}

impl DenyReason {
    /// The MQTT 5 CONNACK reason code.
    pub fn v5_reason_code(self) -> u8 {
        match self {
            DenyReason::BadUsernameOrPassword => 0x86,
            DenyReason::NotAuthorized => 0x87,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code.
    pub fn v3_return_code(self) -> u8 {
        match self {
            DenyReason::BadUsernameOrPassword => 4,
            DenyReason::NotAuthorized => 5,
        }
    }
}

/// One source's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceDecision {
    /// Let the client in.
    Allow {
        /// ACLs are skipped for this client.
        superuser: bool,
        /// Rules the source attached to the client (a JWT claim, an HTTP answer's `acl`), for authorization
        /// to parse.
        acl: Option<Value>,
    },
    /// Refuse the client; no later source is asked.
    Deny(DenyReason),
    /// Not this source's client: ask the next one.
    Ignore,
}
