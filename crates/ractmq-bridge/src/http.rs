//! The HTTP sink: delivers records to a web service (a webhook, an ingestion API) as HTTP requests, one
//! request per record or one per batch, so a bridge can feed services that speak neither MQTT nor Kafka.
//!
//! A [`HttpSink`] makes one attempt per [`HttpSink::send`]; the bridge retries, backs off, dead-letters and
//! bounds the requests in flight. The sink only says whether a failure may pass: 2xx is taken; 408, 429, 5xx,
//! timeouts and transport errors may pass; any other answer (4xx, and 3xx, since redirects are not followed:
//! a moved webhook is a configuration to fix, and following a 302 would turn a POST into a GET) will not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};

use crate::sink::SinkError;
use crate::template::{Part, Template};
use crate::Record;

/// How many bytes of a refusing response's body its [`SinkError`] quotes.
const QUOTED_BODY_BYTES: usize = 200;

/// How much of a successful response's body is read (so the connection can be kept) before it is dropped.
const DRAINED_BODY_BYTES: usize = 64 * 1024;

/// The configuration of an HTTP sink (the bridge that uses it holds its name).
///
/// Every field but `url` has a default. The body a record is sent as is the `body` template filled from it,
/// or, without one, a JSON object:
///
/// ```json
/// {"topic": "sensors/1", "payload": "21.5", "qos": 1, "retain": false, "timestamp": 1700000000000,
///  "user_properties": [["site", "north"]]}
/// ```
///
/// where `payload` is the payload as a string when it is valid UTF-8; when it is not, the key is
/// `payload_base64` instead and the value its standard base64 (with padding), so no byte is lost or replaced.
/// `timestamp` is in milliseconds since the Unix epoch. `user_properties` is a list of `[key, value]` pairs in
/// the order they were published, since MQTT allows a key more than once.
///
/// A `body` template's values are inserted as they are, not escaped (the body need not be JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where requests go: `http://` or `https://`, possibly a template (`http://host/hook/${topic}`). The
    /// values of its placeholders are percent-encoded, all but `/`, so a topic's levels become path segments.
    pub url: String,
    /// POST (the default), PUT, PATCH, GET or DELETE. The body is sent with each of them; set `body = ""` for
    /// none.
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers sent with every request. `content-type: application/json` unless a `content-type` is given.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body of a record, a template; without it, the JSON object described above.
    #[serde(default)]
    pub body: Option<String>,
    /// How long one request may take, from connecting to the end of the response, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Records per request. Above 1 a request's body is a JSON array of the records' bodies (each one as it
    /// is when it is JSON, as a JSON string when not), and its URL is rendered from its first record: the
    /// bridge batches only records whose [`HttpSink::url_for`] is the same.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Requests in flight at most (the bridge enforces it).
    #[serde(default = "default_max_inflight")]
    pub max_inflight: usize,
    /// Retries of a retryable failure before the batch is dead-lettered (the bridge does them).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first backoff between retries, in milliseconds (the bridge does them).
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
}

