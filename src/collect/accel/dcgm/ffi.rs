//! The DCGM C API, loaded at run time with libloading: the few calls the profiling collector
//! makes, the structs they take (laid out as DCGM 3 and 4's `dcgm_structs.h`), and a safe
//! wrapper ([`Dcgm`], [`Session`]) with typed errors. All of the collector's `unsafe` is here.
//!
//! Reference: `dcgmlib/dcgm_agent.h`, `dcgm_structs.h` and `dcgm_fields.h` in NVIDIA/DCGM.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, CString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libloading::Library;

/// Libraries tried, in order, when no path is given: DCGM 4, then DCGM 3.
pub const DEFAULT_LIBRARIES: [&str; 2] = ["libdcgm.so.4", "libdcgm.so.3"];

/// `DCGM_FI_DEV_UUID`: the GPU's UUID (a string), the same text NVML reports.
pub const FI_DEV_UUID: u16 = 54;

/// `DCGM_ST_OK`.
const ST_OK: c_int = 0;
/// `DCGM_ST_NO_DATA`.
const ST_NO_DATA: c_int = -14;
/// `DCGM_ST_ALREADY_INITIALIZED`: `dcgmInit` was called before in this process; not an error.
const ST_ALREADY_INITIALIZED: c_int = -55;

/// `DCGM_INT64_BLANK`: integers at or above this are DCGM's "no value" markers.
const INT64_BLANK: i64 = 0x7fff_ffff_ffff_fff0;
/// `DCGM_FP64_BLANK` (2^47): doubles at or above this are DCGM's "no value" markers.
const FP64_BLANK: f64 = 140_737_488_355_328.0;

/// `DCGM_GROUP_ALL_GPUS`: the built-in group of every GPU DCGM supports.
const GROUP_ALL_GPUS: usize = 0x7fff_ffff;
/// `DCGM_MAX_NUM_DEVICES` (DCGM 2 and newer): the size of the GPU id array.
const MAX_NUM_DEVICES: usize = 32;
/// `DCGM_MAX_STR_LENGTH`: the room for a string value.
const MAX_STR_LENGTH: usize = 256;
/// `DCGM_MAX_BLOB_LENGTH`: the size of a field value's union.
const MAX_BLOB_LENGTH: usize = 4096;
/// `DCGM_OPERATION_MODE_AUTO`: the embedded engine samples on its own threads.
const OPERATION_MODE_AUTO: c_int = 1;

/// `dcgmHandle_t`, `dcgmGpuGrp_t` and `dcgmFieldGrp_t` are all `uintptr_t`.
type Handle = usize;

/// `dcgmConnectV2Params_v2`.
#[repr(C)]
struct ConnectV2Params {
    /// `dcgmConnectV2Params_version2`.
    version: u32,
    /// 0: the host engine drops our watches and groups when we disconnect.
    persist_after_disconnect: u32,
    /// How long `dcgmConnect_v2` may wait for the host engine, milliseconds.
    timeout_ms: u32,
    /// 1 when the address is a unix socket path.
    address_is_unix_socket: u32,
}

/// The union of `dcgmFieldValue_v1` (`int64_t i64; double dbl; char str[256]; char
/// blob[4096]`), kept as bytes so that decoding it needs no `unsafe`.
#[repr(C, align(8))]
struct ValueBytes([u8; MAX_BLOB_LENGTH]);

/// `dcgmFieldValue_v1`: one value as `dcgmGetLatestValuesForFields` returns it.
#[repr(C)]
pub(super) struct RawFieldValue {
    /// `dcgmFieldValue_version1`.
    version: u32,
    /// `DCGM_FI_*` id.
    field_id: u16,
    /// `DCGM_FT_*`: which member of the union holds the value.
    field_type: u16,
    /// `DCGM_ST_*` of this one value.
    status: i32,
    /// Sample time, microseconds since 1970.
    ts: i64,
    /// The value.
    value: ValueBytes,
}

/// `MAKE_DCGM_VERSION(dcgmConnectV2Params_v2, 2)`: the struct's size, version in the top byte.
const CONNECT_V2_PARAMS_VERSION: u32 = size_of::<ConnectV2Params>() as u32 | (2 << 24);
/// `MAKE_DCGM_VERSION(dcgmFieldValue_v1, 1)`.
const FIELD_VALUE_VERSION1: u32 = size_of::<RawFieldValue>() as u32 | (1 << 24);

