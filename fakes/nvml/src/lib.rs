//! A fake NVML (`libnvidia-ml`) for tests and benches: exports the C symbols system_monitor's
//! NVIDIA collector calls through nvml-wrapper, answers them from a small configuration file, and
//! can simulate the faults the collector must survive. Reads `$FAKE_NVML_CONFIG` at `nvmlInit_v2`.
//!
//! # Configuration
//!
//! `FAKE_NVML_CONFIG` names a file of `key=value` lines (`#` starts a comment); every key is
//! optional. It is read at each `nvmlInit_v2`, never on other calls.
//!
//! | key | meaning | default |
//! | --- | --- | --- |
//! | `devices` | number of GPUs | 1 |
//! | `name` | product name of every GPU | `NVIDIA H100 80GB HBM3` |
//! | `init_error` | `nvmlInit_v2` returns this NVML code (e.g. 9, driver not loaded) | 0 |
//! | `mig` | comma-separated GPU indices with MIG mode on | none |
//! | `mig_instances` | MIG devices on each MIG GPU | 2 |
//! | `processes` | compute processes per GPU | 0 |
//! | `graphics_processes` | graphics processes per GPU | 0 |
//! | `unsupported` | comma-separated C function names that answer `NVML_ERROR_NOT_SUPPORTED` | none |
//! | `lost_device` | index of the GPU that the lost marker makes fall off the bus | none |
//! | `lost_marker` | while this file exists, `lost_device` answers `NVML_ERROR_GPU_IS_LOST`; once it is removed the device works again only after `nvmlShutdown` + `nvmlInit_v2` | none |
//! | `counts_file` | every 20 ms, the per-function call counts are written here (`name count` lines, atomically) | none |
//!
//! # Values
//!
//! GPU `i` answers (so tests can compute what they expect): utilization GPU `10+i` %, memory
//! `20+i` %, encoder `30+i` %, decoder `40+i` %; memory total 80 GiB, reserved 512 MiB, used
//! `i+1` GiB; temperature `40+i` °C, memory temperature (field 82 of `nvmlDeviceGetFieldValues`,
//! the only field answered) `60+i` °C; power `150250+1000·i` mW, enforced limit 700000 mW, limit
//! constraints 200000–700000 mW; energy
//! `1000000123+500·i` mJ; clocks graphics `1700+i`, SM `1755+i`, memory 2619 MHz; fan `30+i` %;
//! PCIe TX `2000+i`, RX `3000+i` KB/s, link gen 5 width 16; P-state `i % 3`; throttle reasons
//! `0x4` (SW power cap) plus `0x40` (HW thermal) on odd `i`; volatile ECC corrected `3+i`,
//! uncorrected `i`; UUID `GPU-0000000i-fake-4000-8000-00000000000i` (hex), PCI bus id
//! `00000000:{18+i:02X}:00.0`; Hopper, 16896 cores, VBIOS `96.00.99.00.01`; driver `550.54.15`,
//! CUDA 12040. Compute process `k` of GPU `i`: pid `10000+100·i+k`, `(k+1)·64` MiB; graphics:
//! pid `20000+100·i+k`, `(k+1)·32` MiB. A GPU in MIG mode answers `NOT_SUPPORTED` for
//! utilization, encoder and decoder (as real ones do) and lists its MIG devices' processes. MIG
//! device `j` of GPU `i`: UUID `MIG-0000000i-fake-4000-8000-00000000000j`, GPU instance `1+j`,
//! compute instance 0, profile `MIG 1g.10gb` (id 19, profile index 0), 16 SMs, memory total
//! 9856 MiB, used `(j+1)·256` MiB, one process pid `30000+100·i+j` using 128 MiB.
//!
//! # Call counts
//!
//! Every exported NVML function counts its calls. [`fake_nvml_call_count`] and
//! [`fake_nvml_total_calls`] read them in-process (the bench); `counts_file` exposes them to a
//! test that runs the monitor as a child process.
//!
//! # Safety
//!
//! Every exported `unsafe extern "C"` function has nvml.h's contract: each pointer argument is
//! null (answered `NVML_ERROR_INVALID_ARGUMENT`, or `INSUFFICIENT_SIZE` for a buffer) or valid
//! for writes of the declared type (a buffer: of `len` bytes; an array: of `count` elements), and
//! stays so for the call; a struct NVML reads a `version` from is initialised. Device and GPU
//! instance handles are numbers this library handed out, decoded, never dereferenced. The raw
//! writes all go through `put`, `write_str` and `processes`.

#![allow(non_snake_case, non_camel_case_types)]
// The exported functions' contract is nvml.h's, stated once under "Safety" above.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Once, RwLock};
use std::time::Duration;

type Ret = c_uint;
type Handle = *mut c_void;

