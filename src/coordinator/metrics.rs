//! The coordinator's own Prometheus metrics (`system_monitor_coordinator_*`): agents per status,
//! per-poll latency, poll errors by kind, the last round's duration and the number of rounds.
//! Lock-free counters written by the poller; encoded as Prometheus text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the poll-duration histogram: loopback answers in well under a
/// millisecond, a loaded cluster in tens, a timeout at `--poll-timeout`.
const BUCKETS: [f64; 13] = [
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

    fn as_str(self) -> &'static str {
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
#[derive(Debug, Default)]
pub struct CoordinatorMetrics {
    /// Polls per histogram bucket (not cumulative; summed when encoded).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Polls slower than the last bucket.
    over: AtomicU64,
    /// Total poll time, microseconds.
    sum_micros: AtomicU64,
    /// Polls.
    count: AtomicU64,
    /// Failed polls per [`ErrorKind`].
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// The last complete round's duration, f64 bits.
    round_seconds: AtomicU64,
    /// Complete rounds.
    rounds: AtomicU64,
}

impl CoordinatorMetrics {
    /// Counts one poll that took `elapsed`.
    pub fn observe_poll(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        match BUCKETS.iter().position(|&bound| seconds <= bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
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

    /// Prometheus text (format 0.0.4), every sample labelled `node="<node>"` like the agent's.
    /// `counts` are the agents per status (online, degraded, offline).
    pub fn encode(&self, node: &str, counts: [usize; 3]) -> String {
        let node = escape(node);
        let mut out = String::with_capacity(4096);
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "system_monitor_coordinator_agents",
            "gauge",
            "Known agents by status.",
        );
        for (status, count) in ["online", "degraded", "offline"].iter().zip(counts) {
            let _ = writeln!(
                out,
                "system_monitor_coordinator_agents{{node=\"{node}\",status=\"{status}\"}} {count}"
            );
        }
        let name = "system_monitor_coordinator_poll_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time one agent poll took, connect to last byte.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{node=\"{node}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{node=\"{node}\",le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{node=\"{node}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{node=\"{node}\"}} {count}");
        let name = "system_monitor_coordinator_poll_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Failed agent polls by kind.\n# TYPE {name} counter"
        );
        for (kind, errors) in ErrorKind::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "{name}{{kind=\"{}\",node=\"{node}\"}} {}",
                kind.as_str(),
                errors.load(Ordering::Relaxed)
            );
        }
        let name = "system_monitor_coordinator_round_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time the last full poll round of all known agents took.\n# TYPE {name} gauge\n{name}{{node=\"{node}\"}} {}",
            f64::from_bits(self.round_seconds.load(Ordering::Relaxed))
        );
        let name = "system_monitor_coordinator_rounds_total";
        let _ = writeln!(
            out,
            "# HELP {name} Poll rounds finished.\n# TYPE {name} counter\n{name}{{node=\"{node}\"}} {}",
            self.rounds.load(Ordering::Relaxed)
        );
        out
    }
}

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = CoordinatorMetrics::default();
        m.observe_poll(Duration::from_micros(500));
        m.observe_poll(Duration::from_millis(20));
        m.observe_poll(Duration::from_secs(60));
        m.error(ErrorKind::Timeout);
        m.round(Duration::from_millis(1500));
        let text = m.encode("coord", [2, 1, 0]);
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
}
