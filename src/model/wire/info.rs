//! The `/api/system/info` object: a node's static facts plus the totals of its sample, as agents
//! encode it ([`Info::of`]) and the coordinator decodes it. snake_case, as the contract's fields.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::element::{finite_opt, Text};
use crate::model::{self, AcceleratorKind, Snapshot};

/// `/api/system/info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Info<'a> {
    #[serde(borrow)]
    pub platform: Text<'a>,
    #[serde(borrow)]
    pub architecture: Text<'a>,
    #[serde(borrow)]
    pub cpu_model: Text<'a>,
    /// Physical cores.
    pub cpu_cores: u32,
    /// Logical CPUs.
    pub cpu_threads: u32,
    /// Bytes; 0 when unknown.
    pub memory_total: u64,
    pub swap_total: u64,
    pub disk_total: u64,
    pub gpu_count: u32,
    /// GPU product names.
    #[serde(borrow)]
    pub gpu_info: Vec<Text<'a>>,
    #[serde(borrow)]
    pub hostname: Text<'a>,
    #[serde(borrow)]
    pub ip_address: Text<'a>,
    // Added beside the contract.
    #[serde(borrow)]
    pub node_id: Text<'a>,
    #[serde(borrow)]
    pub kernel: Text<'a>,
    #[serde(borrow)]
    pub os_version: Text<'a>,
    /// Unix seconds.
    pub boot_time: i64,
    #[serde(borrow)]
    pub version: Text<'a>,
    /// The GPUs among `accelerators`.
    #[serde(borrow)]
    pub gpus: Vec<DeviceInfo<'a>>,
    /// Every accelerator, GPUs included.
    #[serde(borrow)]
    pub accelerators: Vec<DeviceInfo<'a>>,
}

/// One accelerator's static facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceInfo<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    pub index: u32,
    #[serde(rename = "type")]
    pub kind: AcceleratorKind,
    #[serde(borrow)]
    pub vendor: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    #[serde(borrow)]
    pub pci_bus_id: Option<Text<'a>>,
    /// Bytes.
    pub memory_total: Option<u64>,
    #[serde(borrow)]
    pub driver_version: Option<Text<'a>>,
    #[serde(borrow)]
    pub cuda_version: Option<Text<'a>>,
    #[serde(borrow)]
    pub architecture: Option<Text<'a>>,
    /// CUDA cores, compute units or GPU cores.
    pub cores: Option<u32>,
    #[serde(borrow)]
    pub vbios_version: Option<Text<'a>>,
    #[serde(borrow)]
    pub performance_level: Option<Text<'a>>,
    #[serde(borrow)]
    pub sku: Option<Text<'a>>,
    #[serde(borrow)]
    pub sclk_range: Option<Text<'a>>,
    #[serde(borrow)]
    pub mclk_range: Option<Text<'a>>,
    /// W, the highest power cap the board allows.
    pub max_power: Option<f64>,
    /// Null where MIG does not exist.
    pub mig_enabled: Option<bool>,
    #[serde(borrow)]
    pub mig_devices: Vec<MigInfo<'a>>,
}

/// One MIG instance's static facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MigInfo<'a> {
    pub index: u32,
    #[serde(borrow)]
    pub uuid: Option<Text<'a>>,
    pub gpu_instance_id: Option<u32>,
    pub compute_instance_id: Option<u32>,
    #[serde(borrow)]
    pub profile: Option<Text<'a>>,
    /// Bytes.
    pub memory_total: Option<u64>,
    pub multiprocessors: Option<u32>,
}

impl<'a> Info<'a> {
    /// The info object of `snapshot`, borrowing its text.
    pub fn of(snapshot: &'a Snapshot) -> Self {
        let info = &snapshot.info;
        let gpus: Vec<DeviceInfo<'a>> = snapshot
            .accelerators
            .iter()
            .filter(|a| a.kind == AcceleratorKind::Gpu)
            .map(DeviceInfo::of)
            .collect();
        let hostname = if info.hostname.is_empty() {
            &snapshot.hostname
        } else {
            &info.hostname
        };
        let boot_time = match info.boot_time_seconds {
            0 => snapshot.cpu.as_ref().map_or(0, |c| c.boot_time_seconds),
            known => known,
        };
        Info {
            platform: Cow::Borrowed(&info.platform),
            architecture: Cow::Borrowed(&info.architecture),
            cpu_model: Cow::Borrowed(&info.cpu_model),
            cpu_cores: info.cpu_cores,
            cpu_threads: info.cpu_threads,
            memory_total: snapshot.memory.as_ref().map_or(0, |m| m.total_bytes),
            swap_total: snapshot.memory.as_ref().map_or(0, |m| m.swap_total_bytes),
            disk_total: snapshot.filesystems.as_ref().map_or(0, |f| f.total_bytes),
            gpu_count: u32::try_from(gpus.len()).unwrap_or(u32::MAX),
            gpu_info: gpus.iter().map(|g| g.name.clone()).collect(),
            hostname: Cow::Borrowed(hostname),
            ip_address: Cow::Borrowed(&info.ip_address),
            node_id: Cow::Borrowed(&snapshot.node_id),
            kernel: Cow::Borrowed(&info.kernel),
            os_version: Cow::Borrowed(&info.os_version),
            boot_time,
            version: Cow::Borrowed(crate::VERSION),
            gpus,
            accelerators: snapshot.accelerators.iter().map(DeviceInfo::of).collect(),
        }
    }
}

impl<'a> DeviceInfo<'a> {
    /// One device's identity and static facts.
    pub fn of(a: &'a model::Accelerator) -> Self {
        let info = &a.info;
        let text = |t: &'a Option<String>| t.as_deref().map(Cow::Borrowed);
        DeviceInfo {
            id: Cow::Borrowed(&a.id),
            index: a.index,
            kind: a.kind,
            vendor: Cow::Borrowed(a.vendor.as_str()),
            name: Cow::Borrowed(&a.name),
            uuid: text(&a.uuid),
            pci_bus_id: text(&a.pci_bus_id),
            memory_total: a.memory_total_bytes,
            driver_version: text(&info.driver_version),
            cuda_version: text(&info.cuda_version),
            architecture: text(&info.architecture),
            cores: info.cores,
            vbios_version: text(&info.vbios_version),
            performance_level: text(&info.performance_level),
            sku: text(&info.sku),
            sclk_range: text(&info.sclk_range),
            mclk_range: text(&info.mclk_range),
            max_power: finite_opt(info.max_power_watts),
            mig_enabled: info.mig_enabled,
            mig_devices: a
                .mig_devices
                .iter()
                .map(|m| MigInfo {
                    index: m.index,
                    uuid: text(&m.uuid),
                    gpu_instance_id: m.gpu_instance_id,
                    compute_instance_id: m.compute_instance_id,
                    profile: text(&m.profile),
                    memory_total: m.memory_total_bytes,
                    multiprocessors: m.multiprocessors,
                })
                .collect(),
        }
    }
}
