//! Who may connect to this node and what they may do: the authentication chain (the built-in user database
//! first, then the configured sources), the ACL file, the banned list, flapping detection and failed-login
//! throttling, over the rules of the `ractmq-auth` crate.
//!
//! The listener asks once per CONNECT, after the spec's checks: [`Security::screen`] (bans and flapping), then
//! [`Security::authenticate`] (or [`Security::access_after_exchange`] for enhanced authentication). The answer
//! carries the client's [`Authorizer`], which its channel asks on every PUBLISH, SUBSCRIBE filter and will. An
//! ACL reload reaches connected clients too: each client's authorizer recompiles its rules on its next check
//! after the reload, and nobody is disconnected.
//!
//! Authorization asks the JWT claims, then the ACL file, then an HTTP service for what they leave undecided
//! (EMQX's HTTP authorizer); what nobody decides gets the ACL's no-match answer (allow without an ACL file).
//! The channel asks synchronously, so the service's answers are fetched before: [`LiveAcl::fetch_missing`],
//! called by the session actor before each batch and by the listener for the will.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use ractmq_auth::acl::{Acl, ClientAcl, Decision, DenyAction, Format, Permission, Settings};
use ractmq_auth::authn::{AuthnChain, AuthnOutcome, AuthnSource, ConnectCredentials, DenyReason};
use ractmq_auth::banned::{Ban, BanError, BanTarget, BannedList};
use ractmq_auth::client::ClientInfo;
use ractmq_auth::flapping::{FlappingConfig, FlappingDetector};
use ractmq_auth::http_auth::{AuthzAnswer, HttpAuthSource};
use ractmq_auth::http_authz::{AuthzRequest, ClientAuthz};
use ractmq_auth::login_throttle::{LoginThrottle, ThrottleConfig};
use ractmq_auth::user_db::UserDb;
use ractmq_codec::{reason, QoS};
use ractmq_protocol::authz::is_sys_topic;
use ractmq_protocol::{Action, Authorizer, Question, Verdict};
use serde_json::Value;

use crate::metrics::Metrics;

/// How the node decides who connects and what they may do.
#[derive(Clone, Default)]
pub struct SecurityConfig {
    /// Authentication sources asked after the built-in user database, in order (a Mosquitto password file,
    /// JWT, an HTTP service).
    pub sources: Vec<AuthnSource>,
    /// The built-in user database's file; `None`: `users.json` in the data dir on a node with one, else in memory
    /// (users added at run time are then gone at a restart).
    pub user_db: Option<PathBuf>,
    /// Accept clients that send neither user name nor password. `None`: yes, unless a source is configured or
    /// the built-in database has users at start.
    pub allow_anonymous: Option<bool>,
    /// The ACL file (Mosquitto's `acl_file` format or the native TOML one); `None`: every client may publish
    /// and subscribe to anything but `$SYS`.
    pub acl_file: Option<PathBuf>,
    /// An HTTP service (its `authz_url`) asked what the JWT claims and the ACL file leave undecided, as EMQX's
    /// HTTP authorizer; its *ignore* leaves the ACL's no-match answer. `None`: no such service.
    pub http_authz: Option<Arc<HttpAuthSource>>,
    /// Flapping detection; `None`: off, as in EMQX.
    pub flapping: Option<FlappingConfig>,
    /// Failed-login throttling.
    pub login_throttle: ThrottleConfig,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<&str> = self.sources.iter().map(|s| s.kind()).collect();
        f.debug_struct("SecurityConfig")
            .field("sources", &sources)
            .field("user_db", &self.user_db)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("acl_file", &self.acl_file)
            .field("http_authz", &self.http_authz)
            .field("flapping", &self.flapping.is_some())
            .finish_non_exhaustive()
    }
}

/// What an admitted client may do.
pub(crate) struct Access {
    /// Skips authorization (`$SYS` stays read-only) and may take over any session.
    pub(crate) superuser: bool,
    /// Asked on every PUBLISH and SUBSCRIBE; `None`: everything allowed (but `$SYS`).
    pub(crate) authorizer: Option<Arc<dyn Authorizer>>,
    /// The same authorizer when it asks an HTTP service: its answers are fetched before the channel asks.
    pub(crate) http_authz: Option<Arc<LiveAcl>>,
}

/// The ACL in force, and a number that changes with every reload so that connected clients recompile.
#[derive(Default)]
struct AclSlot {
    acl: ArcSwapOption<Acl>,
    generation: AtomicU64,
    /// The format the file in force was read as, for operators.
    format: Mutex<Option<Format>>,
}

