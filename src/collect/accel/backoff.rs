//! When a collector tries again to reach a vendor library or service that failed: after `first`,
//! then doubling up to `max`. One schedule for NVML re-initialisation, DCGM reconnection and the
//! TPU runtime.

use std::time::{Duration, Instant};

/// A retry schedule: the next attempt, and the wait after the next failure.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// No attempt before this instant.
    next_attempt: Instant,
    /// The wait after the next failure.
    delay: Duration,
    /// The wait after a first failure (a fresh schedule starts here).
    first: Duration,
    /// The longest wait.
    max: Duration,
}

impl Backoff {
    /// A schedule due now: nothing has failed yet.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            next_attempt: Instant::now(),
            delay: first,
            first,
            max,
        }
    }

    /// A schedule for something that just failed at `now`: the next attempt after `first`.
    pub fn after_failure(first: Duration, max: Duration, now: Instant) -> Self {
        let mut backoff = Self::new(first, max);
        backoff.failed(now);
        backoff
    }

    /// Records a failure at `now`: waits the current delay, and doubles it for the next one.
    pub fn failed(&mut self, now: Instant) {
        self.next_attempt = now + self.delay;
        self.delay = (self.delay * 2).min(self.max);
    }

    /// Starts over after a success: due now, the next failure waits `first` again.
    pub fn reset(&mut self) {
        *self = Self::new(self.first, self.max);
    }

    /// Whether an attempt may be made at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_attempt
    }

    /// How long until the next attempt (zero when due).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.next_attempt.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_and_start_over_after_a_success() {
        let (first, max) = (Duration::from_secs(1), Duration::from_secs(5));
        let mut b = Backoff::new(first, max);
        let now = Instant::now();
        assert!(b.is_due(now));
        let mut waits = Vec::new();
        for _ in 0..5 {
            b.failed(now);
            assert!(!b.is_due(now));
            waits.push(b.remaining(now).as_secs());
        }
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        b.reset();
        let later = Instant::now();
        assert!(b.is_due(later));
        b.failed(later);
        assert_eq!(b.remaining(later), first);
        let b = Backoff::after_failure(first, max, now);
        assert_eq!(b.remaining(now), first);
        assert!(b.is_due(now + first));
    }
}
