//! One node's history: the catalog of series (a stable id per dotted path), the raw tier (every
//! sample, for `--history.raw`) and the minute tier (per minute: min, max, mean and count of
//! each series, for `--history.retention`). Each tier is a queue of sealed blocks and one open
//! block; blocks leave a tier whole, when their last row is older than the tier keeps.
//!
//! A block that fills is not compressed on the append path: it moves to the tier's `full` queue
//! (still read as an open block by queries) and the history's worker thread seals it and puts
//! the sealed block in its place ([`Store::next_full`], [`Store::install`]); [`Store::seal_full`]
//! does the same inline (tests, benches).
//!
//! Column ids: in the raw tier, the series id; in the minute tier, `4 * id + k` with `k` one
//! of [`MIN`], [`MAX`], [`MEAN`], [`COUNT`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::block::{BlockError, Kind, OpenBlock, SealedBlock};
use super::flatten::{Leaves, Number};

/// Minute-tier column offsets of one series.
pub const MIN: usize = 0;
/// See [`MIN`].
pub const MAX: usize = 1;
/// See [`MIN`]; a float (the mean of an integer field is not an integer).
pub const MEAN: usize = 2;
/// See [`MIN`]; the number of samples the minute held (to weigh means across minutes).
pub const COUNT: usize = 3;
/// Columns per series in the minute tier.
pub const MINUTE_COLUMNS: usize = 4;

/// The most series one node keeps: bounds memory whatever a plugin or a driver reports (a
/// 64-core, 8-GPU host has about 1,000). Paths beyond it are not kept (warned once).
pub const MAX_SERIES: usize = 16_384;

/// Rows per raw block: 4 minutes at 1 s. Larger blocks compress better (on the recorded trace
/// 1.83 bytes per value at 240 rows, 2.02 at 120: pco's per-column header and bins are paid
/// per block); smaller ones keep the uncompressed open block small (240 rows of 727 series is
/// 1.4 MB at its fullest). Measured in bench/RESULTS.md.
pub const RAW_BLOCK_ROWS: usize = 240;

/// Rows per minute block: 2 hours.
pub const MINUTE_BLOCK_ROWS: usize = 120;

/// The element's field that is the time of the row.
pub const TIME_FIELD: &str = "timestamp";

/// A minute, in ms.
pub const MINUTE_MS: i64 = 60_000;

/// One series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Dotted path into the element (`cpu.cores.3.usage`).
    pub path: Box<str>,
    /// How its values are kept (set by its first value).
    pub kind: Kind,
}

/// The series known, and the order the last sample listed them in.
#[derive(Debug, Default)]
pub struct Catalog {
    /// By id.
    pub series: Vec<Series>,
    /// Id of each path.
    by_path: HashMap<Box<str>, u32>,
    /// The ids in the order the last sample produced them: the next sample of the same shape
    /// finds each id by comparing its path with the one expected at that position, without
    /// hashing.
    order: Vec<u32>,
    /// Set once a path was refused for [`MAX_SERIES`], so that it is warned once.
    full_warned: bool,
}

impl Catalog {
    /// The id of `path`, if known.
    pub fn id(&self, path: &str) -> Option<u32> {
        self.by_path.get(path).copied()
    }

    /// Adds a series (from the on-disk log); returns its id, or None when full.
    pub fn add(&mut self, path: &str, kind: Kind) -> Option<u32> {
        if let Some(id) = self.id(path) {
            return Some(id);
        }
        if self.series.len() >= MAX_SERIES {
            if !self.full_warned {
                self.full_warned = true;
                tracing::warn!(
                    "history keeps at most {MAX_SERIES} series per node; {path} and later new \
                     fields are not kept"
                );
            }
            return None;
        }
        let id = self.series.len() as u32;
        self.series.push(Series {
            path: path.into(),
            kind,
        });
        self.by_path.insert(path.into(), id);
        Some(id)
    }

    fn heap_bytes(&self) -> usize {
        let paths: usize = self.series.iter().map(|s| s.path.len()).sum();
        self.series.capacity() * std::mem::size_of::<Series>()
            + paths * 2
            + self.by_path.capacity() * (std::mem::size_of::<(Box<str>, u32)>() + 8)
            + self.order.capacity() * 4
    }
}

/// How long each tier keeps its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// The raw tier, ms.
    pub raw_ms: i64,
    /// The minute tier, ms.
    pub minute_ms: i64,
}

/// One tier: sealed blocks, oldest first, full blocks waiting to be sealed, and the open one.
#[derive(Debug, Default)]
pub struct Tier {
    /// Sealed blocks, oldest first.
    pub sealed: VecDeque<SealedBlock>,
    /// Blocks that filled and are not sealed yet (newer than every sealed one), oldest first.
    /// Shared with the thread compressing the first of them, so that the append that filled
    /// the block does not pay for its compression (tens of ms for 727 columns).
    pub full: VecDeque<Arc<OpenBlock>>,
    /// The rows since the last block filled.
    pub open: OpenBlock,
}

