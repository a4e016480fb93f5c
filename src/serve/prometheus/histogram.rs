//! A lock-free histogram of durations over fixed bucket bounds: observed from any thread, read
//! by [`Writer::histogram`](super::Writer::histogram) as Prometheus' cumulative buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts of durations per bucket, and their sum.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending; the `+Inf` bucket is implied.
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative (summed when read): one per bound, then one for
    /// those above the last bound. The count is their total, so `_count` always equals the
    /// `+Inf` bucket even while another thread observes.
    buckets: Box<[AtomicU64]>,
    /// Total observed, microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must ascend");
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `elapsed`.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Each upper bound with the observations at or below it, ending with `+Inf` and the count.
    pub(super) fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = self.bounds.iter().copied().chain([f64::INFINITY]);
        bounds
            .zip(self.buckets.iter())
            .scan(0, |total, (bound, bucket)| {
                *total += bucket.load(Ordering::Relaxed);
                Some((bound, *total))
            })
    }

    /// The sum of the observations, in seconds.
    pub(super) fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_micros(1000));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(1));
        assert_eq!(
            h.cumulative().collect::<Vec<_>>(),
            [(0.001, 1), (0.01, 3), (0.1, 3), (f64::INFINITY, 4)]
        );
        assert_eq!(h.sum_seconds(), 1.011);
    }
}
