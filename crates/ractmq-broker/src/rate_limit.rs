//! Inbound rate limits per client: PUBLISH packets and bytes per second. A client over its rate is not cut
//! off and loses nothing: its reader waits before handing over the next batch, so its socket is read more
//! slowly and TCP pushes back on the client, as a full subscriber queue holds a publisher (docs/flow-control.md).
//!
//! The token buckets are `governor`'s (GCRA): a well-kept implementation, lock-free, with a burst of one
//! second's worth.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics::Metrics;

/// A token bucket and its burst (one second's worth).
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    burst: NonZeroU32,
}

/// One client's limits.
pub(crate) struct InboundLimit {
    messages: Option<Bucket>,
    bytes: Option<Bucket>,
    metrics: Arc<Metrics>,
}

impl InboundLimit {
    /// Limits of `messages_per_s` PUBLISH packets and `bytes_per_s` bytes (0: no limit); `None` when both are 0.
    pub(crate) fn new(messages_per_s: u32, bytes_per_s: u32, metrics: Arc<Metrics>) -> Option<Arc<InboundLimit>> {
        let bucket = |per_s: u32| {
            NonZeroU32::new(per_s).map(|burst| Bucket {
                limiter: RateLimiter::direct(Quota::per_second(burst)),
                burst,
            })
        };
        let (messages, bytes) = (bucket(messages_per_s), bucket(bytes_per_s));
        (messages.is_some() || bytes.is_some()).then(|| {
            Arc::new(InboundLimit {
                messages,
                bytes,
                metrics,
            })
        })
    }

    /// Wait until `messages` PUBLISH packets and `bytes` bytes fit the client's rates.
    pub(crate) async fn wait(&self, messages: u32, bytes: u32) {
        let mut slowed = false;
        for (bucket, n) in [(&self.messages, messages), (&self.bytes, bytes)] {
            if let Some(bucket) = bucket {
                slowed |= take(bucket, n).await;
            }
        }
        if slowed {
            Metrics::add(&self.metrics.rate_limited, 1);
        }
    }
}

/// A listener's connection rate: the accept loop waits for a token before each accept, so connections over
/// the rate wait in the kernel's listen backlog instead of being refused.
pub(crate) struct AcceptRate {
    bucket: Bucket,
    metrics: Arc<Metrics>,
}

impl AcceptRate {
    /// `per_s` connections a second (0: no limit, `None`).
    pub(crate) fn new(per_s: u32, metrics: Arc<Metrics>) -> Option<AcceptRate> {
        NonZeroU32::new(per_s).map(|burst| AcceptRate {
            bucket: Bucket {
                limiter: RateLimiter::direct(Quota::per_second(burst)),
                burst,
            },
            metrics,
        })
    }

    /// Wait for the next connection's turn.
    pub(crate) async fn turn(&self) {
        if take(&self.bucket, 1).await {
            Metrics::add(&self.metrics.accept_rate_limited, 1);
        }
    }
}

/// Take `n` tokens, in pieces no larger than the bucket's burst; true if that meant waiting.
async fn take(bucket: &Bucket, mut n: u32) -> bool {
    let mut waited = false;
    while let Some(piece) = NonZeroU32::new(n.min(bucket.burst.get())) {
        if !matches!(bucket.limiter.check_n(piece), Ok(Ok(()))) {
            waited = true;
            // A piece within the burst always fits eventually: the error case cannot happen.
            let _ = bucket.limiter.until_n_ready(piece).await;
        }
        n -= piece.get();
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate is a lower bound on the time a burst takes (governor keeps real time).
    #[tokio::test]
    async fn a_client_over_its_rate_waits_instead_of_losing_anything() {
        let limit = InboundLimit::new(100, 0, Arc::default()).unwrap();
        let start = std::time::Instant::now();
        limit.wait(100, 0).await; // the first second's burst
        assert_eq!(
            Metrics::get(&limit.metrics.rate_limited),
            0,
            "within the burst: no wait"
        );
        limit.wait(150, 0).await; // 1.5 seconds' worth more, in pieces of at most the burst
        let took = start.elapsed();
        assert!(took >= std::time::Duration::from_millis(1400), "{took:?}");
        assert_eq!(Metrics::get(&limit.metrics.rate_limited), 1);
        assert!(
            InboundLimit::new(0, 0, Arc::default()).is_none(),
            "no limits, no limiter"
        );
    }
}