// The layouts the headers give on every 64-bit target DCGM ships for (x86_64, aarch64).
const _: () = assert!(size_of::<ConnectV2Params>() == 16);
const _: () = assert!(size_of::<RawFieldValue>() == 4120);
const _: () = assert!(std::mem::offset_of!(RawFieldValue, status) == 8);
const _: () = assert!(std::mem::offset_of!(RawFieldValue, ts) == 16);
const _: () = assert!(std::mem::offset_of!(RawFieldValue, value) == 24);

impl RawFieldValue {
    /// An empty value for DCGM to fill.
    fn empty() -> Self {
        Self {
            version: FIELD_VALUE_VERSION1,
            field_id: 0,
            field_type: 0,
            status: 0,
            ts: 0,
            value: ValueBytes([0; MAX_BLOB_LENGTH]),
        }
    }

    /// Marks the value as not filled in: no field, no type, `DCGM_ST_NO_DATA`, so that an entry
    /// DCGM left alone decodes as no value rather than as the previous call's.
    fn reset(&mut self) {
        self.version = FIELD_VALUE_VERSION1;
        self.field_id = 0;
        self.field_type = 0;
        self.status = ST_NO_DATA;
        self.ts = 0;
    }

    /// A value as DCGM would return it, for tests of the decoding.
    #[cfg(test)]
    pub(super) fn new(field_id: u16, field_type: u8, status: i32, payload: &[u8]) -> Self {
        let mut raw = Self::empty();
        raw.field_id = field_id;
        raw.field_type = u16::from(field_type);
        raw.status = status;
        raw.value.0[..payload.len()].copy_from_slice(payload);
        raw
    }

    /// The value, decoded by its type tag.
    pub(super) fn decode(&self) -> FieldValue {
        let first8 = || {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&self.value.0[..8]);
            bytes
        };
        let value = match u8::try_from(self.field_type).unwrap_or(0) {
            b'd' => Value::Double(f64::from_ne_bytes(first8())),
            b'i' | b't' => Value::Int(i64::from_ne_bytes(first8())),
            b's' => {
                let text = &self.value.0[..MAX_STR_LENGTH];
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                Value::Text(String::from_utf8_lossy(&text[..end]).into_owned())
            }
            _ => Value::Other(self.field_type),
        };
        FieldValue {
            field_id: self.field_id,
            status: self.status,
            value,
        }
    }
}

/// One field's latest value, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldValue {
    /// `DCGM_FI_*` id.
    pub field_id: u16,
    /// `DCGM_ST_*` for this value: anything but 0 means there is no value.
    pub status: i32,
    /// The value as DCGM typed it.
    pub value: Value,
}

/// A field value by type (`DCGM_FT_*`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `DCGM_FT_DOUBLE`.
    Double(f64),
    /// `DCGM_FT_INT64` or `DCGM_FT_TIMESTAMP`.
    Int(i64),
    /// `DCGM_FT_STRING`.
    Text(String),
    /// Another type (a binary blob), not used here.
    Other(u16),
}

impl FieldValue {
    /// The value as a number; `None` where DCGM has none: a bad status, or one of the blank
    /// markers (`DCGM_FP64_BLANK` and up, `DCGM_INT64_BLANK` and up, as `DCGM_*_IS_BLANK`).
    pub fn number(&self) -> Option<f64> {
        if self.status != ST_OK {
            return None;
        }
        match self.value {
            Value::Double(v) if v.is_finite() && v < FP64_BLANK => Some(v),
            Value::Int(v) if v < INT64_BLANK => Some(v as f64),
            _ => None,
        }
    }

    /// The value as text; `None` on a bad status or DCGM's blank strings (`<<<…>>>`, as
    /// `DCGM_STR_IS_BLANK`).
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(s) if self.status == ST_OK => {
                let blank = s.starts_with("<<<") && s.contains(">>>");
                (!blank && !s.is_empty()).then_some(s.as_str())
            }
            _ => None,
        }
    }
}

