//! Accelerators: GPUs, NPUs, TPUs. Filled by the vendor collectors (`collect::accel`); empty where
//! there are none. One [`Accelerator`] per physical device; MIG instances of an NVIDIA GPU are listed
//! inside their parent ([`Accelerator::mig_devices`]).

use serde::{Deserialize, Serialize};

/// Kind of accelerator, as the REST `type` field spells it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AcceleratorKind {
    #[default]
    Gpu,
    Npu,
    Tpu,
    /// Anything else; a kind this build does not know reads as this one.
    #[serde(other)]
    Other,
}

impl AcceleratorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gpu => "gpu",
            Self::Npu => "npu",
            Self::Tpu => "tpu",
            Self::Other => "other",
        }
    }
}

/// Who makes an accelerator, as the REST `vendor` field and the `vendor` label spell it.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Not set: spelled `""`, as the vendor was before it had a type.
    #[default]
    #[serde(rename = "")]
    Unknown,
    Nvidia,
    Amd,
    Intel,
    Google,
    Apple,
}

impl Vendor {
    /// Every vendor but [`Vendor::Unknown`].
    const KNOWN: [Self; 5] = [
        Self::Nvidia,
        Self::Amd,
        Self::Intel,
        Self::Google,
        Self::Apple,
    ];

    /// The name as REST, gRPC and Prometheus spell it: `nvidia`, `amd`, …; `""` for
    /// [`Vendor::Unknown`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "",
            Self::Nvidia => "nvidia",
            Self::Amd => "amd",
            Self::Intel => "intel",
            Self::Google => "google",
            Self::Apple => "apple",
        }
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The vendor spelled `name` (as [`Vendor::as_str`] spells it); [`Vendor::Unknown`] for any other
/// name. For fixtures that name vendors in text.
impl From<&str> for Vendor {
    fn from(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|v| v.as_str() == name)
            .unwrap_or_default()
    }
}

impl PartialEq<str> for Vendor {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl PartialEq<&str> for Vendor {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// One accelerator device at one sample. Values a device does not report are `None`.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Accelerator {
    /// Stable id within the node, e.g. `nvidia0`, `amd1`, `npu0`, `tpu0`, `apple0`.
    pub id: String,
    /// Index among devices of the same vendor (NVML index, DRM card number, accel minor, …).
    pub index: u32,
    pub kind: AcceleratorKind,
    /// Who makes it.
    pub vendor: Vendor,
    /// Product name.
    pub name: String,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    /// Static facts: driver, architecture, cores, vendor details.
    pub info: AcceleratorInfo,

    /// Busy share of the compute engines (NVML GPU utilization, AMD gpu_busy_percent, TPU duty
    /// cycle, NPU busy time over the interval), 0–100.
    pub utilization_percent: Option<f64>,
    /// Share of time the memory controller was busy (NVML "memory" utilization), 0–100.
    pub memory_utilization_percent: Option<f64>,
    /// Video encoder busy share, 0–100.
    pub encoder_utilization_percent: Option<f64>,
    /// Video decoder busy share, 0–100.
    pub decoder_utilization_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// Memory the driver reserves (NVML v2 memory info), not usable by processes.
    pub memory_reserved_bytes: Option<u64>,
    pub temperature_celsius: Option<f64>,
    /// Memory (HBM) temperature, where reported.
    pub memory_temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    /// Enforced power limit.
    pub power_limit_watts: Option<f64>,
    /// Energy used since the driver was loaded, joules (a counter).
    pub energy_joules: Option<f64>,
    pub fan_speed_percent: Option<f64>,
    /// SM (shader/compute engine) clock; the GPU clock on AMD and Apple, the NPU clock on Intel.
    pub sm_clock_mhz: Option<f64>,
    pub memory_clock_mhz: Option<f64>,
    pub graphics_clock_mhz: Option<f64>,
    /// PCIe throughput, bytes per second, as the device reports it (NVML samples ~20 ms windows).
    pub pcie_tx_bytes_per_sec: Option<f64>,
    pub pcie_rx_bytes_per_sec: Option<f64>,
    /// Current PCIe link generation and width (lanes).
    pub pcie_link_gen: Option<u32>,
    pub pcie_link_width: Option<u32>,
    /// Performance state, 0 (P0, most performance) to 15; AMD: none (see `info.performance_level`).
    pub performance_state: Option<u32>,
    /// NVML clock event (throttle) reasons bitmask, as `nvmlClocksEventReasons`.
    pub throttle_reasons: Option<u64>,
    /// The same reasons by name (`sw_power_cap`, `hw_slowdown`, …), for readers without the table.
    pub throttle_reason_names: Vec<&'static str>,
    /// ECC errors since the driver was loaded (volatile), corrected (single bit) and uncorrected.
    pub ecc_errors_corrected: Option<u64>,
    pub ecc_errors_uncorrected: Option<u64>,
    /// MIG instances of this GPU when MIG mode is on (empty otherwise).
    pub mig_devices: Vec<MigDevice>,
    /// DCGM profiling fields (`--enable-dcgm-profiling`), when DCGM answered for this device.
    pub profiling: Option<ProfilingStats>,
    /// Processes using the device.
    pub processes: Vec<AcceleratorProcess>,
    /// The containers the kubelet allocated the whole device to (`collect::pods`, with
    /// `--kubelet-pod-resources-socket`); empty where none is, or where attribution is off. Several
    /// where the GPU is shared (time-slicing). Left out of the serialized model when empty, as on
    /// the wire, so that hosts without attribution keep their shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodRef>,
    /// Why the device could not be read (fully) this sample: device lost, driver error.
    pub error: Option<String>,
}

/// Facts about a device that do not change while it is present.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct AcceleratorInfo {
    /// Kernel driver version (NVML system driver version, amdgpu module version).
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports, e.g. `12.4`.
    pub cuda_version: Option<String>,
    /// Architecture, e.g. `Hopper`, `gfx1100`, `v5e`.
    pub architecture: Option<String>,
    /// CUDA cores / compute units / GPU cores.
    pub cores: Option<u32>,
    /// VBIOS version.
    pub vbios_version: Option<String>,
    /// AMD `power_dpm_force_performance_level` (`auto`, `manual`, …).
    pub performance_level: Option<String>,
    /// AMD board SKU / product number.
    pub sku: Option<String>,
    /// AMD shader clock range, e.g. `500Mhz - 2500Mhz`.
    pub sclk_range: Option<String>,
    /// AMD memory clock range.
    pub mclk_range: Option<String>,
    /// Maximum power (cap ceiling), watts.
    pub max_power_watts: Option<f64>,
    /// Whether MIG mode is on (NVIDIA), `None` where MIG does not exist.
    pub mig_enabled: Option<bool>,
}

