//! node_exporter's `selinux` collector: `node_selinux_enabled`, and where SELinux is enabled its
//! configured and current modes (1 enforcing, 0 permissive, -1 disabled), with go-selinux's
//! rules: enabled when selinuxfs is mounted (`<sysfs>/fs/selinux`) and a policy is loaded (our
//! own context is not `kernel`); the current mode from selinuxfs' `enforce`; the configured one
//! from the host's /etc/selinux/config.

use crate::collect::{read_optional, CollectError, Collector, HostPaths};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Samples between two checks of whether SELinux is enabled (fixed from boot) and of its
/// configured mode (a file an administrator edits for the next boot).
const RESCAN_EVERY: u64 = 60;

/// go-selinux's modes.
const ENFORCING: f64 = 1.0;
const PERMISSIVE: f64 = 0.0;
const DISABLED: f64 = -1.0;

/// The `SELINUX=` mode of /etc/selinux/config; go-selinux's `DefaultEnforceMode`: disabled
/// unless it says enforcing or permissive.
pub fn config_mode(config: &str) -> f64 {
    let value = config.lines().find_map(|line| {
        let line = line.trim();
        let value = line.strip_prefix("SELINUX=")?;
        Some(value.trim().trim_matches('"'))
    });
    match value {
        Some("enforcing") => ENFORCING,
        Some("permissive") => PERMISSIVE,
        _ => DISABLED,
    }
}

/// What was found at the last scan.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// No selinuxfs or no policy.
    Disabled,
    /// Enabled, with the configured mode.
    Enabled { config_mode: f64 },
}

/// Reads SELinux's state: the current mode every sample where it is enabled, the rest at scans.
pub struct SelinuxCollector {
    /// Where /proc, /sys and / are.
    paths: HostPaths,
    /// The last scan's result.
    state: Option<State>,
    /// Samples since the last scan.
    since_scan: u64,
}

impl SelinuxCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            state: None,
            since_scan: 0,
        }
    }

    fn scan(&self) -> State {
        if !self.paths.sys("fs/selinux/enforce").exists() {
            return State::Disabled;
        }
        // Our own context: `kernel` while no policy is loaded. Unreadable counts as loaded, as
        // in go-selinux (whose context is then empty, not `kernel`).
        let context = ["thread-self/attr/current", "self/attr/current"]
            .iter()
            .find_map(|p| read_optional(self.paths.proc(p)));
        if context.is_some_and(|c| c.trim_end_matches('\0') == "kernel") {
            return State::Disabled;
        }
        let config = read_optional(self.paths.root("/etc/selinux/config")).unwrap_or_default();
        State::Enabled {
            config_mode: config_mode(&config),
        }
    }
}

impl Collector for SelinuxCollector {
    fn name(&self) -> &'static str {
        "selinux"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.since_scan += 1;
        let state = match self.state {
            Some(state) if self.since_scan < RESCAN_EVERY => state,
            _ => {
                self.since_scan = 0;
                *self.state.insert(self.scan())
            }
        };
        let families = &mut snapshot.kernel_families;
        let gauge = |name: &str, help: &str, value: f64| {
            KernelFamily::single(name, help, KernelMetricKind::Gauge, value)
        };
        let State::Enabled { config_mode } = state else {
            families.push(gauge(
                "node_selinux_enabled",
                "SELinux is enabled, 1 is true, 0 is false",
                0.0,
            ));
            return Ok(());
        };
        // go-selinux's EnforceMode: the number in `enforce`, -1 when unreadable.
        let current = read_optional(self.paths.sys("fs/selinux/enforce"))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(DISABLED);
        families.push(gauge(
            "node_selinux_enabled",
            "SELinux is enabled, 1 is true, 0 is false",
            1.0,
        ));
        families.push(gauge(
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            config_mode,
        ));
        families.push(gauge(
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            current,
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    fn read(paths: HostPaths) -> Vec<(String, f64)> {
        let mut snapshot = Snapshot::default();
        SelinuxCollector::new(paths).collect(&mut snapshot).unwrap();
        snapshot
            .kernel_families
            .iter()
            .map(|f| (f.name.to_string(), f.samples[0].value))
            .collect()
    }

    #[test]
    fn a_host_without_selinux_says_disabled_only() {
        assert_eq!(
            read(HostPaths::fixture(fixture("captured-vm"))),
            [("node_selinux_enabled".to_string(), 0.0)]
        );
    }

    #[test]
    fn the_server_enforces_as_configured() {
        assert_eq!(
            read(HostPaths::fixture(fixture("server"))),
            [
                ("node_selinux_enabled".to_string(), 1.0),
                ("node_selinux_config_mode".to_string(), 1.0),
                ("node_selinux_current_mode".to_string(), 1.0),
            ]
        );
    }

    #[test]
    fn no_policy_loaded_is_disabled_and_a_permissive_host_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let selinuxfs = dir.path().join("sys/fs/selinux");
        let attr = dir.path().join("proc/self/attr");
        let etc = dir.path().join("root/etc/selinux");
        for d in [&selinuxfs, &attr, &etc] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(selinuxfs.join("enforce"), "0").unwrap();
        std::fs::write(attr.join("current"), "kernel\0").unwrap();
        let paths = HostPaths::fixture(dir.path());
        assert_eq!(read(paths.clone()).len(), 1);
        std::fs::write(attr.join("current"), "system_u:system_r:unconfined_t:s0\0").unwrap();
        std::fs::write(
            etc.join("config"),
            "# x\nSELINUX=permissive\nSELINUXTYPE=targeted\n",
        )
        .unwrap();
        assert_eq!(
            read(paths),
            [
                ("node_selinux_enabled".to_string(), 1.0),
                ("node_selinux_config_mode".to_string(), 0.0),
                ("node_selinux_current_mode".to_string(), 0.0),
            ]
        );
    }

    #[test]
    fn config_modes_follow_go_selinux() {
        assert_eq!(config_mode("SELINUX=enforcing\n"), ENFORCING);
        assert_eq!(config_mode("SELINUX=\"permissive\"\n"), PERMISSIVE);
        assert_eq!(config_mode("SELINUX=disabled\n"), DISABLED);
        assert_eq!(config_mode(""), DISABLED);
    }
}