const SUCCESS: Ret = 0;
const ERROR_UNINITIALIZED: Ret = 1;
const ERROR_INVALID_ARGUMENT: Ret = 2;
const ERROR_NOT_SUPPORTED: Ret = 3;
const ERROR_NOT_FOUND: Ret = 6;
const ERROR_INSUFFICIENT_SIZE: Ret = 7;
const ERROR_GPU_IS_LOST: Ret = 15;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

// The `#[repr(C)]` structs below mirror nvml.h (as nvml-wrapper-sys 0.10 binds it) field for
// field, in the same order and types; their fields mean what NVML documents.

/// nvml.h's `nvmlPciInfo_t` (as `nvmlDeviceGetPciInfo_v3` fills it).
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlMemory_v2_t`.
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// `nvmlProcessInfo_t` (the v2 layout the `_v3` process queries fill).
#[repr(C)]
pub struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// `nvmlValue_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union Value {
    d_val: f64,
    ui_val: c_uint,
    ull_val: c_ulonglong,
}

/// `nvmlFieldValue_t`.
#[repr(C)]
pub struct FieldValue {
    field_id: c_uint,
    scope_id: c_uint,
    timestamp: i64,
    latency_usec: i64,
    value_type: c_uint,
    nvml_return: Ret,
    value: Value,
}

/// `NVML_FI_DEV_MEMORY_TEMP`: the one field this fake answers.
const FI_DEV_MEMORY_TEMP: c_uint = 82;

/// `nvmlDeviceAttributes_t`.
#[repr(C)]
pub struct DeviceAttributes {
    multiprocessor_count: c_uint,
    shared_copy_engine_count: c_uint,
    shared_decoder_count: c_uint,
    shared_encoder_count: c_uint,
    shared_jpeg_count: c_uint,
    shared_ofa_count: c_uint,
    gpu_instance_slice_count: c_uint,
    compute_instance_slice_count: c_uint,
    memory_size_mb: c_ulonglong,
}

/// `nvmlGpuInstanceInfo_t`.
#[repr(C)]
pub struct GpuInstanceInfo {
    device: Handle,
    id: c_uint,
    profile_id: c_uint,
    placement_start: c_uint,
    placement_size: c_uint,
}

/// `nvmlGpuInstanceProfileInfo_v2_t`.
#[repr(C)]
pub struct GpuInstanceProfileInfoV2 {
    version: c_uint,
    id: c_uint,
    is_p2p_supported: c_uint,
    slice_count: c_uint,
    instance_count: c_uint,
    multiprocessor_count: c_uint,
    copy_engine_count: c_uint,
    decoder_count: c_uint,
    encoder_count: c_uint,
    jpeg_count: c_uint,
    ofa_count: c_uint,
    memory_size_mb: c_ulonglong,
    name: [c_char; 96],
}