/// The ACL in force as operators see it (`GET /api/v1/acl`).
#[derive(Debug, Clone)]
pub struct AclInForce {
    /// The ACL file, if one is configured.
    pub file: Option<PathBuf>,
    /// The format the file was read as.
    pub format: Option<Format>,
    /// Its rules and settings as last loaded (cheap to clone).
    pub acl: Option<Acl>,
    /// An HTTP service is asked what the ACL leaves undecided.
    pub http_authz: bool,
    /// Clients may carry ACL rules in their JWT (a JWT source is configured).
    pub jwt_claims: bool,
}

/// The node's security state; one per broker, in the kernel.
pub(crate) struct Security {
    users: Arc<UserDb>,
    chain: AuthnChain,
    acl_file: Option<PathBuf>,
    acl: Arc<AclSlot>,
    http_authz: Option<Arc<HttpAuthSource>>,
    banned: Mutex<BannedList>,
    /// Where bans are kept across restarts, on a node with a store (see `durable.rs`).
    disk: std::sync::OnceLock<ractmq_store::Store>,
    flapping: Option<Mutex<FlappingDetector>>,
    throttle: Mutex<LoginThrottle>,
    /// Clients authenticate here: a session belongs to the user that created it.
    owned_sessions: bool,
    metrics: Arc<Metrics>,
}

/// The store's space for bans (see `durable.rs`).
pub(crate) const BANS: &str = "bans";

