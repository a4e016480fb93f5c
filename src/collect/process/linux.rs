//! Process trees from procfs: every `<procfs>/<pid>/stat`, parsed, linked by parent pid.

use std::collections::HashMap;
use std::io::ErrorKind;

use super::{descendants, ProcessError, TreeUsage};
use crate::collect::{read_optional, CollectError, HostPaths};

/// The fields of one `/proc/<pid>/stat` line that the tree needs (proc(5) numbering in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id (field 1).
    pub pid: u32,
    /// Command name (field 2), without its parentheses; may contain spaces and `)`.
    pub comm: String,
    /// State letter (field 3): `R`, `S`, `D`, `Z`, `I`, …
    pub state: char,
    /// Parent process id (field 4): links the tree.
    pub ppid: u32,
    /// User-mode and kernel-mode CPU time (field 14, 15), in clock ticks.
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    /// CPU time of children this process has waited for (field 16, 17), in clock ticks: keeps the tree's
    /// total from dropping when a child exits.
    pub cutime_ticks: u64,
    pub cstime_ticks: u64,
    /// Threads in the thread group (field 20).
    pub num_threads: u64,
    /// When the process started (field 22), clock ticks since boot.
    pub starttime_ticks: u64,
    /// Resident set size (field 24), in pages.
    pub rss_pages: u64,
}

impl ProcStat {
    /// Own CPU time plus reaped children's, in ticks.
    fn cpu_ticks(&self) -> u64 {
        self.utime_ticks + self.stime_ticks + self.cutime_ticks + self.cstime_ticks
    }
}

/// Parses one `/proc/<pid>/stat` line.
///
/// `comm` is written between parentheses but not escaped, so it may itself contain `) ` (a program
/// named `a) b`): the fields resume after the LAST `)` of the line, which the kernel guarantees is
/// the closing one because no later field can contain a parenthesis.
pub fn parse_stat(text: &str) -> Result<ProcStat, String> {
    let text = text.trim_end();
    let open = text.find('(').ok_or("no '(' before the command name")?;
    let close = text.rfind(')').ok_or("no ')' after the command name")?;
    if close < open {
        return Err("')' before '('".into());
    }
    let pid = text[..open]
        .trim()
        .parse()
        .map_err(|_| format!("bad pid {:?}", text[..open].trim()))?;
    let comm = text[open + 1..close].to_string();
    // fields[0] is field 3 (state) of proc(5).
    let fields: Vec<&str> = text[close + 1..].split_ascii_whitespace().collect();
    let field = |number: usize| -> Result<&str, String> {
        fields
            .get(number - 3)
            .copied()
            .ok_or_else(|| format!("only {} fields, no field {number}", fields.len() + 2))
    };
    let unsigned = |number: usize| -> Result<u64, String> {
        let value = field(number)?;
        value
            .parse()
            .map_err(|_| format!("field {number} is not a count: {value:?}"))
    };
    // cutime, cstime, num_threads and rss are signed `long`s in the kernel; a negative value does
    // not occur in practice and would mean "nothing" here.
    let signed = |number: usize| -> Result<u64, String> {
        let value = field(number)?;
        value
            .parse::<i64>()
            .map(|v| u64::try_from(v).unwrap_or(0))
            .map_err(|_| format!("field {number} is not a number: {value:?}"))
    };
    let state = field(3)?.chars().next().ok_or("empty state field")?;
    let ppid = unsigned(4)?;
    Ok(ProcStat {
        pid,
        comm,
        state,
        ppid: u32::try_from(ppid).map_err(|_| format!("ppid {ppid} out of range"))?,
        utime_ticks: unsigned(14)?,
        stime_ticks: unsigned(15)?,
        cutime_ticks: signed(16)?,
        cstime_ticks: signed(17)?,
        num_threads: signed(20)?,
        starttime_ticks: unsigned(22)?,
        rss_pages: signed(24)?,
    })
}

/// Parses `/proc/uptime`: seconds since boot (its first number).
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
}

/// Clock ticks per second and page size of this kernel (the units of stat's time and rss fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// USER_HZ (100 on every mainstream kernel), from the auxiliary vector.
    pub ticks_per_second: u64,
    /// Bytes per page.
    pub page_size: u64,
}

impl Units {
    /// The running kernel's units.
    pub fn current() -> Self {
        Self {
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            page_size: rustix::param::page_size() as u64,
        }
    }
}

/// Reads the tree rooted at `pid` under `paths.procfs` with this kernel's units.
pub fn read_tree(paths: &HostPaths, pid: u32) -> Result<TreeUsage, ProcessError> {
    read_tree_with(paths, pid, Units::current())
}

