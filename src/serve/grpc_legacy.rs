//! The legacy `tracklab_internal.SystemMonitorService` (GetStats, GetMetadata, TearDown),
//! wire-compatible with the messages the TrackLab SDK and wandb-style launchers use. Reads the
//! latest snapshot; only GetStats' pid tree is read on demand ([`crate::collect::process`]).
//!
//! `GetStats` keys and units follow the established system-metrics naming (see DESIGN.md, "gRPC,
//! legacy"): percents are 0–100, `*MB` are MiB, `*GB` GiB, `disk.in`/`disk.out` MiB since the
//! monitor started, `network.sent`/`network.recv` bytes since the monitor started.
//!
//! A pid tree's `cpu` is measured between two GetStats calls for the same pid (the service keeps
//! the previous reading); the first call for a pid reports the tree's average since the root
//! process started, as there is nothing earlier to compare with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tonic::{Request, Response, Status};

use super::AppState;
use crate::collect::process::{self, ProcessError, TreeUsage};
use crate::model::{
    percent, Accelerator, AcceleratorKind, AcceleratorProcess, FilesystemState, PowerReading,
    Snapshot, SystemInfo,
};
use crate::pb::legacy::record::RecordType;
use crate::pb::legacy::stats_record::StatsType;
use crate::pb::legacy::system_monitor_service_server::{
    SystemMonitorService, SystemMonitorServiceServer,
};
use crate::pb::legacy::{
    AppleInfo, EnvironmentRecord, GetMetadataRequest, GetMetadataResponse, GetStatsRequest,
    GetStatsResponse, GpuAmdInfo, GpuNvidiaInfo, Record, StatsItem, StatsRecord, TearDownRequest,
    TearDownResponse, TpuInfo,
};

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// How many pids the CPU-% bookkeeping remembers; beyond it the least recently read is dropped.
const MAX_TRACKED_PIDS: usize = 1024;

/// A pid's CPU reading is replaced only once it is this old, so callers polling faster than this
/// (or two callers watching the same pid) measure over a window of useful length rather than over
/// a few clock ticks.
const MIN_CPU_WINDOW: Duration = Duration::from_secs(1);

/// The legacy service over `state`.
pub fn service(state: AppState) -> SystemMonitorServiceServer<LegacyService> {
    SystemMonitorServiceServer::new(LegacyService {
        state,
        cpu: Mutex::new(TreeCpu::default()),
    })
}

/// `SystemMonitorService` over the shared state.
pub struct LegacyService {
    /// The latest snapshot, the baseline, shutdown and collector settings.
    state: AppState,
    /// Previous CPU readings per pid, to turn cumulative CPU seconds into a percent.
    cpu: Mutex<TreeCpu>,
}

/// The last CPU-time reading of each pid tree asked about.
#[derive(Debug, Default)]
struct TreeCpu {
    /// By root pid.
    readings: HashMap<u32, CpuReading>,
}

/// One reading of a tree's cumulative CPU time.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    /// When it was read.
    at: Instant,
    /// The tree's CPU seconds then.
    cpu_seconds: f64,
    /// The root's start time, to notice a pid reused by another process.
    root_start: u64,
}

impl TreeCpu {
    /// The tree's CPU % normalised to the whole machine (0–100): CPU seconds used since the last
    /// reading of the same pid over wall seconds × logical CPUs. On the first reading of a pid (or
    /// of a reused one) there is no previous reading, so it is the average since the root process
    /// started; 0 when its age is unknown.
    fn percent(&mut self, tree: &TreeUsage, now: Instant, logical_cpus: u32) -> f64 {
        let previous = self
            .readings
            .get(&tree.root)
            .filter(|r| r.root_start == tree.root_start && now > r.at)
            .copied();
        let (used, wall) = match previous {
            Some(r) => (
                tree.cpu_seconds - r.cpu_seconds,
                now.duration_since(r.at).as_secs_f64(),
            ),
            None => (tree.cpu_seconds, tree.root_age_seconds.unwrap_or(0.0)),
        };
        if previous.is_none_or(|r| now.duration_since(r.at) >= MIN_CPU_WINDOW) {
            self.readings.insert(
                tree.root,
                CpuReading {
                    at: now,
                    cpu_seconds: tree.cpu_seconds,
                    root_start: tree.root_start,
                },
            );
        }
        self.evict();
        // A child that exits unreaped leaves the tree and takes its time with it: never below 0.
        percent(used.max(0.0), wall * f64::from(logical_cpus.max(1)))
    }

    /// Keeps the table bounded: drops the least recently read pids.
    fn evict(&mut self) {
        while self.readings.len() > MAX_TRACKED_PIDS {
            let oldest = self
                .readings
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(pid, _)| *pid);
            match oldest {
                Some(pid) => self.readings.remove(&pid),
                None => break,
            };
        }
    }
}

/// Appends `StatsItem`s whose `value_json` is the JSON text of a finite number.
#[derive(Debug, Default)]
struct Items(Vec<StatsItem>);

impl Items {
    /// A floating-point value; NaN and infinities are left out (they are not JSON).
    fn number(&mut self, key: impl Into<String>, value: f64) {
        if let Some(number) = serde_json::Number::from_f64(value) {
            self.0.push(StatsItem {
                key: key.into(),
                value_json: number.to_string(),
            });
        }
    }

    /// A count.
    fn integer(&mut self, key: impl Into<String>, value: u64) {
        self.0.push(StatsItem {
            key: key.into(),
            value_json: value.to_string(),
        });
    }

    /// An optional floating-point value, left out when absent.
    fn maybe(&mut self, key: impl Into<String>, value: Option<f64>) {
        if let Some(value) = value {
            self.number(key, value);
        }
    }
}

/// The process tree a GetStats call asked about, with its CPU % already computed.
#[derive(Debug, Clone)]
pub struct TreeStats {
    /// The tree as read.
    pub usage: TreeUsage,
    /// CPU % of the tree normalised to the whole machine.
    pub cpu_percent: f64,
}

