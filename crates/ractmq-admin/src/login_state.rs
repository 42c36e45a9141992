//! What logging in to the API keeps: the session tokens `POST /api/v1/login` hands out, and the failed
//! attempts. It exists so that a dashboard in a browser can hold a token that expires and can be revoked,
//! instead of the node's `--api-token` or a user's password.
//!
//! Tokens are 32 random bytes, kept in memory only: a restart of the node logs everyone out. At most
//! [`MAX_TOKENS`] are held (a new one evicts the least recently used), and one unused for [`IDLE`] is
//! forgotten; each use starts its idle time again. Checking a token compares it with every token held, in
//! constant time, so the answer's timing says nothing about how much of a guess matched.
//!
//! Failed logins are counted, and past [`MAX_FAILURES`] within [`FAILURE_WINDOW`] every login is refused
//! until the window ends: a guesser gets 20 tries a minute, not thousands. The node's token and basic
//! credentials keep working meanwhile, so an attack on the login form locks nobody out of `ractmq ctl`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::Mutex;
use ractmq_protocol::log_limit::LogLimit;

/// The most session tokens held at once.
pub const MAX_TOKENS: usize = 1_000;

/// How long a session token lives without being used.
pub const IDLE: Duration = Duration::from_secs(3600);

/// Failed logins allowed per window before every login is refused until the window ends.
pub const MAX_FAILURES: u32 = 20;

/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The API's logins: tokens held and failures counted (see the module doc).
#[derive(Default)]
pub struct LoginState {
    tokens: Mutex<Vec<Held>>,
    failures: Mutex<Failures>,
    /// Failed logins since the node started.
    pub failed: AtomicU64,
    /// Failed logins are logged a few per window; a flood is counted in the next line.
    pub log: LogLimit,
}

struct Held {
    token: String,
    user: String,
    last_used: Instant,
}

#[derive(Default)]
struct Failures {
    started: Option<Instant>,
    count: u32,
}

impl LoginState {
    /// A new session token for `user`.
    pub fn issue(&self, user: &str, now: Instant) -> Result<String, String> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness for a session token: {e}"))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut held = self.tokens.lock();
        held.retain(|h| fresh(h, now));
        if held.len() >= MAX_TOKENS {
            let oldest = (held.iter().enumerate())
                .min_by_key(|(_, h)| h.last_used)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                held.swap_remove(i);
            }
        }
        held.push(Held {
            token: token.clone(),
            user: user.to_string(),
            last_used: now,
        });
        Ok(token)
    }

    /// The user `token` was issued to, if it is held and was used within [`IDLE`]; its idle time starts
    /// again.
    pub fn check(&self, token: &str, now: Instant) -> Option<String> {
        let mut held = self.tokens.lock();
        // No early exit: every token is compared whatever matched before.
        let mut found = None;
        for (i, h) in held.iter().enumerate() {
            if constant_time_eq(&h.token, token) & fresh(h, now) {
                found = Some(i);
            }
        }
        let h = &mut held[found?];
        h.last_used = now;
        Some(h.user.clone())
    }

    /// Forget `token`; false if it was not held.
    pub fn revoke(&self, token: &str) -> bool {
        let mut held = self.tokens.lock();
        let before = held.len();
        held.retain(|h| !constant_time_eq(&h.token, token));
        held.len() != before
    }

    /// While logins are refused after too many failures: how long until they are taken again.
    pub fn locked_for(&self, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock();
        let started = failures.started?;
        let left = FAILURE_WINDOW.checked_sub(now.saturating_duration_since(started))?;
        (failures.count >= MAX_FAILURES && !left.is_zero()).then_some(left)
    }

    /// Count a failed login.
    pub fn failed(&self, now: Instant) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock();
        if failures
            .started
            .is_none_or(|s| now.saturating_duration_since(s) >= FAILURE_WINDOW)
        {
            *failures = Failures {
                started: Some(now),
                count: 0,
            };
        }
        failures.count = failures.count.saturating_add(1);
    }
}

fn fresh(held: &Held, now: Instant) -> bool {
    now.saturating_duration_since(held.last_used) < IDLE
}

/// Compare secrets without leaking, through timing, how much matched (only whether the lengths differ).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_until_idle_or_revoked() {
        let logins = LoginState::default();
        let t0 = Instant::now();
        let token = logins.issue("ops", t0).unwrap();
        assert_eq!(token.len(), 43, "32 bytes, base64url without padding");
        assert_ne!(token, logins.issue("ops", t0).unwrap(), "random");
        assert_eq!(logins.check(&token, t0 + IDLE / 2).as_deref(), Some("ops"));
        // Sliding: used at IDLE/2, so it lives until IDLE/2 + IDLE.
        assert!(logins.check(&token, t0 + IDLE + IDLE / 4).is_some());
        assert!(logins.check(&token, t0 + 3 * IDLE).is_none(), "idle too long");
        let other = logins.issue("ops", t0).unwrap();
        assert!(logins.revoke(&other));
        assert!(logins.check(&other, t0).is_none());
        assert!(!logins.revoke(&other));
        assert!(logins.check("", t0).is_none());
    }

    #[test]
    fn the_least_recently_used_token_goes_first() {
        let logins = LoginState::default();
        let t0 = Instant::now();
        let first = logins.issue("a", t0).unwrap();
        let second = logins.issue("b", t0 + Duration::from_secs(1)).unwrap();
        assert!(logins.check(&first, t0 + Duration::from_secs(2)).is_some());
        for i in 0..MAX_TOKENS - 1 {
            logins.issue("c", t0 + Duration::from_secs(3 + i as u64)).unwrap();
        }
        assert_eq!(logins.tokens.lock().len(), MAX_TOKENS);
        let now = t0 + Duration::from_secs(MAX_TOKENS as u64 + 3);
        assert!(logins.check(&first, now).is_some(), "used recently, kept");
        assert!(logins.check(&second, now).is_none(), "least recently used, evicted");
    }

    #[test]
    fn too_many_failures_lock_logins_for_the_rest_of_the_window() {
        let logins = LoginState::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            logins.failed(t0);
        }
        assert_eq!(logins.locked_for(t0), None);
        logins.failed(t0 + Duration::from_secs(10));
        assert_eq!(
            logins.locked_for(t0 + Duration::from_secs(20)),
            Some(FAILURE_WINDOW - Duration::from_secs(20))
        );
        assert_eq!(logins.locked_for(t0 + FAILURE_WINDOW), None, "the window ended");
        assert_eq!(logins.failed.load(Ordering::Relaxed), MAX_FAILURES as u64);
    }
}