/// A failure of the DCGM library or of one of its calls.
#[derive(Debug, thiserror::Error)]
pub enum DcgmError {
    /// The library could not be opened (not installed, wrong architecture).
    #[error("cannot load the DCGM library ({tried}): {reason}")]
    Load {
        /// The names or paths tried.
        tried: String,
        /// What the dynamic loader said, for each.
        reason: String,
    },
    /// The library lacks a function we call (too old, or not DCGM).
    #[error("{library} has no {symbol}: {source}")]
    Symbol {
        /// The library that was opened.
        library: String,
        /// The missing function.
        symbol: &'static str,
        #[source]
        source: libloading::Error,
    },
    /// A call returned an error code.
    #[error("{call} failed: {name} ({code})")]
    Call {
        /// The DCGM function.
        call: &'static str,
        /// Its `dcgmReturn_t`.
        code: i32,
        /// The code's name in `dcgm_structs.h`, e.g. `DCGM_ST_CONNECTION_NOT_VALID`.
        name: &'static str,
    },
    /// `--dcgm-address` is not something DCGM can connect to.
    #[error("DCGM address {address:?} is invalid: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DcgmError {
    /// The error for return code `code` of `call`.
    pub fn call(call: &'static str, code: i32) -> Self {
        Self::Call {
            call,
            code,
            name: return_name(code),
        }
    }

    /// The DCGM return code, for a failed call.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Call { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection (or the embedded engine) is gone, so that the session must be
    /// opened again, as opposed to a failure of one GPU.
    pub fn is_connection_lost(&self) -> bool {
        // DCGM_ST_CONNECTION_NOT_VALID, DCGM_ST_UNINITIALIZED, DCGM_ST_TIMEOUT.
        matches!(self.code(), Some(-21 | -10 | -11))
    }
}

/// Checks a return code.
fn check(call: &'static str, code: c_int) -> Result<(), DcgmError> {
    if code == ST_OK {
        Ok(())
    } else {
        Err(DcgmError::call(call, code))
    }
}

/// The name of a `dcgmReturn_t` value, as `dcgm_structs.h` spells it.
pub fn return_name(code: i32) -> &'static str {
    match code {
        0 => "DCGM_ST_OK",
        -1 => "DCGM_ST_BADPARAM",
        -3 => "DCGM_ST_GENERIC_ERROR",
        -4 => "DCGM_ST_MEMORY",
        -5 => "DCGM_ST_NOT_CONFIGURED",
        -6 => "DCGM_ST_NOT_SUPPORTED",
        -7 => "DCGM_ST_INIT_ERROR",
        -8 => "DCGM_ST_NVML_ERROR",
        -9 => "DCGM_ST_PENDING",
        -10 => "DCGM_ST_UNINITIALIZED",
        -11 => "DCGM_ST_TIMEOUT",
        -12 => "DCGM_ST_VER_MISMATCH",
        -13 => "DCGM_ST_UNKNOWN_FIELD",
        -14 => "DCGM_ST_NO_DATA",
        -15 => "DCGM_ST_STALE_DATA",
        -16 => "DCGM_ST_NOT_WATCHED",
        -17 => "DCGM_ST_NO_PERMISSION",
        -18 => "DCGM_ST_GPU_IS_LOST",
        -19 => "DCGM_ST_RESET_REQUIRED",
        -20 => "DCGM_ST_FUNCTION_NOT_FOUND",
        -21 => "DCGM_ST_CONNECTION_NOT_VALID",
        -22 => "DCGM_ST_GPU_NOT_SUPPORTED",
        -23 => "DCGM_ST_GROUP_INCOMPATIBLE",
        -24 => "DCGM_ST_MAX_LIMIT",
        -25 => "DCGM_ST_LIBRARY_NOT_FOUND",
        -26 => "DCGM_ST_DUPLICATE_KEY",
        -27 => "DCGM_ST_GPU_IN_SYNC_BOOST_GROUP",
        -28 => "DCGM_ST_GPU_NOT_IN_SYNC_BOOST_GROUP",
        -29 => "DCGM_ST_REQUIRES_ROOT",
        -30 => "DCGM_ST_NVVS_ERROR",
        -31 => "DCGM_ST_INSUFFICIENT_SIZE",
        -32 => "DCGM_ST_FIELD_UNSUPPORTED_BY_API",
        -33 => "DCGM_ST_MODULE_NOT_LOADED",
        -34 => "DCGM_ST_IN_USE",
        -35 => "DCGM_ST_GROUP_IS_EMPTY",
        -36 => "DCGM_ST_PROFILING_NOT_SUPPORTED",
        -37 => "DCGM_ST_PROFILING_LIBRARY_ERROR",
        -38 => "DCGM_ST_PROFILING_MULTI_PASS",
        -39 => "DCGM_ST_DIAG_ALREADY_RUNNING",
        -40 => "DCGM_ST_DIAG_BAD_JSON",
        -41 => "DCGM_ST_DIAG_BAD_LAUNCH",
        -42 => "DCGM_ST_DIAG_UNUSED",
        -43 => "DCGM_ST_DIAG_THRESHOLD_EXCEEDED",
        -44 => "DCGM_ST_INSUFFICIENT_DRIVER_VERSION",
        -45 => "DCGM_ST_INSTANCE_NOT_FOUND",
        -46 => "DCGM_ST_COMPUTE_INSTANCE_NOT_FOUND",
        -47 => "DCGM_ST_CHILD_NOT_KILLED",
        -48 => "DCGM_ST_3RD_PARTY_LIBRARY_ERROR",
        -49 => "DCGM_ST_INSUFFICIENT_RESOURCES",
        -50 => "DCGM_ST_PLUGIN_EXCEPTION",
        -51 => "DCGM_ST_NVVS_ISOLATE_ERROR",
        -52 => "DCGM_ST_NVVS_BINARY_NOT_FOUND",
        -53 => "DCGM_ST_NVVS_KILLED",
        -54 => "DCGM_ST_PAUSED",
        -55 => "DCGM_ST_ALREADY_INITIALIZED",
        -56 => "DCGM_ST_NVML_NOT_LOADED",
        -57 => "DCGM_ST_NVML_DRIVER_TIMEOUT",
        _ => "unknown DCGM return code",
    }
}

