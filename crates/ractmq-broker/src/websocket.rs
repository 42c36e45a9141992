//! MQTT over WebSocket (MQTT 5 §6): the HTTP upgrade, and a byte stream over the binary messages.
//!
//! After the upgrade the connection is an ordinary byte stream to the rest of the broker ([`WsBytes`] is
//! `AsyncRead + AsyncWrite`), so the CONNECT handshake, the reader, the writer and the session are the same as
//! for TCP. MQTT packets may be split across WebSocket messages or share one, so the bytes of consecutive
//! binary messages are simply concatenated; a text message is a protocol error (§6.0: "MUST be closed").
//!
//! The upgrade accepts one path (default `/mqtt`, as EMQX and Mosquitto's examples use) and the subprotocols
//! MQTT clients offer (`mqtt`, and `mqttv3.1` for 3.1 clients); a client that offers only others is refused
//! with 400, one that offers none is served (some embedded clients send no header).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Subprotocols an MQTT client may ask for, in the order this broker prefers them.
const SUBPROTOCOLS: &[&str] = &["mqtt", "mqttv3.1"];

/// Upgrade an accepted connection at `path`; the error says why the client was refused.
pub async fn accept<S>(stream: S, path: &str, max_packet_size: usize) -> Result<WsBytes<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut config = WebSocketConfig::default();
    // A message or frame never needs to be larger than the largest packet (plus its fixed header).
    config.max_message_size = Some(max_packet_size + 5);
    config.max_frame_size = Some(max_packet_size + 5);
    // The signature is tungstenite's callback; its error is the HTTP response sent instead of the upgrade.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != path {
            return Err(refusal(StatusCode::NOT_FOUND, "no MQTT over WebSocket at this path"));
        }
        let offered: Vec<&str> = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(str::trim))
            .collect();
        if offered.is_empty() {
            return Ok(response);
        }
        let Some(chosen) = SUBPROTOCOLS.iter().find(|p| offered.contains(p)) else {
            return Err(refusal(StatusCode::BAD_REQUEST, "no MQTT subprotocol offered"));
        };
        let mut response = response;
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade failed: {e}"))?;
    Ok(WsBytes::new(ws))
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_string()));
    *response.status_mut() = status;
    response
}

/// A WebSocket connection as a byte stream: binary messages in, one binary message per write out.
pub struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// The rest of the last binary message, not yet read.
    unread: Bytes,
}

impl<S> WsBytes<S> {
    /// Either end of an upgraded connection as bytes (clients in tests use it too).
    pub fn new(ws: WebSocketStream<S>) -> Self {
        WsBytes {
            ws,
            unread: Bytes::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => self.unread = bytes,
                // Pings are answered by tungstenite itself; pongs and raw frames carry nothing for MQTT.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text message on MQTT over WebSocket",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
        let n = self.unread.len().min(buf.remaining());
        let chunk = self.unread.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io::Error::other)
    }
}
