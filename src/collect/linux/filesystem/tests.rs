//! Tests of the filesystem collector: fixture trees end to end, and hung mounts simulated with an
//! injected statvfs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

const GIB: u64 = 1 << 30;
/// Bound on every blocking wait in these tests, so a bug fails them instead of hanging them.
const BOUND: Duration = Duration::from_secs(10);

/// What happens between two samples: every call still running answers (except those of `hung`
/// mounts), however loaded the machine is. Calls queued behind a hung one move to other threads
/// as the next sample would move them.
fn settle(c: &mut FilesystemCollector, hung: &[&str]) {
    let deadline = Instant::now() + BOUND;
    loop {
        c.pool.rescue();
        while let Ok(answer) = c.answers.try_recv() {
            c.apply(answer);
        }
        let busy = c
            .mounts
            .iter()
            .any(|(m, s)| s.in_flight_since.is_some() && !hung.contains(&m.as_str()));
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "calls never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
}
/// A sample with a hung mount must end long before the hung call (BOUND) would: generous for a
/// loaded CI machine, yet far below the hang.
const SAMPLE_LIMIT: Duration = Duration::from_secs(1);

use crate::collect::linux::fixture;

fn config(paths: HostPaths, timeout: Duration) -> CollectConfig {
    CollectConfig {
        paths,
        fs_mount_timeout: timeout,
        ..CollectConfig::default()
    }
}

/// Runs one sample; returns the section, the outcome and how long it took.
fn sample(c: &mut FilesystemCollector) -> (FilesystemsStats, Result<(), CollectError>, Duration) {
    let mut snapshot = Snapshot::default();
    let began = Instant::now();
    let result = c.collect(&mut snapshot);
    let took = began.elapsed();
    (snapshot.filesystems.unwrap_or_default(), result, took)
}

fn mountpoints(fs: &FilesystemsStats) -> Vec<&str> {
    fs.mounts.iter().map(|m| m.mountpoint.as_str()).collect()
}

fn counted(fs: &FilesystemsStats) -> Vec<&str> {
    fs.mounts
        .iter()
        .filter(|m| m.counted_in_total)
        .map(|m| m.mountpoint.as_str())
        .collect()
}

fn mount<'a>(fs: &'a FilesystemsStats, mountpoint: &str) -> &'a FilesystemStats {
    fs.mounts
        .iter()
        .find(|m| m.mountpoint == mountpoint)
        .unwrap_or_else(|| panic!("{mountpoint} missing from {:?}", mountpoints(fs)))
}

/// The server fixture's mounts that survive the default excludes, in table order.
const SERVER_MOUNTS: [&str; 10] = [
    "/",
    "/run",
    "/boot/efi",
    "/data",
    "/scratch",
    "/srv/shared data",
    "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/4f1c2e9a/shm",
    "/mnt/nas",
    "/mnt/stuck",
    "/run/user/1000",
];

/// Block devices and network filesystems, each device once: /srv/shared data is /dev/md0 again.
const SERVER_COUNTED: [&str; 6] = [
    "/",
    "/boot/efi",
    "/data",
    "/scratch",
    "/mnt/nas",
    "/mnt/stuck",
];

/// A statvfs stand-in: fixed figures, per-mount call counts, mounts that hang until released
/// and mounts that fail.
struct Fake {
    /// The fixture's root, stripped to name mounts as the host does.
    root: PathBuf,
    /// Calls per mount point.
    calls: Mutex<HashMap<String, usize>>,
    /// Mount points whose calls block until `release` (or BOUND).
    hanging: Mutex<Vec<String>>,
    /// Calls that blocked and have returned.
    returned: AtomicUsize,
    release: Mutex<mpsc::Receiver<()>>,
    /// Mount points whose calls fail with EACCES.
    failing: Vec<String>,
}

impl Fake {
    fn new(root: PathBuf, hanging: &[&str], failing: &[&str]) -> (Arc<Self>, Sender<()>) {
        let (release_tx, release) = mpsc::channel();
        let fake = Self {
            root,
            calls: Mutex::default(),
            hanging: Mutex::new(hanging.iter().map(|s| s.to_string()).collect()),
            returned: AtomicUsize::new(0),
            release: Mutex::new(release),
            failing: failing.iter().map(|s| s.to_string()).collect(),
        };
        (Arc::new(fake), release_tx)
    }