/// Where a standalone host engine (`nv-hostengine`) listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEngineAddress {
    /// What `dcgmConnect_v2` gets: `HOST`, `HOST:PORT` or a socket path.
    pub address: String,
    /// Whether `address` is a unix socket path.
    pub unix_socket: bool,
}

impl HostEngineAddress {
    /// Parses `--dcgm-address`: a unix socket as `/path` or `unix:/path`, else `HOST` (DCGM's
    /// port 5555) or `HOST:PORT`.
    pub fn parse(text: &str) -> Result<Self, DcgmError> {
        let bad = |reason| DcgmError::Address {
            address: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.contains('\0') {
            return Err(bad("contains a NUL character"));
        }
        if let Some(path) = trimmed.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix socket path is empty"));
            }
            return Ok(Self {
                address: path.to_string(),
                unix_socket: true,
            });
        }
        if trimmed.starts_with('/') {
            return Ok(Self {
                address: trimmed.to_string(),
                unix_socket: true,
            });
        }
        if trimmed.is_empty() {
            return Err(bad("it is empty"));
        }
        if trimmed.chars().any(char::is_whitespace) {
            return Err(bad("a host name has no spaces"));
        }
        // A bracketed IPv6 literal keeps its colons inside the brackets.
        let host_end = trimmed.rfind(']').map_or(0, |i| i + 1);
        if let Some(colon) = trimmed[host_end..].rfind(':').map(|i| i + host_end) {
            let (host, port) = (&trimmed[..colon], &trimmed[colon + 1..]);
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            if host_end == 0 && host.contains(':') {
                return Err(bad("an IPv6 address needs brackets: [ADDRESS]:PORT"));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            }
        }
        Ok(Self {
            address: trimmed.to_string(),
            unix_socket: false,
        })
    }
}

/// How to reach DCGM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Start DCGM's engine inside this process (`dcgmStartEmbedded`).
    Embedded,
    /// Connect to a running `nv-hostengine`.
    HostEngine(HostEngineAddress),
}

