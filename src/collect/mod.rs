//! Sampling: the collectors (one per domain, per platform), the [`Sampler`] that runs them every
//! interval into an immutable [`Snapshot`], and the thread that publishes the latest one.
//!
//! The Linux backend reads /proc and /sys through [`HostPaths`]; the portable backend (macOS,
//! Windows) reads through sysinfo. Both produce the same model.

pub mod accel;
mod host_paths;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod portable;
pub mod process;
pub mod rates;

pub use crate::config::HostPaths;
pub use host_paths::{numbered_dirs, open_and_read, read_into, read_number, read_optional};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Backend, CollectConfig};
use crate::model::{unix_ms, CollectorStatus, Snapshot, SystemInfo};

/// Why a collector could not produce (all of) its section.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file did not have the expected format.
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The section was produced but something in it was skipped (e.g. a mount timed out); the
    /// collector still counts as successful.
    #[error("{0}")]
    Partial(String),
    /// Anything else, e.g. a library call that failed.
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    /// A parse error for `path`.
    pub fn parse(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Parse {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// One domain's reader. Long-lived: it keeps open handles and rarely-changing facts (topology,
/// device lists) between samples, and writes its section into the snapshot being built.
pub trait Collector: Send {
    /// Short name: the `collector` label on `/metrics` and the key of its status.
    fn name(&self) -> &'static str;

    /// Reads the host and fills this collector's part of `snapshot`. Raw values only; rates and
    /// aggregates are derived by the sampler afterwards.
    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError>;
}

/// The collectors of the configured backend, then the accelerator collectors.
pub fn collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let mut list = host_collectors(config);
    list.extend(accel::collectors(config));
    list
}

fn host_collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    match config.backend {
        #[cfg(target_os = "linux")]
        Backend::Linux => linux::collectors(config),
        #[cfg(not(target_os = "linux"))]
        Backend::Linux => {
            tracing::warn!("the linux backend exists only on Linux; using the portable one");
            portable::collectors(config)
        }
        Backend::Portable => portable::collectors(config),
    }
}

/// Static facts about the host, from the configured backend.
pub fn system_info(config: &CollectConfig) -> SystemInfo {
    match config.backend {
        #[cfg(target_os = "linux")]
        Backend::Linux => linux::system_info(&config.paths),
        _ => portable::system_info(),
    }
}

/// Runs the collectors and builds snapshots, keeping the previous one to derive rates.
pub struct Sampler {
    /// The collectors, run in order each sample.
    collectors: Vec<Box<dyn Collector>>,
    /// Node id stamped on every snapshot.
    node_id: String,
    /// Static facts shared by every snapshot.
    info: Arc<SystemInfo>,
    /// The last snapshot and when it was taken (monotonic), for rates.
    previous: Option<(Arc<Snapshot>, Instant)>,
    /// Number of the next snapshot.
    sequence: u64,
}

impl Sampler {
    /// A sampler over the given collectors.
    pub fn new(node_id: String, info: SystemInfo, collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            collectors,
            node_id,
            info: Arc::new(info),
            previous: None,
            sequence: 1,
        }
    }

    /// A sampler for `config`'s backend.
    pub fn from_config(node_id: String, config: &CollectConfig) -> Self {
        Self::new(node_id, system_info(config), collectors(config))
    }

    /// Static facts every snapshot carries.
    pub fn info(&self) -> &Arc<SystemInfo> {
        &self.info
    }

    /// Takes one sample. Never fails: a collector's error is recorded in the snapshot's status and
    /// its section stays `None`.
    pub fn sample(&mut self) -> Arc<Snapshot> {
        let started = Instant::now();
        let mut snapshot = Snapshot {
            node_id: self.node_id.clone(),
            hostname: self.info.hostname.clone(),
            timestamp_ms: unix_ms(SystemTime::now()),
            sequence: self.sequence,
            info: Arc::clone(&self.info),
            ..Snapshot::default()
        };
        for collector in &mut self.collectors {
            let began = Instant::now();
            let result = collector.collect(&mut snapshot);
            let status = CollectorStatus {
                name: collector.name().to_string(),
                ok: matches!(result, Ok(()) | Err(CollectError::Partial(_))),
                error: result.err().map(|e| e.to_string()),
                duration_seconds: began.elapsed().as_secs_f64(),
            };
            if let Some(error) = &status.error {
                tracing::debug!(collector = status.name, %error, "collector reported a problem");
            }
            snapshot.collectors.push(status);
        }
        let previous = self.previous.as_ref();
        let elapsed = previous.map_or(0.0, |(_, at)| started.duration_since(*at).as_secs_f64());
        snapshot.interval_seconds = elapsed;
        rates::derive(&mut snapshot, previous.map(|(s, _)| s.as_ref()), elapsed);
        let snapshot = Arc::new(snapshot);
        self.previous = Some((Arc::clone(&snapshot), started));
        self.sequence += 1;
        snapshot
    }
}

