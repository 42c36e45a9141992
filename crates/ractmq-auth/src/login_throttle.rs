//! Failed-login throttling: password guessing gets slower with every failure, then banned.
//!
//! Failures are counted per client id and per peer address, each in a window that starts at its first
//! failure. From the third failure on (by either count), the broker delays its refusal: 250 ms, then doubling,
//! capped at 4 s, so a client guessing one password at a time slows to a crawl while a user who mistyped
//! twice notices nothing. When a count reaches its limit within the window, the result carries a ban for the
//! banned list: by address (30 failures by default; an address may be a NAT in front of many honest clients,
//! hence the higher limit) or by client id (10). A successful login resets its client id's count, not its
//! address's: one valid account must not launder an address's failed guesses.
//!
//! Behind a proxy that hides client addresses, every client shares one address: turn the address limit off
//! (`max_failures_per_peer: None`) there. Memory is bounded: each count table keeps at most `max_tracked`
//! entries and evicts the least recently failed. Sans-IO: the caller passes `now` (unix seconds) and does
//! the waiting.

use std::net::IpAddr;
use std::time::Duration;

use hashlink::LruCache;
use ipnet::IpNet;

use crate::banned::{Ban, BanTarget};
use crate::client::ClientInfo;

/// How failures are slowed down and when they are banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures answered at once before delays begin (default 2).
    pub free_failures: u32,
    /// The first delay (default 250 ms); each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay (default 4 s).
    pub max_delay: Duration,
    /// The counting window, from a count's first failure (default 5 minutes).
    pub window: Duration,
    /// Failures of one client id within the window that ban it (default 10; `None`: never).
    pub max_failures_per_client: Option<u32>,
    /// Failures from one address within the window that ban it (default 30; `None`: never).
    pub max_failures_per_peer: Option<u32>,
    /// How long such a ban lasts (default 15 minutes).
    pub ban_time: Duration,
    /// The most client ids, and the most addresses, tracked at once (default 100,000 each).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            free_failures: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            window: Duration::from_secs(5 * 60),
            max_failures_per_client: Some(10),
            max_failures_per_peer: Some(30),
            ban_time: Duration::from_secs(15 * 60),
            max_tracked: 100_000,
        }
    }
}

/// What the broker does with a failed login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// How long to wait before sending the refusal.
    pub delay: Duration,
    /// A ban to add to the banned list, when this failure reached a limit.
    pub ban: Option<Ban>,
}

#[derive(Debug, Clone, Copy)]
struct Count {
    started: u64,
    failures: u32,
}

/// The failure counts.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    by_client: LruCache<String, Count>,
    by_peer: LruCache<IpAddr, Count>,
}

impl LoginThrottle {
    /// A throttle with `config`.
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        let cap = config.max_tracked.max(1);
        LoginThrottle {
            config,
            by_client: LruCache::new(cap),
            by_peer: LruCache::new(cap),
        }
    }

    /// Count a failed authentication of `client` at `now` (unix seconds).
    pub fn record_failure(&mut self, client: &ClientInfo, now: u64) -> Throttle {
        let window = self.config.window.as_secs();
        let peer = client.peer.to_canonical();
        let by_client = bump(&mut self.by_client, client.client_id.as_str(), now, window);
        let by_peer = bump(&mut self.by_peer, &peer, now, window);
        let delay = self.delay_after(by_client.max(by_peer));
        let reached = |limit: Option<u32>, count: u32| limit.is_some_and(|l| count >= l);
        let ban = if reached(self.config.max_failures_per_peer, by_peer) {
            self.by_peer.remove(&peer);
            Some(self.ban(BanTarget::Peer(IpNet::from(peer)), by_peer, now))
        } else if reached(self.config.max_failures_per_client, by_client) {
            self.by_client.remove(client.client_id.as_str());
            Some(self.ban(BanTarget::ClientId(client.client_id.clone()), by_client, now))
        } else {
            None
        };
        Throttle { delay, ban }
    }

    /// Count a successful authentication: its client id starts again from zero.
    pub fn record_success(&mut self, client: &ClientInfo) {
        self.by_client.remove(client.client_id.as_str());
    }

    /// The number of client ids and of addresses being counted.
    pub fn len(&self) -> (usize, usize) {
        (self.by_client.len(), self.by_peer.len())
    }

    /// The delay after the `failures`-th failure.
    fn delay_after(&self, failures: u32) -> Duration {
        let Some(steps) = failures.checked_sub(self.config.free_failures + 1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(steps.min(31)).unwrap_or(u32::MAX);
        self.config
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.config.max_delay)
            .min(self.config.max_delay)
    }

    fn ban(&self, who: BanTarget, failures: u32, now: u64) -> Ban {
        Ban {
            who,
            reason: format!("{failures} failed logins within {} s", self.config.window.as_secs()),
            by: "login throttle".into(),
            at: now,
            until: Some(now.saturating_add(self.config.ban_time.as_secs())),
        }
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle::new(ThrottleConfig::default())
    }
}

