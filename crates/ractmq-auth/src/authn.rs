//! The authentication chain: who may connect, asked of each configured source in turn, as in EMQX.
//!
//! A source answers [`SourceDecision::Allow`], [`SourceDecision::Deny`] or [`SourceDecision::Ignore`] ("not
//! mine, ask the next"); the first Allow or Deny decides. A client with neither user name nor password is
//! anonymous: it is let in if and only if the chain allows anonymous clients, without asking any source (and
//! refused as not authorized otherwise, as Mosquitto does). A
//! client that presented credentials that every source ignored is refused with "bad user name or password",
//! except by a chain with no sources that allows anonymous clients (a broker with no authentication set up
//! lets everyone in, as before sources existed).
//!
//! Checking a password hash costs milliseconds of CPU, so [`AuthnChain::authenticate`] runs those checks on
//! tokio's blocking pool (`spawn_blocking`), at most one per core at a time: it must be called from within a
//! tokio runtime, and never holds up the reactor.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::ClientInfo;
pub use crate::decision::{DenyReason, SourceDecision};
use crate::http_auth::HttpAuthSource;
use crate::jwt::JwtSource;
use crate::password_file::ReloadablePasswordFile;
use crate::user_db::UserDb;

/// What a client presented at CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectCredentials {
    /// Who the client is and where it connected.
    pub client: ClientInfo,
    /// The CONNECT password, if any (binary in MQTT 5).
    pub password: Option<Vec<u8>>,
}

impl ConnectCredentials {
    /// Neither user name nor password.
    pub fn is_anonymous(&self) -> bool {
        self.client.username.is_none() && self.password.is_none()
    }
}

/// The chain's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthnOutcome {
    /// Connect.
    Allowed {
        /// ACLs are skipped for this client.
        superuser: bool,
        /// Rules from the source that allowed the client.
        acl: Option<Value>,
    },
    /// Refuse with this reason.
    Denied(DenyReason),
}

/// A place that can vouch for a client.
#[derive(Clone)]
pub enum AuthnSource {
    /// The built-in user database (users added with `ractmq ctl users`).
    BuiltIn(Arc<UserDb>),
    /// A Mosquitto password file, reloadable while the broker runs.
    PasswordFile(Arc<ReloadablePasswordFile>),
    /// Signed tokens (JWT) in the password or the user name.
    Jwt(Arc<JwtSource>),
    /// An operator's HTTP service.
    Http(Arc<HttpAuthSource>),
}

impl AuthnSource {
    /// The source's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthnSource::BuiltIn(_) => "built-in database",
            AuthnSource::PasswordFile(_) => "password file",
            AuthnSource::Jwt(_) => "JWT",
            AuthnSource::Http(_) => "HTTP service",
        }
    }

    /// This source's answer for `req`.
    pub async fn authenticate(&self, req: &ConnectCredentials) -> SourceDecision {
        match self {
            AuthnSource::BuiltIn(db) => {
                let known = |user: &str| db.get(user).is_some();
                let db = db.clone();
                check_password(req, known, move |user, password| {
                    db.verify(user, password)
                        .map(|result| result.ok().map(|verified| verified.superuser))
                })
                .await
            }
            AuthnSource::PasswordFile(file) => {
                let file = file.current();
                let known = |user: &str| file.contains(user);
                let check_file = file.clone();
                check_password(req, known, move |user, password| {
                    check_file.verify(user, password).map(|ok| ok.then_some(false))
                })
                .await
            }
            // A signature check takes microseconds: no need for the blocking pool.
            AuthnSource::Jwt(jwt) => jwt.authenticate(&req.client, req.password.as_deref()),
            AuthnSource::Http(http) => http.authenticate(&req.client, req.password.as_deref()).await,
        }
    }
}

impl std::fmt::Debug for AuthnSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

