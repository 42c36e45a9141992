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
use ractmq_auth::client::ClientInfo;
use ractmq_codec::{encode, reason, Connect, DecodeError, Decoder, Packet, Protocol};
use ractmq_protocol::auth::Authenticator;
use ractmq_protocol::connect::Accepted;
use ractmq_protocol::connect::{check_connect, refusal};
use ractmq_protocol::{Action, Question};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::cert_identity;
use crate::connection::{AbortOnDrop, Counted, ReadHalf, Transport, WriteHalf};
use crate::enhanced_auth::{exchange, HandshakeIo};
use crate::handover::import;
use crate::kernel::Kernel;
use crate::metrics::Metrics;
use crate::peer_counts::{Full, Place};
use crate::rate_limit::{AcceptRate, InboundLimit};
use crate::security::Access;
use crate::session_msg::{Attach, SessionSupMsg};
use crate::websocket;
use ractmq_protocol::log_limit::more;

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
    let rate = AcceptRate::new(kernel.config.listener_connections_per_s, kernel.metrics.clone());
    loop {
        if let Some(rate) = &rate {
            rate.turn().await;
        }
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
        let config = &kernel.config;
        let place = match kernel
            .waiting
            .enter(peer.ip(), config.max_handshakes, config.max_handshakes_per_peer)
        {
            Ok(place) => place,
            Err(full) => {
                Metrics::add(&kernel.metrics.dropped_at_accept, 1);
                if let Some(left_out) = kernel.log_limits.accept_full.check(std::time::Instant::now()) {
                    let why = match full {
                        Full::Total => format!(
                            "{} sockets are waiting for their CONNECT (--max-handshakes)",
                            config.max_handshakes
                        ),
                        Full::Peer => format!(
                            "{} sockets from this address are waiting for their CONNECT (--max-handshakes-per-peer)",
                            config.max_handshakes_per_peer
                        ),
                    };
                    tracing::warn!(%peer, "connection closed at accept: {why}{}", more(left_out));
                }
                continue;
            }
        };
        tokio::spawn(connection_task(stream, peer, kernel.clone(), extra, place));
    }
}

/// The task of an accepted socket until its CONNECT is handled: upgrade, then handshake.
///
/// It is kept small (about 1.5 KB on plain TCP): what only some connections do (TLS and WebSocket, enhanced
/// authentication, a takeover from another node) is boxed where it happens. Inline, those made every task
/// about 10 KB, and at a few thousand connects a second that block, freed after each handshake between the
/// connection's long-lived allocations, left holes in the heap that later connections did not fill: a slow
/// connect pattern cost 2-3 KiB more per idle connection than a burst.
async fn connection_task(stream: TcpStream, peer: SocketAddr, k: Arc<Kernel>, extra: Option<usize>, place: Place) {
    let deadline = Instant::now() + Duration::from_secs(k.limits.connect_timeout_secs);
    if let Some((read, write, cert_user)) = upgrade(stream, peer, &k, extra, deadline).await {
        let counter = k.listener_connections[extra.map_or(0, |i| i + 1)].clone();
        let kind = extra.map_or("tcp", |i| k.config.listeners[i].kind());
        let from = Peer {
            addr: peer,
            listener: kind,
            counter,
            cert_user,
            trusted: false,
        };
        handshake(read, write, from, deadline, k.clone()).await;
    }
    drop(place);
}

/// Where a connection comes from: its address, its listener (and the listener's count of connections), the
/// user name its TLS client certificate gives, with `tls_cert_as_username`, and whether it is the node's own.
struct Peer {
    addr: SocketAddr,
    listener: &'static str,
    counter: Arc<AtomicU64>,
    cert_user: Option<String>,
    /// An in-process connection the node (or the program embedding it) opened: not authenticated, not
    /// authorized, not counted against client limits; only such connections may use client ids starting
    /// with `$`.
    trusted: bool,
}