/// One MIG instance of an NVIDIA GPU, with its own memory figures.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct MigDevice {
    /// MIG device index within the parent GPU.
    pub index: u32,
    pub uuid: Option<String>,
    /// GPU instance id (dcgm-exporter's `GPU_I_ID`).
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id.
    pub compute_instance_id: Option<u32>,
    /// Profile name, e.g. `1g.10gb` (dcgm-exporter's `GPU_I_PROFILE`).
    pub profile: Option<String>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    /// Streaming multiprocessors in the instance.
    pub multiprocessors: Option<u32>,
    /// Processes running in this instance.
    pub processes: Vec<AcceleratorProcess>,
    /// The containers the kubelet allocated this instance to (by its MIG UUID).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodRef>,
}

/// DCGM profiling fields of one device, each a ratio 0–1 (as DCGM reports them) or bytes per
/// second. `None` where DCGM returned no value for the field.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ProfilingStats {
    /// DCGM_FI_PROF_GR_ENGINE_ACTIVE.
    pub graphics_engine_active: Option<f64>,
    /// DCGM_FI_PROF_SM_ACTIVE.
    pub sm_active: Option<f64>,
    /// DCGM_FI_PROF_SM_OCCUPANCY.
    pub sm_occupancy: Option<f64>,
    /// DCGM_FI_PROF_PIPE_TENSOR_ACTIVE.
    pub tensor_active: Option<f64>,
    /// DCGM_FI_PROF_DRAM_ACTIVE.
    pub dram_active: Option<f64>,
    /// DCGM_FI_PROF_PIPE_FP64_ACTIVE.
    pub fp64_active: Option<f64>,
    /// DCGM_FI_PROF_PIPE_FP32_ACTIVE.
    pub fp32_active: Option<f64>,
    /// DCGM_FI_PROF_PIPE_FP16_ACTIVE.
    pub fp16_active: Option<f64>,
    /// DCGM_FI_PROF_PCIE_TX_BYTES (bytes per second).
    pub pcie_tx_bytes_per_sec: Option<f64>,
    /// DCGM_FI_PROF_PCIE_RX_BYTES (bytes per second).
    pub pcie_rx_bytes_per_sec: Option<f64>,
    /// DCGM_FI_PROF_NVLINK_TX_BYTES (bytes per second).
    pub nvlink_tx_bytes_per_sec: Option<f64>,
    /// DCGM_FI_PROF_NVLINK_RX_BYTES (bytes per second).
    pub nvlink_rx_bytes_per_sec: Option<f64>,
}

/// A process running on an accelerator.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct AcceleratorProcess {
    pub pid: u32,
    /// Device memory the process uses (`None` where the driver does not say, e.g. under MIG
    /// without privileges).
    pub memory_used_bytes: Option<u64>,
    /// The Kubernetes pod the process runs in, from its cgroup (`collect::pods`); `None` outside
    /// any pod, or where attribution is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<ProcessPod>,
}

/// A container a device is allocated to, as the kubelet's PodResources API names it.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The container's name within the pod.
    pub container: String,
}

/// The pod a process runs in. Its cgroup gives the pod's UID; the names come from the device's
/// allocation, where exactly one container holds the device the process runs on (the kubelet's
/// PodResources API names pods but gives no UID, so a shared device leaves them unknown).
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct ProcessPod {
    /// The pod's UID, from the kubepods cgroup path.
    pub uid: String,
    pub namespace: Option<String>,
    /// The pod's name.
    pub name: Option<String>,
    /// The container's name within the pod.
    pub container: Option<String>,
}

/// A power reading that belongs to no accelerator device: Apple's CPU clusters and DRAM
/// (IOReport energy model), named by `source` (`cpu_ecluster`, `cpu_pcluster`, `dram`, `package`).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PowerReading {
    pub source: String,
    pub watts: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vendor_is_spelled_one_way() {
        assert_eq!(Vendor::default(), Vendor::Unknown);
        for vendor in Vendor::KNOWN.into_iter().chain([Vendor::Unknown]) {
            let json = serde_json::to_string(&vendor).unwrap();
            assert_eq!(json, format!("\"{}\"", vendor.as_str()));
            assert_eq!(vendor.to_string(), vendor.as_str());
            assert_eq!(Vendor::from(vendor.as_str()), vendor);
            assert_eq!(vendor, vendor.as_str());
        }
        assert_eq!(Vendor::Unknown.as_str(), "");
        assert_eq!(Vendor::from("matrox"), Vendor::Unknown);
    }
}