/// The items of a GetStats answer: `snapshot`'s system figures, counters since `baseline`, the
/// tree's (None for pid 0: system only) and the GPUs in `gpu_device_ids` (empty = all). Pure.
pub fn stats_items(
    snapshot: &Snapshot,
    baseline: &Snapshot,
    tree: Option<&TreeStats>,
    gpu_device_ids: &[i32],
) -> Vec<StatsItem> {
    let mut items = Items::default();
    let system_cpu = snapshot.cpu.as_ref().map(|c| c.usage_percent);
    match tree {
        Some(tree) => items.number("cpu", tree.cpu_percent),
        None => items.maybe("cpu", system_cpu),
    }
    if let Some(cpu) = &snapshot.cpu {
        for core in &cpu.cores {
            items.number(format!("cpu.{}.cpu_percent", core.id), core.usage_percent);
        }
    }
    if let Some(memory) = &snapshot.memory {
        items.number("memory_percent", memory.usage_percent);
        items.number(
            "proc.memory.availableMB",
            memory.available_bytes as f64 / MIB,
        );
        if let Some(tree) = tree {
            items.number(
                "proc.memory.percent",
                percent(tree.usage.rss_bytes as f64, memory.total_bytes as f64),
            );
        }
    }
    if let Some(tree) = tree {
        items.number("proc.memory.rssMB", tree.usage.rss_bytes as f64 / MIB);
        if let Some(threads) = tree.usage.threads {
            items.integer("proc.cpu.threads", threads);
        }
    }
    network_since_start(snapshot, baseline, &mut items);
    disk_since_start(snapshot, baseline, &mut items);
    if let Some(filesystems) = &snapshot.filesystems {
        for mount in filesystems
            .mounts
            .iter()
            .filter(|m| m.counted_in_total && m.state == FilesystemState::Ok)
        {
            let used = mount.size_bytes.saturating_sub(mount.free_bytes);
            let prefix = format!("disk.{}", mount.mountpoint);
            items.number(format!("{prefix}.usagePercent"), mount.usage_percent);
            items.number(format!("{prefix}.usageGB"), used as f64 / GIB);
        }
    }
    let tree_pids = tree.map_or(&[][..], |t| t.usage.pids.as_slice());
    gpu_items(
        &snapshot.accelerators,
        tree_pids,
        gpu_device_ids,
        &mut items,
    );
    tpu_items(&snapshot.accelerators, &mut items);
    power_items(&snapshot.power, &mut items);
    items.0
}

/// `network.sent`/`network.recv`: bytes over the counted interfaces since the monitor started.
fn network_since_start(snapshot: &Snapshot, baseline: &Snapshot, items: &mut Items) {
    let Some(network) = &snapshot.network else {
        return;
    };
    let before = baseline.network.as_ref().map_or(&[][..], |n| &n.interfaces);
    let (sent, received) = growth_since(
        &network.interfaces,
        before,
        |i| (i.name.as_str(), i.counted_in_total),
        |i| (i.transmit_bytes_total, i.receive_bytes_total),
    );
    items.integer("network.sent", sent);
    items.integer("network.recv", received);
}

/// `disk.in`/`disk.out`: MiB read and written on the counted block devices since the monitor
/// started.
fn disk_since_start(snapshot: &Snapshot, baseline: &Snapshot, items: &mut Items) {
    let Some(disks) = &snapshot.disks else {
        return;
    };
    let before = baseline.disks.as_ref().map_or(&[][..], |d| &d.devices);
    let (read, written) = growth_since(
        &disks.devices,
        before,
        |d| (d.name.as_str(), d.counted_in_total),
        |d| (d.read_bytes_total, d.written_bytes_total),
    );
    items.number("disk.in", read as f64 / MIB);
    items.number("disk.out", written as f64 / MIB);
}

/// How much two counters grew, summed over the counted entries of `now`, against the entry of the
/// same name in `before`. An entry that appeared since counts its whole counter (it started at 0
/// when it appeared); a counter that went backwards counts 0.
fn growth_since<T>(
    now: &[T],
    before: &[T],
    key: impl Fn(&T) -> (&str, bool),
    counters: impl Fn(&T) -> (u64, u64),
) -> (u64, u64) {
    let before: HashMap<&str, (u64, u64)> =
        before.iter().map(|e| (key(e).0, counters(e))).collect();
    now.iter().filter(|e| key(e).1).fold((0, 0), |(a, b), e| {
        let (x, y) = counters(e);
        let (x0, y0) = before.get(key(e).0).copied().unwrap_or((0, 0));
        (a + x.saturating_sub(x0), b + y.saturating_sub(y0))
    })
}

/// `gpu.{i}.*` for every GPU (index `i` = the vendor's device index, as CUDA numbers them), and the
/// same figures again as `gpu.process.{i}.*` for the GPUs that run a process of the requested tree
/// (a process in a MIG instance counts for its parent GPU). Only GPUs whose index is in
/// `device_ids` when it is not empty. When two vendors use the same index, the first listed keeps
/// it. A device that could not be read this sample (`error`) is left out rather than reported
/// with stale or partial figures.
fn gpu_items(
    accelerators: &[Accelerator],
    tree_pids: &[u32],
    device_ids: &[i32],
    items: &mut Items,
) {
    let mut seen = std::collections::HashSet::new();
    let wanted = |index: u32| {
        device_ids.is_empty()
            || device_ids
                .iter()
                .any(|&id| i64::from(id) == i64::from(index))
    };
    for gpu in accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Gpu && a.error.is_none() && wanted(a.index))
    {
        if !seen.insert(gpu.index) {
            continue;
        }
        gpu_figures(gpu, &format!("gpu.{}", gpu.index), items);
        let runs =
            |processes: &[AcceleratorProcess]| processes.iter().any(|p| tree_pids.contains(&p.pid));
        if runs(&gpu.processes) || gpu.mig_devices.iter().any(|m| runs(&m.processes)) {
            gpu_figures(gpu, &format!("gpu.process.{}", gpu.index), items);
        }
    }
}

