//! Overload protection: a node-wide memory high watermark that sheds load before the kernel's OOM killer ends
//! the process, as EMQX's overload protection does.
//!
//! Every second the guard reads the process's resident memory. Above the watermark the node is overloaded:
//! new CONNECTs are refused with Server busy (0x89; 3.1.1: Server unavailable), and if memory is still above
//! it at the next check, the largest queues are dropped, largest first, until what they held would bring the
//! node back under (their publishers, if held, go on). Below 90% of the watermark it recovers. Each episode
//! is logged once when it starts and once when it ends, and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::kernel::Kernel;
use crate::memory::resident_bytes;
use crate::metrics::Metrics;

/// The state of the guard, in the kernel: it outlives the periodic actor that checks.
#[derive(Debug, Default)]
pub(crate) struct Overload {
    /// Bytes of resident memory above which the node sheds load; 0: off. Operators may change it at run time.
    watermark: AtomicU64,
    overloaded: AtomicBool,
    /// Checks in a row found above the watermark.
    strikes: AtomicU64,
}

impl Overload {
    /// A guard with `watermark` bytes (0: off).
    pub(crate) fn new(watermark: u64) -> Overload {
        Overload {
            watermark: AtomicU64::new(watermark),
            ..Overload::default()
        }
    }

    /// Change the watermark (0: off); the next check applies it.
    pub(crate) fn set_watermark(&self, bytes: u64) {
        self.watermark.store(bytes, Ordering::Relaxed);
    }

    /// The watermark in force.
    pub(crate) fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Relaxed)
    }

    /// Refuse new connections now?
    pub(crate) fn is_overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Relaxed)
    }
}

/// One check (run every second by the `overload-guard` actor).
pub(crate) fn check(kernel: &Kernel) {
    let state = &kernel.overload;
    let watermark = state.watermark();
    let Some(resident) = resident_bytes() else { return };
    if watermark > 0 && resident > watermark {
        let strikes = state.strikes.fetch_add(1, Ordering::Relaxed) + 1;
        if !state.overloaded.swap(true, Ordering::Relaxed) {
            Metrics::add(&kernel.metrics.overload_episodes, 1);
            tracing::warn!(resident_mib = resident >> 20, watermark_mib = watermark >> 20, "memory above the high watermark: refusing new connections (raise --memory-high-watermark-mb, or add memory or nodes)");
        }
        if strikes >= 2 {
            shed_largest_queues(kernel, resident - watermark);
        }
    } else if (watermark == 0 || resident < watermark / 10 * 9) && state.overloaded.swap(false, Ordering::Relaxed) {
        state.strikes.store(0, Ordering::Relaxed);
        tracing::warn!(
            resident_mib = resident >> 20,
            "memory back under the high watermark: accepting connections again"
        );
    }
}

/// Drop the largest queues, largest first, until they held `excess` bytes (at least one queue).
fn shed_largest_queues(kernel: &Kernel, excess: u64) {
    let mut sessions: Vec<_> = kernel
        .store
        .all()
        .into_iter()
        .map(|s| (s.queued().1, s))
        .filter(|(bytes, _)| *bytes > 0)
        .collect();
    sessions.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    let mut freed = 0u64;
    for (_, session) in sessions {
        if freed >= excess {
            break;
        }
        let (messages, bytes) = session.shed();
        freed += bytes as u64;
        Metrics::add(&kernel.metrics.dropped_overload, messages as u64);
        tracing::warn!(client = %session.client_id, messages, bytes, "overload: dropped the queue of one of the largest");
    }
}
