//! Warnings that a flood could repeat by the hundred thousand (refused connections, sockets dropped at
//! accept, failed logins) go through a [`LogLimit`]: the first few of each kind in a window are logged, the
//! rest are counted, and the next line logged says how many were left out ("N more like this in the last
//! 10 s"). A flood of refused connections then writes a few lines a minute, not 130 MB.
//!
//! Here, beside the protocol core, because the broker and the authentication sources both use it; it decides
//! only (the time comes in), and the caller logs.

use std::time::{Duration, Instant};

use std::sync::Mutex;

/// Lines of one kind logged per window before the rest are only counted.
const PER_WINDOW: u32 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// A rate limit for one kind of log line. Cheap when quiet; under a flood, one uncontended-enough lock per
/// event on a path that is refusing work anyway.
#[derive(Debug, Default)]
pub struct LogLimit {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    logged: u32,
    /// Left out in this window.
    suppressed: u64,
    /// Left out in the windows since the last line logged, to report with the next one.
    unreported: u64,
}

impl LogLimit {
    /// Should the event at `now` be logged? `Some(n)`: yes, and `n` like it were left out since the last line
    /// logged (say so in the line, see [`more`]). `None`: count it and stay quiet.
    pub fn check(&self, now: Instant) -> Option<u64> {
        // A panic while holding it leaves nothing half-done worth refusing: the counts are only counts.
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if w.started.is_none_or(|s| now.saturating_duration_since(s) >= WINDOW) {
            w.unreported += w.suppressed;
            w.started = Some(now);
            w.logged = 0;
            w.suppressed = 0;
        }
        if w.logged < PER_WINDOW {
            w.logged += 1;
            Some(std::mem::take(&mut w.unreported))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

/// The tail of a line logged after others like it were left out: empty when none were.
pub fn more(left_out: u64) -> String {
    if left_out == 0 {
        String::new()
    } else {
        format!(" ({left_out} more like this in the last {} s)", WINDOW.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_few_lines_per_window_and_reports_the_rest() {
        let limit = LogLimit::default();
        let t0 = Instant::now();
        let logged = (0..1000).filter(|_| limit.check(t0).is_some()).count();
        assert_eq!(logged, PER_WINDOW as usize);
        // The next window's first line carries the count of what the last one left out.
        assert_eq!(limit.check(t0 + WINDOW), Some(1000 - u64::from(PER_WINDOW)));
        assert_eq!(limit.check(t0 + WINDOW), Some(0));
        assert_eq!(more(0), "");
        assert_eq!(more(995), " (995 more like this in the last 10 s)");
    }
}
