//! node_exporter's `uname` collector: `node_uname_info`, the host's uname(2) fields as labels,
//! read from /proc/sys/kernel (ostype, osrelease, version, hostname, domainname, arch) so that a
//! container reading the host's /proc and the fixture trees see the host's values.

use crate::collect::{read_optional, CollectError, Collector, HostPaths};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// Samples between two readings: the fields are fixed while the kernel runs, but for the host
/// name, which an administrator may change.
const REREAD_EVERY: u64 = 60;

/// The uname(2) fields, in node_exporter's label order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub domainname: String,
    pub machine: String,
    pub nodename: String,
    pub release: String,
    pub sysname: String,
    pub version: String,
}

impl Uname {
    /// The fields under /proc/sys/kernel of `paths`. `machine` comes from `kernel/arch` (Linux
    /// 6.1+), else from this process's own uname(2): the kernel a container runs on is the host's.
    /// A missing `ostype`, `osrelease` or `hostname` means this is no Linux procfs: an error.
    pub fn read(paths: &HostPaths) -> Result<Self, CollectError> {
        let kernel = |name: &str| read_optional(paths.proc(format!("sys/kernel/{name}")));
        let required = |name: &str| {
            kernel(name).ok_or_else(|| {
                CollectError::Other(format!(
                    "{} is missing or unreadable",
                    paths.proc(format!("sys/kernel/{name}")).display()
                ))
            })
        };
        Ok(Self {
            sysname: required("ostype")?,
            release: required("osrelease")?,
            nodename: required("hostname")?,
            version: kernel("version").unwrap_or_default(),
            domainname: kernel("domainname").unwrap_or_default(),
            machine: kernel("arch").unwrap_or_else(own_machine),
        })
    }

    /// The `node_uname_info` family.
    pub fn family(&self) -> KernelFamily {
        KernelFamily::new(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            KernelMetricKind::Gauge,
        )
        .with(
            &[
                ("domainname", &self.domainname),
                ("machine", &self.machine),
                ("nodename", &self.nodename),
                ("release", &self.release),
                ("sysname", &self.sysname),
                ("version", &self.version),
            ],
            1.0,
        )
    }
}

/// uname(2)'s machine of the kernel this process runs on.
fn own_machine() -> String {
    rustix::system::uname()
        .machine()
        .to_string_lossy()
        .into_owned()
}

/// Reads the uname fields at start and every [`REREAD_EVERY`] samples.
pub struct UnameCollector {
    /// Where /proc is.
    paths: HostPaths,
    /// The family of the last reading.
    family: Option<KernelFamily>,
    /// Samples since the last reading.
    since_read: u64,
}

impl UnameCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            family: None,
            since_read: 0,
        }
    }
}

impl Collector for UnameCollector {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.since_read += 1;
        let family = match self.family.as_ref() {
            Some(family) if self.since_read < REREAD_EVERY => family,
            _ => {
                self.family = None;
                self.since_read = 0;
                self.family.insert(Uname::read(&self.paths)?.family())
            }
        };
        snapshot.kernel_families.push(family.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::linux::fixture;

    #[test]
    fn the_captured_vm_reads_as_node_exporter_printed_it() {
        let uname = Uname::read(&HostPaths::fixture(fixture("captured-vm"))).unwrap();
        // node_exporter 1.5 on the same VM: node_uname_info{domainname="(none)",
        // machine="x86_64",nodename="vm",release=…,sysname="Linux",version="#1 SMP …"}.
        assert_eq!(uname.domainname, "(none)");
        assert_eq!(uname.machine, "x86_64");
        assert_eq!(uname.nodename, "vm");
        assert_eq!(uname.sysname, "Linux");
        assert_eq!(uname.version, "#1 SMP PREEMPT_DYNAMIC @0");
        assert!(uname.release.starts_with("6.18."));
    }

    #[test]
    fn machine_falls_back_to_our_own_kernel_and_a_tree_without_procfs_fails() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("proc/sys/kernel");
        std::fs::create_dir_all(&kernel).unwrap();
        let paths = HostPaths::fixture(dir.path());
        assert!(Uname::read(&paths).is_err());
        for (file, text) in [
            ("ostype", "Linux\n"),
            ("osrelease", "5.4.0\n"),
            ("hostname", "h\n"),
        ] {
            std::fs::write(kernel.join(file), text).unwrap();
        }
        let uname = Uname::read(&paths).unwrap();
        assert_eq!(uname.machine, own_machine());
        assert_eq!(
            (uname.version.as_str(), uname.domainname.as_str()),
            ("", "")
        );
    }

    #[test]
    fn the_family_is_read_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("proc/sys/kernel");
        std::fs::create_dir_all(&kernel).unwrap();
        for (file, text) in [
            ("ostype", "Linux"),
            ("osrelease", "5.4.0"),
            ("hostname", "a"),
        ] {
            std::fs::write(kernel.join(file), text).unwrap();
        }
        let mut collector = UnameCollector::new(HostPaths::fixture(dir.path()));
        let mut first = Snapshot::default();
        collector.collect(&mut first).unwrap();
        std::fs::write(kernel.join("hostname"), "b").unwrap();
        let mut second = Snapshot::default();
        collector.collect(&mut second).unwrap();
        assert_eq!(first.kernel_families, second.kernel_families);
        assert_eq!(first.kernel_families[0].samples[0].labels[2].1, "a");
    }
}
