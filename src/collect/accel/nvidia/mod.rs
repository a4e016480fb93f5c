//! NVIDIA GPUs through NVML (nvml-wrapper), loaded at run time from `--nvml-library` or the
//! system's `libnvidia-ml.so.1` / `nvml.dll`: per-GPU readings, MIG devices, processes, and
//! recovery from a lost GPU or an unloaded driver by re-initialising NVML with backoff.
//!
//! - No library (or not an NVML library): no collector, logged once at debug level.
//! - The library loads but `nvmlInit` fails (driver not loaded yet, e.g. a node whose driver
//!   container starts after the agent): the collector stays and retries with backoff, reporting
//!   no GPU meanwhile and logging nothing above debug.
//! - NVML initialises but lists no GPU: no collector.
//! - A query a GPU does not support is remembered per GPU and never asked again.
//! - A GPU that fails mid-run (GPU lost, driver gone) is reported with `error` under its last
//!   known identity while the others go on; NVML is shut down and initialised again after 1 s,
//!   then 2, 4, … up to 60 s, until every GPU answers. A warning is logged once per loss and an
//!   info line once on recovery.
//! - The device list is rescanned every `RESCAN_INTERVAL`, not each sample; handles and static
//!   facts are kept between samples.
//!
//! Each module uses only those listed before it: `convert` (pure conversions to the model's
//! units), `query` (the queries a device may not support, what a failure means), `raw` (the NVML
//! session, the handles kept between samples and the calls nvml-wrapper does not wrap: all of
//! the collector's `unsafe`), `mig` (a GPU's MIG devices), `device` (one GPU).

mod convert;
mod device;
mod mig;
mod query;
mod raw;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use super::Backoff;
use crate::collect::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::model::Snapshot;
use device::{Gpu, SystemFacts};
use raw::Session;

/// How often the device list (and MIG layout) is read again.
const RESCAN_INTERVAL: Duration = Duration::from_secs(60);
/// The first wait before re-initialising NVML after a failure; doubled at each failed attempt.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Why NVML could not be started.
#[derive(Debug, thiserror::Error)]
#[error("initialising NVML from {library}: {source}")]
pub struct InitError {
    /// The library path tried (or the system default's name).
    library: String,
    /// What nvml-wrapper said.
    #[source]
    source: NvmlError,
}

impl InitError {
    /// Whether the library itself is missing (or is not NVML), as opposed to present but
    /// unable to start (no driver, no permission).
    fn library_missing(&self) -> bool {
        matches!(
            self.source,
            NvmlError::LibloadingError(_) | NvmlError::FailedToLoadSymbol(_)
        )
    }
}

/// Loads and initialises NVML: a new session.
fn init(library: Option<&Path>) -> Result<Session, InitError> {
    let mut builder = Nvml::builder();
    if let Some(path) = library {
        builder.lib_path(path.as_os_str());
    }
    builder
        .init()
        .map(Session::new)
        .map_err(|source| InitError {
            library: library.map_or_else(
                || default_library().to_string(),
                |p| p.display().to_string(),
            ),
            source,
        })
}

/// The library nvml-wrapper loads when no path is given.
fn default_library() -> &'static str {
    if cfg!(windows) {
        "nvml.dll"
    } else {
        "libnvidia-ml.so.1"
    }
}

/// The collector, or `None` where there is no NVML library or it lists no GPU.
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let library = config.accel.nvml_library.clone();
    let now = Instant::now();
    match init(library.as_deref()) {
        Err(error) if error.library_missing() => {
            tracing::debug!(%error, "no NVML library; no NVIDIA collector");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "NVML library present but not initialised; retrying with backoff");
            let mut collector = NvidiaCollector::new(library, None);
            collector.retry = Some(Backoff::after_failure(FIRST_RETRY, MAX_RETRY, now));
            Some(Box::new(collector))
        }
        Ok(nvml) => {
            let mut collector = NvidiaCollector::new(library, Some(nvml));
            collector.rescan(now);
            if collector.gpus.is_empty() {
                tracing::debug!("NVML lists no GPU; no NVIDIA collector");
                return None;
            }
            tracing::debug!(gpus = collector.gpus.len(), "NVML initialised");
            Some(Box::new(collector))
        }
    }
}

/// The NVML collector: one session of the library and the GPU slots it reads.
pub struct NvidiaCollector {
    /// Library path from the configuration (`None`: the system's).
    library: Option<PathBuf>,
    /// The initialised library; `None` while it cannot be initialised.
    nvml: Option<Session>,
    /// Driver and CUDA versions of the current session.
    system: SystemFacts,
    /// GPU slots by NVML index, kept across sessions.
    gpus: Vec<Gpu>,
    /// When the device list is next read again.
    next_rescan: Instant,
    /// A pending re-initialisation, while NVML or a GPU is unavailable.
    retry: Option<Backoff>,
    /// A loss was logged (as a warning) and not yet its recovery.
    loss_logged: bool,
}