impl Tier {
    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * std::mem::size_of::<SealedBlock>()
            + self
                .sealed
                .iter()
                .map(SealedBlock::heap_bytes)
                .sum::<usize>()
            + self.full.iter().map(|b| b.heap_bytes()).sum::<usize>()
            + self.open.heap_bytes()
    }

    /// Moves the open block to `full` when it holds `rows` rows; true when it did.
    fn rotate_if_full(&mut self, rows: usize) -> bool {
        if self.open.timestamps.len() < rows {
            return false;
        }
        let block = std::mem::take(&mut self.open);
        self.full.push_back(Arc::new(block));
        true
    }

    /// Drops blocks whose last row is before `horizon_ms` (sealed ones, then full ones).
    fn expire(&mut self, horizon_ms: i64) {
        while self.sealed.front().is_some_and(|b| b.last_ms < horizon_ms) {
            self.sealed.pop_front();
        }
        if self.sealed.is_empty() {
            while self
                .full
                .front()
                .is_some_and(|b| b.last_ms().is_some_and(|l| l < horizon_ms))
            {
                self.full.pop_front();
            }
        }
    }

    /// Number of rows held.
    pub fn rows(&self) -> usize {
        self.sealed.iter().map(|b| b.rows as usize).sum::<usize>()
            + self.full.iter().map(|b| b.timestamps.len()).sum::<usize>()
            + self.open.timestamps.len()
    }

    /// The first timestamp held.
    pub fn first_ms(&self) -> Option<i64> {
        self.sealed
            .front()
            .map(|b| b.first_ms)
            .or_else(|| {
                self.full
                    .front()
                    .and_then(|b| b.timestamps.first().copied())
            })
            .or_else(|| self.open.timestamps.first().copied())
    }

    /// The last timestamp held.
    pub fn last_ms(&self) -> Option<i64> {
        self.open
            .last_ms()
            .or_else(|| self.full.back().and_then(|b| b.last_ms()))
            .or_else(|| self.sealed.back().map(|b| b.last_ms))
    }

    /// The blocks not sealed yet, oldest first: the full ones, then the open one.
    pub fn unsealed(&self) -> impl Iterator<Item = &OpenBlock> {
        self.full
            .iter()
            .map(|b| &**b)
            .chain(std::iter::once(&self.open))
    }
}

/// The running min, max, sum and count of one series in the current minute.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    /// Bits of the smallest value (as the series' kind).
    min: u64,
    /// Bits of the largest value.
    max: u64,
    /// Sum as floats, for the mean.
    sum: f64,
    /// Values this minute; 0 means the rest is unset.
    count: u64,
}

/// What one sealed block is, for whoever keeps a copy (the on-disk log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierName {
    /// The raw tier.
    Raw,
    /// The minute tier.
    Minute,
}

/// One node's history.
#[derive(Debug)]
pub struct Store {
    /// The series.
    pub catalog: Catalog,
    /// Every sample.
    pub raw: Tier,
    /// One row per minute.
    pub minute: Tier,
    /// How long each tier keeps rows.
    pub keep: Keep,
    /// The current minute (its start, ms), while it has samples.
    current_minute: Option<i64>,
    /// One per series id.
    accumulators: Vec<Accumulator>,
    /// The path buffer reused by every append.
    path: String,
    /// Ids and values of the row being appended, filled by flattening.
    row: Vec<(u32, u64)>,
    /// Position in [`Catalog::order`] while flattening, or `None` once the shape changed.
    cursor: Option<usize>,
    /// The newest sample's timestamp.
    pub latest_ms: Option<i64>,
}

impl Store {
    /// An empty history.
    pub fn new(keep: Keep) -> Store {
        Store {
            catalog: Catalog::default(),
            raw: Tier::default(),
            minute: Tier::default(),
            keep,
            current_minute: None,
            accumulators: Vec::new(),
            path: String::new(),
            row: Vec::new(),
            cursor: None,
            latest_ms: None,
        }
    }

    /// Bytes on the heap, all tiers and the catalog.
    pub fn heap_bytes(&self) -> usize {
        self.catalog.heap_bytes()
            + self.raw.heap_bytes()
            + self.minute.heap_bytes()
            + self.accumulators.capacity() * std::mem::size_of::<Accumulator>()
            + self.path.capacity()
            + self.row.capacity() * 16
    }

