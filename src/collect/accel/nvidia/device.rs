//! One NVIDIA GPU through NVML: its static facts (read when it is scanned), its readings each
//! sample, and the queries it does not support (remembered, so never asked again).

use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::sys_exports::field_id::NVML_FI_DEV_MEMORY_TEMP;
use nvml_wrapper::{Device, Nvml};

use super::convert;
use super::mig::{self, Mig};
use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, AcceleratorProcess};

/// A device handle kept between samples: NVML handles stay valid until `nvmlShutdown`, so no
/// sample looks a device up again.
#[derive(Clone, Copy)]
pub struct RawHandle(nvml_wrapper_sys::bindings::nvmlDevice_t);

// SAFETY: an NVML handle is an opaque pointer owned by the library, which is thread-safe
// ("NVML is thread-safe so it is safe to make simultaneous NVML calls from multiple threads");
// the collector moves handles between threads only together with the `Nvml` they belong to.
unsafe impl Send for RawHandle {}

impl RawHandle {
    /// The handle of `device`.
    pub fn of(device: &Device<'_>) -> Self {
        // SAFETY: reading the pointer has no effect; it is used only with the same `Nvml`.
        Self(unsafe { device.handle() })
    }

    /// The device again.
    ///
    /// # Safety
    /// The handle must come from `nvml`, and `nvml` must not have been shut down since. The
    /// collector clears every handle before it shuts its `Nvml` down.
    pub unsafe fn device(self, nvml: &Nvml) -> Device<'_> {
        Device::new(self.0, nvml)
    }

    /// The raw pointer, for the NVML functions nvml-wrapper does not wrap.
    pub fn raw(self) -> nvml_wrapper_sys::bindings::nvmlDevice_t {
        self.0
    }
}

/// Queries a device may not support; each is asked until the device says so, then never again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Query {
    Utilization,
    Encoder,
    Decoder,
    Memory,
    Temperature,
    MemoryTemperature,
    Power,
    PowerLimit,
    PowerConstraints,
    Energy,
    SmClock,
    MemoryClock,
    GraphicsClock,
    Fan,
    Pcie,
    LinkGen,
    LinkWidth,
    PerformanceState,
    Throttle,
    EccCorrected,
    EccUncorrected,
    ComputeProcesses,
    GraphicsProcesses,
    Name,
    Uuid,
    PciInfo,
    Architecture,
    Cores,
    Vbios,
    MigMode,
    MigDevices,
    MigInstanceIds,
    MigAttributes,
    MigProfile,
    MigInstanceProfile,
}

impl Query {
    /// The NVML function behind the query, for logs and errors.
    pub fn function(self) -> &'static str {
        match self {
            Self::Utilization => "nvmlDeviceGetUtilizationRates",
            Self::Encoder => "nvmlDeviceGetEncoderUtilization",
            Self::Decoder => "nvmlDeviceGetDecoderUtilization",
            Self::Memory => "nvmlDeviceGetMemoryInfo_v2",
            Self::Temperature => "nvmlDeviceGetTemperature",
            Self::MemoryTemperature => "nvmlDeviceGetFieldValues",
            Self::Power => "nvmlDeviceGetPowerUsage",
            Self::PowerLimit => "nvmlDeviceGetEnforcedPowerLimit",
            Self::PowerConstraints => "nvmlDeviceGetPowerManagementLimitConstraints",
            Self::Energy => "nvmlDeviceGetTotalEnergyConsumption",
            Self::SmClock | Self::MemoryClock | Self::GraphicsClock => "nvmlDeviceGetClockInfo",
            Self::Fan => "nvmlDeviceGetFanSpeed_v2",
            Self::Pcie => "nvmlDeviceGetPcieThroughput",
            Self::LinkGen => "nvmlDeviceGetCurrPcieLinkGeneration",
            Self::LinkWidth => "nvmlDeviceGetCurrPcieLinkWidth",
            Self::PerformanceState => "nvmlDeviceGetPerformanceState",
            Self::Throttle => "nvmlDeviceGetCurrentClocksThrottleReasons",
            Self::EccCorrected | Self::EccUncorrected => "nvmlDeviceGetTotalEccErrors",
            Self::ComputeProcesses => "nvmlDeviceGetComputeRunningProcesses_v3",
            Self::GraphicsProcesses => "nvmlDeviceGetGraphicsRunningProcesses_v3",
            Self::Name => "nvmlDeviceGetName",
            Self::Uuid => "nvmlDeviceGetUUID",
            Self::PciInfo => "nvmlDeviceGetPciInfo_v3",
            Self::Architecture => "nvmlDeviceGetArchitecture",
            Self::Cores => "nvmlDeviceGetNumGpuCores",
            Self::Vbios => "nvmlDeviceGetVbiosVersion",
            Self::MigMode => "nvmlDeviceGetMigMode",
            Self::MigDevices => "nvmlDeviceGetMigDeviceHandleByIndex",
            Self::MigInstanceIds => "nvmlDeviceGetGpuInstanceId",
            Self::MigAttributes => "nvmlDeviceGetAttributes_v2",
            Self::MigProfile => "nvmlDeviceGetGpuInstanceProfileInfoV",
            Self::MigInstanceProfile => "nvmlDeviceGetGpuInstanceById",
        }
    }
}

