//! node_exporter's `timex` collector: the kernel clock discipline's state from adjtimex(2)
//! (offset, frequency, errors, PPS figures, and whether the clock is synchronised), scaled as
//! node_exporter's timex.go scales them. A system call of the kernel the monitor runs on, which
//! is the host's also in a container; no file to read, so no fixture either.

use super::ffi::{self, Timex};
use crate::collect::{CollectError, Collector};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// adjtimex's return value when the clock is not synchronised.
const TIME_ERROR: i32 = 5;
/// The `status` bit saying `offset` and `jitter` are in nanoseconds (else microseconds).
const STA_NANO: i32 = 0x2000;
/// The unit of `freq`, `ppsfreq` and `stabil`: ppm with a 16-bit fraction (adjtimex(2) NOTES).
const PPM16FRAC: f64 = 1_000_000.0 * 65_536.0;

/// The `node_timex_*` families of one reading.
pub fn families(t: &Timex) -> Vec<KernelFamily> {
    let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let gauge = |name: &str, help: &str, value: f64| {
        KernelFamily::single(name, help, KernelMetricKind::Gauge, value)
    };
    let counter = |name: &str, help: &str, value: i64| {
        KernelFamily::single(name, help, KernelMetricKind::Counter, value as f64)
    };
    vec![
        gauge(
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            if t.state == TIME_ERROR { 0.0 } else { 1.0 },
        ),
        gauge(
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            t.offset as f64 / divisor,
        ),
        gauge(
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            1.0 + t.freq as f64 / PPM16FRAC,
        ),
        gauge(
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            t.maxerror as f64 / 1e6,
        ),
        gauge(
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            t.esterror as f64 / 1e6,
        ),
        gauge(
            "node_timex_status",
            "Value of the status array bits.",
            f64::from(t.status),
        ),
        gauge(
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            t.constant as f64,
        ),
        gauge(
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            t.tick as f64 / 1e6,
        ),
        gauge(
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            t.ppsfreq as f64 / PPM16FRAC,
        ),
        gauge(
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            t.jitter as f64 / divisor,
        ),
        gauge(
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            f64::from(t.shift),
        ),
        gauge(
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            t.stabil as f64 / PPM16FRAC,
        ),
        counter(
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            t.jitcnt,
        ),
        counter(
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            t.calcnt,
        ),
        counter(
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            t.errcnt,
        ),
        counter(
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            t.stbcnt,
        ),
        gauge(
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            f64::from(t.tai),
        ),
    ]
}

/// Calls adjtimex every sample (one system call, no file).
pub struct TimexCollector;

impl Collector for TimexCollector {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let timex =
            ffi::adjtimex().map_err(|e| CollectError::Other(format!("adjtimex failed: {e}")))?;
        snapshot.kernel_families.extend(families(&timex));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(families: &[KernelFamily], name: &str) -> f64 {
        families
            .iter()
            .find(|f| &*f.name == name)
            .map(|f| f.samples[0].value)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    /// What node_exporter 1.5 printed on the VM: status 64 (STA_UNSYNC: µs units), state 5.
    #[test]
    fn an_unsynchronised_clock_in_microseconds() {
        let t = Timex {
            state: TIME_ERROR,
            offset: 1500,
            freq: 655_360, // 10 ppm
            maxerror: 16_000_000,
            esterror: 16_000_000,
            status: 64,
            constant: 2,
            tick: 10_000,
            jitter: 250,
            ..Timex::default()
        };
        let f = families(&t);
        assert_eq!(value(&f, "node_timex_sync_status"), 0.0);
        assert_eq!(value(&f, "node_timex_offset_seconds"), 0.0015);
        let ratio = value(&f, "node_timex_frequency_adjustment_ratio");
        assert!((ratio - 1.00001).abs() < 1e-12, "{ratio}");
        assert_eq!(value(&f, "node_timex_maxerror_seconds"), 16.0);
        assert_eq!(value(&f, "node_timex_estimated_error_seconds"), 16.0);
        assert_eq!(value(&f, "node_timex_status"), 64.0);
        assert_eq!(value(&f, "node_timex_loop_time_constant"), 2.0);
        assert_eq!(value(&f, "node_timex_tick_seconds"), 0.01);
        assert_eq!(value(&f, "node_timex_pps_jitter_seconds"), 0.00025);
        assert_eq!(f.len(), 17);
        let counters: Vec<&str> = f
            .iter()
            .filter(|f| f.kind == KernelMetricKind::Counter)
            .map(|f| &*f.name)
            .collect();
        assert_eq!(
            counters,
            [
                "node_timex_pps_jitter_total",
                "node_timex_pps_calibration_total",
                "node_timex_pps_error_total",
                "node_timex_pps_stability_exceeded_total",
            ]
        );
    }

    #[test]
    fn a_synchronised_clock_in_nanoseconds() {
        let t = Timex {
            state: 0,
            offset: -2_500_000,
            status: STA_NANO | 0x1,
            jitter: 1000,
            ppsfreq: -65_536,
            stabil: 131_072,
            tai: 37,
            ..Timex::default()
        };
        let f = families(&t);
        assert_eq!(value(&f, "node_timex_sync_status"), 1.0);
        assert_eq!(value(&f, "node_timex_offset_seconds"), -0.0025);
        assert_eq!(value(&f, "node_timex_pps_jitter_seconds"), 1e-6);
        assert_eq!(value(&f, "node_timex_pps_frequency_hertz"), -1e-6);
        assert_eq!(value(&f, "node_timex_pps_stability_hertz"), 2e-6);
        assert_eq!(value(&f, "node_timex_tai_offset_seconds"), 37.0);
    }

    #[test]
    fn this_kernel_answers() {
        let mut snapshot = Snapshot::default();
        TimexCollector.collect(&mut snapshot).unwrap();
        assert_eq!(snapshot.kernel_families.len(), 17);
    }
}