/// Why sampling could not start.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("the first sample failed: {0}")]
    FirstSample(#[source] tokio::task::JoinError),
    #[error("cannot start the sampler thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Takes the first sample (before anything is served, so no request ever sees an empty
/// snapshot), then samples every interval on a dedicated thread, stopped and joined by a task in
/// `tasks` once `shutdown` is cancelled. Returns the first snapshot and the latest-snapshot
/// receiver. The agent and the coordinator (`--sample-self`) both start theirs here.
pub async fn start_sampling(
    node_id: String,
    collect: Arc<CollectConfig>,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(Arc<Snapshot>, watch::Receiver<Arc<Snapshot>>), SamplerError> {
    let interval = collect.interval;
    let (sampler, first) = tokio::task::spawn_blocking(move || {
        let mut sampler = Sampler::from_config(node_id, &collect);
        let first = sampler.sample();
        (sampler, first)
    })
    .await
    .map_err(SamplerError::FirstSample)?;
    let (publish, snapshots) = watch::channel(Arc::clone(&first));
    // The sampler thread stops when `stop_sampler` is dropped, which the task below does on
    // shutdown; the thread is joined before the tasks are.
    let (stop_sampler, sampler_stopped) = std::sync::mpsc::channel::<()>();
    let sampler =
        spawn_sampler(sampler, interval, publish, sampler_stopped).map_err(SamplerError::Thread)?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        stop.cancelled().await;
        drop(stop_sampler);
        let _ = tokio::task::spawn_blocking(move || sampler.join()).await;
    });
    Ok((first, snapshots))
}

/// Samples every `interval` on a dedicated thread and publishes each snapshot on `publish`, until
/// `stop` is dropped or sent to. Sampling is blocking file I/O, so it stays off the async runtime;
/// one thread that sleeps between ticks costs one wake-up per sample (a task handing each sample
/// to the blocking pool cost three thread hops). Ticks are fixed-rate: a slow sample delays the
/// next one, and after a stall (suspend, a very slow sample) missed ticks are skipped.
pub fn spawn_sampler(
    mut sampler: Sampler,
    interval: Duration,
    publish: watch::Sender<Arc<Snapshot>>,
    stop: std::sync::mpsc::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::sync::mpsc::RecvTimeoutError;
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || {
            let mut next = Instant::now() + interval;
            while let Err(RecvTimeoutError::Timeout) =
                stop.recv_timeout(next.saturating_duration_since(Instant::now()))
            {
                publish.send_replace(sampler.sample());
                next += interval;
                let now = Instant::now();
                if next < now {
                    next = now + interval;
                }
            }
        })
}

/// The host's name, from the configured backend (the default node id).
pub fn hostname(config: &CollectConfig) -> String {
    let name: Option<String> = match config.backend {
        #[cfg(target_os = "linux")]
        Backend::Linux => read_optional(config.paths.proc("sys/kernel/hostname")),
        _ => None,
    };
    name.filter(|n| !n.is_empty())
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| "localhost".to_string())
}