/// One GPU's figures under `prefix`, with the keys wandb's GPU monitors use; those the device does
/// not report are left out. `memory` is the memory controller's busy share (NVML's "memory"
/// utilization), `memoryAllocated` the share of memory in use.
fn gpu_figures(gpu: &Accelerator, prefix: &str, items: &mut Items) {
    let memory_allocated = match (gpu.memory_used_bytes, gpu.memory_total_bytes) {
        (Some(used), Some(total)) if total > 0 => Some(percent(used as f64, total as f64)),
        _ => None,
    };
    let count = |v: Option<u32>| v.map(f64::from);
    let errors = |v: Option<u64>| v.map(|n| n as f64);
    items.maybe(format!("{prefix}.gpu"), gpu.utilization_percent);
    items.maybe(format!("{prefix}.memory"), gpu.memory_utilization_percent);
    items.maybe(format!("{prefix}.memoryAllocated"), memory_allocated);
    if let Some(used) = gpu.memory_used_bytes {
        items.integer(format!("{prefix}.memoryAllocatedBytes"), used);
    }
    items.maybe(format!("{prefix}.temp"), gpu.temperature_celsius);
    items.maybe(format!("{prefix}.powerWatts"), gpu.power_watts);
    items.maybe(
        format!("{prefix}.enforcedPowerLimitWatts"),
        gpu.power_limit_watts,
    );
    // rocm-smi's percent is over the board's power cap, which the AMD collector may only know as
    // the maximum.
    let limit = match gpu.vendor.as_str() {
        "amd" => gpu.power_limit_watts.or(gpu.info.max_power_watts),
        _ => gpu.power_limit_watts,
    };
    if let (Some(power), Some(limit)) = (gpu.power_watts, limit) {
        if limit > 0.0 {
            items.number(format!("{prefix}.powerPercent"), percent(power, limit));
        }
    }
    items.maybe(format!("{prefix}.smClock"), gpu.sm_clock_mhz);
    items.maybe(format!("{prefix}.memoryClock"), gpu.memory_clock_mhz);
    items.maybe(format!("{prefix}.graphicsClock"), gpu.graphics_clock_mhz);
    items.maybe(format!("{prefix}.fanSpeed"), gpu.fan_speed_percent);
    items.maybe(
        format!("{prefix}.encoderUtilization"),
        gpu.encoder_utilization_percent,
    );
    items.maybe(
        format!("{prefix}.decoderUtilization"),
        gpu.decoder_utilization_percent,
    );
    items.maybe(format!("{prefix}.pcieLinkGen"), count(gpu.pcie_link_gen));
    items.maybe(
        format!("{prefix}.pcieLinkWidth"),
        count(gpu.pcie_link_width),
    );
    items.maybe(
        format!("{prefix}.correctedMemoryErrors"),
        errors(gpu.ecc_errors_corrected),
    );
    items.maybe(
        format!("{prefix}.uncorrectedMemoryErrors"),
        errors(gpu.ecc_errors_uncorrected),
    );
    match gpu.vendor.as_str() {
        // wandb's AMD monitor names the memory busy share so (rocm-smi's "GPU Memory Read/Write
        // Activity").
        "amd" => items.maybe(
            format!("{prefix}.memoryReadWriteActivity"),
            gpu.memory_utilization_percent,
        ),
        // wandb's Apple monitor reports the GPU clock as `freq`.
        "apple" => items.maybe(format!("{prefix}.freq"), gpu.sm_clock_mhz),
        _ => {}
    }
}

/// `tpu.{i}.dutyCycle`, `tpu.{i}.memoryUsage` (percent) and `tpu.{i}.memoryUsageBytes`, as wandb's
/// TPU monitor names them.
fn tpu_items(accelerators: &[Accelerator], items: &mut Items) {
    for tpu in accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Tpu && a.error.is_none())
    {
        let prefix = format!("tpu.{}", tpu.index);
        items.maybe(format!("{prefix}.dutyCycle"), tpu.utilization_percent);
        if let (Some(used), Some(total)) = (tpu.memory_used_bytes, tpu.memory_total_bytes) {
            if total > 0 {
                items.number(
                    format!("{prefix}.memoryUsage"),
                    percent(used as f64, total as f64),
                );
            }
        }
        if let Some(used) = tpu.memory_used_bytes {
            items.integer(format!("{prefix}.memoryUsageBytes"), used);
        }
    }
}

/// The SoC power readings under wandb's Apple keys: `cpu.powerWatts` (a `cpu` reading, or the sum
/// of the `cpu_*` clusters), `ane.power` and `system.powerWatts`.
fn power_items(readings: &[PowerReading], items: &mut Items) {
    let named = |source: &str| {
        readings
            .iter()
            .find(|r| r.source == source)
            .map(|r| r.watts)
    };
    let clusters: Vec<f64> = readings
        .iter()
        .filter(|r| r.source.starts_with("cpu_"))
        .map(|r| r.watts)
        .collect();
    let cpu = named("cpu").or_else(|| (!clusters.is_empty()).then(|| clusters.iter().sum()));
    items.maybe("cpu.powerWatts", cpu);
    items.maybe("ane.power", named("ane"));
    items.maybe("system.powerWatts", named("system"));
}

