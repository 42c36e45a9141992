//! Giving freed memory back to the operating system after waves of hibernation.
//!
//! When thousands of idle sessions hibernate, their actors' memory is freed in small pieces spread across the
//! heap, and glibc's allocator keeps such pages resident. Erlang hibernation compacts a process's heap for the
//! same reason. Here, once enough actors have gone since the last time, the janitor asks the allocator to
//! return whole free pages (`malloc_trim`) on a blocking thread, so the broker's resident memory follows its
//! live connections rather than its busiest moment.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::kernel::Kernel;
use crate::metrics::Metrics;

/// Hibernations since the last trim that make another one worth its cost (it walks the free lists).
const TRIM_AFTER_HIBERNATIONS: u64 = 256;

/// Hibernation count when the heap was last trimmed.
#[derive(Default)]
pub struct TrimMark(AtomicU64);

/// Periodic work: trim the heap if enough session actors hibernated since the last trim.
pub fn trim_after_hibernation(kernel: &Kernel) {
    let now = Metrics::get(&kernel.metrics.sessions_hibernated);
    let last = kernel.trim_mark.0.load(Ordering::Relaxed);
    if now.saturating_sub(last) < TRIM_AFTER_HIBERNATIONS {
        return;
    }
    kernel.trim_mark.0.store(now, Ordering::Relaxed);
    tokio::task::spawn_blocking(release_free_pages);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_pages() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_pages() {}
