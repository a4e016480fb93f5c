//! Exec plugins (`--plugin.exec NAME=COMMAND`): each COMMAND runs through the system shell every
//! `--plugin.interval`, on the async runtime and never on the sampling thread; its standard
//! output is Prometheus text ([`exposition::parse`]). The [`PluginCollector`] only copies the
//! latest outcome of each plugin into the sample, so a plugin that hangs delays nothing.
//!
//! A run fails when the command cannot start, exits non-zero, outlives `--plugin.timeout`,
//! writes more than [`MAX_OUTPUT`] bytes or writes what is not valid exposition text (or has
//! client-side timestamps or a `node` label, as the textfile collector refuses). A run that
//! times out or writes too much is killed with its whole process group (the command runs as the
//! leader of a new group), so that a `sh -c 'a | b'` leaves no grandchild behind; the group is
//! also killed after every run, whatever its outcome, so that nothing a plugin started outlives
//! its run. Each plugin is reported as `system_monitor_plugin_success{plugin}` and
//! `system_monitor_plugin_duration_seconds{plugin}` on `/metrics` and as the `plugin:<NAME>`
//! collector status.
//!
//! Staleness: a plugin's series stay in the samples while its last successful run is at most
//! [`STALE_AFTER_RUNS`] intervals old, then they are dropped (a failing plugin's last good
//! values do not linger as if current). A family whose name is one the monitor writes itself is
//! refused (its other families are kept), as is one another plugin or a textfile already gave.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{textfile, CollectError, Collector};
use crate::config::{PluginConfig, PluginSpec};
use crate::model::exposition::{self, ForeignFamily, MetricFamily, ParseError};
use crate::model::{CollectorStatus, KernelFamily, KernelMetricKind, Snapshot};

/// The most a plugin may write on its standard output in one run: beyond it reading stops and
/// the plugin is killed (a runaway loop must not grow the monitor).
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How much of a plugin's standard error is kept for the error message of a failed run.
const STDERR_KEPT: usize = 2048;

/// A plugin's series are dropped once its last success is this many intervals old.
pub const STALE_AFTER_RUNS: u32 = 3;

/// The prefix of a plugin's collector status name: `plugin:<NAME>`.
pub const STATUS_PREFIX: &str = "plugin:";

/// Why one run of a plugin produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot start it: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("reading its output failed: {0}")]
    Read(#[source] std::io::Error),
    #[error("it exited with {status}{}", stderr_note(.stderr))]
    Exit {
        /// The exit status, as the system words it.
        status: std::process::ExitStatus,
        /// The end of what it wrote on standard error.
        stderr: String,
    },
    #[error("it ran longer than {} and was killed with its process group",
            humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("it wrote more than {MAX_OUTPUT} bytes and was killed with its process group")]
    TooLarge,
    #[error("its output is not UTF-8")]
    NotUtf8,
    #[error("its output is not Prometheus text: {0}")]
    Parse(#[source] ParseError),
    #[error("its output was refused: {0}")]
    Refused(String),
}

fn stderr_note(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!(": {text}"),
    }
}

/// The latest outcome of one plugin, as its runner leaves it for the collector.
#[derive(Debug, Default)]
struct Slot {
    /// The last finished run: whether it succeeded, its error (or what was refused of a good
    /// run), how long it took. `None` before the first run ends.
    last: Option<RunReport>,
    /// The families of the last successful run.
    families: Vec<Arc<ForeignFamily>>,
    /// When the last successful run ended: the staleness rule.
    last_success: Option<Instant>,
}

/// One finished run.
#[derive(Debug, Clone)]
struct RunReport {
    /// Whether its output was taken.
    ok: bool,
    /// Why it failed, or (when `ok`) what of its output was refused.
    error: Option<String>,
    /// Wall time, start to end (kill included).
    duration: Duration,
}

/// What the runners write and the collector reads.
#[derive(Debug)]
struct Board {
    /// The plugins, in the order given.
    specs: Vec<PluginSpec>,
    /// One slot per plugin, same order.
    slots: Vec<Mutex<Slot>>,
    /// The family names the monitor writes itself (set once, before the first run).
    reserved: OnceLock<HashSet<String>>,
    /// The staleness limit ([`STALE_AFTER_RUNS`] intervals).
    stale_after: Duration,
}

/// Why the plugins cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PluginSetupError {
    #[error("--plugin.exec: the plugin name {0:?} is given twice")]
    Duplicate(String),
}

/// The configured plugins: a collector for the sampler, and runners started once the names the
/// monitor writes itself are known ([`Plugins::start`]).
#[derive(Debug, Clone)]
pub struct Plugins {
    /// Shared with the collector and the runners.
    board: Arc<Board>,
    /// Interval and timeout.
    config: PluginConfig,
}

