//! The `/api/system/metrics` element: one node at one sample, as agents encode it
//! ([`NodeMetrics::of`]) and the coordinator decodes it (`serde_json::from_slice`), one type for
//! both. Text borrows from the snapshot when encoding and from the bytes when decoding.
//!
//! The contract fields (DESIGN.md) come first and are always present: a section whose collector
//! failed is written as zeros (its `collectors` entry says why) and decodes as zeros. A value the
//! host does not expose is `null`. Never NaN or infinity: [`NodeMetrics::of`] maps non-finite
//! floats to 0 (or `null` where the field is optional). Added fields are camelCase.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};

use crate::model::{self, AcceleratorKind, FilesystemState, Snapshot};

/// Text that borrows where it can.
pub type Text<'a> = Cow<'a, str>;

/// One element of the `/api/system/metrics` array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeMetrics<'a> {
    #[serde(rename = "node_id", borrow)]
    pub node_id: Text<'a>,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// `None` only on the encoding side, when the CPU collector produced nothing (written as
    /// zeros; the typed v1 API leaves the section out).
    #[serde(serialize_with = "zeros_if_none")]
    pub cpu: Option<Cpu>,
    #[serde(serialize_with = "zeros_if_none")]
    pub memory: Option<Memory>,
    /// Space over the counted filesystems, I/O over the counted block devices; `None` only when
    /// neither collector produced anything.
    #[serde(serialize_with = "zeros_if_none")]
    pub disk: Option<Disk>,
    #[serde(serialize_with = "zeros_if_none")]
    pub network: Option<Network>,
    #[serde(borrow)]
    pub accelerators: Vec<Accelerator<'a>>,
    // Added beside the contract.
    #[serde(borrow)]
    pub hostname: Text<'a>,
    #[serde(borrow)]
    pub temperatures: Vec<Sensor<'a>>,
    #[serde(borrow)]
    pub disks: Vec<DiskDevice<'a>>,
    #[serde(borrow)]
    pub filesystems: Vec<Filesystem<'a>>,
    #[serde(borrow)]
    pub interfaces: Vec<Interface<'a>>,
    pub pressure: Option<Pressure>,
    /// Power outside any accelerator (Apple SoC clusters, DRAM); left out where there is none,
    /// so that hosts without such readings keep the shape they always had.
    #[serde(skip_serializing_if = "Vec::is_empty", borrow)]
    pub power: Vec<Power<'a>>,
    #[serde(borrow)]
    pub collectors: Vec<Collector<'a>>,
    /// The series read from outside the monitor (textfiles, exec plugins), by
    /// [`series_key`](crate::model::exposition::series_key) (`name` or
    /// `name{a="b",c="d"}`, labels sorted): numbers only, so that the history keeps them as
    /// `custom.<key>`. Left out when there are none, so hosts without any keep their shape.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, f64>,
}

