//! The MQTT listeners and the CONNECT handshake of each new socket.
//!
//! One listener actor per listening socket: the plain TCP one (`mqtt_listen`) and each of
//! `BrokerConfig::listeners` (TLS, WebSocket, WebSocket on TLS). It owns the bound socket and an accept task; a
//! restart binds the same address again. Each accepted socket gets a short-lived handshake task: finish TLS
//! and the WebSocket upgrade if the listener has them, then read the CONNECT, all within the connect timeout;
//! run the CONNECT checks, refuse with the right CONNACK or hand the connection to the session supervisor.
//! Nothing of a client reaches a session actor before its CONNECT is known to be acceptable, and past the
//! upgrade a connection is a byte stream like any other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ractmq_codec::{encode, reason, DecodeError, Decoder, Packet, Protocol};
use ractmq_protocol::connect::{check_connect, refusal};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::connection::{AbortOnDrop, Counted, ReadHalf, Transport, WriteHalf};
use crate::enhanced_auth::{exchange, HandshakeIo};
use crate::handover::import;
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::session_msg::{Attach, SessionSupMsg};
use crate::websocket;

/// Sockets that may be between accept and an accepted CONNECT at once.
const MAX_HANDSHAKES: usize = 4096;

pub struct Listener;

pub struct ListenerArgs {
    pub kernel: Arc<Kernel>,
    /// Which of `config.listeners` this is; `None`: the plain TCP listener (`mqtt_listen`).
    pub extra: Option<usize>,
}

pub struct ListenerState {
    _accept: AbortOnDrop,
}

impl Actor for Listener {
    type Msg = ();
    type State = ListenerState;
    type Arguments = ListenerArgs;

    async fn pre_start(&self, _me: ActorRef<()>, args: ListenerArgs) -> Result<ListenerState, ActorProcessingErr> {
        let ListenerArgs { kernel, extra } = args;
        let (addr, kind) = match extra {
            None => (kernel.mqtt_addr.lock().unwrap_or(kernel.config.mqtt_listen), "tcp"),
            Some(i) => {
                let spec = &kernel.config.listeners[i];
                (kernel.listener_addrs.lock()[i].unwrap_or(spec.listen), spec.kind())
            }
        };
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            let (what, flag) = match kind {
                "tcp" => ("MQTT".to_string(), "--listen".to_string()),
                other => (format!("MQTT over {}", other.to_uppercase()), format!("--{other}-listen")),
            };
            let line = format!("cannot listen for {what} on {addr}: {e} (is another broker running there? pick another address with {flag})");
            kernel.report_start_failure(line.clone());
            line
        })?;
        let bound = listener.local_addr()?;
        match extra {
            None => *kernel.mqtt_addr.lock() = Some(bound),
            Some(i) => kernel.listener_addrs.lock()[i] = Some(bound),
        }
        tracing::info!(%bound, listener = kind, "MQTT listener started");
        Ok(ListenerState {
            _accept: AbortOnDrop::new(tokio::spawn(accept_loop(listener, kernel, extra))),
        })
    }
}

async fn accept_loop(listener: TcpListener, kernel: Arc<Kernel>, extra: Option<usize>) {
    let mut draining = kernel.draining.subscribe();
    loop {
        if *draining.borrow_and_update() {
            // Shutting down: returning drops the socket, so new clients are refused by the OS.
            tracing::info!("MQTT listener closed: the node is shutting down");
            return;
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = draining.changed() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        Metrics::add(&kernel.metrics.connections_accepted, 1);
        // Sockets that have not finished CONNECT cost a task and a buffer each: cap them, so a flood of
        // silent connections cannot grow without bound. The connection limit proper answers with a CONNACK.
        if kernel.handshakes.load(Ordering::Relaxed) >= MAX_HANDSHAKES {
            tracing::warn!(%peer, "connection dropped: {MAX_HANDSHAKES} connections are already waiting for their CONNECT");
            continue;
        }
        kernel.handshakes.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection_task(stream, peer, kernel.clone(), extra));
    }
}

/// The task of an accepted socket until its CONNECT is handled: upgrade, then handshake.
///
/// It is kept small (about 1.5 KB on plain TCP): what only some connections do (TLS and WebSocket, enhanced
/// authentication, a takeover from another node) is boxed where it happens. Inline, those made every task
/// about 10 KB, and at a few thousand connects a second that block, freed after each handshake between the
/// connection's long-lived allocations, left holes in the heap that later connections did not fill: a slow
/// connect pattern cost 2-3 KiB more per idle connection than a burst.
async fn connection_task(stream: TcpStream, peer: SocketAddr, k: Arc<Kernel>, extra: Option<usize>) {
    let deadline = Instant::now() + Duration::from_secs(k.limits.connect_timeout_secs);
    if let Some((read, write)) = upgrade(stream, peer, &k, extra, deadline).await {
        let counter = k.listener_connections[extra.map_or(0, |i| i + 1)].clone();
        let kind = extra.map_or("tcp", |i| k.config.listeners[i].kind());
        handshake(read, write, peer, deadline, (kind, counter), k.clone()).await;
    }
    k.handshakes.fetch_sub(1, Ordering::Relaxed);
}

