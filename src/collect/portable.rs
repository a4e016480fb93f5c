//! TODO: the portable backend through sysinfo (stub).

use super::Collector;
use crate::config::CollectConfig;
use crate::model::SystemInfo;

/// The portable collectors.
pub fn collectors(_config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    Vec::new()
}

/// Static facts through sysinfo.
pub fn system_info() -> SystemInfo {
    SystemInfo {
        platform: std::env::consts::OS.into(),
        architecture: std::env::consts::ARCH.into(),
        ..SystemInfo::default()
    }
}
