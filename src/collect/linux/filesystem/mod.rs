//! Mounted filesystems: the mount table from /proc/1/mounts and statvfs of each mount point,
//! run on worker threads with a per-mount timeout so a hung network mount never stalls a sample.

mod mounts;
mod pool;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex_lite::Regex;

use crate::collect::{open_and_read, read_into, CollectError, Collector, HostPaths};
use crate::config::CollectConfig;
use crate::model::{percent, FilesystemState, FilesystemStats, FilesystemsStats, Snapshot};

use mounts::MountEntry;
use pool::{Job, Pool};

/// Filesystem types served over the network: they count in the disk totals (when they answer)
/// although their source is not a block device.
const NETWORK_FILESYSTEMS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "fuse.ceph",
    "glusterfs",
    "fuse.glusterfs",
    "lustre",
    "gpfs",
    "beegfs",
    "fuse.sshfs",
    "afs",
];

/// Longest a sample waits for statvfs answers; mounts slower than this report their previous
/// figures until they answer.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// When a sample's calls have not all answered after this long, the ones still queued behind a
/// slow call move to other threads.
const RESCUE_AFTER: Duration = Duration::from_millis(5);

/// Worker threads that may be busy with (or waiting for) fast calls at once.
const HEALTHY_WORKERS: usize = 4;

/// An idle worker beyond the first exits after this long without work.
const WORKER_IDLE_EXIT: Duration = Duration::from_secs(60);

/// Sizes and inode counts of one filesystem, as statvfs reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    /// ST_RDONLY: the filesystem is read-only whatever the mount options say.
    pub readonly: bool,
}

impl Usage {
    /// Bytes from blocks: f_blocks, f_bfree and f_bavail count in units of f_frsize (f_bsize
    /// where a filesystem leaves f_frsize 0).
    pub fn from_statvfs(s: &rustix::fs::StatVfs) -> Self {
        let unit = if s.f_frsize > 0 {
            s.f_frsize
        } else {
            s.f_bsize
        };
        Self {
            size_bytes: s.f_blocks.saturating_mul(unit),
            free_bytes: s.f_bfree.saturating_mul(unit),
            avail_bytes: s.f_bavail.saturating_mul(unit),
            files: s.f_files,
            files_free: s.f_ffree,
            readonly: s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        }
    }
}

/// The call that measures a mount point; injectable so tests can simulate hung mounts.
pub type StatvfsFn = dyn Fn(&Path) -> std::io::Result<Usage> + Send + Sync;

/// statvfs(2) through rustix.
pub fn statvfs(path: &Path) -> std::io::Result<Usage> {
    Ok(Usage::from_statvfs(&rustix::fs::statvfs(path)?))
}

/// One mount kept after the excludes, owned so it outlives the mount table's text.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    device: String,
    mountpoint: String,
    fstype: String,
    /// `ro` among the mount options.
    ro_option: bool,
    /// The mount point under the rootfs prefix: what statvfs is called on.
    target: Arc<Path>,
}

/// A statvfs result coming back from a worker.
struct Answer {
    /// Which mount point it is for.
    mountpoint: String,
    outcome: Result<Usage, String>,
}

/// What the collector remembers about a mount point between samples.
#[derive(Debug, Default)]
struct MountState {
    /// When the statvfs call now running was submitted; None when no call is running.
    in_flight_since: Option<Instant>,
    /// Sample in which that call was submitted (answers for this sample's calls end the wait).
    submitted_in: u64,
    /// Last sample whose mount table listed this mount point (older entries are dropped).
    listed_in: u64,
    /// The last answer, reported while a newer call is still running.
    last: Option<Result<Usage, String>>,
    /// The time-out has been logged (once per episode).
    timeout_logged: bool,
}