/// Reads the tree rooted at `pid`: the root's stat (a missing one is [`ProcessError::NotFound`]),
/// then every process's, to find the descendants. Processes that exit mid-scan are skipped.
pub fn read_tree_with(
    paths: &HostPaths,
    pid: u32,
    units: Units,
) -> Result<TreeUsage, ProcessError> {
    let root = read_stat(paths, pid)?.ok_or(ProcessError::NotFound { pid })?;
    let mut table = scan(paths)?;
    table.insert(pid, root.clone());
    let pids = descendants(pid, table.values().map(|s| (s.pid, s.ppid)));
    let members = || pids.iter().filter_map(|p| table.get(p));
    let ticks = units.ticks_per_second as f64;
    let started_after_boot = root.starttime_ticks as f64 / ticks;
    let root_age_seconds = read_optional(paths.proc("uptime"))
        .and_then(|text| parse_uptime(&text))
        .map(|uptime| (uptime - started_after_boot).max(0.0));
    Ok(TreeUsage {
        root: pid,
        cpu_seconds: members().map(ProcStat::cpu_ticks).sum::<u64>() as f64 / ticks,
        rss_bytes: members().map(|s| s.rss_pages).sum::<u64>() * units.page_size,
        threads: Some(members().map(|s| s.num_threads).sum()),
        root_age_seconds,
        root_start: root.starttime_ticks,
        pids,
    })
}