impl Plugins {
    /// The plugins of `config`; `None` when there are none. Refuses a name given twice (their
    /// series and statuses could not be told apart).
    pub fn new(config: &PluginConfig) -> Result<Option<Self>, PluginSetupError> {
        if config.exec.is_empty() {
            return Ok(None);
        }
        let mut names = HashSet::new();
        if let Some(twice) = config.exec.iter().find(|s| !names.insert(s.name.as_str())) {
            return Err(PluginSetupError::Duplicate(twice.name.clone()));
        }
        let board = Board {
            specs: config.exec.clone(),
            slots: config.exec.iter().map(|_| Mutex::default()).collect(),
            reserved: OnceLock::new(),
            stale_after: config.interval * STALE_AFTER_RUNS,
        };
        Ok(Some(Self {
            board: Arc::new(board),
            config: config.clone(),
        }))
    }

    /// The collector that copies the plugins' latest outcomes into each sample.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(PluginCollector {
            board: Arc::clone(&self.board),
        })
    }

    /// Starts one runner per plugin in `tasks`, until `shutdown`. `reserved` are the family
    /// names the monitor writes itself, which no plugin may use.
    pub fn start(
        &self,
        reserved: HashSet<String>,
        shutdown: &CancellationToken,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        let _ = self.board.reserved.set(reserved);
        for index in 0..self.board.specs.len() {
            tasks.spawn(run_plugin(
                Arc::clone(&self.board),
                index,
                self.config.clone(),
                shutdown.clone(),
            ));
        }
    }
}

/// Runs plugin `index` every interval until `shutdown` (which kills a run in progress).
async fn run_plugin(
    board: Arc<Board>,
    index: usize,
    config: PluginConfig,
    shutdown: CancellationToken,
) {
    let spec = &board.specs[index];
    let mut ticker = tokio::time::interval(config.interval);
    // A run longer than the interval (up to the timeout) delays the next one; runs never overlap.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let empty = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let outcome = tokio::select! {
            // Dropping the run kills its process group (see `GroupKiller`).
            () = shutdown.cancelled() => return,
            outcome = run_once(spec, config.timeout) => outcome,
        };
        let reserved = board.reserved.get().unwrap_or(&empty);
        let outcome = outcome.and_then(|text| families_of(spec, &text, reserved));
        let duration = started.elapsed();
        let mut slot = board.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let was_ok = slot.last.as_ref().is_none_or(|r| r.ok);
        match outcome {
            Ok((families, refused)) => {
                if !was_ok {
                    tracing::info!("plugin {} works again", spec.name);
                }
                slot.families = families;
                slot.last_success = Some(Instant::now());
                slot.last = Some(RunReport {
                    ok: true,
                    error: refused,
                    duration,
                });
            }
            Err(e) => {
                if was_ok {
                    tracing::warn!("plugin {} failed: {e}", spec.name);
                } else {
                    tracing::debug!("plugin {} still failing: {e}", spec.name);
                }
                slot.last = Some(RunReport {
                    ok: false,
                    error: Some(e.to_string()),
                    duration,
                });
            }
        }
    }
}

/// The families of one plugin's output, with what was refused of it (families the monitor
/// writes itself), or why the output is refused as a whole.
fn families_of(
    spec: &PluginSpec,
    text: &str,
    reserved: &HashSet<String>,
) -> Result<(Vec<Arc<ForeignFamily>>, Option<String>), PluginError> {
    let families = exposition::parse(text).map_err(PluginError::Parse)?;
    let families = textfile::check(families).map_err(PluginError::Refused)?;
    let source = format!("plugin {}", spec.name);
    let (kept, shadowing): (Vec<MetricFamily>, Vec<MetricFamily>) =
        families.into_iter().partition(|family| {
            !reserved.contains(&family.name)
                && !family.samples.iter().any(|s| reserved.contains(&s.name))
        });
    let refused = (!shadowing.is_empty()).then(|| {
        let names: Vec<&str> = shadowing.iter().map(|f| f.name.as_str()).collect();
        format!(
            "left out {}: the monitor writes families of these names itself",
            names.join(", ")
        )
    });
    let families = kept
        .into_iter()
        .map(|mut family| {
            if family.help.is_none() {
                family.help = Some(format!("Metric read from {source}"));
            }
            textfile::complete_labels(&mut family);
            Arc::new(ForeignFamily {
                family,
                source: source.clone(),
            })
        })
        .collect();
    Ok((families, refused))
}

/// The shell command line of `command`: `sh -c` on Unix, `cmd /C` on Windows.
fn shell(command: &str) -> tokio::process::Command {
    #[cfg(windows)]
    {
        let mut shell = tokio::process::Command::new("cmd");
        // As typed: Rust's own quoting of an argument is not what cmd expects.
        shell.raw_arg("/C").raw_arg(command);
        shell
    }
    #[cfg(not(windows))]
    {
        let mut shell = tokio::process::Command::new("sh");
        shell.arg("-c").arg(command);
        shell
    }
}