/// Seconds since the Unix epoch: bans and trackers count in wall-clock seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Security {
    /// Open the user database and read the ACL file. `users` (name, password) from the command line are added
    /// to the database when missing. Errors are one line naming the file.
    pub(crate) fn new(
        config: &SecurityConfig,
        users: &std::collections::HashMap<String, String>,
        metrics: Arc<Metrics>,
    ) -> Result<Security, String> {
        let db = match &config.user_db {
            Some(path) => UserDb::open(path).map_err(|e| format!("--user-db: {e}"))?,
            None => UserDb::in_memory(),
        };
        for (name, password) in users {
            if db.get(name).is_some() {
                continue;
            }
            // A hash (`$argon2id$...`, `$7$...` from mosquitto_passwd, bcrypt, PBKDF2) keeps the password out of
            // the configuration; anything else is a password, hashed now.
            let added = if password.starts_with('$') && ractmq_auth::password::scheme(password).is_ok() {
                db.import(name, password, false)
            } else {
                db.add(name, password.as_bytes(), false)
            };
            added.map_err(|e| format!("--user {name}: {e}"))?;
        }
        let db = Arc::new(db);
        let configured = !config.sources.is_empty() || !db.is_empty();
        let allow_anonymous = config.allow_anonymous.unwrap_or(!configured);
        let mut sources = vec![AuthnSource::BuiltIn(db.clone())];
        sources.extend(config.sources.iter().cloned());
        let chain = AuthnChain::new(sources).with_allow_anonymous(allow_anonymous);
        let acl = Arc::new(AclSlot::default());
        if let Some(path) = &config.acl_file {
            let (loaded, format) = Acl::load_detected(path).map_err(|e| e.to_string())?;
            acl.acl.store(Some(Arc::new(loaded)));
            *acl.format.lock() = Some(format);
        }
        Ok(Security {
            users: db,
            chain,
            acl_file: config.acl_file.clone(),
            acl,
            http_authz: config.http_authz.clone().filter(|h| h.authorizes()),
            banned: Mutex::new(BannedList::default()),
            disk: std::sync::OnceLock::new(),
            flapping: config.flapping.map(|c| Mutex::new(FlappingDetector::new(c))),
            throttle: Mutex::new(LoginThrottle::new(config.login_throttle)),
            owned_sessions: configured || !allow_anonymous,
            metrics,
        })
    }

    /// The built-in user database.
    pub(crate) fn users(&self) -> &Arc<UserDb> {
        &self.users
    }

    /// Do sessions belong to the user that created them (clients authenticate on this node)?
    pub(crate) fn owned_sessions(&self) -> bool {
        self.owned_sessions
    }

    /// Bans and flapping, before any credential is looked at: `Err(BANNED)` for a client a ban holds for, or
    /// that just connected too often.
    pub(crate) fn screen(&self, client: &ClientInfo) -> Result<(), u8> {
        let now = now_unix();
        if self.banned.lock().check(client, now).is_some() {
            Metrics::add(&self.metrics.refused_banned, 1);
            return Err(reason::BANNED);
        }
        let flapped = self
            .flapping
            .as_ref()
            .and_then(|f| f.lock().record(&client.client_id, now));
        if let Some(ban) = flapped {
            tracing::warn!(client = %client.client_id, "client id banned: {}", ban.reason);
            Metrics::add(&self.metrics.banned_flapping, 1);
            self.add_ban(ban);
            return Err(reason::BANNED);
        }
        Ok(())
    }

    /// Ask the authentication chain; a failure is throttled (the refusal waits, growing with repeated
    /// failures) and may ban the client id or address. `Err`: the CONNACK code.
    pub(crate) async fn authenticate(&self, client: &ClientInfo, password: Option<&[u8]>) -> Result<Access, u8> {
        let request = ConnectCredentials {
            client: client.clone(),
            password: password.map(<[u8]>::to_vec),
        };
        match self.chain.authenticate(&request).await {
            AuthnOutcome::Allowed { superuser, acl } => {
                self.throttle.lock().record_success(client);
                self.access(client, superuser, acl.as_ref())
            }
            AuthnOutcome::Denied(why) => {
                Metrics::add(&self.metrics.authn_failed, 1);
                let throttle = self.throttle.lock().record_failure(client, now_unix());
                if let Some(ban) = throttle.ban {
                    tracing::warn!(client = %client.client_id, peer = %client.peer, "banned after repeated failed logins: {}", ban.reason);
                    self.add_ban(ban);
                }
                if !throttle.delay.is_zero() {
                    tokio::time::sleep(throttle.delay).await;
                }
                Err(match why {
                    DenyReason::BadUsernameOrPassword => reason::BAD_USER_NAME_OR_PASSWORD,
                    DenyReason::NotAuthorized => reason::NOT_AUTHORIZED,
                })
            }
        }
    }

    /// What a client that proved to be `client.username` by enhanced authentication (SCRAM) or a verified TLS
    /// client certificate may do: as the
    /// built-in database says for that user.
    pub(crate) fn access_after_exchange(&self, client: &ClientInfo) -> Result<Access, u8> {
        let superuser = client
            .username
            .as_deref()
            .and_then(|u| self.users.get(u))
            .is_some_and(|u| u.superuser);
        self.access(client, superuser, None)
    }

    fn access(&self, client: &ClientInfo, superuser: bool, claims: Option<&Value>) -> Result<Access, u8> {
        let nobody_asked = self.acl_file.is_none() && claims.is_none() && self.http_authz.is_none();
        if superuser || nobody_asked {
            return Ok(Access {
                superuser,
                authorizer: None,
                http_authz: None,
            });
        }
        let http = self
            .http_authz
            .as_ref()
            .map(|source| ClientAuthz::new(source.clone(), client.clone()));
        let live = LiveAcl::new(self.acl.clone(), client.clone(), claims.cloned(), http).map_err(|why| {
            tracing::info!(client = %client.client_id, "refused: the ACL its credentials carry is not valid: {why}");
            reason::NOT_AUTHORIZED
        })?;
        let live = Arc::new(live);
        Ok(Access {
            superuser,
            http_authz: live.http.is_some().then(|| live.clone()),
            authorizer: Some(live),
        })
    }

    /// Read the ACL file and the password files again. Connected clients use the new rules from their next
    /// request; a file that fails to parse leaves the old rules in force. Returns what was reloaded.
    pub(crate) fn reload(&self) -> Result<String, String> {
        let mut done = Vec::new();
        if let Some(path) = &self.acl_file {
            let (acl, format) = Acl::load_detected(path).map_err(|e| e.to_string())?;
            let rules = acl.rules().len();
            self.acl.acl.store(Some(Arc::new(acl)));
            *self.acl.format.lock() = Some(format);
            self.acl.generation.fetch_add(1, Ordering::Release);
            done.push(format!("{}: {rules} rules", path.display()));
        }
        for source in &self.chain.sources {
            if let AuthnSource::PasswordFile(file) = source {
                file.reload().map_err(|e| e.to_string())?;
                let users = file.current().len();
                done.push(format!("{}: {users} users", file.current().path().display()));
            }
        }
        if done.is_empty() {
            return Ok("nothing to reload: no --acl-file or --password-file".into());
        }
        Ok(done.join("; "))
    }

    /// Ban `who` for `duration` (`None`: until deleted). Replaces a ban of the same target.
    pub(crate) fn ban(
        &self,
        who: BanTarget,
        duration: Option<Duration>,
        reason: String,
        by: String,
    ) -> Result<Ban, BanError> {
        let at = now_unix();
        let ban = Ban {
            who,
            reason,
            by,
            at,
            until: duration.map(|d| at + d.as_secs().max(1)),
        };
        self.banned.lock().add(ban.clone())?;
        self.keep_ban(&ban);
        Ok(ban)
    }

    /// Lift the ban of `who`; false if there was none.
    pub(crate) fn unban(&self, who: &BanTarget) -> bool {
        let lifted = self.banned.lock().delete(who).is_some();
        if let (true, Some(disk)) = (lifted, self.disk.get()) {
            let (kind, value) = who.name();
            disk.submit(ractmq_store::Op::Delete {
                space: BANS,
                key: format!("{kind}:{value}"),
            });
        }
        lifted
    }

    /// A ban the node made itself (flapping, failed logins).
    fn add_ban(&self, ban: Ban) {
        if self.banned.lock().add(ban.clone()).is_ok() {
            self.keep_ban(&ban);
        }
    }

    /// Write `ban` to the store, if the node has one; it comes back at the next start.
    fn keep_ban(&self, ban: &Ban) {
        if let Some(disk) = self.disk.get() {
            let (kind, value) = ban.who.name();
            disk.submit(ractmq_store::Op::Put {
                space: BANS,
                key: format!("{kind}:{value}"),
                value: serde_json::to_vec(ban).unwrap_or_default(),
            });
        }
    }

    /// Keep bans in `disk` from now on, and take back the ones it held (`(key, encoded ban)`); expired ones are
    /// dropped from it.
    pub(crate) fn restore_bans<'a>(
        &self,
        disk: &ractmq_store::Store,
        saved: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) {
        let _ = self.disk.set(disk.clone());
        let now = now_unix();
        let mut list = self.banned.lock();
        for (key, value) in saved {
            match serde_json::from_slice::<Ban>(value) {
                Ok(ban) if ban.is_active(now) => {
                    let _ = list.add(ban);
                }
                _ => {
                    disk.submit(ractmq_store::Op::Delete {
                        space: BANS,
                        key: key.to_string(),
                    });
                }
            }
        }
    }

    /// The ACL in force, and what else authorizes clients.
    pub(crate) fn acl_in_force(&self) -> AclInForce {
        AclInForce {
            file: self.acl_file.clone(),
            format: *self.acl.format.lock(),
            acl: self.acl.acl.load_full().map(|a| (*a).clone()),
            http_authz: self.http_authz.is_some(),
            jwt_claims: (self.chain.sources.iter()).any(|s| matches!(s, AuthnSource::Jwt(_))),
        }
    }

    /// Flapping detection's settings and how many client ids it counts now; `None` when it is off.
    pub(crate) fn flapping(&self) -> Option<(FlappingConfig, usize)> {
        let detector = self.flapping.as_ref()?.lock();
        Some((detector.config(), detector.len()))
    }

    /// The bans in force.
    pub(crate) fn bans(&self) -> Vec<Ban> {
        let now = now_unix();
        let mut list = self.banned.lock();
        list.expire(now);
        list.list().into_iter().cloned().collect()
    }
}

