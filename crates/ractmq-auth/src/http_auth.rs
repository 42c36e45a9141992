//! Authentication and authorization by an operator's HTTP service, in EMQX's request and answer shapes.
//!
//! At CONNECT the broker POSTs `{"clientid", "username", "password", "peerhost", "listener"}` (user name and
//! password `null` when absent) to the authentication URL; before a publish or subscribe it POSTs
//! `{"clientid", "username", "peerhost", "listener", "action": "publish"|"subscribe", "topic", "qos", "retain"}`
//! to the authorization URL. The service answers 200 with `{"result": "allow"|"deny"|"ignore", "is_superuser":
//! bool, "acl": ...}` (only `result` is required), or 204 for a plain allow.
//!
//! Anything else — another status, a body that is not such JSON, no answer within the timeout — is an error,
//! answered as [`OnError`] says: by default *ignore*, as EMQX does, so that the next source decides (and, with
//! no source after this one, the client is refused anyway). Choose [`OnError::Deny`] to refuse outright when
//! the service is down even if a later source would accept.
//!
//! The service is protected from the broker: at most `max_in_flight` requests are open at once (a request
//! that cannot start within the timeout is an error). Authentication answers (allow, deny and ignore alike;
//! errors never) are cached here for `cache_ttl` under a digest of the request, the password included, so a
//! reconnect storm costs one request per distinct client. A password that is not UTF-8 cannot be put in JSON
//! text: such a client is ignored by this source. Authorization answers are cached per client, by the
//! client's [`ClientAuthz`](crate::http_authz::ClientAuthz), as EMQX caches them.

mod cache;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ractmq_protocol::log_limit::{more, LogLimit};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// What a client asks to do: the protocol core's own types, so the channel's question is passed on as is.
pub use ractmq_protocol::authz::{Action, Question};

use crate::client::ClientInfo;
use crate::decision::{DenyReason, SourceDecision};
use cache::TtlCache;

/// Answers larger than this are errors: a decision and an ACL fit in far less.
const MAX_BODY: usize = 64 * 1024;

/// What an error (status, timeout, bad answer) counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Let the next source decide (EMQX's behaviour). Authorization treats it as no match.
    #[default]
    Ignore,
    /// Refuse: CONNECT with "not authorized", the publish or subscribe with a deny.
    Deny,
}

/// Where the service is and how hard the broker may lean on it. [`HttpAuthConfig::default`] has no URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAuthConfig {
    /// Asked at CONNECT; `None`: this source ignores every client.
    pub authn_url: Option<String>,
    /// Asked before a publish or subscribe; `None`: every request is ignored.
    pub authz_url: Option<String>,
    /// Extra headers on every request (e.g. `Authorization` for the service).
    pub headers: BTreeMap<String, String>,
    /// How long one answer may take, waiting for a free slot included. Default 5 s.
    pub timeout: Duration,
    /// Requests open at once. Default 64.
    pub max_in_flight: usize,
    /// How long an answer is reused. Default 30 s; zero turns the caches off.
    pub cache_ttl: Duration,
    /// How many authentication answers are kept. Default 10 000; zero turns that cache off.
    pub cache_capacity: usize,
    /// How many authorization answers each client keeps (EMQX's `authorization.cache.max_size`). Default 32;
    /// zero turns that cache off.
    pub authz_cache_per_client: usize,
    /// What an error counts as. Default [`OnError::Ignore`].
    pub on_error: OnError,
}

impl Default for HttpAuthConfig {
    fn default() -> Self {
        HttpAuthConfig {
            authn_url: None,
            authz_url: None,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(5),
            max_in_flight: 64,
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 10_000,
            authz_cache_per_client: 32,
            on_error: OnError::Ignore,
        }
    }
}

/// Why the HTTP source could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuthError {
    /// A URL is not an `http://` or `https://` URL.
    InvalidUrl(String),
    /// A header name or value is not valid HTTP.
    InvalidHeader(String),
    /// `max_in_flight` is zero, which would refuse every request.
    NoRequestsAllowed,
    /// The HTTP client could not be built (TLS set-up).
    Client(String),
}

