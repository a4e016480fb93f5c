//! The on-disk log of a node's history (`--history.path`).

use std::path::Path;

use super::block::SealedBlock;
use super::store::{Store, TierName};

type SealedBlockRef = (TierName, SealedBlock);

/// Why the log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("history log {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The log.
pub struct Log;

impl Log {
    /// Opens the log in `dir`, restoring `store` from it.
    pub fn open(dir: &Path, _store: &mut Store) -> Result<Log, LogError> {
        Err(LogError::Io {
            path: dir.display().to_string(),
            source: std::io::Error::other("not yet"),
        })
    }

    /// After an append.
    pub fn after_append(
        &mut self,
        _store: &Store,
        _sealed: &[SealedBlockRef],
    ) -> Result<(), LogError> {
        Ok(())
    }

    /// On a clean stop.
    pub fn close(&mut self, _store: &mut Store) -> Result<(), LogError> {
        Ok(())
    }

    /// Reports an error.
    pub fn report(&mut self, e: &LogError) {
        tracing::warn!("{e}");
    }
}