/// One client's authorizer: its compiled ACL (JWT claims first, then the file), recompiled when the file is
/// reloaded, then the HTTP service's answers for what the ACL leaves undecided. One connection's checks come
/// from its own session task, so the lock is uncontended.
pub(crate) struct LiveAcl {
    slot: Arc<AclSlot>,
    client: ClientInfo,
    claims: Option<Value>,
    http: Option<Arc<ClientAuthz>>,
    compiled: Mutex<Compiled>,
}

/// A client's rules as of one ACL generation, and its last answer: a publisher sends to the same topic again
/// and again, and repeating the answer costs one comparison instead of a cache lookup.
struct Compiled {
    generation: u64,
    acl: ClientAcl,
    settings: Settings,
    last: Option<Last>,
}

/// The ACL's decision (not the HTTP service's, whose answers expire) for the last request.
struct Last {
    action: Action,
    qos: QoS,
    retain: bool,
    topic: String,
    decision: Decision,
}

/// Without an ACL file, a client that an HTTP service authorizes has rules that match nothing, and nothing
/// matching allows (as no ACL file does): the service is asked about everything its claims leave.
static NO_FILE: std::sync::LazyLock<Acl> = std::sync::LazyLock::new(|| {
    Acl::new(
        Vec::new(),
        Settings {
            no_match: Permission::Allow,
            deny_action: DenyAction::Ignore,
        },
    )
});

