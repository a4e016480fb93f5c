//! CPU collector: per-mode times, counters and task counts from /proc/stat, /proc/loadavg and the
//! pid directories of /proc; per-CPU frequency from cpufreq (or /proc/cpuinfo) and topology from
//! /sys/devices/system/cpu.

use std::path::{Path, PathBuf};

use crate::collect::{
    read_number, read_optional, CollectError, Collector, HostPaths, KeptDir, KeptFile,
};
use crate::model::{CoreStats, CpuStats, CpuTimes, Snapshot};

/// Ticks per second of /proc/stat's times. The kernel's ABI fixes USER_HZ at 100 on every
/// architecture Linux supports, whatever the internal HZ.
const USER_HZ: f64 = 100.0;

/// Samples between two rescans of the static per-CPU facts (topology, frequency limits, which
/// CPUs have cpufreq). A change in the set of CPUs (hotplug) triggers a rescan at once.
const RESCAN_EVERY: u64 = 60;

/// What /proc/stat says, times already in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcStat {
    /// The `cpu` line: all CPUs summed.
    pub total: CpuTimes,
    /// The `cpuN` lines, in file order (ascending N); offline CPUs have no line.
    pub cores: Vec<(u32, CpuTimes)>,
    /// `ctxt`.
    pub context_switches: u64,
    /// The first number of `intr`: all interrupts serviced.
    pub interrupts: u64,
    /// `processes`: forks since boot.
    pub forks: u64,
    /// `procs_running`.
    pub procs_running: u64,
    /// `procs_blocked`.
    pub procs_blocked: u64,
    /// `btime`, Unix seconds.
    pub boot_time: i64,
}

/// Parses /proc/stat. Only the `cpu` line is required: the counter lines default to 0, since
/// some sandboxed kernels (gVisor, older OpenVZ) leave some of them out.
pub fn parse_stat(text: &str) -> Result<ProcStat, String> {
    let mut stat = ProcStat::default();
    let mut seen_total = false;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        match key {
            "cpu" => {
                stat.total = parse_times(fields).map_err(|e| format!("cpu line: {e}"))?;
                seen_total = true;
            }
            "ctxt" => stat.context_switches = first_number(key, fields)?,
            "intr" => stat.interrupts = first_number(key, fields)?,
            "processes" => stat.forks = first_number(key, fields)?,
            "procs_running" => stat.procs_running = first_number(key, fields)?,
            "procs_blocked" => stat.procs_blocked = first_number(key, fields)?,
            "btime" => stat.boot_time = first_number(key, fields)?,
            _ => {
                if let Some(id) = key.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) {
                    let times = parse_times(fields).map_err(|e| format!("{key} line: {e}"))?;
                    stat.cores.push((id, times));
                }
            }
        }
    }
    if !seen_total {
        return Err("no `cpu` line".into());
    }
    Ok(stat)
}

/// The first number after a /proc/stat key.
fn first_number<'a, T: std::str::FromStr>(
    key: &str,
    mut fields: impl Iterator<Item = &'a str>,
) -> Result<T, String> {
    let value = fields
        .next()
        .ok_or_else(|| format!("`{key}` has no value"))?;
    value
        .parse()
        .map_err(|_| format!("`{key}` value {value:?} is not a number"))
}

/// The tick counts of one cpu line. Kernels before 2.6.11 lack steal and before 2.6.33 lack
/// guest_nice, so only the first four (user nice system idle) are required.
fn parse_times<'a>(fields: impl Iterator<Item = &'a str>) -> Result<CpuTimes, String> {
    let mut ticks = [0.0_f64; 10];
    let mut count = 0;
    for (slot, field) in ticks.iter_mut().zip(fields) {
        let value: u64 = field
            .parse()
            .map_err(|_| format!("{field:?} is not a tick count"))?;
        *slot = value as f64 / USER_HZ;
        count += 1;
    }
    if count < 4 {
        return Err(format!("{count} fields, expected at least 4"));
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = ticks;
    Ok(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

/// What /proc/loadavg says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAvg {
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// The total of the `running/total` field: every scheduling entity (thread) on the host.
    pub tasks: u64,
    /// The last PID the kernel allocated (absent on kernels that do not print it).
    pub last_pid: Option<u64>,
}

/// Parses /proc/loadavg: `0.77 0.43 0.21 3/91 10731`.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let mut fields = text.split_ascii_whitespace();
    let mut load = [0.0; 3];
    for slot in &mut load {
        let field = fields.next().ok_or("fewer than 3 load averages")?;
        *slot = field
            .parse()
            .map_err(|_| format!("load average {field:?} is not a number"))?;
    }
    let tasks_field = fields.next().ok_or("no running/total field")?;
    let tasks = tasks_field
        .split_once('/')
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| format!("{tasks_field:?} is not running/total"))?;
    let last_pid = fields.next().and_then(|f| f.parse().ok());
    Ok(LoadAvg {
        load,
        tasks,
        last_pid,
    })
}

