//! Sampling: the collectors (one per domain, per platform), the [`Sampler`] that runs them every
//! interval into an immutable [`Snapshot`], and the thread that publishes the latest one.
//!
//! The Linux backend reads /proc and /sys through [`HostPaths`]; the portable backend (macOS,
//! Windows) reads through sysinfo. Both produce the same model.

pub mod accel;
mod host_paths;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod own_process;
pub mod plugin;
pub mod pods;
pub mod portable;
pub mod process;
pub mod rates;
pub mod textfile;

pub use crate::config::HostPaths;
pub use host_paths::{
    numbered_dirs, open_and_read, read_into, read_number, read_optional, stream_lines,
};
#[cfg(unix)]
pub use host_paths::{KeptDir, KeptFile};

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
    /// The host has nothing for this collector to read (no conntrack module, no UDP tables):
    /// node_exporter's `ErrNoData`. Missing is normal, so nothing failed (the status is `ok`,
    /// health is not affected, nothing is logged above debug), but the status says `no_data`:
    /// node_exporter's scrape success for it is 0, and so is ours under its name.
    #[error("{0}")]
    NoData(String),
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

    /// Whether the collector logs its own failures and recoveries (with advice only it can
    /// give, as DCGM does), so that the sampler's own lines about it stay at debug.
    fn logs_own_failures(&self) -> bool {
        false
    }
}

/// The collectors of the configured backend, then the accelerator collectors, then pod
/// attribution (which annotates the accelerators found), then those of every backend: the
/// monitor's own process and the textfile directory.
pub fn collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let mut list = host_collectors(config);
    list.extend(accel::collectors(config));
    list.extend(pods::collector(config));
    list.push(Box::new(own_process::OwnProcessCollector::new()));
    list.push(Box::new(textfile::TextfileCollector::new(
        config.textfile_directory.clone(),
    )));
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
    /// Per collector (same order), the failure in progress: its first error and when it began.
    /// A failure is logged when it begins and when it ends, never each sample.
    failing: Vec<Option<Failure>>,
}

/// A collector failure in progress.
#[derive(Debug, Clone)]
struct Failure {
    /// The error of the latest sample (texts may change during one failure: a countdown).
    error: String,
    /// When it began.
    since: Instant,
}