/// Reads the mount table and measures each mount off the sampling path.
pub struct FilesystemCollector {
    /// Where /proc and the host's / are.
    paths: HostPaths,
    /// Mount points left out.
    mount_points_exclude: Regex,
    /// Filesystem types left out.
    fs_types_exclude: Regex,
    /// How long a statvfs call may run before its mount is reported as timed out.
    timeout: Duration,
    /// How long a sample waits for the calls it submitted.
    wait: Duration,
    /// The call that measures a mount point.
    statvfs: Arc<StatvfsFn>,
    /// Threads the calls run on.
    pool: Pool,
    /// Where workers send answers (each job gets a clone).
    answers_tx: Sender<Answer>,
    /// Answers, read during the sample's wait and drained at the start of the next.
    answers: Receiver<Answer>,
    /// Per mount point: running call, last answer.
    mounts: HashMap<String, MountState>,
    /// Number of the current sample.
    sample: u64,
    /// The mount table's text, kept to reuse its allocation.
    text: String,
    /// The host's mount table, kept open with its parsed rows while procfs can tell us it has
    /// not changed (see [`WatchedTable`]).
    watched: Option<WatchedTable>,
}

/// An open procfs mount table and the rows read from it. The kernel flags a change of the mount
/// namespace with POLLPRI on the open file, so an unchanged table — almost every sample — costs
/// one poll instead of a read and a parse (the read is one of the costliest of a sample: the
/// kernel formats every mount, about 75 µs here).
struct WatchedTable {
    file: std::fs::File,
    rows: Arc<[Mount]>,
}

impl WatchedTable {
    /// Whether the table may have changed since it was opened.
    fn changed(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.file, PollFlags::PRI)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match poll(&mut fds, Some(&now)) {
            Ok(0) => false,
            Ok(_) => fds[0]
                .revents()
                .intersects(PollFlags::PRI | PollFlags::ERR | PollFlags::NVAL),
            Err(_) => true,
        }
    }
}

/// procfs's filesystem magic (`PROC_SUPER_MAGIC`): only its mount tables announce changes.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

impl FilesystemCollector {
    pub fn new(config: &CollectConfig) -> Self {
        Self::with_statvfs(config, Arc::new(statvfs))
    }

    /// A collector measuring mounts with `statvfs` instead of the system call.
    pub(crate) fn with_statvfs(config: &CollectConfig, statvfs: Arc<StatvfsFn>) -> Self {
        let wait = MAX_WAIT.min(config.fs_mount_timeout);
        let (answers_tx, answers) = mpsc::channel();
        Self {
            paths: config.paths.clone(),
            mount_points_exclude: config.fs_mount_points_exclude.clone(),
            fs_types_exclude: config.fs_types_exclude.clone(),
            timeout: config.fs_mount_timeout,
            wait,
            statvfs,
            // A call counts as slow a little before the rescue, so the rescue sees it as such.
            pool: Pool::new(HEALTHY_WORKERS, RESCUE_AFTER / 2, WORKER_IDLE_EXIT),
            answers_tx,
            answers,
            mounts: HashMap::new(),
            sample: 0,
            text: String::new(),
            watched: None,
        }
    }

    /// The mounts that pass the excludes, in table order, exact duplicates dropped. Reads
    /// /proc/1/mounts (the host's table even when the monitor runs in a container with the
    /// host's /proc), or /proc/self/mounts where there is no pid 1 to read (node_exporter does
    /// the same).
    fn mount_table(&mut self) -> Result<Arc<[Mount]>, CollectError> {
        if let Some(watched) = self.watched.as_ref().filter(|w| !w.changed()) {
            return Ok(Arc::clone(&watched.rows));
        }
        self.watched = None;
        let path = self.paths.proc("1/mounts");
        let (path, file) = match open_and_read(&path, &mut self.text) {
            Ok(file) => (path, Some(file)),
            Err(first) => {
                let fallback = self.paths.proc("self/mounts");
                read_into(&fallback, &mut self.text).map_err(|_| first)?;
                (fallback, None)
            }
        };
        let rows: Arc<[Mount]> = self.parse_table(&path)?.into();
        // Kept only for procfs's own table: a plain file (a fixture) or the fallback is read
        // each sample.
        let on_procfs = |f: &std::fs::File| {
            rustix::fs::fstatfs(f).is_ok_and(|s| s.f_type as u64 == PROC_SUPER_MAGIC)
        };
        if let Some(file) = file.filter(on_procfs) {
            self.watched = Some(WatchedTable {
                file,
                rows: Arc::clone(&rows),
            });
        }
        Ok(rows)
    }