/// Add a failure to `key`'s count (a new window if there is none or it closed); returns the count.
fn bump<K, Q>(table: &mut LruCache<K, Count>, key: &Q, now: u64, window: u64) -> u32
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
{
    if let Some(count) = table.get_mut(key) {
        if now.saturating_sub(count.started) < window {
            count.failures = count.failures.saturating_add(1);
        } else {
            *count = Count {
                started: now,
                failures: 1,
            };
        }
        return count.failures;
    }
    // A full table evicts the least recently failed entry.
    table.insert(
        key.to_owned(),
        Count {
            started: now,
            failures: 1,
        },
    );
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, ip: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            username: Some("u".into()),
            peer: ip.parse().unwrap(),
            listener: "tcp".into(),
        }
    }

    #[test]
    fn delays_grow_after_the_free_failures_and_cap() {
        let mut t = LoginThrottle::new(ThrottleConfig {
            max_failures_per_client: None,
            max_failures_per_peer: None,
            ..ThrottleConfig::default()
        });
        let c = client("c1", "10.0.0.1");
        let ms: Vec<u128> = (0..10).map(|_| t.record_failure(&c, 100).delay.as_millis()).collect();
        assert_eq!(ms, vec![0, 0, 250, 500, 1000, 2000, 4000, 4000, 4000, 4000]);
        for _ in 0..100 {
            assert_eq!(t.record_failure(&c, 100).delay, Duration::from_secs(4), "no overflow");
        }
    }

    #[test]
    fn a_client_id_is_banned_after_ten_failures_and_success_resets_it() {
        let mut t = LoginThrottle::default();
        let c = client("c1", "10.0.0.1");
        for _ in 0..9 {
            assert_eq!(t.record_failure(&c, 100).ban, None);
        }
        t.record_success(&c);
        for _ in 0..9 {
            assert_eq!(
                t.record_failure(&c, 101).ban,
                None,
                "counting restarted after the success"
            );
        }
        let ban = t.record_failure(&c, 102).ban.expect("10th failure");
        assert_eq!(ban.who, BanTarget::ClientId("c1".into()));
        assert_eq!(
            (ban.at, ban.until, ban.by.as_str()),
            (102, Some(102 + 900), "login throttle")
        );
    }

    #[test]
    fn an_address_is_banned_after_thirty_failures_across_client_ids() {
        let mut t = LoginThrottle::default();
        for i in 0..29 {
            let r = t.record_failure(&client(&format!("guess-{i}"), "::ffff:192.0.2.1"), 100);
            assert_eq!(r.ban, None);
        }
        // A success (say, the attacker's own account) resets its client id's count, not the address's.
        t.record_success(&client("guess-0", "192.0.2.1"));
        let r = t.record_failure(&client("guess-29", "192.0.2.1"), 100);
        assert_eq!(r.ban.unwrap().who, BanTarget::Peer("192.0.2.1/32".parse().unwrap()));
        // The ban takes over from the count.
        assert_eq!(t.len().1, 0);
    }

    #[test]
    fn windows_close() {
        let mut t = LoginThrottle::default();
        let c = client("c1", "10.0.0.1");
        for _ in 0..9 {
            t.record_failure(&c, 100);
        }
        // Five minutes after the first failure the window is over: this is failure 1 again.
        let r = t.record_failure(&c, 400);
        assert_eq!((r.delay, r.ban), (Duration::ZERO, None));
    }

    #[test]
    fn memory_is_bounded_under_a_flood() {
        let mut t = LoginThrottle::new(ThrottleConfig {
            max_tracked: 500,
            max_failures_per_peer: None,
            ..ThrottleConfig::default()
        });
        for i in 0..50_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            t.record_failure(&client(&format!("id-{i}"), &ip), 100);
            let (ids, peers) = t.len();
            assert!(ids <= 500 && peers <= 500);
        }
    }
}
