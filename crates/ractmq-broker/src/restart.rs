//! Restart intensity: how many restarts a supervisor allows in a time window before it gives up.
//!
//! This is OTP's `intensity`/`period`. A supervisor that exceeds it stops itself, so the failure escalates to
//! its own supervisor instead of restarting a broken child forever.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_restarts` restarts within `window`; one more makes the supervisor fail (escalate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub(crate) max_restarts: u32,
    pub(crate) window: Duration,
}

impl RestartPolicy {
    /// At most `max_restarts` restarts within `window_secs` seconds.
    pub const fn new(max_restarts: u32, window_secs: u64) -> Self {
        RestartPolicy {
            max_restarts,
            window: Duration::from_secs(window_secs),
        }
    }

    /// The most restarts allowed within [`window`](Self::window).
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts
    }

    /// The window the restarts are counted in.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[derive(Debug)]
pub struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(policy: RestartPolicy) -> Self {
        RestartBudget {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// The policy this budget enforces (for operators: the supervision tree shows it).
    pub fn policy(&self) -> RestartPolicy {
        self.policy
    }

    /// Record a restart at `now`; false if it exceeds the intensity (the supervisor must escalate).
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&first) = self.recent.front() {
            if now.duration_since(first) > self.policy.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        self.recent.len() <= self.policy.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeding_the_intensity_inside_the_window_escalates() {
        let mut b = RestartBudget::new(RestartPolicy::new(2, 10));
        let t = Instant::now();
        assert!(b.allow(t));
        assert!(b.allow(t + Duration::from_secs(1)));
        assert!(!b.allow(t + Duration::from_secs(2)));
    }

    #[test]
    fn restarts_outside_the_window_are_forgotten() {
        let mut b = RestartBudget::new(RestartPolicy::new(1, 10));
        let t = Instant::now();
        assert!(b.allow(t));
        assert!(b.allow(t + Duration::from_secs(11)));
    }
}
