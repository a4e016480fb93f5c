//! One NVIDIA GPU through NVML: its static facts (read when it is scanned), its readings each
//! sample, and the queries it does not support (remembered, so never asked again).

use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use nvml_wrapper::{Device, Nvml};

use super::convert::{self, merge_processes};
use super::mig::{self, Mig};
use super::query::{DeviceError, Query, Reader, Unsupported};
use super::raw::{RawHandle, Session};
use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, Vendor};

/// Facts about the driver, shared by every GPU.
#[derive(Debug, Clone, Default)]
pub struct SystemFacts {
    /// `nvmlSystemGetDriverVersion`.
    pub driver_version: Option<String>,
    /// `nvmlSystemGetCudaDriverVersion_v2` as `major.minor`.
    pub cuda_version: Option<String>,
}

impl SystemFacts {
    /// Reads them; a missing answer leaves the field empty.
    pub fn read(nvml: &Nvml) -> Self {
        Self {
            driver_version: nvml.sys_driver_version().ok(),
            cuda_version: nvml
                .sys_cuda_driver_version()
                .ok()
                .and_then(convert::cuda_version),
        }
    }
}

/// PCIe throughput is read over a ~20 ms window by the driver. Where that window makes the
/// call block (which could not be measured without a GPU), it is read only every this many
/// samples, keeping the last figures in between.
const SLOW_PCIE_EVERY: u32 = 10;
/// Two throughput calls taking longer than this are "slow".
const SLOW_PCIE_CALLS: Duration = Duration::from_millis(2);

/// The last PCIe throughput figures and how often they are read.
#[derive(Debug, Default)]
struct PcieThroughput {
    /// Transmit and receive, bytes per second.
    last: (Option<f64>, Option<f64>),
    /// The calls were slow: read every [`SLOW_PCIE_EVERY`] samples only.
    slow: bool,
    /// Samples until the next read, when slow.
    countdown: u32,
}

/// One GPU slot, by NVML index. Kept across NVML re-initialisations, so that a lost GPU is still
/// reported under its id, name and UUID.
pub struct Gpu {
    /// NVML index.
    pub index: u32,
    /// The handle in the current NVML session; `None` before the scan and after a shutdown.
    pub handle: Option<RawHandle>,
    /// Why the GPU cannot be read, while it cannot (lost, driver gone).
    pub lost: Option<String>,
    /// Identity and static facts as the accelerator carries them, from the last good scan.
    facts: Accelerator,
    /// Queries this GPU does not support.
    unsupported: Unsupported,
    /// MIG devices, when MIG mode is on.
    mig: Vec<Mig>,
    /// GPU instance profiles (id, name) of this GPU, read once when it first has MIG devices.
    mig_profiles: Option<Vec<(u32, String)>>,
    /// PCIe throughput cadence.
    pcie: PcieThroughput,
}

impl Gpu {
    /// An empty slot for NVML index `index`.
    pub fn new(index: u32) -> Self {
        Self {
            index,
            handle: None,
            lost: None,
            facts: Accelerator {
                id: format!("nvidia{index}"),
                index,
                kind: AcceleratorKind::Gpu,
                vendor: Vendor::Nvidia,
                ..Accelerator::default()
            },
            unsupported: Unsupported::default(),
            mig: Vec::new(),
            mig_profiles: None,
            pcie: PcieThroughput::default(),
        }
    }

    /// Forgets every handle: their NVML session is about to end.
    pub fn forget_handles(&mut self) {
        self.handle = None;
        self.mig.clear();
    }

    /// Marks the GPU unreadable for `why`.
    pub fn lose(&mut self, why: String) {
        self.lost = Some(why);
    }

    /// The GPU's identity with `error` set: what is reported while it cannot be read.
    pub fn unavailable(&self, error: &str) -> Accelerator {
        Accelerator {
            error: Some(error.to_string()),
            ..self.identity()
        }
    }

    fn identity(&self) -> Accelerator {
        self.facts.clone()
    }

    /// Finds the GPU in a new session (a fresh handle and its static facts), or refreshes its
    /// MIG layout in the current one. A lost GPU is left alone until NVML is re-initialised.
    pub fn scan(&mut self, session: &Session, system: &SystemFacts) -> Result<(), DeviceError> {
        if self.handle.is_none() {
            let device = session
                .nvml()
                .device_by_index(self.index)
                .map_err(|source| self.handle_error(source))?;
            let handle = session.keep(&device);
            self.read_facts(&device, system)?;
            self.handle = Some(handle);
            self.lost = None;
        } else if self.lost.is_some() {
            return Ok(());
        }
        let Some(handle) = self.handle else {
            return Ok(());
        };
        self.scan_mig(session, handle)
    }

