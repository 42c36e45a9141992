//! Tracing one client: its packets as they pass, streamed as lines of text (`ractmq ctl trace client ID`).
//! The stream is fed from a bounded channel; lines a slow reader cannot take are dropped and counted.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;

use crate::state::AppState;

pub async fn client(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let rx = s.broker.trace(&id);
    let first = format!("tracing client {id} on node {}\n", s.node_name());
    let lines = stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        if let Some(first) = first {
            return Some((Ok::<Bytes, Infallible>(Bytes::from(first)), (None, rx)));
        }
        let line = rx.recv().await?;
        Some((Ok(Bytes::from(line + "\n")), (None, rx)))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(lines),
    )
        .into_response()
}
