//! Fake DCGM: a shared library exporting the DCGM C API calls that system_monitor's DCGM
//! profiling collector makes, with the same ABI (types and struct layouts of DCGM 3/4's
//! `dcgm_structs.h` / `dcgm_agent.h`), so tests exercise the real loading and FFI code without a
//! GPU. It reads a `key=value` file named by `FAKE_DCGM_CONFIG` (or passed to
//! [`fakeDcgmConfigure`]) at each `dcgmInit`, and can simulate the failures DCGM has in the field.
//!
//! Configuration keys (all optional; `#` starts a comment):
//!
//! - `gpus=N`: number of GPUs (ids 0..N), default 2.
//! - `uuid.<id>=TEXT`: that GPU's UUID; default `GPU-00000000-0000-0000-0000-0000000000<id>`.
//!   `uuids=blank` makes every UUID DCGM's blank string.
//! - `init_error=CODE`: `dcgmInit` returns CODE.
//! - `connect_error=CODE`: `dcgmStartEmbedded` and `dcgmConnect_v2` return CODE.
//! - `watch_error=CODE`: `dcgmWatchFields` on a field group holding a profiling field (1001-1012)
//!   returns CODE (e.g. -36, `DCGM_ST_PROFILING_NOT_SUPPORTED`).
//! - `blank=ID,ID`: these fields read as DCGM's blank value (status OK).
//! - `status.<field>=CODE`: that field's value carries status CODE.
//! - `value.<field>=X`: that field's value on every GPU; otherwise a formula (see [`value_of`]).
//! - `lost_gpu=ID`: reading that GPU returns `DCGM_ST_GPU_IS_LOST`.
//! - `fail_file=PATH`: while PATH exists, reads, updates, starts and connects return
//!   `fail_code` (default -21, `DCGM_ST_CONNECTION_NOT_VALID`): a failure mid-run, then recovery.
//! - `record=PATH`: every call that changes state appends one line to PATH (`init`,
//!   `start_embedded mode=1`, `connect address=… unix=0 timeout_ms=… persist=0`, `watch …`,
//!   `disconnect`, `shutdown`, …), so a test can check what the monitor asked for.
//!
//! An unknown key makes `dcgmInit` fail with `DCGM_ST_BADPARAM` (a typo must not pass silently).
//!
//! # Safety
//!
//! Every exported `unsafe extern "C"` function has dcgm_agent.h's contract: each pointer argument
//! is null (answered `DCGM_ST_BADPARAM`) or valid for the declared type, alive for the call: a
//! string NUL-terminated, an array of the length passed (or `DCGM_MAX_NUM_DEVICES` ids), an
//! out-parameter writable. Handles and group ids are numbers this library handed out.

// The exported functions' contract is dcgm_agent.h's, stated once under "Safety" above.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

const ST_OK: c_int = 0;
const ST_BADPARAM: c_int = -1;
const ST_UNINITIALIZED: c_int = -10;
const ST_VER_MISMATCH: c_int = -12;
const ST_UNKNOWN_FIELD: c_int = -13;
const ST_NOT_WATCHED: c_int = -16;
const ST_GPU_IS_LOST: c_int = -18;
const ST_CONNECTION_NOT_VALID: c_int = -21;

const MAX_NUM_DEVICES: usize = 32;
const GROUP_ALL_GPUS: usize = 0x7fff_ffff;
const FIELD_UUID: u16 = 54;
const INT64_BLANK: i64 = 0x7fff_ffff_ffff_fff0;
const FP64_BLANK: f64 = 140_737_488_355_328.0;
const STR_BLANK: &str = "<<<NULL>>>";

/// `dcgmConnectV2Params_v2`.
#[repr(C)]
pub struct ConnectV2Params {
    /// Must be `dcgmConnectV2Params_version2`.
    version: u32,
    /// Recorded.
    persist_after_disconnect: u32,
    /// Recorded.
    timeout_ms: u32,
    /// Recorded: 1 for a unix socket path.
    address_is_unix_socket: u32,
}

/// The union of `dcgmFieldValue_v1` (`int64_t`, `double`, `char[256]`, `char[4096]`).
#[repr(C, align(8))]
pub struct ValueBytes([u8; 4096]);

/// `dcgmFieldValue_v1`.
#[repr(C)]
pub struct FieldValueV1 {
    /// `dcgmFieldValue_version1`.
    version: u32,
    /// The `DCGM_FI_*` asked for.
    field_id: u16,
    /// `DCGM_FT_*` of `value`.
    field_type: u16,
    /// `DCGM_ST_*` of this value.
    status: i32,
    /// Sample time, microseconds since 1970.
    ts: i64,
    /// The value.
    value: ValueBytes,
}

