//! The legacy `tracklab_internal.SystemMonitorService` (GetStats, GetMetadata, TearDown),
//! wire-compatible with the messages the TrackLab SDK and wandb-style launchers use. Reads the
//! latest snapshot; only GetStats' pid tree is read on demand ([`crate::collect::process`]).
//!
//! `GetStats` keys and units follow the established system-metrics naming (see DESIGN.md, "gRPC,
//! legacy"): percents are 0–100, `*MB` are MiB, `*GB` GiB, `disk.in`/`disk.out` MiB since the
//! monitor started, `network.sent`/`network.recv` bytes since the monitor started.
//!
//! A pid tree's `cpu` is measured between two GetStats calls for the same pid (the service keeps
//! the previous reading in a [`TreeCpu`]); the first call for a pid reports the tree's average
//! since the root process started, as there is nothing earlier to compare with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tonic::{Request, Response, Status};

use super::AppState;
use crate::collect::process::{self, ProcessError, TreeCpu, TreeUsage};
use crate::model::{
    percent, Accelerator, AcceleratorKind, AcceleratorProcess, FilesystemState, PowerReading,
    Snapshot, SystemInfo, Vendor,
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
    // The series of textfiles and exec plugins, keyed as the REST element's `custom` map.
    for (key, value) in crate::model::exposition::custom_series(&snapshot.foreign_families) {
        items.number(format!("custom.{key}"), value);
    }
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
    let limit = match gpu.vendor {
        Vendor::Amd => gpu.power_limit_watts.or(gpu.info.max_power_watts),
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
    match gpu.vendor {
        // wandb's AMD monitor names the memory busy share so (rocm-smi's "GPU Memory Read/Write
        // Activity").
        Vendor::Amd => items.maybe(
            format!("{prefix}.memoryReadWriteActivity"),
            gpu.memory_utilization_percent,
        ),
        // wandb's Apple monitor reports the GPU clock as `freq`.
        Vendor::Apple => items.maybe(format!("{prefix}.freq"), gpu.sm_clock_mhz),
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
    let of_vendor = |vendor: Vendor| gpus.iter().filter(move |g| g.vendor == vendor);
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
        gpu_nvidia: of_vendor(Vendor::Nvidia)
            .map(|g| GpuNvidiaInfo {
                name: g.name.clone(),
                memory_total: g.memory_total_bytes.unwrap_or(0),
                cuda_cores: g.info.cores.unwrap_or(0),
                architecture: text(&g.info.architecture),
                uuid: text(&g.uuid),
            })
            .collect(),
        gpu_amd: of_vendor(Vendor::Amd)
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
                vendor: g.vendor.to_string(),
                sku: text(&g.info.sku),
                sclk_range: text(&g.info.sclk_range),
                mclk_range: text(&g.info.mclk_range),
                ..GpuAmdInfo::default()
            })
            .collect(),
        apple: of_vendor(Vendor::Apple).next().map(|g| {
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
        cuda_version: of_vendor(Vendor::Nvidia)
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
mod tests;
