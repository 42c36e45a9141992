//! Who may connect to this node and what they may do: the authentication chain (the built-in user database
//! first, then the configured sources), the ACL file, the banned list, flapping detection and failed-login
//! throttling, over the rules of the `ractmq-auth` crate.
//!
//! The listener asks once per CONNECT, after the spec's checks: [`Security::screen`] (bans and flapping), then
//! [`Security::authenticate`] (or [`Security::access_after_exchange`] for enhanced authentication). The answer
//! carries the client's [`Authorizer`], which its channel asks on every PUBLISH, SUBSCRIBE filter and will. An
//! ACL reload reaches connected clients too: each client's authorizer recompiles its rules on its next check
//! after the reload, and nobody is disconnected.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use ractmq_auth::acl::{Acl, ClientAcl};
use ractmq_auth::authn::{AuthnChain, AuthnOutcome, AuthnSource, ConnectCredentials, DenyReason};
use ractmq_auth::banned::{Ban, BanError, BanTarget, BannedList};
use ractmq_auth::client::ClientInfo;
use ractmq_auth::flapping::{FlappingConfig, FlappingDetector};
use ractmq_auth::login_throttle::{LoginThrottle, ThrottleConfig};
use ractmq_auth::user_db::UserDb;
use ractmq_codec::{reason, QoS};
use ractmq_protocol::{Action, Authorizer, Verdict};
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
}

/// The ACL in force, and a number that changes with every reload so that connected clients recompile.
#[derive(Default)]
struct AclSlot {
    acl: ArcSwapOption<Acl>,
    generation: AtomicU64,
}

/// The node's security state; one per broker, in the kernel.
pub(crate) struct Security {
    users: Arc<UserDb>,
    chain: AuthnChain,
    acl_file: Option<PathBuf>,
    acl: Arc<AclSlot>,
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
            acl.acl
                .store(Some(Arc::new(Acl::load(path).map_err(|e| e.to_string())?)));
        }
        Ok(Security {
            users: db,
            chain,
            acl_file: config.acl_file.clone(),
            acl,
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
        if superuser {
            return Ok(Access {
                superuser,
                authorizer: None,
            });
        }
        if self.acl_file.is_none() && claims.is_none() {
            return Ok(Access {
                superuser,
                authorizer: None,
            });
        }
        let live = LiveAcl::new(self.acl.clone(), client.clone(), claims.cloned()).map_err(|why| {
            tracing::info!(client = %client.client_id, "refused: the ACL its credentials carry is not valid: {why}");
            reason::NOT_AUTHORIZED
        })?;
        Ok(Access {
            superuser,
            authorizer: Some(Arc::new(live)),
        })
    }

    /// Read the ACL file and the password files again. Connected clients use the new rules from their next
    /// request; a file that fails to parse leaves the old rules in force. Returns what was reloaded.
    pub(crate) fn reload(&self) -> Result<String, String> {
        let mut done = Vec::new();
        if let Some(path) = &self.acl_file {
            let acl = Acl::load(path).map_err(|e| e.to_string())?;
            let rules = acl.rules().len();
            self.acl.acl.store(Some(Arc::new(acl)));
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

    /// The bans in force.
    pub(crate) fn bans(&self) -> Vec<Ban> {
        let now = now_unix();
        let mut list = self.banned.lock();
        list.expire(now);
        list.list().into_iter().cloned().collect()
    }
}

/// One client's authorizer: its compiled ACL (JWT claims first, then the file), recompiled when the file is
/// reloaded. One connection's checks come from its own session task, so the lock is uncontended.
struct LiveAcl {
    slot: Arc<AclSlot>,
    client: ClientInfo,
    claims: Option<Value>,
    compiled: Mutex<Compiled>,
}

/// A client's rules as of one ACL generation, and its last answer: a publisher sends to the same topic again
/// and again, and repeating the answer costs one comparison instead of a cache lookup.
struct Compiled {
    generation: u64,
    acl: ClientAcl,
    last: Option<Last>,
}

struct Last {
    action: Action,
    qos: QoS,
    retain: bool,
    topic: String,
    verdict: Verdict,
}

impl LiveAcl {
    fn new(slot: Arc<AclSlot>, client: ClientInfo, claims: Option<Value>) -> Result<LiveAcl, String> {
        let generation = slot.generation.load(Ordering::Acquire);
        let compiled = compile(&slot, &client, claims.as_ref())?;
        Ok(LiveAcl {
            slot,
            client,
            claims,
            compiled: Mutex::new(Compiled {
                generation,
                acl: compiled,
                last: None,
            }),
        })
    }
}

fn compile(slot: &AclSlot, client: &ClientInfo, claims: Option<&Value>) -> Result<ClientAcl, String> {
    let file = slot.acl.load_full();
    ClientAcl::for_connection(file.as_deref(), client, false, claims)
}

impl Authorizer for LiveAcl {
    fn authorize(&self, action: Action, topic: &str, qos: QoS, retain: bool) -> Verdict {
        let generation = self.slot.generation.load(Ordering::Acquire);
        let mut compiled = self.compiled.lock();
        if compiled.generation != generation {
            // The claims compiled at CONNECT, so they compile again.
            if let Ok(acl) = compile(&self.slot, &self.client, self.claims.as_ref()) {
                *compiled = Compiled {
                    generation,
                    acl,
                    last: None,
                };
            }
        }
        if let Some(last) = &compiled.last {
            if last.action == action && last.qos == qos && last.retain == retain && last.topic == topic {
                return last.verdict;
            }
        }
        let verdict = compiled.acl.authorize(action, topic, qos, retain);
        // Topics longer than this are not remembered (a client could make the copy costly).
        if topic.len() <= 256 {
            let last = compiled.last.get_or_insert_with(|| Last {
                action,
                qos,
                retain,
                topic: String::new(),
                verdict,
            });
            (last.action, last.qos, last.retain, last.verdict) = (action, qos, retain, verdict);
            last.topic.clear();
            last.topic.push_str(topic);
        }
        verdict
    }
}
