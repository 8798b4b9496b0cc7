//! Token buckets: a steady rate with a burst above it. The one limit behind API Gateway's
//! usage-plan throttles (the gateway) and Cognito's per-category request quotas (the AWS JSON
//! front end). Plain arithmetic over an [`Instant`] the caller passes in, so tests need no clock.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A steady rate (tokens a second) and a burst (the bucket's size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throttle {
    pub rate: f64,
    pub burst: u32,
}

/// A token bucket: `burst` tokens at most, `rate` more each second.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket: a throttle starts by allowing its burst.
    pub fn full(t: &Throttle, now: Instant) -> Self {
        Self {
            tokens: f64::from(t.burst),
            at: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, t: &Throttle, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * t.rate).min(f64::from(t.burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t = Throttle {
            rate: 10.0,
            burst: 3,
        };
        let start = Instant::now();
        let mut b = Bucket::full(&t, start);
        assert!((0..3).all(|_| b.take(&t, start)));
        assert!(!b.take(&t, start));
        // 100 ms refill one token at 10/s.
        let later = start + std::time::Duration::from_millis(100);
        assert!(b.take(&t, later));
        assert!(!b.take(&t, later));
        // Never more than the burst, however long it rested.
        let much_later = later + std::time::Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(&t, much_later)).count(), 3);
    }
}
