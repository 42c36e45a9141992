//! Enhanced authentication (MQTT 5 §4.12): the pluggable side of the AUTH exchange.
//!
//! A client names an Authentication Method in CONNECT (or in an AUTH packet with reason 0x19 to
//! re-authenticate a live connection) and the two sides trade Authentication Data until the method says yes or
//! no. Each method is an [`Authenticator`]; one exchange in progress is an [`AuthExchange`]. Both are plain
//! computation, so the listener (at CONNECT) and the channel (re-authentication) drive them the same way, and
//! a test can drive them with no network. SCRAM-SHA-256 is built in (`scram`); a program embedding the broker
//! can add its own methods.

use std::fmt;

use bytes::Bytes;

/// What the method answers to one message of the client.
pub enum AuthStep {
    /// Send this data in an AUTH packet (reason 0x18) and wait for the client's next message.
    Continue(Bytes, Box<dyn AuthExchange>),
    /// Authenticated as `user`; `data` (if any) goes to the client in CONNACK or the final AUTH.
    Success {
        /// The user the client proved to be.
        user: String,
        /// Data for the client's last step (SCRAM's server-final message), if any.
        data: Option<Bytes>,
    },
    /// Not authenticated; `why` is for the log, not the client.
    Failure {
        /// What failed, for the log.
        why: String,
    },
}

impl fmt::Debug for AuthStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthStep::Continue(data, _) => write!(f, "Continue({} bytes)", data.len()),
            AuthStep::Success { user, .. } => write!(f, "Success({user})"),
            AuthStep::Failure { why } => write!(f, "Failure({why})"),
        }
    }
}

/// One authentication method.
pub trait Authenticator: Send + Sync {
    /// The Authentication Method name clients use, e.g. `SCRAM-SHA-256`.
    fn method(&self) -> &str;

    /// The client's first message (Authentication Data of CONNECT or of the re-authenticating AUTH).
    fn start(&self, data: &[u8]) -> AuthStep;
}

/// An exchange waiting for the client's next message.
pub trait AuthExchange: Send + Sync {
    /// The client's next message (the Authentication Data of its AUTH packet).
    fn step(self: Box<Self>, data: &[u8]) -> AuthStep;
}
