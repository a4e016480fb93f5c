//! TODO: cpu collector (stub).

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::Snapshot;

pub struct CpuCollector {
    paths: HostPaths,
}

impl CpuCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self { paths }
    }
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({})",
            self.paths.procfs.display()
        )))
    }
}
