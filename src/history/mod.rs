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

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use query::{Agg, Answer, Query, QueryError};

use crate::config::HistoryConfig;
use crate::model::wire::NodeMetrics;
use store::{Keep, Store};

/// With `--history.path`, rows not in a sealed block are written at most this long after they
/// were appended (what a SIGKILL may lose), and on a clean stop.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

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

/// What the worker thread is told.
enum Wake {
    /// A block filled: seal it.
    Full,
    /// Seal, write what the log lacks, and end.
    Stop,
}

/// One node's history, shared by the sampler (appends) and the servers (queries).
pub struct History {
    /// The tiers. Appends take it for writing (microseconds), queries for reading; the worker
    /// for reading while it compresses a full block, for writing to put the sealed one in.
    store: Arc<RwLock<Store>>,
    /// The sampling interval, ms: the step of native-resolution answers.
    interval_ms: i64,
    /// Wakes the worker thread; `None` when it could not be started (blocks are sealed inline).
    wake: Option<mpsc::Sender<Wake>>,
    /// The worker thread (sealing, and the on-disk log), joined by [`History::close`].
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl History {
    /// An in-memory history for samples every `interval`.
    pub fn new(config: &HistoryConfig, interval: Duration) -> History {
        History::start(Store::new(keep(config)), None, interval)
    }

    /// The history of `config`: in memory, or restored from and kept in `--history.path`. A
    /// damaged log is read up to the damage (reported once); a directory that cannot be
    /// created or written is an error (the operator asked for persistence).
    pub fn open(config: &HistoryConfig, interval: Duration) -> Result<History, log::LogError> {
        let mut store = Store::new(keep(config));
        let log = match &config.path {
            Some(dir) => Some(log::Log::open(dir, &mut store)?),
            None => None,
        };
        Ok(History::start(store, log, interval))
    }

    fn start(store: Store, log: Option<log::Log>, interval: Duration) -> History {
        let waiting = store.next_full().is_some();
        let store = Arc::new(RwLock::new(store));
        let (wake, woken) = mpsc::channel();
        let shared = Arc::clone(&store);
        let worker = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || work(&shared, log, &woken));
        let (wake, worker) = match worker {
            Ok(worker) => (Some(wake), Some(worker)),
            Err(e) => {
                tracing::warn!("history: no worker thread ({e}); blocks are sealed inline");
                (None, None)
            }
        };
        if waiting {
            if let Some(wake) = &wake {
                let _ = wake.send(Wake::Full);
            }
        }
        History {
            store,
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            wake,
            worker: Mutex::new(worker),
        }
    }

    /// Appends the sample of `element` (its own timestamp). Errors are logged: history is a
    /// side road, never a reason for the sample to fail. A block that fills is handed to the
    /// worker thread: the append itself is the flattening and one push per series. True when
    /// a block filled (handed to the worker, or sealed here when there is none).
    pub fn append(&self, element: &NodeMetrics<'_>) -> bool {
        self.append_at(element.timestamp, element)
    }

    /// Appends every number of `value` at `timestamp_ms` (what [`History::append`] does with an
    /// element; tests use smaller values); true when a block filled.
    pub fn append_at<T: serde::Serialize + ?Sized>(&self, timestamp_ms: i64, value: &T) -> bool {
        let mut store = write(&self.store);
        let filled = match store.append(timestamp_ms, value) {
            Ok(filled) => filled,
            Err(e) => {
                tracing::warn!("history: sample at {timestamp_ms} not kept: {e}");
                return false;
            }
        };
        if !filled {
            return false;
        }
        match &self.wake {
            Some(wake) if wake.send(Wake::Full).is_ok() => {}
            _ => {
                if let Err(e) = store.seal_full() {
                    tracing::warn!("history: a block could not be sealed: {e}");
                }
            }
        }
        true
    }

    /// Answers `query` for this node, named `node_id` in the answer.
    pub fn query(&self, node_id: &str, query: &Query) -> Result<Answer, HistoryError> {
        query::answer(&read(&self.store), node_id, query, self.interval_ms)
    }

    /// Bytes of memory the history holds.
    pub fn heap_bytes(&self) -> usize {
        read(&self.store).heap_bytes()
    }

    /// Stops the worker after it sealed the full blocks and wrote what the on-disk log lacks (a
    /// clean stop loses nothing). Later appends are kept in memory and sealed inline.
    pub fn close(&self) {
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(worker) = worker else { return };
        if let Some(wake) = &self.wake {
            let _ = wake.send(Wake::Stop);
        }
        if worker.join().is_err() {
            tracing::warn!("history: the worker thread panicked");
        }
    }

    /// Runs `f` on the store (benches and tests read its figures).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&read(&self.store))
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.close();
    }
}

fn read(store: &RwLock<Store>) -> RwLockReadGuard<'_, Store> {
    store.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(store: &RwLock<Store>) -> RwLockWriteGuard<'_, Store> {
    store.write().unwrap_or_else(PoisonError::into_inner)
}

