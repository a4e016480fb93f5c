//! Plain data the collectors produce and the servers read: one immutable [`Snapshot`] per sample,
//! plus the static [`SystemInfo`], the checked [`NodeId`], time helpers, [`echo`] (user input cut
//! short for error messages), [`exposition`] (the Prometheus text format read back, for metrics
//! other programs write), and [`wire`]: the JSON the agents serve and the coordinator reads back.
//! No I/O here; serde derives give `snapshot --format model`'s JSON.
//!
//! Units are in the field names: `_bytes`, `_seconds`, `_percent` (0–100), `_mhz`, `_celsius`,
//! `_watts`, `_per_sec`. Raw counters are kept beside the rates the sampler derives from them.

mod accel;
mod cpu;
mod disk;
mod echo;
pub mod exposition;
mod filesystem;
mod kernel;
mod memory;
mod network;
mod node_id;
mod time;
pub mod wire;

pub use accel::{
    Accelerator, AcceleratorInfo, AcceleratorKind, AcceleratorProcess, MigDevice, PodRef,
    PowerReading, ProcessPod, ProfilingStats, Vendor,
};
pub use cpu::{CoreStats, CpuStats, CpuTimes, TemperatureSensor};
pub use disk::{DiskStats, DisksStats};
pub use echo::{echo, ECHO_MAX_CHARS};
pub use filesystem::{FilesystemState, FilesystemStats, FilesystemsStats};
pub use kernel::{KernelFamily, KernelMetricKind, KernelSample};
pub use memory::{MemoryStats, PressureLine, PressureResource, PressureStats};
pub use network::{InterfaceStats, NetworkStats};
pub use node_id::{InvalidNodeId, InvalidNodeIdList, NodeId};
pub use time::{now_ms, unix_ms};

use serde::Serialize;
use std::sync::Arc;

/// One sample of the whole host, immutable once built and shared behind an `Arc`.
///
/// Each domain is `None` when its collector failed or does not exist on this platform; the reason
/// is in [`Snapshot::collectors`]. Rates (`*_per_sec`, usage percents) are 0 in the first snapshot.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Snapshot {
    /// Which node this is (`--node-id`, default the hostname); the key of every API.
    pub node_id: String,
    /// Host name as the host reports it.
    pub hostname: String,
    /// When the sample was taken, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Monotonic sample number, starting at 1; lets caches and streams tell snapshots apart.
    pub sequence: u64,
    /// Seconds between this sample and the previous one: the denominator of every rate (0 first).
    pub interval_seconds: f64,
    /// Static facts (model, cores, OS, addresses), collected once at start.
    pub info: Arc<SystemInfo>,
    /// CPU usage, frequencies, load, tasks, per-mode times.
    pub cpu: Option<CpuStats>,
    /// Temperature sensors (hwmon chips and thermal zones).
    pub temperatures: Option<Vec<TemperatureSensor>>,
    /// Memory and swap, with every raw meminfo field.
    pub memory: Option<MemoryStats>,
    /// Pressure stall information (Linux PSI).
    pub pressure: Option<PressureStats>,
    /// Block devices.
    pub disks: Option<DisksStats>,
    /// Mounted filesystems.
    pub filesystems: Option<FilesystemsStats>,
    /// Network interfaces and TCP connections.
    pub network: Option<NetworkStats>,
    /// GPUs, NPUs, TPUs; empty where there are none.
    pub accelerators: Vec<Accelerator>,
    /// Power readings outside any accelerator (Apple CPU clusters, DRAM); empty elsewhere.
    pub power: Vec<PowerReading>,
    /// Families only `/metrics` shows, under node_exporter's names (netstat, vmstat, uname…),
    /// appended by the collectors that read them; a failed collector appends none (one that
    /// finds no more data half-way, as conntrack can, keeps what came before, as node_exporter
    /// does).
    pub kernel_families: Vec<KernelFamily>,
    /// Families read from outside the monitor (the textfile collector's `*.prom` files), written
    /// after ours; one that shadows one of ours is left out when written. Shared, not copied,
    /// between the snapshots of unchanged files.
    pub foreign_families: Vec<Arc<exposition::ForeignFamily>>,
    /// What each collector did in this sample.
    pub collectors: Vec<CollectorStatus>,
}