/// From an accepted socket to the halves of a byte stream: TLS and the WebSocket upgrade, if the listener has
/// them, finished by `deadline`. `None` (logged) if the client failed either.
async fn upgrade(
    stream: TcpStream,
    peer: SocketAddr,
    kernel: &Kernel,
    extra: Option<usize>,
    deadline: Instant,
) -> Option<(ReadHalf, WriteHalf)> {
    let _ = stream.set_nodelay(true);
    let Some(spec) = extra.map(|i| &kernel.config.listeners[i]) else {
        let (read, write) = stream.into_split();
        return Some((ReadHalf::Tcp(read), WriteHalf::Tcp(write)));
    };
    let max_packet = kernel.limits.max_packet_size as usize;
    // Boxed: the TLS and WebSocket handshakes are large futures, and inline they would make every plain TCP
    // handshake task as large (see `handshake`).
    let upgraded = Box::pin(tokio::time::timeout_at(deadline, async {
        let tls = |config: &Arc<rustls::ServerConfig>, stream| TlsAcceptor::from(config.clone()).accept(stream);
        let tls_failed = |e: std::io::Error| format!("TLS handshake failed: {e}");
        match (&spec.tls, &spec.websocket_path) {
            (None, None) => Ok(boxed(stream)),
            (Some(config), None) => tls(config, stream).await.map(boxed).map_err(tls_failed),
            (None, Some(path)) => websocket::accept(stream, path, max_packet).await.map(boxed),
            (Some(config), Some(path)) => {
                let secure = tls(config, stream).await.map_err(tls_failed)?;
                websocket::accept(secure, path, max_packet).await.map(boxed)
            }
        }
    }))
    .await;
    match upgraded {
        Ok(Ok(halves)) => Some(halves),
        Ok(Err(why)) => {
            Metrics::add(&kernel.metrics.protocol_errors, 1);
            tracing::info!(%peer, listener = spec.kind(), "connection closed: {why}");
            None
        }
        Err(_) => {
            tracing::info!(%peer, listener = spec.kind(), "connection closed: no {} handshake within {}s", spec.kind().to_uppercase(), kernel.limits.connect_timeout_secs);
            None
        }
    }
}

fn boxed<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (ReadHalf, WriteHalf) {
    let (read, write) = tokio::io::split(stream);
    (ReadHalf::Other(Box::new(read)), WriteHalf::Other(Box::new(write)))
}

