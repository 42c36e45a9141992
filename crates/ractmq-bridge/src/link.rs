//! One MQTT connection as bytes: a read half with its buffer and decoder, a write half with its encoded
//! output. The pump reads with [`Link::read_more`] inside `select!` (cancel-safe: what was read stays in the
//! buffer) and writes what the client state machine output with [`Link::send`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ractmq_codec::{encode_client, ClientDecoder, Packet, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::TlsConfig;

/// The read half of a connection.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Frames larger than this from a remote are refused (a remote is not trusted to bound itself).
const MAX_PACKET: usize = 16 * 1024 * 1024;

pub(crate) struct Link {
    read: BoxRead,
    write: BoxWrite,
    buf: BytesMut,
    decoder: ClientDecoder,
    protocol: Protocol,
    out: BytesMut,
    /// MQTT 3.1.1 only: set the bridge bit of the CONNECT's protocol level (Mosquitto's `try_private`), which
    /// asks the remote not to send the bridge's own messages back.
    bridge_bit: bool,
}

impl Link {
    pub(crate) fn new<S: AsyncRead + AsyncWrite + Send + 'static>(
        stream: S,
        protocol: Protocol,
        bridge_bit: bool,
    ) -> Link {
        let (read, write) = tokio::io::split(stream);
        Link::from_halves(Box::new(read), Box::new(write), protocol, bridge_bit)
    }

    pub(crate) fn from_halves(read: BoxRead, write: BoxWrite, protocol: Protocol, bridge_bit: bool) -> Link {
        Link {
            read,
            write,
            buf: BytesMut::with_capacity(8 * 1024),
            decoder: ClientDecoder::new(protocol, MAX_PACKET),
            protocol,
            out: BytesMut::with_capacity(8 * 1024),
            bridge_bit,
        }
    }

    /// Read what is there; false at end of stream. Cancel-safe.
    pub(crate) async fn read_more(&mut self) -> io::Result<bool> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        Ok(self.read.read_buf(&mut self.buf).await? > 0)
    }

    /// The next whole packet read, if any.
    pub(crate) fn next_packet(&mut self) -> Result<Option<Packet>, String> {
        self.decoder.decode(&mut self.buf).map_err(|e| e.to_string())
    }

    /// Encode `packets` and write them, after anything queued before.
    pub(crate) async fn send(&mut self, packets: &mut Vec<Packet>) -> io::Result<()> {
        self.queue(packets)?;
        if !self.out.is_empty() {
            self.write.write_all(&self.out).await?;
            self.write.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Encode `packets` for the next [`Link::send`].
    pub(crate) fn queue(&mut self, packets: &mut Vec<Packet>) -> io::Result<()> {
        for packet in packets.drain(..) {
            let start = self.out.len();
            encode_client(&packet, self.protocol, &mut self.out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if self.bridge_bit && matches!(packet, Packet::Connect(_)) {
                mark_bridge(&mut self.out[start..]);
            }
        }
        Ok(())
    }
}

/// Sets bit 7 of the protocol level of an encoded CONNECT ("MQTT" level 4 becomes 0x84).
fn mark_bridge(connect: &mut [u8]) {
    let mut i = 1;
    while i < connect.len() && connect[i] & 0x80 != 0 {
        i += 1;
    }
    // Fixed header, then the protocol name (2-byte length + "MQTT"), then the level.
    let level = i + 1 + 2 + 4;
    if level < connect.len() {
        connect[level] |= 0x80;
    }
}

/// Open a connection to `server` (`host:port`), with TLS if configured, within `timeout`.
pub(crate) async fn dial(
    server: &str,
    tls: Option<&TlsConfig>,
    timeout: Duration,
) -> Result<(BoxRead, BoxWrite), String> {
    let connect = async {
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|e| format!("connect to {server}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            let (r, w) = tcp.into_split();
            return Ok::<(BoxRead, BoxWrite), String>((Box::new(r), Box::new(w)));
        };
        let config = client_tls(tls)?;
        let host = tls
            .server_name
            .clone()
            .unwrap_or_else(|| server.rsplit_once(':').map_or(server, |(h, _)| h).to_string());
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| format!("TLS server name {host:?} is not valid"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {server}: {e}"))?;
        let (r, w) = tokio::io::split(stream);
        Ok((Box::new(r), Box::new(w)))
    };
    tokio::time::timeout(timeout, connect)
        .await
        .unwrap_or_else(|_| Err(format!("connect to {server}: no answer within {}s", timeout.as_secs())))
}

/// The rustls client configuration of a bridge's TLS settings.
pub(crate) fn client_tls(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(&tls.ca_file).map_err(|e| format!("tls.ca_file {}: {e}", tls.ca_file))?;
    for ca in cas {
        let ca = ca.map_err(|e| format!("tls.ca_file {}: {e}", tls.ca_file))?;
        roots.add(ca).map_err(|e| format!("tls.ca_file {}: {e}", tls.ca_file))?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.cert_file {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.key_file {key}: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls client certificate: {e}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("tls: give both cert_file and key_file, or neither".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_bit_is_set_on_the_protocol_level() {
        let mut connect = vec![0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        mark_bridge(&mut connect);
        assert_eq!(connect[8], 0x84);
    }
}
