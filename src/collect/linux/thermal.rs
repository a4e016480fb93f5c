//! TODO: thermal collector (stub).

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::Snapshot;

pub struct ThermalCollector {
    paths: HostPaths,
}

impl ThermalCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self { paths }
    }
}

impl Collector for ThermalCollector {
    fn name(&self) -> &'static str {
        "thermal"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({})",
            self.paths.procfs.display()
        )))
    }
}
