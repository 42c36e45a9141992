//! Flapping detection: a client id that connects too often in a short window is banned for a while.
//!
//! A client stuck in a connect–crash–reconnect loop (or two devices sharing a client id and taking each
//! other over) costs the broker a session takeover per connect. EMQX's `flapping_detect` semantics, which
//! this mirrors: the broker counts CONNECT attempts per client id (EMQX counts them at CONNECT, after the
//! banned check and before authentication, since 4.4.10/5.0.10; older versions counted disconnects); the
//! window starts at the first counted connect; the connect that brings the count to `max_count` while the
//! window (`window_time`) is still open bans the client id for `ban_time`, and its record is dropped. Defaults
//! are EMQX's: 15 connects within 1 minute ban for 5 minutes.
//!
//! One difference: EMQX drops windows older than `window_time` from a periodic sweep, so a count can outlive
//! its window until the sweep runs; here a connect after the window closed starts a new window at once.
//!
//! Memory is bounded: at most `max_tracked` client ids are tracked, and a new one evicts the one counted
//! least recently, so a flood of distinct ids costs a fixed amount and cannot push memory up. Sans-IO: the
//! caller passes `now` (unix seconds).

use std::time::Duration;

use hashlink::LruCache;

use crate::banned::{Ban, BanTarget};

/// The `by` of the bans flapping detection makes: how operators tell them from others.
pub const BANNED_BY: &str = "flapping detector";

/// When a client id counts as flapping and what it costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlappingConfig {
    /// Connects within one window that ban the client id (EMQX `max_count`, default 15).
    pub max_count: u32,
    /// The window, from the first counted connect (EMQX `window_time`, default 1 minute).
    pub window: Duration,
    /// How long the ban lasts (EMQX `ban_time`, default 5 minutes).
    pub ban_time: Duration,
    /// The most client ids tracked at once (default 100,000; about 100 bytes each).
    pub max_tracked: usize,
}

impl Default for FlappingConfig {
    fn default() -> Self {
        FlappingConfig {
            max_count: 15,
            window: Duration::from_secs(60),
            ban_time: Duration::from_secs(5 * 60),
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: u64,
    count: u32,
    last: u64,
}

/// Counts connects per client id and says when one is flapping.
#[derive(Debug)]
pub struct FlappingDetector {
    config: FlappingConfig,
    tracked: LruCache<String, Window>,
}

impl FlappingDetector {
    /// A detector with `config`.
    pub fn new(config: FlappingConfig) -> FlappingDetector {
        FlappingDetector {
            config,
            tracked: LruCache::new(config.max_tracked.max(1)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> FlappingConfig {
        self.config
    }

    /// Count a CONNECT by `client_id` at `now` (unix seconds). Returns the ban to add to the banned list
    /// when this connect makes the client id flapping.
    pub fn record(&mut self, client_id: &str, now: u64) -> Option<Ban> {
        let window = self.config.window.as_secs();
        let window_open = |w: &Window| now.saturating_sub(w.started) < window;
        let count = match self.tracked.get_mut(client_id) {
            Some(w) if window_open(w) => {
                w.count = w.count.saturating_add(1);
                w.last = now;
                w.count
            }
            Some(w) => {
                *w = Window {
                    started: now,
                    count: 1,
                    last: now,
                };
                1
            }
            None => {
                // Inserting into a full cache evicts the least recently counted id.
                self.tracked.insert(
                    client_id.to_string(),
                    Window {
                        started: now,
                        count: 1,
                        last: now,
                    },
                );
                1
            }
        };
        if count < self.config.max_count {
            return None;
        }
        self.tracked.remove(client_id);
        Some(Ban {
            who: BanTarget::ClientId(client_id.to_string()),
            reason: format!("flapping: {count} connects within {window} s"),
            by: BANNED_BY.into(),
            at: now,
            until: Some(now.saturating_add(self.config.ban_time.as_secs())),
        })
    }

    /// Forget the windows whose last connect is a full window old (call it now and then; windows are also
    /// restarted lazily). Returns how many were dropped.
    pub fn expire(&mut self, now: u64) -> usize {
        let window = self.config.window.as_secs();
        let mut dropped = 0;
        // Least recently counted first: stop at the first that is still recent.
        while let Some((_, w)) = self.tracked.iter().next() {
            if now.saturating_sub(w.last) < window {
                break;
            }
            self.tracked.remove_lru();
            dropped += 1;
        }
        dropped
    }

    /// The number of client ids being counted.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// True if no client id is being counted.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }
}

impl Default for FlappingDetector {
    fn default() -> Self {
        FlappingDetector::new(FlappingConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifteenth_connect_within_a_minute_bans_for_five_minutes() {
        let mut d = FlappingDetector::default();
        for i in 0..14 {
            assert_eq!(d.record("c1", 1000 + i * 4), None, "connect {}", i + 1);
        }
        let ban = d.record("c1", 1059).expect("15th connect within 60 s");
        assert_eq!(ban.who, BanTarget::ClientId("c1".into()));
        assert_eq!((ban.at, ban.until), (1059, Some(1359)));
        assert_eq!(ban.by, "flapping detector");
        // The record is dropped: counting starts over.
        assert!(d.is_empty());
        assert_eq!(d.record("c1", 1060), None);
    }

    #[test]
    fn a_closed_window_starts_over() {
        let mut d = FlappingDetector::default();
        for i in 0..14 {
            assert_eq!(d.record("c1", 1000 + i), None);
        }
        // 60 s after the first connect the window is closed: this is connect 1 of a new window.
        assert_eq!(d.record("c1", 1060), None);
        for i in 0..13 {
            assert_eq!(d.record("c1", 1061 + i), None);
        }
        assert!(d.record("c1", 1075).is_some(), "15th connect of the new window");
    }

    #[test]
    fn ids_are_counted_apart() {
        let config = FlappingConfig {
            max_count: 3,
            ..FlappingConfig::default()
        };
        let mut d = FlappingDetector::new(config);
        assert_eq!(d.record("a", 1), None);
        assert_eq!(d.record("b", 1), None);
        assert_eq!(d.record("a", 2), None);
        assert_eq!(d.record("b", 2), None);
        assert!(d.record("a", 3).is_some());
        assert!(d.record("b", 3).is_some());
    }

    #[test]
    fn a_flood_of_distinct_ids_stays_bounded_and_keeps_the_recent_flapper() {
        let config = FlappingConfig {
            max_count: 5,
            max_tracked: 1000,
            ..FlappingConfig::default()
        };
        let mut d = FlappingDetector::new(config);
        let mut banned_at = None;
        for i in 0..100_000u64 {
            // The flapper connects every 100 flood ids: fewer than `max_tracked` others in between, so the
            // least-recently-counted eviction never drops it.
            if i % 100 == 0 && banned_at.is_none() && d.record("flapper", 10).is_some() {
                banned_at = Some(i);
            }
            assert_eq!(d.record(&format!("flood-{i}"), 10), None);
            assert!(d.len() <= 1000);
        }
        assert_eq!(banned_at, Some(400), "the 5th connect bans, flood or not");
        assert_eq!(d.len(), 1000);
        // Expiry drops windows whose last connect is a window old.
        assert_eq!(d.expire(69), 0);
        assert_eq!(d.expire(70), 1000);
        assert!(d.is_empty());
    }
}
