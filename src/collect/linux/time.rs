//! node_exporter's `time` collector: the system time (`node_time_seconds`), the local zone's
//! offset (`node_time_zone_offset_seconds{time_zone}`), and the kernel's clock sources
//! (`node_time_clocksource_{available,current}_info`) from
//! /sys/devices/system/clocksource/clocksourceN.

use std::time::{SystemTime, UNIX_EPOCH};

use super::ffi;
use crate::collect::{numbered_dirs, read_optional, CollectError, Collector, HostPaths};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Samples between two readings of the clock sources: the current one changes only when the
/// kernel finds it unstable or an administrator picks another.
const RESCAN_EVERY: u64 = 60;

/// One clocksourceN directory: the sources it offers and the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSource {
    pub available: Vec<String>,
    pub current: String,
}

/// The clock sources under `paths`' sysfs, by directory number.
pub fn clock_sources(paths: &HostPaths) -> Vec<ClockSource> {
    numbered_dirs(&paths.sys("devices/system/clocksource"), "clocksource")
        .into_iter()
        .map(|(_, dir)| ClockSource {
            available: read_optional(dir.join("available_clocksource"))
                .unwrap_or_default()
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
            current: read_optional(dir.join("current_clocksource")).unwrap_or_default(),
        })
        .collect()
}

/// The two clock source families; `device` is the directory's position, as node_exporter's.
pub fn clock_source_families(sources: &[ClockSource]) -> Vec<KernelFamily> {
    let mut available = KernelFamily::new(
        "node_time_clocksource_available_info",
        "Available clocksources read from '/sys/devices/system/clocksource'.",
        KernelMetricKind::Gauge,
    );
    let mut current = KernelFamily::new(
        "node_time_clocksource_current_info",
        "Current clocksource read from '/sys/devices/system/clocksource'.",
        KernelMetricKind::Gauge,
    );
    for (device, source) in sources.iter().enumerate() {
        let device = device.to_string();
        for name in &source.available {
            available.push(&[("clocksource", name), ("device", &device)], 1.0);
        }
        current.push(
            &[("clocksource", &source.current), ("device", &device)],
            1.0,
        );
    }
    [available, current]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect()
}

/// Reads the time and zone every sample and the clock sources every [`RESCAN_EVERY`].
pub struct TimeCollector {
    /// Where /sys is.
    paths: HostPaths,
    /// The clock source families of the last scan.
    clock_sources: Option<Vec<KernelFamily>>,
    /// Samples since the last scan.
    since_scan: u64,
}

impl TimeCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            clock_sources: None,
            since_scan: 0,
        }
    }
}

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| CollectError::Other(format!("the clock is before 1970: {e}")))?;
        let families = &mut snapshot.kernel_families;
        families.push(KernelFamily::single(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            KernelMetricKind::Gauge,
            now.as_secs_f64(),
        ));
        let seconds = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        // Without a zone the C library works in UTC, as Go does.
        let (zone, offset) = ffi::local_zone(seconds).unwrap_or_else(|| ("UTC".into(), 0));
        families.push(
            KernelFamily::new(
                "node_time_zone_offset_seconds",
                "System time zone offset in seconds.",
                KernelMetricKind::Gauge,
            )
            .with(&[("time_zone", &zone)], offset as f64),
        );
        self.since_scan += 1;
        let sources = match self.clock_sources.as_ref() {
            Some(sources) if self.since_scan < RESCAN_EVERY => sources,
            _ => {
                self.since_scan = 0;
                self.clock_sources
                    .insert(clock_source_families(&clock_sources(&self.paths)))
            }
        };
        families.extend(sources.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn the_captured_vm_has_tsc_in_use_and_kvm_clock_available() {
        let sources = clock_sources(&HostPaths::fixture(fixture("captured-vm")));
        assert_eq!(
            sources,
            [ClockSource {
                available: vec!["tsc".into(), "kvm-clock".into()],
                current: "tsc".into(),
            }]
        );
        let families = clock_source_families(&sources);
        assert_eq!(families[0].samples.len(), 2);
        assert_eq!(
            families[1].samples[0].labels,
            [
                ("clocksource", "tsc".to_string()),
                ("device", "0".to_string())
            ]
        );
    }

    #[test]
    fn a_host_without_clock_sources_has_only_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = TimeCollector::new(HostPaths::fixture(dir.path()));
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        let names: Vec<&str> = snapshot.kernel_families.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            ["node_time_seconds", "node_time_zone_offset_seconds"]
        );
        let now = snapshot.kernel_families[0].samples[0].value;
        assert!(now > 1.7e9, "{now}");
    }
}