/// The `key : value` pairs of /proc/cpuinfo, both trimmed, in file order.
pub(super) fn cpuinfo_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once(':')?;
        Some((key.trim(), value.trim()))
    })
}

/// `cpu MHz` of each `processor` block of /proc/cpuinfo, as (processor, MHz). Architectures whose
/// cpuinfo has no `cpu MHz` (most ARM) give an empty list.
pub fn parse_cpuinfo_mhz(text: &str) -> Vec<(u32, f64)> {
    let mut processor = None;
    let mut out = Vec::new();
    for (key, value) in cpuinfo_fields(text) {
        match key {
            "processor" => processor = value.parse().ok(),
            "cpu MHz" => {
                if let (Some(id), Ok(mhz)) = (processor, value.parse()) {
                    out.push((id, mhz));
                }
            }
            _ => {}
        }
    }
    out
}

/// Parses a sysfs CPU list such as `0-3,8,10-11` (the format of `online`, `possible`).
pub(super) fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{part:?} is not a CPU number or range"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(format!("range {part:?} runs backwards"));
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(number(part)?),
        }
    }
    Ok(cpus)
}

/// `(core_id, physical_package_id)` of logical CPU `id` from sysfs topology; either is `None`
/// where the kernel does not say (some VMs and ARM boards).
pub(super) fn read_topology(paths: &HostPaths, id: u32) -> (Option<u32>, Option<u32>) {
    let dir = paths.sys(format!("devices/system/cpu/cpu{id}/topology"));
    (
        read_number(dir.join("core_id")),
        read_number(dir.join("physical_package_id")),
    )
}

/// A cpufreq value (kHz) as MHz.
fn read_khz_as_mhz(path: &Path) -> Option<f64> {
    read_number::<f64>(path).map(|khz| khz / 1000.0)
}

/// Facts about one logical CPU that change rarely, read at a scan rather than every sample.
#[derive(Debug, Clone, Default, PartialEq)]
struct CpuFacts {
    /// Logical CPU number.
    id: u32,
    /// Physical core within the package, to count cores and match `Core N` sensors.
    core_id: Option<u32>,
    /// Socket, to match `Package id N` sensors.
    package_id: Option<u32>,
    /// `cpufreq/scaling_cur_freq`, when this CPU has a cpufreq driver: read every sample.
    cur_freq: Option<PathBuf>,
    /// Governor limits; they move only when an administrator changes them.
    min_mhz: Option<f64>,
    max_mhz: Option<f64>,
    /// `cpu MHz` from /proc/cpuinfo, the fallback where cpufreq is absent (VMs). A VM's value is
    /// its fixed TSC rate, and cpuinfo is large (flags lines), so it is refreshed at scans only.
    cpuinfo_mhz: Option<f64>,
}

/// Reads CPU times, load, task counts and per-CPU frequency every sample.
pub struct CpuCollector {
    /// Where /proc and /sys are.
    paths: HostPaths,
    /// Static facts per online CPU, ascending id; rebuilt by [`Self::scan`].
    facts: Vec<CpuFacts>,
    /// Samples taken since the last scan, to rescan every [`RESCAN_EVERY`].
    since_scan: u64,
    /// The process count and the (last PID, task count) of /proc/loadavg it was counted at.
    /// While neither changes, no task was created (every fork or thread takes a new PID) and none
    /// exited (the task count would drop), so the count still holds and /proc is not listed
    /// again — listing it is the costliest read of a quiet host's sample.
    processes: Option<(u64, (u64, u64))>,
    /// <procfs>/stat, kept open.
    stat: KeptFile,
    /// <procfs>/loadavg, kept open.
    loadavg: KeptFile,
    /// <procfs>, kept open for the process count.
    procfs: KeptDir,
}

