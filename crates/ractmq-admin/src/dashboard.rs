//! The web dashboard's files (`ractmq-dashboard`), served on the API's listener: `GET /` is the page (also
//! at `/clients` and each other view's name), `GET /assets/...` its scripts and styles. The files hold no data, so they are served without credentials;
//! the page logs in and then reads the API like any client.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ractmq_dashboard::Asset;

/// Scripts only from this origin, so a client id or payload shown on a page can never run as code; MQTT over
/// WebSocket goes to the node's WebSocket listener, on another port; MQTT.js runs its keepalive timers in a
/// worker it makes from a blob (timers in a worker are not slowed down in a background tab).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// `GET /`.
pub async fn index(headers: HeaderMap) -> Response {
    serve(ractmq_dashboard::index(), &headers)
}

/// `GET /{page}` (`/clients`...): the same page, which shows that view.
pub async fn page(Path(page): Path<String>, headers: HeaderMap) -> Response {
    if ractmq_dashboard::PAGES.contains(&page.as_str()) {
        serve(ractmq_dashboard::index(), &headers)
    } else {
        (StatusCode::NOT_FOUND, "no such page in the dashboard").into_response()
    }
}

/// `GET /assets/{path}`.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ractmq_dashboard::asset(&path) {
        Some(file) => serve(file, &headers),
        None => (StatusCode::NOT_FOUND, "no such file in the dashboard").into_response(),
    }
}

fn serve(file: Asset, request: &HeaderMap) -> Response {
    let etag = HeaderValue::from_str(&file.etag).expect("a hex digest in quotes is a header value");
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|v| v == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.body.into_owned().into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    // Revalidated on every load (a 304 costs a round trip on loopback), so an upgraded node serves its own pages.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
