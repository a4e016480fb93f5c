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

use super::block::{BlockError, Kind, OpenBlock, Row, SealedBlock};
use super::flatten::{Leaves, Number, Path, Segment};

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
    /// finds each id by comparing its path with the one expected at that position, segment by
    /// segment, without writing the path or hashing it.
    order: Vec<Expected>,
    /// The paths of `order`, each but for the segments it shares with the one before.
    tails: Vec<Segment>,
    /// The text of the map-key segments in `tails`, in order.
    tail_keys: String,
    /// Set once a path was refused for [`MAX_SERIES`], so that it is warned once.
    full_warned: bool,
}

/// The series expected at one position of a sample of the last shape.
#[derive(Debug, Clone, Copy)]
struct Expected {
    /// Its id.
    id: u32,
    /// Its kind.
    kind: Kind,
    /// Segments in its path.
    depth: u32,
    /// Leading segments its path shares with the path at the position before (0 for the
    /// first): a leaf whose path kept at least that many segments of the previous leaf's needs
    /// only the rest compared.
    shared: u32,
    /// Where the rest of its path (after `shared`) starts in [`Catalog::tails`].
    tail: u32,
}

/// How the series expected at a position was found.
#[derive(Debug, Clone, Copy)]
struct Found {
    /// Its id.
    id: u32,
    /// Its kind.
    kind: Kind,
    /// True when the leaf's segments are those recorded at the position (compared segment by
    /// segment), false when only the dotted text is the same (a key where a field was, or a
    /// name with a dot in it): the next leaf can then rely on no segment it shares with it.
    by_segments: bool,
}

impl Catalog {
    /// The series expected at position `pos` when it is the current leaf's, found by the
    /// segments that differ from the previous leaf's compared as pointers and integers only
    /// (`unchanged`: the leading segments of `path` known to be those of the series at
    /// `pos - 1`): the walk of a sample of the last shape, in a few instructions per leaf.
    /// `None` tells nothing: [`Catalog::expected`] decides.
    #[inline(always)]
    fn expected_fast(&self, pos: usize, path: &Path, unchanged: usize) -> Option<(u32, Kind)> {
        let e = self.order.get(pos)?;
        let got = path.segments();
        if e.depth as usize != got.len() || unchanged < e.shared as usize {
            return None;
        }
        let (rest, tail) = self.tail_of(e, got)?;
        // A plain loop: the tail is one or two segments, and at opt-level `s` an iterator
        // adapter here stayed a call.
        let mut i = 0;
        while i < rest.len() {
            if !rest[i].same_fast(tail[i]) {
                return None;
            }
            i += 1;
        }
        Some((e.id, e.kind))
    }

    /// The series expected at position `pos` if the current leaf's path is its path. With
    /// `unchanged` (the leading segments of `path` known to be those of the path matched at
    /// `pos - 1` segment for segment) covering what the two expected paths share, only the rest
    /// of the segments is compared; a first position has nothing shared and is compared whole.
    /// Otherwise the dotted text is written (into `text`) and compared with the expected
    /// series' path.
    fn expected(
        &self,
        pos: usize,
        path: &Path,
        unchanged: usize,
        text: &mut String,
    ) -> Option<Found> {
        let e = self.order.get(pos)?;
        let got = path.segments();
        if e.depth as usize != got.len() {
            return None;
        }
        if unchanged >= e.shared as usize {
            let (rest, tail) = self.tail_of(e, got)?;
            let keys = path.keys();
            let same = rest
                .iter()
                .zip(tail)
                .all(|(a, b)| a.same(keys, *b, &self.tail_keys));
            return same.then_some(Found {
                id: e.id,
                kind: e.kind,
                by_segments: true,
            });
        }
        text.clear();
        path.write(text);
        let series = self.series.get(e.id as usize)?;
        (*text == *series.path).then_some(Found {
            id: e.id,
            kind: e.kind,
            by_segments: false,
        })
    }