/// The set of queries a device answered "not supported" to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsupported(u64);

impl Unsupported {
    fn contains(self, query: Query) -> bool {
        self.0 & (1 << query as u8) != 0
    }

    fn insert(&mut self, query: Query) {
        self.0 |= 1 << query as u8;
    }
}

/// A query failed in a way that means the device (or NVML) is gone: GPU lost, driver unloaded,
/// library uninitialised. The device is reported with this error and NVML re-initialised.
#[derive(Debug, thiserror::Error)]
#[error("nvidia{index}: {function}: {source}")]
pub struct DeviceError {
    /// NVML index of the GPU.
    pub index: u32,
    /// The NVML function that failed.
    pub function: &'static str,
    /// What NVML said.
    #[source]
    pub source: NvmlError,
}

/// How the collector treats an NVML error.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The device or library will never answer this query: remember and stop asking.
    Unsupported,
    /// The device or the driver is gone: report it and re-initialise NVML.
    Fatal,
    /// Anything else (a timeout, no data yet): no value this sample, ask again next time.
    Transient,
}

/// Sorts an NVML error into what the collector does about it.
pub fn classify(error: &NvmlError) -> Failure {
    match error {
        // FunctionNotFound: the driver lacks the entry point; FailedToLoadSymbol: the library
        // does (an older libnvidia-ml). NoPermission and InvalidArg do not change between calls
        // with the same arguments on the same device.
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_)
        | NvmlError::LibraryNotFound
        | NvmlError::NoPermission
        | NvmlError::InvalidArg => Failure::Unsupported,
        NvmlError::GpuLost
        | NvmlError::Unknown
        | NvmlError::Uninitialized
        | NvmlError::DriverNotLoaded
        | NvmlError::ResetRequired
        | NvmlError::LibRmVersionMismatch => Failure::Fatal,
        _ => Failure::Transient,
    }
}

/// Runs the queries of one device, skipping those it does not support.
pub struct Reader<'a> {
    /// NVML index of the GPU (for errors and logs).
    pub index: u32,
    /// What this device (or MIG device) does not support.
    pub unsupported: &'a mut Unsupported,
}

