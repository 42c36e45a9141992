//! ractmq's web dashboard, as files compiled into the binary.
//!
//! The pages are plain HTML, CSS and ES modules written here (`assets/`), plus the browser builds of two
//! pinned npm packages in `assets/vendor` (MQTT.js for the Live traffic page, uPlot for the charts; see
//! `vendor.sh`). They read only the REST API and MQTT over WebSocket, so there is nothing to serve but files:
//! the API server (`ractmq-admin`) answers `GET /` and `GET /assets/...` with [`index`] and [`asset`].

#![deny(missing_docs)]

use std::borrow::Cow;

use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// One embedded file, ready to serve.
pub struct Asset {
    /// Its bytes.
    pub body: Cow<'static, [u8]>,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A strong validator (`"` + hex SHA-256 + `"`) for `ETag` and `If-None-Match`.
    pub etag: String,
}

/// The dashboard's pages. Each is a route inside the single page (`/#/clients`) and, so that a link or a
/// bookmark without the `#` works too, a path the server answers with that same page (`/clients`).
pub const PAGES: &[&str] = &[
    "overview",
    "clients",
    "topics",
    "cluster",
    "supervision",
    "security",
    "bridges",
    "rules",
    "live",
];

/// The dashboard's single page (every view is a route inside it).
pub fn index() -> Asset {
    asset("index.html").expect("assets/index.html is embedded")
}

/// The file at `path` under `assets/` (no leading slash), if there is one.
pub fn asset(path: &str) -> Option<Asset> {
    let file = Assets::get(path)?;
    let hash = file.metadata.sha256_hash();
    let mut etag = String::with_capacity(2 + hash.len() * 2);
    etag.push('"');
    for byte in hash {
        etag.push_str(&format!("{byte:02x}"));
    }
    etag.push('"');
    Some(Asset {
        body: file.data,
        content_type: content_type(path),
        etag,
    })
}

/// The media type of a file by its extension: the handful of kinds `assets/` holds.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_module_the_index_names_is_embedded() {
        let index = String::from_utf8(index().body.into_owned()).unwrap();
        for needed in ["css/app.css", "js/app.js", "vendor/uPlot.min.css"] {
            assert!(index.contains(needed), "index.html links {needed}");
            assert!(asset(needed).is_some(), "{needed} is embedded");
        }
        assert_eq!(
            asset("js/app.js").unwrap().content_type,
            "text/javascript; charset=utf-8"
        );
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn the_server_knows_the_pages_the_router_shows() {
        let app = String::from_utf8(asset("js/app.js").unwrap().body.into_owned()).unwrap();
        let line = app.lines().find(|l| l.starts_with("const PAGES = {")).unwrap();
        let names: Vec<&str> = line
            .trim_start_matches("const PAGES = {")
            .trim_end_matches("};")
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(names, PAGES);
    }
}