impl fmt::Display for HttpAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpAuthError::InvalidUrl(url) => write!(f, "not an http:// or https:// URL: {url:?}"),
            HttpAuthError::InvalidHeader(name) => write!(f, "invalid HTTP header {name:?}"),
            HttpAuthError::NoRequestsAllowed => write!(f, "max_in_flight must be at least 1"),
            HttpAuthError::Client(e) => write!(f, "cannot build the HTTP client: {e}"),
        }
    }
}

impl std::error::Error for HttpAuthError {}

/// The service's authorization answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzAnswer {
    /// The action is allowed.
    Allow,
    /// The action is refused.
    Deny,
    /// No opinion: the next authorization rule decides.
    Ignore,
}

/// The service's JSON answer.
#[derive(Deserialize)]
struct Answer {
    result: Verdict,
    #[serde(default)]
    is_superuser: bool,
    #[serde(default)]
    acl: Option<Value>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Allow,
    Deny,
    Ignore,
}

/// The HTTP source. Share it as `Arc<HttpAuthSource>`; it holds a connection pool.
pub struct HttpAuthSource {
    config: HttpAuthConfig,
    authn_url: Option<Url>,
    authz_url: Option<Url>,
    client: reqwest::Client,
    in_flight: Semaphore,
    authn_cache: TtlCache<SourceDecision>,
    /// A service down under a reconnect storm fails every request: its warnings are rate-limited, the rest
    /// counted in the next line.
    pub(crate) failure_logs: FailureLogs,
}

/// The rate limits of the source's warnings, one per kind.
#[derive(Debug, Default)]
pub(crate) struct FailureLogs {
    authn: LogLimit,
    authz: LogLimit,
    pub(crate) authz_timeout: LogLimit,
}

impl fmt::Debug for HttpAuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuthSource")
            .field("authn_url", &self.config.authn_url)
            .field("authz_url", &self.config.authz_url)
            .finish_non_exhaustive()
    }
}