/// Declares the counted functions: an enum of them and their C names, in the same order.
macro_rules! functions {
    ($($name:ident),* $(,)?) => {
        /// One exported NVML function (the index of its call counter).
        #[derive(Clone, Copy)]
        #[repr(usize)]
        enum F { $($name),* }
        /// C names, indexed by [`F`].
        const NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

functions!(
    nvmlInit_v2,
    nvmlShutdown,
    nvmlSystemGetDriverVersion,
    nvmlSystemGetCudaDriverVersion_v2,
    nvmlDeviceGetCount_v2,
    nvmlDeviceGetHandleByIndex_v2,
    nvmlDeviceGetName,
    nvmlDeviceGetUUID,
    nvmlDeviceGetPciInfo_v3,
    nvmlDeviceGetArchitecture,
    nvmlDeviceGetNumGpuCores,
    nvmlDeviceGetVbiosVersion,
    nvmlDeviceGetMigMode,
    nvmlDeviceGetMaxMigDeviceCount,
    nvmlDeviceGetMigDeviceHandleByIndex,
    nvmlDeviceGetGpuInstanceId,
    nvmlDeviceGetComputeInstanceId,
    nvmlDeviceGetAttributes_v2,
    nvmlDeviceGetGpuInstanceById,
    nvmlGpuInstanceGetInfo,
    nvmlDeviceGetGpuInstanceProfileInfoV,
    nvmlDeviceGetUtilizationRates,
    nvmlDeviceGetEncoderUtilization,
    nvmlDeviceGetDecoderUtilization,
    nvmlDeviceGetMemoryInfo_v2,
    nvmlDeviceGetTemperature,
    nvmlDeviceGetFieldValues,
    nvmlDeviceGetPowerUsage,
    nvmlDeviceGetEnforcedPowerLimit,
    nvmlDeviceGetPowerManagementLimitConstraints,
    nvmlDeviceGetTotalEnergyConsumption,
    nvmlDeviceGetClockInfo,
    nvmlDeviceGetFanSpeed_v2,
    nvmlDeviceGetPcieThroughput,
    nvmlDeviceGetCurrPcieLinkGeneration,
    nvmlDeviceGetCurrPcieLinkWidth,
    nvmlDeviceGetPerformanceState,
    nvmlDeviceGetCurrentClocksThrottleReasons,
    nvmlDeviceGetTotalEccErrors,
    nvmlDeviceGetComputeRunningProcesses_v3,
    nvmlDeviceGetGraphicsRunningProcesses_v3,
);

/// Calls per function since the library was loaded.
static COUNTS: [AtomicU64; NAMES.len()] = [const { AtomicU64::new(0) }; NAMES.len()];
/// `nvmlInit_v2` minus `nvmlShutdown` (NVML reference-counts initialisation).
static INITS: AtomicU32 = AtomicU32::new(0);
/// The lost marker exists now.
static LOST_NOW: AtomicBool = AtomicBool::new(false);
/// The marker was seen since the last initialisation that happened without it: a device that
/// fell off the bus stays lost until NVML is initialised again.
static LOST_STICKY: AtomicBool = AtomicBool::new(false);
/// The configuration read by the last `nvmlInit_v2`.
static CONFIG: RwLock<Option<Config>> = RwLock::new(None);
/// Starts the watcher thread once per process.
static WATCHER: Once = Once::new();

/// What the configuration file says.
/// Keys and meanings as in the module documentation's table.
#[derive(Clone, Default)]
struct Config {
    /// `devices`: GPUs listed.
    devices: u32,
    /// `name`: product name of every GPU.
    name: String,
    /// `init_error`: code `nvmlInit_v2` returns (0: succeeds).
    init_error: Ret,
    /// `mig`: GPUs in MIG mode.
    mig: Vec<u32>,
    /// `mig_instances`: MIG devices per MIG GPU.
    mig_instances: u32,
    /// `processes`: compute processes per GPU.
    processes: u32,
    /// `graphics_processes`: graphics processes per GPU.
    graphics_processes: u32,
    /// `unsupported`: bit `F as usize` set, that function answers NOT_SUPPORTED.
    unsupported: u64,
    /// `lost_device`: the GPU the marker makes fall off the bus.
    lost_device: Option<u32>,
    /// `lost_marker`: the file whose presence means "lost".
    lost_marker: Option<PathBuf>,
    /// `counts_file`: where the watcher thread publishes call counts.
    counts_file: Option<PathBuf>,
}

impl Config {
    fn read() -> Config {
        let mut config = Config {
            devices: 1,
            name: "NVIDIA H100 80GB HBM3".to_string(),
            mig_instances: 2,
            ..Config::default()
        };
        let Some(path) = std::env::var_os("FAKE_NVML_CONFIG") else {
            return config;
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            let number = || value.parse::<u32>().unwrap_or(0);
            let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
            match key {
                "devices" => config.devices = number(),
                "name" => config.name = value.to_string(),
                "init_error" => config.init_error = number(),
                "mig" => config.mig = list().filter_map(|s| s.parse().ok()).collect(),
                "mig_instances" => config.mig_instances = number(),
                "processes" => config.processes = number(),
                "graphics_processes" => config.graphics_processes = number(),
                "unsupported" => {
                    for name in list() {
                        if let Some(i) = NAMES.iter().position(|n| *n == name) {
                            config.unsupported |= 1 << i;
                        }
                    }
                }
                "lost_device" => config.lost_device = value.parse().ok(),
                "lost_marker" => config.lost_marker = Some(PathBuf::from(value)),
                "counts_file" => config.counts_file = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        config
    }

    fn is_mig(&self, gpu: u32) -> bool {
        self.mig.contains(&gpu)
    }
}

/// What a handle points at. Handles are small tagged integers, never dereferenced.
#[derive(Clone, Copy)]
enum Target {
    Gpu(u32),
    Mig(u32, u32),
}

const GPU_TAG: usize = 0x1_0000;
const MIG_TAG: usize = 0x2_0000;
const GI_TAG: usize = 0x3_0000;

fn gpu_handle(i: u32) -> Handle {
    (GPU_TAG + i as usize) as Handle
}

fn mig_handle(i: u32, j: u32) -> Handle {
    (MIG_TAG + (i as usize) * 0x100 + j as usize) as Handle
}

fn decode(handle: Handle, config: &Config) -> Option<Target> {
    let raw = handle as usize;
    let target = match raw & !0xFFFF {
        GPU_TAG => Target::Gpu((raw & 0xFFFF) as u32),
        MIG_TAG => Target::Mig(((raw >> 8) & 0xFF) as u32, (raw & 0xFF) as u32),
        _ => return None,
    };
    let valid = match target {
        Target::Gpu(i) => i < config.devices,
        Target::Mig(i, j) => i < config.devices && config.is_mig(i) && j < config.mig_instances,
    };
    valid.then_some(target)
}

fn gpu_of(target: Target) -> u32 {
    match target {
        Target::Gpu(i) | Target::Mig(i, _) => i,
    }
}

/// Counts the call, then checks initialisation. Returns the configuration or the error code.
fn enter(f: F) -> Result<std::sync::RwLockReadGuard<'static, Option<Config>>, Ret> {
    COUNTS[f as usize].fetch_add(1, Ordering::Relaxed);
    if INITS.load(Ordering::Acquire) == 0 {
        return Err(ERROR_UNINITIALIZED);
    }
    let guard = CONFIG.read().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        return Err(ERROR_UNINITIALIZED);
    }
    Ok(guard)
}

/// The common prologue of a device query: counted, initialised, a valid handle, not lost, not
/// configured as unsupported. Evaluates to `(config, target)` or returns the error code.
macro_rules! device {
    ($f:ident, $handle:expr) => {{
        let guard = match enter(F::$f) {
            Ok(guard) => guard,
            Err(code) => return code,
        };
        let Some(config) = guard.as_ref() else {
            return ERROR_UNINITIALIZED;
        };
        let Some(target) = decode($handle, config) else {
            return ERROR_INVALID_ARGUMENT;
        };
        if config.lost_device == Some(gpu_of(target))
            && (LOST_NOW.load(Ordering::Relaxed) || LOST_STICKY.load(Ordering::Relaxed))
        {
            return ERROR_GPU_IS_LOST;
        }
        if config.unsupported & (1 << F::$f as usize) != 0 {
            return ERROR_NOT_SUPPORTED;
        }
        (config.light(target), target)
    }};
}

/// The few configuration facts a query needs, copied out so the lock is released at once.
#[derive(Clone, Copy)]
struct Light {
    /// The handle's GPU is in MIG mode.
    mig_gpu: bool,
    /// [`Config::mig_instances`].
    mig_instances: u32,
    /// [`Config::processes`].
    processes: u32,
    /// [`Config::graphics_processes`].
    graphics_processes: u32,
}

impl Config {
    fn light(&self, target: Target) -> Light {
        Light {
            mig_gpu: self.is_mig(gpu_of(target)),
            mig_instances: self.mig_instances,
            processes: self.processes,
            graphics_processes: self.graphics_processes,
        }
    }
}

/// Writes `text` NUL-terminated into `buf` of `len` bytes.
///
/// # Safety
/// `buf` is null or valid for writes of `len` bytes.
unsafe fn write_str(buf: *mut c_char, len: c_uint, text: &str) -> Ret {
    if buf.is_null() || (len as usize) <= text.len() {
        return ERROR_INSUFFICIENT_SIZE;
    }
    // SAFETY: `buf` is non-null and has room for `len` > `text.len()` bytes (the caller's
    // contract), so the text and its NUL fit; a `&str` never overlaps the caller's buffer.
    std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, text.len());
    *buf.add(text.len()) = 0;
    SUCCESS
}

/// Writes `value` through `out` unless it is null.
///
/// # Safety
/// `out` is null or valid for a write of a `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Ret {
    if out.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and valid for a write of a `T` by the caller's contract.
    out.write(value);
    SUCCESS
}