impl Reader<'_> {
    /// The answer to `query`, `None` where the device does not support it (remembered) or
    /// answered nothing this time, an error where the device is gone.
    pub fn get<T>(
        &mut self,
        query: Query,
        call: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Result<Option<T>, DeviceError> {
        if self.unsupported.contains(query) {
            return Ok(None);
        }
        match call() {
            Ok(value) => Ok(Some(value)),
            Err(error) => match classify(&error) {
                Failure::Unsupported => {
                    self.unsupported.insert(query);
                    tracing::debug!(
                        gpu = self.index,
                        function = query.function(),
                        %error,
                        "NVML query not supported by this device; not asked again"
                    );
                    Ok(None)
                }
                Failure::Fatal => Err(DeviceError {
                    index: self.index,
                    function: query.function(),
                    source: error,
                }),
                Failure::Transient => Ok(None),
            },
        }
    }
}

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
                vendor: "nvidia".to_string(),
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
    pub fn scan(&mut self, nvml: &Nvml, system: &SystemFacts) -> Result<(), DeviceError> {
        if self.handle.is_none() {
            let device = nvml
                .device_by_index(self.index)
                .map_err(|source| DeviceError {
                    index: self.index,
                    function: "nvmlDeviceGetHandleByIndex_v2",
                    source,
                })?;
            let handle = RawHandle::of(&device);
            self.read_facts(&device, system)?;
            self.handle = Some(handle);
            self.lost = None;
        } else if self.lost.is_some() {
            return Ok(());
        }
        let Some(handle) = self.handle else {
            return Ok(());
        };
        self.scan_mig(nvml, handle)
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

    fn scan_mig(&mut self, nvml: &Nvml, handle: RawHandle) -> Result<(), DeviceError> {
        // SAFETY: `handle` belongs to `nvml` (handles are cleared before a shutdown).
        let device = unsafe { handle.device(nvml) };
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
            nvml,
            &device,
            self.index,
            &mut q,
            &mut self.mig_profiles,
            previous,
        )?;
        Ok(())
    }

    /// Reads the GPU now. An error means the GPU (or NVML) is gone.
    pub fn sample(&mut self, nvml: &Nvml) -> Result<Accelerator, DeviceError> {
        let Some(handle) = self.handle else {
            return Ok(self.unavailable("not found by NVML"));
        };
        // SAFETY: `handle` belongs to `nvml` (handles are cleared before a shutdown).
        let device = unsafe { handle.device(nvml) };
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
            a.mig_devices.push(mig.sample(nvml, self.index)?);
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

/// Processes as the model lists them: one entry per pid (a process using the GPU for compute and
/// graphics appears in both NVML lists; the first entry is kept).
pub fn merge_processes(list: impl IntoIterator<Item = ProcessInfo>) -> Vec<AcceleratorProcess> {
    let mut out: Vec<AcceleratorProcess> = Vec::new();
    for p in list {
        if out.iter().any(|o| o.pid == p.pid) {
            continue;
        }
        out.push(AcceleratorProcess {
            pid: p.pid,
            memory_used_bytes: match p.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => Some(bytes),
                UsedGpuMemory::Unavailable => None,
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sorted() {
        assert_eq!(classify(&NvmlError::NotSupported), Failure::Unsupported);
        assert_eq!(classify(&NvmlError::FunctionNotFound), Failure::Unsupported);
        assert_eq!(
            classify(&NvmlError::FailedToLoadSymbol("x".into())),
            Failure::Unsupported
        );
        assert_eq!(classify(&NvmlError::GpuLost), Failure::Fatal);
        assert_eq!(classify(&NvmlError::DriverNotLoaded), Failure::Fatal);
        assert_eq!(classify(&NvmlError::Uninitialized), Failure::Fatal);
        assert_eq!(classify(&NvmlError::Unknown), Failure::Fatal);
        assert_eq!(classify(&NvmlError::Timeout), Failure::Transient);
        assert_eq!(classify(&NvmlError::NoData), Failure::Transient);
    }

    #[test]
    fn an_unsupported_query_is_asked_once() {
        let mut unsupported = Unsupported::default();
        let mut q = Reader {
            index: 0,
            unsupported: &mut unsupported,
        };
        let mut calls = 0;
        for _ in 0..3 {
            let answer: Option<u32> = q
                .get(Query::Fan, || {
                    calls += 1;
                    Err(NvmlError::NotSupported)
                })
                .ok()
                .flatten();
            assert_eq!(answer, None);
        }
        assert_eq!(calls, 1);
        // A transient failure is asked again; other queries are unaffected.
        let mut transient = 0;
        for _ in 0..2 {
            let _ = q.get(Query::Power, || -> Result<u32, _> {
                transient += 1;
                Err(NvmlError::Timeout)
            });
        }
        assert_eq!(transient, 2);
        let fatal = q.get(Query::Temperature, || -> Result<u32, _> {
            Err(NvmlError::GpuLost)
        });
        let error = fatal.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            error.starts_with("nvidia0: nvmlDeviceGetTemperature:"),
            "{error}"
        );
    }

    #[test]
    fn processes_are_listed_once_per_pid() {
        let p = |pid, used| ProcessInfo {
            pid,
            used_gpu_memory: used,
            gpu_instance_id: None,
            compute_instance_id: None,
        };
        let merged = merge_processes([
            p(10, UsedGpuMemory::Used(64)),
            p(11, UsedGpuMemory::Unavailable),
            p(10, UsedGpuMemory::Used(32)),
        ]);
        assert_eq!(
            merged,
            [
                AcceleratorProcess {
                    pid: 10,
                    memory_used_bytes: Some(64)
                },
                AcceleratorProcess {
                    pid: 11,
                    memory_used_bytes: None
                },
            ]
        );
    }
}