/// The environment record of GetMetadata: what the monitor knows about the machine, in the shape
/// wandb's GPU, TPU and Apple monitors fill it. Pure.
pub fn environment(snapshot: &Snapshot) -> EnvironmentRecord {
    let info = &snapshot.info;
    let gpus: Vec<&Accelerator> = snapshot
        .accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Gpu)
        .collect();
    let of_vendor = |vendor: &'static str| gpus.iter().filter(move |g| g.vendor == vendor);
    let tpus: Vec<&Accelerator> = snapshot
        .accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Tpu)
        .collect();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    EnvironmentRecord {
        os: platform_string(info),
        host: if info.hostname.is_empty() {
            snapshot.hostname.clone()
        } else {
            info.hostname.clone()
        },
        cpu_count: info.cpu_cores,
        cpu_count_logical: info.cpu_threads,
        gpu_type: gpus.first().map(|g| g.name.clone()).unwrap_or_default(),
        gpu_count: u32::try_from(gpus.len()).unwrap_or(u32::MAX),
        gpu_nvidia: of_vendor("nvidia")
            .map(|g| GpuNvidiaInfo {
                name: g.name.clone(),
                memory_total: g.memory_total_bytes.unwrap_or(0),
                cuda_cores: g.info.cores.unwrap_or(0),
                architecture: text(&g.info.architecture),
                uuid: text(&g.uuid),
            })
            .collect(),
        gpu_amd: of_vendor("amd")
            .map(|g| GpuAmdInfo {
                id: g.index.to_string(),
                unique_id: text(&g.uuid),
                vbios_version: text(&g.info.vbios_version),
                performance_level: text(&g.info.performance_level),
                // rocm-smi prints watts with one decimal ("560.0").
                max_power: g
                    .info
                    .max_power_watts
                    .filter(|w| w.is_finite())
                    .map(|w| format!("{w:.1}"))
                    .unwrap_or_default(),
                series: g.name.clone(),
                model: g.name.clone(),
                vendor: g.vendor.clone(),
                sku: text(&g.info.sku),
                sclk_range: text(&g.info.sclk_range),
                mclk_range: text(&g.info.mclk_range),
                ..GpuAmdInfo::default()
            })
            .collect(),
        apple: of_vendor("apple").next().map(|g| {
            let ram = snapshot.memory.as_ref().map_or(0, |m| m.total_bytes);
            AppleInfo {
                name: g.name.clone(),
                gpu_cores: g.info.cores.unwrap_or(0),
                memory_gb: u32::try_from((ram as f64 / GIB).round() as u64).unwrap_or(u32::MAX),
                ram_total_bytes: ram,
                swap_total_bytes: snapshot.memory.as_ref().map_or(0, |m| m.swap_total_bytes),
                ..AppleInfo::default()
            }
        }),
        tpu: tpus.first().map(|t| TpuInfo {
            // wandb names the chip generation ("v5e"); the device name where it is unknown.
            name: t
                .info
                .architecture
                .clone()
                .unwrap_or_else(|| t.name.clone()),
            hbm_gib: t.memory_total_bytes.map_or(0, |b| {
                u32::try_from((b as f64 / GIB).round() as u64).unwrap_or(0)
            }),
            count: u32::try_from(tpus.len()).unwrap_or(u32::MAX),
            ..TpuInfo::default()
        }),
        cuda_version: of_vendor("nvidia")
            .find_map(|g| g.info.cuda_version.clone())
            .unwrap_or_default(),
    }
}

/// The OS the way Python's `platform.platform()` spells it, which is what the existing records
/// carry: `Linux-<kernel>-<arch>`, `macOS-<version>-<arch>`, `Windows-<version>`.
pub fn platform_string(info: &SystemInfo) -> String {
    let release = if info.kernel.is_empty() {
        info.os_version.as_str()
    } else {
        info.kernel.as_str()
    };
    match info.platform.as_str() {
        "linux" => format!("Linux-{release}-{}", info.architecture),
        "macos" => {
            // os_version is e.g. "macOS 14.4" or "14.4"; Python prints the product version.
            let version = info.os_version.split_whitespace().last().unwrap_or(release);
            format!("macOS-{version}-{}", info.architecture)
        }
        "windows" => format!("Windows-{release}"),
        other => {
            let mut system = other.to_string();
            if let Some(first) = system.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("{system}-{release}-{}", info.architecture)
        }
    }
}

fn now_timestamp() -> prost_types::Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// Logical CPUs: the denominator that normalises a tree's CPU % to the whole machine.
fn logical_cpus(snapshot: &Snapshot) -> u32 {
    if snapshot.info.cpu_threads > 0 {
        return snapshot.info.cpu_threads;
    }
    match snapshot.cpu.as_ref().map_or(0, |c| c.cores.len()) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => u32::try_from(n).unwrap_or(u32::MAX),
    }
}

impl LegacyService {
    /// Reads the tree of `pid` on the blocking pool (it is file I/O) and computes its CPU %.
    async fn tree(&self, pid: u32, snapshot: &Snapshot) -> Result<TreeStats, Status> {
        let collect = Arc::clone(&self.state.collect);
        let usage = tokio::task::spawn_blocking(move || process::read_tree(&collect, pid))
            .await
            .map_err(|e| Status::internal(format!("reading process {pid} failed: {e}")))?
            .map_err(|e| match e {
                ProcessError::NotFound { .. } => Status::not_found(format!(
                    "no process with pid {pid} on node {}",
                    snapshot.node_id
                )),
                ProcessError::Collect(e) => {
                    Status::unavailable(format!("cannot read the process table: {e}"))
                }
            })?;
        let cpu_percent = self
            .cpu
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .percent(&usage, Instant::now(), logical_cpus(snapshot));
        Ok(TreeStats { usage, cpu_percent })
    }
}