fn default_method() -> String {
    "POST".to_string()
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_batch_size() -> usize {
    1
}
fn default_max_inflight() -> usize {
    16
}
fn default_retries() -> u32 {
    3
}
fn default_retry_backoff_ms() -> u64 {
    200
}

impl Default for HttpConfig {
    /// The defaults, with an empty `url` (which [`HttpSink::new`] refuses: set it).
    fn default() -> HttpConfig {
        HttpConfig {
            url: String::new(),
            method: default_method(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: default_timeout_ms(),
            batch_size: default_batch_size(),
            max_inflight: default_max_inflight(),
            retries: default_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
        }
    }
}

/// An HTTP sink. Cloning it is cheap and the clones share one connection pool, so several sends can run at
/// once.
#[derive(Debug, Clone)]
pub struct HttpSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: Template,
    method: Method,
    body: Option<Template>,
    batched: bool,
    timeout: Duration,
    client: reqwest::Client,
}

impl HttpSink {
    /// Check `config` and build the client; no request is made. An error is one line naming the setting.
    pub fn new(config: &HttpConfig) -> Result<HttpSink, String> {
        let url = Template::parse(&config.url).map_err(|e| format!("url: {e}"))?;
        // The URL is checked with `x` for each placeholder: what is wrong with it then is wrong for every record.
        let sample: String = url
            .parts()
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Field(_) => "x",
            })
            .collect();
        parse_url(&sample).map_err(|e| format!("url {:?}: {e}", config.url))?;
        let method = match config.method.to_ascii_uppercase().as_str() {
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "GET" => Method::GET,
            "DELETE" => Method::DELETE,
            _ => {
                return Err(format!(
                    "method {:?}: not one of POST, PUT, PATCH, GET, DELETE",
                    config.method
                ))
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header {name:?}: bad name"))?;
            let value = HeaderValue::from_str(value).map_err(|_| format!("header {name:?}: bad value {value:?}"))?;
            headers.insert(header, value);
        }
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let body = match &config.body {
            Some(text) => Some(Template::parse(text).map_err(|e| format!("body: {e}"))?),
            None => None,
        };
        if config.timeout_ms == 0 {
            return Err("timeout_ms: must be above 0".to_string());
        }
        if config.batch_size == 0 {
            return Err("batch_size: must be at least 1".to_string());
        }
        if config.max_inflight == 0 {
            return Err("max_inflight: must be at least 1".to_string());
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {}", crate::sink::error_chain(&e)))?;
        Ok(HttpSink {
            inner: Arc::new(Inner {
                url,
                method,
                body,
                batched: config.batch_size > 1,
                timeout,
                client,
            }),
        })
    }

    /// The URL `record` is sent to. Records are batched together only when theirs is the same.
    pub fn url_for(&self, record: &Record) -> String {
        render_url(&self.inner.url, record)
    }

    /// The body of `batch`: the record's body alone when the sink does not batch (`batch_size` 1) and the
    /// batch has one record, otherwise a JSON array of the records' bodies.
    fn body_for(&self, batch: &[Record]) -> String {
        if !self.inner.batched && batch.len() == 1 {
            return self.record_body(&batch[0]);
        }
        let mut out = String::from("[");
        for (i, record) in batch.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let body = self.record_body(record);
            if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
                out.push_str(&body);
            } else {
                out.push_str(&serde_json::Value::String(body).to_string());
            }
        }
        out.push(']');
        out
    }

    fn record_body(&self, record: &Record) -> String {
        match &self.inner.body {
            Some(template) => template.render(record),
            None => default_body(record),
        }
    }

    /// Send `batch` in one request to the URL of its first record: one attempt, no retry. An empty batch is
    /// taken without a request.
    pub async fn send(&self, batch: &[Record]) -> Result<(), SinkError> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let inner = &self.inner;
        let url_text = self.url_for(first);
        let url = parse_url(&url_text).map_err(|e| SinkError::fatal(format!("URL {url_text:?}: {e}")))?;
        // Failures are reported with the URL but never its password (the reason goes into dead letters).
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let what = format!("{} {}", inner.method, shown);
        let mut response = inner
            .client
            .request(inner.method.clone(), url)
            .body(self.body_for(batch))
            .send()
            .await
            .map_err(|e| self.transport_error(&what, e))?;
        let status = response.status();
        if status.is_success() {
            // Read what the service answers (up to a limit), so the connection goes back to the pool.
            let mut read = 0;
            while read < DRAINED_BODY_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    Ok(None) | Err(_) => break,
                }
            }
            return Ok(());
        }
        let mut quoted = Vec::new();
        while quoted.len() < QUOTED_BODY_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => quoted.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        quoted.truncate(QUOTED_BODY_BYTES);
        let quoted: String = String::from_utf8_lossy(&quoted)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut reason = format!("{what}: HTTP {status}");
        if status.is_redirection() {
            if let Some(location) = response.headers().get(reqwest::header::LOCATION) {
                reason.push_str(&format!(" to {:?} (redirects are not followed)", location));
            }
        }
        if !quoted.trim().is_empty() {
            reason.push_str(&format!(": {}", quoted.trim()));
        }
        let retryable = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        Err(SinkError { reason, retryable })
    }

    fn transport_error(&self, what: &str, error: reqwest::Error) -> SinkError {
        if error.is_timeout() {
            return SinkError::retry(format!("{what}: timed out after {} ms", self.inner.timeout.as_millis()));
        }
        // `what` has the URL (without its password): the error need not repeat it.
        let error = error.without_url();
        let reason = format!("{what}: {}", crate::sink::error_chain(&error));
        if error.is_builder() {
            SinkError::fatal(reason)
        } else {
            SinkError::retry(reason)
        }
    }
}

/// The default body of a record (see [`HttpConfig`]), its keys in this order whatever serde_json's features.
fn default_body(record: &Record) -> String {
    let string = |text: &str| serde_json::Value::from(text).to_string();
    let mut out = format!("{{\"topic\":{}", string(&record.topic));
    match std::str::from_utf8(&record.payload) {
        Ok(text) => out.push_str(&format!(",\"payload\":{}", string(text))),
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&record.payload);
            out.push_str(&format!(",\"payload_base64\":{}", string(&encoded)));
        }
    }
    out.push_str(&format!(
        ",\"qos\":{},\"retain\":{},\"timestamp\":{},\"user_properties\":[",
        record.qos as u8, record.retain, record.timestamp_ms
    ));
    for (i, (key, value)) in record.user_properties.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("[{},{}]", string(key), string(value)));
    }
    out.push_str("]}");
    out
}

/// `template` filled from `record`, each value percent-encoded but for `/` and unreserved characters.
fn render_url(template: &Template, record: &Record) -> String {
    let mut out = String::new();
    let mut value = String::new();
    for part in template.parts() {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Field(field) => {
                value.clear();
                field.value(record).write_text(&mut value);
                for byte in value.bytes() {
                    if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
                        out.push(byte as char);
                    } else {
                        out.push_str(&format!("%{byte:02X}"));
                    }
                }
            }
        }
    }
    out
}

fn parse_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}