/// Writes a missing section as its zero value, so the contract's fields are always there.
fn zeros_if_none<T: Serialize + Default, S: Serializer>(
    section: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match section {
        Some(section) => section.serialize(serializer),
        None => T::default().serialize(serializer),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cpu {
    pub overall: f64,
    pub cores: Vec<Core>,
    pub load_average: [f64; 3],
    pub processes: u64,
    pub threads: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Core {
    pub id: u32,
    pub usage: f64,
    /// MHz.
    pub frequency: Option<f64>,
    /// °C.
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    pub usage: f64,
    pub used: u64,
    pub total: u64,
    pub swap: Swap,
    pub available: u64,
    /// Page cache the kernel can drop (Cached + SReclaimable); null where unknown.
    pub cached: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Swap {
    pub used: u64,
    pub total: u64,
    pub percentage: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Disk {
    pub usage: f64,
    pub used: u64,
    pub total: u64,
    pub io_read: f64,
    pub io_write: f64,
    pub iops: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Network {
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub packets_in: f64,
    pub packets_out: f64,
    pub connections: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Accelerator<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(rename = "type")]
    pub kind: AcceleratorKind,
    #[serde(borrow)]
    pub name: Text<'a>,
    pub utilization: Option<f64>,
    pub memory: AcceleratorMemory,
    pub temperature: Option<f64>,
    pub power: Option<f64>,
    pub fan_speed: Option<f64>,
    // Added beside the contract.
    #[serde(borrow)]
    pub vendor: Text<'a>,
    pub index: u32,
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    #[serde(borrow)]
    pub pci_bus_id: Option<Text<'a>>,
    /// W, the limit the driver enforces.
    pub power_limit: Option<f64>,
    /// J since the driver was loaded (a counter).
    pub energy: Option<f64>,
    pub memory_utilization: Option<f64>,
    pub encoder_utilization: Option<f64>,
    pub decoder_utilization: Option<f64>,
    pub memory_temperature: Option<f64>,
    pub sm_clock: Option<f64>,
    pub memory_clock: Option<f64>,
    pub graphics_clock: Option<f64>,
    /// Null when the device reports nothing about its PCIe link.
    pub pcie: Option<Pcie>,
    pub performance_state: Option<u32>,
    /// Names of the active clock throttle reasons; null when the device does not report them.
    #[serde(borrow)]
    pub throttle_reasons: Option<Vec<Text<'a>>>,
    /// The same reasons as NVML's `nvmlClocksEventReasons` bitmask (bits without a name too).
    pub throttle_reasons_mask: Option<u64>,
    /// Null when the device has no ECC counters.
    pub ecc: Option<Ecc>,
    #[serde(borrow)]
    pub mig_devices: Vec<MigDevice<'a>>,
    /// DCGM profiling; null without `--enable-dcgm-profiling` or where DCGM has no answer.
    pub profiling: Option<Profiling>,
    #[serde(borrow)]
    pub processes: Vec<Process<'a>>,
    /// The containers the kubelet allocated the device to (`--kubelet-pod-resources-socket`);
    /// left out where there is none, so that hosts without pod attribution keep their shape.
    #[serde(skip_serializing_if = "Vec::is_empty", borrow)]
    pub pods: Vec<Pod<'a>>,
    #[serde(borrow)]
    pub error: Option<Text<'a>>,
}

/// Bytes; `reserved` is added beside the contract's three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AcceleratorMemory {
    pub used: Option<u64>,
    pub total: Option<u64>,
    pub percentage: Option<f64>,
    pub reserved: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pcie {
    pub tx_bytes_per_sec: Option<f64>,
    pub rx_bytes_per_sec: Option<f64>,
    pub link_gen: Option<u32>,
    pub link_width: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ecc {
    pub corrected: Option<u64>,
    pub uncorrected: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MigDevice<'a> {
    pub index: u32,
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    pub gpu_instance_id: Option<u32>,
    pub compute_instance_id: Option<u32>,
    #[serde(borrow)]
    pub profile: Option<Text<'a>>,
    pub multiprocessors: Option<u32>,
    pub memory: MigMemory,
    #[serde(borrow)]
    pub processes: Vec<Process<'a>>,
    /// The containers the kubelet allocated the instance to; left out where there is none.
    #[serde(skip_serializing_if = "Vec::is_empty", borrow)]
    pub pods: Vec<Pod<'a>>,
}

/// The instance's own memory, bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigMemory {
    pub used: Option<u64>,
    pub total: Option<u64>,
    pub percentage: Option<f64>,
}

/// Ratios 0–1 as DCGM reports them, and bytes per second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Profiling {
    pub graphics_engine_active: Option<f64>,
    pub sm_active: Option<f64>,
    pub sm_occupancy: Option<f64>,
    pub tensor_active: Option<f64>,
    pub dram_active: Option<f64>,
    pub fp64_active: Option<f64>,
    pub fp32_active: Option<f64>,
    pub fp16_active: Option<f64>,
    pub pcie_tx_bytes_per_sec: Option<f64>,
    pub pcie_rx_bytes_per_sec: Option<f64>,
    pub nvlink_tx_bytes_per_sec: Option<f64>,
    pub nvlink_rx_bytes_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Process<'a> {
    pub pid: u32,
    /// Bytes; null where the driver does not say (MIG without privileges).
    pub memory_used: Option<u64>,
    /// The pod the process runs in (from its cgroup); left out outside pods.
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub pod: Option<ProcessPod<'a>>,
}

/// A container a device is allocated to (the kubelet's names; the Prometheus labels `namespace`,
/// `pod`, `container`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pod<'a> {
    #[serde(borrow)]
    pub namespace: Text<'a>,
    /// The pod's name.
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub container: Text<'a>,
}

/// The pod of a process: its UID from the cgroup; the names where one container holds the
/// process's device, else null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessPod<'a> {
    #[serde(borrow)]
    pub uid: Text<'a>,
    #[serde(borrow)]
    pub namespace: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    #[serde(borrow)]
    pub container: Option<Text<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Power<'a> {
    #[serde(borrow)]
    pub source: Text<'a>,
    pub watts: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Sensor<'a> {
    #[serde(borrow)]
    pub chip: Text<'a>,
    #[serde(borrow)]
    pub chip_name: Text<'a>,
    #[serde(borrow)]
    pub sensor: Text<'a>,
    #[serde(borrow)]
    pub label: Option<Text<'a>>,
    pub temperature: f64,
    pub critical: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DiskDevice<'a> {
    #[serde(borrow)]
    pub device: Text<'a>,
    pub io_read: f64,
    pub io_write: f64,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub iops: f64,
    pub utilization: f64,
    pub counted_in_total: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Filesystem<'a> {
    #[serde(borrow)]
    pub device: Text<'a>,
    #[serde(borrow)]
    pub mountpoint: Text<'a>,
    #[serde(borrow)]
    pub fstype: Text<'a>,
    pub size: u64,
    pub used: u64,
    pub avail: u64,
    pub usage: f64,
    pub readonly: bool,
    /// `ok`, `timed_out` or `error`.
    #[serde(borrow)]
    pub state: Text<'a>,
    #[serde(borrow)]
    pub error: Option<Text<'a>>,
    pub counted_in_total: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Interface<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub packets_in: f64,
    pub packets_out: f64,
    pub counted_in_total: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pressure {
    pub cpu: Option<PressureResource>,
    pub memory: Option<PressureResource>,
    pub io: Option<PressureResource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PressureResource {
    pub some: PressureLine,
    pub full: Option<PressureLine>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Collector<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    pub ok: bool,
    #[serde(borrow)]
    pub error: Option<Text<'a>>,
    pub duration_seconds: f64,
}

/// A float that is safe in JSON: non-finite becomes 0.
pub(super) fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// An optional float that is safe in JSON: non-finite becomes null.
pub(super) fn finite_opt(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// `used` over `total` in percent, when both are known and `total` is not 0.
fn memory_percentage(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(used), Some(total)) if total > 0 => Some(model::percent(used as f64, total as f64)),
        _ => None,
    }
}

impl<'a> NodeMetrics<'a> {
    /// The element of `snapshot`, borrowing its text.
    pub fn of(snapshot: &'a Snapshot) -> Self {
        let fs = snapshot.filesystems.as_ref();
        let disks = snapshot.disks.as_ref();
        let network = snapshot.network.as_ref();
        NodeMetrics {
            node_id: Cow::Borrowed(&snapshot.node_id),
            timestamp: snapshot.timestamp_ms,
            cpu: snapshot.cpu.as_ref().map(|c| Cpu {
                overall: finite(c.usage_percent),
                cores: c
                    .cores
                    .iter()
                    .map(|core| Core {
                        id: core.id,
                        usage: finite(core.usage_percent),
                        frequency: finite_opt(core.frequency_mhz),
                        temperature: finite_opt(core.temperature_celsius),
                    })
                    .collect(),
                load_average: c.load_average.map(finite),
                processes: c.processes,
                threads: c.threads,
            }),
            memory: snapshot.memory.as_ref().map(|m| Memory {
                usage: finite(m.usage_percent),
                used: m.used_bytes,
                total: m.total_bytes,
                swap: Swap {
                    used: m.swap_used_bytes,
                    total: m.swap_total_bytes,
                    percentage: finite(m.swap_percent),
                },
                available: m.available_bytes,
                cached: m.cached_bytes,
            }),
            disk: (fs.is_some() || disks.is_some()).then(|| Disk {
                usage: finite(fs.map_or(0.0, |f| f.usage_percent)),
                used: fs.map_or(0, |f| f.used_bytes),
                total: fs.map_or(0, |f| f.total_bytes),
                io_read: finite(disks.map_or(0.0, |d| d.read_bytes_per_sec)),
                io_write: finite(disks.map_or(0.0, |d| d.write_bytes_per_sec)),
                iops: finite(disks.map_or(0.0, |d| d.iops)),
            }),
            network: network.map(|n| Network {
                bytes_in: finite(n.receive_bytes_per_sec),
                bytes_out: finite(n.transmit_bytes_per_sec),
                packets_in: finite(n.receive_packets_per_sec),
                packets_out: finite(n.transmit_packets_per_sec),
                connections: n.connections(),
            }),
            accelerators: snapshot.accelerators.iter().map(Accelerator::of).collect(),
            hostname: Cow::Borrowed(&snapshot.hostname),
            temperatures: snapshot
                .temperatures
                .iter()
                .flatten()
                .map(|s| Sensor {
                    chip: Cow::Borrowed(&s.chip),
                    chip_name: Cow::Borrowed(&s.chip_name),
                    sensor: Cow::Borrowed(&s.sensor),
                    label: s.label.as_deref().map(Cow::Borrowed),
                    temperature: finite(s.celsius),
                    critical: finite_opt(s.critical_celsius),
                    max: finite_opt(s.max_celsius),
                })
                .collect(),
            disks: disks.map_or_else(Vec::new, |d| {
                d.devices
                    .iter()
                    .map(|d| DiskDevice {
                        device: Cow::Borrowed(&d.name),
                        io_read: finite(d.read_bytes_per_sec),
                        io_write: finite(d.write_bytes_per_sec),
                        reads_per_sec: finite(d.reads_per_sec),
                        writes_per_sec: finite(d.writes_per_sec),
                        iops: finite(d.reads_per_sec + d.writes_per_sec),
                        utilization: finite(d.utilization_percent),
                        counted_in_total: d.counted_in_total,
                    })
                    .collect()
            }),
            filesystems: fs
                .map_or_else(Vec::new, |f| f.mounts.iter().map(Filesystem::of).collect()),
            interfaces: network.map_or_else(Vec::new, |n| {
                n.interfaces
                    .iter()
                    .map(|i| Interface {
                        name: Cow::Borrowed(&i.name),
                        bytes_in: finite(i.receive_bytes_per_sec),
                        bytes_out: finite(i.transmit_bytes_per_sec),
                        packets_in: finite(i.receive_packets_per_sec),
                        packets_out: finite(i.transmit_packets_per_sec),
                        counted_in_total: i.counted_in_total,
                    })
                    .collect()
            }),
            pressure: snapshot.pressure.as_ref().map(Pressure::of),
            power: snapshot
                .power
                .iter()
                .map(|p| Power {
                    source: Cow::Borrowed(&p.source),
                    watts: finite(p.watts),
                })
                .collect(),
            collectors: snapshot
                .collectors
                .iter()
                .map(|c| Collector {
                    name: Cow::Borrowed(&c.name),
                    ok: c.ok,
                    error: c.error.as_deref().map(Cow::Borrowed),
                    duration_seconds: finite(c.duration_seconds),
                })
                .collect(),
            custom: model::exposition::custom_series(&snapshot.foreign_families),
        }
    }
}

impl<'a> Filesystem<'a> {
    fn of(m: &'a model::FilesystemStats) -> Self {
        let (state, error) = match &m.state {
            FilesystemState::Ok => ("ok", None),
            FilesystemState::TimedOut => ("timed_out", None),
            FilesystemState::Error(e) => ("error", Some(Cow::Borrowed(e.as_str()))),
        };
        Filesystem {
            device: Cow::Borrowed(&m.device),
            mountpoint: Cow::Borrowed(&m.mountpoint),
            fstype: Cow::Borrowed(&m.fstype),
            size: m.size_bytes,
            used: m.size_bytes.saturating_sub(m.free_bytes),
            avail: m.avail_bytes,
            usage: finite(m.usage_percent),
            readonly: m.readonly,
            state: Cow::Borrowed(state),
            error,
            counted_in_total: m.counted_in_total,
        }
    }
}

impl Pressure {
    fn of(p: &model::PressureStats) -> Self {
        let line = |l: &model::PressureLine| PressureLine {
            avg10: finite(l.avg10),
            avg60: finite(l.avg60),
            avg300: finite(l.avg300),
            total_seconds: finite(l.total_seconds),
        };
        let resource = |r: &Option<model::PressureResource>| {
            r.as_ref().map(|r| PressureResource {
                some: line(&r.some),
                full: r.full.as_ref().map(line),
            })
        };
        Pressure {
            cpu: resource(&p.cpu),
            memory: resource(&p.memory),
            io: resource(&p.io),
        }
    }
}

impl<'a> Accelerator<'a> {
    /// The element's view of one device (its static facts are in the info object instead).
    pub fn of(a: &'a model::Accelerator) -> Self {
        let pcie = (a.pcie_tx_bytes_per_sec.is_some()
            || a.pcie_rx_bytes_per_sec.is_some()
            || a.pcie_link_gen.is_some()
            || a.pcie_link_width.is_some())
        .then(|| Pcie {
            tx_bytes_per_sec: finite_opt(a.pcie_tx_bytes_per_sec),
            rx_bytes_per_sec: finite_opt(a.pcie_rx_bytes_per_sec),
            link_gen: a.pcie_link_gen,
            link_width: a.pcie_link_width,
        });
        let ecc = (a.ecc_errors_corrected.is_some() || a.ecc_errors_uncorrected.is_some())
            .then_some(Ecc {
                corrected: a.ecc_errors_corrected,
                uncorrected: a.ecc_errors_uncorrected,
            });
        let throttle_reasons =
            (a.throttle_reasons.is_some() || !a.throttle_reason_names.is_empty()).then(|| {
                a.throttle_reason_names
                    .iter()
                    .map(|n| Cow::Borrowed(*n))
                    .collect()
            });
        Accelerator {
            id: Cow::Borrowed(&a.id),
            kind: a.kind,
            name: Cow::Borrowed(&a.name),
            utilization: finite_opt(a.utilization_percent),
            memory: AcceleratorMemory {
                used: a.memory_used_bytes,
                total: a.memory_total_bytes,
                percentage: memory_percentage(a.memory_used_bytes, a.memory_total_bytes),
                reserved: a.memory_reserved_bytes,
            },
            temperature: finite_opt(a.temperature_celsius),
            power: finite_opt(a.power_watts),
            fan_speed: finite_opt(a.fan_speed_percent),
            vendor: Cow::Borrowed(a.vendor.as_str()),
            index: a.index,
            uuid: a.uuid.as_deref().map(Cow::Borrowed),
            pci_bus_id: a.pci_bus_id.as_deref().map(Cow::Borrowed),
            power_limit: finite_opt(a.power_limit_watts),
            energy: finite_opt(a.energy_joules),
            memory_utilization: finite_opt(a.memory_utilization_percent),
            encoder_utilization: finite_opt(a.encoder_utilization_percent),
            decoder_utilization: finite_opt(a.decoder_utilization_percent),
            memory_temperature: finite_opt(a.memory_temperature_celsius),
            sm_clock: finite_opt(a.sm_clock_mhz),
            memory_clock: finite_opt(a.memory_clock_mhz),
            graphics_clock: finite_opt(a.graphics_clock_mhz),
            pcie,
            performance_state: a.performance_state,
            throttle_reasons,
            throttle_reasons_mask: a.throttle_reasons,
            ecc,
            mig_devices: a
                .mig_devices
                .iter()
                .map(|m| MigDevice {
                    index: m.index,
                    uuid: m.uuid.as_deref().map(Cow::Borrowed),
                    gpu_instance_id: m.gpu_instance_id,
                    compute_instance_id: m.compute_instance_id,
                    profile: m.profile.as_deref().map(Cow::Borrowed),
                    multiprocessors: m.multiprocessors,
                    memory: MigMemory {
                        used: m.memory_used_bytes,
                        total: m.memory_total_bytes,
                        percentage: memory_percentage(m.memory_used_bytes, m.memory_total_bytes),
                    },
                    processes: processes(&m.processes),
                    pods: pods(&m.pods),
                })
                .collect(),
            profiling: a.profiling.as_ref().map(|p| Profiling {
                graphics_engine_active: finite_opt(p.graphics_engine_active),
                sm_active: finite_opt(p.sm_active),
                sm_occupancy: finite_opt(p.sm_occupancy),
                tensor_active: finite_opt(p.tensor_active),
                dram_active: finite_opt(p.dram_active),
                fp64_active: finite_opt(p.fp64_active),
                fp32_active: finite_opt(p.fp32_active),
                fp16_active: finite_opt(p.fp16_active),
                pcie_tx_bytes_per_sec: finite_opt(p.pcie_tx_bytes_per_sec),
                pcie_rx_bytes_per_sec: finite_opt(p.pcie_rx_bytes_per_sec),
                nvlink_tx_bytes_per_sec: finite_opt(p.nvlink_tx_bytes_per_sec),
                nvlink_rx_bytes_per_sec: finite_opt(p.nvlink_rx_bytes_per_sec),
            }),
            processes: processes(&a.processes),
            pods: pods(&a.pods),
            error: a.error.as_deref().map(Cow::Borrowed),
        }
    }
}

fn processes(processes: &[model::AcceleratorProcess]) -> Vec<Process<'_>> {
    processes
        .iter()
        .map(|p| Process {
            pid: p.pid,
            memory_used: p.memory_used_bytes,
            pod: p.pod.as_ref().map(|pod| ProcessPod {
                uid: Cow::Borrowed(&pod.uid),
                namespace: pod.namespace.as_deref().map(Cow::Borrowed),
                name: pod.name.as_deref().map(Cow::Borrowed),
                container: pod.container.as_deref().map(Cow::Borrowed),
            }),
        })
        .collect()
}

fn pods(pods: &[model::PodRef]) -> Vec<Pod<'_>> {
    pods.iter()
        .map(|p| Pod {
            namespace: Cow::Borrowed(&p.namespace),
            name: Cow::Borrowed(&p.name),
            container: Cow::Borrowed(&p.container),
        })
        .collect()
}

/// The `/api/system/metrics` array of `snapshots`, as JSON bytes.
pub fn metrics_array_json<'a>(
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
) -> Result<Vec<u8>, serde_json::Error> {
    let elements: Vec<NodeMetrics<'_>> = snapshots.into_iter().map(NodeMetrics::of).collect();
    serde_json::to_vec(&elements)
}