impl CpuCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            facts: Vec::new(),
            since_scan: 0,
            processes: None,
            stat: KeptFile::new(paths.proc("stat")),
            loadavg: KeptFile::new(paths.proc("loadavg")),
            procfs: KeptDir::new(&paths.procfs),
            paths,
        }
    }

    /// Rereads the static facts of the CPUs /proc/stat lists.
    fn scan(&mut self, ids: impl Iterator<Item = u32>) {
        let cpu_dir = self.paths.sys("devices/system/cpu");
        let mut facts: Vec<CpuFacts> = ids
            .map(|id| {
                let (core_id, package_id) = read_topology(&self.paths, id);
                let freq = cpu_dir.join(format!("cpu{id}/cpufreq"));
                let cur = freq.join("scaling_cur_freq");
                CpuFacts {
                    id,
                    core_id,
                    package_id,
                    cur_freq: cur.exists().then_some(cur),
                    min_mhz: read_khz_as_mhz(&freq.join("scaling_min_freq")),
                    max_mhz: read_khz_as_mhz(&freq.join("scaling_max_freq")),
                    cpuinfo_mhz: None,
                }
            })
            .collect();
        if facts.iter().any(|f| f.cur_freq.is_none()) {
            if let Some(cpuinfo) = read_optional(self.paths.proc("cpuinfo")) {
                for (id, mhz) in parse_cpuinfo_mhz(&cpuinfo) {
                    if let Some(f) = facts.iter_mut().find(|f| f.id == id) {
                        f.cpuinfo_mhz = Some(mhz);
                    }
                }
            }
        }
        self.facts = facts;
        self.since_scan = 0;
    }

    /// Number of processes: the numeric directories of /proc.
    fn count_processes(&mut self) -> Result<u64, CollectError> {
        let mut count = 0;
        let listed = self.procfs.list(|name, _| {
            if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
                count += 1;
            }
        });
        listed.map_err(|source| CollectError::Io {
            path: self.procfs.path().to_path_buf(),
            source,
        })?;
        Ok(count)
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let stat = parse_stat(self.stat.read()?);
        let stat = stat.map_err(|e| CollectError::parse(self.stat.path(), e))?;
        let load = parse_loadavg(self.loadavg.read()?);
        let load = load.map_err(|e| CollectError::parse(self.loadavg.path(), e))?;
        let key = load.last_pid.map(|pid| (pid, load.tasks));
        let processes = match self.processes {
            Some((count, at)) if key == Some(at) => count,
            _ => {
                let count = self.count_processes()?;
                self.processes = key.map(|at| (count, at));
                count
            }
        };

        let same_cpus = self.facts.len() == stat.cores.len()
            && self
                .facts
                .iter()
                .zip(&stat.cores)
                .all(|(f, (id, _))| f.id == *id);
        if !same_cpus || self.since_scan >= RESCAN_EVERY {
            self.scan(stat.cores.iter().map(|(id, _)| *id));
        }
        self.since_scan += 1;

        // After a scan, facts and stat.cores list the same ids in the same order.
        let cores = stat
            .cores
            .iter()
            .zip(&self.facts)
            .map(|(&(id, times), facts)| CoreStats {
                id,
                frequency_mhz: facts
                    .cur_freq
                    .as_deref()
                    .and_then(read_khz_as_mhz)
                    .or(facts.cpuinfo_mhz),
                min_frequency_mhz: facts.min_mhz,
                max_frequency_mhz: facts.max_mhz,
                core_id: facts.core_id,
                package_id: facts.package_id,
                times,
                ..CoreStats::default()
            })
            .collect();

        snapshot.cpu = Some(CpuStats {
            usage_percent: 0.0,
            cores,
            total_times: stat.total,
            load_average: load.load,
            processes,
            threads: load.tasks,
            procs_running: stat.procs_running,
            procs_blocked: stat.procs_blocked,
            context_switches_total: stat.context_switches,
            interrupts_total: stat.interrupts,
            forks_total: stat.forks,
            boot_time_seconds: stat.boot_time,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