    /// The segments of `got` after those it shares with the position before `e`'s, and the
    /// recorded tail of `e`'s path they must match (`None` when `got` is not as deep).
    #[inline(always)]
    fn tail_of<'a>(
        &'a self,
        e: &Expected,
        got: &'a [Segment],
    ) -> Option<(&'a [Segment], &'a [Segment])> {
        let rest = got.get(e.shared as usize..)?;
        let start = e.tail as usize;
        let tail = self.tails.get(start..start + rest.len())?;
        Some((rest, tail))
    }

    /// Appends `id`, found at `path`, to the order of the current sample's leaves; `shared`
    /// leading segments of `path` are known to be those of the position before.
    fn follow(&mut self, id: u32, path: &Path, shared: usize) {
        let Some(series) = self.series.get(id as usize) else {
            return;
        };
        let segments = path.segments();
        let shared = shared.min(segments.len());
        let tail = self.tails.len() as u32;
        for segment in &segments[shared..] {
            let kept = segment.copy_to(path.keys(), &mut self.tail_keys);
            self.tails.push(kept);
        }
        self.order.push(Expected {
            id,
            kind: series.kind,
            depth: segments.len() as u32,
            shared: shared as u32,
            tail,
        });
    }

    /// Keeps the first `n` positions of the order.
    fn cut_order(&mut self, n: usize) {
        if let Some(e) = self.order.get(n) {
            let start = e.tail as usize;
            // Key texts were appended in the order of their segments: the first one cut is
            // where the kept text ends.
            let first_key = self
                .tails
                .get(start..)
                .unwrap_or(&[])
                .iter()
                .find_map(|s| match s {
                    Segment::Key { start, .. } => Some(*start as usize),
                    _ => None,
                });
            if let Some(first_key) = first_key {
                self.tail_keys.truncate(first_key);
            }
            self.tails.truncate(start);
        }
        self.order.truncate(n);
    }

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
            + self.order.capacity() * std::mem::size_of::<Expected>()
            + self.tails.capacity() * std::mem::size_of::<Segment>()
            + self.tail_keys.capacity()
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
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    /// The series' kind.
    kind: Kind,
    /// Bits of the smallest value (as the series' kind).
    min: u64,
    /// Bits of the largest value.
    max: u64,
    /// `min` as a float (what values are compared with).
    min_f: f64,
    /// `max` as a float.
    max_f: f64,
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
    /// The path buffers reused by every append.
    path: Path,
    /// A leaf's dotted path, written only when the leaf is not the one expected.
    text: String,
    /// The values of the row being appended by series id, filled by flattening.
    row: Row,
    /// The minute row being closed, reused.
    minute_row: Row,
    /// Position in [`Catalog::order`] while flattening, or `None` once the shape changed.
    cursor: Option<usize>,
    /// While flattening: how many leading segments of the current leaf's path are known to be
    /// those of the last leaf kept (the series at `cursor - 1`, or the last one followed),
    /// segment for segment. `usize::MAX` right after a leaf kept by its segments (the current
    /// leaf's own [`Path::unchanged`] bounds it), lowered by the leaves skipped since (the
    /// timestamp), 0 when nothing is known (the first leaf, or one matched by its text only).
    known: usize,
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
            path: Path::default(),
            text: String::new(),
            row: Row::default(),
            minute_row: Row::default(),
            cursor: None,
            known: 0,
            latest_ms: None,
        }
    }

    /// Bytes on the heap, all tiers and the catalog.
    pub fn heap_bytes(&self) -> usize {
        self.catalog.heap_bytes()
            + self.raw.heap_bytes()
            + self.minute.heap_bytes()
            + self.accumulators.capacity() * std::mem::size_of::<Accumulator>()
            + self.path.heap_bytes()
            + self.text.capacity()
            + self.row.heap_bytes()
            + self.minute_row.heap_bytes()
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
        self.known = 0;
        // Every id the catalog knows has its word in the row: the leaves store without growing
        // it.
        self.row.reserve(self.catalog.series.len());
        let mut path = std::mem::take(&mut self.path);
        let walked = super::flatten::flatten(value, &mut path, self);
        self.path = path;
        walked?;
        if let Some(n) = self.cursor {
            // The sample may have ended early (a shorter shape); a changed shape rebuilt the
            // order as it went.
            self.catalog.cut_order(n);
        }
        Ok(self.push_row(timestamp_ms, true))
    }

    /// Appends [`Store::row`] to the raw tier and, with `minutes`, to the minute accumulators;
    /// true when a block filled.
    fn push_row(&mut self, timestamp_ms: i64, minutes: bool) -> bool {
        let mut filled = false;
        let minute = timestamp_ms.div_euclid(MINUTE_MS) * MINUTE_MS;
        if minutes {
            if self.current_minute.is_some_and(|m| m != minute) {
                filled |= self.close_minute();
            }
            self.current_minute = Some(minute);
        }
        self.latest_ms = Some(timestamp_ms);

        let series = &self.catalog.series;
        self.raw.open.push_row(timestamp_ms, &self.row, |id| {
            series.get(id).map_or(Kind::Unsigned, |s| s.kind)
        });
        if minutes {
            let known = self.accumulators.len();
            self.accumulators.extend(
                series
                    .get(known..)
                    .unwrap_or(&[])
                    .iter()
                    .map(|s| Accumulator::new(s.kind)),
            );
            let accumulators = &mut self.accumulators;
            self.row.for_each(|id, bits| {
                if let Some(acc) = accumulators.get_mut(id) {
                    acc.add(bits);
                }
            });
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
        let row = &mut self.minute_row;
        row.clear();
        for (id, acc) in self.accumulators.iter_mut().enumerate() {
            if acc.count == 0 {
                continue;
            }
            let base = id * MINUTE_COLUMNS;
            row.set(base + MIN, acc.min);
            row.set(base + MAX, acc.max);
            row.set(base + MEAN, (acc.sum / acc.count as f64).to_bits());
            row.set(base + COUNT, acc.count);
            acc.reset();
        }
        let series = &self.catalog.series;
        self.minute
            .open
            .push_row(minute, row, |c| minute_kind(series, c));
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
        self.row.clear();
        for &(id, bits) in row {
            if (id as usize) < self.catalog.series.len() {
                self.row.set(id as usize, bits);
            }
        }
        self.push_row(timestamp_ms, !counted);
    }

    /// Restores a minute row (from the on-disk log); a row not newer than the tier's last is
    /// skipped.
    pub fn restore_minute_row(&mut self, minute_ms: i64, row: &[(u32, u64)]) {
        if self.minute.last_ms().is_some_and(|last| minute_ms <= last) {
            return;
        }
        let known = self.catalog.series.len() * MINUTE_COLUMNS;
        let minute_row = &mut self.minute_row;
        minute_row.clear();
        for &(column, bits) in row {
            if (column as usize) < known {
                minute_row.set(column as usize, bits);
            }
        }
        let series = &self.catalog.series;
        self.minute
            .open
            .push_row(minute_ms, minute_row, |c| minute_kind(series, c));
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

/// The kind of minute column `c` (of the series `c / MINUTE_COLUMNS`).
fn minute_kind(series: &[Series], c: usize) -> Kind {
    match c % MINUTE_COLUMNS {
        MEAN => Kind::Float,
        COUNT => Kind::Unsigned,
        _ => series
            .get(c / MINUTE_COLUMNS)
            .map_or(Kind::Unsigned, |s| s.kind),
    }
}

impl Accumulator {
    fn new(kind: Kind) -> Accumulator {
        Accumulator {
            kind,
            min: 0,
            max: 0,
            // Any value is below the first and above it: the first value sets both without a
            // test of its own (values are never NaN).
            min_f: f64::INFINITY,
            max_f: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        }
    }

    /// Starts a new minute.
    fn reset(&mut self) {
        *self = Accumulator::new(self.kind);
    }

    #[inline(always)]
    fn add(&mut self, bits: u64) {
        let v = self.kind.float(bits);
        if v < self.min_f {
            (self.min, self.min_f) = (bits, v);
        }
        if v > self.max_f {
            (self.max, self.max_f) = (bits, v);
        }
        self.sum += v;
        self.count += 1;
    }
}

impl Leaves for Store {
    /// Kept small, so that it is inlined in every number the walk meets: a leaf of the last
    /// sample's shape is stored here; anything else (the timestamp, a field or key whose text
    /// must be compared, a changed shape) goes to `Store::other_leaf`.
    #[inline(always)]
    fn leaf(&mut self, path: &Path, value: Number) {
        if let Some(pos) = self.cursor {
            let unchanged = self.known.min(path.unchanged());
            if let Some((id, kind)) = self.catalog.expected_fast(pos, path, unchanged) {
                self.row.set(id as usize, kind.bits(value));
                self.cursor = Some(pos + 1);
                self.known = usize::MAX;
                return;
            }
        }
        self.other_leaf(path, value);
    }
}

impl Store {
    /// A leaf [`Store::leaf`] did not find at the cursor by its segments.
    #[inline(never)]
    fn other_leaf(&mut self, path: &Path, value: Number) {
        let unchanged = self.known.min(path.unchanged());
        // The element's own timestamp is the rows' time column, not a series.
        if path.is_top(TIME_FIELD) {
            self.known = unchanged;
            return;
        }
        // Same shape as the last sample: the id at this position, if its path matches.
        if let Some(pos) = self.cursor {
            if let Some(found) = self.catalog.expected(pos, path, unchanged, &mut self.text) {
                self.row.set(found.id as usize, found.kind.bits(value));
                self.cursor = Some(pos + 1);
                self.known = if found.by_segments { usize::MAX } else { 0 };
                return;
            }
            // The shape changed: from here the order is rebuilt as the leaves come.
            self.catalog.cut_order(pos);
            self.cursor = None;
        }
        self.new_shape_leaf(path, unchanged, value);
    }

    /// A leaf of a sample whose shape differs from the last one's: found by its path (or added).
    fn new_shape_leaf(&mut self, path: &Path, unchanged: usize, value: Number) {
        self.text.clear();
        path.write(&mut self.text);
        let (kind, _) = Kind::of(value);
        let Some(id) = self.catalog.add(&self.text, kind) else {
            // Not kept: the next leaf is compared with the last one kept.
            self.known = unchanged;
            return;
        };
        self.catalog.follow(id, path, unchanged);
        self.known = usize::MAX;
        let kind = self.catalog.series[id as usize].kind;
        self.row.set(id as usize, kind.bits(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser::{SerializeMap, Serializer};
    use serde_json::json;

    fn store() -> Store {
        Store::new(Keep {
            raw_ms: 3_600_000,
            minute_ms: 86_400_000,
        })
    }

    /// The (path, bits) of the last raw row, by path.
    fn last_row(store: &Store) -> Vec<(String, u64)> {
        let open = &store.raw.open;
        let r = open.timestamps.len() - 1;
        let mut row: Vec<(String, u64)> = (0..open.columns())
            .filter_map(|id| {
                let bits = open.get(r, id)?;
                Some((store.catalog.series[id].path.to_string(), bits))
            })
            .collect();
        row.sort();
        row
    }

    /// What the sample's row must hold: each numeric leaf (the last of a repeated path), as
    /// bits of its series' kind.
    fn wanted(store: &Store, sample: &serde_json::Value) -> Vec<(String, u64)> {
        struct Collect(Vec<(String, Number)>);
        impl Leaves for Collect {
            fn leaf(&mut self, path: &Path, value: Number) {
                let path = path.text();
                self.0.retain(|(p, _)| *p != path);
                self.0.push((path, value));
            }
        }
        let mut leaves = Collect(Vec::new());
        super::super::flatten::flatten(sample, &mut Path::default(), &mut leaves).unwrap();
        let mut row: Vec<(String, u64)> = leaves
            .0
            .into_iter()
            .filter(|(p, _)| p != TIME_FIELD)
            .map(|(p, v)| {
                let id = store.catalog.id(&p).unwrap();
                let bits = store.catalog.series[id as usize].kind.bits(v);
                (p, bits)
            })
            .collect();
        row.sort();
        row
    }

    #[test]
    fn every_value_lands_in_its_series_across_shape_changes() {
        let shapes = [
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3]}),
            // The last segment changed, same length.
            json!({"a": {"b": 1, "x": 2.5}, "d": [1, 2, 3]}),
            // A segment in the middle changed, same length.
            json!({"a": {"b": 1, "c": 2.5}, "e": [1, 2, 3]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3, 4]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3, 4]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3, 4], "timestamp": 7}),
            // The first segment changed.
            json!({"b": {"b": 1, "c": 2.5}, "d": [1, 2, 3, 4]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [1, 2, 3, 4]}),
            // Same leaves, the parent of the last ones renamed.
            json!({"a": {"b": 1, "c": 2.5}, "d": [[1, 2], [3, 4]]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [[1, 2], [3, 4]]}),
            json!({"a": {"b": 1, "c": 2.5}, "d": [[1, 2, 3], [4]]}),
            json!({"a": {"bb": 1, "c": 2.5}, "d": [[1, 2, 3], [4]]}),
            json!({"a": {"bb": 1, "c": 2.5}, "d": [[1, 2, 3], [4]]}),
        ];
        let mut store = store();
        for round in 0..3u64 {
            for (i, shape) in shapes.iter().enumerate() {
                // Values differ from sample to sample, so that a value in the wrong series shows.
                let mut sample = shape.clone();
                let mut n = 0;
                bump(&mut sample, round * 1000 + i as u64 * 10, &mut n);
                let t = (round as i64 * 100 + i as i64 + 1) * 1000;
                store.append(t, &sample).unwrap();
                assert_eq!(
                    last_row(&store),
                    wanted(&store, &sample),
                    "round {round}, sample {i}: {sample}"
                );
            }
        }
        assert!(store.catalog.id("timestamp").is_none());
    }

    /// Adds `base + k` to the k-th number of `value`.
    fn bump(value: &mut serde_json::Value, base: u64, n: &mut u64) {
        match value {
            serde_json::Value::Number(x) => {
                *n += 1;
                *value = match x.as_u64() {
                    Some(u) => json!(u + base + *n),
                    None => json!(x.as_f64().unwrap_or(0.0) + (base + *n) as f64),
                };
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| bump(v, base, n)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| bump(v, base, n)),
            _ => {}
        }
    }

    /// A map that names one key twice.
    struct Repeated(u64, u64);

    impl serde::Serialize for Repeated {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(3))?;
            map.serialize_entry("a", &self.0)?;
            map.serialize_entry("b", &1u64)?;
            map.serialize_entry("a", &self.1)?;
            map.end()
        }
    }

    #[test]
    fn a_path_repeated_in_one_sample_keeps_its_last_value() {
        let mut store = store();
        for t in 1..5u64 {
            store.append(t as i64 * 1000, &Repeated(t, 10 * t)).unwrap();
            let id = store.catalog.id("a").unwrap() as usize;
            let r = store.raw.open.timestamps.len() - 1;
            assert_eq!(store.raw.open.get(r, id), Some(10 * t));
            assert_eq!(store.catalog.series.len(), 2);
        }
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Core {
        id: u32,
        usage: f64,
        frequency: Option<f64>,
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Gpu {
        memory: [u64; 2],
        power: Option<f64>,
        energy: i64,
    }

    /// A host-like element: fields (the walk's fast path) around arrays and a map.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Host {
        cores: Vec<Core>,
        timestamp: i64,
        gpus: Vec<Gpu>,
        custom: std::collections::BTreeMap<String, f64>,
        load: f64,
    }

    /// Sample `i` of a host whose cores, GPUs, optional fields and map keys come and go.
    fn host(i: u64) -> Host {
        let v = i as f64 * 1.5 + 0.25;
        let cores = [2, 2, 3, 1, 3, 3, 0, 2][i as usize % 8];
        let gpus = [1, 1, 0, 2, 2, 1][i as usize % 6];
        let keys: &[&str] = match i % 5 {
            0 | 1 => &["a", "b.c"],
            2 => &["a", "b", "c"],
            3 => &[],
            _ => &["b.c"],
        };
        Host {
            cores: (0..cores)
                .map(|k| Core {
                    id: k,
                    usage: v + k as f64,
                    frequency: (i % 3 != 1 || k == 0).then_some(v * 2.0 + k as f64),
                })
                .collect(),
            timestamp: i as i64,
            gpus: (0..gpus)
                .map(|g| Gpu {
                    memory: [i + g, i * 2 + g],
                    power: (i % 4 != 2).then_some(v + g as f64),
                    energy: -(i as i64) - g as i64,
                })
                .collect(),
            custom: keys.iter().map(|k| (k.to_string(), v + 7.0)).collect(),
            load: v / 3.0,
        }
    }

    #[test]
    fn struct_fields_land_in_their_series_across_shape_changes() {
        let mut store = store();
        for i in 0..60u64 {
            let sample = host(i);
            store.append((i as i64 + 1) * 1000, &sample).unwrap();
            let json = serde_json::to_value(&sample).unwrap();
            assert_eq!(
                last_row(&store),
                wanted(&store, &json),
                "sample {i}: {json}"
            );
        }
        assert!(store.catalog.id("timestamp").is_none());
        assert!(store.catalog.id("custom.b.c").is_some());
    }

    /// Two values whose paths are the same text from different segments: a field named with a
    /// dot, and a map key path.
    struct Dotted(u64, u64, bool);

    impl serde::Serialize for Dotted {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            #[derive(serde::Serialize)]
            struct B {
                c: u64,
            }
            if self.2 {
                let mut s = serializer.serialize_struct("Dotted", 2)?;
                s.serialize_field("a.b", &B { c: self.0 })?;
                s.serialize_field("z", &self.1)?;
                s.end()
            } else {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("a", &std::collections::BTreeMap::from([("b.c", self.0)]))?;
                map.serialize_entry("z", &self.1)?;
                map.end()
            }
        }
    }

    #[test]
    fn paths_of_the_same_text_are_one_series_whatever_their_segments() {
        let mut store = store();
        for t in 1..9u64 {
            store
                .append(t as i64 * 1000, &Dotted(t, 10 * t, t % 3 == 0))
                .unwrap();
            let r = store.raw.open.timestamps.len() - 1;
            let abc = store.catalog.id("a.b.c").unwrap() as usize;
            let z = store.catalog.id("z").unwrap() as usize;
            assert_eq!(store.raw.open.get(r, abc), Some(t));
            assert_eq!(store.raw.open.get(r, z), Some(10 * t));
            assert_eq!(store.catalog.series.len(), 2);
        }
    }
}
