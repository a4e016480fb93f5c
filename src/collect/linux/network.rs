//! TODO: network collector (stub).

use regex_lite::Regex;

use crate::collect::{CollectError, Collector, HostPaths};
use crate::model::Snapshot;

pub struct NetworkCollector {
    paths: HostPaths,
    exclude: Regex,
}

impl NetworkCollector {
    pub fn new(paths: HostPaths, exclude: Regex) -> Self {
        Self { paths, exclude }
    }
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({} {})",
            self.paths.procfs.display(),
            self.exclude
        )))
    }
}
