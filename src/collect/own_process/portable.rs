//! The monitor's own process through sysinfo (macOS, Windows).

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::{limit, Usage};
use crate::collect::CollectError;

/// Reads this process through one kept sysinfo `System`.
pub struct Reader {
    /// The process table, refreshed for our pid only; `None` where sysinfo cannot run.
    system: Option<System>,
    /// Our pid.
    pid: Option<Pid>,
}

impl Reader {
    pub fn new() -> Self {
        Self {
            system: System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    pub fn read(&mut self) -> Result<Usage, CollectError> {
        let unavailable = || CollectError::Other("sysinfo cannot read this process".into());
        let (Some(system), Some(pid)) = (self.system.as_mut(), self.pid) else {
            return Err(unavailable());
        };
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let process = system.process(pid).ok_or_else(unavailable)?;
        Ok(Usage {
            cpu_seconds: process.accumulated_cpu_time() as f64 / 1000.0,
            open_fds: process.open_files().map(|n| n as f64),
            max_fds: process
                .open_files_limit()
                .map(|n| limit(u64::try_from(n).ok())),
            resident_bytes: process.memory() as f64,
            virtual_bytes: Some(process.virtual_memory() as f64),
            virtual_max_bytes: None,
            start_time_seconds: process.start_time() as f64,
        })
    }
}
