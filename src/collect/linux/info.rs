//! TODO: static system facts (stub).

use crate::collect::HostPaths;
use crate::model::SystemInfo;

/// Static facts about the host behind `paths`.
pub fn system_info(paths: &HostPaths) -> SystemInfo {
    let _ = paths;
    SystemInfo {
        platform: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        ..SystemInfo::default()
    }
}
