//! The on-disk log of a node's history (`--history.path DIR`): plain append-only files of
//! checksummed records, written by the history's worker thread, read back once at start.
//!
//! - `series.log`: the catalog, one record per series (id, kind, path), appended as series
//!   appear; bounded by [`super::store::MAX_SERIES`].
//! - `raw-<seq>.seg`, `minute-<seq>.seg`: sealed blocks of each tier, as they are sealed, a new
//!   segment every [`SEGMENT_BLOCKS`] blocks (and at each start). A segment is deleted once its
//!   newest block is past its tier's reach, so the disk holds about what memory does.
//! - `raw.tail`, `minute.tail`: the rows of each tier not sealed yet, appended at most every
//!   [`super::FLUSH_EVERY`] and on a clean stop, and rewritten (a temporary file renamed over
//!   it) when a block of the tier is sealed, so that a tail holds at most about one block.
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload`. Reading stops at the first
//! record that is short, too long, fails its checksum or does not parse: that is a torn write
//! (SIGKILL, a full disk) or damage. It is reported once, naming the file and the byte offset,
//! the file is cut there (so that later appends are readable) and everything before it is kept.
//! A damaged log never stops the monitor; a directory that cannot be written does (the
//! operator asked for persistence and would not get it).
//!
//! Why not an embedded database (sled, redb, rocksdb): the data is already in immutable
//! compressed blocks written once and dropped whole by age; an append-only file per time range
//! with a CRC per record is all the structure that needs, and deleting a file is how retention
//! frees disk. A database would add a write-ahead log and compaction on top of the same bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::block::{BlockError, Kind, SealedBlock};
use super::store::{Store, TierName};

/// Blocks per segment file: raw blocks are 4 minutes (a segment is 40 minutes), minute blocks
/// 2 hours (a day). Smaller segments free disk sooner; larger ones mean fewer files.
pub const SEGMENT_BLOCKS: [usize; 2] = [10, 12];

/// The largest record read back (a minute block of 16,384 series is well under it): a longer
/// length is damage, not a reason to allocate.
const MAX_RECORD: usize = 256 << 20;

/// The catalog file.
const SERIES_FILE: &str = "series.log";

/// Why the log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("history directory {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Block(#[from] BlockError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A segment file of one tier.
#[derive(Debug)]
struct Segment {
    /// Its path.
    path: PathBuf,
    /// The newest block's last row, unix ms (None: no block yet).
    last_ms: Option<i64>,
    /// Blocks in it.
    blocks: usize,
}

/// The files of one tier.
#[derive(Debug)]
struct TierLog {
    /// Which tier.
    name: TierName,
    /// Segments, oldest first; the last one is appended to while it has room.
    segments: Vec<Segment>,
    /// The open segment file (the last of `segments`), once a block was written since start.
    active: Option<File>,
    /// The tail file, open for appending.
    tail: Option<File>,
    /// The newest row in the tail file.
    tail_last_ms: Option<i64>,
}

impl TierLog {
    fn prefix(&self) -> &'static str {
        prefix(self.name)
    }

    fn index(&self) -> usize {
        self.name as usize
    }
}

fn prefix(name: TierName) -> &'static str {
    match name {
        TierName::Raw => "raw",
        TierName::Minute => "minute",
    }
}

/// What a flush writes, prepared while the store is locked and written after.
#[derive(Debug, Default)]
pub struct Batch {
    /// Series records to append to `series.log`.
    series: Vec<u8>,
    /// Per tier: rows records, and whether they replace the tail (true) or extend it.
    tails: [Option<(bool, Vec<u8>)>; 2],
    /// Per tier: the horizon (unix ms) before which segments are deleted.
    horizons: [Option<i64>; 2],
}

/// The log.
#[derive(Debug)]
pub struct Log {
    /// `--history.path`.
    dir: PathBuf,
    /// `series.log`, open for appending.
    series: File,
    /// Series already in `series.log`.
    series_written: usize,
    /// Raw, then minute.
    tiers: [TierLog; 2],
    /// The sequence number of the next segment.
    next_seq: u64,
    /// The damage found at start, one line per damaged file (each logged once).
    pub damage: Vec<String>,
    /// The last write error logged, so that a full disk is reported once, not every 10 s.
    last_error: Option<String>,
}

impl Log {
    /// Opens (creating) the log in `dir` and restores `store` from it. Fails only when `dir`
    /// cannot be created or written; damage is reported and skipped.
    pub fn open(dir: &Path, store: &mut Store) -> Result<Log, LogError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut damage = Vec::new();
        let series_path = dir.join(SERIES_FILE);
        read_file(&series_path, &mut damage, |payload| {
            let (id, kind, path) = decode_series(payload)?;
            match store.catalog.add(path, kind) {
                Some(got) if got == id => Ok(()),
                _ => Err("series id out of order"),
            }
        });
        let series = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&series_path)
            .map_err(io_error(&series_path))?;

        let mut segments: [Vec<(u64, PathBuf)>; 2] = [Vec::new(), Vec::new()];
        let mut next_seq = 1;
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            for tier in [TierName::Raw, TierName::Minute] {
                let seq = name
                    .strip_prefix(prefix(tier))
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|rest| rest.strip_suffix(".seg"))
                    .and_then(|seq| seq.parse::<u64>().ok());
                if let Some(seq) = seq {
                    segments[tier as usize].push((seq, entry.path()));
                    next_seq = next_seq.max(seq + 1);
                }
            }
        }
        let mut tiers = [TierName::Raw, TierName::Minute].map(|name| TierLog {
            name,
            segments: Vec::new(),
            active: None,
            tail: None,
            tail_last_ms: None,
        });
        for tier in &mut tiers {
            let found = &mut segments[tier.index()];
            found.sort();
            for (_, path) in found.drain(..) {
                let mut segment = Segment {
                    path,
                    last_ms: None,
                    blocks: 0,
                };
                let series = store.catalog.series.len();
                read_file(&segment.path, &mut damage, |payload| {
                    let block = decode_block(payload)?;
                    let known = match tier.name {
                        TierName::Raw => series,
                        TierName::Minute => series * super::store::MINUTE_COLUMNS,
                    };
                    if block.columns() > known {
                        return Err("block of series the catalog lacks");
                    }
                    segment.last_ms = Some(block.last_ms);
                    segment.blocks += 1;
                    store.restore(tier.name, block);
                    Ok(())
                });
                tier.segments.push(segment);
            }
        }
        for name in [TierName::Minute, TierName::Raw] {
            let path = dir.join(format!("{}.tail", prefix(name)));
            read_file(&path, &mut damage, |payload| {
                let (ts, row) = decode_rows(payload)?;
                match name {
                    TierName::Raw => store.restore_raw_row(ts, &row),
                    TierName::Minute => store.restore_minute_row(ts, &row),
                }
                Ok(())
            });
        }
        store.expire();
        for line in &damage {
            tracing::warn!("{line}");
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            series,
            series_written: store.catalog.series.len(),
            tiers,
            next_seq,
            damage,
            last_error: None,
        };
        // Start from clean tails (what a damaged one held up to the damage) and a new segment.
        let batch = log.prepare(store, &[TierName::Raw, TierName::Minute]);
        log.write(batch, None)?;
        Ok(log)
    }

    /// What to write now: new series, the rows of each tier not written yet (all of a tier's
    /// unsealed rows for a tier in `rewrite`, whose tail is replaced), the segments to delete.
    pub fn prepare(&mut self, store: &Store, rewrite: &[TierName]) -> Batch {
        let mut batch = Batch::default();
        let mut payload = Vec::new();
        for (id, series) in store
            .catalog
            .series
            .iter()
            .enumerate()
            .skip(self.series_written)
        {
            payload.clear();
            payload.extend_from_slice(&(id as u32).to_le_bytes());
            payload.push(series.kind as u8);
            payload.extend_from_slice(series.path.as_bytes());
            frame(&payload, &mut batch.series);
        }
        self.series_written = store.catalog.series.len();
        for tier in &mut self.tiers {
            let held = store.tier(tier.name);
            let replace = rewrite.contains(&tier.name);
            let after = if replace { None } else { tier.tail_last_ms };
            let mut records = Vec::new();
            let mut last = None;
            for block in held.unsealed() {
                block.rows_after(after, |ts, row| {
                    payload.clear();
                    payload.extend_from_slice(&ts.to_le_bytes());
                    payload.extend_from_slice(&(row.len() as u32).to_le_bytes());
                    for &(column, bits) in row {
                        payload.extend_from_slice(&column.to_le_bytes());
                        payload.extend_from_slice(&bits.to_le_bytes());
                    }
                    frame(&payload, &mut records);
                    last = Some(ts);
                });
            }
            if replace || last.is_some() {
                batch.tails[tier.index()] = Some((replace, records));
            }
            if let Some(last) = last {
                tier.tail_last_ms = Some(last);
            }
            let keep = match tier.name {
                TierName::Raw => store.keep.raw_ms,
                TierName::Minute => store.keep.minute_ms,
            };
            batch.horizons[tier.index()] = store.latest_ms.map(|l| l.saturating_sub(keep));
        }
        batch
    }

    /// Writes `batch`, and before its rows a sealed block of a tier: its last row's time and
    /// its record ([`encode_block`]).
    pub fn write(
        &mut self,
        batch: Batch,
        block: Option<(TierName, i64, &[u8])>,
    ) -> Result<(), LogError> {
        let series_path = self.dir.join(SERIES_FILE);
        if !batch.series.is_empty() {
            self.series
                .write_all(&batch.series)
                .map_err(io_error(&series_path))?;
        }
        if let Some((name, last_ms, record)) = block {
            self.write_block(name, last_ms, record)?;
        }
        for (tier, tail) in self.tiers.iter_mut().zip(batch.tails) {
            let Some((replace, records)) = tail else {
                continue;
            };
            let path = self.dir.join(format!("{}.tail", tier.prefix()));
            if replace {
                tier.tail = None;
                let temporary = self.dir.join(format!("{}.tail.tmp", tier.prefix()));
                fs::write(&temporary, &records).map_err(io_error(&temporary))?;
                fs::rename(&temporary, &path).map_err(io_error(&path))?;
            }
            let file = match &mut tier.tail {
                Some(file) => file,
                None => tier.tail.insert(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(io_error(&path))?,
                ),
            };
            if !replace {
                file.write_all(&records).map_err(io_error(&path))?;
            }
        }
        for (tier, horizon) in self.tiers.iter_mut().zip(batch.horizons) {
            let Some(horizon) = horizon else { continue };
            // The last segment stays: it may be the one being appended to.
            let closed = tier.segments.len().saturating_sub(1);
            let mut kept = Vec::with_capacity(tier.segments.len());
            for (i, segment) in tier.segments.drain(..).enumerate() {
                let expired = segment.last_ms.is_none_or(|l| l < horizon) && i < closed;
                if !expired {
                    kept.push(segment);
                    continue;
                }
                if let Err(e) = fs::remove_file(&segment.path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        kept.push(segment);
                    }
                }
            }
            tier.segments = kept;
        }
        Ok(())
    }

    fn write_block(&mut self, name: TierName, last_ms: i64, record: &[u8]) -> Result<(), LogError> {
        let tier = &mut self.tiers[name as usize];
        let full = tier
            .segments
            .last()
            .is_none_or(|s| s.blocks >= SEGMENT_BLOCKS[name as usize]);
        if tier.active.is_none() || full {
            let path = self
                .dir
                .join(format!("{}-{:010}.seg", tier.prefix(), self.next_seq));
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_error(&path))?;
            tier.active = Some(file);
            tier.segments.push(Segment {
                path,
                last_ms: None,
                blocks: 0,
            });
        }
        let (Some(file), Some(segment)) = (&mut tier.active, tier.segments.last_mut()) else {
            return Ok(());
        };
        file.write_all(record).map_err(io_error(&segment.path))?;
        segment.last_ms = Some(last_ms);
        segment.blocks += 1;
        Ok(())
    }

    /// Flushes the files to the disk (a clean stop).
    pub fn sync(&mut self) {
        let files = std::iter::once(&self.series).chain(
            self.tiers
                .iter()
                .flat_map(|t| t.active.iter().chain(&t.tail)),
        );
        for file in files {
            if let Err(e) = file.sync_data() {
                self.report(&LogError::Io {
                    path: self.dir.display().to_string(),
                    source: e,
                });
                return;
            }
        }
    }

    /// Logs a write error, once until a different one happens.
    pub fn report(&mut self, e: &LogError) {
        let text = e.to_string();
        if self.last_error.as_deref() != Some(&text) {
            tracing::warn!("history is not kept on disk: {text}");
            self.last_error = Some(text);
        }
    }
}

/// `payload` as a record: length, CRC-32, payload.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Calls `each` on every record of `path` (a missing file has none). At the first bad record
/// (torn, checksum, or `each` refusing it) the file is cut there and one line naming the file
/// and the offset goes to `damage`.
fn read_file(
    path: &Path,
    damage: &mut Vec<String>,
    mut each: impl FnMut(&[u8]) -> Result<(), &'static str>,
) {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return,
        Err(e) => {
            damage.push(format!(
                "history file {} unreadable ({e}); skipped",
                path.display()
            ));
            return;
        }
    };
    let mut at = 0;
    let why = loop {
        let Some(head) = bytes.get(at..at + 8) else {
            if at == bytes.len() {
                return;
            }
            break "torn record header";
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_RECORD {
            break "impossible record length";
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break "torn record";
        };
        if crc32fast::hash(payload) != crc {
            break "checksum mismatch";
        }
        if let Err(why) = each(payload) {
            break why;
        }
        at += 8 + len;
    };
    let cut = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(at as u64));
    let cut = match cut {
        Ok(()) => "the rest was cut off".to_string(),
        Err(e) => format!("the rest is skipped (cutting it off failed: {e})"),
    };
    damage.push(format!(
        "history file {} is damaged at byte {at} of {} ({why}): the records before it are kept, \
         {cut}",
        path.display(),
        bytes.len()
    ));
}

/// A little-endian reader over a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("short record");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    fn i64(&mut self) -> Result<i64, &'static str> {
        self.u64().map(|v| v as i64)
    }

    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

fn decode_series(payload: &[u8]) -> Result<(u32, Kind, &str), &'static str> {
    let mut r = Reader(payload);
    let id = r.u32()?;
    let kind = Kind::from_byte(r.take(1)?[0]).ok_or("series kind")?;
    let path = std::str::from_utf8(r.0).map_err(|_| "series path is not UTF-8")?;
    if path.is_empty() {
        return Err("empty series path");
    }
    Ok((id, kind, path))
}

/// The record (framed) of a sealed block.
pub fn encode_block(block: &SealedBlock) -> Vec<u8> {
    let mut payload = Vec::with_capacity(
        32 + block.timestamps.len() + block.offsets.len() * 4 + block.data.len(),
    );
    payload.extend_from_slice(&block.first_ms.to_le_bytes());
    payload.extend_from_slice(&block.last_ms.to_le_bytes());
    payload.extend_from_slice(&block.rows.to_le_bytes());
    payload.extend_from_slice(&(block.timestamps.len() as u32).to_le_bytes());
    payload.extend_from_slice(&block.timestamps);
    payload.extend_from_slice(&(block.offsets.len() as u32).to_le_bytes());
    for offset in &block.offsets {
        payload.extend_from_slice(&offset.to_le_bytes());
    }
    payload.extend_from_slice(&(block.data.len() as u32).to_le_bytes());
    payload.extend_from_slice(&block.data);
    let mut record = Vec::with_capacity(payload.len() + 8);
    frame(&payload, &mut record);
    record
}

fn decode_block(payload: &[u8]) -> Result<SealedBlock, &'static str> {
    let mut r = Reader(payload);
    let first_ms = r.i64()?;
    let last_ms = r.i64()?;
    let rows = r.u32()?;
    let timestamps = r.bytes()?;
    let n = r.u32()? as usize;
    let offsets = r.take(n.checked_mul(4).ok_or("offsets")?)?;
    let offsets: Box<[u32]> = offsets
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let data = r.bytes()?;
    if !r.0.is_empty() {
        return Err("trailing bytes in a block record");
    }
    let ordered = offsets.windows(2).all(|w| w[0] <= w[1]);
    if first_ms > last_ms
        || rows == 0
        || offsets.is_empty()
        || !ordered
        || offsets.last().is_some_and(|&o| o as usize != data.len())
    {
        return Err("inconsistent block");
    }
    let block = SealedBlock {
        first_ms,
        last_ms,
        rows,
        timestamps: timestamps.into(),
        offsets,
        data: data.into(),
    };
    match block.timestamps() {
        Ok(ts) if ts.first() == Some(&first_ms) && ts.last() == Some(&last_ms) => Ok(block),
        _ => Err("block timestamps"),
    }
}

/// A row as the tails hold it: its time and (column id, bits) of each value.
type Row = (i64, Vec<(u32, u64)>);

fn decode_rows(payload: &[u8]) -> Result<Row, &'static str> {
    let mut r = Reader(payload);
    let ts = r.i64()?;
    let n = r.u32()? as usize;
    if n.checked_mul(12) != Some(r.0.len()) {
        return Err("row length");
    }
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        row.push((r.u32()?, r.u64()?));
    }
    Ok((ts, row))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::store::RAW_BLOCK_ROWS;
    use super::*;
    use crate::config::HistoryConfig;
    use crate::history::{History, Query};

    /// A small sample: a float, an integer, and a value present every other second.
    #[derive(serde::Serialize)]
    struct Sample {
        load: f64,
        used: u64,
        odd: Option<i64>,
    }

    const START: i64 = 1_790_000_000_000;

    fn sample(t: i64) -> Sample {
        Sample {
            load: (t as f64 * 0.37).sin() * 50.0 + 50.0,
            used: 1_000_000 + (t as u64 * 7919) % 4096,
            odd: (t % 2 == 1).then_some(-t),
        }
    }

    fn config(dir: &Path, raw: u64, retention: u64) -> HistoryConfig {
        HistoryConfig {
            raw: Duration::from_secs(raw),
            retention: Duration::from_secs(retention),
            path: Some(dir.to_path_buf()),
        }
    }

    fn open(config: &HistoryConfig) -> History {
        History::open(config, Duration::from_secs(1)).expect("open")
    }

    fn fill(history: &History, seconds: std::ops::Range<i64>) {
        for t in seconds {
            history.append_at(START + t * 1000 + t % 7, &sample(t));
        }
    }

    /// Every sample between `from` and `to` seconds at native resolution.
    fn everything(history: &History, from: i64, to: i64) -> crate::history::Answer {
        let query = Query::new(
            Some(START + from * 1000),
            Some(START + to * 1000 + 999),
            None,
            Some("*"),
            None,
            START,
        )
        .expect("query");
        let answer = history.query("n", &query).expect("answer");
        assert!(answer.native);
        answer
    }

    fn damage(dir: &Path) -> Vec<String> {
        let mut store = Store::new(super::super::store::Keep {
            raw_ms: 3_600_000,
            minute_ms: 7 * 86_400_000,
        });
        Log::open(dir, &mut store).expect("open").damage
    }

    #[test]
    fn a_clean_stop_keeps_every_sample() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), 3600, 86_400);
        let history = open(&config);
        // Raw blocks and rows, and minutes.
        fill(&history, 0..650);
        let before = everything(&history, 0, 650);
        assert_eq!(before.timestamps.len(), 650);
        assert_eq!(before.series.len(), 3);
        history.close();
        drop(history);

        let again = open(&config);
        assert_eq!(everything(&again, 0, 650), before);
        // The minute being accumulated at the stop is rebuilt from the raw rows: the minute
        // tier goes on as if there had been no stop.
        fill(&again, 650..700);
        let uninterrupted = History::new(
            &HistoryConfig {
                path: None,
                ..config.clone()
            },
            Duration::from_secs(1),
        );
        fill(&uninterrupted, 0..700);
        assert_eq!(
            everything(&again, 0, 700),
            everything(&uninterrupted, 0, 700)
        );
        let minute_rows = |h: &History| {
            h.with_store(|s| {
                let mut rows = Vec::new();
                for block in s.minute.unsealed() {
                    block.rows_after(None, |t, row| rows.push((t, row.to_vec())));
                }
                rows
            })
        };
        assert!(minute_rows(&again).len() >= 10);
        assert_eq!(minute_rows(&again), minute_rows(&uninterrupted));
        for agg in ["mean", "min", "max"] {
            let step = Query::new(
                Some(START),
                Some(START + 700_000),
                Some("1m"),
                Some("*"),
                Some(agg),
                START,
            )
            .expect("query");
            let got = again.query("n", &step).expect("answer");
            assert!(got.series[0].1.iter().filter(|v| v.is_some()).count() >= 11);
            assert_eq!(
                got,
                uninterrupted.query("n", &step).expect("answer"),
                "{agg}"
            );
        }
        assert!(damage(dir.path()).is_empty());
    }

    #[test]
    fn a_torn_or_corrupted_tail_is_reported_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), 3600, 86_400);
        let history = open(&config);
        let rows = 2 * RAW_BLOCK_ROWS as i64 + 60;
        fill(&history, 0..rows);
        let before = everything(&history, 0, rows);
        assert_eq!(before.timestamps.len(), rows as usize);
        drop(history);

        // A torn last record of the raw tail: the rows before it are kept.
        let tail = dir.path().join("raw.tail");
        let len = fs::metadata(&tail).expect("tail").len();
        assert!(len > 100);
        OpenOptions::new()
            .write(true)
            .open(&tail)
            .and_then(|f| f.set_len(len - 5))
            .expect("cut");
        let again = open(&config);
        let got = everything(&again, 0, rows);
        let n = rows as usize - 1;
        assert_eq!(got.timestamps[..], before.timestamps[..n]);
        for ((_, want), (_, got)) in before.series.iter().zip(&got.series) {
            assert_eq!(got[..], want[..n]);
        }
        drop(again);

        // Flipped bytes in the newest raw segment's last block: earlier blocks are kept, and
        // the damage is reported once, naming the file and offset.
        let mut segments: Vec<PathBuf> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".seg"))
            .collect();
        segments.sort();
        let newest = segments.last().expect("a segment").clone();
        let mut bytes = fs::read(&newest).expect("segment");
        let n = bytes.len();
        for b in &mut bytes[n - 40..n - 30] {
            *b ^= 0xa5;
        }
        fs::write(&newest, &bytes).expect("write");
        let lines = damage(dir.path());
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains(&*newest.to_string_lossy()),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("checksum"), "{}", lines[0]);
        // Cut at the damage: a second start finds nothing wrong.
        assert!(damage(dir.path()).is_empty());
        let again = open(&config);
        let got = everything(&again, 0, rows);
        // The damaged block's rows are gone (the second block); the first block and the rows
        // after it (in the tail) are kept.
        let r = RAW_BLOCK_ROWS;
        let mut kept = before.timestamps[..r].to_vec();
        kept.extend_from_slice(&before.timestamps[2 * r..rows as usize - 1]);
        assert_eq!(got.timestamps, kept);

        // Garbage instead of a file: reported, never a panic.
        fs::write(
            dir.path().join("series.log"),
            b"\xff\xff\xff\xffnot a record",
        )
        .expect("w");
        let lines = damage(dir.path());
        assert!(lines.iter().any(|l| l.contains("series.log")), "{lines:?}");
    }

    #[test]
    fn old_segments_are_deleted_with_their_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Raw rows kept 2 minutes, minute rows 1 hour; 30 hours of samples.
        let config = config(dir.path(), 120, 3600);
        let history = open(&config);
        fill(&history, 0..30 * 3600);
        drop(history);
        let files: Vec<(String, u64)> = fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect();
        let count = |prefix: &str| files.iter().filter(|(n, _)| n.starts_with(prefix)).count();
        // 450 raw blocks and 15 minute blocks were written; what is left is the segment in
        // reach and the one being appended to.
        assert!(count("raw-") <= 2, "{files:?}");
        assert!(count("minute-") <= 2, "{files:?}");
        let total: u64 = files.iter().map(|(_, size)| size).sum();
        assert!(total < 200_000, "{total} bytes: {files:?}");
        // And what is in reach is still there.
        let again = open(&config);
        let got = everything(&again, 30 * 3600 - 100, 30 * 3600);
        assert_eq!(got.timestamps.len(), 100);
    }
}
