//! The coordinator's own Prometheus metrics (`system_monitor_coordinator_*`): agents per status,
//! per-poll latency, poll errors by kind, the last round's duration and the number of rounds.
//! Lock-free counters written by the poller; written on `/metrics` with the agent's [`Writer`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::serve::prometheus::{Histogram, Writer};

/// Upper bounds (seconds) of the poll-duration histogram: loopback answers in well under a
/// millisecond, a loaded cluster in tens, a timeout at `--poll-timeout`.
static BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a poll failed (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No answer within `--poll-timeout`.
    Timeout,
    /// Connection refused, reset, or lost.
    Connect,
    /// A non-2xx status other than 401/403.
    HttpStatus,
    /// An answer that is not an agent's metrics array (or names a node it may not).
    Decode,
    /// 401 or 403: the tokens differ.
    Unauthorized,
    /// The TLS handshake failed: a certificate the coordinator's roots (`--tls-ca`) do not
    /// vouch for or whose names do not cover the agent's address, or an agent not speaking TLS.
    Tls,
}

impl ErrorKind {
    const ALL: [ErrorKind; 6] = [
        ErrorKind::Timeout,
        ErrorKind::Connect,
        ErrorKind::HttpStatus,
        ErrorKind::Decode,
        ErrorKind::Unauthorized,
        ErrorKind::Tls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Decode => "decode",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Tls => "tls",
        }
    }
}

/// The counters.
#[derive(Debug)]
pub struct CoordinatorMetrics {
    /// Time each poll took.
    poll_duration: Histogram,
    /// Failed polls per [`ErrorKind`].
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// The last complete round's duration, f64 bits.
    round_seconds: AtomicU64,
    /// Complete rounds.
    rounds: AtomicU64,
}

impl Default for CoordinatorMetrics {
    fn default() -> Self {
        Self {
            poll_duration: Histogram::new(&BUCKETS),
            errors: Default::default(),
            round_seconds: AtomicU64::default(),
            rounds: AtomicU64::default(),
        }
    }
}

impl CoordinatorMetrics {
    /// Counts one poll that took `elapsed`.
    pub fn observe_poll(&self, elapsed: Duration) {
        self.poll_duration.observe(elapsed);
    }