/// Kills a run's whole process group when dropped (Unix; elsewhere the child alone, by
/// `kill_on_drop`): at the end of every run, and when a run is abandoned at shutdown. Holds
/// the child's pid, the group's id (unread where there are no process groups).
struct GroupKiller(#[cfg_attr(not(unix), allow(dead_code))] Option<u32>);

impl GroupKiller {
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|id| i32::try_from(id).ok()) {
            if let Some(group) = rustix::process::Pid::from_raw(pid) {
                // ESRCH (the group is gone already) is the usual, harmless outcome.
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `from` to its end into `into`, up to `limit` bytes; `Ok(false)` when there was more.
async fn read_limited(
    from: Option<impl AsyncRead + Unpin>,
    into: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<bool> {
    let Some(from) = from else {
        return Ok(true);
    };
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let mut limited = from.take(limit + 1);
    limited.read_to_end(into).await?;
    Ok(into.len() as u64 <= limit)
}

/// Runs `spec` once: its standard output, or why there is none.
async fn run_once(spec: &PluginSpec, timeout: Duration) -> Result<String, PluginError> {
    let mut command = shell(&spec.command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The leader of a group of its own, so that the group can be killed as one.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn().map_err(PluginError::Spawn)?;
    let group = GroupKiller(child.id());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let work = async {
        let read_out = async {
            match read_limited(stdout, &mut out, MAX_OUTPUT).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(PluginError::TooLarge),
                Err(e) => Err(PluginError::Read(e)),
            }
        };
        let read_err = async {
            // The end of a long stderr is dropped, not an error.
            read_limited(stderr, &mut err, STDERR_KEPT)
                .await
                .map(|_| ())
                .map_err(PluginError::Read)
        };
        // Stops at the first error: more than MAX_OUTPUT ends the run at once.
        tokio::try_join!(read_out, read_err)?;
        child.wait().await.map_err(PluginError::Read)
    };
    let status = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            // Killed before the child is reaped, so its group id cannot have been reused.
            group.kill();
            return Err(e);
        }
        Err(_) => {
            group.kill();
            return Err(PluginError::Timeout(timeout));
        }
    };
    if !status.success() {
        let mut stderr = String::from_utf8_lossy(&err).into_owned();
        stderr.truncate(stderr.trim_end().len());
        return Err(PluginError::Exit { status, stderr });
    }
    String::from_utf8(out).map_err(|_| PluginError::NotUtf8)
}

/// Copies each plugin's latest outcome into the sample: its fresh families, its success and
/// duration gauges, and its `plugin:<NAME>` status.
pub struct PluginCollector {
    /// Written by the runners.
    board: Arc<Board>,
}

impl Collector for PluginCollector {
    fn name(&self) -> &'static str {
        "plugins"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut success = KernelFamily::new(
            "system_monitor_plugin_success",
            "Whether the last run of the exec plugin succeeded (1) or not (0).",
            KernelMetricKind::Gauge,
        );
        let mut duration = KernelFamily::new(
            "system_monitor_plugin_duration_seconds",
            "Wall time of the last run of the exec plugin.",
            KernelMetricKind::Gauge,
        );
        // Names given by the textfiles and earlier plugins: a second family of a name would
        // make /metrics invalid.
        let mut taken: HashSet<String> = snapshot
            .foreign_families
            .iter()
            .map(|f| f.family.name.clone())
            .collect();
        let now = Instant::now();
        for (spec, slot) in self.board.specs.iter().zip(&self.board.slots) {
            let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let mut status = CollectorStatus {
                name: format!("{STATUS_PREFIX}{}", spec.name),
                ok: true,
                error: Some("waiting for its first run".into()),
                duration_seconds: 0.0,
                no_data: false,
            };
            if let Some(last) = &slot.last {
                let labels = [("plugin", spec.name.as_str())];
                success.push(&labels, if last.ok { 1.0 } else { 0.0 });
                duration.push(&labels, last.duration.as_secs_f64());
                status.ok = last.ok;
                status.error.clone_from(&last.error);
                status.duration_seconds = last.duration.as_secs_f64();
            }
            let fresh = slot
                .last_success
                .is_some_and(|at| now.saturating_duration_since(at) <= self.board.stale_after);
            if fresh {
                let mut clashes = Vec::new();
                for family in &slot.families {
                    if taken.insert(family.family.name.clone()) {
                        snapshot.foreign_families.push(Arc::clone(family));
                    } else {
                        clashes.push(family.family.name.as_str());
                    }
                }
                if !clashes.is_empty() {
                    let note = format!(
                        "left out {}: a textfile or another plugin gives families of these names",
                        clashes.join(", ")
                    );
                    status.error = Some(match status.error.take() {
                        Some(error) => format!("{error}; {note}"),
                        None => note,
                    });
                }
            } else if slot.last_success.is_some() && status.ok {
                status.error = Some("its series are stale".into());
            }
            snapshot.collectors.push(status);
        }
        if !success.samples.is_empty() {
            snapshot.kernel_families.push(success);
            snapshot.kernel_families.push(duration);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