fn gpu_uuid(i: u32) -> String {
    format!("GPU-{i:08x}-fake-4000-8000-{i:012x}")
}

fn mig_uuid(i: u32, j: u32) -> String {
    format!("MIG-{i:08x}-fake-4000-8000-{j:012x}")
}

// ---------------------------------------------------------------------------------------------
// Library

#[no_mangle]
pub extern "C" fn nvmlInit_v2() -> Ret {
    COUNTS[F::nvmlInit_v2 as usize].fetch_add(1, Ordering::Relaxed);
    let config = Config::read();
    if config.init_error != 0 {
        return config.init_error;
    }
    // A device that fell off the bus answers again after a fresh initialisation, once the
    // marker is gone.
    let marker_present = config.lost_marker.as_deref().is_some_and(Path::exists);
    LOST_NOW.store(marker_present, Ordering::Relaxed);
    LOST_STICKY.store(marker_present, Ordering::Relaxed);
    let watch = config.lost_marker.is_some() || config.counts_file.is_some();
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = Some(config);
    INITS.fetch_add(1, Ordering::AcqRel);
    if watch {
        WATCHER.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("fake-nvml-watch".into())
                .spawn(watch_loop);
        });
    }
    SUCCESS
}

/// Follows the lost marker and publishes the call counts, off the query path so a query costs
/// no file system call.
fn watch_loop() {
    loop {
        let (marker, counts_file) = {
            let guard = CONFIG.read().unwrap_or_else(|e| e.into_inner());
            let config = guard.as_ref();
            (
                config.and_then(|c| c.lost_marker.clone()),
                config.and_then(|c| c.counts_file.clone()),
            )
        };
        if let Some(marker) = marker {
            let present = marker.exists();
            LOST_NOW.store(present, Ordering::Relaxed);
            if present {
                LOST_STICKY.store(true, Ordering::Relaxed);
            }
        }
        if let Some(path) = counts_file {
            let mut text = String::new();
            for (name, count) in NAMES.iter().zip(&COUNTS) {
                text.push_str(&format!("{name} {}\n", count.load(Ordering::Relaxed)));
            }
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[no_mangle]
pub extern "C" fn nvmlShutdown() -> Ret {
    COUNTS[F::nvmlShutdown as usize].fetch_add(1, Ordering::Relaxed);
    let decremented = INITS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    if decremented.is_err() {
        return ERROR_UNINITIALIZED;
    }
    SUCCESS
}

#[no_mangle]
pub extern "C" fn nvmlErrorString(code: Ret) -> *const c_char {
    let text: &'static CStr = match code {
        0 => c"Success",
        1 => c"Uninitialized",
        2 => c"Invalid Argument",
        3 => c"Not Supported",
        6 => c"Not Found",
        7 => c"Insufficient Size",
        9 => c"Driver Not Loaded",
        15 => c"GPU is lost",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(buf: *mut c_char, len: c_uint) -> Ret {
    if let Err(code) = enter(F::nvmlSystemGetDriverVersion) {
        return code;
    }
    write_str(buf, len, "550.54.15")
}

#[no_mangle]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> Ret {
    match enter(F::nvmlSystemGetCudaDriverVersion_v2) {
        Err(code) => code,
        Ok(guard) => match guard.as_ref() {
            Some(c)
                if c.unsupported & (1 << F::nvmlSystemGetCudaDriverVersion_v2 as usize) != 0 =>
            {
                ERROR_NOT_SUPPORTED
            }
            _ => put(version, 12040),
        },
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Ret {
    match enter(F::nvmlDeviceGetCount_v2) {
        Err(code) => code,
        Ok(guard) => put(count, guard.as_ref().map_or(0, |c| c.devices)),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, out: *mut Handle) -> Ret {
    let guard = match enter(F::nvmlDeviceGetHandleByIndex_v2) {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let Some(config) = guard.as_ref() else {
        return ERROR_UNINITIALIZED;
    };
    if index >= config.devices {
        return ERROR_INVALID_ARGUMENT;
    }
    if config.lost_device == Some(index)
        && (LOST_NOW.load(Ordering::Relaxed) || LOST_STICKY.load(Ordering::Relaxed))
    {
        return ERROR_GPU_IS_LOST;
    }
    put(out, gpu_handle(index))
}

// ---------------------------------------------------------------------------------------------
// Static device facts

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetName(device: Handle, buf: *mut c_char, len: c_uint) -> Ret {
    let (_, target) = device!(nvmlDeviceGetName, device);
    let name = {
        let guard = CONFIG.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| c.name.clone()).unwrap_or_default()
    };
    match target {
        Target::Gpu(_) => write_str(buf, len, &name),
        Target::Mig(..) => write_str(buf, len, &format!("{name} MIG 1g.10gb")),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUUID(device: Handle, buf: *mut c_char, len: c_uint) -> Ret {
    let (_, target) = device!(nvmlDeviceGetUUID, device);
    match target {
        Target::Gpu(i) => write_str(buf, len, &gpu_uuid(i)),
        Target::Mig(i, j) => write_str(buf, len, &mig_uuid(i, j)),
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(device: Handle, out: *mut PciInfo) -> Ret {
    let (_, target) = device!(nvmlDeviceGetPciInfo_v3, device);
    let bus = 0x18 + gpu_of(target);
    let mut info = PciInfo {
        bus_id_legacy: [0; 16],
        domain: 0,
        bus,
        device: 0,
        pci_device_id: 0x2330_10DE,
        pci_sub_system_id: 0x16C1_10DE,
        bus_id: [0; 32],
    };
    let text = format!("00000000:{bus:02X}:00.0");
    write_str(info.bus_id.as_mut_ptr(), 32, &text);
    write_str(
        info.bus_id_legacy.as_mut_ptr(),
        16,
        &format!("0000:{bus:02X}:00.0"),
    );
    put(out, info)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetArchitecture(device: Handle, out: *mut c_uint) -> Ret {
    device!(nvmlDeviceGetArchitecture, device);
    put(out, 9) // NVML_DEVICE_ARCH_HOPPER
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetNumGpuCores(device: Handle, out: *mut c_uint) -> Ret {
    device!(nvmlDeviceGetNumGpuCores, device);
    put(out, 16896)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetVbiosVersion(
    device: Handle,
    buf: *mut c_char,
    len: c_uint,
) -> Ret {
    device!(nvmlDeviceGetVbiosVersion, device);
    write_str(buf, len, "96.00.99.00.01")
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: Handle,
    current: *mut c_uint,
    pending: *mut c_uint,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetMigMode, device);
    let Target::Gpu(_) = target else {
        return ERROR_NOT_SUPPORTED;
    };
    let mode = c_uint::from(light.mig_gpu);
    let ret = put(current, mode);
    if ret != SUCCESS {
        return ret;
    }
    put(pending, mode)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(device: Handle, out: *mut c_uint) -> Ret {
    let (light, _) = device!(nvmlDeviceGetMaxMigDeviceCount, device);
    put(out, if light.mig_gpu { 7 } else { 0 })
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: Handle,
    index: c_uint,
    out: *mut Handle,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetMigDeviceHandleByIndex, device);
    match target {
        Target::Gpu(i) if light.mig_gpu && index < light.mig_instances => {
            put(out, mig_handle(i, index))
        }
        Target::Gpu(_) if light.mig_gpu && index < 7 => ERROR_NOT_FOUND,
        _ => ERROR_INVALID_ARGUMENT,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(device: Handle, out: *mut c_uint) -> Ret {
    match device!(nvmlDeviceGetGpuInstanceId, device) {
        (_, Target::Mig(_, j)) => put(out, 1 + j),
        _ => ERROR_NOT_SUPPORTED,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeInstanceId(device: Handle, out: *mut c_uint) -> Ret {
    match device!(nvmlDeviceGetComputeInstanceId, device) {
        (_, Target::Mig(..)) => put(out, 0),
        _ => ERROR_NOT_SUPPORTED,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetAttributes_v2(
    device: Handle,
    out: *mut DeviceAttributes,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetAttributes_v2, device);
    let (sms, slices, memory) = match target {
        Target::Gpu(_) => (132, 7, 81559),
        Target::Mig(..) => (16, 1, 9856),
    };
    put(
        out,
        DeviceAttributes {
            multiprocessor_count: sms,
            shared_copy_engine_count: 1,
            shared_decoder_count: 1,
            shared_encoder_count: 0,
            shared_jpeg_count: 1,
            shared_ofa_count: 0,
            gpu_instance_slice_count: slices,
            compute_instance_slice_count: slices,
            memory_size_mb: memory,
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceById(
    device: Handle,
    id: c_uint,
    out: *mut Handle,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetGpuInstanceById, device);
    match target {
        Target::Gpu(i) if light.mig_gpu && id >= 1 && id <= light.mig_instances => {
            put(out, (GI_TAG + (i as usize) * 0x100 + id as usize) as Handle)
        }
        Target::Gpu(_) if light.mig_gpu => ERROR_NOT_FOUND,
        _ => ERROR_NOT_SUPPORTED,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlGpuInstanceGetInfo(
    instance: Handle,
    out: *mut GpuInstanceInfo,
) -> Ret {
    if let Err(code) = enter(F::nvmlGpuInstanceGetInfo) {
        return code;
    }
    let raw = instance as usize;
    if raw & !0xFFFF != GI_TAG {
        return ERROR_INVALID_ARGUMENT;
    }
    let (i, id) = (((raw >> 8) & 0xFF) as u32, (raw & 0xFF) as u32);
    put(
        out,
        GpuInstanceInfo {
            device: gpu_handle(i),
            id,
            profile_id: 19,
            placement_start: id - 1,
            placement_size: 1,
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfoV(
    device: Handle,
    profile: c_uint,
    out: *mut GpuInstanceProfileInfoV2,
) -> Ret {
    let (light, _) = device!(nvmlDeviceGetGpuInstanceProfileInfoV, device);
    if !light.mig_gpu || profile != 0 {
        return ERROR_NOT_SUPPORTED;
    }
    if out.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // The caller sets `version`; the answer keeps it.
    // SAFETY: non-null, and an initialised struct with its version set (nvml.h's contract).
    let version = (*out).version;
    let mut info = GpuInstanceProfileInfoV2 {
        version,
        id: 19,
        is_p2p_supported: 0,
        slice_count: 1,
        instance_count: 7,
        multiprocessor_count: 16,
        copy_engine_count: 1,
        decoder_count: 1,
        encoder_count: 0,
        jpeg_count: 1,
        ofa_count: 0,
        memory_size_mb: 9856,
        name: [0; 96],
    };
    write_str(info.name.as_mut_ptr(), 96, "MIG 1g.10gb");
    put(out, info)
}

// ---------------------------------------------------------------------------------------------
// Per-sample queries

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: Handle,
    out: *mut Utilization,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetUtilizationRates, device);
    if light.mig_gpu {
        return ERROR_NOT_SUPPORTED;
    }
    let i = gpu_of(target);
    put(
        out,
        Utilization {
            gpu: 10 + i,
            memory: 20 + i,
        },
    )
}

/// The encoder and decoder answer alike: `percent` over a 167 ms sampling period, not supported
/// on a GPU in MIG mode (as real ones).
///
/// # Safety
/// `utilization` and `period_us` are each null or valid for a write of a `c_uint`.
unsafe fn video_utilization(
    light: Light,
    percent: c_uint,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
) -> Ret {
    if light.mig_gpu {
        return ERROR_NOT_SUPPORTED;
    }
    let ret = put(utilization, percent);
    if ret != SUCCESS {
        return ret;
    }
    put(period_us, 167_000)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEncoderUtilization(
    device: Handle,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetEncoderUtilization, device);
    video_utilization(light, 30 + gpu_of(target), utilization, period_us)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetDecoderUtilization(
    device: Handle,
    utilization: *mut c_uint,
    period_us: *mut c_uint,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetDecoderUtilization, device);
    video_utilization(light, 40 + gpu_of(target), utilization, period_us)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: Handle, out: *mut MemoryV2) -> Ret {
    let (_, target) = device!(nvmlDeviceGetMemoryInfo_v2, device);
    if out.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, and an initialised struct with its version set (nvml.h's contract).
    let version = (*out).version;
    let (total, reserved, used) = match target {
        Target::Gpu(i) => (80 * GIB, 512 * MIB, (u64::from(i) + 1) * GIB),
        Target::Mig(_, j) => (9856 * MIB, 0, (u64::from(j) + 1) * 256 * MIB),
    };
    put(
        out,
        MemoryV2 {
            version,
            total,
            reserved,
            free: total - reserved - used,
            used,
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Handle,
    _sensor: c_uint,
    out: *mut c_uint,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetTemperature, device);
    put(out, 40 + gpu_of(target))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: Handle,
    count: c_int,
    values: *mut FieldValue,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetFieldValues, device);
    if values.is_null() || count < 0 {
        return ERROR_INVALID_ARGUMENT;
    }
    for k in 0..count as usize {
        // SAFETY: non-null and, by nvml.h's contract, an array of `count` initialised field
        // values (the caller sets each `field_id`), alive for the call.
        let field = &mut *values.add(k);
        if field.field_id == FI_DEV_MEMORY_TEMP {
            field.value_type = 1; // NVML_VALUE_TYPE_UNSIGNED_INT
            field.nvml_return = SUCCESS;
            field.value = Value {
                ui_val: 60 + gpu_of(target),
            };
        } else {
            field.nvml_return = ERROR_NOT_SUPPORTED;
        }
    }
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Handle, out: *mut c_uint) -> Ret {
    let (_, target) = device!(nvmlDeviceGetPowerUsage, device);
    put(out, 150_250 + 1000 * gpu_of(target))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(device: Handle, out: *mut c_uint) -> Ret {
    device!(nvmlDeviceGetEnforcedPowerLimit, device);
    put(out, 700_000)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: Handle,
    min: *mut c_uint,
    max: *mut c_uint,
) -> Ret {
    device!(nvmlDeviceGetPowerManagementLimitConstraints, device);
    let ret = put(min, 200_000);
    if ret != SUCCESS {
        return ret;
    }
    put(max, 700_000)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: Handle,
    out: *mut c_ulonglong,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetTotalEnergyConsumption, device);
    put(out, 1_000_000_123 + 500 * u64::from(gpu_of(target)))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: Handle,
    clock: c_uint,
    out: *mut c_uint,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetClockInfo, device);
    let i = gpu_of(target);
    match clock {
        0 => put(out, 1700 + i), // NVML_CLOCK_GRAPHICS
        1 => put(out, 1755 + i), // NVML_CLOCK_SM
        2 => put(out, 2619),     // NVML_CLOCK_MEM
        _ => ERROR_INVALID_ARGUMENT,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: Handle,
    fan: c_uint,
    out: *mut c_uint,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetFanSpeed_v2, device);
    if fan != 0 {
        return ERROR_INVALID_ARGUMENT;
    }
    put(out, 30 + gpu_of(target))
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPcieThroughput(
    device: Handle,
    counter: c_uint,
    out: *mut c_uint,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetPcieThroughput, device);
    let i = gpu_of(target);
    match counter {
        0 => put(out, 2000 + i), // NVML_PCIE_UTIL_TX_BYTES
        1 => put(out, 3000 + i), // NVML_PCIE_UTIL_RX_BYTES
        _ => ERROR_INVALID_ARGUMENT,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkGeneration(
    device: Handle,
    out: *mut c_uint,
) -> Ret {
    device!(nvmlDeviceGetCurrPcieLinkGeneration, device);
    put(out, 5)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkWidth(device: Handle, out: *mut c_uint) -> Ret {
    device!(nvmlDeviceGetCurrPcieLinkWidth, device);
    put(out, 16)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetPerformanceState(device: Handle, out: *mut c_uint) -> Ret {
    let (_, target) = device!(nvmlDeviceGetPerformanceState, device);
    put(out, gpu_of(target) % 3)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: Handle,
    out: *mut c_ulonglong,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetCurrentClocksThrottleReasons, device);
    let thermal = if gpu_of(target) % 2 == 1 { 0x40 } else { 0 };
    put(out, 0x4 | thermal)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: Handle,
    error_type: c_uint,
    counter_type: c_uint,
    out: *mut c_ulonglong,
) -> Ret {
    let (_, target) = device!(nvmlDeviceGetTotalEccErrors, device);
    let i = u64::from(gpu_of(target));
    let aggregate = if counter_type == 1 { 100 } else { 0 };
    match error_type {
        0 => put(out, 3 + i + aggregate), // NVML_MEMORY_ERROR_TYPE_CORRECTED
        1 => put(out, i + aggregate),     // NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        _ => ERROR_INVALID_ARGUMENT,
    }
}

/// NVML's "ask for the count, then fill" protocol: with too small a buffer, the count is
/// written and `INSUFFICIENT_SIZE` returned (success when there is nothing to list).
///
/// # Safety
/// `count` is null or valid for reads and writes; `out` is null or valid for writes of `*count`
/// elements.
unsafe fn processes(list: &[ProcessInfo], count: *mut c_uint, out: *mut ProcessInfo) -> Ret {
    if count.is_null() {
        return ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null, so readable and writable by the caller's contract.
    let capacity = *count as usize;
    *count = list.len() as c_uint;
    if list.is_empty() {
        return SUCCESS;
    }
    if out.is_null() || capacity < list.len() {
        return ERROR_INSUFFICIENT_SIZE;
    }
    for (k, p) in list.iter().enumerate() {
        // SAFETY: `out` is non-null with room for `capacity` ≥ `list.len()` elements.
        out.add(k).write(ProcessInfo { ..*p });
    }
    SUCCESS
}

const NO_ID: c_uint = 0xFFFF_FFFF;

fn mig_process(i: u32, j: u32) -> ProcessInfo {
    ProcessInfo {
        pid: 30_000 + 100 * i + j,
        used_gpu_memory: 128 * MIB,
        gpu_instance_id: 1 + j,
        compute_instance_id: 0,
    }
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: Handle,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetComputeRunningProcesses_v3, device);
    // At most a handful of processes: a fixed array keeps the fake free of allocation.
    let mut list: [ProcessInfo; 16] = std::array::from_fn(|_| ProcessInfo {
        pid: 0,
        used_gpu_memory: 0,
        gpu_instance_id: NO_ID,
        compute_instance_id: NO_ID,
    });
    let mut n = 0;
    match target {
        Target::Mig(i, j) => {
            list[0] = mig_process(i, j);
            n = 1;
        }
        Target::Gpu(i) if light.mig_gpu => {
            for j in 0..light.mig_instances.min(16) {
                list[n] = mig_process(i, j);
                n += 1;
            }
        }
        Target::Gpu(i) => {
            for k in 0..light.processes.min(16) {
                list[n].pid = 10_000 + 100 * i + k;
                list[n].used_gpu_memory = u64::from(k + 1) * 64 * MIB;
                n += 1;
            }
        }
    }
    processes(&list[..n], count, out)
}

#[no_mangle]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    device: Handle,
    count: *mut c_uint,
    out: *mut ProcessInfo,
) -> Ret {
    let (light, target) = device!(nvmlDeviceGetGraphicsRunningProcesses_v3, device);
    let mut list: [ProcessInfo; 16] = std::array::from_fn(|_| ProcessInfo {
        pid: 0,
        used_gpu_memory: 0,
        gpu_instance_id: NO_ID,
        compute_instance_id: NO_ID,
    });
    let mut n = 0;
    if let Target::Gpu(i) = target {
        for k in 0..light.graphics_processes.min(16) {
            list[n].pid = 20_000 + 100 * i + k;
            list[n].used_gpu_memory = u64::from(k + 1) * 32 * MIB;
            n += 1;
        }
    }
    processes(&list[..n], count, out)
}

// ---------------------------------------------------------------------------------------------
// Introspection for tests and benches

/// Calls of the NVML function named `name` so far (0 for a name this fake does not export).
#[no_mangle]
pub unsafe extern "C" fn fake_nvml_call_count(name: *const c_char) -> u64 {
    if name.is_null() {
        return 0;
    }
    // SAFETY: non-null; the caller passes a NUL-terminated string alive for the call.
    let name = CStr::from_ptr(name).to_str().unwrap_or("");
    NAMES
        .iter()
        .position(|n| *n == name)
        .map_or(0, |i| COUNTS[i].load(Ordering::Relaxed))
}

/// Calls of all NVML functions so far.
#[no_mangle]
pub extern "C" fn fake_nvml_total_calls() -> u64 {
    COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}