/// The listener name of in-process connections.
pub(crate) const IN_PROCESS: &str = "in-process";

/// Handshake on one end of an in-process byte pipe, as for a socket (see [`crate::Broker::connect_in_process`]).
pub(crate) async fn in_process_handshake(stream: tokio::io::DuplexStream, kernel: Arc<Kernel>) {
    let deadline = Instant::now() + Duration::from_secs(kernel.limits.connect_timeout_secs);
    let (read, write) = boxed(stream);
    let from = Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        listener: IN_PROCESS,
        counter: kernel.in_process_connections.clone(),
        cert_user: None,
        trusted: true,
    };
    handshake(read, write, from, deadline, kernel).await;
}

/// From an accepted socket to the halves of a byte stream: TLS and the WebSocket upgrade, if the listener has
/// them, finished by `deadline`, and the user name of the client certificate if it is to be one. `None`
/// (logged) if the client failed either.
async fn upgrade(
    stream: TcpStream,
    peer: SocketAddr,
    kernel: &Kernel,
    extra: Option<usize>,
    deadline: Instant,
) -> Option<(ReadHalf, WriteHalf, Option<String>)> {
    let _ = stream.set_nodelay(true);
    let Some(spec) = extra.map(|i| &kernel.config.listeners[i]) else {
        let (read, write) = stream.into_split();
        return Some((ReadHalf::Tcp(read), WriteHalf::Tcp(write), None));
    };
    let cert_field = kernel.config.tls_cert_as_username;
    let max_packet = kernel.limits.max_packet_size as usize;
    // Boxed: the TLS and WebSocket handshakes are large futures, and inline they would make every plain TCP
    // handshake task as large (see `handshake`).
    let upgraded = Box::pin(tokio::time::timeout_at(deadline, async {
        let tls = |config: &Arc<rustls::ServerConfig>, stream| TlsAcceptor::from(config.clone()).accept(stream);
        let tls_failed = |e: std::io::Error| format!("TLS handshake failed: {e}");
        let user = |s: &tokio_rustls::server::TlsStream<TcpStream>| {
            let first = s.get_ref().1.peer_certificates()?.first()?;
            cert_identity::user_name(first, cert_field?)
        };
        match (&spec.tls, &spec.websocket_path) {
            (None, None) => Ok(with(boxed(stream), None)),
            (Some(config), None) => {
                let secure = tls(config, stream).await.map_err(tls_failed)?;
                let user = user(&secure);
                Ok(with(boxed(secure), user))
            }
            (None, Some(path)) => websocket::accept(stream, path, max_packet)
                .await
                .map(|s| with(boxed(s), None)),
            (Some(config), Some(path)) => {
                let secure = tls(config, stream).await.map_err(tls_failed)?;
                let user = user(&secure);
                websocket::accept(secure, path, max_packet)
                    .await
                    .map(|s| with(boxed(s), user))
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

fn with((read, write): (ReadHalf, WriteHalf), user: Option<String>) -> (ReadHalf, WriteHalf, Option<String>) {
    (read, write, user)
}

fn boxed<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (ReadHalf, WriteHalf) {
    let (read, write) = tokio::io::split(stream);
    (ReadHalf::Other(Box::new(read)), WriteHalf::Other(Box::new(write)))
}

/// Read and check the CONNECT, then hand the connection over. Every failure closes only this connection.
async fn handshake(mut read: ReadHalf, mut write: WriteHalf, from: Peer, deadline: Instant, kernel: Arc<Kernel>) {
    let Peer {
        addr: peer,
        listener,
        counter,
        cert_user,
        trusted,
    } = from;
    let mut decoder = Decoder::new(kernel.limits.max_packet_size as usize);
    // Nothing is reserved before the CONNECT arrives: `read_into` sizes the buffer to what came.
    let mut buf = BytesMut::new();
    let mut io = HandshakeIo::new(&mut read, &mut write, &mut buf, &mut decoder, &kernel.metrics);
    let Some(mut connect) = read_connect(&mut io, peer, deadline, &kernel).await else {
        return;
    };
    let by_certificate = cert_user.is_some();
    if let Some(user) = cert_user {
        connect.username = Some(user);
    }
    let protocol = decoder.protocol().unwrap_or(Protocol::V3_1_1);
    let admitted = if trusted {
        admit_trusted(&connect, peer, &kernel)
    } else {
        Box::pin(admit(&connect, peer, (listener, &counter), by_certificate, &kernel)).await
    };
    let Admitted {
        mut accepted,
        enhanced,
        mut client,
        mut access,
        peer_place,
    } = match admitted {
        Ok(admitted) => admitted,
        Err(code) => return refuse_logged(&mut write, peer, &connect.client_id, protocol, code, &kernel).await,
    };
    if let Some(authenticator) = &enhanced {
        let first = connect.properties.authentication_data.clone().unwrap_or_default();
        let mut io = HandshakeIo::new(&mut read, &mut write, &mut buf, &mut decoder, &kernel.metrics);
        let outcome = Box::pin(tokio::time::timeout_at(
            deadline,
            exchange(&mut io, authenticator.as_ref(), &first),
        ))
        .await;
        let method = authenticator.method().to_string();
        match outcome {
            Ok(Ok((user, data))) => {
                tracing::debug!(%peer, client = %accepted.client_id, user, method, "authenticated");
                accepted.authentication = Some((method, data));
                client.username = Some(user);
                match kernel.security.access_after_exchange(&client) {
                    Ok(a) => access = Some(a),
                    Err(code) => {
                        return refuse_logged(&mut write, peer, &accepted.client_id, protocol, code, &kernel).await
                    }
                }
            }
            Ok(Err(code)) => {
                return refuse_logged(&mut write, peer, &accepted.client_id, protocol, code, &kernel).await;
            }
            Err(_) => {
                let secs = kernel.limits.connect_timeout_secs;
                return tracing::info!(%peer, "connection closed: authentication not finished within {secs}s");
            }
        }
    }
    let Some(access) = access else {
        return refuse_logged(
            &mut write,
            peer,
            &accepted.client_id,
            protocol,
            reason::NOT_AUTHORIZED,
            &kernel,
        )
        .await;
    };
    if let Err(code) = check_owner(&kernel, &client, access.superuser) {
        return refuse_logged(&mut write, peer, &accepted.client_id, protocol, code, &kernel).await;
    }
    // The will is authorized when the session opens, synchronously: an HTTP service's answer is fetched first.
    if let (Some(http), Some(will)) = (&access.http_authz, &connect.will) {
        let will = Question {
            action: Action::Publish,
            topic: &will.topic,
            qos: will.qos,
            retain: will.retain,
        };
        if let Some(fetch) = http.fetch_missing(&[will]) {
            fetch.await;
        }
    }
    // A client id is unique cluster-wide: a session of this client on another node moves here first.
    if let Some(remote) = kernel.remote_sessions() {
        Box::pin(async {
            if let Some(handover) = remote.take_over(&accepted.client_id, accepted.clean_start).await {
                import(&kernel, accepted.client_id.clone(), handover).await;
            }
            remote.taken_over(&accepted.client_id);
        })
        .await;
        // The session may have come from another node with its owner: checked again (its connection there
        // is gone already; the session stays, for its owner).
        if let Err(code) = check_owner(&kernel, &client, access.superuser) {
            return refuse_logged(&mut write, peer, &accepted.client_id, protocol, code, &kernel).await;
        }
    }
    let attach = Attach {
        connect,
        accepted,
        transport: Transport {
            read,
            write,
            peer,
            leftover: buf,
            decoder,
            counted: Counted::new(&counter, peer_place),
            inbound: InboundLimit::new(
                kernel.config.client_messages_per_s,
                kernel.config.client_bytes_per_s,
                kernel.metrics.clone(),
            ),
        },
        session_present: false,
        authenticator: enhanced,
        listener,
        authorizer: access.authorizer,
        http_authz: access.http_authz,
        owner: client.username.map(Arc::from),
    };
    hand_over(attach, protocol, &kernel).await;
}

/// The first packet, which must be a CONNECT, by `deadline`. `None` (logged, and answered where the spec
/// says so) otherwise.
async fn read_connect(
    io: &mut HandshakeIo<'_>,
    peer: SocketAddr,
    deadline: Instant,
    kernel: &Kernel,
) -> Option<Box<Connect>> {
    match tokio::time::timeout_at(deadline, io.next_packet()).await {
        Err(_) => {
            let secs = kernel.limits.connect_timeout_secs;
            tracing::info!(%peer, "connection closed: no CONNECT within {secs}s");
            None
        }
        Ok(Ok(None)) => None,
        Ok(Ok(Some(Packet::Connect(connect)))) => Some(connect),
        Ok(Ok(Some(other))) => {
            tracing::info!(%peer, "connection closed: {} before CONNECT", other.kind());
            None
        }
        Ok(Err(e)) => {
            Metrics::add(&kernel.metrics.protocol_errors, 1);
            tracing::info!(%peer, "connection closed: {e}");
            if e == DecodeError::UnsupportedProtocol {
                // Answer in 3.1.1, which every client understands: return code 1.
                refuse(
                    io.write(),
                    Protocol::V3_1_1,
                    reason::UNSUPPORTED_PROTOCOL_VERSION,
                    kernel,
                )
                .await;
            }
            None
        }
    }
}

/// A CONNECT that passed [`admit`].
struct Admitted {
    accepted: Accepted,
    /// The method of an enhanced authentication still to run.
    enhanced: Option<Arc<dyn Authenticator>>,
    /// Who the client is, for bans, ACLs and the session's owner.
    client: ClientInfo,
    /// What it may do; `None` until its enhanced authentication succeeds.
    access: Option<Access>,
    /// Its place on its peer address's count of connected clients, when that is bounded.
    peer_place: Option<Place>,
}

/// May this CONNECT proceed? The spec's checks; bans and flapping; then authentication: a CONNECT naming an
/// Authentication Method is authenticated by that method's AUTH exchange (for the caller to run), any other by
/// the authentication chain now; then the node's own state (draining, the connection limit). `Err`: the
/// CONNACK code.
async fn admit(
    connect: &Connect,
    peer: SocketAddr,
    (listener, on_listener): (&str, &AtomicU64),
    by_certificate: bool,
    kernel: &Kernel,
) -> Result<Admitted, u8> {
    let accepted = check_connect(connect, &kernel.limits, || kernel.assign_client_id())?;
    if accepted.client_id.starts_with('$') {
        return Err(reason::CLIENT_IDENTIFIER_NOT_VALID);
    }
    let client = ClientInfo {
        client_id: accepted.client_id.to_string(),
        username: connect.username.clone(),
        peer: peer.ip(),
        listener: listener.to_string(),
    };
    kernel.security.screen(&client)?;
    let (enhanced, access) = match &connect.properties.authentication_method {
        // The TLS listener verified the certificate that named the user: that is the authentication.
        _ if by_certificate => (None, Some(kernel.security.access_after_exchange(&client)?)),
        Some(method) => {
            let found = kernel
                .authenticators
                .find(method)
                .ok_or(reason::BAD_AUTHENTICATION_METHOD)?;
            (Some(found.clone()), None)
        }
        None => {
            let password = connect.password.as_deref();
            (None, Some(kernel.security.authenticate(&client, password).await?))
        }
    };
    if kernel.is_draining() || kernel.is_evacuating() {
        return Err(reason::SERVER_UNAVAILABLE);
    }
    if kernel.overload.is_overloaded() {
        return Err(reason::SERVER_BUSY);
    }
    let config = &kernel.config;
    if kernel.metrics.clients_connected.load(Ordering::Relaxed) as usize >= config.max_connections {
        return Err(reason::SERVER_UNAVAILABLE);
    }
    let per_listener = config.max_connections_per_listener;
    if per_listener > 0 && on_listener.load(Ordering::Relaxed) as usize >= per_listener {
        return Err(reason::QUOTA_EXCEEDED);
    }
    let peer_place = match config.max_connections_per_peer {
        0 => None,
        max => Some(
            kernel
                .connected
                .enter(peer.ip(), usize::MAX, max)
                .map_err(|_| reason::QUOTA_EXCEEDED)?,
        ),
    };
    Ok(Admitted {
        accepted,
        enhanced,
        client,
        access,
        peer_place,
    })
}

/// The node's own connection: the spec's checks only. It is a superuser, counted on no client limit, and
/// admitted while the node is overloaded (a bridge draining its buffer is how the node sheds load).
fn admit_trusted(connect: &Connect, peer: SocketAddr, kernel: &Kernel) -> Result<Admitted, u8> {
    let accepted = check_connect(connect, &kernel.limits, || kernel.assign_client_id())?;
    if kernel.is_draining() {
        return Err(reason::SERVER_UNAVAILABLE);
    }
    let client = ClientInfo {
        client_id: accepted.client_id.to_string(),
        username: connect.username.clone(),
        peer: peer.ip(),
        listener: IN_PROCESS.to_string(),
    };
    Ok(Admitted {
        accepted,
        enhanced: None,
        client,
        access: Some(Access {
            superuser: true,
            authorizer: None,
            http_authz: None,
        }),
        peer_place: None,
    })
}

/// Where clients authenticate, a session belongs to the user that created it: another user presenting its
/// client id is refused with Not authorized (a superuser may take it over).
fn check_owner(kernel: &Kernel, client: &ClientInfo, superuser: bool) -> Result<(), u8> {
    if superuser || !kernel.security.owned_sessions() {
        return Ok(());
    }
    let Some(session) = kernel.store.get(&client.client_id) else {
        return Ok(());
    };
    let owner = session.state.lock().owner.clone();
    if owner.as_deref() == client.username.as_deref() {
        Ok(())
    } else {
        Err(reason::NOT_AUTHORIZED)
    }
}

/// Give the connection to the session supervisor; if it is restarting, tell the client to come back.
async fn hand_over(attach: Attach, protocol: Protocol, kernel: &Kernel) {
    let Some(sup) = kernel.session_sup() else {
        let mut write = attach.transport.write;
        return refuse(&mut write, protocol, reason::SERVER_UNAVAILABLE, kernel).await;
    };
    if let Err(ractor::MessagingErr::SendErr(SessionSupMsg::Attach(mut back))) =
        sup.send_message(SessionSupMsg::Attach(Box::new(attach)))
    {
        refuse(&mut back.transport.write, protocol, reason::SERVER_UNAVAILABLE, kernel).await;
    }
}

/// Refuse with `code`, in one log line (rate-limited: a flood of refusals writes a few lines a minute).
async fn refuse_logged(
    write: &mut WriteHalf,
    peer: SocketAddr,
    client_id: &str,
    protocol: Protocol,
    code: u8,
    kernel: &Kernel,
) {
    Metrics::add(&kernel.metrics.connections_refused, 1);
    if let Some(left_out) = kernel.log_limits.refused.check(std::time::Instant::now()) {
        let why = reason::describe(code);
        tracing::info!(%peer, client = %client_id, reason = format!("0x{code:02X}"), "connection refused: {why}{}", more(left_out));
    }
    refuse(write, protocol, code, kernel).await;
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
        let kernel = Kernel::new(BrokerConfig::default()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let place = kernel.waiting.enter(peer.ip(), 1, 1).unwrap();
        let task = connection_task(stream, peer, kernel, None, place);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "connection task of {size} bytes");
    }
}
