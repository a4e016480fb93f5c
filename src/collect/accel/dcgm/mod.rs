//! DCGM profiling fields (`--enable-dcgm-profiling`): loads the DCGM library at run time, runs
//! it embedded or connects to `nv-hostengine` (`--dcgm-address`), watches the `DCGM_FI_PROF_*`
//! fields on every GPU and writes their latest values into
//! [`Accelerator::profiling`](crate::model::Accelerator::profiling) of the NVIDIA devices the
//! `nvidia` collector put in the snapshot (matched by UUID, else DCGM GPU id = NVML index).
//!
//! DCGM is asked for explicitly, so its absence is one warning at start naming what is missing
//! (and then no collector). A failure mid-run empties the profiling fields, puts the error in
//! the collector's status and reopens DCGM with backoff; the rest of the snapshot is untouched.
//! Without NVIDIA devices in the snapshot the collector stays connected but attaches nothing.

mod ffi;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Backoff;
use crate::collect::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::model::{Accelerator, ProfilingStats, Snapshot, Vendor};

pub use ffi::{return_name, Connection, DcgmError, HostEngineAddress, DEFAULT_LIBRARIES};

/// The profiling fields read, in the order of [`ProfilingStats`]'s fields (`dcgm_fields.h`).
pub const PROFILING_FIELDS: [u16; 12] = [
    1001, // DCGM_FI_PROF_GR_ENGINE_ACTIVE
    1002, // DCGM_FI_PROF_SM_ACTIVE
    1003, // DCGM_FI_PROF_SM_OCCUPANCY
    1004, // DCGM_FI_PROF_PIPE_TENSOR_ACTIVE
    1005, // DCGM_FI_PROF_DRAM_ACTIVE
    1006, // DCGM_FI_PROF_PIPE_FP64_ACTIVE
    1007, // DCGM_FI_PROF_PIPE_FP32_ACTIVE
    1008, // DCGM_FI_PROF_PIPE_FP16_ACTIVE
    1009, // DCGM_FI_PROF_PCIE_TX_BYTES
    1010, // DCGM_FI_PROF_PCIE_RX_BYTES
    1011, // DCGM_FI_PROF_NVLINK_TX_BYTES
    1012, // DCGM_FI_PROF_NVLINK_RX_BYTES
];

/// DCGM samples the profiling fields once per `--interval`: a profiling value is the average
/// over DCGM's update period, so each sample then covers exactly its own interval. Below this
/// floor the profiler's own overhead grows for no useful resolution.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(100);

/// How long `dcgmConnect_v2` may wait for the host engine. It runs on the sampler's thread (at
/// start, then at most once per backoff step), so it must stay well under the health check's
/// three intervals.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The first wait before reopening DCGM after a failure; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to reopen DCGM.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Samples DCGM keeps per field: the latest is all we read (as `dcgmi dmon`).
const KEEP_SAMPLES: i32 = 2;
/// The UUID never changes; DCGM needs a watch to have a value, so it gets a slow one.
const UUID_UPDATE_INTERVAL: Duration = Duration::from_secs(3600);

/// What the collector needs, from [`CollectConfig`] or set by a test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The library to load; `None` tries [`DEFAULT_LIBRARIES`].
    pub library: Option<PathBuf>,
    /// Embedded, or the host engine to connect to.
    pub connection: Connection,
    /// How often DCGM samples the profiling fields.
    pub update_interval: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// First wait before reopening DCGM after a failure (then doubling).
    pub backoff_first: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl Options {
    /// The options `config` describes (`--dcgm-library`, `--dcgm-address`).
    pub fn from_config(config: &CollectConfig) -> Result<Options, DcgmError> {
        let connection = match &config.accel.dcgm_address {
            Some(address) => Connection::HostEngine(HostEngineAddress::parse(address)?),
            None => Connection::Embedded,
        };
        Ok(Options {
            library: config.accel.dcgm_library.clone(),
            connection,
            update_interval: config.interval.max(MIN_UPDATE_INTERVAL),
            connect_timeout: CONNECT_TIMEOUT,
            backoff_first: BACKOFF_FIRST,
            backoff_max: BACKOFF_MAX,
        })
    }

    /// The retry schedule after DCGM failed just now.
    fn backoff_after_failure(&self) -> Backoff {
        Backoff::after_failure(self.backoff_first, self.backoff_max, Instant::now())
    }

    /// How DCGM is reached, for messages.
    fn describe(&self) -> String {
        match &self.connection {
            Connection::Embedded => "embedded".to_string(),
            Connection::HostEngine(a) if a.unix_socket => {
                format!("host engine at unix socket {}", a.address)
            }
            Connection::HostEngine(a) => format!("host engine at {}", a.address),
        }
    }
}