/// Read and check the CONNECT, then hand the connection over. Every failure closes only this connection.
async fn handshake(
    mut read: ReadHalf,
    mut write: WriteHalf,
    peer: SocketAddr,
    deadline: Instant,
    (listener, counter): (&'static str, Arc<AtomicU64>),
    kernel: Arc<Kernel>,
) {
    let mut decoder = Decoder::new(kernel.limits.max_packet_size as usize);
    // Nothing is reserved before the CONNECT arrives: `read_into` sizes the buffer to what came.
    let mut buf = BytesMut::new();
    let timeout = Duration::from_secs(kernel.limits.connect_timeout_secs);
    let first = {
        let mut io = HandshakeIo::new(&mut read, &mut write, &mut buf, &mut decoder, &kernel.metrics);
        tokio::time::timeout_at(deadline, io.next_packet()).await
    };
    let connect = match first {
        Err(_) => return tracing::info!(%peer, "connection closed: no CONNECT within {}s", timeout.as_secs()),
        Ok(Ok(None)) => return,
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(Some(other))) => return tracing::info!(%peer, "connection closed: {} before CONNECT", other.kind()),
        Ok(Err(e)) => {
            Metrics::add(&kernel.metrics.protocol_errors, 1);
            tracing::info!(%peer, "connection closed: {e}");
            if e == DecodeError::UnsupportedProtocol {
                // Answer in 3.1.1, which every client understands: return code 1.
                refuse(
                    &mut write,
                    Protocol::V3_1_1,
                    reason::UNSUPPORTED_PROTOCOL_VERSION,
                    &kernel,
                )
                .await;
            }
            return;
        }
    };
    let protocol = decoder.protocol().unwrap_or(Protocol::V3_1_1);
    // A CONNECT naming an Authentication Method is authenticated by that method's AUTH exchange (after the
    // other checks); any other by user name and password.
    let mut enhanced = None;
    let checked = check_connect(&connect, &kernel.limits, || kernel.assign_client_id())
        .and_then(|accepted| match &connect.properties.authentication_method {
            Some(method) => match kernel.authenticators.find(method) {
                Some(authenticator) => {
                    enhanced = Some(authenticator.clone());
                    Ok(accepted)
                }
                None => Err(reason::BAD_AUTHENTICATION_METHOD),
            },
            None => authenticate(&connect, &kernel).map(|()| accepted),
        })
        .and_then(|accepted| {
            if kernel.is_draining() {
                return Err(reason::SERVER_UNAVAILABLE);
            }
            let full =
                kernel.metrics.clients_connected.load(Ordering::Relaxed) as usize >= kernel.config.max_connections;
            if full {
                tracing::warn!(%peer, max = kernel.config.max_connections, "connection limit reached");
                return Err(reason::SERVER_UNAVAILABLE);
            }
            Ok(accepted)
        });
    let accepted = match checked {
        Ok(mut accepted) => {
            if let Some(authenticator) = &enhanced {
                let method = authenticator.method().to_string();
                let first = connect.properties.authentication_data.clone().unwrap_or_default();
                let mut io = HandshakeIo::new(&mut read, &mut write, &mut buf, &mut decoder, &kernel.metrics);
                let outcome = Box::pin(tokio::time::timeout_at(
                    deadline,
                    exchange(&mut io, authenticator.as_ref(), &first),
                ))
                .await;
                match outcome {
                    Ok(Ok((user, data))) => {
                        tracing::debug!(%peer, client = %accepted.client_id, user, method, "authenticated");
                        accepted.authentication = Some((method, data));
                    }
                    Ok(Err(code)) => {
                        tracing::info!(%peer, client = %accepted.client_id, method, reason = format!("0x{code:02X}"), "connection refused: enhanced authentication failed");
                        refuse(&mut write, protocol, code, &kernel).await;
                        return;
                    }
                    Err(_) => {
                        return tracing::info!(%peer, "connection closed: authentication not finished within {}s", timeout.as_secs())
                    }
                }
            }
            accepted
        }
        Err(code) => {
            tracing::info!(%peer, client = %connect.client_id, reason = format!("0x{code:02X}"), "connection refused");
            refuse(&mut write, protocol, code, &kernel).await;
            return;
        }
    };
    // A client id is unique cluster-wide: a session of this client on another node moves here first.
    if let Some(remote) = kernel.remote_sessions() {
        Box::pin(async {
            if let Some(handover) = remote.take_over(&accepted.client_id, accepted.clean_start).await {
                import(&kernel, accepted.client_id.clone(), handover).await;
            }
            remote.taken_over(&accepted.client_id);
        })
        .await;
    }
    let Some(sup) = kernel.session_sup() else {
        refuse(&mut write, protocol, reason::SERVER_UNAVAILABLE, &kernel).await;
        return;
    };
    let attach = Attach {
        connect,
        accepted,
        transport: Transport {
            read,
            write,
            peer,
            leftover: buf,
            decoder,
            counted: Counted::new(&counter),
        },
        session_present: false,
        authenticator: enhanced,
        listener,
    };
    if let Err(ractor::MessagingErr::SendErr(SessionSupMsg::Attach(mut back))) =
        sup.send_message(SessionSupMsg::Attach(Box::new(attach)))
    {
        // The session supervisor is restarting: tell the client to come back.
        let mut out = BytesMut::new();
        let _ = encode(
            &Packet::ConnAck(Box::new(refusal(reason::SERVER_UNAVAILABLE, &kernel.limits))),
            protocol,
            &mut out,
        );
        let _ = back.transport.write.write_all(&out).await;
    }
}

/// Check the user name and password against the configured users.
fn authenticate(connect: &ractmq_codec::Connect, kernel: &Kernel) -> Result<(), u8> {
    let Some(user) = &connect.username else {
        return if kernel.config.allow_anonymous {
            Ok(())
        } else {
            Err(reason::NOT_AUTHORIZED)
        };
    };
    let given = connect.password.as_deref().unwrap_or_default();
    match kernel.config.users.get(user) {
        Some(expected) if constant_time_eq(expected.as_bytes(), given) => Ok(()),
        _ => Err(reason::BAD_USER_NAME_OR_PASSWORD),
    }
}

/// Compare without leaking, through timing, how much of a password matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn refuse(write: &mut WriteHalf, protocol: Protocol, code: u8, kernel: &Kernel) {
    let mut out = BytesMut::new();
    if encode(
        &Packet::ConnAck(Box::new(refusal(code, &kernel.limits))),
        protocol,
        &mut out,
    )
    .is_ok()
    {
        let _ = write.write_all(&out).await;
        let _ = write.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    /// The task every accepted socket gets stays small: the rarely taken paths are boxed (see
    /// `connection_task`). It was about 10 KB with them inline.
    #[tokio::test]
    async fn the_connection_task_is_small() {
        let kernel = Kernel::new(BrokerConfig::default());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let task = connection_task(stream, peer, kernel, None);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "connection task of {size} bytes");
    }
}
