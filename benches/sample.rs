//! What one full sample costs against the bare reading of the same /proc and /sys files.
//!
//! `sample/full` runs the Linux sampler (every collector, parsing, rates, aggregates).
//! `sample/bare_read` only reads the files one sample reads — the same list, into a reused buffer,
//! with no parsing — plus the process-directory scan and statvfs of the same mounts. Reads the
//! sampler skips are skipped here too: the TCP and UDP tables are read as often as their
//! collectors scan them, the mount table when the kernel flags a change, the /proc listing when
//! /proc/loadavg's last PID or task count moved. The goal is
//! full ≤ 2 × bare_read; `bench/sample_ratio.sh` runs both and prints the ratio.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use system_monitor::collect::{HostPaths, Sampler};
use system_monitor::config::CollectConfig;
use system_monitor::model::wire;
use system_monitor::serve::prometheus;

/// The files a steady-state sample reads (device lists and labels are cached by the collectors,
/// so they are not re-read each sample and are not listed here).
fn sampled_files(paths: &HostPaths) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "stat",
        "loadavg",
        "meminfo",
        "pressure/cpu",
        "pressure/memory",
        "pressure/io",
        "diskstats",
        "net/dev",
        "net/netstat",
        "net/snmp",
        // Read again by the network collector for TCP's CurrEstab.
        "net/snmp",
        "net/snmp6",
        "net/sockstat",
        "net/sockstat6",
        "net/softnet_stat",
        "net/arp",
        "net/stat/nf_conntrack",
        "sys/net/netfilter/nf_conntrack_count",
        "sys/net/netfilter/nf_conntrack_max",
    ]
    .iter()
    .map(|f| paths.proc(f))
    .collect();
    let glob = |dir: PathBuf, keep: &dyn Fn(&str) -> bool| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| keep(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    };
    for cpu in glob(paths.sys("devices/system/cpu"), &|n| {
        n.strip_prefix("cpu")
            .is_some_and(|d| d.parse::<u32>().is_ok())
    }) {
        files.push(cpu.join("cpufreq/scaling_cur_freq"));
    }
    for hwmon in glob(paths.sys("class/hwmon"), &|_| true) {
        files.extend(glob(hwmon, &|n| {
            n.starts_with("temp") && n.ends_with("_input")
        }));
    }
    for zone in glob(paths.sys("class/thermal"), &|n| {
        n.starts_with("thermal_zone")
    }) {
        files.push(zone.join("temp"));
    }
    // netclass reads these two each sample (the rest when they move), netdev rx_nohandler.
    for interface in glob(paths.sys("class/net"), &|_| true) {
        for attribute in ["operstate", "carrier_changes", "statistics/rx_nohandler"] {
            files.push(interface.join(attribute));
        }
    }
    files.retain(|f| f.exists());
    files
}

/// Mount points the filesystem collector keeps (the same excludes).
fn sampled_mounts(paths: &HostPaths, config: &CollectConfig) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string(paths.proc("1/mounts")).unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_device, mountpoint, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            let keep = !config.fs_types_exclude.is_match(fstype)
                && !config.fs_mount_points_exclude.is_match(mountpoint);
            keep.then(|| paths.root(mountpoint))
        })
        .collect()
}

/// Socket tables (TCP, UDP), read no more often than their collectors scan them (never when
/// `every` is None: the TCP count comes from a counter unless a scan interval is set).
struct ScannedTables {
    files: [PathBuf; 2],
    every: Option<Duration>,
    last: Option<Instant>,
}

/// What the sampler reads only when the kernel says it changed, mirrored: the mount table (kept
/// open, read again when poll flags POLLPRI) and the /proc listing (done again when the last PID
/// or the task count in /proc/loadavg moved).
struct ReadOnChange {
    mounts: std::fs::File,
    procfs: PathBuf,
    loadavg: PathBuf,
    last_tasks: Option<Vec<u8>>,
}