    /// Appends one sample: every number of `value` at `timestamp_ms`. A sample not newer than
    /// the last is ignored (rows stay in time order). Returns true when a block filled (to be
    /// sealed: [`Store::next_full`] or [`Store::seal_full`]).
    pub fn append<T: serde::Serialize + ?Sized>(
        &mut self,
        timestamp_ms: i64,
        value: &T,
    ) -> Result<bool, super::HistoryError> {
        if self.latest_ms.is_some_and(|last| timestamp_ms <= last) {
            return Ok(false);
        }
        self.row.clear();
        self.cursor = Some(0);
        let mut path = std::mem::take(&mut self.path);
        let walked = super::flatten::flatten(value, &mut path, self);
        self.path = path;
        walked?;
        if self.cursor.is_none() {
            // The shape changed: the next sample of this shape is matched by position again.
            self.catalog.order = self.row.iter().map(|&(id, _)| id).collect();
        } else if let Some(n) = self.cursor {
            self.catalog.order.truncate(n);
        }
        let row = std::mem::take(&mut self.row);
        let filled = self.push_row(timestamp_ms, &row, true);
        self.row = row;
        Ok(filled)
    }

    /// Appends a row of (id, bits) to the raw tier and, with `minutes`, to the minute
    /// accumulators; true when a block filled.
    fn push_row(&mut self, timestamp_ms: i64, row: &[(u32, u64)], minutes: bool) -> bool {
        let mut filled = false;
        let minute = timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        if minutes {
            if self.current_minute.is_some_and(|m| m != minute) {
                filled |= self.close_minute();
            }
            self.current_minute = Some(minute);
        }
        self.latest_ms = Some(timestamp_ms);

        let r = self.raw.open.timestamps.len();
        self.raw.open.timestamps.push(timestamp_ms);
        if self.accumulators.len() < self.catalog.series.len() {
            self.accumulators
                .resize(self.catalog.series.len(), Accumulator::default());
        }
        for &(id, bits) in row {
            let Some(series) = self.catalog.series.get(id as usize) else {
                continue;
            };
            let kind = series.kind;
            self.raw.open.column(id as usize).set(r, kind, bits);
            if minutes {
                if let Some(acc) = self.accumulators.get_mut(id as usize) {
                    acc.add(kind, bits);
                }
            }
        }
        filled |= self.raw.rotate_if_full(RAW_BLOCK_ROWS);
        self.raw.expire(timestamp_ms - self.keep.raw_ms);
        self.minute.expire(timestamp_ms - self.keep.minute_ms);
        filled
    }

    /// Writes the current minute's row into the minute tier and starts a new minute; true when
    /// the minute block filled.
    fn close_minute(&mut self) -> bool {
        let Some(minute) = self.current_minute.take() else {
            return false;
        };
        let r = self.minute.open.timestamps.len();
        self.minute.open.timestamps.push(minute);
        for (id, acc) in self.accumulators.iter_mut().enumerate() {
            if acc.count == 0 {
                continue;
            }
            let kind = self.catalog.series[id].kind;
            let base = id * MINUTE_COLUMNS;
            let mean = acc.sum / acc.count as f64;
            self.minute.open.column(base + MIN).set(r, kind, acc.min);
            self.minute.open.column(base + MAX).set(r, kind, acc.max);
            self.minute
                .open
                .column(base + MEAN)
                .set(r, Kind::Float, mean.to_bits());
            self.minute
                .open
                .column(base + COUNT)
                .set(r, Kind::Unsigned, acc.count);
            *acc = Accumulator::default();
        }
        self.minute.rotate_if_full(MINUTE_BLOCK_ROWS)
    }

    /// The tier called `name`.
    pub fn tier(&self, name: TierName) -> &Tier {
        match name {
            TierName::Raw => &self.raw,
            TierName::Minute => &self.minute,
        }
    }

    fn tier_mut(&mut self, name: TierName) -> &mut Tier {
        match name {
            TierName::Raw => &mut self.raw,
            TierName::Minute => &mut self.minute,
        }
    }

    /// The oldest full block waiting to be sealed (raw first), shared: the caller compresses it
    /// without holding the store, then [`Store::install`]s the result.
    pub fn next_full(&self) -> Option<(TierName, Arc<OpenBlock>)> {
        [TierName::Raw, TierName::Minute]
            .into_iter()
            .find_map(|name| Some((name, Arc::clone(self.tier(name).full.front()?))))
    }

    /// Replaces the full block `block` of tier `name` by its sealed form; false (and nothing
    /// changes) when it is no longer the oldest full block (it expired meanwhile).
    pub fn install(&mut self, name: TierName, block: &Arc<OpenBlock>, sealed: SealedBlock) -> bool {
        let tier = self.tier_mut(name);
        if !tier.full.front().is_some_and(|b| Arc::ptr_eq(b, block)) {
            return false;
        }
        tier.full.pop_front();
        tier.sealed.push_back(sealed);
        true
    }