/// The collector, or `None` (after one warning saying why and how to fix it) when DCGM cannot
/// be used: library missing, init or embedded start failing, profiling not supported. An
/// unreachable host engine is retried with backoff instead: it may start after the monitor.
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let started = Options::from_config(config).and_then(DcgmCollector::start);
    match started {
        Ok(collector) => Some(Box::new(collector)),
        Err(e) => {
            tracing::warn!("DCGM profiling is off: {e}; {}", advice(&e));
            None
        }
    }
}

/// How to fix what `error` says, for the one warning.
fn advice(error: &DcgmError) -> &'static str {
    match error {
        DcgmError::Load { .. } | DcgmError::Symbol { .. } => {
            "install DCGM 3 or 4 (datacenter-gpu-manager) or pass --dcgm-library PATH"
        }
        DcgmError::Address { .. } => "fix --dcgm-address (HOST[:PORT], /socket or unix:/socket)",
        DcgmError::Call { call, code, .. } => match (*call, *code) {
            // DCGM_ST_REQUIRES_ROOT, DCGM_ST_NO_PERMISSION: the driver keeps the profiling
            // counters for administrators by default.
            (_, -29 | -17) => {
                "profiling needs root or CAP_SYS_ADMIN, or a host engine running as root"
            }
            ("dcgmWatchFields", _) => {
                "these GPUs or this DCGM do not offer profiling metrics (data-center GPUs from \
                 Volta on), or another profiler holds the GPU's counters"
            }
            ("dcgmStartEmbedded" | "dcgmInit", _) => {
                "check the NVIDIA driver, or run nv-hostengine and pass --dcgm-address"
            }
            _ => "check that DCGM works (`dcgmi discovery -l`)",
        },
    }
}

/// One GPU as DCGM knows it.
#[derive(Debug, Clone, PartialEq)]
struct Gpu {
    /// DCGM's GPU id.
    id: u32,
    /// `DCGM_FI_DEV_UUID`, when DCGM gave one: the reliable key to NVML's devices.
    uuid: Option<String>,
}

/// An open DCGM with the profiling fields watched.
struct Ready {
    /// The DCGM session (dropped = stopped/disconnected and shut down).
    session: ffi::Session,
    /// The GPUs DCGM supports, read when the session opened.
    gpus: Vec<Gpu>,
}

/// Where the collector stands.
enum State {
    /// Reading each sample.
    Ready(Ready),
    /// DCGM failed; reopened when `backoff` is due.
    Waiting {
        /// When the next attempt is due.
        backoff: Backoff,
        /// Why DCGM is not available, for the status.
        error: String,
    },
}

/// Reads DCGM's profiling fields into the NVIDIA accelerators of each snapshot.
pub struct DcgmCollector {
    /// The loaded library, reused by every session.
    dcgm: Arc<ffi::Dcgm>,
    /// Connection and timing settings.
    options: Options,
    /// Open, or waiting to reopen.
    state: State,
}