/// `MAKE_DCGM_VERSION(dcgmConnectV2Params_v2, 2)`.
const CONNECT_V2_PARAMS_VERSION: u32 = std::mem::size_of::<ConnectV2Params>() as u32 | (2 << 24);
/// `MAKE_DCGM_VERSION(dcgmFieldValue_v1, 1)`.
const FIELD_VALUE_VERSION: u32 = std::mem::size_of::<FieldValueV1>() as u32 | (1 << 24);

/// What the configuration file says.
struct Config {
    /// `gpus`.
    gpus: u32,
    /// `uuid.<id>`.
    uuids: HashMap<u32, String>,
    /// `uuids=blank`.
    blank_uuids: bool,
    /// `init_error`.
    init_error: c_int,
    /// `connect_error`.
    connect_error: c_int,
    /// `watch_error`.
    watch_error: c_int,
    /// `blank`.
    blank: HashSet<u16>,
    /// `status.<field>`.
    status: HashMap<u16, c_int>,
    /// `value.<field>`.
    values: HashMap<u16, f64>,
    /// `lost_gpu`.
    lost_gpu: Option<u32>,
    /// `fail_file`.
    fail_file: Option<PathBuf>,
    /// `fail_code`.
    fail_code: c_int,
    /// `record`.
    record: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gpus: 2,
            uuids: HashMap::new(),
            blank_uuids: false,
            init_error: ST_OK,
            connect_error: ST_OK,
            watch_error: ST_OK,
            blank: HashSet::new(),
            status: HashMap::new(),
            values: HashMap::new(),
            lost_gpu: None,
            fail_file: None,
            fail_code: ST_CONNECTION_NOT_VALID,
            record: None,
        }
    }
}

impl Config {
    fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("not key=value: {line}"))?;
            let (key, value) = (key.trim(), value.trim());
            let bad = |_| format!("bad value for {key}: {value}");
            if let Some(field) = key.strip_prefix("status.") {
                config
                    .status
                    .insert(field.parse().map_err(bad)?, value.parse().map_err(bad)?);
            } else if let Some(field) = key.strip_prefix("value.") {
                let number = value.parse().map_err(|_| format!("bad value for {key}"))?;
                config.values.insert(field.parse().map_err(bad)?, number);
            } else if let Some(gpu) = key.strip_prefix("uuid.") {
                config
                    .uuids
                    .insert(gpu.parse().map_err(bad)?, value.to_string());
            } else {
                match key {
                    "gpus" => config.gpus = value.parse().map_err(bad)?,
                    "uuids" if value == "blank" => config.blank_uuids = true,
                    "init_error" => config.init_error = value.parse().map_err(bad)?,
                    "connect_error" => config.connect_error = value.parse().map_err(bad)?,
                    "watch_error" => config.watch_error = value.parse().map_err(bad)?,
                    "blank" => {
                        for id in value.split(',').filter(|s| !s.trim().is_empty()) {
                            config.blank.insert(id.trim().parse().map_err(bad)?);
                        }
                    }
                    "lost_gpu" => config.lost_gpu = Some(value.parse().map_err(bad)?),
                    "fail_file" => config.fail_file = Some(PathBuf::from(value)),
                    "fail_code" => config.fail_code = value.parse().map_err(bad)?,
                    "record" => config.record = Some(PathBuf::from(value)),
                    _ => return Err(format!("unknown key {key}")),
                }
            }
        }
        if config.gpus as usize > MAX_NUM_DEVICES {
            return Err(format!("gpus={} is over {MAX_NUM_DEVICES}", config.gpus));
        }
        Ok(config)
    }

    /// Whether the simulated outage is on.
    fn failing(&self) -> bool {
        self.fail_file.as_ref().is_some_and(|f| f.exists())
    }

    /// What starting or connecting returns now: the mid-run failure while its file exists, else
    /// the configured connect error (0 by default).
    fn connect_code(&self) -> c_int {
        if self.failing() {
            self.fail_code
        } else {
            self.connect_error
        }
    }

    fn uuid(&self, gpu: u32) -> String {
        if self.blank_uuids {
            return STR_BLANK.to_string();
        }
        self.uuids
            .get(&gpu)
            .cloned()
            .unwrap_or_else(|| format!("GPU-00000000-0000-0000-0000-{gpu:012}"))
    }
}

