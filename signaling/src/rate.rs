//! A token bucket: the per-connection message rate limit.

use std::time::{Duration, Instant};

/// Allows `rate` messages per second on average and `burst` at once.
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets one report through per interval (so a flood of refusals is not answered in kind).
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// At most one report per `every`.
    pub(crate) fn new(every: Duration) -> Self {
        Self { every, last: None }
    }

    /// Whether to report now.
    pub(crate) fn ready(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| bucket.take(t0)).count(), 5);
        // 0.5 s later, 5 more tokens have accrued.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..8).filter(|_| bucket.take(t1)).count(), 5);
        // Never more than the burst, however long it waited.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| bucket.take(t2)).count(), 5);
    }

    #[test]
    fn throttle_reports_once_per_interval() {
        let t0 = Instant::now();
        let mut th = Throttle::new(Duration::from_secs(1));
        assert!(th.ready(t0));
        assert!(!th.ready(t0 + Duration::from_millis(999)));
        assert!(th.ready(t0 + Duration::from_secs(1)));
    }
}