impl DcgmCollector {
    /// Loads DCGM, opens it and watches the profiling fields. An unreachable host engine is
    /// not an error here: the collector starts waiting (after one warning) and retries.
    pub fn start(options: Options) -> Result<DcgmCollector, DcgmError> {
        let dcgm = ffi::Dcgm::load(options.library.as_deref())?;
        let state = match open(&dcgm, &options) {
            Ok(ready) => {
                tracing::info!(
                    "DCGM profiling on ({}): {} GPUs, library {}",
                    options.describe(),
                    ready.gpus.len(),
                    dcgm.name()
                );
                State::Ready(ready)
            }
            Err(e) if is_unreachable(&options, &e) => {
                tracing::warn!(
                    "DCGM {} is unreachable: {e}; profiling fields stay empty until it answers \
                     (retrying with backoff; start nv-hostengine or fix --dcgm-address)",
                    options.describe()
                );
                State::Waiting {
                    backoff: options.backoff_after_failure(),
                    error: e.to_string(),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(DcgmCollector {
            dcgm,
            options,
            state,
        })
    }

    /// Reads every NVIDIA accelerator's profiling fields; returns what failed on single GPUs
    /// (those keep no profiling). A lost connection is the error.
    fn read(ready: &mut Ready, accelerators: &mut [Accelerator]) -> Result<Vec<String>, DcgmError> {
        let mut problems = Vec::new();
        for accelerator in accelerators
            .iter_mut()
            .filter(|a| a.vendor == Vendor::Nvidia)
        {
            let Some(gpu) = match_gpu(accelerator, &ready.gpus) else {
                continue;
            };
            match ready.session.latest(gpu.id, &PROFILING_FIELDS) {
                Ok(values) => accelerator.profiling = Some(profiling_stats(&values)),
                Err(e) if e.is_connection_lost() => return Err(e),
                Err(e) => problems.push(format!("GPU {}: {e}", gpu.id)),
            }
        }
        Ok(problems)
    }
}

impl Collector for DcgmCollector {
    fn name(&self) -> &'static str {
        "dcgm"
    }

    /// It warns once when the host engine is lost, with the fix (start nv-hostengine, mend
    /// `--dcgm-address`), and says when it is back.
    fn logs_own_failures(&self) -> bool {
        true
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        if let State::Waiting { backoff, error } = &mut self.state {
            let now = Instant::now();
            if !backoff.is_due(now) {
                return Err(CollectError::Other(format!(
                    "DCGM unavailable ({error}); next attempt in {:.0} s",
                    backoff.remaining(now).as_secs_f64().ceil()
                )));
            }
            match open(&self.dcgm, &self.options) {
                Ok(ready) => {
                    tracing::info!("DCGM is back ({})", self.options.describe());
                    self.state = State::Ready(ready);
                }
                Err(e) => {
                    tracing::debug!(%e, "DCGM still unavailable");
                    backoff.failed(now);
                    *error = e.to_string();
                    return Err(CollectError::Other(format!("DCGM unavailable ({e})")));
                }
            }
        }
        let State::Ready(ready) = &mut self.state else {
            return Ok(());
        };
        match Self::read(ready, &mut snapshot.accelerators) {
            Ok(problems) if problems.is_empty() => Ok(()),
            Ok(problems) => Err(CollectError::Other(problems.join("; "))),
            Err(e) => {
                for accelerator in &mut snapshot.accelerators {
                    if accelerator.vendor == Vendor::Nvidia {
                        accelerator.profiling = None;
                    }
                }
                tracing::warn!(
                    "DCGM stopped answering: {e}; profiling fields are empty until it is back \
                     (retrying with backoff)"
                );
                // Dropping the session stops or disconnects and shuts DCGM down before reopening.
                self.state = State::Waiting {
                    backoff: self.options.backoff_after_failure(),
                    error: e.to_string(),
                };
                Err(CollectError::Other(format!("DCGM unavailable ({e})")))
            }
        }
    }
}

/// Whether `error` from [`open`] means the host engine is not (yet) there, which is retried,
/// rather than DCGM being unusable.
fn is_unreachable(options: &Options, error: &DcgmError) -> bool {
    matches!(options.connection, Connection::HostEngine(_))
        && matches!(
            error,
            DcgmError::Call {
                call: "dcgmConnect_v2",
                ..
            }
        )
}

/// Opens a session, lists the GPUs, watches the profiling fields and reads the UUIDs.
fn open(dcgm: &Arc<ffi::Dcgm>, options: &Options) -> Result<Ready, DcgmError> {
    let mut session = ffi::Session::open(dcgm, &options.connection, options.connect_timeout)?;
    let ids = session.supported_gpus()?;
    session.watch(
        &group_name("profiling"),
        &PROFILING_FIELDS,
        options.update_interval,
        KEEP_SAMPLES,
    )?;
    // The UUIDs only improve the matching (index is the fallback): their failures are not fatal.
    let uuid_watch = session.watch(
        &group_name("uuid"),
        &[ffi::FI_DEV_UUID],
        UUID_UPDATE_INTERVAL,
        1,
    );
    if let Err(e) = session.update_all() {
        tracing::debug!(%e, "DCGM did not update the new watches at once");
    }
    let mut gpus = Vec::with_capacity(ids.len());
    for id in ids {
        let uuid = match &uuid_watch {
            Ok(()) => session
                .latest(id, &[ffi::FI_DEV_UUID])
                .ok()
                .and_then(|values| values.first().and_then(|v| v.text().map(str::to_string))),
            Err(_) => None,
        };
        gpus.push(Gpu { id, uuid });
    }
    if let Err(e) = uuid_watch {
        tracing::debug!(%e, "no GPU UUIDs from DCGM; matching GPUs by index");
    }
    Ok(Ready { session, gpus })
}

/// A field group name no other client of the host engine uses (names must be unique there).
fn group_name(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("system_monitor_{}_{n}_{what}", std::process::id())
}

/// The DCGM GPU that is `accelerator`: the one with its UUID; else, when either side has no
/// UUID, the one whose DCGM id is its NVML index (DCGM numbers GPUs in NVML's order).
fn match_gpu<'a>(accelerator: &Accelerator, gpus: &'a [Gpu]) -> Option<&'a Gpu> {
    if let Some(uuid) = &accelerator.uuid {
        if let Some(gpu) = gpus.iter().find(|g| g.uuid.as_ref() == Some(uuid)) {
            return Some(gpu);
        }
    }
    gpus.iter()
        .find(|g| g.id == accelerator.index && (g.uuid.is_none() || accelerator.uuid.is_none()))
}