    /// The rows of the table in `self.text` (read from `path`) that pass the excludes.
    fn parse_table(&self, path: &Path) -> Result<Vec<Mount>, CollectError> {
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        for (index, entry) in mounts::parse(&self.text).enumerate() {
            let entry: MountEntry<'_> =
                entry.map_err(|m| CollectError::parse(path, format!("row {}: {m}", index + 1)))?;
            if self.fs_types_exclude.is_match(entry.fstype)
                || self.mount_points_exclude.is_match(&entry.mountpoint)
            {
                continue;
            }
            let ro_option = entry.read_only();
            if !seen.insert((entry.device.clone(), entry.mountpoint.clone(), entry.fstype)) {
                continue;
            }
            kept.push(Mount {
                target: self.paths.root(entry.mountpoint.as_ref()).into(),
                device: entry.device.into_owned(),
                mountpoint: entry.mountpoint.into_owned(),
                fstype: entry.fstype.to_string(),
                ro_option,
            });
        }
        Ok(kept)
    }

    /// Records a worker's answer; true when it is the first answer for a mount, to a call
    /// submitted in this sample (the only answers a sample waits for).
    fn apply(&mut self, answer: Answer) -> bool {
        let Some(state) = self.mounts.get_mut(&answer.mountpoint) else {
            return false;
        };
        if state.timeout_logged {
            tracing::info!(mountpoint = answer.mountpoint, "statvfs answered again");
            state.timeout_logged = false;
        }
        let first = state.last.is_none();
        state.in_flight_since = None;
        state.last = Some(answer.outcome);
        first && state.submitted_in == self.sample
    }

    /// Submits a statvfs call for every listed mount with none running, as one batch; returns
    /// how many of them are for mounts with no figures yet.
    fn submit(&mut self, mounts: &[Mount]) -> usize {
        let now = Instant::now();
        let mut jobs: Vec<Job> = Vec::new();
        let mut submitted = Vec::new();
        let mut new = 0;
        for mount in mounts {
            if !self.mounts.contains_key(&mount.mountpoint) {
                self.mounts
                    .insert(mount.mountpoint.clone(), MountState::default());
            }
            let Some(state) = self.mounts.get_mut(&mount.mountpoint) else {
                continue;
            };
            state.listed_in = self.sample;
            if state.in_flight_since.is_some() {
                continue;
            }
            state.in_flight_since = Some(now);
            state.submitted_in = self.sample;
            new += usize::from(state.last.is_none());
            submitted.push(&mount.mountpoint);
            let statvfs = Arc::clone(&self.statvfs);
            let answers = self.answers_tx.clone();
            let target = Arc::clone(&mount.target);
            let mountpoint = mount.mountpoint.clone();
            jobs.push(Box::new(move || {
                let outcome = match catch_unwind(AssertUnwindSafe(|| statvfs(&target))) {
                    Ok(Ok(usage)) => Ok(usage),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("statvfs panicked".to_string()),
                };
                // The collector may be gone by the time a hung call returns; nobody to tell.
                let _ = answers.send(Answer {
                    mountpoint,
                    outcome,
                });
            }));
        }
        if let Err(e) = self.pool.submit(jobs) {
            for mountpoint in &submitted {
                if let Some(state) = self.mounts.get_mut(*mountpoint) {
                    state.in_flight_since = None;
                    state.last = Some(Err(format!("cannot start a statvfs thread: {e}")));
                }
            }
            return 0;
        }
        new
    }