/// The worker thread: seals full blocks as they come (compressing without holding the store),
/// and keeps the on-disk log: sealed blocks as they are sealed, the other rows every
/// [`FLUSH_EVERY`] and at the stop.
fn work(store: &RwLock<Store>, mut log: Option<log::Log>, woken: &mpsc::Receiver<Wake>) {
    let mut next_flush = Instant::now() + FLUSH_EVERY;
    loop {
        let stop = match &log {
            Some(_) => {
                match woken.recv_timeout(next_flush.saturating_duration_since(Instant::now())) {
                    Ok(Wake::Full) | Err(RecvTimeoutError::Timeout) => false,
                    Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => true,
                }
            }
            None => !matches!(woken.recv(), Ok(Wake::Full)),
        };
        seal_waiting(store, log.as_mut());
        if let Some(log) = &mut log {
            if stop || Instant::now() >= next_flush {
                let batch = log.prepare(&read(store), &[]);
                if let Err(e) = log.write(batch, None) {
                    log.report(&e);
                }
                next_flush = Instant::now() + FLUSH_EVERY;
            }
            if stop {
                log.sync();
            }
        }
        if stop {
            return;
        }
    }
}

/// Seals every full block, oldest first; with a log, writes each and rewrites its tier's tail.
fn seal_waiting(store: &RwLock<Store>, mut log: Option<&mut log::Log>) {
    loop {
        let Some((name, block)) = read(store).next_full() else {
            return;
        };
        let sealed = match block.seal() {
            Ok(sealed) => sealed,
            Err(e) => {
                // Not reachable with blocks built in memory; dropping the block beats retrying
                // it forever.
                tracing::warn!("history: a block could not be sealed, its rows are lost: {e}");
                None
            }
        };
        let Some(sealed) = sealed else {
            write(store).drop_full(name, &block);
            continue;
        };
        let record = log.as_ref().map(|_| log::encode_block(&sealed));
        let mut guard = write(store);
        let last_ms = sealed.last_ms;
        if !guard.install(name, &block, sealed) {
            continue;
        }
        let Some(log) = log.as_deref_mut() else {
            continue;
        };
        let batch = log.prepare(&guard, &[name]);
        drop(guard);
        let written = match &record {
            Some(record) => log.write(batch, Some((name, last_ms, record))),
            None => Ok(()),
        };
        if let Err(e) = written {
            log.report(&e);
        }
    }
}

fn keep(config: &HistoryConfig) -> Keep {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Keep {
        raw_ms: ms(config.raw),
        minute_ms: ms(config.retention),
    }
}

#[cfg(test)]
mod tests {
    use super::store::{Keep, Store, RAW_BLOCK_ROWS};
    use super::*;

    #[derive(serde::Serialize)]
    struct Sample {
        a: f64,
        b: u64,
    }

    #[test]
    fn a_query_sees_every_row_before_during_and_after_sealing() {
        let mut store = Store::new(Keep {
            raw_ms: 3_600_000,
            minute_ms: 86_400_000,
        });
        let rows = RAW_BLOCK_ROWS * 2 + 7;
        let mut filled = 0;
        for t in 0..rows {
            let sample = Sample {
                a: t as f64 / 3.0,
                b: t as u64 * 1001,
            };
            filled += usize::from(
                store
                    .append(1_000 + t as i64 * 1000, &sample)
                    .expect("append"),
            );
        }
        assert!(filled >= 2);
        // Two full blocks wait to be sealed; nothing is sealed yet.
        assert_eq!(store.raw.full.len(), 2);
        assert!(store.raw.sealed.is_empty());
        let query = Query::new(
            Some(0),
            Some(i64::MAX / 2),
            Some("1ms"),
            Some("a,b"),
            None,
            0,
        );
        let query = Query {
            step_ms: None,
            ..query.expect("query")
        };
        let check = |store: &Store| {
            let answer = query::answer(
                store,
                "n",
                &Query {
                    to: 1_000 + rows as i64 * 1000,
                    ..query.clone()
                },
                1000,
            )
            .expect("answer");
            assert!(answer.native);
            assert_eq!(answer.timestamps.len(), rows);
            for (r, &t) in answer.timestamps.iter().enumerate() {
                assert_eq!(t, 1_000 + r as i64 * 1000);
                assert_eq!(
                    answer.series[0].1[r],
                    Some(flatten::Number::Float(r as f64 / 3.0))
                );
                assert_eq!(
                    answer.series[1].1[r],
                    Some(flatten::Number::Unsigned(r as u64 * 1001))
                );
            }
            answer
        };
        let before = check(&store);
        // The worker's steps: the oldest full block compressed while queries still read it as
        // it is, then put in its place.
        let (name, block) = store.next_full().expect("a full block");
        let sealed = block.seal().expect("seal").expect("rows");
        assert_eq!(check(&store), before);
        assert!(store.install(name, &block, sealed));
        assert_eq!((store.raw.sealed.len(), store.raw.full.len()), (1, 1));
        assert_eq!(check(&store), before);
        // A block already gone (expired) is not installed twice.
        let again = block.seal().expect("seal").expect("rows");
        assert!(!store.install(name, &block, again));
        store.seal_full().expect("seal");
        assert_eq!((store.raw.sealed.len(), store.raw.full.len()), (2, 0));
        assert_eq!(check(&store), before);
    }

    #[test]
    fn the_worker_seals_in_the_background() {
        let config = HistoryConfig {
            path: None,
            ..HistoryConfig::default()
        };
        let history = History::new(&config, Duration::from_secs(1));
        for t in 0..(RAW_BLOCK_ROWS * 3) as i64 {
            history.append_at(1_000 + t * 1000, &Sample { a: t as f64, b: 1 });
        }
        // Closing waits for the worker, which seals what is full.
        history.close();
        history.with_store(|store| {
            assert_eq!(store.raw.full.len(), 0);
            assert_eq!(store.raw.sealed.len(), 3);
            assert_eq!(store.raw.rows(), RAW_BLOCK_ROWS * 3);
        });
    }
}