impl LiveAcl {
    fn new(
        slot: Arc<AclSlot>,
        client: ClientInfo,
        claims: Option<Value>,
        http: Option<ClientAuthz>,
    ) -> Result<LiveAcl, String> {
        let generation = slot.generation.load(Ordering::Acquire);
        let http = http.map(Arc::new);
        let acl = compile(&slot, &client, claims.as_ref(), http.is_some())?;
        Ok(LiveAcl {
            slot,
            client,
            claims,
            http,
            compiled: Mutex::new(Compiled {
                generation,
                settings: acl.settings(),
                acl,
                last: None,
            }),
        })
    }

    /// What the ACL (claims and file) decides about a request, and what follows when it decides nothing or
    /// denies.
    fn decide(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> (Decision, Settings) {
        let generation = self.slot.generation.load(Ordering::Acquire);
        let mut compiled = self.compiled.lock();
        if compiled.generation != generation {
            // The claims compiled at CONNECT, so they compile again.
            if let Ok(acl) = compile(&self.slot, &self.client, self.claims.as_ref(), self.http.is_some()) {
                *compiled = Compiled {
                    generation,
                    settings: acl.settings(),
                    acl,
                    last: None,
                };
            }
        }
        let settings = compiled.settings;
        if let Some(last) = &compiled.last {
            if last.action == action && last.qos == qos && last.retain == retain && last.topic == topic {
                return (last.decision, settings);
            }
        }
        let decision = compiled.acl.check(action, topic, qos as u8, retain);
        // Topics longer than this are not remembered (a client could make the copy costly).
        if topic.len() <= 256 {
            let last = compiled.last.get_or_insert_with(|| Last {
                action,
                qos,
                retain,
                topic: String::new(),
                decision,
            });
            (last.action, last.qos, last.retain, last.decision) = (action, qos, retain, decision);
            last.topic.clear();
            last.topic.push_str(topic);
        }
        (decision, settings)
    }

    /// Before the channel asks `questions` (a batch's, or the will's): the HTTP service's answers it will need
    /// and the client's cache lacks, fetched by the returned future; `None` when nothing is missing. Answers
    /// at hand now stay so until [`LiveAcl::settle`].
    pub(crate) fn fetch_missing(
        &self,
        questions: &[Question<'_>],
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let http = self.http.as_ref()?;
        http.begin(std::time::Instant::now());
        let mut seen = std::collections::HashSet::new();
        let mut missing: Vec<AuthzRequest> = Vec::new();
        for &q in questions {
            if q.action == Action::Publish && is_sys_topic(q.topic) {
                continue;
            }
            let (decision, _) = self.decide(q.action, q.topic, q.qos, q.retain);
            if decision == Decision::NoMatch && !http.knows(q) && seen.insert(q) {
                missing.push(q.into());
            }
        }
        (!missing.is_empty()).then(|| http.clone().fetch(missing))
    }

    /// The channel has asked what it needed: fetched answers go to the client's cache.
    pub(crate) fn settle(&self) {
        if let Some(http) = &self.http {
            http.settle();
        }
    }
}

fn compile(slot: &AclSlot, client: &ClientInfo, claims: Option<&Value>, http: bool) -> Result<ClientAcl, String> {
    let file = slot.acl.load_full();
    let file = match (file.as_deref(), http) {
        (None, true) => Some(&*NO_FILE),
        (file, _) => file,
    };
    ClientAcl::for_connection(file, client, false, claims)
}

impl Authorizer for LiveAcl {
    fn authorize(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict {
        let (mut decision, settings) = self.decide(action, topic, qos, retain);
        if let (Decision::NoMatch, Some(http)) = (decision, &self.http) {
            let question = Question {
                action,
                topic,
                qos,
                retain,
            };
            decision = match http.answer(question) {
                AuthzAnswer::Allow => Decision::Allow,
                AuthzAnswer::Deny => Decision::Deny,
                AuthzAnswer::Ignore => Decision::NoMatch,
            };
        }
        if decision.is_allowed(settings.no_match) {
            Verdict::Allow
        } else {
            match settings.deny_action {
                DenyAction::Ignore => Verdict::Deny,
                DenyAction::Disconnect => Verdict::DenyAndDisconnect,
            }
        }
    }
}