    /// Waits up to the budget for `pending` first answers to this sample's calls. Calls run one after
    /// another on one thread; when they are slow (a network mount), the ones still queued are
    /// moved to other threads so one slow mount does not delay the rest.
    fn wait_for(&mut self, mut pending: usize) {
        let began = Instant::now();
        let deadline = began + self.wait;
        let mut rescue_at = Some(began + RESCUE_AFTER.min(self.wait / 2));
        while pending > 0 {
            let now = Instant::now();
            if rescue_at.is_some_and(|at| now >= at) {
                self.pool.rescue();
                rescue_at = None;
            }
            let until = rescue_at.map_or(deadline, |at| at.min(deadline));
            match self
                .answers
                .recv_timeout(until.saturating_duration_since(now))
            {
                Ok(answer) => {
                    if self.apply(answer) {
                        pending -= 1;
                    }
                }
                Err(RecvTimeoutError::Timeout) if now < deadline && rescue_at.is_some() => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// The model entry for `mount` as of `now`, or None when it has no figures yet.
    fn report(&mut self, mount: &Mount, now: Instant) -> Option<FilesystemStats> {
        let state = self.mounts.get_mut(&mount.mountpoint)?;
        let hung = state
            .in_flight_since
            .is_some_and(|since| now.duration_since(since) >= self.timeout);
        let (state, usage) = if hung {
            if !state.timeout_logged {
                tracing::warn!(
                    "statvfs on {} did not answer within {}; skipping the mount until it does",
                    mount.mountpoint,
                    humantime::format_duration(self.timeout)
                );
                state.timeout_logged = true;
            }
            (FilesystemState::TimedOut, Usage::default())
        } else {
            match state.last.as_ref()? {
                Ok(usage) => (FilesystemState::Ok, *usage),
                Err(message) => (FilesystemState::Error(message.clone()), Usage::default()),
            }
        };
        Some(FilesystemStats {
            device: mount.device.clone(),
            mountpoint: mount.mountpoint.clone(),
            fstype: mount.fstype.clone(),
            readonly: mount.ro_option || usage.readonly,
            state,
            size_bytes: usage.size_bytes,
            free_bytes: usage.free_bytes,
            avail_bytes: usage.avail_bytes,
            files: usage.files,
            files_free: usage.files_free,
            usage_percent: percent(
                usage.size_bytes.saturating_sub(usage.free_bytes) as f64,
                usage.size_bytes as f64,
            ),
            counted_in_total: false,
        })
    }
}

/// Marks the mounts that count in the disk totals: a block device or network filesystem that
/// answered, each device once (bind mounts and repeated mounts of one device count once).
fn mark_counted(mounts: &mut [FilesystemStats]) {
    let mut devices = HashSet::new();
    for m in mounts {
        let real = m.device.starts_with('/') || NETWORK_FILESYSTEMS.contains(&m.fstype.as_str());
        m.counted_in_total =
            real && m.state == FilesystemState::Ok && devices.insert(m.device.clone());
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.sample += 1;
        let table = self.mount_table()?;
        // Calls that returned since the last sample (late or formerly hung) free their mounts.
        while let Ok(answer) = self.answers.try_recv() {
            self.apply(answer);
        }
        // Calls of the last sample still queued behind a slow one move to other threads.
        self.pool.rescue();
        // Sampling never waits on mounts it already has figures for: their calls run while the
        // next interval passes, and the next sample reports the answers (figures at most one
        // interval old). Only a mount seen for the first time is waited for, within the budget,
        // so the first snapshot is complete. The sample thread thus costs one wake-up of a
        // worker, not a round trip.
        let new = self.submit(&table);
        if new > 0 {
            self.wait_for(new);
        }

        let now = Instant::now();
        let mut mounts: Vec<FilesystemStats> =
            table.iter().filter_map(|m| self.report(m, now)).collect();
        mark_counted(&mut mounts);
        let sample = self.sample;
        self.mounts
            .retain(|_, s| s.listed_in == sample || s.in_flight_since.is_some());

        let timed_out: Vec<&str> = mounts
            .iter()
            .filter(|m| m.state == FilesystemState::TimedOut)
            .map(|m| m.mountpoint.as_str())
            .collect();
        let problem = (!timed_out.is_empty())
            .then(|| format!("statvfs timed out on {}", timed_out.join(", ")));
        snapshot.filesystems = Some(FilesystemsStats {
            mounts,
            ..FilesystemsStats::default()
        });
        match problem {
            Some(message) => Err(CollectError::Partial(message)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