/// The library's state: what a real DCGM keeps between calls.
#[derive(Default)]
struct State {
    /// Set by [`fakeDcgmConfigure`]; wins over `FAKE_DCGM_CONFIG`.
    config_path: Option<PathBuf>,
    /// Read at `dcgmInit`; `None` before it and after `dcgmShutdown`.
    config: Option<Config>,
    /// Open handles (embedded or connected).
    handles: HashSet<usize>,
    /// Numbers the handles.
    next_handle: usize,
    /// Field groups by id.
    field_groups: HashMap<usize, Vec<u16>>,
    /// Numbers the field groups (from 1, so tests know the ids).
    next_field_group: usize,
    /// Fields some watch covers.
    watched: HashSet<u16>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Runs `f` on the state (created on first use).
fn with_state<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut guard = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(State::default))
}

impl State {
    fn record(&self, line: &str) {
        let Some(path) = self.config.as_ref().and_then(|c| c.record.as_ref()) else {
            return;
        };
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }

    /// The config of an initialised library with a valid `handle`, or the error code.
    fn session(&self, handle: usize) -> Result<&Config, c_int> {
        let config = self.config.as_ref().ok_or(ST_UNINITIALIZED)?;
        if !self.handles.contains(&handle) {
            return Err(ST_CONNECTION_NOT_VALID);
        }
        if config.failing() {
            return Err(config.fail_code);
        }
        Ok(config)
    }

    fn open_handle(&mut self) -> usize {
        self.next_handle += 1;
        let handle = 0x1000 + self.next_handle;
        self.handles.insert(handle);
        handle
    }

    /// Ends `handle`'s session (`dcgmStopEmbedded`, `dcgmDisconnect`), recording `what`.
    fn close_handle(&mut self, handle: usize, what: &str) -> c_int {
        if self.config.is_none() {
            return ST_UNINITIALIZED;
        }
        if !self.handles.remove(&handle) {
            return ST_BADPARAM;
        }
        self.record(what);
        ST_OK
    }
}

/// Opens a session for `dcgmStartEmbedded`/`dcgmConnect_v2` once the call's arguments were
/// checked: returns `code` (recorded in `line` by the caller) or writes a new handle.
///
/// # Safety
/// `handle` is non-null and writable.
unsafe fn open_session(s: &mut State, code: c_int, handle: *mut usize) -> c_int {
    if code != ST_OK {
        return code;
    }
    let h = s.open_handle();
    // SAFETY: the caller checked it non-null; it is a writable dcgmHandle_t.
    unsafe { *handle = h };
    ST_OK
}

/// The value of `field` on `gpu` when no `value.<field>` is configured: ratios
/// `(gpu + 1) / 10 + (field - 1000) / 100` for 1001-1008 (GPU 0's SM_ACTIVE is 0.12), and bytes
/// per second `(gpu + 1) * 1,000,000 + (field - 1000) * 1,000` for 1009-1012.
fn value_of(config: &Config, gpu: u32, field: u16) -> f64 {
    if let Some(v) = config.values.get(&field) {
        return *v;
    }
    let offset = f64::from(field) - 1000.0;
    if field <= 1008 {
        f64::from(gpu + 1) / 10.0 + offset / 100.0
    } else {
        f64::from(gpu + 1) * 1_000_000.0 + offset * 1_000.0
    }
}

/// Fills one value as DCGM would.
fn fill(config: &Config, gpu: u32, field: u16, watched: bool, out: &mut FieldValueV1) {
    out.version = FIELD_VALUE_VERSION;
    out.field_id = field;
    out.ts = 1_700_000_000_000_000;
    out.value.0 = [0; 4096];
    out.status = ST_OK;
    if !watched {
        out.field_type = u16::from(b'd');
        out.status = ST_NOT_WATCHED;
        out.value.0[..8].copy_from_slice(&FP64_BLANK.to_ne_bytes());
        return;
    }
    if let Some(status) = config.status.get(&field) {
        out.status = *status;
    }
    let blank = config.blank.contains(&field);
    match field {
        FIELD_UUID => {
            out.field_type = u16::from(b's');
            let text = if blank {
                STR_BLANK.to_string()
            } else {
                config.uuid(gpu)
            };
            let bytes = text.as_bytes();
            let n = bytes.len().min(255);
            out.value.0[..n].copy_from_slice(&bytes[..n]);
        }
        1001..=1008 => {
            out.field_type = u16::from(b'd');
            let v = if blank {
                FP64_BLANK
            } else {
                value_of(config, gpu, field)
            };
            out.value.0[..8].copy_from_slice(&v.to_ne_bytes());
        }
        1009..=1012 => {
            out.field_type = u16::from(b'i');
            let v = if blank {
                INT64_BLANK
            } else {
                value_of(config, gpu, field) as i64
            };
            out.value.0[..8].copy_from_slice(&v.to_ne_bytes());
        }
        _ => {
            out.field_type = u16::from(b'i');
            out.status = ST_UNKNOWN_FIELD;
            out.value.0[..8].copy_from_slice(&INT64_BLANK.to_ne_bytes());
        }
    }
}