/// The profiling fields from values read in [`PROFILING_FIELDS`]' order; blanks are `None`.
fn profiling_stats(values: &[ffi::FieldValue]) -> ProfilingStats {
    let get = |field: u16| {
        values
            .iter()
            .find(|v| v.field_id == field)
            .and_then(ffi::FieldValue::number)
    };
    ProfilingStats {
        graphics_engine_active: get(1001),
        sm_active: get(1002),
        sm_occupancy: get(1003),
        tensor_active: get(1004),
        dram_active: get(1005),
        fp64_active: get(1006),
        fp32_active: get(1007),
        fp16_active: get(1008),
        pcie_tx_bytes_per_sec: get(1009),
        pcie_rx_bytes_per_sec: get(1010),
        nvlink_tx_bytes_per_sec: get(1011),
        nvlink_rx_bytes_per_sec: get(1012),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nvidia(index: u32, uuid: Option<&str>) -> Accelerator {
        Accelerator {
            vendor: Vendor::Nvidia,
            index,
            uuid: uuid.map(str::to_string),
            ..Accelerator::default()
        }
    }

    fn gpu(id: u32, uuid: Option<&str>) -> Gpu {
        Gpu {
            id,
            uuid: uuid.map(str::to_string),
        }
    }

    #[test]
    fn gpus_match_by_uuid_then_by_index() {
        let gpus = [gpu(0, Some("GPU-b")), gpu(1, Some("GPU-a"))];
        // The UUID wins over the index.
        assert_eq!(match_gpu(&nvidia(0, Some("GPU-a")), &gpus), Some(&gpus[1]));
        // No UUID on the NVML side: by index.
        assert_eq!(match_gpu(&nvidia(1, None), &gpus), Some(&gpus[1]));
        // Both have UUIDs and none is equal: a different GPU, not attached to anything.
        assert_eq!(match_gpu(&nvidia(0, Some("GPU-z")), &gpus), None);
        // DCGM gave no UUIDs: by index.
        let bare = [gpu(0, None), gpu(1, None)];
        assert_eq!(match_gpu(&nvidia(1, Some("GPU-a")), &bare), Some(&bare[1]));
        assert_eq!(match_gpu(&nvidia(2, None), &bare), None);
    }

    #[test]
    fn advice_names_the_fix() {
        let load = DcgmError::Load {
            tried: "libdcgm.so.4".into(),
            reason: "not found".into(),
        };
        assert!(advice(&load).contains("--dcgm-library"));
        assert!(advice(&DcgmError::call("dcgmWatchFields", -36)).contains("profiling"));
        assert!(advice(&DcgmError::call("dcgmStartEmbedded", -7)).contains("--dcgm-address"));
        assert!(advice(&DcgmError::call("dcgmWatchFields", -29)).contains("root"));
    }

    #[test]
    fn options_follow_the_flags() {
        let mut config = CollectConfig::default();
        assert_eq!(
            Options::from_config(&config).map(|o| o.connection).ok(),
            Some(Connection::Embedded)
        );
        config.accel.dcgm_address = Some("unix:/run/nvidia-dcgm.sock".into());
        assert_eq!(
            Options::from_config(&config).map(|o| o.connection).ok(),
            Some(Connection::HostEngine(HostEngineAddress {
                address: "/run/nvidia-dcgm.sock".into(),
                unix_socket: true
            }))
        );
        config.accel.dcgm_address = Some("host:99999".into());
        assert!(Options::from_config(&config).is_err());
    }
}