/// The stat of one process; `None` when it does not exist (or exited while being read).
fn read_stat(paths: &HostPaths, pid: u32) -> Result<Option<ProcStat>, CollectError> {
    let path = paths.proc(format!("{pid}/stat"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // ESRCH: the process exited between open and read.
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(3) => {
            return Ok(None);
        }
        Err(source) => return Err(CollectError::Io { path, source }),
    };
    parse_stat(&text)
        .map(Some)
        .map_err(|message| CollectError::parse(path, message))
}

/// Every process's stat, by pid. Unreadable or vanished entries are skipped: the table changes
/// while it is read, and one odd process must not hide the rest.
fn scan(paths: &HostPaths) -> Result<HashMap<u32, ProcStat>, CollectError> {
    let entries = std::fs::read_dir(&paths.procfs).map_err(|source| CollectError::Io {
        path: paths.procfs.clone(),
        source,
    })?;
    let mut table = HashMap::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        match read_stat(paths, pid) {
            Ok(Some(stat)) => {
                table.insert(pid, stat);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("skipping pid {pid}: {e}"),
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Captured on Linux 6.x x86_64: `cat /proc/self/stat`.
    const CAT: &str = "11571 (cat) R 11569 11569 8195 0 -1 4194304 102 0 0 0 0 0 0 0 20 0 1 0 73825 3133440 415 18446744073709551615 94892014809088 94892014828969 140736734836048 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94892014844976 94892014846592 94892961951744 140736734837473 140736734837493 140736734837493 140736734838763 0\n";
    /// Captured: a copy of `sleep` named `a) b)`.
    const NASTY: &str = "11606 (a) b)) S 11605 11602 8195 0 -1 4194304 132 0 0 0 0 0 0 0 20 0 1 0 74067 2990080 410 18446744073709551615 94894221328384 94894221346313 140720765595376 0 0 0 0 6 0 1 0 0 17 1 0 0 0 0 0 94894221360400 94894221361664 94895115956224 140720765598449 140720765598460 140720765598460 140720765599728 0\n";
    /// Captured: a copy of `sleep` named `x y z`.
    const SPACES: &str = "11615 (x y z) S 11614 11602 8195 0 -1 4194304 132 0 0 0 0 0 0 0 20 0 1 0 74099 2990080 416 18446744073709551615 94790649180160 94790649198089 140720739520656 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94790649212176 94790649213440 94791331139584 140720739523304 140720739523318 140720739523318 140720739524589 0\n";
    /// Captured: pid 1 of a small VM, with CPU time and 13 threads.
    const INIT: &str = "1 (process_api) S 0 0 0 0 -1 4194560 33714 1000188 0 752 51 188 2511 662 10 -10 13 0 22 44978176 3433 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";

    fn fixture() -> HostPaths {
        HostPaths::fixture(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/server"))
    }

    const UNITS: Units = Units {
        ticks_per_second: 100,
        page_size: 4096,
    };

    #[test]
    fn parses_captured_lines() {
        let cat = parse_stat(CAT).unwrap();
        assert_eq!(
            cat,
            ProcStat {
                pid: 11571,
                comm: "cat".into(),
                state: 'R',
                ppid: 11569,
                utime_ticks: 0,
                stime_ticks: 0,
                cutime_ticks: 0,
                cstime_ticks: 0,
                num_threads: 1,
                starttime_ticks: 73825,
                rss_pages: 415,
            }
        );
        let init = parse_stat(INIT).unwrap();
        assert_eq!(
            (init.pid, init.ppid, init.comm.as_str()),
            (1, 0, "process_api")
        );
        assert_eq!(
            (
                init.utime_ticks,
                init.stime_ticks,
                init.cutime_ticks,
                init.cstime_ticks
            ),
            (51, 188, 2511, 662)
        );
        assert_eq!(
            (init.num_threads, init.starttime_ticks, init.rss_pages),
            (13, 22, 3433)
        );
    }

    #[test]
    fn comm_may_contain_spaces_and_parentheses() {
        let nasty = parse_stat(NASTY).unwrap();
        assert_eq!(nasty.comm, "a) b)");
        assert_eq!(
            (nasty.state, nasty.ppid, nasty.rss_pages),
            ('S', 11605, 410)
        );
        let spaces = parse_stat(SPACES).unwrap();
        assert_eq!(spaces.comm, "x y z");
        assert_eq!((spaces.ppid, spaces.starttime_ticks), (11614, 74099));
        let synthetic =
            parse_stat("7 ((x) ) R 1 0 0 0 -1 0 0 0 0 0 5 6 7 8 20 0 3 0 9 0 11").unwrap();
        assert_eq!(synthetic.comm, "(x) ");
        assert_eq!(synthetic.cpu_ticks(), 26);
        assert_eq!((synthetic.num_threads, synthetic.rss_pages), (3, 11));
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for bad in [
            "",
            "12",
            "12 (x",
            "x) 12 (",
            "abc (x) S 1",
            "12 (x) S 1 0 0",
            "12 (x) S -1 0 0 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 0 6",
            "12 (x) S 1 0 0 0 -1 0 0 0 0 0 u 2 3 4 20 0 1 0 5 0 6",
        ] {
            assert!(parse_stat(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn uptime_is_the_first_number() {
        assert_eq!(parse_uptime("738.26 1213.33\n"), Some(738.26));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("-1 2"), None);
    }

    #[test]
    fn fixture_tree_sums_the_root_and_its_descendants() {
        let tree = read_tree_with(&fixture(), 2001, UNITS).unwrap();
        // 2001 (python3) → 2002 (pt_data_worker) → 2010 (zombie `x y z`); 2001 → 2003 (`a) b)`).
        // 2020 (nvidia-smi) is a sibling under bash, not part of the tree.
        assert_eq!(tree.pids, [2001, 2002, 2003, 2010]);
        let ticks = (41250 + 3075 + 12 + 3) + (8800 + 640) + (120 + 35) + (7 + 2);
        assert!((tree.cpu_seconds - f64::from(ticks) / 100.0).abs() < 1e-9);
        assert_eq!(tree.rss_bytes, (524288 + 262144 + 410) * 4096);
        assert_eq!(tree.threads, Some(12 + 4 + 1 + 1));
        assert_eq!(tree.root_start, 73825);
        assert_eq!(tree.root, 2001);
    }

    #[test]
    fn fixture_leaf_and_whole_machine() {
        let leaf = read_tree_with(&fixture(), 2003, UNITS).unwrap();
        assert_eq!(leaf.pids, [2003]);
        assert_eq!(leaf.threads, Some(1));
        let all = read_tree_with(&fixture(), 1, UNITS).unwrap();
        // Everything but the kernel threads (children of pid 2, not of 1).
        assert_eq!(all.pids, [1, 812, 3000, 1042, 2001, 2020, 2002, 2003, 2010]);
    }

    #[test]
    fn missing_root_is_not_found() {
        let err = read_tree_with(&fixture(), 4_000_000, UNITS).unwrap_err();
        assert!(
            matches!(err, ProcessError::NotFound { pid: 4_000_000 }),
            "{err}"
        );
        let nowhere = HostPaths::fixture("/nonexistent-fixture");
        assert!(matches!(
            read_tree_with(&nowhere, 1, UNITS),
            Err(ProcessError::NotFound { pid: 1 })
        ));
    }

    #[test]
    fn live_tree_contains_a_spawned_child() {
        // Burn some CPU so that our own time is at least a few clock ticks.
        let began = std::time::Instant::now();
        let mut x = 0u64;
        while began.elapsed() < std::time::Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id();
        let tree = read_tree(&HostPaths::default(), me);
        let child_tree = read_tree(&HostPaths::default(), child.id());
        let _ = child.kill();
        let _ = child.wait();
        let tree = tree.unwrap();
        assert_eq!(tree.pids[0], me);
        assert!(tree.pids.contains(&child.id()), "{:?}", tree.pids);
        // The test binary runs several threads and has touched memory and CPU.
        assert!(tree.threads.unwrap() >= 2);
        assert!(tree.rss_bytes > 1 << 20);
        assert!(tree.cpu_seconds > 0.0);
        let age = tree.root_age_seconds.unwrap();
        assert!((0.0..3600.0).contains(&age), "{age}");
        // The child's own tree is just itself: the walk goes down, never up.
        assert_eq!(child_tree.unwrap().pids, [child.id()]);
    }

    #[test]
    fn own_threads_match_status() {
        // Independent reading of the same source: /proc/self/status `Threads:`.
        let me = std::process::id();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let threads: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = read_stat(&HostPaths::default(), me).unwrap().unwrap();
        // Test threads may start or stop in between; allow a small drift.
        assert!(
            stat.num_threads.abs_diff(threads) <= 4,
            "{} vs {threads}",
            stat.num_threads
        );
    }
}