    fn statvfs(self: &Arc<Self>) -> Arc<StatvfsFn> {
        let fake = Arc::clone(self);
        Arc::new(move |path: &Path| fake.call(path))
    }

    fn call(&self, path: &Path) -> std::io::Result<Usage> {
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        let mountpoint = format!("/{}", relative.display());
        *self
            .calls
            .lock()
            .unwrap()
            .entry(mountpoint.clone())
            .or_default() += 1;
        let hangs = self.hanging.lock().unwrap().contains(&mountpoint);
        if hangs {
            let release = self.release.lock().unwrap();
            let _ = release.recv_timeout(BOUND);
            self.returned.fetch_add(1, Ordering::SeqCst);
        }
        if self.failing.contains(&mountpoint) {
            return Err(std::io::ErrorKind::PermissionDenied.into());
        }
        Ok(Usage {
            size_bytes: 100 * GIB,
            free_bytes: 40 * GIB,
            avail_bytes: 35 * GIB,
            files: 1_000_000,
            files_free: 900_000,
            readonly: mountpoint == "/boot/efi",
        })
    }

    fn calls(&self, mountpoint: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .get(mountpoint)
            .copied()
            .unwrap_or(0)
    }

    fn stop_hanging(&self, mountpoint: &str) {
        self.hanging.lock().unwrap().retain(|m| m != mountpoint);
    }
}

fn server_with_fake(
    timeout: Duration,
    hanging: &[&str],
    failing: &[&str],
) -> (FilesystemCollector, Arc<Fake>, Sender<()>) {
    let paths = HostPaths::fixture(fixture("server"));
    let (fake, release) = Fake::new(paths.rootfs.clone(), hanging, failing);
    let collector = FilesystemCollector::with_statvfs(&config(paths, timeout), fake.statvfs());
    (collector, fake, release)
}

#[test]
fn usage_from_statvfs_multiplies_by_the_fragment_size() {
    let mut s = rustix::fs::StatVfs {
        f_bsize: 65536,
        f_frsize: 4096,
        f_blocks: 1000,
        f_bfree: 400,
        f_bavail: 300,
        f_files: 50,
        f_ffree: 20,
        f_favail: 20,
        f_fsid: 0,
        f_flag: rustix::fs::StatVfsMountFlags::RDONLY | rustix::fs::StatVfsMountFlags::NOATIME,
        f_namemax: 255,
    };
    let usage = Usage::from_statvfs(&s);
    assert_eq!(
        usage,
        Usage {
            size_bytes: 4_096_000,
            free_bytes: 1_638_400,
            avail_bytes: 1_228_800,
            files: 50,
            files_free: 20,
            readonly: true,
        }
    );
    s.f_frsize = 0;
    s.f_flag = rustix::fs::StatVfsMountFlags::empty();
    let usage = Usage::from_statvfs(&s);
    assert_eq!((usage.size_bytes, usage.readonly), (65_536_000, false));
}

#[test]
fn server_fixture_with_real_statvfs() {
    let paths = HostPaths::fixture(fixture("server"));
    let mut c = FilesystemCollector::new(&config(paths, Duration::from_secs(5)));
    // Structure, not speed, is under test here: let a loaded machine take its time.
    c.wait = BOUND;
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    assert_eq!(mountpoints(&fs), SERVER_MOUNTS);
    assert!(fs.mounts.iter().all(|m| m.state == FilesystemState::Ok));
    assert_eq!(counted(&fs), SERVER_COUNTED);
    let shared = mount(&fs, "/srv/shared data");
    assert_eq!(
        (shared.device.as_str(), shared.fstype.as_str()),
        ("/dev/md0", "xfs")
    );
    assert!(shared.readonly, "`ro` option");
    assert!(!mount(&fs, "/data").readonly);
    assert_eq!(mount(&fs, "/mnt/nas").device, "nas:/export");
    for m in &fs.mounts {
        assert!(
            m.size_bytes >= m.avail_bytes && m.size_bytes >= m.free_bytes,
            "{m:?}"
        );
        assert!(
            m.size_bytes > 0,
            "the fixture directories are on a real filesystem"
        );
    }
}

