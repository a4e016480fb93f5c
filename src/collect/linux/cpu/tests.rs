//! Tests of `cpu`.

use super::*;

use crate::collect::linux::fixture;

fn fixture_file(name: &str, relative: &str) -> String {
    let path = fixture(name).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `cpuN` lines of a stat text, counted independently of the parser.
fn cpu_lines(stat: &str) -> usize {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

#[test]
fn parses_captured_stat() {
    let text = fixture_file("captured-vm", "proc/stat");
    let stat = parse_stat(&text).unwrap();
    assert_eq!(stat.cores.len(), cpu_lines(&text));
    let first: Vec<u64> = text.lines().next().unwrap()[3..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(stat.total.user, first[0] as f64 / 100.0);
    assert_eq!(stat.total.idle, first[3] as f64 / 100.0);
    assert_eq!(stat.total.steal, first[7] as f64 / 100.0);
    assert!(stat.context_switches > 0 && stat.interrupts > 0 && stat.boot_time > 0);
    assert!(stat.forks > 0);
}

#[test]
fn parses_server_stat() {
    let stat = parse_stat(&fixture_file("server", "proc/stat")).unwrap();
    assert_eq!(stat.cores.len(), 8);
    assert_eq!(stat.cores[5].0, 5);
    assert_eq!(stat.cores[0].1.user, 64021.13);
    assert_eq!(stat.cores[0].1.softirq, 1902.11);
    assert_eq!(stat.context_switches, 17_283_719_283);
    assert_eq!(stat.interrupts, 9_812_376_129);
    assert_eq!(stat.forks, 48_392_011);
    assert_eq!((stat.procs_running, stat.procs_blocked), (3, 1));
    assert_eq!(stat.boot_time, 1_714_560_000);
    // The fixture's cpu line is the sum of its cpuN lines.
    let sum: f64 = stat.cores.iter().map(|(_, t)| t.total()).sum();
    assert!((sum - stat.total.total()).abs() < 1e-6);
}

#[test]
fn stat_edge_cases() {
    // Old kernel: four fields only, no counters.
    let old = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n").unwrap();
    assert_eq!(old.total.idle, 0.04);
    assert_eq!(old.total.steal, 0.0);
    assert_eq!(old.context_switches, 0);
    // Offline CPU 1: its line is absent; ids are kept, not renumbered.
    let offline = parse_stat("cpu 2 0 2 4\ncpu0 1 0 1 2\ncpu2 1 0 1 2\n").unwrap();
    let ids: Vec<u32> = offline.cores.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [0, 2]);
    assert!(parse_stat("").is_err());
    assert!(parse_stat("cpu0 1 2 3 4\n").is_err());
    assert!(parse_stat("cpu 1 2 3\n").is_err());
    assert!(parse_stat("cpu 1 2 x 4\n").is_err());
    assert!(parse_stat("cpu 1 2 3 4\nctxt\n").is_err());
    assert!(parse_stat("cpu 1 2 3 4\nbtime soon\n").is_err());
    assert!(parse_stat("\u{0}\u{1}garbage\n").is_err());
}

#[test]
fn parses_loadavg() {
    let text = fixture_file("captured-vm", "proc/loadavg");
    let load = parse_loadavg(&text).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(load.load[2], fields[2].parse::<f64>().unwrap());
    assert_eq!(load.tasks.to_string(), fields[3].split('/').nth(1).unwrap());
    let server = parse_loadavg(&fixture_file("server", "proc/loadavg")).unwrap();
    assert_eq!(server.load, [1.52, 1.37, 1.21]);
    assert_eq!(server.tasks, 1234);
    assert_eq!(
        server.last_pid,
        fixture_file("server", "proc/loadavg")
            .split_whitespace()
            .nth(4)
            .and_then(|p| p.parse().ok())
    );
    assert_eq!(parse_loadavg("0.1 0.2 0.3 1/5").unwrap().last_pid, None);
    assert!(parse_loadavg("").is_err());
    assert!(parse_loadavg("0.1 0.2 0.3").is_err());
    assert!(parse_loadavg("0.1 0.2 0.3 5").is_err());
    assert!(parse_loadavg("0.1 x 0.3 1/5 7").is_err());
}

#[test]
fn parses_cpuinfo_mhz_and_cpu_lists() {
    let server = parse_cpuinfo_mhz(&fixture_file("server", "proc/cpuinfo"));
    assert_eq!(server.len(), 8);
    assert_eq!(server[5], (5, 2399.998));
    let vm = fixture_file("captured-vm", "proc/cpuinfo");
    let processors = vm.lines().filter(|l| l.starts_with("processor")).count();
    assert_eq!(parse_cpuinfo_mhz(&vm).len(), processors);
    assert!(parse_cpuinfo_mhz("processor : 0\nBogoMIPS : 50.00\n").is_empty());

    assert_eq!(
        parse_cpu_list("0-3,8,10-11\n").unwrap(),
        [0, 1, 2, 3, 8, 10, 11]
    );
    assert_eq!(parse_cpu_list("0").unwrap(), [0]);
    assert!(parse_cpu_list("").unwrap().is_empty());
    assert!(parse_cpu_list("3-1").is_err());
    assert!(parse_cpu_list("a-b").is_err());
}

fn collect(paths: HostPaths) -> CpuStats {
    let mut collector = CpuCollector::new(paths);
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    snapshot.cpu.unwrap()
}

fn numeric_dirs(proc: &Path) -> u64 {
    std::fs::read_dir(proc)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .count() as u64
}

#[test]
fn collects_server_fixture() {
    let dir = fixture("server");
    let cpu = collect(HostPaths::fixture(&dir));
    assert_eq!(cpu.cores.len(), 8);
    assert_eq!(cpu.load_average, [1.52, 1.37, 1.21]);
    assert_eq!(cpu.threads, 1234);
    assert_eq!(cpu.processes, numeric_dirs(&dir.join("proc")));
    assert_eq!(cpu.boot_time_seconds, 1_714_560_000);
    assert_eq!(cpu.usage_percent, 0.0);
    let c5 = &cpu.cores[5];
    assert_eq!(c5.id, 5);
    // cpufreq wins over cpuinfo's 2399.998 when both exist.
    assert_eq!(c5.frequency_mhz, Some(2399.123));
    assert_eq!(c5.min_frequency_mhz, Some(800.0));
    assert_eq!(c5.max_frequency_mhz, Some(3000.0));
    assert_eq!((c5.core_id, c5.package_id), (Some(4), Some(0)));
    let c2 = &cpu.cores[2];
    assert_eq!((c2.core_id, c2.package_id), (Some(0), Some(1)));
}

#[test]
fn collects_captured_vm_fixture_with_cpuinfo_frequency() {
    let dir = fixture("captured-vm");
    let stat = fixture_file("captured-vm", "proc/stat");
    let cpu = collect(HostPaths::fixture(&dir));
    assert_eq!(cpu.cores.len(), cpu_lines(&stat));
    assert_eq!(cpu.processes, numeric_dirs(&dir.join("proc")));
    let mhz = parse_cpuinfo_mhz(&fixture_file("captured-vm", "proc/cpuinfo"));
    for core in &cpu.cores {
        // No cpufreq in this VM: the frequency comes from cpuinfo, limits are unknown.
        let expected = mhz.iter().find(|(id, _)| *id == core.id).map(|(_, m)| *m);
        assert_eq!(core.frequency_mhz, expected);
        assert_eq!(core.max_frequency_mhz, None);
        assert!(core.core_id.is_some() && core.package_id.is_some());
    }
}

#[test]
fn rescans_when_cpus_change_and_survives_a_missing_topology() {
    let tmp = tempfile::tempdir().unwrap();
    let proc = tmp.path().join("proc");
    std::fs::create_dir_all(proc.join("42")).unwrap();
    std::fs::write(proc.join("loadavg"), "0 0 0 1/7 9\n").unwrap();
    std::fs::write(
        proc.join("stat"),
        "cpu 2 0 2 4\ncpu0 1 0 1 2\ncpu1 1 0 1 2\n",
    )
    .unwrap();
    let mut collector = CpuCollector::new(HostPaths::fixture(tmp.path()));
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    let cpu = snapshot.cpu.take().unwrap();
    assert_eq!((cpu.processes, cpu.threads), (1, 7));
    assert_eq!(cpu.cores[1].core_id, None);
    assert_eq!(cpu.cores[1].frequency_mhz, None);

    // CPU 1 goes offline and gains topology/cpufreq files (as after a hotplug).
    let cpu0 = tmp.path().join("sys/devices/system/cpu/cpu0");
    std::fs::create_dir_all(cpu0.join("topology")).unwrap();
    std::fs::create_dir_all(cpu0.join("cpufreq")).unwrap();
    std::fs::write(cpu0.join("topology/core_id"), "3\n").unwrap();
    std::fs::write(cpu0.join("cpufreq/scaling_cur_freq"), "1500000\n").unwrap();
    std::fs::write(proc.join("stat"), "cpu 2 0 2 4\ncpu0 1 0 1 2\n").unwrap();
    collector.collect(&mut snapshot).unwrap();
    let cpu = snapshot.cpu.unwrap();
    assert_eq!(cpu.cores.len(), 1);
    assert_eq!(cpu.cores[0].core_id, Some(3));
    assert_eq!(cpu.cores[0].frequency_mhz, Some(1500.0));
}

#[test]
fn processes_are_listed_again_only_when_a_task_came_or_went() {
    let tmp = tempfile::tempdir().unwrap();
    let proc = tmp.path().join("proc");
    std::fs::create_dir_all(proc.join("1")).unwrap();
    std::fs::write(proc.join("stat"), "cpu 2 0 2 4\ncpu0 2 0 2 4\n").unwrap();
    let mut collector = CpuCollector::new(HostPaths::fixture(tmp.path()));
    let mut processes = |loadavg: &str| {
        std::fs::write(proc.join("loadavg"), loadavg).unwrap();
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        snapshot.cpu.unwrap().processes
    };
    assert_eq!(processes("0 0 0 1/5 100\n"), 1);
    // A directory appears without loadavg moving: the kept count is reported (a real kernel
    // cannot do this; it shows that /proc was not listed again).
    std::fs::create_dir_all(tmp.path().join("proc/2")).unwrap();
    assert_eq!(processes("0 0 0 1/5 100\n"), 1);
    // A new PID was allocated: listed again.
    assert_eq!(processes("0 0 0 1/6 102\n"), 2);
    // A task exited (the task count dropped, no new PID): listed again.
    std::fs::remove_dir(tmp.path().join("proc/2")).unwrap();
    assert_eq!(processes("0 0 0 1/5 102\n"), 1);
    // A kernel without the last-PID field: listed every sample.
    std::fs::create_dir_all(tmp.path().join("proc/3")).unwrap();
    assert_eq!(processes("0 0 0 1/5\n"), 2);
    std::fs::create_dir_all(tmp.path().join("proc/4")).unwrap();
    assert_eq!(processes("0 0 0 1/5\n"), 3);
}

#[test]
fn malformed_stat_is_an_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let proc = tmp.path().join("proc");
    std::fs::create_dir_all(&proc).unwrap();
    std::fs::write(proc.join("stat"), "nonsense\n").unwrap();
    std::fs::write(proc.join("loadavg"), "0 0 0 1/7 9\n").unwrap();
    let mut snapshot = Snapshot::default();
    let err = CpuCollector::new(HostPaths::fixture(tmp.path()))
        .collect(&mut snapshot)
        .unwrap_err();
    assert!(matches!(err, CollectError::Parse { .. }));
    assert!(err
        .to_string()
        .contains(&proc.join("stat").display().to_string()));
    assert!(snapshot.cpu.is_none());
}

#[test]
fn live_host_invariants() {
    let paths = HostPaths::default();
    let mut collector = CpuCollector::new(paths.clone());
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    let first = snapshot.cpu.take().unwrap();
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    assert_eq!(first.cores.len(), cpu_lines(&stat));
    assert!(first.cores.windows(2).all(|w| w[0].id < w[1].id));
    assert!(first.threads >= first.processes && first.processes > 0);
    assert!(first.load_average.iter().all(|l| *l >= 0.0));
    let btime: i64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first.boot_time_seconds, btime);
    for core in &first.cores {
        assert!(core.times.total() > 0.0);
        assert!(core.frequency_mhz.is_none_or(|f| f > 0.0));
    }
    collector.collect(&mut snapshot).unwrap();
    let second = snapshot.cpu.unwrap();
    assert!(second.total_times.total() >= first.total_times.total());
    assert!(second.context_switches_total >= first.context_switches_total);
    assert!(second.forks_total >= first.forks_total);
}