/// Hash checks running at once, process-wide: one per core. Each takes a core and up to tens of MiB (argon2's
/// memory cost) for milliseconds, so a login storm queues here, cheaply, instead of filling tokio's blocking
/// pool (512 threads) and the memory with hash computations that only slow each other down.
fn hash_checks() -> &'static Semaphore {
    static CHECKS: OnceLock<Semaphore> = OnceLock::new();
    CHECKS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// The user-name-and-password sources. `check(user, password)` runs on the blocking pool and answers `None`
/// for an unknown user, `Some(None)` for a wrong password, `Some(Some(superuser))` for a match. A known user
/// who sent no password is refused: no password is not the same as an empty one.
async fn check_password<F>(req: &ConnectCredentials, known: impl Fn(&str) -> bool, check: F) -> SourceDecision
where
    F: FnOnce(&str, &[u8]) -> Option<Option<bool>> + Send + 'static,
{
    let Some(user) = req.client.username.clone() else {
        return SourceDecision::Ignore;
    };
    let Some(password) = req.password.clone() else {
        return if known(&user) {
            SourceDecision::Deny(DenyReason::BadUsernameOrPassword)
        } else {
            SourceDecision::Ignore
        };
    };
    // The semaphore is never closed; were it to be, checking without a permit is still correct.
    let _permit = hash_checks().acquire().await.ok();
    match tokio::task::spawn_blocking(move || check(&user, &password)).await {
        Ok(None) => SourceDecision::Ignore,
        Ok(Some(None)) => SourceDecision::Deny(DenyReason::BadUsernameOrPassword),
        Ok(Some(Some(superuser))) => SourceDecision::Allow { superuser, acl: None },
        Err(e) => {
            tracing::error!(error = %e, "password check failed; refusing the client");
            SourceDecision::Deny(DenyReason::NotAuthorized)
        }
    }
}

/// The configured sources, in order, and whether anonymous clients may connect.
#[derive(Debug, Clone)]
pub struct AuthnChain {
    /// Asked in order until one allows or denies.
    pub sources: Vec<AuthnSource>,
    /// Whether a client with neither user name nor password may connect.
    pub allow_anonymous: bool,
}

impl Default for AuthnChain {
    /// No sources, anonymous clients allowed: a broker with no authentication configured.
    fn default() -> Self {
        AuthnChain::new(Vec::new())
    }
}

impl AuthnChain {
    /// A chain of `sources`. Anonymous clients are allowed when there is no source and refused as soon as there
    /// is one; [`AuthnChain::with_allow_anonymous`] (the broker's `--allow-anonymous`) overrides that.
    pub fn new(sources: Vec<AuthnSource>) -> Self {
        let allow_anonymous = sources.is_empty();
        AuthnChain {
            sources,
            allow_anonymous,
        }
    }

    /// Set whether anonymous clients may connect, whatever the sources.
    pub fn with_allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// The verdict for a CONNECT.
    pub async fn authenticate(&self, req: &ConnectCredentials) -> AuthnOutcome {
        if req.is_anonymous() {
            return if self.allow_anonymous {
                AuthnOutcome::Allowed {
                    superuser: false,
                    acl: None,
                }
            } else {
                AuthnOutcome::Denied(DenyReason::NotAuthorized)
            };
        }
        for source in &self.sources {
            match source.authenticate(req).await {
                SourceDecision::Allow { superuser, acl } => {
                    tracing::debug!(client_id = %req.client.client_id, source = source.kind(), superuser, "authenticated");
                    return AuthnOutcome::Allowed { superuser, acl };
                }
                SourceDecision::Deny(reason) => {
                    tracing::debug!(client_id = %req.client.client_id, source = source.kind(), ?reason, "refused");
                    return AuthnOutcome::Denied(reason);
                }
                SourceDecision::Ignore => {}
            }
        }
        if self.sources.is_empty() && self.allow_anonymous {
            return AuthnOutcome::Allowed {
                superuser: false,
                acl: None,
            };
        }
        AuthnOutcome::Denied(DenyReason::BadUsernameOrPassword)
    }
}

#[cfg(test)]
mod tests;