/// The `/api/system/metrics` array of one snapshot answered under each of `node_ids`, one
/// element per id, as JSON bytes: what a monitor not named with `--node-id` answers to
/// `?node_id=a,b` (it takes any id to name it).
pub fn metrics_array_json_as(
    snapshot: &Snapshot,
    node_ids: &[&str],
) -> Result<Vec<u8>, serde_json::Error> {
    let mut element = NodeMetrics::of(snapshot);
    let mut out = vec![b'['];
    for (i, id) in node_ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        element.node_id = Cow::Owned((*id).to_string());
        serde_json::to_writer(&mut out, &element)?;
    }
    out.push(b']');
    Ok(out)
}

/// What the coordinator reads of an element on every poll — which node, which sample, its size
/// and load, and the figures of the headline view ([`super::Headline`]) — decoded from the
/// element's bytes without the rest. Decoding the whole [`NodeMetrics`] (every number of a
/// 16 KiB element: 64 cores, 8 GPUs) cost the coordinator 60 µs more per poll, 0.06 of a core
/// at 1,000 agents polled each second (`bench/RESULTS.md`); the full element is decoded only
/// for gRPC. The names are [`NodeMetrics`]' own, and a test decodes encoded elements both ways.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Summary<'a> {
    #[serde(rename = "node_id", borrow)]
    pub node_id: Text<'a>,
    /// Unix milliseconds.
    pub timestamp: i64,
    #[serde(default, borrow)]
    pub hostname: Text<'a>,
    pub cpu: CpuSummary,
    pub memory: Memory,
    #[serde(default)]
    pub disk: Disk,
    #[serde(default)]
    pub network: Network,
    #[serde(default, borrow)]
    pub accelerators: Vec<AcceleratorSummary<'a>>,
}

/// `cpu.overall` and the number of `cpu.cores`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CpuSummary {
    pub overall: f64,
    /// One (zero-sized, never allocated) entry per core.
    #[serde(default)]
    pub cores: Vec<Counted>,
}

/// An array entry that is counted, not read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counted;

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Counted)
    }
}

/// An accelerator's figures that the headline view summarises.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AcceleratorSummary<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    pub utilization: Option<f64>,
    pub memory: AcceleratorMemory,
    pub temperature: Option<f64>,
    pub power: Option<f64>,
}