    /// Counts one failed poll.
    pub fn error(&self, kind: ErrorKind) {
        let index = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.errors[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a finished round.
    pub fn round(&self, elapsed: Duration) {
        self.round_seconds
            .store(elapsed.as_secs_f64().to_bits(), Ordering::Relaxed);
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// The last round's duration.
    pub fn last_round(&self) -> Option<Duration> {
        (self.rounds.load(Ordering::Relaxed) > 0).then(|| {
            Duration::from_secs_f64(f64::from_bits(self.round_seconds.load(Ordering::Relaxed)))
        })
    }

    /// Rounds finished.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Writes the coordinator's families to `w`, whose node label is the coordinator's.
    /// `counts` are the agents per status (online, degraded, offline).
    pub fn write(&self, w: &mut Writer, counts: [usize; 3]) {
        let mut f = w.gauge(
            "system_monitor_coordinator_agents",
            "Known agents by status.",
        );
        for (status, count) in ["online", "degraded", "offline"].into_iter().zip(counts) {
            f.sample(&[("status", status)], count);
        }
        w.histogram(
            "system_monitor_coordinator_poll_duration_seconds",
            "Time one agent poll took, connect to last byte.",
        )
        .sample(&[], &self.poll_duration);
        let mut f = w
            .counter(
                "system_monitor_coordinator_poll_errors_total",
                "Failed agent polls by kind.",
            )
            .node_label_last();
        for (kind, errors) in ErrorKind::ALL.iter().zip(&self.errors) {
            f.sample(&[("kind", kind.as_str())], errors.load(Ordering::Relaxed));
        }
        w.gauge(
            "system_monitor_coordinator_round_duration_seconds",
            "Time the last full poll round of all known agents took.",
        )
        .sample(
            &[],
            f64::from_bits(self.round_seconds.load(Ordering::Relaxed)),
        );
        w.counter(
            "system_monitor_coordinator_rounds_total",
            "Poll rounds finished.",
        )
        .sample(&[], self.rounds.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::prometheus::Format;

    /// A few polls, an error and a round, as `/metrics` writes them in `format`.
    fn encode(format: Format) -> String {
        let m = CoordinatorMetrics::default();
        m.observe_poll(Duration::from_micros(500));
        m.observe_poll(Duration::from_millis(20));
        m.observe_poll(Duration::from_secs(60));
        m.error(ErrorKind::Timeout);
        m.round(Duration::from_millis(1500));
        let mut w = Writer::new("coord", format);
        m.write(&mut w, [2, 1, 0]);
        w.finish()
    }

    #[test]
    fn histogram_is_cumulative() {
        let text = encode(Format::Text);
        for line in [
            "system_monitor_coordinator_agents{node=\"coord\",status=\"online\"} 2",
            "system_monitor_coordinator_agents{node=\"coord\",status=\"degraded\"} 1",
            "system_monitor_coordinator_poll_duration_seconds_bucket{node=\"coord\",le=\"0.001\"} 1",
            "system_monitor_coordinator_poll_duration_seconds_bucket{node=\"coord\",le=\"0.025\"} 2",
            "system_monitor_coordinator_poll_duration_seconds_bucket{node=\"coord\",le=\"10\"} 2",
            "system_monitor_coordinator_poll_duration_seconds_bucket{node=\"coord\",le=\"+Inf\"} 3",
            "system_monitor_coordinator_poll_duration_seconds_count{node=\"coord\"} 3",
            "system_monitor_coordinator_poll_errors_total{kind=\"timeout\",node=\"coord\"} 1",
            "system_monitor_coordinator_poll_errors_total{kind=\"decode\",node=\"coord\"} 0",
            "system_monitor_coordinator_round_duration_seconds{node=\"coord\"} 1.5",
            "system_monitor_coordinator_rounds_total{node=\"coord\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }

    #[test]
    fn every_family_is_declared_once_in_both_formats() {
        let text = encode(Format::Text);
        assert!(text.contains(
            "# HELP system_monitor_coordinator_poll_duration_seconds Time one agent poll took, connect to last byte.\n\
             # TYPE system_monitor_coordinator_poll_duration_seconds histogram\n"
        ));
        assert!(text.contains(
            "# TYPE system_monitor_coordinator_poll_errors_total counter\n\
             system_monitor_coordinator_poll_errors_total{kind=\"timeout\",node=\"coord\"} 1\n"
        ));
        assert!(text.contains(
            "system_monitor_coordinator_poll_duration_seconds_sum{node=\"coord\"} 60.0205\n"
        ));
        assert!(!text.contains("# EOF"));
        assert_eq!(text.matches("# TYPE ").count(), 5, "{text}");

        let open = encode(Format::OpenMetrics);
        for declared in [
            "# TYPE system_monitor_coordinator_agents gauge\n",
            "# TYPE system_monitor_coordinator_poll_duration_seconds histogram\n",
            "# TYPE system_monitor_coordinator_poll_errors counter\n",
            "# TYPE system_monitor_coordinator_round_duration_seconds gauge\n",
            "# TYPE system_monitor_coordinator_rounds counter\n",
        ] {
            assert!(open.contains(declared), "{declared}\n{open}");
        }
        assert_eq!(open.matches("# TYPE ").count(), 5, "{open}");
        // The sample lines are the same; only counter family names and the trailer differ.
        let samples = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(samples(&open), samples(&text));
        assert!(
            open.ends_with("system_monitor_coordinator_rounds_total{node=\"coord\"} 1\n# EOF\n")
        );
    }
}
