//! The Linux backend: one collector per domain, each reading the host's /proc and /sys through
//! [`HostPaths`]. Parsers are pure functions over `&str`, tested on captured files.

mod cpu;
mod disk;
mod filesystem;
mod info;
mod memory;
mod network;
mod pressure;
mod thermal;

pub use info::system_info;

use super::{Collector, HostPaths};
use crate::config::CollectConfig;

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
    ]
}