#[tonic::async_trait]
impl SystemMonitorService for LegacyService {
    async fn get_stats(
        &self,
        request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        let request = request.into_inner();
        let pid = u32::try_from(request.pid).map_err(|_| {
            Status::invalid_argument(format!(
                "pid must be a process id, or 0 for the whole system; got {}",
                request.pid
            ))
        })?;
        let snapshot = self.state.latest();
        let tree = match pid {
            0 => None,
            pid => Some(self.tree(pid, &snapshot).await?),
        };
        let items = stats_items(
            &snapshot,
            &self.state.baseline,
            tree.as_ref(),
            &request.gpu_device_ids,
        );
        let record = Record {
            record_type: Some(RecordType::Stats(StatsRecord {
                stats_type: StatsType::System.into(),
                timestamp: Some(now_timestamp()),
                item: items,
            })),
            ..Record::default()
        };
        Ok(Response::new(GetStatsResponse {
            record: Some(record),
        }))
    }

    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        let record = Record {
            record_type: Some(RecordType::Environment(environment(&self.state.latest()))),
            ..Record::default()
        };
        Ok(Response::new(GetMetadataResponse {
            record: Some(record),
        }))
    }

    async fn tear_down(
        &self,
        request: Request<TearDownRequest>,
    ) -> Result<Response<TearDownResponse>, Status> {
        // Belt and braces: the listener is loopback whenever teardown is allowed, but check the
        // peer too.
        let remote_is_local = request.remote_addr().is_none_or(|a| a.ip().is_loopback());
        if !(self.state.teardown_allowed && remote_is_local) {
            return Err(Status::permission_denied(
                "TearDown is honoured only by a monitor started as a child process \
                 (--portfile or --parent-pid) and called over loopback; stop this one with a \
                 signal (SIGTERM) instead",
            ));
        }
        tracing::info!("TearDown requested; shutting down");
        // The server drains in-flight calls, so this answer still reaches the caller.
        self.state.shutdown.cancel();
        Ok(Response::new(TearDownResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AcceleratorProcess, CoreStats, CpuStats, DiskStats, DisksStats, FilesystemStats,
        FilesystemsStats, InterfaceStats, MemoryStats, NetworkStats,
    };

    fn value(items: &[StatsItem], key: &str) -> Option<f64> {
        items
            .iter()
            .find(|i| i.key == key)
            .map(|i| i.value_json.parse().unwrap())
    }

    fn keys(items: &[StatsItem]) -> Vec<&str> {
        items.iter().map(|i| i.key.as_str()).collect()
    }

    fn interface(name: &str, rx: u64, tx: u64, counted: bool) -> InterfaceStats {
        InterfaceStats {
            name: name.into(),
            receive_bytes_total: rx,
            transmit_bytes_total: tx,
            counted_in_total: counted,
            ..InterfaceStats::default()
        }
    }

    fn disk(name: &str, read: u64, written: u64, counted: bool) -> DiskStats {
        DiskStats {
            name: name.into(),
            read_bytes_total: read,
            written_bytes_total: written,
            counted_in_total: counted,
            ..DiskStats::default()
        }
    }

    fn host(network: Vec<InterfaceStats>, disks: Vec<DiskStats>) -> Snapshot {
        Snapshot {
            node_id: "n1".into(),
            cpu: Some(CpuStats {
                usage_percent: 37.5,
                cores: (0..2)
                    .map(|id| CoreStats {
                        id,
                        usage_percent: 10.0 * f64::from(id + 1),
                        ..CoreStats::default()
                    })
                    .collect(),
                ..CpuStats::default()
            }),
            memory: Some(MemoryStats {
                total_bytes: 8 << 30,
                available_bytes: 6 << 30,
                used_bytes: 2 << 30,
                usage_percent: 25.0,
                ..MemoryStats::default()
            }),
            network: Some(NetworkStats {
                interfaces: network,
                ..NetworkStats::default()
            }),
            disks: Some(DisksStats {
                devices: disks,
                ..DisksStats::default()
            }),
            filesystems: Some(FilesystemsStats {
                mounts: vec![
                    FilesystemStats {
                        mountpoint: "/".into(),
                        size_bytes: 100 << 30,
                        free_bytes: 75 << 30,
                        usage_percent: 25.0,
                        counted_in_total: true,
                        ..FilesystemStats::default()
                    },
                    FilesystemStats {
                        mountpoint: "/boot/efi".into(),
                        size_bytes: 1 << 30,
                        counted_in_total: false,
                        ..FilesystemStats::default()
                    },
                    FilesystemStats {
                        mountpoint: "/mnt/nfs".into(),
                        counted_in_total: true,
                        state: FilesystemState::TimedOut,
                        ..FilesystemStats::default()
                    },
                ],
                ..FilesystemsStats::default()
            }),
            ..Snapshot::default()
        }
    }

    fn tree(pids: Vec<u32>) -> TreeStats {
        TreeStats {
            usage: TreeUsage {
                root: pids[0],
                pids,
                cpu_seconds: 12.0,
                rss_bytes: 512 << 20,
                threads: Some(7),
                root_age_seconds: Some(60.0),
                root_start: 1,
            },
            cpu_percent: 12.5,
        }
    }

    #[test]
    fn system_and_tree_figures() {
        let baseline = host(
            vec![
                interface("eth0", 1000, 100, true),
                interface("lo", 5, 5, false),
            ],
            vec![disk("sda", 1 << 20, 0, true)],
        );
        let now = host(
            vec![
                interface("eth0", 3000, 400, true),
                interface("lo", 9000, 9000, false),
                interface("wlan0", 50, 60, true),
            ],
            vec![
                disk("sda", 5 << 20, 3 << 20, true),
                disk("md0", 99 << 20, 99 << 20, false),
            ],
        );
        let items = stats_items(&now, &baseline, Some(&tree(vec![42, 43])), &[]);
        assert_eq!(value(&items, "cpu"), Some(12.5));
        assert_eq!(value(&items, "cpu.0.cpu_percent"), Some(10.0));
        assert_eq!(value(&items, "cpu.1.cpu_percent"), Some(20.0));
        assert_eq!(value(&items, "memory_percent"), Some(25.0));
        assert_eq!(value(&items, "proc.memory.rssMB"), Some(512.0));
        assert_eq!(value(&items, "proc.memory.percent"), Some(6.25));
        assert_eq!(value(&items, "proc.memory.availableMB"), Some(6144.0));
        assert_eq!(value(&items, "proc.cpu.threads"), Some(7.0));
        // eth0 grew by 2000/300, wlan0 appeared (counts from 0), lo is not counted.
        assert_eq!(value(&items, "network.recv"), Some(2050.0));
        assert_eq!(value(&items, "network.sent"), Some(360.0));
        // sda: 4 MiB read, 3 MiB written; md0 is not counted.
        assert_eq!(value(&items, "disk.in"), Some(4.0));
        assert_eq!(value(&items, "disk.out"), Some(3.0));
        assert_eq!(value(&items, "disk./.usagePercent"), Some(25.0));
        assert_eq!(value(&items, "disk./.usageGB"), Some(25.0));
        // Not counted, or no current figures.
        assert_eq!(value(&items, "disk./boot/efi.usageGB"), None);
        assert_eq!(value(&items, "disk./mnt/nfs.usageGB"), None);
        assert!(!keys(&items).iter().any(|k| k.starts_with("gpu")));
    }

    #[test]
    fn pid_zero_reports_the_system() {
        let snapshot = host(vec![], vec![]);
        let items = stats_items(&snapshot, &snapshot, None, &[]);
        assert_eq!(value(&items, "cpu"), Some(37.5));
        assert_eq!(value(&items, "network.sent"), Some(0.0));
        assert!(value(&items, "proc.memory.availableMB").is_some());
        for key in [
            "proc.memory.rssMB",
            "proc.memory.percent",
            "proc.cpu.threads",
        ] {
            assert_eq!(value(&items, key), None, "{key}");
        }
    }

    #[test]
    fn values_are_json_numbers() {
        let mut items = Items::default();
        items.number("a", 1.5);
        items.number("nan", f64::NAN);
        items.number("inf", f64::INFINITY);
        items.integer("b", u64::MAX);
        assert_eq!(keys(&items.0), ["a", "b"]);
        for item in &items.0 {
            let parsed: serde_json::Value = serde_json::from_str(&item.value_json).unwrap();
            assert!(parsed.is_number(), "{}", item.value_json);
        }
    }

    fn gpu(index: u32, pids: &[u32]) -> Accelerator {
        Accelerator {
            id: format!("nvidia{index}"),
            index,
            kind: AcceleratorKind::Gpu,
            vendor: "nvidia".into(),
            name: "NVIDIA A100-SXM4-80GB".into(),
            uuid: Some(format!("GPU-{index}")),
            utilization_percent: Some(87.0),
            memory_utilization_percent: Some(30.0),
            memory_used_bytes: Some(20 << 30),
            memory_total_bytes: Some(80 << 30),
            temperature_celsius: Some(64.0),
            power_watts: Some(300.0),
            power_limit_watts: Some(400.0),
            fan_speed_percent: None,
            sm_clock_mhz: Some(1410.0),
            memory_clock_mhz: Some(1593.0),
            processes: pids
                .iter()
                .map(|&pid| AcceleratorProcess {
                    pid,
                    memory_used_bytes: Some(1 << 30),
                })
                .collect(),
            ..Accelerator::default()
        }
    }

    #[test]
    fn gpus_map_to_established_keys() {
        let mut snapshot = host(vec![], vec![]);
        snapshot.accelerators = vec![
            gpu(0, &[43]),
            gpu(1, &[999]),
            Accelerator {
                kind: AcceleratorKind::Npu,
                index: 0,
                utilization_percent: Some(5.0),
                ..Accelerator::default()
            },
        ];
        let items = stats_items(&snapshot, &snapshot, Some(&tree(vec![42, 43])), &[]);
        assert_eq!(value(&items, "gpu.0.gpu"), Some(87.0));
        assert_eq!(value(&items, "gpu.0.memory"), Some(30.0));
        assert_eq!(value(&items, "gpu.0.memoryAllocated"), Some(25.0));
        assert_eq!(
            value(&items, "gpu.0.memoryAllocatedBytes"),
            Some((20u64 << 30) as f64)
        );
        assert_eq!(value(&items, "gpu.0.temp"), Some(64.0));
        assert_eq!(value(&items, "gpu.0.powerWatts"), Some(300.0));
        assert_eq!(value(&items, "gpu.0.enforcedPowerLimitWatts"), Some(400.0));
        assert_eq!(value(&items, "gpu.0.powerPercent"), Some(75.0));
        assert_eq!(value(&items, "gpu.0.smClock"), Some(1410.0));
        assert_eq!(value(&items, "gpu.0.memoryClock"), Some(1593.0));
        // Not reported by the device: left out, not 0.
        assert_eq!(value(&items, "gpu.0.fanSpeed"), None);
        assert_eq!(value(&items, "gpu.1.gpu"), Some(87.0));
        // GPU 0 runs pid 43 of the tree; GPU 1 runs someone else's process.
        assert_eq!(value(&items, "gpu.process.0.gpu"), Some(87.0));
        assert_eq!(value(&items, "gpu.process.0.powerPercent"), Some(75.0));
        assert!(!keys(&items).iter().any(|k| k.starts_with("gpu.process.1.")));
        // The NPU is not a GPU.
        assert_eq!(
            keys(&items).iter().filter(|k| k.ends_with(".gpu")).count(),
            3
        );

        let only_one = stats_items(&snapshot, &snapshot, None, &[1]);
        assert_eq!(value(&only_one, "gpu.0.gpu"), None);
        assert_eq!(value(&only_one, "gpu.1.gpu"), Some(87.0));
        // pid 0 has no tree, so no GPU is "its".
        assert!(!keys(&only_one).iter().any(|k| k.starts_with("gpu.process")));
    }

    #[test]
    fn gpu_extras_use_wandbs_keys() {
        let mut snapshot = host(vec![], vec![]);
        let mut a100 = gpu(0, &[]);
        a100.graphics_clock_mhz = Some(1400.0);
        a100.encoder_utilization_percent = Some(3.0);
        a100.decoder_utilization_percent = Some(4.0);
        a100.pcie_link_gen = Some(4);
        a100.pcie_link_width = Some(16);
        a100.ecc_errors_corrected = Some(5);
        a100.ecc_errors_uncorrected = Some(0);
        let mut bare = gpu(1, &[]);
        bare.memory_utilization_percent = None;
        snapshot.accelerators = vec![a100, bare];
        let items = stats_items(&snapshot, &snapshot, None, &[]);
        for (key, expected) in [
            ("gpu.0.graphicsClock", 1400.0),
            ("gpu.0.encoderUtilization", 3.0),
            ("gpu.0.decoderUtilization", 4.0),
            ("gpu.0.pcieLinkGen", 4.0),
            ("gpu.0.pcieLinkWidth", 16.0),
            ("gpu.0.correctedMemoryErrors", 5.0),
            ("gpu.0.uncorrectedMemoryErrors", 0.0),
        ] {
            assert_eq!(value(&items, key), Some(expected), "{key}");
        }
        // No memory-controller reading: `memory` is left out, not replaced by the allocation.
        assert_eq!(value(&items, "gpu.1.memory"), None);
        assert_eq!(value(&items, "gpu.1.memoryAllocated"), Some(25.0));
        assert_eq!(value(&items, "gpu.1.graphicsClock"), None);
        // Vendor-specific keys stay with their vendor.
        assert!(!keys(&items)
            .iter()
            .any(|k| k.ends_with(".memoryReadWriteActivity") || k.ends_with(".freq")));
    }

    #[test]
    fn a_process_in_a_mig_instance_counts_for_its_gpu_and_lost_gpus_are_left_out() {
        let mut snapshot = host(vec![], vec![]);
        let mut mig = gpu(0, &[]);
        mig.mig_devices = vec![crate::model::MigDevice {
            index: 0,
            processes: vec![AcceleratorProcess {
                pid: 43,
                memory_used_bytes: None,
            }],
            ..crate::model::MigDevice::default()
        }];
        let mut lost = gpu(1, &[43]);
        lost.error = Some("GPU is lost".into());
        snapshot.accelerators = vec![mig, lost];
        let items = stats_items(&snapshot, &snapshot, Some(&tree(vec![42, 43])), &[]);
        assert_eq!(value(&items, "gpu.process.0.gpu"), Some(87.0));
        assert!(
            !keys(&items)
                .iter()
                .any(|k| k.starts_with("gpu.1.") || k.starts_with("gpu.process.1.")),
            "{items:?}"
        );
        assert_eq!(value(&items, "gpu.0.gpu"), Some(87.0));
    }

    #[test]
    fn amd_tpu_and_apple_keys() {
        let mut snapshot = host(vec![], vec![]);
        let amd = Accelerator {
            id: "amd0".into(),
            index: 2,
            kind: AcceleratorKind::Gpu,
            vendor: "amd".into(),
            utilization_percent: Some(10.0),
            memory_utilization_percent: Some(7.0),
            power_watts: Some(89.0),
            info: crate::model::AcceleratorInfo {
                max_power_watts: Some(560.0),
                ..crate::model::AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        let tpu = |index| Accelerator {
            id: format!("tpu{index}"),
            index,
            kind: AcceleratorKind::Tpu,
            vendor: "google".into(),
            utilization_percent: Some(55.5),
            memory_used_bytes: Some(4 << 30),
            memory_total_bytes: Some(16 << 30),
            ..Accelerator::default()
        };
        let apple = Accelerator {
            id: "apple0".into(),
            index: 0,
            kind: AcceleratorKind::Gpu,
            vendor: "apple".into(),
            utilization_percent: Some(12.0),
            sm_clock_mhz: Some(1398.0),
            power_watts: Some(2.5),
            ..Accelerator::default()
        };
        snapshot.accelerators = vec![amd, tpu(0), tpu(1), apple];
        let power = |source: &str, watts| PowerReading {
            source: source.into(),
            watts,
        };
        snapshot.power = vec![
            power("cpu_ecluster", 0.5),
            power("cpu_pcluster", 3.0),
            power("ane", 0.25),
            power("dram", 1.0),
        ];
        let items = stats_items(&snapshot, &snapshot, None, &[]);
        for (key, expected) in [
            ("gpu.2.gpu", 10.0),
            ("gpu.2.memoryReadWriteActivity", 7.0),
            ("gpu.2.powerPercent", 89.0 / 560.0 * 100.0),
            ("tpu.0.dutyCycle", 55.5),
            ("tpu.1.memoryUsage", 25.0),
            ("tpu.1.memoryUsageBytes", (4u64 << 30) as f64),
            ("gpu.0.gpu", 12.0),
            ("gpu.0.freq", 1398.0),
            ("gpu.0.powerWatts", 2.5),
            ("cpu.powerWatts", 3.5),
            ("ane.power", 0.25),
        ] {
            assert_eq!(value(&items, key), Some(expected), "{key}");
        }
        assert_eq!(value(&items, "system.powerWatts"), None);
        // The TPUs are not GPUs.
        assert_eq!(value(&items, "gpu.1.gpu"), None);
    }

    #[test]
    fn tree_cpu_percent_uses_deltas_after_the_first_call() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        let mut usage = tree(vec![7]).usage;
        // First call: 12 CPU seconds over 60 s of life on 2 CPUs = 10 %.
        assert_eq!(cpu.percent(&usage, start, 2), 10.0);
        // 2 s later, 3 more CPU seconds on 2 CPUs = 75 %.
        usage.cpu_seconds = 15.0;
        let later = start + Duration::from_secs(2);
        assert_eq!(cpu.percent(&usage, later, 2), 75.0);
        // CPU time that went down (a child left the tree) gives 0, not a negative number.
        usage.cpu_seconds = 1.0;
        assert_eq!(cpu.percent(&usage, later + Duration::from_secs(2), 2), 0.0);
        // A reused pid (another start time) starts over from its own average.
        usage.root_start = 99;
        usage.cpu_seconds = 30.0;
        let reused = cpu.percent(&usage, later + Duration::from_secs(4), 1);
        assert_eq!(reused, 50.0);
        // Unknown age and no previous reading: 0, never NaN.
        let mut fresh = tree(vec![8]).usage;
        fresh.root_age_seconds = None;
        assert_eq!(cpu.percent(&fresh, start, 2), 0.0);
    }

    #[test]
    fn rapid_calls_keep_the_older_reading() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        let mut usage = tree(vec![7]).usage;
        cpu.percent(&usage, start, 1);
        usage.cpu_seconds += 0.5;
        cpu.percent(&usage, start + Duration::from_millis(500), 1);
        // No CPU used since the call 0.5 s ago, but measured from `start`: 0.5 s over 1 s.
        assert_eq!(
            cpu.percent(&usage, start + Duration::from_millis(1000), 1),
            50.0
        );
    }

    #[test]
    fn cpu_table_is_bounded() {
        let mut cpu = TreeCpu::default();
        let start = Instant::now();
        for pid in 0..(MAX_TRACKED_PIDS as u32 + 10) {
            let usage = tree(vec![pid + 1]).usage;
            cpu.percent(&usage, start + Duration::from_millis(u64::from(pid)), 1);
        }
        assert_eq!(cpu.readings.len(), MAX_TRACKED_PIDS);
        // The oldest were dropped.
        assert!(!cpu.readings.contains_key(&1));
        assert!(cpu.readings.contains_key(&(MAX_TRACKED_PIDS as u32 + 10)));
    }

    #[test]
    fn environment_from_info_and_accelerators() {
        let mut snapshot = host(vec![], vec![]);
        snapshot.info = Arc::new(SystemInfo {
            platform: "linux".into(),
            kernel: "6.1.0-18-amd64".into(),
            architecture: "x86_64".into(),
            hostname: "box".into(),
            cpu_cores: 8,
            cpu_threads: 16,
            ..SystemInfo::default()
        });
        let empty = environment(&snapshot);
        assert_eq!(empty.os, "Linux-6.1.0-18-amd64-x86_64");
        assert_eq!(empty.host, "box");
        assert_eq!((empty.cpu_count, empty.cpu_count_logical), (8, 16));
        assert_eq!((empty.gpu_count, empty.gpu_type.as_str()), (0, ""));
        assert!(empty.gpu_nvidia.is_empty() && empty.apple.is_none() && empty.tpu.is_none());

        let mut a100 = gpu(1, &[]);
        a100.info.cores = Some(6912);
        a100.info.architecture = Some("Ampere".into());
        a100.info.cuda_version = Some("12.4".into());
        snapshot.accelerators = vec![gpu(0, &[]), a100];
        let env = environment(&snapshot);
        assert_eq!(env.gpu_count, 2);
        assert_eq!(env.gpu_type, "NVIDIA A100-SXM4-80GB");
        assert_eq!(env.gpu_nvidia.len(), 2);
        assert_eq!(env.gpu_nvidia[1].uuid, "GPU-1");
        assert_eq!(env.gpu_nvidia[0].memory_total, 80 << 30);
        assert_eq!(
            (
                env.gpu_nvidia[1].cuda_cores,
                env.gpu_nvidia[1].architecture.as_str()
            ),
            (6912, "Ampere")
        );
        assert_eq!(env.gpu_nvidia[0].cuda_cores, 0);
        // The first NVIDIA device that knows it.
        assert_eq!(env.cuda_version, "12.4");
    }

    #[test]
    fn environment_of_amd_tpu_and_apple() {
        use crate::model::AcceleratorInfo;
        let mut snapshot = host(vec![], vec![]);
        let amd = Accelerator {
            id: "amd0".into(),
            index: 0,
            kind: AcceleratorKind::Gpu,
            vendor: "amd".into(),
            name: "AMD Instinct MI250X".into(),
            uuid: Some("0x719d230578348e8c".into()),
            info: AcceleratorInfo {
                vbios_version: Some("113-D65209-073".into()),
                performance_level: Some("auto".into()),
                sku: Some("D65209".into()),
                sclk_range: Some("500Mhz - 1700Mhz".into()),
                mclk_range: Some("400Mhz - 1600Mhz".into()),
                max_power_watts: Some(560.0),
                ..AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        let tpu = |index| Accelerator {
            id: format!("tpu{index}"),
            index,
            kind: AcceleratorKind::Tpu,
            vendor: "google".into(),
            name: "TPU v5 lite".into(),
            memory_total_bytes: Some(16 << 30),
            info: AcceleratorInfo {
                architecture: Some("v5e".into()),
                ..AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        let apple = Accelerator {
            id: "apple0".into(),
            kind: AcceleratorKind::Gpu,
            vendor: "apple".into(),
            name: "Apple M3 Max".into(),
            info: AcceleratorInfo {
                cores: Some(40),
                ..AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        snapshot.accelerators = vec![amd, tpu(0), tpu(1), apple];
        let env = environment(&snapshot);
        let amd = &env.gpu_amd[0];
        assert_eq!(
            (
                amd.id.as_str(),
                amd.unique_id.as_str(),
                amd.vbios_version.as_str()
            ),
            ("0", "0x719d230578348e8c", "113-D65209-073")
        );
        assert_eq!(
            (
                amd.performance_level.as_str(),
                amd.max_power.as_str(),
                amd.sku.as_str()
            ),
            ("auto", "560.0", "D65209")
        );
        assert_eq!(amd.series, "AMD Instinct MI250X");
        assert_eq!(
            (amd.sclk_range.as_str(), amd.mclk_range.as_str()),
            ("500Mhz - 1700Mhz", "400Mhz - 1600Mhz")
        );
        let tpu = env.tpu.unwrap();
        assert_eq!((tpu.name.as_str(), tpu.hbm_gib, tpu.count), ("v5e", 16, 2));
        let apple = env.apple.unwrap();
        assert_eq!((apple.name.as_str(), apple.gpu_cores), ("Apple M3 Max", 40));
        assert_eq!((apple.memory_gb, apple.ram_total_bytes), (8, 8 << 30));
        // AMD and Apple GPUs are GPUs; the TPUs are not.
        assert_eq!(env.gpu_count, 2);
        assert_eq!(env.cuda_version, "");
    }

    #[test]
    fn platform_strings() {
        let info = |platform: &str, kernel: &str, os: &str, arch: &str| SystemInfo {
            platform: platform.into(),
            kernel: kernel.into(),
            os_version: os.into(),
            architecture: arch.into(),
            ..SystemInfo::default()
        };
        assert_eq!(
            platform_string(&info("macos", "23.4.0", "macOS 14.4", "arm64")),
            "macOS-14.4-arm64"
        );
        assert_eq!(
            platform_string(&info("windows", "10.0.19045", "", "x86_64")),
            "Windows-10.0.19045"
        );
        assert_eq!(
            platform_string(&info("freebsd", "14.0", "", "x86_64")),
            "Freebsd-14.0-x86_64"
        );
    }
}