/// The outcome of one collector in one sample.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CollectorStatus {
    /// Collector name, e.g. `cpu`, `filesystem` (the `collector` label on `/metrics`).
    pub name: String,
    /// Whether it produced its section.
    pub ok: bool,
    /// Why it failed, or what it skipped (e.g. a mount that timed out), when anything.
    pub error: Option<String>,
    /// The host had nothing for it to read (no conntrack module, no `/sys/class/net`): nothing
    /// failed (`ok`), but node_exporter counts such a collector (its `ErrNoData`) as
    /// unsuccessful, and so does `node_scrape_collector_success`.
    pub no_data: bool,
    /// Wall time it took.
    pub duration_seconds: f64,
}

/// Facts about the host that do not change while the monitor runs.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct SystemInfo {
    /// `linux`, `macos`, `windows`.
    pub platform: String,
    /// Distribution or OS name and version, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os_version: String,
    /// Kernel release, e.g. `6.1.0-18-amd64`.
    pub kernel: String,
    /// CPU architecture as Rust names it (`x86_64`, `aarch64`).
    pub architecture: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Physical cores.
    pub cpu_cores: u32,
    /// Logical CPUs (hardware threads).
    pub cpu_threads: u32,
    /// Host name.
    pub hostname: String,
    /// First IPv4 address of a physical interface (falls back to any non-loopback address).
    pub ip_address: String,
    /// Boot time, Unix seconds.
    pub boot_time_seconds: i64,
}

impl Snapshot {
    /// The status entry of the named collector, if it ran.
    pub fn collector(&self, name: &str) -> Option<&CollectorStatus> {
        self.collectors.iter().find(|c| c.name == name)
    }

    /// What the host has, for a person: "16 CPUs, 62.7 GiB memory, 2 NVIDIA GPUs, 1 Intel NPU"
    /// (logical CPUs; accelerators counted by vendor and kind, in order of first appearance).
    pub fn hardware_summary(&self) -> String {
        let mut parts = vec![plural(self.info.cpu_threads as usize, "CPU")];
        parts.push(match &self.memory {
            Some(memory) => format!(
                "{:.1} GiB memory",
                memory.total_bytes as f64 / f64::from(1u32 << 30)
            ),
            None => "memory unknown (its collector failed)".to_string(),
        });
        let mut groups: Vec<(&str, AcceleratorKind, usize)> = Vec::new();
        for accelerator in &self.accelerators {
            let key = (accelerator.vendor.as_str(), accelerator.kind);
            match groups.iter_mut().find(|(v, k, _)| (*v, *k) == key) {
                Some((_, _, count)) => *count += 1,
                None => groups.push((key.0, key.1, 1)),
            }
        }
        if groups.is_empty() {
            parts.push("no accelerators".to_string());
        }
        for (vendor, kind, count) in groups {
            let name = format!("{} {}", vendor_name(vendor), kind.as_str().to_uppercase());
            parts.push(plural(count, &name));
        }
        parts.join(", ")
    }
}

/// "1 CPU", "16 CPUs".
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A vendor as people write it.
fn vendor_name(vendor: &str) -> String {
    match vendor {
        "nvidia" => "NVIDIA".to_string(),
        "amd" => "AMD".to_string(),
        "apple" => "Apple".to_string(),
        "intel" => "Intel".to_string(),
        "google" => "Google".to_string(),
        other => other.to_string(),
    }
}

/// Share of `part` in `whole` in percent, 0 when `whole` is 0 (never NaN or infinite).
pub fn percent(part: f64, whole: f64) -> f64 {
    if whole > 0.0 && part.is_finite() {
        (part / whole * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_summary_counts_accelerators_by_vendor_and_kind() {
        let device = |vendor: &str, kind| Accelerator {
            vendor: vendor.into(),
            kind,
            ..Accelerator::default()
        };
        let snapshot = Snapshot {
            info: Arc::new(SystemInfo {
                cpu_threads: 16,
                ..SystemInfo::default()
            }),
            memory: Some(MemoryStats {
                total_bytes: 67_323_174_912,
                ..MemoryStats::default()
            }),
            accelerators: vec![
                device("nvidia", AcceleratorKind::Gpu),
                device("intel", AcceleratorKind::Npu),
                device("nvidia", AcceleratorKind::Gpu),
            ],
            ..Snapshot::default()
        };
        assert_eq!(
            snapshot.hardware_summary(),
            "16 CPUs, 62.7 GiB memory, 2 NVIDIA GPUs, 1 Intel NPU"
        );
        let bare = Snapshot {
            info: Arc::new(SystemInfo {
                cpu_threads: 1,
                ..SystemInfo::default()
            }),
            ..Snapshot::default()
        };
        assert_eq!(
            bare.hardware_summary(),
            "1 CPU, memory unknown (its collector failed), no accelerators"
        );
    }
}
