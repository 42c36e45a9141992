//! One connection's side of authorization by an HTTP service (EMQX's HTTP authorizer): the service's answers
//! for this client, cached for a while as EMQX caches them, and read synchronously by the protocol core.
//!
//! The core asks its authorizer synchronously, on the session's task, and a service can only be asked
//! asynchronously. So before the broker hands a batch of packets (or a will) to the core it calls
//! [`ClientAuthz::begin`], lists the questions the core will ask that the client's answers do not cover
//! ([`ClientAuthz::knows`]), has those asked with [`ClientAuthz::fetch`] (concurrently, a few at a time for one
//! client, within the source's bound on requests in flight and its timeout), and only then lets the core run;
//! the core's authorizer reads [`ClientAuthz::answer`]. [`ClientAuthz::settle`] ends the batch and keeps the
//! fetched answers in the cache.
//!
//! From `begin` to `settle` nothing expires and nothing is evicted, so every answer `knows` found is the one
//! `answer` returns, however long the fetch took and however many topics the batch holds. A question nobody
//! listed (the caller missed one) is answered as an error is: by [`OnError`](crate::http_auth::OnError).
//!
//! The cache holds at most `authz_cache_per_client` answers for `cache_ttl` each (the oldest makes room), and
//! only for topics up to 256 bytes, so a client's cache stays a few KiB whatever it sends; errors are never
//! cached.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractmq_codec::QoS;
use tokio::task::JoinSet;

use crate::client::ClientInfo;
use crate::http_auth::{Action, AuthzAnswer, HttpAuthSource, Question};

/// Requests one client has open at once while a batch is fetched: a client with a batch of many new topics
/// takes a few of the source's slots, not all of them.
pub const FETCH_CONCURRENCY: usize = 8;

/// Topics longer than this are asked every time, never cached.
const MAX_CACHED_TOPIC: usize = 256;

/// A question the core will ask, owned, to fetch its answer on another task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthzRequest {
    /// Publish or subscribe.
    pub action: Action,
    /// The topic name, or the filter without `$share/GROUP/`.
    pub topic: String,
    /// The QoS of the publish, or the subscription's granted at most.
    pub qos: QoS,
    /// The publish's RETAIN flag; false for a subscribe.
    pub retain: bool,
}

impl AuthzRequest {
    /// The question this request asks.
    pub fn question(&self) -> Question<'_> {
        Question {
            action: self.action,
            topic: &self.topic,
            qos: self.qos,
            retain: self.retain,
        }
    }
}

impl From<Question<'_>> for AuthzRequest {
    fn from(q: Question<'_>) -> Self {
        AuthzRequest {
            action: q.action,
            topic: q.topic.to_string(),
            qos: q.qos,
            retain: q.retain,
        }
    }
}

/// One client's answers from the HTTP authorization service. Share it as `Arc<ClientAuthz>`.
pub struct ClientAuthz {
    source: Arc<HttpAuthSource>,
    client: ClientInfo,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// At most `authz_cache_per_client` answers.
    cache: Vec<Cached>,
    /// The answers fetched for the work in hand, by topic.
    fetched: HashMap<Box<str>, Vec<Fetched>>,
    /// The work in hand began at this time: cached answers count as fresh as of then.
    as_of: Option<Instant>,
}

struct Cached {
    key: u8,
    topic: Box<str>,
    at: Instant,
    answer: AuthzAnswer,
}

struct Fetched {
    key: u8,
    answer: AuthzAnswer,
    /// The service answered (an error is not cached).
    keep: bool,
}

/// Action, QoS and retain packed in one byte.
fn key(q: &Question<'_>) -> u8 {
    (q.action == Action::Publish) as u8 | (q.retain as u8) << 1 | (q.qos as u8) << 2
}

impl fmt::Debug for ClientAuthz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("ClientAuthz")
            .field("client_id", &self.client.client_id)
            .field("cached", &state.cache.len())
            .field("fetched", &state.fetched.len())
            .finish_non_exhaustive()
    }
}

impl ClientAuthz {
    /// `client`'s answers from `source`, none yet.
    pub fn new(source: Arc<HttpAuthSource>, client: ClientInfo) -> ClientAuthz {
        ClientAuthz {
            source,
            client,
            state: Mutex::new(State::default()),
        }
    }

    /// Work begins (a batch, a will) at `now`: answers cached now stay good until [`ClientAuthz::settle`].
    /// Answers fetched for earlier work that was not settled (a fetch the core has not used yet) are kept.
    pub fn begin(&self, now: Instant) {
        self.state.lock().as_of = Some(now);
    }

    /// Whether the answer to `question` is at hand (fetched for this work, or cached and fresh).
    pub fn knows(&self, question: Question<'_>) -> bool {
        self.lookup(&question).is_some()
    }

