//! When to dial a peer again: exponential backoff with a cap, so that a node that is away is tried often at
//! first and then every few seconds, never in a tight loop.

use std::time::{Duration, Instant};

/// First wait after a failed attempt.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Backoff {
    next_try: Option<Instant>,
    delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_try: None,
            delay: FIRST_RETRY,
        }
    }
}

impl Backoff {
    /// May we try now?
    pub fn due(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|t| now >= t)
    }

    /// An attempt starts at `now`: the next one waits the current delay, and the delay doubles up to the cap.
    pub fn attempt(&mut self, now: Instant) {
        self.next_try = Some(now + self.delay);
        self.delay = (self.delay * 2).min(MAX_RETRY);
    }

    /// The current delay (what the next attempt will wait).
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut b = Backoff::default();
        let t = Instant::now();
        assert!(b.due(t));
        let mut waits = Vec::new();
        let mut now = t;
        for _ in 0..8 {
            assert!(b.due(now));
            let before = b.delay();
            b.attempt(now);
            assert!(!b.due(now));
            assert!(!b.due(now + before - Duration::from_millis(1)));
            waits.push(before.as_millis());
            now += before;
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 3000, 3000, 3000, 3000]);
    }
}
