//! The NVML queries a device may not support and what the collector does when one fails: each
//! query is asked until the device answers "not supported", then never again; a failure that
//! means the GPU or the driver is gone becomes a [`DeviceError`]. No NVML calls of its own.

use nvml_wrapper::error::NvmlError;

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
}