/// The functions we call, resolved once when the library is loaded, typed as their prototypes
/// in `dcgm_agent.h` (`dcgmReturn_t` and enums are C `int`, handles `uintptr_t`).
struct Functions {
    /// `dcgmInit(void)`.
    init: unsafe extern "C" fn() -> c_int,
    /// `dcgmShutdown(void)`.
    shutdown: unsafe extern "C" fn() -> c_int,
    /// `dcgmStartEmbedded(dcgmOperationMode_t opMode, dcgmHandle_t *pDcgmHandle)`.
    start_embedded: unsafe extern "C" fn(c_int, *mut Handle) -> c_int,
    /// `dcgmStopEmbedded(dcgmHandle_t)`.
    stop_embedded: unsafe extern "C" fn(Handle) -> c_int,
    /// `dcgmConnect_v2(const char *ipAddress, dcgmConnectV2Params_t *, dcgmHandle_t *)`.
    connect_v2: unsafe extern "C" fn(*const c_char, *mut ConnectV2Params, *mut Handle) -> c_int,
    /// `dcgmDisconnect(dcgmHandle_t)`.
    disconnect: unsafe extern "C" fn(Handle) -> c_int,
    /// `dcgmGetAllSupportedDevices(dcgmHandle_t, unsigned int gpuIdList[32], int *count)`.
    get_all_supported_devices: unsafe extern "C" fn(Handle, *mut c_uint, *mut c_int) -> c_int,
    /// `dcgmFieldGroupCreate(dcgmHandle_t, int numFieldIds, unsigned short *fieldIds,
    /// const char *fieldGroupName, dcgmFieldGrp_t *)`.
    field_group_create:
        unsafe extern "C" fn(Handle, c_int, *mut u16, *const c_char, *mut Handle) -> c_int,
    /// `dcgmFieldGroupDestroy(dcgmHandle_t, dcgmFieldGrp_t)`.
    field_group_destroy: unsafe extern "C" fn(Handle, Handle) -> c_int,
    /// `dcgmWatchFields(dcgmHandle_t, dcgmGpuGrp_t, dcgmFieldGrp_t, long long updateFreq,
    /// double maxKeepAge, int maxKeepSamples)`.
    watch_fields: unsafe extern "C" fn(Handle, Handle, Handle, i64, f64, c_int) -> c_int,
    /// `dcgmUpdateAllFields(dcgmHandle_t, int waitForUpdate)`.
    update_all_fields: unsafe extern "C" fn(Handle, c_int) -> c_int,
    /// `dcgmGetLatestValuesForFields(dcgmHandle_t, int gpuId, unsigned short fields[],
    /// unsigned int count, dcgmFieldValue_v1 values[])`.
    get_latest_values_for_fields:
        unsafe extern "C" fn(Handle, c_int, *mut u16, c_uint, *mut RawFieldValue) -> c_int,
}

/// The loaded DCGM library. Shared by the sessions opened on it, so it stays loaded until the
/// last one has shut DCGM down.
pub struct Dcgm {
    /// The function pointers, valid while `_library` is loaded.
    functions: Functions,
    /// Which file was loaded, for messages.
    name: String,
    /// Keeps the code behind `functions` mapped; dropped last.
    _library: Library,
}