/// Test hook: read the configuration from `path` instead of `FAKE_DCGM_CONFIG` (for tests that
/// load the fake into their own process, where the environment is shared between tests).
#[no_mangle]
pub unsafe extern "C" fn fakeDcgmConfigure(path: *const c_char) {
    let path = (!path.is_null()).then(|| {
        // SAFETY: the caller passes a NUL-terminated string.
        PathBuf::from(
            unsafe { CStr::from_ptr(path) }
                .to_string_lossy()
                .into_owned(),
        )
    });
    with_state(|s| s.config_path = path);
}

#[no_mangle]
pub extern "C" fn dcgmInit() -> c_int {
    with_state(|s| {
        let path = s
            .config_path
            .clone()
            .or_else(|| std::env::var_os("FAKE_DCGM_CONFIG").map(PathBuf::from));
        let text = match &path {
            Some(p) => match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("fake dcgm: cannot read {}: {e}", p.display());
                    return ST_BADPARAM;
                }
            },
            None => String::new(),
        };
        let config = match Config::parse(&text) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fake dcgm: bad configuration: {e}");
                return ST_BADPARAM;
            }
        };
        let code = config.init_error;
        s.config = Some(config);
        s.record(&format!("init -> {code}"));
        if code != ST_OK {
            s.config = None;
        }
        code
    })
}