impl Sampler {
    /// A sampler over the given collectors.
    pub fn new(node_id: String, info: SystemInfo, collectors: Vec<Box<dyn Collector>>) -> Self {
        Self {
            failing: vec![None; collectors.len()],
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
        for (collector, failing) in self.collectors.iter_mut().zip(&mut self.failing) {
            let began = Instant::now();
            let result = collector.collect(&mut snapshot);
            let status = CollectorStatus {
                name: collector.name().to_string(),
                ok: matches!(
                    result,
                    Ok(()) | Err(CollectError::Partial(_) | CollectError::NoData(_))
                ),
                no_data: matches!(result, Err(CollectError::NoData(_))),
                error: result.err().map(|e| e.to_string()),
                duration_seconds: began.elapsed().as_secs_f64(),
            };
            if let Some(error) = &status.error {
                tracing::debug!(collector = status.name, %error, "collector reported a problem");
            }
            log_change(&status, collector.logs_own_failures(), failing, began);
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

/// Logs a collector's failure when it begins (warn) and when it ends (info), given the failure in
/// progress before this sample (`failing`, updated here). A failing collector whose error text
/// changes (a retry countdown, a count of devices) is the same failure: debug only. A partial
/// result (`ok` with an error, e.g. one mount timed out) is not a failure. `quiet` collectors log
/// their own failures: the sampler's lines about them are debug.
fn log_change(status: &CollectorStatus, quiet: bool, failing: &mut Option<Failure>, now: Instant) {
    let name = &status.name;
    match (failing.as_mut(), status.ok) {
        (None, false) => {
            let error = status.error.as_deref().unwrap_or("no reason given");
            if quiet {
                tracing::debug!("collector {name} failed: {error}");
            } else {
                tracing::warn!("collector {name} failed: {error}");
            }
            *failing = Some(Failure {
                error: error.to_string(),
                since: now,
            });
        }
        (Some(failure), true) => {
            let lasted = humantime::format_duration(Duration::from_secs(
                now.saturating_duration_since(failure.since).as_secs(),
            ));
            if quiet {
                tracing::debug!("collector {name} recovered after {lasted}");
            } else {
                tracing::info!("collector {name} recovered after {lasted}");
            }
            *failing = None;
        }
        (Some(failure), false) => {
            if let Some(error) = status.error.as_deref().filter(|e| *e != failure.error) {
                tracing::debug!("collector {name} still failing: {error}");
                failure.error = error.to_string();
            }
        }
        (None, true) => {}
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
/// receiver. The agent and the coordinator (`--sample-self`) both start theirs here; `extra`
/// collectors (the agent's exec plugins) run after those of `collect`. With `history`, each
/// snapshot is also appended to it on the sampler thread, just after it is published (no other
/// thread is woken for it), and the history is closed once the thread has stopped.
pub async fn start_sampling(
    node_id: String,
    collect: Arc<CollectConfig>,
    extra: Vec<Box<dyn Collector>>,
    history: Option<Arc<crate::history::History>>,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(Arc<Snapshot>, watch::Receiver<Arc<Snapshot>>), SamplerError> {
    let interval = collect.interval;
    let (sampler, first) = tokio::task::spawn_blocking(move || {
        let mut list = collectors(&collect);
        list.extend(extra);
        let mut sampler = Sampler::new(node_id, system_info(&collect), list);
        let first = sampler.sample();
        (sampler, first)
    })
    .await
    .map_err(SamplerError::FirstSample)?;
    let (publish, snapshots) = watch::channel(Arc::clone(&first));
    if let Some(history) = &history {
        history.append(&crate::model::wire::NodeMetrics::of(&first));
    }
    // The sampler thread stops when `stop_sampler` is dropped, which the task below does on
    // shutdown; the thread is joined before the tasks are.
    let (stop_sampler, sampler_stopped) = std::sync::mpsc::channel::<()>();
    let kept = history.clone();
    let publish = move |snapshot: Arc<Snapshot>| {
        publish.send_replace(Arc::clone(&snapshot));
        if let Some(history) = &kept {
            history.append(&crate::model::wire::NodeMetrics::of(&snapshot));
        }
    };
    let sampler =
        spawn_sampler(sampler, interval, publish, sampler_stopped).map_err(SamplerError::Thread)?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        stop.cancelled().await;
        drop(stop_sampler);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = sampler.join();
            // Written out what `--history.path` lacks, once nothing appends any more.
            if let Some(history) = history {
                history.close();
            }
        })
        .await;
    });
    Ok((first, snapshots))
}

/// Samples every `interval` on a dedicated thread and hands each snapshot to `publish`, until
/// `stop` is dropped or sent to. Sampling is blocking file I/O, so it stays off the async runtime;
/// one thread that sleeps between ticks costs one wake-up per sample (a task handing each sample
/// to the blocking pool cost three thread hops). Ticks are fixed-rate: a slow sample delays the
/// next one, and after a stall (suspend, a very slow sample) missed ticks are skipped.
pub fn spawn_sampler(
    mut sampler: Sampler,
    interval: Duration,
    mut publish: impl FnMut(Arc<Snapshot>) + Send + 'static,
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
                publish(sampler.sample());
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

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    /// One sample's outcome in a [`Scripted`] collector.
    #[derive(Clone, Copy)]
    enum Outcome {
        Ok,
        Fail(&'static str),
        Partial(&'static str),
        NoData(&'static str),
    }

    /// A collector that answers from a script, one outcome per sample, then repeats the last.
    struct Scripted {
        name: &'static str,
        script: Vec<Outcome>,
        next: usize,
    }

    impl Scripted {
        fn new(name: &'static str, script: &[Outcome]) -> Scripted {
            Scripted {
                name,
                script: script.to_vec(),
                next: 0,
            }
        }
    }

    impl Collector for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }

        fn collect(&mut self, _: &mut Snapshot) -> Result<(), CollectError> {
            let outcome = self.script[self.next.min(self.script.len() - 1)];
            self.next += 1;
            match outcome {
                Outcome::Ok => Ok(()),
                Outcome::Fail(e) => Err(CollectError::Other(e.into())),
                Outcome::Partial(e) => Err(CollectError::Partial(e.into())),
                Outcome::NoData(e) => Err(CollectError::NoData(e.into())),
            }
        }
    }

    /// What the sampler logged, one line per event, without time or colour.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `samples` samples of `collectors` and returns the log lines at `level` and above.
    fn log_of(
        collectors: Vec<Box<dyn Collector>>,
        samples: usize,
        level: tracing::Level,
    ) -> Vec<String> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_max_level(level)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let mut sampler = Sampler::new("n".into(), SystemInfo::default(), collectors);
            for _ in 0..samples {
                sampler.sample();
            }
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }

    #[test]
    fn a_failure_is_logged_when_it_begins_and_when_it_ends() {
        use Outcome::{Fail, Ok};
        let memory = Scripted::new(
            "memory",
            &[
                Ok,
                Fail("reading /x/proc/meminfo: No such file or directory"),
                Fail("reading /x/proc/meminfo: No such file or directory"),
                // Another text, the same failure.
                Fail("reading /x/proc/meminfo: Permission denied"),
                Fail("reading /x/proc/meminfo: Permission denied"),
                Ok,
                Ok,
                Fail("reading /x/proc/meminfo: again"),
            ],
        );
        let healthy = Scripted::new("cpu", &[Ok]);
        let lines = log_of(
            vec![Box::new(memory), Box::new(healthy)],
            10,
            tracing::Level::INFO,
        );
        assert_eq!(
            lines,
            [
                "WARN collector memory failed: reading /x/proc/meminfo: No such file or directory",
                "INFO collector memory recovered after 0s",
                "WARN collector memory failed: reading /x/proc/meminfo: again",
            ],
        );
    }

    #[test]
    fn a_changing_error_text_is_debug_only_and_partial_results_are_not_failures() {
        let countdown = Scripted::new(
            "tpu",
            &[
                Outcome::Fail("next attempt in 3 s"),
                Outcome::Fail("next attempt in 2 s"),
            ],
        );
        let partial = Scripted::new(
            "filesystem",
            &[Outcome::Partial("statvfs timed out on /mnt/nfs")],
        );
        let lines = log_of(
            vec![Box::new(countdown), Box::new(partial)],
            4,
            tracing::Level::DEBUG,
        );
        let changes: Vec<&String> = lines
            .iter()
            .filter(|l| !l.contains("reported a problem"))
            .collect();
        assert_eq!(
            changes,
            [
                "WARN collector tpu failed: next attempt in 3 s",
                "DEBUG collector tpu still failing: next attempt in 2 s",
            ],
        );
    }

    #[test]
    fn no_data_is_not_a_failure_but_is_marked() {
        let conntrack = Scripted::new(
            "conntrack",
            &[
                Outcome::NoData("no conntrack"),
                Outcome::NoData("no conntrack"),
                Outcome::Ok,
            ],
        );
        assert_eq!(
            log_of(vec![Box::new(conntrack)], 3, tracing::Level::INFO),
            Vec::<String>::new()
        );
        let mut sampler = Sampler::new(
            "n".into(),
            SystemInfo::default(),
            vec![Box::new(Scripted::new(
                "conntrack",
                &[Outcome::NoData("no conntrack"), Outcome::Ok],
            ))],
        );
        let status = &sampler.sample().collectors[0];
        assert!(status.ok && status.no_data);
        assert_eq!(status.error.as_deref(), Some("no conntrack"));
        let status = &sampler.sample().collectors[0];
        assert!(status.ok && !status.no_data && status.error.is_none());
    }

    #[test]
    fn a_collector_that_logs_its_own_failures_leaves_the_sampler_quiet() {
        struct Own(Scripted);
        impl Collector for Own {
            fn name(&self) -> &'static str {
                self.0.name()
            }
            fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
                self.0.collect(snapshot)
            }
            fn logs_own_failures(&self) -> bool {
                true
            }
        }
        let dcgm = Own(Scripted::new(
            "dcgm",
            &[Outcome::Fail("DCGM unavailable"), Outcome::Ok],
        ));
        assert_eq!(
            log_of(vec![Box::new(dcgm)], 3, tracing::Level::INFO),
            Vec::<String>::new()
        );
    }
}
