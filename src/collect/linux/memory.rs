//! TODO: memory collector (stub).

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::Snapshot;

pub struct MemoryCollector {
    paths: HostPaths,
}

impl MemoryCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self { paths }
    }
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({})",
            self.paths.procfs.display()
        )))
    }
}
