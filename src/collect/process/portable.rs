//! Process trees through sysinfo: macOS, Windows, and `--backend portable` on Linux.

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, ThreadKind};

use super::{descendants, ProcessError, TreeUsage};
use crate::collect::CollectError;

/// Reads the tree rooted at `pid` from the whole process table.
pub fn read_tree(pid: u32) -> Result<TreeUsage, ProcessError> {
    let mut system = System::new().map_err(|e| CollectError::Other(format!("sysinfo: {e}")))?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::All,
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    // On Linux sysinfo lists threads as processes of their own; they are counted through their
    // process's `tasks()` instead.
    let processes: Vec<_> = system
        .processes()
        .values()
        .filter(|p| p.thread_kind() != Some(ThreadKind::Userland))
        .collect();
    let root = system
        .process(Pid::from_u32(pid))
        .filter(|p| p.thread_kind() != Some(ThreadKind::Userland))
        .ok_or(ProcessError::NotFound { pid })?;
    let pids = descendants(
        pid,
        processes
            .iter()
            .filter_map(|p| Some((p.pid().as_u32(), p.parent()?.as_u32()))),
    );
    let members: Vec<_> = pids
        .iter()
        .filter_map(|p| system.process(Pid::from_u32(*p)))
        .collect();
    // `tasks()` lists the threads besides the main one, and only on Linux.
    let threads = members
        .iter()
        .map(|p| p.tasks().map(|t| t.len() as u64 + 1))
        .sum::<Option<u64>>();
    Ok(TreeUsage {
        root: pid,
        cpu_seconds: members
            .iter()
            .map(|p| p.accumulated_cpu_time())
            .sum::<u64>() as f64
            / 1000.0,
        rss_bytes: members.iter().map(|p| p.memory()).sum(),
        threads,
        root_age_seconds: Some(root.run_time() as f64),
        root_start: root.start_time(),
        pids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_tree_contains_a_spawned_child() {
        let mut child = std::process::Command::new(if cfg!(windows) { "ping" } else { "sleep" })
            .args(if cfg!(windows) {
                &["-n", "30", "127.0.0.1"][..]
            } else {
                &["30"][..]
            })
            .spawn()
            .expect("spawn a child");
        let me = std::process::id();
        let tree = read_tree(me);
        let _ = child.kill();
        let _ = child.wait();
        let tree = tree.unwrap();
        assert_eq!(tree.pids[0], me);
        assert!(tree.pids.contains(&child.id()), "{:?}", tree.pids);
        assert!(tree.rss_bytes > 1 << 20);
        assert!(tree.root_age_seconds.is_some());
        if cfg!(target_os = "linux") {
            assert!(tree.threads.unwrap() >= 2);
        }
    }

    #[test]
    fn missing_pid_is_not_found() {
        assert!(matches!(
            read_tree(u32::MAX - 7),
            Err(ProcessError::NotFound { .. })
        ));
    }
}