    /// A failure to get this GPU's handle.
    fn handle_error(&self, source: NvmlError) -> DeviceError {
        DeviceError {
            index: self.index,
            function: "nvmlDeviceGetHandleByIndex_v2",
            source,
        }
    }

    fn read_facts(&mut self, device: &Device<'_>, system: &SystemFacts) -> Result<(), DeviceError> {
        let mut q = Reader {
            index: self.index,
            unsupported: &mut self.unsupported,
        };
        let uuid = q.get(Query::Uuid, || device.uuid())?;
        if uuid != self.facts.uuid {
            // Another board at this index (or the first scan): nothing remembered applies.
            *q.unsupported = Unsupported::default();
            self.mig_profiles = None;
        }
        let name = q.get(Query::Name, || device.name())?;
        let pci_bus_id = q
            .get(Query::PciInfo, || device.pci_info())?
            .map(|p| p.bus_id);
        let architecture = q
            .get(Query::Architecture, || device.architecture())?
            .map(|a| a.to_string())
            .filter(|a| a != "Unknown");
        let cores = q.get(Query::Cores, || device.num_cores())?;
        let vbios_version = q.get(Query::Vbios, || device.vbios_version())?;
        let max_power_watts = q
            .get(Query::PowerConstraints, || {
                device.power_management_limit_constraints()
            })?
            .map(|c| convert::milliwatts_to_watts(c.max_limit));
        self.facts.uuid = uuid;
        self.facts.name = name.unwrap_or_else(|| "NVIDIA GPU".to_string());
        self.facts.pci_bus_id = pci_bus_id;
        self.facts.info = AcceleratorInfo {
            driver_version: system.driver_version.clone(),
            cuda_version: system.cuda_version.clone(),
            architecture,
            cores,
            vbios_version,
            max_power_watts,
            ..AcceleratorInfo::default()
        };
        Ok(())
    }

    fn scan_mig(&mut self, session: &Session, handle: RawHandle) -> Result<(), DeviceError> {
        let device = session
            .device(handle)
            .map_err(|source| self.handle_error(source))?;
        let mut q = Reader {
            index: self.index,
            unsupported: &mut self.unsupported,
        };
        let enabled = q
            .get(Query::MigMode, || device.mig_mode())?
            .map(|m| m.current == nvml_wrapper_sys::bindings::NVML_DEVICE_MIG_ENABLE);
        self.facts.info.mig_enabled = enabled;
        if enabled != Some(true) {
            self.mig.clear();
            return Ok(());
        }
        let previous = std::mem::take(&mut self.mig);
        self.mig = mig::scan(
            session,
            &device,
            self.index,
            &mut q,
            &mut self.mig_profiles,
            previous,
        )?;
        Ok(())
    }

