//! The Linux backend: one collector per domain, each reading the host's /proc and /sys through
//! [`HostPaths`]. Parsers are pure functions over `&str`, tested on captured files.

mod arp;
mod conntrack;
mod cpu;
mod disk;
mod entropy;
mod ffi;
mod filefd;
mod filesystem;
mod info;
mod memory;
mod netclass;
mod netstat;
mod network;
mod os;
mod pressure;
mod selinux;
mod sockstat;
mod softnet;
mod thermal;
mod time;
mod timex;
mod udp_queues;
mod uname;
mod vmstat;

pub use info::system_info;

use super::{Collector, HostPaths};
use crate::config::CollectConfig;

/// A name pattern (device or interface exclude) with its answers remembered: the same names come
/// back every sample, and a regex-lite match costs more than a hash lookup.
#[derive(Debug, Clone)]
pub(crate) struct NameFilter {
    /// The pattern.
    pattern: regex_lite::Regex,
    /// Names seen so far and whether they matched; cleared when it grows past
    /// [`NameFilter::MAX_REMEMBERED`] (hosts that churn through veth names).
    seen: std::collections::HashMap<String, bool>,
}

impl NameFilter {
    const MAX_REMEMBERED: usize = 4096;

    pub(crate) fn new(pattern: regex_lite::Regex) -> Self {
        Self {
            pattern,
            seen: std::collections::HashMap::new(),
        }
    }

    /// Whether `name` matches the pattern.
    pub(crate) fn is_match(&mut self, name: &str) -> bool {
        if let Some(&matched) = self.seen.get(name) {
            return matched;
        }
        if self.seen.len() >= Self::MAX_REMEMBERED {
            self.seen.clear();
        }
        let matched = self.pattern.is_match(name);
        self.seen.insert(name.to_string(), matched);
        matched
    }
}

/// Interfaces whose per-sample sysfs files a collector keeps open (netclass: `operstate` and
/// `carrier_changes`; network: `rx_nohandler`). A kept file saves about 10 µs a read but holds a
/// descriptor and a page of kernel memory, so on a host with hundreds of veths the interfaces
/// beyond these are read by opening their files each time; the three files of 24 interfaces stay
/// well within the descriptors kept for the sampler (`serve::limits::FD_RESERVE`).
pub(crate) const KEPT_INTERFACES: usize = 24;

/// `tests/fixtures/<name>`: a captured or hand-made host tree, for the collectors' tests.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every Linux collector, in the order they run each sample.
pub fn collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let paths: &HostPaths = &config.paths;
    vec![
        Box::new(cpu::CpuCollector::new(paths.clone())),
        Box::new(thermal::ThermalCollector::new(paths.clone())),
        Box::new(memory::MemoryCollector::new(paths.clone())),
        Box::new(pressure::PressureCollector::new(paths.clone())),
        Box::new(disk::DiskCollector::new(
            paths.clone(),
            config.disk_device_exclude.clone(),
        )),
        Box::new(filesystem::FilesystemCollector::new(config)),
        Box::new(network::NetworkCollector::new(
            paths.clone(),
            config.netdev_aggregate_exclude.clone(),
            config.tcp_scan_interval,
        )),
        Box::new(uname::UnameCollector::new(paths.clone())),
        Box::new(os::OsCollector::new(paths.clone())),
        Box::new(time::TimeCollector::new(paths.clone())),
        Box::new(timex::TimexCollector),
        Box::new(vmstat::VmstatCollector::new(
            paths,
            config.vmstat_fields.clone(),
        )),
        Box::new(filefd::FilefdCollector::new(paths)),
        Box::new(entropy::EntropyCollector::new(paths)),
        Box::new(selinux::SelinuxCollector::new(paths.clone())),
        Box::new(netclass::NetClassCollector::new(paths)),
        Box::new(netstat::NetstatCollector::new(
            paths,
            config.netstat_fields.clone(),
        )),
        Box::new(sockstat::SockstatCollector::new(paths)),
        Box::new(softnet::SoftnetCollector::new(paths)),
        Box::new(udp_queues::UdpQueuesCollector::new(
            paths,
            config.udp_queues_scan_interval,
        )),
        Box::new(conntrack::ConntrackCollector::new(paths)),
        Box::new(arp::ArpCollector::new(paths)),
    ]
}

#[cfg(test)]
mod name_filter_tests {
    use super::NameFilter;

    #[test]
    fn remembers_answers_and_stays_bounded() {
        let mut filter = NameFilter::new(regex_lite::Regex::new("^veth").unwrap());
        assert!(filter.is_match("veth1"));
        assert!(!filter.is_match("eth0"));
        assert!(filter.is_match("veth1"));
        for i in 0..(NameFilter::MAX_REMEMBERED * 2) {
            assert!(filter.is_match(&format!("veth{i}")));
        }
        assert!(filter.seen.len() <= NameFilter::MAX_REMEMBERED);
        assert!(!filter.is_match("eth0"));
    }
}