impl Dcgm {
    /// Loads `path`, or the system's DCGM ([`DEFAULT_LIBRARIES`]) when `None`, and resolves
    /// the functions we call.
    pub fn load(path: Option<&Path>) -> Result<Arc<Dcgm>, DcgmError> {
        let candidates: Vec<String> = match path {
            Some(p) => vec![p.to_string_lossy().into_owned()],
            None => DEFAULT_LIBRARIES.iter().map(|s| s.to_string()).collect(),
        };
        let mut reasons = Vec::new();
        for name in &candidates {
            // SAFETY: loading runs the library's initialisers. DCGM's (and the test fake's) have
            // no preconditions; a file that is not DCGM fails the symbol lookups below.
            match unsafe { Library::new(name) } {
                Ok(library) => return Self::resolve(library, name.clone()).map(Arc::new),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        Err(DcgmError::Load {
            tried: candidates.join(", "),
            reason: reasons.join("; "),
        })
    }

    fn resolve(library: Library, name: String) -> Result<Dcgm, DcgmError> {
        macro_rules! symbol {
            ($symbol:literal) => {
                // SAFETY: the pointer type is the function's prototype in dcgm_agent.h (see
                // `Functions`); the pointer is used only while `library` stays loaded, which
                // `Dcgm` guarantees by owning both.
                *unsafe { library.get(concat!($symbol, "\0").as_bytes()) }.map_err(|source| {
                    DcgmError::Symbol {
                        library: name.clone(),
                        symbol: $symbol,
                        source,
                    }
                })?
            };
        }
        let functions = Functions {
            init: symbol!("dcgmInit"),
            shutdown: symbol!("dcgmShutdown"),
            start_embedded: symbol!("dcgmStartEmbedded"),
            stop_embedded: symbol!("dcgmStopEmbedded"),
            connect_v2: symbol!("dcgmConnect_v2"),
            disconnect: symbol!("dcgmDisconnect"),
            get_all_supported_devices: symbol!("dcgmGetAllSupportedDevices"),
            field_group_create: symbol!("dcgmFieldGroupCreate"),
            field_group_destroy: symbol!("dcgmFieldGroupDestroy"),
            watch_fields: symbol!("dcgmWatchFields"),
            update_all_fields: symbol!("dcgmUpdateAllFields"),
            get_latest_values_for_fields: symbol!("dcgmGetLatestValuesForFields"),
        };
        Ok(Dcgm {
            functions,
            name,
            _library: library,
        })
    }

    /// The file that was loaded.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Whether a session runs DCGM embedded or is connected to a host engine: which call ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedded,
    Remote,
}

/// DCGM initialised and started (embedded) or connected (host engine). Dropping it destroys
/// the field groups it created, stops or disconnects, and shuts DCGM down.
pub struct Session {
    /// The library, kept loaded while the session lives.
    dcgm: Arc<Dcgm>,
    /// The handle from `dcgmStartEmbedded` or `dcgmConnect_v2`.
    handle: Handle,
    /// Which call ends the session.
    kind: Kind,
    /// Field groups to destroy at the end (a host engine holds at most 64).
    field_groups: Vec<Handle>,
    /// Room for the values of one `dcgmGetLatestValuesForFields` call, reused (4 KiB each).
    buffer: Vec<RawFieldValue>,
}

impl Session {
    /// `dcgmInit`, then `dcgmStartEmbedded` (auto mode) or `dcgmConnect_v2` with `timeout`.
    pub fn open(
        dcgm: &Arc<Dcgm>,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<Session, DcgmError> {
        let f = &dcgm.functions;
        // SAFETY: the pointers in `f` are valid while `dcgm` holds the library, as it does for
        // this whole function; dcgmInit takes no arguments and may be called again after
        // dcgmShutdown.
        let code = unsafe { (f.init)() };
        if code != ST_OK && code != ST_ALREADY_INITIALIZED {
            return Err(DcgmError::call("dcgmInit", code));
        }
        let mut handle: Handle = 0;
        let (call, code, kind) = match connection {
            Connection::Embedded => {
                // SAFETY: `handle` is a live local, a valid place for the new handle.
                let code = unsafe { (f.start_embedded)(OPERATION_MODE_AUTO, &mut handle) };
                ("dcgmStartEmbedded", code, Kind::Embedded)
            }
            Connection::HostEngine(address) => {
                // Checked when parsed: the address has no NUL.
                let text =
                    CString::new(address.address.as_str()).map_err(|_| DcgmError::Address {
                        address: address.address.clone(),
                        reason: "contains a NUL character",
                    })?;
                let mut params = ConnectV2Params {
                    version: CONNECT_V2_PARAMS_VERSION,
                    persist_after_disconnect: 0,
                    timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
                    address_is_unix_socket: u32::from(address.unix_socket),
                };
                // SAFETY: a NUL-terminated address, a params struct laid out as
                // dcgmConnectV2Params_v2 with its version, and a place for the handle; all
                // outlive the call.
                let code = unsafe { (f.connect_v2)(text.as_ptr(), &mut params, &mut handle) };
                ("dcgmConnect_v2", code, Kind::Remote)
            }
        };
        if code != ST_OK {
            // SAFETY: undoes the dcgmInit above; no handle exists.
            unsafe { (f.shutdown)() };
            return Err(DcgmError::call(call, code));
        }
        Ok(Session {
            dcgm: Arc::clone(dcgm),
            handle,
            kind,
            field_groups: Vec::new(),
            buffer: Vec::new(),
        })
    }

    /// DCGM's ids of the GPUs it supports (`dcgmGetAllSupportedDevices`).
    pub fn supported_gpus(&self) -> Result<Vec<u32>, DcgmError> {
        let mut ids: [c_uint; MAX_NUM_DEVICES] = [0; MAX_NUM_DEVICES];
        let mut count: c_int = 0;
        // SAFETY: this session's live handle (closed only on drop), an array of
        // DCGM_MAX_NUM_DEVICES ids, as the prototype declares, and a count, both live locals.
        let code = unsafe {
            (self.dcgm.functions.get_all_supported_devices)(
                self.handle,
                ids.as_mut_ptr(),
                &mut count,
            )
        };
        check("dcgmGetAllSupportedDevices", code)?;
        let count = usize::try_from(count).unwrap_or(0).min(MAX_NUM_DEVICES);
        Ok(ids[..count].to_vec())
    }

    /// Creates field group `name` of `fields` and watches it on every GPU, updated every
    /// `update_every`, keeping `keep_samples` samples (`dcgmFieldGroupCreate` +
    /// `dcgmWatchFields` on `DCGM_GROUP_ALL_GPUS`).
    pub fn watch(
        &mut self,
        name: &str,
        fields: &[u16],
        update_every: Duration,
        keep_samples: i32,
    ) -> Result<(), DcgmError> {
        let f = &self.dcgm.functions;
        let name = CString::new(name).map_err(|_| DcgmError::call("dcgmFieldGroupCreate", -1))?;
        // The prototype takes a non-const pointer; give it a copy of our constant list.
        let mut ids = fields.to_vec();
        let count = c_int::try_from(ids.len()).unwrap_or(c_int::MAX);
        let mut group: Handle = 0;
        // SAFETY: this session's live handle, `count` field ids, a NUL-terminated name and a
        // place for the group id, all alive for the call.
        let code = unsafe {
            (f.field_group_create)(
                self.handle,
                count,
                ids.as_mut_ptr(),
                name.as_ptr(),
                &mut group,
            )
        };
        check("dcgmFieldGroupCreate", code)?;
        self.field_groups.push(group);
        let update_us = i64::try_from(update_every.as_micros()).unwrap_or(i64::MAX);
        // maxKeepAge 0 leaves the quota to the sample count, as `dcgmi dmon` does.
        // SAFETY: plain values: this session's live handle, the built-in all-GPUs group and
        // `group`, created on this handle just above.
        let code = unsafe {
            (f.watch_fields)(
                self.handle,
                GROUP_ALL_GPUS,
                group,
                update_us,
                0.0,
                keep_samples,
            )
        };
        check("dcgmWatchFields", code)
    }

    /// Makes DCGM sample every watched field now and waits for it (`dcgmUpdateAllFields`), so
    /// the first read after a watch finds values.
    pub fn update_all(&self) -> Result<(), DcgmError> {
        // SAFETY: plain values: this session's live handle and a flag.
        let code = unsafe { (self.dcgm.functions.update_all_fields)(self.handle, 1) };
        check("dcgmUpdateAllFields", code)
    }

    /// The latest value of each of `fields` on GPU `gpu` (`dcgmGetLatestValuesForFields`), in
    /// the order of `fields`. Per-value problems are in each value's status.
    pub fn latest(&mut self, gpu: u32, fields: &[u16]) -> Result<Vec<FieldValue>, DcgmError> {
        let gpu = c_int::try_from(gpu)
            .map_err(|_| DcgmError::call("dcgmGetLatestValuesForFields", -1))?;
        let mut ids = fields.to_vec();
        let count = c_uint::try_from(ids.len()).unwrap_or(c_uint::MAX);
        // Only the headers are reset between calls (DCGM writes every value it returns);
        // zeroing 4 KiB unions per field each sample would cost more than the call.
        self.buffer.resize_with(ids.len(), RawFieldValue::empty);
        self.buffer.truncate(ids.len());
        self.buffer.iter_mut().for_each(RawFieldValue::reset);
        // SAFETY: this session's live handle, `count` field ids and room for `count`
        // dcgmFieldValue_v1 (the buffer was just sized to it), alive for the call.
        let code = unsafe {
            (self.dcgm.functions.get_latest_values_for_fields)(
                self.handle,
                gpu,
                ids.as_mut_ptr(),
                count,
                self.buffer.as_mut_ptr(),
            )
        };
        check("dcgmGetLatestValuesForFields", code)?;
        Ok(self.buffer.iter().map(RawFieldValue::decode).collect())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let f = &self.dcgm.functions;
        // Results are ignored: on a lost connection these fail fast, and dcgmShutdown cleans up
        // whatever is left.
        // SAFETY: the pointers are valid while `self.dcgm` holds the library; the groups and
        // the handle were created by this session and are destroyed or closed once, here; the
        // dcgmShutdown ends this session's dcgmInit.
        unsafe {
            for group in self.field_groups.drain(..) {
                (f.field_group_destroy)(self.handle, group);
            }
            match self.kind {
                Kind::Embedded => (f.stop_embedded)(self.handle),
                Kind::Remote => (f.disconnect)(self.handle),
            };
            (f.shutdown)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_size_and_version_number() {
        assert_eq!(CONNECT_V2_PARAMS_VERSION, 0x0200_0010);
        assert_eq!(FIELD_VALUE_VERSION1, 0x0100_1018);
    }

    #[test]
    fn doubles_and_integers_decode() {
        let v = RawFieldValue::new(1002, b'd', 0, &0.75f64.to_ne_bytes()).decode();
        assert_eq!(v.field_id, 1002);
        assert_eq!(v.value, Value::Double(0.75));
        assert_eq!(v.number(), Some(0.75));
        let v = RawFieldValue::new(1009, b'i', 0, &123_456i64.to_ne_bytes()).decode();
        assert_eq!(v.number(), Some(123_456.0));
        let v = RawFieldValue::new(54, b's', 0, b"GPU-abc\0junk").decode();
        assert_eq!(v.text(), Some("GPU-abc"));
        assert_eq!(v.number(), None);
    }

    #[test]
    fn blanks_and_bad_statuses_are_none() {
        for blank in [FP64_BLANK, FP64_BLANK + 1.0, FP64_BLANK + 3.0, f64::NAN] {
            let v = RawFieldValue::new(1001, b'd', 0, &blank.to_ne_bytes()).decode();
            assert_eq!(v.number(), None, "{blank}");
        }
        for blank in [INT64_BLANK, INT64_BLANK + 2, i64::MAX] {
            let v = RawFieldValue::new(1010, b'i', 0, &blank.to_ne_bytes()).decode();
            assert_eq!(v.number(), None, "{blank}");
        }
        // Just under the markers is a value.
        let v = RawFieldValue::new(1010, b'i', 0, &(INT64_BLANK - 1).to_ne_bytes()).decode();
        assert_eq!(v.number(), Some((INT64_BLANK - 1) as f64));
        // A good-looking value with a bad status (DCGM_ST_NOT_WATCHED) is no value.
        let v = RawFieldValue::new(1001, b'd', -16, &0.5f64.to_ne_bytes()).decode();
        assert_eq!(v.number(), None);
        for text in ["<<<NULL>>>", "<<<NOT_FOUND>>>", "<<<NOT_SUPPORTED>>>", ""] {
            let mut bytes = text.as_bytes().to_vec();
            bytes.push(0);
            let v = RawFieldValue::new(54, b's', 0, &bytes).decode();
            assert_eq!(v.text(), None, "{text}");
        }
        // A blob is not a number.
        let v = RawFieldValue::new(1001, b'b', 0, &1.0f64.to_ne_bytes()).decode();
        assert_eq!(v.number(), None);
    }

    #[test]
    fn a_reset_value_is_no_value() {
        let mut raw = RawFieldValue::new(1002, b'd', 0, &0.75f64.to_ne_bytes());
        raw.reset();
        let v = raw.decode();
        assert_eq!((v.field_id, v.number()), (0, None));
    }

    #[test]
    fn addresses() {
        let unix = |a: &str| HostEngineAddress {
            address: a.to_string(),
            unix_socket: true,
        };
        let tcp = |a: &str| HostEngineAddress {
            address: a.to_string(),
            unix_socket: false,
        };
        let parse = |t: &str| HostEngineAddress::parse(t).ok();
        assert_eq!(parse("/run/dcgm.sock"), Some(unix("/run/dcgm.sock")));
        assert_eq!(parse("unix:/run/dcgm.sock"), Some(unix("/run/dcgm.sock")));
        assert_eq!(parse("unix:relative.sock"), Some(unix("relative.sock")));
        assert_eq!(parse("127.0.0.1"), Some(tcp("127.0.0.1")));
        assert_eq!(parse("127.0.0.1:5555"), Some(tcp("127.0.0.1:5555")));
        assert_eq!(parse(" dcgm.local:5555 "), Some(tcp("dcgm.local:5555")));
        assert_eq!(parse("[::1]:5555"), Some(tcp("[::1]:5555")));
        assert_eq!(parse("[::1]"), Some(tcp("[::1]")));
        for bad in [
            "",
            "unix:",
            "host:",
            ":5555",
            "host:0",
            "host:65536",
            "host:http",
            "a b",
            "::1",
            "a\0b",
        ] {
            assert!(
                matches!(
                    HostEngineAddress::parse(bad),
                    Err(DcgmError::Address { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn errors_name_their_code() {
        let e = DcgmError::call("dcgmWatchFields", -36);
        assert_eq!(
            e.to_string(),
            "dcgmWatchFields failed: DCGM_ST_PROFILING_NOT_SUPPORTED (-36)"
        );
        assert!(!e.is_connection_lost());
        assert!(DcgmError::call("dcgmGetLatestValuesForFields", -21).is_connection_lost());
        assert_eq!(return_name(-18), "DCGM_ST_GPU_IS_LOST");
        assert_eq!(return_name(-999), "unknown DCGM return code");
    }
}
