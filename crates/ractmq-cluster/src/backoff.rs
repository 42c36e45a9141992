//! When to dial a peer again: a backoff that grows to a cap, so that a node that is away is tried often at
//! first and then every few seconds, never in a tight loop; and that is random, so that nodes restarted
//! together (or every node that lost the same peer) do not redial in lockstep and hit the peer all at once.
//!
//! The jitter is "decorrelated jitter": each wait is drawn between [`FIRST_RETRY`] and three times the
//! previous wait, then capped at [`MAX_RETRY`]. A wait is never shorter than [`FIRST_RETRY`] (no burst of
//! early redials) nor longer than [`MAX_RETRY`] (a peer that is back is found within seconds), and two nodes
//! that started together drift apart from the first wait on.
//!
//! The random source is a parameter of [`Backoff::attempt_with`], so the tests choose the draws.

use std::time::{Duration, Instant};

/// Shortest wait after a failed attempt, and the first wait's lowest value.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Backoff {
    next_try: Option<Instant>,
    /// The last wait; the next is drawn up to three times it. [`FIRST_RETRY`] before the first attempt.
    last_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_try: None,
            last_wait: FIRST_RETRY,
        }
    }
}

impl Backoff {
    /// May an attempt start at `now`?
    pub fn due(&self, now: Instant) -> bool {
        self.next_try.is_none_or(|t| now >= t)
    }

    /// An attempt starts at `now`: the next one waits a random time between [`FIRST_RETRY`] and three times
    /// the last wait, at most [`MAX_RETRY`]. Returns the wait.
    pub fn attempt(&mut self, now: Instant) -> Duration {
        self.attempt_with(now, random_between)
    }

    /// [`Backoff::attempt`] with the random source given: `draw(low, high)` returns a duration in
    /// `low..=high`.
    pub fn attempt_with(&mut self, now: Instant, draw: impl FnOnce(Duration, Duration) -> Duration) -> Duration {
        let high = (self.last_wait * 3).min(MAX_RETRY);
        // Clamped, so that a source that strays cannot make a tight loop or a long silence.
        let wait = draw(FIRST_RETRY, high).clamp(FIRST_RETRY, high);
        self.last_wait = wait;
        self.next_try = Some(now + wait);
        wait
    }
}

/// A uniformly random duration in `low..=high`, from the thread's generator (seeded by the OS, so it differs
/// between nodes).
fn random_between(low: Duration, high: Duration) -> Duration {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(nanos(low)..=nanos(high).max(nanos(low))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits of `attempts` attempts with the source `draw`, each checked against `due`.
    fn waits(attempts: usize, mut draw: impl FnMut(Duration, Duration) -> Duration) -> Vec<Duration> {
        let mut b = Backoff::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..attempts {
            assert!(b.due(now));
            let wait = b.attempt_with(now, &mut draw);
            assert!(!b.due(now));
            assert!(!b.due(now + wait - Duration::from_nanos(1)));
            assert!(b.due(now + wait));
            waits.push(wait);
            now += wait;
        }
        waits
    }

    fn millis(waits: &[Duration]) -> Vec<u128> {
        waits.iter().map(Duration::as_millis).collect()
    }

    #[test]
    fn the_first_attempt_is_due_at_once() {
        assert!(Backoff::default().due(Instant::now()));
    }

    #[test]
    fn the_highest_draws_triple_the_wait_up_to_the_cap() {
        let highest = waits(6, |_, high| high);
        assert_eq!(millis(&highest), [750, 2250, 3000, 3000, 3000, 3000]);
    }

    #[test]
    fn the_lowest_draws_never_go_below_the_first_retry() {
        let lowest = waits(6, |low, _| low);
        assert_eq!(millis(&lowest), [250; 6]);
    }

    #[test]
    fn each_draw_is_offered_the_range_the_last_wait_allows() {
        let mut offered = Vec::new();
        // Halfway each time: 250..=750 gives 500, 250..=1500 gives 875, ...
        waits(5, |low, high| {
            offered.push((low.as_millis(), high.as_millis()));
            (low + high) / 2
        });
        assert_eq!(
            offered,
            [(250, 750), (250, 1500), (250, 2625), (250, 3000), (250, 3000)]
        );
    }

    #[test]
    fn a_source_out_of_range_is_clamped() {
        assert_eq!(millis(&waits(3, |_, _| Duration::ZERO)), [250; 3]);
        assert_eq!(millis(&waits(3, |_, _| Duration::from_secs(3600))), [750, 2250, 3000]);
    }

    #[test]
    fn nodes_with_different_draws_drift_apart() {
        // Two nodes that lost the same peer at the same instant: one draws low, the other high.
        let (a, b) = (waits(4, |low, _| low), waits(4, |_, high| high));
        let redials = |w: &[Duration]| -> Vec<u128> {
            w.iter()
                .scan(Duration::ZERO, |at, w| {
                    *at += *w;
                    Some(at.as_millis())
                })
                .collect()
        };
        assert_eq!(redials(&a), [250, 500, 750, 1000]);
        assert_eq!(redials(&b), [750, 3000, 6000, 9000]);
    }

    #[test]
    fn the_real_source_stays_in_range_and_varies() {
        let low = FIRST_RETRY;
        let high = MAX_RETRY;
        let draws: Vec<Duration> = (0..200).map(|_| random_between(low, high)).collect();
        assert!(draws.iter().all(|d| low <= *d && *d <= high), "{draws:?}");
        // 200 uniform draws over 2.75 s all equal would mean the source is not random at all.
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
        assert_eq!(random_between(low, low), low);
    }
}