    /// Drops the full block `block` of tier `name` if it is the oldest (it had no rows to
    /// seal, or could not be sealed).
    pub fn drop_full(&mut self, name: TierName, block: &Arc<OpenBlock>) {
        let tier = self.tier_mut(name);
        if tier.full.front().is_some_and(|b| Arc::ptr_eq(b, block)) {
            tier.full.pop_front();
        }
    }

    /// Seals every full block now, on this thread; returns the blocks sealed.
    pub fn seal_full(&mut self) -> Result<Vec<(TierName, SealedBlock)>, BlockError> {
        let mut done = Vec::new();
        while let Some((name, block)) = self.next_full() {
            match block.seal()? {
                Some(sealed) => {
                    self.install(name, &block, sealed.clone());
                    done.push((name, sealed));
                }
                None => {
                    self.tier_mut(name).full.pop_front();
                }
            }
        }
        Ok(done)
    }

    /// Restores a sealed block (from the on-disk log), in time order; false when it does not
    /// follow the tier's last block (skipped).
    pub fn restore(&mut self, name: TierName, block: SealedBlock) -> bool {
        let tier = self.tier_mut(name);
        if tier.last_ms().is_some_and(|l| l >= block.first_ms) {
            return false;
        }
        let last = block.last_ms;
        tier.sealed.push_back(block);
        if name == TierName::Raw {
            self.restored_up_to(last);
        }
        true
    }

    /// Restores a raw row not in a sealed block (from the on-disk log): appended as a sample
    /// would be, its values counted in the minute tier only when the restored minute rows do
    /// not already cover its minute. A row not newer than the last is skipped.
    pub fn restore_raw_row(&mut self, timestamp_ms: i64, row: &[(u32, u64)]) {
        if self.latest_ms.is_some_and(|last| timestamp_ms <= last) {
            return;
        }
        let minute = timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        let counted = self.minute.last_ms().is_some_and(|m| minute <= m);
        self.push_row(timestamp_ms, row, !counted);
    }

    /// Restores a minute row (from the on-disk log); a row not newer than the tier's last is
    /// skipped.
    pub fn restore_minute_row(&mut self, minute_ms: i64, row: &[(u32, u64)]) {
        if self.minute.last_ms().is_some_and(|last| minute_ms <= last) {
            return;
        }
        let r = self.minute.open.timestamps.len();
        self.minute.open.timestamps.push(minute_ms);
        for &(column, bits) in row {
            let c = column as usize;
            let Some(series) = self.catalog.series.get(c / MINUTE_COLUMNS) else {
                continue;
            };
            let kind = match c % MINUTE_COLUMNS {
                MEAN => Kind::Float,
                COUNT => Kind::Unsigned,
                _ => series.kind,
            };
            self.minute.open.column(c).set(r, kind, bits);
        }
        self.minute.rotate_if_full(MINUTE_BLOCK_ROWS);
    }

    /// Continues after restored blocks: later rows go after `last_ms`.
    pub fn restored_up_to(&mut self, last_ms: i64) {
        if self.latest_ms.is_none_or(|l| l < last_ms) {
            self.latest_ms = Some(last_ms);
        }
    }

    /// Drops what is past each tier's reach from the newest sample (after a restore).
    pub fn expire(&mut self) {
        if let Some(latest) = self.latest_ms {
            self.raw.expire(latest - self.keep.raw_ms);
            self.minute.expire(latest - self.keep.minute_ms);
        }
    }
}

impl Accumulator {
    fn add(&mut self, kind: Kind, bits: u64) {
        let v = kind.float(bits);
        if self.count == 0 {
            self.min = bits;
            self.max = bits;
        } else {
            if v < kind.float(self.min) {
                self.min = bits;
            }
            if v > kind.float(self.max) {
                self.max = bits;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

impl Leaves for Store {
    fn leaf(&mut self, path: &str, value: Number) {
        // The element's own timestamp is the rows' time column, not a series.
        if path == TIME_FIELD {
            return;
        }
        // Same shape as the last sample: the id at this position, if its path matches.
        if let Some(pos) = self.cursor {
            if let Some(&id) = self.catalog.order.get(pos) {
                let series = &self.catalog.series[id as usize];
                if &*series.path == path {
                    self.row.push((id, series.kind.bits(value)));
                    self.cursor = Some(pos + 1);
                    return;
                }
            }
            self.cursor = None;
        }
        let (kind, _) = Kind::of(value);
        let Some(id) = self.catalog.add(path, kind) else {
            return;
        };
        let kind = self.catalog.series[id as usize].kind;
        self.row.push((id, kind.bits(value)));
    }
}