#[no_mangle]
pub extern "C" fn dcgmShutdown() -> c_int {
    with_state(|s| {
        if s.config.is_none() {
            return ST_UNINITIALIZED;
        }
        s.record("shutdown");
        s.config = None;
        s.handles.clear();
        s.field_groups.clear();
        s.watched.clear();
        ST_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn dcgmStartEmbedded(mode: c_int, handle: *mut usize) -> c_int {
    with_state(|s| {
        let Some(config) = &s.config else {
            return ST_UNINITIALIZED;
        };
        if handle.is_null() || !(mode == 1 || mode == 2) {
            return ST_BADPARAM;
        }
        let code = config.connect_code();
        s.record(&format!("start_embedded mode={mode} -> {code}"));
        // SAFETY: checked non-null above; the caller passes a writable dcgmHandle_t.
        unsafe { open_session(s, code, handle) }
    })
}

#[no_mangle]
pub extern "C" fn dcgmStopEmbedded(handle: usize) -> c_int {
    with_state(|s| s.close_handle(handle, "stop_embedded"))
}

#[no_mangle]
pub unsafe extern "C" fn dcgmConnect_v2(
    address: *const c_char,
    params: *mut ConnectV2Params,
    handle: *mut usize,
) -> c_int {
    with_state(|s| {
        let Some(config) = &s.config else {
            return ST_UNINITIALIZED;
        };
        if address.is_null() || params.is_null() || handle.is_null() {
            return ST_BADPARAM;
        }
        // SAFETY: checked non-null; the caller passes a NUL-terminated string and a params
        // struct it owns.
        let (address, params) = unsafe { (CStr::from_ptr(address), &*params) };
        if params.version != CONNECT_V2_PARAMS_VERSION {
            s.record(&format!("connect bad version {:#x}", params.version));
            return ST_VER_MISMATCH;
        }
        let code = config.connect_code();
        s.record(&format!(
            "connect address={} unix={} timeout_ms={} persist={} -> {code}",
            address.to_string_lossy(),
            params.address_is_unix_socket,
            params.timeout_ms,
            params.persist_after_disconnect
        ));
        // SAFETY: checked non-null above; the caller passes a writable dcgmHandle_t.
        unsafe { open_session(s, code, handle) }
    })
}

#[no_mangle]
pub extern "C" fn dcgmDisconnect(handle: usize) -> c_int {
    with_state(|s| s.close_handle(handle, "disconnect"))
}

#[no_mangle]
pub unsafe extern "C" fn dcgmGetAllSupportedDevices(
    handle: usize,
    ids: *mut c_uint,
    count: *mut c_int,
) -> c_int {
    with_state(|s| {
        let config = match s.session(handle) {
            Ok(c) => c,
            Err(code) => return code,
        };
        if ids.is_null() || count.is_null() {
            return ST_BADPARAM;
        }
        // SAFETY: the caller passes an array of DCGM_MAX_NUM_DEVICES ids and a writable count;
        // `gpus` is at most that (checked when parsing).
        unsafe {
            for gpu in 0..config.gpus {
                *ids.add(gpu as usize) = gpu;
            }
            *count = config.gpus as c_int;
        }
        ST_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn dcgmFieldGroupCreate(
    handle: usize,
    count: c_int,
    fields: *mut u16,
    name: *const c_char,
    group: *mut usize,
) -> c_int {
    with_state(|s| {
        if let Err(code) = s.session(handle) {
            return code;
        }
        if fields.is_null() || name.is_null() || group.is_null() || count <= 0 {
            return ST_BADPARAM;
        }
        // SAFETY: the caller passes `count` field ids, a NUL-terminated name and a writable
        // group id.
        let (ids, name) = unsafe {
            (
                std::slice::from_raw_parts(fields, count as usize).to_vec(),
                CStr::from_ptr(name).to_string_lossy().into_owned(),
            )
        };
        s.next_field_group += 1;
        let id = s.next_field_group;
        let list: Vec<String> = ids.iter().map(u16::to_string).collect();
        s.record(&format!(
            "field_group_create {id} name={name} fields={}",
            list.join(",")
        ));
        s.field_groups.insert(id, ids);
        // SAFETY: checked non-null above.
        unsafe { *group = id };
        ST_OK
    })
}

#[no_mangle]
pub extern "C" fn dcgmFieldGroupDestroy(handle: usize, group: usize) -> c_int {
    with_state(|s| {
        if let Err(code) = s.session(handle) {
            return code;
        }
        if s.field_groups.remove(&group).is_none() {
            return ST_BADPARAM;
        }
        s.record(&format!("field_group_destroy {group}"));
        ST_OK
    })
}

#[no_mangle]
pub extern "C" fn dcgmWatchFields(
    handle: usize,
    gpu_group: usize,
    field_group: usize,
    update_freq_us: i64,
    max_keep_age: f64,
    max_keep_samples: c_int,
) -> c_int {
    with_state(|s| {
        let config = match s.session(handle) {
            Ok(c) => c,
            Err(code) => return code,
        };
        let Some(fields) = s.field_groups.get(&field_group) else {
            return ST_BADPARAM;
        };
        if gpu_group != GROUP_ALL_GPUS || update_freq_us <= 0 {
            return ST_BADPARAM;
        }
        let profiling = fields.iter().any(|f| (1001..=1012).contains(f));
        let code = if profiling { config.watch_error } else { ST_OK };
        let fields = fields.clone();
        s.record(&format!(
            "watch field_group={field_group} freq_us={update_freq_us} keep_age={max_keep_age} \
             keep_samples={max_keep_samples} -> {code}"
        ));
        if code == ST_OK {
            s.watched.extend(fields);
        }
        code
    })
}

#[no_mangle]
pub extern "C" fn dcgmUpdateAllFields(handle: usize, wait: c_int) -> c_int {
    with_state(|s| {
        if let Err(code) = s.session(handle) {
            return code;
        }
        s.record(&format!("update_all wait={wait}"));
        ST_OK
    })
}

#[no_mangle]
pub unsafe extern "C" fn dcgmGetLatestValuesForFields(
    handle: usize,
    gpu: c_int,
    fields: *mut u16,
    count: c_uint,
    values: *mut FieldValueV1,
) -> c_int {
    with_state(|s| {
        let config = match s.session(handle) {
            Ok(c) => c,
            Err(code) => return code,
        };
        if fields.is_null() || values.is_null() || gpu < 0 || gpu as u32 >= config.gpus {
            return ST_BADPARAM;
        }
        if config.lost_gpu == Some(gpu as u32) {
            return ST_GPU_IS_LOST;
        }
        // SAFETY: the caller passes `count` field ids and room for `count` values.
        let (fields, values) = unsafe {
            (
                std::slice::from_raw_parts(fields, count as usize),
                std::slice::from_raw_parts_mut(values, count as usize),
            )
        };
        for (field, out) in fields.iter().zip(values.iter_mut()) {
            let watched = s.watched.contains(field);
            fill(config, gpu as u32, *field, watched, out);
        }
        ST_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_headers() {
        assert_eq!(std::mem::size_of::<ConnectV2Params>(), 16);
        assert_eq!(std::mem::size_of::<FieldValueV1>(), 4120);
        assert_eq!(std::mem::offset_of!(FieldValueV1, ts), 16);
        assert_eq!(std::mem::offset_of!(FieldValueV1, value), 24);
    }

    #[test]
    fn config_rejects_unknown_keys() {
        assert!(Config::parse("gpus=3\nblank=1004, 1011\n").is_ok());
        assert!(Config::parse("gpu=3").is_err());
    }
}