    /// The service's answer to `question`, from what was fetched or cached; a question nobody fetched counts
    /// as an error.
    pub fn answer(&self, question: Question<'_>) -> AuthzAnswer {
        self.lookup(&question).unwrap_or_else(|| {
            tracing::debug!(client_id = %self.client.client_id, topic = question.topic, "HTTP authorization answer not fetched");
            self.source.error_answer()
        })
    }

    fn lookup(&self, q: &Question<'_>) -> Option<AuthzAnswer> {
        let key = key(q);
        let state = self.state.lock();
        if let Some(fetched) = state.fetched.get(q.topic) {
            if let Some(f) = fetched.iter().find(|f| f.key == key) {
                return Some(f.answer);
            }
        }
        let ttl = self.source.config().cache_ttl;
        let now = state.as_of.unwrap_or_else(Instant::now);
        state
            .cache
            .iter()
            .find(|c| c.key == key && *c.topic == *q.topic)
            .filter(|c| now.saturating_duration_since(c.at) < ttl)
            .map(|c| c.answer)
    }

    /// Ask the service `requests` (distinct ones), [`FETCH_CONCURRENCY`] at a time, all within the source's
    /// timeout; what is not answered by then counts as an error. The answers are at hand until
    /// [`ClientAuthz::settle`].
    pub async fn fetch(self: Arc<Self>, requests: Vec<AuthzRequest>) {
        let timeout = self.source.config().timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let requests = Arc::new(requests);
        let mut answers: Vec<Option<AuthzAnswer>> = vec![None; requests.len()];
        let mut running = JoinSet::new();
        let mut next = 0;
        loop {
            while running.len() < FETCH_CONCURRENCY && next < requests.len() {
                let (this, requests, i) = (self.clone(), requests.clone(), next);
                running.spawn(async move { (i, this.source.ask_authz(&this.client, requests[i].question()).await) });
                next += 1;
            }
            match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(Some(Ok((i, answer)))) => answers[i] = answer,
                // A request that panicked stays unanswered.
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    let left = requests.len() - answers.iter().filter(|a| a.is_some()).count();
                    if let Some(left_out) = self.source.failure_logs.authz_timeout.check(Instant::now()) {
                        let more = ractmq_protocol::log_limit::more(left_out);
                        tracing::warn!(client_id = %self.client.client_id, left, "HTTP authorization: no answer within {timeout:?}{more}");
                    }
                    break;
                }
            }
        }
        let error = self.source.error_answer();
        let mut state = self.state.lock();
        for (request, answer) in requests.iter().zip(answers) {
            let fetched = Fetched {
                key: key(&request.question()),
                answer: answer.unwrap_or(error),
                keep: answer.is_some(),
            };
            let slot = state.fetched.entry(request.topic.as_str().into()).or_default();
            slot.retain(|f| f.key != fetched.key);
            slot.push(fetched);
        }
    }

    /// The work in hand is done: what was fetched goes into the cache (the oldest answers make room), and
    /// cached answers age again.
    pub fn settle(&self) {
        let config = self.source.config();
        let (ttl, capacity) = (config.cache_ttl, config.authz_cache_per_client);
        let mut state = self.state.lock();
        state.as_of = None;
        if state.fetched.is_empty() {
            return;
        }
        let fetched = std::mem::take(&mut state.fetched);
        if ttl.is_zero() || capacity == 0 {
            return;
        }
        let now = Instant::now();
        for (topic, answers) in fetched {
            if topic.len() > MAX_CACHED_TOPIC {
                continue;
            }
            for f in answers.into_iter().filter(|f| f.keep) {
                insert(&mut state.cache, capacity, ttl, now, f.key, &topic, f.answer);
            }
        }
    }
}

/// Put an answer in `cache`, replacing one for the same question, else in room made by dropping expired
/// answers, else the oldest.
fn insert(
    cache: &mut Vec<Cached>,
    capacity: usize,
    ttl: Duration,
    now: Instant,
    key: u8,
    topic: &str,
    answer: AuthzAnswer,
) {
    if let Some(c) = cache.iter_mut().find(|c| c.key == key && *c.topic == *topic) {
        (c.at, c.answer) = (now, answer);
        return;
    }
    if cache.len() >= capacity {
        cache.retain(|c| now.saturating_duration_since(c.at) < ttl);
    }
    if cache.len() >= capacity {
        if let Some(oldest) = (0..cache.len()).min_by_key(|&i| cache[i].at) {
            cache.swap_remove(oldest);
        }
    }
    cache.push(Cached {
        key,
        topic: topic.into(),
        at: now,
        answer,
    });
}

#[cfg(test)]
mod tests;