    /// Reads the GPU now. An error means the GPU (or NVML) is gone.
    pub fn sample(&mut self, session: &Session) -> Result<Accelerator, DeviceError> {
        let Some(handle) = self.handle else {
            return Ok(self.unavailable("not found by NVML"));
        };
        let device = session
            .device(handle)
            .map_err(|source| self.handle_error(source))?;
        let mut a = self.identity();
        let mut q = Reader {
            index: self.index,
            unsupported: &mut self.unsupported,
        };

        if let Some(u) = q.get(Query::Utilization, || device.utilization_rates())? {
            a.utilization_percent = Some(f64::from(u.gpu));
            a.memory_utilization_percent = Some(f64::from(u.memory));
        }
        a.encoder_utilization_percent = q
            .get(Query::Encoder, || device.encoder_utilization())?
            .map(|u| f64::from(u.utilization));
        a.decoder_utilization_percent = q
            .get(Query::Decoder, || device.decoder_utilization())?
            .map(|u| f64::from(u.utilization));
        if let Some(m) = q.get(Query::Memory, || device.memory_info())? {
            a.memory_used_bytes = Some(m.used);
            a.memory_total_bytes = Some(m.total);
            a.memory_reserved_bytes = Some(m.reserved);
        }
        a.temperature_celsius = q
            .get(Query::Temperature, || {
                device.temperature(TemperatureSensor::Gpu)
            })?
            .map(f64::from);
        a.memory_temperature_celsius = q
            .get(Query::MemoryTemperature, || memory_temperature(&device))?
            .map(f64::from);
        a.power_watts = q
            .get(Query::Power, || device.power_usage())?
            .map(convert::milliwatts_to_watts);
        a.power_limit_watts = q
            .get(Query::PowerLimit, || device.enforced_power_limit())?
            .map(convert::milliwatts_to_watts);
        a.energy_joules = q
            .get(Query::Energy, || device.total_energy_consumption())?
            .map(convert::millijoules_to_joules);
        a.sm_clock_mhz = q
            .get(Query::SmClock, || device.clock_info(Clock::SM))?
            .map(f64::from);
        a.memory_clock_mhz = q
            .get(Query::MemoryClock, || device.clock_info(Clock::Memory))?
            .map(f64::from);
        a.graphics_clock_mhz = q
            .get(Query::GraphicsClock, || device.clock_info(Clock::Graphics))?
            .map(f64::from);
        a.fan_speed_percent = q.get(Query::Fan, || device.fan_speed(0))?.map(f64::from);
        (a.pcie_tx_bytes_per_sec, a.pcie_rx_bytes_per_sec) =
            read_pcie(&mut self.pcie, &device, &mut q)?;
        a.pcie_link_gen = q.get(Query::LinkGen, || device.current_pcie_link_gen())?;
        a.pcie_link_width = q.get(Query::LinkWidth, || device.current_pcie_link_width())?;
        a.performance_state = q
            .get(Query::PerformanceState, || device.performance_state())?
            .and_then(|p| convert::performance_state(p.as_c()));
        if let Some(reasons) = q.get(Query::Throttle, || device.current_throttle_reasons())? {
            let bits = reasons.bits();
            a.throttle_reasons = Some(bits);
            a.throttle_reason_names = convert::throttle_reason_names(bits);
        }
        a.ecc_errors_corrected = q.get(Query::EccCorrected, || {
            device.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
        })?;
        a.ecc_errors_uncorrected = q.get(Query::EccUncorrected, || {
            device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
        })?;
        let compute = q.get(Query::ComputeProcesses, || {
            device.running_compute_processes()
        })?;
        let graphics = q.get(Query::GraphicsProcesses, || {
            device.running_graphics_processes()
        })?;
        a.processes = merge_processes(compute.into_iter().chain(graphics).flatten());

        for mig in &mut self.mig {
            a.mig_devices.push(mig.sample(session, self.index)?);
        }
        Ok(a)
    }
}

/// HBM temperature (°C): NVML has it only as a field value (`NVML_FI_DEV_MEMORY_TEMP`). A
/// board without it answers NOT_SUPPORTED inside the field, which counts as the query's answer.
fn memory_temperature(device: &Device<'_>) -> Result<u32, NvmlError> {
    let fields = device.field_values_for(&[FieldId(NVML_FI_DEV_MEMORY_TEMP)])?;
    let sample = fields.into_iter().next().ok_or(NvmlError::NotSupported)??;
    match sample.value? {
        SampleValue::U32(v) => Ok(v),
        SampleValue::U64(v) => u32::try_from(v).map_err(|_| NvmlError::NotSupported),
        SampleValue::I64(v) => u32::try_from(v).map_err(|_| NvmlError::NotSupported),
        SampleValue::F64(v) if v.is_finite() && v >= 0.0 => Ok(v as u32),
        SampleValue::F64(_) => Err(NvmlError::NotSupported),
    }
}

/// PCIe throughput (bytes per second), every sample unless the calls proved slow.
fn read_pcie(
    cache: &mut PcieThroughput,
    device: &Device<'_>,
    q: &mut Reader<'_>,
) -> Result<(Option<f64>, Option<f64>), DeviceError> {
    if cache.slow && cache.countdown > 0 {
        cache.countdown -= 1;
        return Ok(cache.last);
    }
    let started = Instant::now();
    let tx = q.get(Query::Pcie, || {
        device.pcie_throughput(PcieUtilCounter::Send)
    })?;
    let rx = q.get(Query::Pcie, || {
        device.pcie_throughput(PcieUtilCounter::Receive)
    })?;
    if !cache.slow && started.elapsed() > SLOW_PCIE_CALLS {
        cache.slow = true;
        tracing::debug!(
            "NVML PCIe throughput calls block; reading them every {SLOW_PCIE_EVERY} samples"
        );
    }
    cache.countdown = SLOW_PCIE_EVERY - 1;
    cache.last = (
        tx.map(convert::pcie_kb_to_bytes_per_sec),
        rx.map(convert::pcie_kb_to_bytes_per_sec),
    );
    Ok(cache.last)
}
