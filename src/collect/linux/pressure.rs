//! TODO: pressure collector (stub).

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::Snapshot;

pub struct PressureCollector {
    paths: HostPaths,
}

impl PressureCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self { paths }
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({})",
            self.paths.procfs.display()
        )))
    }
}
