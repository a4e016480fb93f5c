//! Accelerators: GPUs, NPUs, TPUs. Filled by the vendor collectors; empty where there are none.

use serde::Serialize;

/// Kind of accelerator, as the REST `type` field spells it.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AcceleratorKind {
    #[default]
    Gpu,
    Npu,
    Tpu,
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

/// One accelerator device at one sample. Values a device does not report are `None`.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Accelerator {
    /// Stable id within the node, e.g. `nvidia0`, `amd1`, `npu0`.
    pub id: String,
    /// Index among devices of the same vendor (NVML index, DRM card number, …).
    pub index: u32,
    pub kind: AcceleratorKind,
    /// `nvidia`, `amd`, `apple`, `intel`, `google`.
    pub vendor: String,
    /// Product name.
    pub name: String,
    pub uuid: Option<String>,
    pub pci_bus_id: Option<String>,
    pub utilization_percent: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub temperature_celsius: Option<f64>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub fan_speed_percent: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    pub memory_clock_mhz: Option<f64>,
    /// Processes using the device.
    pub processes: Vec<AcceleratorProcess>,
    /// Why the device could not be read this sample (device lost, driver error).
    pub error: Option<String>,
}

/// A process running on an accelerator.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct AcceleratorProcess {
    pub pid: u32,
    pub memory_used_bytes: Option<u64>,
}
