//! The System Management Controller (SMC) through IOKit's `AppleSMC` user client: key
//! enumeration and reads, used for the GPU die temperatures (`Tg..` keys). Reads the SMC; writes
//! nothing.
//!
//! The user client takes one 80-byte struct in and out (selector 2, `kSMCHandleYPCEvent`), with a
//! command byte saying what to do; the layout is Apple's `SMCKeyData_t` from the long-published
//! `smc.h` (used by smcFanControl, iStats, macmon).

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::mem::size_of;

use objc2_io_kit::{
    io_connect_t, kIOReturnSuccess, IOConnectCallStructMethod, IOServiceClose, IOServiceOpen,
};

use super::decode::{
    decode_smc_value, four_char_code, four_char_text, is_gpu_temperature_key, mean_celsius,
};
use super::iokit;

/// `kSMCHandleYPCEvent`: the user client's one method.
const SELECTOR: u32 = 2;
/// Command: read a key's value.
const CMD_READ_KEY: u8 = 5;
/// Command: the key at an index (enumeration).
const CMD_KEY_AT_INDEX: u8 = 8;
/// Command: a key's size and type.
const CMD_KEY_INFO: u8 = 9;
/// Most keys an SMC was seen to have is ~2,500; enumeration stops here whatever `#KEY` says.
const MAX_KEYS: u32 = 10_000;

unsafe extern "C" {
    /// The task's own port, set by libSystem before `main` (what `mach_task_self()` returns).
    static mach_task_self_: libc::mach_port_t;
}

/// `SMCKeyData_vers_t`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct KeyDataVersion {
    /// Firmware major version.
    major: u8,
    /// Firmware minor version.
    minor: u8,
    /// Firmware build.
    build: u8,
    /// Padding byte of the C struct.
    reserved: u8,
    /// Firmware release.
    release: u16,
}

/// `SMCKeyData_pLimitData_t`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PowerLimitData {
    /// Struct version.
    version: u16,
    /// Struct length.
    length: u16,
    /// CPU power limit.
    cpu_limit: u32,
    /// GPU power limit.
    gpu_limit: u32,
    /// Memory power limit.
    memory_limit: u32,
}

/// `SMCKeyData_keyInfo_t`: a key's value size and type.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Bytes of the value (at most 32).
    data_size: u32,
    /// Four-character type code (`flt `, `sp78`, …).
    data_type: u32,
    /// Access attributes.
    data_attributes: u8,
}

/// `SMCKeyData_t`: the struct the user client reads and writes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct KeyData {
    /// Four-character key code.
    key: u32,
    /// Firmware version (`kSMCReadVers`; unused here).
    version: KeyDataVersion,
    /// Power limits (`kSMCReadPLimit`; unused here).
    power_limit: PowerLimitData,
    /// Size and type of the key (in for reads, out for `CMD_KEY_INFO`).
    key_info: KeyInfo,
    /// SMC result code: 0 is success, 132 is "no such key".
    result: u8,
    /// SMC status.
    status: u8,
    /// The command (`CMD_*`).
    data8: u8,
    /// Command argument (the index for `CMD_KEY_AT_INDEX`).
    data32: u32,
    /// The value, `key_info.data_size` bytes of it.
    bytes: [u8; 32],
}

// The kernel checks the size; a layout drift would fail every call, so fail the build instead.
const _: () = assert!(size_of::<KeyData>() == 80);

/// Why an SMC call failed.
#[derive(Debug, thiserror::Error)]
pub enum SmcError {
    /// No `AppleSMC` service (a VM).
    #[error("no AppleSMC service")]
    NoService,
    /// `IOServiceOpen` failed.
    #[error("opening AppleSMC: IOKit error {0:#x}")]
    Open(i32),
    /// The user-client call failed.
    #[error("SMC key {key}: IOKit error {code:#x}")]
    Call {
        /// The key asked for.
        key: String,
        /// The `kern_return_t`.
        code: i32,
    },
    /// The SMC answered with an error (132: no such key).
    #[error("SMC key {key}: SMC result {result}")]
    Result {
        /// The key asked for.
        key: String,
        /// The SMC result byte.
        result: u8,
    },
}

/// An open connection to the SMC, closed on drop.
pub struct Smc {
    /// The user-client connection.
    connection: io_connect_t,
}

impl Drop for Smc {
    fn drop(&mut self) {
        IOServiceClose(self.connection);
    }
}

