//! The monitor's own process under the Prometheus client libraries' standard names
//! (`process_cpu_seconds_total`, `process_open_fds`, `process_resident_memory_bytes`, …), which
//! node_exporter's Go client exposes for itself and dashboards chart beside the host's figures.
//!
//! Read from this process's own `/proc/self` on Linux, never through `--path.procfs`: in a
//! container that is the host's /proc, whose `self` is not ours (or not there at all); through
//! sysinfo elsewhere. The agent samples it like any collector ([`OwnProcessCollector`], for every
//! backend); the coordinator, which samples nothing unless `--sample-self`, reads it when
//! `/metrics` is asked ([`read_families`]).

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod portable;

#[cfg(target_os = "linux")]
use linux::Reader;
#[cfg(not(target_os = "linux"))]
use portable::Reader;

use super::{CollectError, Collector};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// One reading of the process; `None` where the platform does not tell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User and system CPU time.
    pub cpu_seconds: f64,
    /// Open file descriptors (handles on Windows).
    pub open_fds: Option<f64>,
    /// The soft limit on open files (`u64::MAX` when unlimited, as the Go client writes it).
    pub max_fds: Option<f64>,
    /// Resident set size.
    pub resident_bytes: f64,
    /// Virtual memory size.
    pub virtual_bytes: Option<f64>,
    /// The soft limit on the address space (`u64::MAX` when unlimited).
    pub virtual_max_bytes: Option<f64>,
    /// When the process started, Unix seconds.
    pub start_time_seconds: f64,
}

/// The `process_*` families of `usage`, with the Go client's help texts.
pub fn families(usage: &Usage) -> Vec<KernelFamily> {
    let gauge = |name: &str, help: &str, value: f64| {
        KernelFamily::single(name, help, KernelMetricKind::Gauge, value)
    };
    let mut out = vec![KernelFamily::single(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        KernelMetricKind::Counter,
        usage.cpu_seconds,
    )];
    if let Some(max) = usage.max_fds {
        out.push(gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    if let Some(open) = usage.open_fds {
        out.push(gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            open,
        ));
    }
    out.push(gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        usage.resident_bytes,
    ));
    out.push(gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        usage.start_time_seconds,
    ));
    if let Some(bytes) = usage.virtual_bytes {
        out.push(gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            bytes,
        ));
    }
    if let Some(max) = usage.virtual_max_bytes {
        out.push(gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            max,
        ));
    }
    out
}

/// A limit as the Go client writes it: unlimited is `u64::MAX`.
fn limit(value: Option<u64>) -> f64 {
    value.unwrap_or(u64::MAX) as f64
}

/// Samples the monitor's own process (its `process_*` families).
pub struct OwnProcessCollector {
    /// The kept-open sources.
    reader: Reader,
}

impl OwnProcessCollector {
    pub fn new() -> Self {
        Self {
            reader: Reader::new(),
        }
    }
}

impl Default for OwnProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for OwnProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let usage = self.reader.read()?;
        snapshot.kernel_families.extend(families(&usage));
        Ok(())
    }
}

/// The `process_*` families now, for a server that samples nothing (the coordinator).
pub fn read_families() -> Result<Vec<KernelFamily>, CollectError> {
    Reader::new().read().map(|usage| families(&usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_the_go_client_names_it() {
        let families = read_families().unwrap();
        let value = |name: &str| {
            families
                .iter()
                .find(|f| &*f.name == name)
                .map(|f| f.samples[0].value)
        };
        assert!(value("process_resident_memory_bytes").unwrap() > 0.0);
        assert!(value("process_cpu_seconds_total").unwrap() >= 0.0);
        let started = value("process_start_time_seconds").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started > now - 3600.0 && started <= now + 1.0,
            "{started} vs {now}"
        );
        if cfg!(target_os = "linux") {
            assert!(value("process_open_fds").unwrap() >= 3.0);
            assert!(value("process_max_fds").unwrap() >= value("process_open_fds").unwrap());
            assert!(value("process_virtual_memory_bytes").unwrap() > 0.0);
            assert!(value("process_virtual_memory_max_bytes").is_some());
        }
        assert_eq!(families[0].kind, KernelMetricKind::Counter);
    }

    #[test]
    fn unlimited_is_the_largest_u64() {
        assert_eq!(limit(None), 1.8446744073709552e19);
        assert_eq!(limit(Some(1024)), 1024.0);
    }
}