#[test]
fn captured_vm_fixture_with_real_statvfs() {
    let paths = HostPaths::fixture(fixture("captured-vm"));
    let mut c = FilesystemCollector::new(&config(paths, Duration::from_secs(5)));
    c.wait = BOUND;
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    // /dev/shm is listed twice and excluded; cgroup, proc, sysfs, devpts are pseudo filesystems.
    assert_eq!(
        mountpoints(&fs),
        ["/", "/mnt/sandboxing/model_tools_env/v1/python"]
    );
    assert_eq!(counted(&fs), ["/"]);
    assert_eq!(mount(&fs, "/").device, "/dev/vda");
}

#[test]
fn exact_figures_errors_and_counting_with_a_fake() {
    let (mut c, fake, _release) =
        server_with_fake(Duration::from_secs(5), &[], &["/run/user/1000", "/scratch"]);
    c.wait = BOUND;
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    let data = mount(&fs, "/data");
    assert_eq!(data.state, FilesystemState::Ok);
    assert_eq!(
        (data.size_bytes, data.free_bytes, data.avail_bytes),
        (100 * GIB, 40 * GIB, 35 * GIB)
    );
    assert_eq!((data.files, data.files_free), (1_000_000, 900_000));
    assert_eq!(data.usage_percent, 60.0);
    assert!(mount(&fs, "/boot/efi").readonly, "ST_RDONLY");
    let failed = mount(&fs, "/scratch");
    assert!(
        matches!(&failed.state, FilesystemState::Error(m) if m.contains("ermission denied")),
        "{:?}",
        failed.state
    );
    assert_eq!((failed.size_bytes, failed.counted_in_total), (0, false));
    assert_eq!(
        counted(&fs),
        ["/", "/boot/efi", "/data", "/mnt/nas", "/mnt/stuck"]
    );
    // The bind mount of /dev/md0 is measured (it is listed) but counted once.
    assert_eq!(fake.calls("/srv/shared data"), 1);
    assert_eq!(fake.calls("/proc"), 0, "excluded mounts are never measured");

    // The sampler's totals over these flags: five counted mounts of 100 GiB, 60 GiB used each.
    let mut snapshot = Snapshot::default();
    c.collect(&mut snapshot).unwrap();
    crate::collect::rates::derive(&mut snapshot, None, 0.0);
    let totals = snapshot.filesystems.unwrap();
    assert_eq!(
        (totals.total_bytes, totals.used_bytes),
        (500 * GIB, 300 * GIB)
    );
}