impl NvidiaCollector {
    fn new(library: Option<PathBuf>, nvml: Option<Session>) -> Self {
        let system = nvml
            .as_ref()
            .map(|session| SystemFacts::read(session.nvml()))
            .unwrap_or_default();
        Self {
            library,
            nvml,
            system,
            gpus: Vec::new(),
            next_rescan: Instant::now(),
            retry: None,
            loss_logged: false,
        }
    }

    /// Reads the device list: new GPUs get handles and facts; known ones refresh their MIG
    /// layout. GPUs NVML no longer lists are marked lost.
    fn rescan(&mut self, now: Instant) {
        self.next_rescan = now + RESCAN_INTERVAL;
        let Some(nvml) = &self.nvml else {
            return;
        };
        let count = match nvml.nvml().device_count() {
            Ok(count) => count,
            Err(error) => {
                if query::classify(&error) == query::Failure::Fatal {
                    let why = format!("NVML: nvmlDeviceGetCount_v2: {error}");
                    self.gpus.iter_mut().for_each(|gpu| gpu.lose(why.clone()));
                }
                return;
            }
        };
        for index in self.gpus.len() as u32..count {
            self.gpus.push(Gpu::new(index));
        }
        for gpu in &mut self.gpus {
            if gpu.index >= count {
                if gpu.lost.is_none() {
                    gpu.lose("no longer listed by NVML".to_string());
                }
                continue;
            }
            if let Err(error) = gpu.scan(nvml, &self.system) {
                gpu.lose(error.to_string());
            }
        }
    }

    /// Ends the NVML session and starts a new one, then rescans.
    fn reinitialise(&mut self, now: Instant) {
        // Handles die with their session: forget them before it ends.
        self.gpus.iter_mut().for_each(Gpu::forget_handles);
        if let Some(nvml) = self.nvml.take() {
            if let Err(error) = nvml.shutdown() {
                tracing::debug!(%error, "nvmlShutdown failed");
            }
        }
        match init(self.library.as_deref()) {
            Ok(nvml) => {
                self.system = SystemFacts::read(nvml.nvml());
                self.nvml = Some(nvml);
                self.rescan(now);
            }
            Err(error) => {
                tracing::debug!(%error, "NVML re-initialisation failed");
                let why = error.to_string();
                for gpu in &mut self.gpus {
                    gpu.lose(why.clone());
                }
            }
        }
    }

    /// Whether NVML is up and every known GPU answers.
    fn healthy(&self) -> bool {
        self.nvml.is_some() && self.gpus.iter().all(|g| g.lost.is_none())
    }

    /// After a sample: schedule a re-initialisation on a new failure, log a loss once and a
    /// recovery once.
    fn settle(&mut self, now: Instant) {
        if self.healthy() {
            if self.retry.take().is_some() && self.loss_logged {
                tracing::info!(
                    gpus = self.gpus.len(),
                    "NVIDIA GPUs readable again after NVML re-initialisation"
                );
            }
            self.loss_logged = false;
            return;
        }
        if self.retry.is_none() {
            self.retry = Some(Backoff::after_failure(FIRST_RETRY, MAX_RETRY, now));
        }
        if !self.loss_logged && !self.gpus.is_empty() {
            let lost: Vec<String> = self
                .gpus
                .iter()
                .filter_map(|g| g.lost.as_deref())
                .map(str::to_string)
                .collect();
            tracing::warn!(
                lost = %lost.join("; "),
                "NVIDIA GPU unavailable; re-initialising NVML with backoff"
            );
            self.loss_logged = true;
        }
    }
}

impl Collector for NvidiaCollector {
    fn name(&self) -> &'static str {
        "nvidia"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let now = Instant::now();
        if let Some(retry) = &mut self.retry {
            if retry.is_due(now) {
                // Scheduled as if it fails; a success clears the schedule in `settle`.
                retry.failed(now);
                self.reinitialise(now);
            }
        }
        if now >= self.next_rescan {
            self.rescan(now);
        }
        for gpu in &mut self.gpus {
            let reading = match (&self.nvml, &gpu.lost) {
                (_, Some(why)) => gpu.unavailable(why),
                (None, None) => gpu.unavailable("NVML is not initialised"),
                (Some(nvml), None) => match gpu.sample(nvml) {
                    Ok(reading) => reading,
                    Err(error) => {
                        let why = error.to_string();
                        gpu.lose(why.clone());
                        gpu.unavailable(&why)
                    }
                },
            };
            snapshot.accelerators.push(reading);
        }
        self.settle(now);
        let lost = self.gpus.iter().filter(|g| g.lost.is_some()).count();
        match self.retry {
            Some(retry) if lost > 0 => Err(CollectError::Partial(format!(
                "{lost} NVIDIA GPU(s) unavailable; next NVML re-initialisation in {} s",
                retry.remaining(now).as_secs()
            ))),
            _ => Ok(()),
        }
    }
}