impl Smc {
    /// Opens the SMC. Apple Silicon has several `AppleSMC` services; the keys are served by the
    /// one named `AppleSMCKeysEndpoint`, so that one is tried first.
    pub fn open() -> Result<Self, SmcError> {
        let mut services = iokit::services(c"AppleSMC");
        services.sort_by_key(|(_, name)| name != "AppleSMCKeysEndpoint");
        let mut last = SmcError::NoService;
        for (service, _) in &services {
            let mut connection: io_connect_t = 0;
            // SAFETY: a live service handle, the task's own port (a process-global initialised
            // before main), and a valid out pointer.
            let code = unsafe { IOServiceOpen(service.raw(), mach_task_self_, 0, &mut connection) };
            if code == kIOReturnSuccess && connection != 0 {
                return Ok(Self { connection });
            }
            last = SmcError::Open(code);
        }
        Err(last)
    }

    /// One user-client call.
    fn call(&self, input: &KeyData) -> Result<KeyData, SmcError> {
        let mut output = KeyData::default();
        let mut output_size = size_of::<KeyData>();
        // SAFETY: `input` and `output` are live `KeyData` of the size passed, the layout the
        // user client expects (checked at compile time above).
        let code = unsafe {
            IOConnectCallStructMethod(
                self.connection,
                SELECTOR,
                (input as *const KeyData).cast::<c_void>(),
                size_of::<KeyData>(),
                (&mut output as *mut KeyData).cast::<c_void>(),
                &mut output_size,
            )
        };
        let key = || four_char_text(input.key);
        if code != kIOReturnSuccess {
            return Err(SmcError::Call { key: key(), code });
        }
        if output.result != 0 {
            return Err(SmcError::Result {
                key: key(),
                result: output.result,
            });
        }
        Ok(output)
    }

    /// A key's size and type.
    pub fn key_info(&self, key: u32) -> Result<KeyInfo, SmcError> {
        let input = KeyData {
            key,
            data8: CMD_KEY_INFO,
            ..KeyData::default()
        };
        Ok(self.call(&input)?.key_info)
    }

    /// A key's raw value.
    fn read_bytes(&self, key: u32, info: KeyInfo) -> Result<Vec<u8>, SmcError> {
        let input = KeyData {
            key,
            key_info: info,
            data8: CMD_READ_KEY,
            ..KeyData::default()
        };
        let output = self.call(&input)?;
        let size = usize::try_from(info.data_size).map_or(0, |n| n.min(output.bytes.len()));
        Ok(output.bytes[..size].to_vec())
    }

    /// A key's value as a number, `None` when its type is not a numeric one.
    pub fn read_number(&self, key: u32, info: KeyInfo) -> Result<Option<f64>, SmcError> {
        Ok(decode_smc_value(
            info.data_type,
            &self.read_bytes(key, info)?,
        ))
    }

    /// The number of keys (`#KEY`).
    fn key_count(&self) -> Result<u32, SmcError> {
        let key = four_char_code("#KEY").unwrap_or_default();
        let info = self.key_info(key)?;
        let count = self.read_number(key, info)?.unwrap_or(0.0);
        // A u32 count decoded through f64 is exact.
        Ok(count.clamp(0.0, f64::from(MAX_KEYS)) as u32)
    }

    /// The key at `index` in the SMC's table.
    fn key_at(&self, index: u32) -> Result<u32, SmcError> {
        let input = KeyData {
            data8: CMD_KEY_AT_INDEX,
            data32: index,
            ..KeyData::default()
        };
        Ok(self.call(&input)?.key)
    }
}

/// The GPU die temperature sensors of this chip and the SMC connection to read them.
pub struct GpuTemperatures {
    /// The open SMC.
    smc: Smc,
    /// The `Tg..` keys with a numeric type, found once at start.
    sensors: Vec<(u32, KeyInfo)>,
}

impl GpuTemperatures {
    /// Enumerates the SMC's keys once (a few thousand calls, ~tens of ms) and keeps the GPU
    /// temperature keys whose type decodes; which `Tg` keys exist differs per chip.
    pub fn discover(smc: Smc) -> Result<Self, SmcError> {
        let count = smc.key_count()?;
        let mut sensors = Vec::new();
        for index in 0..count {
            let Ok(key) = smc.key_at(index) else { continue };
            if !is_gpu_temperature_key(&four_char_text(key)) {
                continue;
            }
            let Ok(info) = smc.key_info(key) else {
                continue;
            };
            let decodable = decode_smc_value(info.data_type, &[0; 32]).is_some();
            if decodable && info.data_size <= 32 {
                sensors.push((key, info));
            }
        }
        Ok(Self { smc, sensors })
    }

    /// How many sensors were found.
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// The mean of the sensors that read a plausible temperature now, °C; `None` when none did.
    /// The first failing read is returned as the error alongside, for logging.
    pub fn read(&self) -> (Option<f64>, Option<SmcError>) {
        let mut error = None;
        let readings: Vec<f64> = self
            .sensors
            .iter()
            .filter_map(|&(key, info)| match self.smc.read_number(key, info) {
                Ok(value) => value,
                Err(e) => {
                    error.get_or_insert(e);
                    None
                }
            })
            .collect();
        (mean_celsius(readings), error)
    }
}