#[test]
fn a_hung_mount_never_stalls_a_sample_and_recovers() {
    let timeout = Duration::from_millis(120);
    let (mut c, fake, release) = server_with_fake(timeout, &["/mnt/stuck"], &[]);
    c.wait = Duration::from_millis(20);

    // (a) The sample returns after the wait budget, not after the hung call.
    let (fs, result, took) = sample(&mut c);
    result.unwrap();
    assert!(took < SAMPLE_LIMIT, "sample took {took:?}");
    let listed = mountpoints(&fs);
    assert!(
        !listed.contains(&"/mnt/stuck"),
        "no figures yet, not timed out yet: {listed:?}"
    );
    assert!(fs.mounts.iter().all(|m| m.state == FilesystemState::Ok));

    // (b) Past the timeout it is reported as timed out; everything else is fine.
    std::thread::sleep(timeout);
    for _ in 0..3 {
        // Samples are an interval apart: the calls they submit answer in between.
        settle(&mut c, &["/mnt/stuck"]);
        let (fs, result, took) = sample(&mut c);
        assert!(took < SAMPLE_LIMIT, "sample took {took:?}");
        match result {
            Err(CollectError::Partial(m)) => assert_eq!(m, "statvfs timed out on /mnt/stuck"),
            other => panic!("expected a partial result, got {other:?}"),
        }
        assert_eq!(mountpoints(&fs), SERVER_MOUNTS);
        let stuck = mount(&fs, "/mnt/stuck");
        assert_eq!(stuck.state, FilesystemState::TimedOut);
        assert_eq!((stuck.size_bytes, stuck.counted_in_total), (0, false));
        assert!(fs
            .mounts
            .iter()
            .filter(|m| m.mountpoint != "/mnt/stuck")
            .all(|m| m.state == FilesystemState::Ok));
        assert_eq!(
            counted(&fs),
            ["/", "/boot/efi", "/data", "/scratch", "/mnt/nas"]
        );
        // (c) Not resubmitted while the first call hangs.
        assert_eq!(fake.calls("/mnt/stuck"), 1);
    }
    // The fourth sample's calls run after it returns.
    settle(&mut c, &["/mnt/stuck"]);
    assert!(
        fake.calls("/data") >= 4,
        "the other mounts are measured every sample"
    );

    // (d) Once the call returns, the mount is measured again and counts.
    fake.stop_hanging("/mnt/stuck");
    release.send(()).unwrap();
    let deadline = Instant::now() + BOUND;
    let recovered = loop {
        let (fs, result, _) = sample(&mut c);
        if result.is_ok() {
            break fs;
        }
        assert!(Instant::now() < deadline, "never recovered");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(fake.returned.load(Ordering::SeqCst), 1);
    let stuck = mount(&recovered, "/mnt/stuck");
    assert_eq!(
        (stuck.state.clone(), stuck.size_bytes),
        (FilesystemState::Ok, 100 * GIB)
    );
    assert_eq!(counted(&recovered), SERVER_COUNTED);
    // The sample that saw the answer measured the mount again at once (one more call, unless the
    // answer came during its wait); from then on it is measured every sample.
    settle(&mut c, &[]);
    let calls = fake.calls("/mnt/stuck");
    assert!(calls == 1 || calls == 2, "{calls} calls");
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    assert_eq!(mount(&fs, "/mnt/stuck").state, FilesystemState::Ok);
    settle(&mut c, &[]);
    assert_eq!(fake.calls("/mnt/stuck"), calls + 1);
    // Steady sampling reused the pool's threads: at most the healthy limit plus the hung one.
    assert!(
        c.pool.threads().1 <= HEALTHY_WORKERS + 1,
        "{:?}",
        c.pool.threads()
    );
}

#[test]
fn a_slow_mount_reports_its_last_figures_until_the_timeout() {
    let timeout = Duration::from_millis(150);
    let (mut c, fake, release) = server_with_fake(timeout, &[], &[]);
    c.wait = BOUND;
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    assert_eq!(mount(&fs, "/mnt/nas").size_bytes, 100 * GIB);
    c.wait = Duration::from_millis(20);

    // From now on /mnt/nas hangs: the next sample still shows its previous figures.
    fake.hanging.lock().unwrap().push("/mnt/nas".into());
    let (fs, result, took) = sample(&mut c);
    result.unwrap();
    assert!(took < SAMPLE_LIMIT, "sample took {took:?}");
    let nas = mount(&fs, "/mnt/nas");
    assert_eq!(
        (nas.state.clone(), nas.size_bytes),
        (FilesystemState::Ok, 100 * GIB)
    );
    assert!(nas.counted_in_total);

    std::thread::sleep(timeout);
    let (fs, result, _) = sample(&mut c);
    assert!(matches!(result, Err(CollectError::Partial(m)) if m.contains("/mnt/nas")));
    assert_eq!(mount(&fs, "/mnt/nas").state, FilesystemState::TimedOut);
    assert_eq!(fake.calls("/mnt/nas"), 2);
    fake.stop_hanging("/mnt/nas");
    release.send(()).unwrap();
}

#[test]
fn steady_sampling_spawns_no_threads() {
    let (mut c, fake, _release) = server_with_fake(Duration::from_secs(5), &[], &[]);
    c.wait = BOUND;
    // No call counts as slow however loaded the machine (rescuing slow calls is tested in
    // pool.rs): what is left is how sampling hands out work.
    c.pool = Pool::new(HEALTHY_WORKERS, BOUND, WORKER_IDLE_EXIT);
    for _ in 0..20 {
        sample(&mut c).1.unwrap();
        settle(&mut c, &[]);
    }
    assert_eq!(fake.calls("/data"), 20);
    // One thread runs every sample's batch: never one per mount or per sample.
    assert_eq!(c.pool.threads(), (1, 1), "threads for 20 samples");
}

#[test]
fn mount_table_falls_back_to_self_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir_all(proc.join("self")).unwrap();
    let paths = HostPaths::new(&proc, dir.path().join("sys"), dir.path());
    let mut c = FilesystemCollector::new(&config(paths, Duration::from_secs(5)));
    c.wait = BOUND;

    let err = sample(&mut c).1.unwrap_err().to_string();
    assert!(err.contains("1/mounts"), "{err}");

    std::fs::write(
        proc.join("self/mounts"),
        "/dev/sda1 / ext4 rw,relatime 0 0\n",
    )
    .unwrap();
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    assert_eq!(mountpoints(&fs), ["/"]);
    assert!(fs.mounts[0].size_bytes > 0);

    std::fs::create_dir_all(proc.join("1")).unwrap();
    std::fs::write(proc.join("1/mounts"), "/dev/sda1 / ext4 rw 0 0\nbroken\n").unwrap();
    let err = sample(&mut c).1.unwrap_err().to_string();
    assert!(err.contains("1/mounts") && err.contains("row 2"), "{err}");
}

