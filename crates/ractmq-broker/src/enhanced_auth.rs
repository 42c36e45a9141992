//! The AUTH exchange of a CONNECT that names an Authentication Method (MQTT 5 §4.12), run in the handshake
//! task before anything of the client reaches a session.
//!
//! The method's logic is an [`Authenticator`] and the packets' rules an [`AuthFlow`], both from the protocol
//! crate (re-authentication uses the same flow); this module only carries its messages over the socket: AUTH 0x18 out, AUTH 0x18 in, until the method says yes (the caller sends CONNACK with the
//! final data) or no (CONNACK 0x87). Any other packet, another method, or silence past the connect timeout ends
//! the handshake.

use std::sync::Arc;

use crate::connection::{ReadHalf, WriteHalf};
use crate::metrics::Metrics;
use bytes::{Bytes, BytesMut};
use ractmq_codec::{encode, reason, DecodeError, Decoder, Packet, Protocol};
use ractmq_protocol::auth::Authenticator;
use ractmq_protocol::auth_flow::{AuthFlow, AuthProgress};

/// The methods this broker offers.
#[derive(Clone, Default)]
pub struct Authenticators(pub Vec<Arc<dyn Authenticator>>);

impl Authenticators {
    pub fn find(&self, method: &str) -> Option<&Arc<dyn Authenticator>> {
        self.0.iter().find(|a| a.method() == method)
    }
}

impl std::fmt::Debug for Authenticators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|a| a.method())).finish()
    }
}

/// Bytes read at a time before CONNECT: enough for any ordinary CONNECT in one read.
const HANDSHAKE_CHUNK: usize = 512;

/// How an exchange ended: the authenticated user and the data for CONNACK, or the refusing reason code.
pub type Outcome = Result<(String, Option<Bytes>), u8>;

/// The socket and decoding state of a handshake.
pub struct HandshakeIo<'a> {
    read: &'a mut ReadHalf,
    write: &'a mut WriteHalf,
    buf: &'a mut BytesMut,
    decoder: &'a mut Decoder,
    metrics: &'a Metrics,
}

impl<'a> HandshakeIo<'a> {
    pub fn new(
        read: &'a mut ReadHalf,
        write: &'a mut WriteHalf,
        buf: &'a mut BytesMut,
        decoder: &'a mut Decoder,
        metrics: &'a Metrics,
    ) -> Self {
        HandshakeIo {
            read,
            write,
            buf,
            decoder,
            metrics,
        }
    }

    /// The socket's writing half, to answer on.
    pub fn write(&mut self) -> &mut WriteHalf {
        self.write
    }

    /// The next packet from the client; `Ok(None)` if it closed the socket.
    pub async fn next_packet(&mut self) -> Result<Option<Packet>, DecodeError> {
        loop {
            if let Some(packet) = self.decoder.decode(self.buf)? {
                return Ok(Some(packet));
            }
            match self.read.read_into(self.buf, HANDSHAKE_CHUNK).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => Metrics::add(&self.metrics.bytes_received, n as u64),
            }
        }
    }
}

/// Run `authenticator` from the CONNECT's Authentication Data to its verdict (see `AuthFlow`).
pub async fn exchange(io: &mut HandshakeIo<'_>, authenticator: &dyn Authenticator, first: &[u8]) -> Outcome {
    let (mut flow, mut progress) = AuthFlow::start(authenticator, first);
    loop {
        match progress {
            AuthProgress::Success { user, data } => return Ok((user, data)),
            AuthProgress::Failure { code, why } => {
                tracing::info!(method = flow.method(), "enhanced authentication failed: {why}");
                return Err(code);
            }
            AuthProgress::Challenge(challenge) => {
                let mut out = BytesMut::new();
                if encode(&Packet::Auth(challenge), Protocol::V5, &mut out).is_err()
                    || io.write.write_all(&out).await.is_err()
                {
                    return Err(reason::UNSPECIFIED_ERROR);
                }
                progress = match io.next_packet().await {
                    Ok(Some(Packet::Auth(reply))) => flow.handle(reply),
                    Ok(Some(_)) => return Err(reason::PROTOCOL_ERROR),
                    Ok(None) => return Err(reason::UNSPECIFIED_ERROR),
                    Err(e) => return Err(e.reason_code()),
                };
            }
        }
    }
}
