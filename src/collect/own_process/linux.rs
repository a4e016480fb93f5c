//! The monitor's own process from /proc/self (stat kept open, fd directory listed) and
//! getrlimit(2), as the Go client reads it for itself.

use super::{limit, Usage};
use crate::collect::{read_optional, CollectError, KeptDir, KeptFile};

/// Ticks per second of /proc's times (USER_HZ, fixed at 100 by the kernel's ABI).
const USER_HZ: f64 = 100.0;

/// Fields of /proc/<pid>/stat after the command name (whose parentheses may hold anything):
/// index 0 is field 3, `state`.
const UTIME: usize = 14 - 3;
const STIME: usize = 15 - 3;
const STARTTIME: usize = 22 - 3;
const VSIZE: usize = 23 - 3;
const RSS: usize = 24 - 3;

/// What /proc/self/stat says that matters here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfStat {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// Seconds after boot the process started.
    pub start_after_boot_seconds: f64,
    pub virtual_bytes: u64,
    pub resident_pages: u64,
}

/// Parses /proc/<pid>/stat.
pub fn parse_self_stat(text: &str) -> Result<SelfStat, String> {
    let after_name = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or("no `)` after the command name")?;
    let fields: Vec<&str> = after_name.split_ascii_whitespace().collect();
    let number = |index: usize| -> Result<u64, String> {
        let field = fields
            .get(index)
            .ok_or_else(|| format!("{} fields, expected more than {index}", fields.len()))?;
        field
            .parse()
            .map_err(|_| format!("{field:?} is not a number"))
    };
    Ok(SelfStat {
        cpu_seconds: (number(UTIME)? + number(STIME)?) as f64 / USER_HZ,
        start_after_boot_seconds: number(STARTTIME)? as f64 / USER_HZ,
        virtual_bytes: number(VSIZE)?,
        resident_pages: number(RSS)?,
    })
}

/// Reads this process: /proc/self/stat kept open, the start time worked out once.
pub struct Reader {
    /// /proc/self/stat.
    stat: KeptFile,
    /// /proc/self/fd, listed for the open descriptors.
    fds: KeptDir,
    /// When the process started, Unix seconds (boot time + start after boot).
    start_time: Option<f64>,
}

impl Reader {
    pub fn new() -> Self {
        Self {
            stat: KeptFile::new("/proc/self/stat"),
            fds: KeptDir::new("/proc/self/fd"),
            start_time: None,
        }
    }

    pub fn read(&mut self) -> Result<Usage, CollectError> {
        let parsed = parse_self_stat(self.stat.read()?);
        let stat = parsed.map_err(|e| CollectError::parse(self.stat.path(), e))?;
        let start_time = match self.start_time {
            Some(start_time) => start_time,
            None => {
                let boot = read_optional("/proc/stat")
                    .as_deref()
                    .and_then(boot_time)
                    .ok_or_else(|| CollectError::Other("no btime in /proc/stat".into()))?;
                *self.start_time.insert(boot + stat.start_after_boot_seconds)
            }
        };
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let address_space = rustix::process::getrlimit(rustix::process::Resource::As);
        Ok(Usage {
            cpu_seconds: stat.cpu_seconds,
            open_fds: count_entries(&mut self.fds),
            max_fds: Some(limit(nofile.current)),
            resident_bytes: (stat.resident_pages * rustix::param::page_size() as u64) as f64,
            virtual_bytes: Some(stat.virtual_bytes as f64),
            virtual_max_bytes: Some(limit(address_space.current)),
            start_time_seconds: start_time,
        })
    }
}

/// `btime` of /proc/stat: boot time, Unix seconds.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// The number of entries of `dir` (the descriptor listing it included, as the Go client
/// counts); `None` if it cannot be listed.
fn count_entries(dir: &mut KeptDir) -> Option<f64> {
    let mut count = 0;
    dir.list(|_, _| count += 1).ok()?;
    Some(f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_tricky_command_name() {
        let line = "4242 (sys mon) (x) S 1 4242 4242 0 -1 4194560 2201 0 0 0 152 48 0 0 20 0 \
                    9 0 123456 1122443264 3719 18446744073709551615 1 1 0 0 0 0 0 4096 17475 \
                    0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_self_stat(line),
            Ok(SelfStat {
                cpu_seconds: 2.0,
                start_after_boot_seconds: 1234.56,
                virtual_bytes: 1_122_443_264,
                resident_pages: 3719,
            })
        );
        assert!(parse_self_stat("1 (x) S 1 2").is_err());
        assert_eq!(boot_time("cpu 1 2 3 4\nbtime 1700000000\n"), Some(1.7e9));
        assert!(parse_self_stat("no name").is_err());
    }
}
