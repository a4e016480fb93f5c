//! Short-term history of every number of the `/api/system/metrics` element: a raw tier at full
//! resolution (`--history.raw`, 1 h) and a per-minute tier of min, max and mean
//! (`--history.retention`, 7 d), compressed per column with pco, optionally kept on disk
//! (`--history.path`, [`log`]). Reads the element ([`crate::model::wire::NodeMetrics`]); the
//! servers read [`History::query`].
//!
//! - [`flatten`]: the element's numbers as dotted paths (`cpu.cores.3.usage`), without JSON.
//! - [`block`]: columns of a block of rows, open (plain) and sealed (pco).
//! - [`store`]: one node's series catalog and tiers.
//! - [`query`]: the question (`from`, `to`, `step`, `fields`, `agg`) and its answer.
//! - [`log`]: the on-disk log of sealed blocks and recent rows.
//!
//! Series are addressed by their path in the element; array items by position (`disks.2` is
//! the element's third disk). A device that disappears leaves its path without values (null)
//! from then on; one that appears gets a new series. The element's arrays are in a stable order
//! (cores by id, devices by name, accelerators by index), so positions move only when the set of
//! devices changes.

pub mod block;
pub mod flatten;
pub mod log;
pub mod query;
pub mod store;

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

pub use query::{Agg, Answer, Query, QueryError};

use crate::config::HistoryConfig;
use crate::model::wire::NodeMetrics;
use store::{Keep, Store};

/// Why history could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Flatten(#[from] flatten::FlattenError),
    #[error(transparent)]
    Block(#[from] block::BlockError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Log(#[from] log::LogError),
}

/// The input a user gave, cut short for an error message.
fn echo(text: &str) -> String {
    crate::model::echo(text).into_owned()
}

/// One node's history, shared by the sampler (appends) and the servers (queries).
pub struct History {
    /// The tiers. Appends take it for writing (microseconds), queries for reading.
    store: RwLock<Store>,
    /// The sampling interval, ms: the step of native-resolution answers.
    interval_ms: i64,
    /// The on-disk log, with `--history.path`.
    log: Option<Mutex<log::Log>>,
}

impl History {
    /// An in-memory history for samples every `interval`.
    pub fn new(config: &HistoryConfig, interval: Duration) -> History {
        History {
            store: RwLock::new(Store::new(keep(config))),
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            log: None,
        }
    }

    /// The history of `config`: in memory, or restored from and kept in `--history.path`. A
    /// log that cannot be opened is reported and history stays in memory; a damaged log is
    /// read up to the damage (reported once) — never a refusal to start.
    pub fn open(config: &HistoryConfig, interval: Duration) -> History {
        let mut history = History::new(config, interval);
        if let Some(dir) = &config.path {
            let store = history
                .store
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            match log::Log::open(dir, store) {
                Ok(log) => history.log = Some(Mutex::new(log)),
                Err(e) => tracing::warn!("history is kept in memory only: {e}"),
            }
        }
        history
    }

    /// Appends the sample of `element` (its own timestamp). Errors are logged: history is a
    /// side road, never a reason for the sample to fail.
    pub fn append(&self, element: &NodeMetrics<'_>) {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let sealed = match store.append(element.timestamp, element) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!("history: sample at {} not kept: {e}", element.timestamp);
                return;
            }
        };
        if let Some(log) = &self.log {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = log.after_append(&store, &sealed) {
                log.report(&e);
            }
        }
    }

    /// Answers `query` for this node, named `node_id` in the answer.
    pub fn query(&self, node_id: &str, query: &Query) -> Result<Answer, HistoryError> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        query::answer(&store, node_id, query, self.interval_ms)
    }

    /// Bytes of memory the history holds.
    pub fn heap_bytes(&self) -> usize {
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .heap_bytes()
    }

    /// Writes what is not on disk yet (a clean stop loses nothing).
    pub fn close(&self) {
        let Some(log) = &self.log else { return };
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = log.close(&mut store) {
            log.report(&e);
        }
    }

    /// Runs `f` on the store (benches and tests read its figures).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.store.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn keep(config: &HistoryConfig) -> Keep {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Keep {
        raw_ms: ms(config.raw),
        minute_ms: ms(config.retention),
    }
}