#[test]
fn live_root_filesystem() {
    let config = CollectConfig::default();
    let Ok(table) = std::fs::read_to_string("/proc/1/mounts")
        .or_else(|_| std::fs::read_to_string("/proc/self/mounts"))
    else {
        return; // Not Linux with procfs.
    };
    let mut c = FilesystemCollector::new(&config);
    c.wait = BOUND;
    let (fs, result, _) = sample(&mut c);
    result.unwrap();
    // An independent reading of the table: the root filesystem, unless a container's overlay.
    let root_type = table.lines().rev().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, mountpoint, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (mountpoint == "/").then_some(fstype)
    });
    if let Some(fstype) = root_type.filter(|t| !config.fs_types_exclude.is_match(t)) {
        let root = mount(&fs, "/");
        assert_eq!(root.fstype, fstype);
        assert_eq!(root.state, FilesystemState::Ok);
        assert!(root.size_bytes > 0 && root.size_bytes >= root.avail_bytes);
        assert!(root.free_bytes >= root.avail_bytes);
    }
    for m in fs.mounts.iter().filter(|m| m.state == FilesystemState::Ok) {
        assert!(m.size_bytes >= m.avail_bytes, "{m:?}");
        assert!((0.0..=100.0).contains(&m.usage_percent), "{m:?}");
    }
}

#[test]
fn procfs_mount_table_is_kept_open_and_reread_only_on_change() {
    // A fixture's table is a plain file: read every sample, never watched.
    let (mut c, _fake, _release) = server_with_fake(Duration::from_secs(5), &[], &[]);
    c.wait = BOUND;
    sample(&mut c).1.unwrap();
    assert!(c.watched.is_none());

    if !Path::new("/proc/1/mounts").exists() {
        return; // Not Linux with procfs.
    }
    let mut live = FilesystemCollector::new(&CollectConfig::default());
    live.wait = BOUND;
    let (first, result, _) = sample(&mut live);
    result.unwrap();
    let watched = live.watched.as_ref().expect("procfs table is watched");
    assert!(!watched.changed(), "nothing was mounted in between");
    let rows = Arc::clone(&watched.rows);
    let (second, result, _) = sample(&mut live);
    result.unwrap();
    assert_eq!(mountpoints(&first), mountpoints(&second));
    let kept = live.watched.as_ref().expect("still watched");
    assert!(
        Arc::ptr_eq(&rows, &kept.rows),
        "unchanged table not parsed again"
    );
}

#[test]
fn a_new_mount_is_seen_at_the_next_sample() {
    if !Path::new("/proc/1/mounts").exists() {
        return; // Not Linux with procfs.
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fresh");
    std::fs::create_dir(&target).unwrap();
    let mut live = FilesystemCollector::new(&CollectConfig::default());
    live.wait = BOUND;
    sample(&mut live).1.unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "system-monitor-test"])
        .arg(&target)
        .status();
    if !mounted.is_ok_and(|s| s.success()) {
        // Mounting needs CAP_SYS_ADMIN in the namespace of pid 1 (CI runs as root).
        eprintln!("cannot mount a tmpfs here; change detection not exercised");
        return;
    }
    let (fs, result, _) = sample(&mut live);
    let _ = std::process::Command::new("umount").arg(&target).status();
    result.unwrap();
    let name = target.to_string_lossy();
    let fresh = mount(&fs, &name);
    assert_eq!(fresh.fstype, "tmpfs");
    assert_eq!(fresh.size_bytes, 1 << 20);
}