impl HttpAuthSource {
    /// Check the configuration and build the client (no request is made).
    pub fn new(config: HttpAuthConfig) -> Result<HttpAuthSource, HttpAuthError> {
        let parse = |url: &Option<String>| -> Result<Option<Url>, HttpAuthError> {
            let Some(url) = url else { return Ok(None) };
            match Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Some(parsed)),
                _ => Err(HttpAuthError::InvalidUrl(url.clone())),
            }
        };
        let authn_url = parse(&config.authn_url)?;
        let authz_url = parse(&config.authz_url)?;
        if config.max_in_flight == 0 {
            return Err(HttpAuthError::NoRequestsAllowed);
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let invalid = || HttpAuthError::InvalidHeader(name.clone());
            let name_h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value_h = HeaderValue::from_str(value).map_err(|_| invalid())?;
            headers.insert(name_h, value_h);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| HttpAuthError::Client(e.to_string()))?;
        Ok(HttpAuthSource {
            authn_url,
            authz_url,
            client,
            in_flight: Semaphore::new(config.max_in_flight),
            authn_cache: TtlCache::new(config.cache_ttl, config.cache_capacity),
            failure_logs: FailureLogs::default(),
            config,
        })
    }

    /// Ask the service whether `client` may connect with `password`.
    pub async fn authenticate(&self, client: &ClientInfo, password: Option<&[u8]>) -> SourceDecision {
        let Some(url) = &self.authn_url else {
            return SourceDecision::Ignore;
        };
        let password = match password.map(std::str::from_utf8) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => return SourceDecision::Ignore,
        };
        let key = cache::key([
            b"authn".as_slice(),
            client.client_id.as_bytes(),
            optional(client.username.as_deref()),
            optional(password),
            client.peer.to_string().as_bytes(),
            client.listener.as_bytes(),
        ]);
        if let Some(cached) = self.authn_cache.get(&key) {
            return cached;
        }
        let body = json!({
            "clientid": client.client_id,
            "username": client.username,
            "password": password,
            "peerhost": client.peer.to_string(),
            "listener": client.listener,
        });
        match self.ask(url, &body).await {
            Ok(answer) => {
                let decision = match answer.result {
                    Verdict::Allow => SourceDecision::Allow {
                        superuser: answer.is_superuser,
                        acl: answer.acl,
                    },
                    Verdict::Deny => SourceDecision::Deny(DenyReason::NotAuthorized),
                    Verdict::Ignore => SourceDecision::Ignore,
                };
                self.authn_cache.insert(key, decision.clone());
                decision
            }
            Err(why) => {
                if let Some(left_out) = self.failure_logs.authn.check(std::time::Instant::now()) {
                    tracing::warn!(client_id = %client.client_id, why, "HTTP authentication failed{}", more(left_out));
                }
                match self.config.on_error {
                    OnError::Ignore => SourceDecision::Ignore,
                    OnError::Deny => SourceDecision::Deny(DenyReason::NotAuthorized),
                }
            }
        }
    }

    /// Whether an authorization URL is configured (without one every request is ignored).
    pub fn authorizes(&self) -> bool {
        self.authz_url.is_some()
    }

    /// The configuration the source was built with.
    pub fn config(&self) -> &HttpAuthConfig {
        &self.config
    }

    /// Ask the service whether `client` may do what `question` says, errors answered as [`OnError`] says. Not
    /// cached: a [`ClientAuthz`](crate::http_authz::ClientAuthz) keeps each client's answers.
    pub async fn authorize(&self, client: &ClientInfo, question: Question<'_>) -> AuthzAnswer {
        match self.ask_authz(client, question).await {
            Some(answer) => answer,
            None => self.error_answer(),
        }
    }

    /// What an authorization error counts as.
    pub(crate) fn error_answer(&self) -> AuthzAnswer {
        match self.config.on_error {
            OnError::Ignore => AuthzAnswer::Ignore,
            OnError::Deny => AuthzAnswer::Deny,
        }
    }

    /// The service's answer to `question`; `None` (logged) when it gave none that counts.
    pub(crate) async fn ask_authz(&self, client: &ClientInfo, question: Question<'_>) -> Option<AuthzAnswer> {
        let Some(url) = &self.authz_url else {
            return Some(AuthzAnswer::Ignore);
        };
        let body = json!({
            "clientid": client.client_id,
            "username": client.username,
            "peerhost": client.peer.to_string(),
            "listener": client.listener,
            "action": action_name(question.action),
            "topic": question.topic,
            "qos": question.qos as u8,
            "retain": question.retain,
        });
        match self.ask(url, &body).await {
            Ok(answer) => Some(match answer.result {
                Verdict::Allow => AuthzAnswer::Allow,
                Verdict::Deny => AuthzAnswer::Deny,
                Verdict::Ignore => AuthzAnswer::Ignore,
            }),
            Err(why) => {
                if let Some(left_out) = self.failure_logs.authz.check(std::time::Instant::now()) {
                    tracing::warn!(client_id = %client.client_id, topic = question.topic, why, "HTTP authorization failed{}", more(left_out));
                }
                None
            }
        }
    }

    /// One request, within the timeout from the moment it waits for a slot until its whole body is read.
    async fn ask(&self, url: &Url, body: &Value) -> Result<Answer, String> {
        let exchange = async {
            let _permit = self
                .in_flight
                .acquire()
                .await
                .map_err(|_| "the source is shutting down".to_string())?;
            let mut response = self
                .client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status();
            if status == StatusCode::NO_CONTENT {
                return Ok(Answer {
                    result: Verdict::Allow,
                    is_superuser: false,
                    acl: None,
                });
            }
            if status != StatusCode::OK {
                return Err(format!("status {status}"));
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
                if bytes.len() + chunk.len() > MAX_BODY {
                    return Err(format!("answer larger than {MAX_BODY} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            serde_json::from_slice::<Answer>(&bytes).map_err(|e| format!("answer is not {{\"result\": ...}}: {e}"))
        };
        match tokio::time::timeout(self.config.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
        }
    }
}

/// The `action` field of the authorization request.
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Publish => "publish",
        Action::Subscribe => "subscribe",
    }
}

/// An absent field digests differently from an empty one.
fn optional(field: Option<&str>) -> &[u8] {
    match field {
        Some(f) => f.as_bytes(),
        None => b"\xff",
    }
}

#[cfg(test)]
mod tests;
