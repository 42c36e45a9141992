//! One AUTH exchange as packets (MQTT 5 §4.12), the same at CONNECT and for re-authentication.
//!
//! An [`Authenticator`] decides; this turns its steps into AUTH packets and checks what the client sends back:
//! the same method, reason 0x18, and only when a challenge is waiting. The listener drives it at CONNECT (and
//! answers the verdict with CONNACK); the channel drives it for re-authentication (and answers with AUTH 0x00
//! or DISCONNECT 0x87).

use bytes::Bytes;
use ractmq_codec::{reason, Auth};

use crate::auth::{AuthExchange, AuthStep, Authenticator};

/// Where an exchange stands after the client's last message.
#[derive(Debug)]
pub enum AuthProgress {
    /// Send this AUTH (reason 0x18) and wait for the client's answer.
    Challenge(Auth),
    /// Authenticated.
    Success {
        /// Who the client is, as the authenticator names it.
        user: String,
        /// Authentication Data for the client, sent with the verdict.
        data: Option<Bytes>,
    },
    /// Refused.
    Failure {
        /// The reason code to close with: 0x87 when the method said no, 0x82 for an AUTH out of sequence or
        /// with another method.
        code: u8,
        /// One line for the log.
        why: String,
    },
}

/// An exchange in progress.
pub struct AuthFlow {
    method: String,
    waiting: Option<Box<dyn AuthExchange>>,
}

impl AuthFlow {
    /// Start `authenticator` on the client's first Authentication Data.
    pub fn start(authenticator: &dyn Authenticator, data: &[u8]) -> (AuthFlow, AuthProgress) {
        let mut flow = AuthFlow {
            method: authenticator.method().to_string(),
            waiting: None,
        };
        let progress = flow.progress(authenticator.start(data));
        (flow, progress)
    }

    /// The client's next AUTH packet.
    pub fn handle(&mut self, auth: Auth) -> AuthProgress {
        if auth.method.as_deref() != Some(self.method.as_str()) {
            return protocol_error("AUTH with another authentication method");
        }
        match (auth.reason, self.waiting.take()) {
            (reason::CONTINUE_AUTHENTICATION, Some(exchange)) => {
                let step = exchange.step(auth.data.as_deref().unwrap_or_default());
                self.progress(step)
            }
            _ => protocol_error("AUTH out of sequence"),
        }
    }

    /// The Authentication Method of this exchange.
    pub fn method(&self) -> &str {
        &self.method
    }

    fn progress(&mut self, step: AuthStep) -> AuthProgress {
        match step {
            AuthStep::Continue(data, next) => {
                self.waiting = Some(next);
                AuthProgress::Challenge(Auth {
                    reason: reason::CONTINUE_AUTHENTICATION,
                    method: Some(self.method.clone()),
                    data: Some(data),
                    ..Auth::default()
                })
            }
            AuthStep::Success { user, data } => AuthProgress::Success { user, data },
            AuthStep::Failure { why } => AuthProgress::Failure {
                code: reason::NOT_AUTHORIZED,
                why,
            },
        }
    }
}

fn protocol_error(why: &str) -> AuthProgress {
    AuthProgress::Failure {
        code: reason::PROTOCOL_ERROR,
        why: why.into(),
    }
}
