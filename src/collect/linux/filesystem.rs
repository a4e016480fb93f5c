//! TODO: filesystem collector (stub).

use crate::collect::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::model::Snapshot;

pub struct FilesystemCollector {
    config: CollectConfig,
}

impl FilesystemCollector {
    pub fn new(config: &CollectConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, _snapshot: &mut Snapshot) -> Result<(), CollectError> {
        Err(CollectError::Other(format!(
            "not implemented ({:?})",
            self.config.paths
        )))
    }
}