fn bare_read(
    files: &[PathBuf],
    listed: &[PathBuf],
    tables: &mut [ScannedTables],
    on_change: &mut ReadOnChange,
    mounts: &[PathBuf],
    buf: &mut Vec<u8>,
) -> usize {
    let mut bytes = 0;
    let mut fds = [PollFd::new(&on_change.mounts, PollFlags::PRI)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if poll(&mut fds, Some(&zero)).unwrap_or(0) > 0 {
        buf.clear();
        bytes += std::fs::File::open(on_change.mounts_path())
            .and_then(|mut f| f.read_to_end(buf))
            .unwrap_or(0);
    }
    let mut due_tables = Vec::new();
    for table in tables.iter_mut() {
        let Some(every) = table.every else { continue };
        if table.last.is_none_or(|at| at.elapsed() >= every) {
            table.last = Some(Instant::now());
            due_tables.extend(table.files.iter());
        }
    }
    for dir in listed {
        bytes += std::fs::read_dir(dir).map_or(0, |d| d.count());
    }
    for file in files.iter().chain(due_tables) {
        buf.clear();
        if let Ok(mut f) = std::fs::File::open(file) {
            bytes += f.read_to_end(buf).unwrap_or(0);
        }
    }
    buf.clear();
    if let Ok(mut f) = std::fs::File::open(&on_change.loadavg) {
        bytes += f.read_to_end(buf).unwrap_or(0);
    }
    let tasks: Vec<u8> = buf
        .split(|b| *b == b' ')
        .skip(3)
        .flatten()
        .copied()
        .collect();
    let mut pids = 0;
    if on_change.last_tasks.as_deref() != Some(&tasks[..]) {
        on_change.last_tasks = Some(tasks);
        pids = std::fs::read_dir(&on_change.procfs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count();
    }
    for mount in mounts {
        bytes += rustix::fs::statvfs(mount).map_or(0, |s| s.f_bsize as usize & 1);
    }
    bytes + pids
}

impl ReadOnChange {
    fn new(paths: &HostPaths) -> std::io::Result<Self> {
        Ok(Self {
            mounts: std::fs::File::open(paths.proc("1/mounts"))?,
            procfs: paths.procfs.clone(),
            loadavg: paths.proc("loadavg"),
            last_tasks: None,
        })
    }

    fn mounts_path(&self) -> PathBuf {
        self.procfs.join("1/mounts")
    }
}

fn bench(c: &mut Criterion) {
    let config = CollectConfig::default();
    let files = sampled_files(&config.paths);
    // Directories listed each sample: netclass follows the interfaces.
    let listed = [config.paths.sys("class/net")];
    let mounts = sampled_mounts(&config.paths, &config);
    let Ok(mut on_change) = ReadOnChange::new(&config.paths) else {
        eprintln!("no /proc/1/mounts: this bench needs Linux with procfs");
        return;
    };
    let mut tables = [
        ScannedTables {
            files: [config.paths.proc("net/tcp"), config.paths.proc("net/tcp6")],
            every: config.tcp_scan_interval,
            last: None,
        },
        ScannedTables {
            files: [config.paths.proc("net/udp"), config.paths.proc("net/udp6")],
            every: Some(config.udp_queues_scan_interval),
            last: None,
        },
    ];
    let mut sampler = Sampler::from_config("bench".into(), &config);
    sampler.sample();

    let mut group = c.benchmark_group("sample");
    group.bench_function("full", |b| b.iter(|| sampler.sample()));
    let mut buf = Vec::with_capacity(1 << 16);
    group.bench_function("bare_read", |b| {
        b.iter(|| {
            bare_read(
                &files,
                &listed,
                &mut tables,
                &mut on_change,
                &mounts,
                &mut buf,
            )
        })
    });
    group.finish();

    // What a request for a new snapshot costs (the first request after each sample encodes it;
    // the rest of that interval's requests reuse the bytes).
    let snapshot = sampler.sample();
    let mut group = c.benchmark_group("encode");
    group.bench_function("prometheus_text", |b| {
        b.iter(|| prometheus::encode(&snapshot, prometheus::Format::Text))
    });
    group.bench_function("rest_metrics_json", |b| {
        b.iter(|| wire::metrics_array_json([snapshot.as_ref()]))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
