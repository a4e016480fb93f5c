//! One block of rows: the open block (plain `u64` words, row-major: each row appended with one
//! copy) and the sealed block (each column compressed with pco, all columns in one buffer). A
//! block's rows share one timestamp column; each series is a column (the minute tier: four, see
//! [`super::store`]).
//!
//! A value is kept as its 64 bits (`u64` as is, `i64` as two's complement, `f64` by
//! [`f64::to_bits`]) with its [`Kind`], so every tier gives back exactly the number it was
//! given. A row where a series had no value is marked in a presence bitmap; the compressed
//! column holds the present values only (gaps would break pco's runs and deltas).

use super::flatten::Number;

/// How a column's 64-bit words are to be read. The byte values are part of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `u64`.
    Unsigned = 0,
    /// `i64`.
    Signed = 1,
    /// `f64` bits.
    Float = 2,
}

impl Kind {
    /// The kind and bits of `n`.
    pub fn of(n: Number) -> (Kind, u64) {
        match n {
            Number::Unsigned(v) => (Kind::Unsigned, v),
            Number::Signed(v) => (Kind::Signed, v as u64),
            Number::Float(v) => (Kind::Float, v.to_bits()),
        }
    }

    /// `n` as bits of this kind: a field keeps the kind it first had (the element's types do
    /// not change; a plugin's might), converted as Rust's `as` does.
    #[inline(always)]
    pub fn bits(self, n: Number) -> u64 {
        match (self, n) {
            (Kind::Unsigned, Number::Unsigned(v)) => v,
            (Kind::Unsigned, Number::Signed(v)) => v.max(0) as u64,
            (Kind::Unsigned, Number::Float(v)) => v as u64,
            (Kind::Signed, Number::Signed(v)) => v as u64,
            (Kind::Signed, Number::Unsigned(v)) => v.min(i64::MAX as u64),
            (Kind::Signed, Number::Float(v)) => (v as i64) as u64,
            (Kind::Float, Number::Float(v)) => v.to_bits(),
            (Kind::Float, Number::Unsigned(v)) => (v as f64).to_bits(),
            (Kind::Float, Number::Signed(v)) => (v as f64).to_bits(),
        }
    }

    /// The number these bits hold.
    pub fn number(self, bits: u64) -> Number {
        match self {
            Kind::Unsigned => Number::Unsigned(bits),
            Kind::Signed => Number::Signed(bits as i64),
            Kind::Float => Number::Float(f64::from_bits(bits)),
        }
    }

    /// The number as a float, for means.
    #[inline(always)]
    pub fn float(self, bits: u64) -> f64 {
        match self {
            Kind::Unsigned => bits as f64,
            Kind::Signed => bits as i64 as f64,
            Kind::Float => f64::from_bits(bits),
        }
    }

    /// The kind stored in a byte.
    pub fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Unsigned),
            1 => Some(Kind::Signed),
            2 => Some(Kind::Float),
            _ => None,
        }
    }
}

/// Why a sealed block could not be read (a corrupted file; never a block built in memory).
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("compressing a history column: {0}")]
    Compress(#[source] pco::errors::PcoError),
    #[error("a history block is corrupted: {0}")]
    Corrupt(&'static str),
    #[error("a history block column does not decompress: {0}")]
    Decompress(#[source] pco::errors::PcoError),
}

/// pco's compression level. 8 (its default) gave 1–2 % smaller blocks than 4 on the recorded
/// trace at twice the sealing time; the sealing runs once per block per series.
const LEVEL: usize = 4;

/// Flag in a column's first byte: a presence bitmap follows.
const HAS_GAPS: u8 = 0x80;

/// Words per chunk of an open block's rows, at most (64 KiB) unless one row is larger: chunks
/// hold whole rows and grow from one row up to this, so that a block holds about what its rows
/// need and a chunk is never moved.
const CHUNK_WORDS: usize = 8192;

/// One row being built: a word per column id and a presence bitmap. Kept by the store and
/// reused by every append (no allocation once it is as wide as the catalog).
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// One word per column id (0 where there is no value).
    values: Vec<u64>,
    /// Bit `id % 64` of word `id / 64` set: column `id` has a value.
    present: Vec<u64>,
}

impl Row {
    /// Removes every value (keeps the buffers).
    pub fn clear(&mut self) {
        self.values.fill(0);
        self.present.fill(0);
    }

    /// Sets column `id` to `bits`; a column set twice keeps the last value (a path seen twice in
    /// one sample: a map repeating a key).
    #[inline(always)]
    pub fn set(&mut self, id: usize, bits: u64) {
        if id >= self.values.len() {
            self.reserve(id + 1);
        }
        if let (Some(value), Some(word)) = (self.values.get_mut(id), self.present.get_mut(id / 64))
        {
            *value = bits;
            *word |= 1 << (id % 64);
        }
    }

    /// Makes room for columns `0..columns` (no value), so that setting them does not grow the
    /// row; out of line, as [`Row::set`] is inlined in every leaf of the walk.
    #[inline(never)]
    pub fn reserve(&mut self, columns: usize) {
        if columns > self.values.len() {
            self.values.resize(columns, 0);
            self.present.resize(columns.div_ceil(64), 0);
        }
    }

    /// The value of column `id`, if any.
    pub fn get(&self, id: usize) -> Option<u64> {
        bit(&self.present, id).then(|| self.values[id])
    }

    /// The (column id, bits) of every value, in column order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        ones(&self.present).map(|id| (id, self.values[id]))
    }

    /// Calls `each(column id, bits)` for every value, in column order (what [`Row::iter`]
    /// gives, as plain loops: this runs for every value appended).
    #[inline(always)]
    pub fn for_each(&self, mut each: impl FnMut(usize, u64)) {
        let mut i = 0;
        while i < self.present.len() {
            let mut word = self.present[i];
            while word != 0 {
                let id = i * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                if let Some(&bits) = self.values.get(id) {
                    each(id, bits);
                }
            }
            i += 1;
        }
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        (self.values.capacity() + self.present.capacity()) * 8
    }

    /// One more than the last column with a value (0 when empty).
    fn width(&self) -> usize {
        self.present.iter().rposition(|&w| w != 0).map_or(0, |i| {
            i * 64 + 64 - self.present[i].leading_zeros() as usize
        })
    }
}

/// Whether bit `i` of `bitmap` is set.
#[inline]
fn bit(bitmap: &[u64], i: usize) -> bool {
    bitmap.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

/// The set bits of `bitmap`, in order.
fn ones(bitmap: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bitmap.iter().enumerate().flat_map(|(i, &word)| {
        let mut w = word;
        std::iter::from_fn(move || {
            if w == 0 {
                return None;
            }
            let b = w.trailing_zeros() as usize;
            w &= w - 1;
            Some(i * 64 + b)
        })
    })
}

/// Where one row of an open block lies: `bitmap words` then `width` values, from `start` of
/// chunk `chunk`.
#[derive(Debug, Clone, Copy)]
struct RowAt {
    chunk: u32,
    start: u32,
    width: u32,
}

impl RowAt {
    fn bitmap_words(self) -> usize {
        (self.width as usize).div_ceil(64)
    }
}

/// The rows appended since the last seal, uncompressed and row-major: a row is its presence
/// bitmap followed by one word per column id up to its last value, appended with one copy.
/// Columns are gathered (transposed) only when the block is sealed or a query reads one. The
/// rows sit in chunks that grow with the rows appended and are never moved.
#[derive(Debug, Default, Clone)]
pub struct OpenBlock {
    /// Unix ms of each row.
    pub timestamps: Vec<i64>,
    /// Where each row is.
    rows: Vec<RowAt>,
    /// The rows' words.
    chunks: Vec<Vec<u64>>,
    /// Kind of each column id, set by its first value (meaningful where `any` is set).
    kinds: Vec<Kind>,
    /// Bit `id` set: column `id` has a value in some row.
    any: Vec<u64>,
}

impl OpenBlock {
    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.timestamps.capacity() * 8
            + self.rows.capacity() * std::mem::size_of::<RowAt>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u64>>()
            + self.chunks.iter().map(|c| c.capacity() * 8).sum::<usize>()
            + self.kinds.capacity()
            + self.any.capacity() * 8
    }

    /// The timestamp of the last row.
    pub fn last_ms(&self) -> Option<i64> {
        self.timestamps.last().copied()
    }

    /// Appends a row at `timestamp` with the values of `row`; `kind_of(id)` is the kind of
    /// column `id`, asked for once, at its first value in the block.
    pub fn push_row(&mut self, timestamp: i64, row: &Row, kind_of: impl Fn(usize) -> Kind) {
        let width = row.width();
        let words = width.div_ceil(64);
        let at = self.reserve(words + width);
        let chunk = &mut self.chunks[at.chunk as usize];
        chunk.extend_from_slice(&row.present[..words]);
        chunk.extend_from_slice(&row.values[..width]);
        self.rows.push(RowAt {
            width: width as u32,
            ..at
        });
        self.timestamps.push(timestamp);
        self.note_kinds(&row.present[..words], kind_of);
    }

    /// The chunk and offset where a row of `len` words goes, with room for it.
    fn reserve(&mut self, len: usize) -> RowAt {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= len);
        if !fits {
            // Whole rows (a chunk's tail is not left unused), as many as the block holds so
            // far, at least one and at most what fits in `CHUNK_WORDS`.
            let held: usize = self.chunks.iter().map(Vec::capacity).sum();
            let per_row = len.max(1);
            let rows = (held / per_row).clamp(1, (CHUNK_WORDS / per_row).max(1));
            self.chunks.push(Vec::with_capacity(rows * len));
        }
        let chunk = self.chunks.len() - 1;
        RowAt {
            chunk: chunk as u32,
            start: self.chunks[chunk].len() as u32,
            width: 0,
        }
    }

    /// Records the kind of each column that has its first value in a row of `present`.
    fn note_kinds(&mut self, present: &[u64], kind_of: impl Fn(usize) -> Kind) {
        if self.any.len() < present.len() {
            self.any.resize(present.len(), 0);
        }
        for (i, (&p, any)) in present.iter().zip(self.any.iter_mut()).enumerate() {
            let mut new = p & !*any;
            if new == 0 {
                continue;
            }
            *any |= new;
            while new != 0 {
                let id = i * 64 + new.trailing_zeros() as usize;
                new &= new - 1;
                if self.kinds.len() <= id {
                    self.kinds.resize(id + 1, Kind::Unsigned);
                }
                self.kinds[id] = kind_of(id);
            }
        }
    }

    /// Row `r`: its presence bitmap and values.
    fn row(&self, r: usize) -> (&[u64], &[u64]) {
        let Some(&at) = self.rows.get(r) else {
            return (&[], &[]);
        };
        let start = at.start as usize;
        let words = at.bitmap_words();
        let slice = &self.chunks[at.chunk as usize][start..start + words + at.width as usize];
        slice.split_at(words)
    }

    /// The value of column `id` at row `r`, if any.
    pub fn get(&self, r: usize, id: usize) -> Option<u64> {
        let (present, values) = self.row(r);
        bit(present, id).then(|| values[id])
    }

    /// Number of column ids: one more than the last with a value.
    pub fn columns(&self) -> usize {
        let mut n = self.kinds.len();
        while n > 0 && !bit(&self.any, n - 1) {
            n -= 1;
        }
        n
    }

    /// The kind of column `id`, or `None` when it has no value in this block.
    pub fn kind(&self, id: usize) -> Option<Kind> {
        bit(&self.any, id).then(|| self.kinds[id])
    }

    /// Column `id`: its kind and one entry per row (`None`: no value), or `None` when the block
    /// has no value of it.
    #[allow(clippy::type_complexity)]
    pub fn column(&self, id: usize) -> Option<(Kind, Vec<Option<u64>>)> {
        let kind = self.kind(id)?;
        Some((
            kind,
            (0..self.rows.len()).map(|r| self.get(r, id)).collect(),
        ))
    }

    /// Number of values held (all columns, all rows).
    pub fn values(&self) -> usize {
        (0..self.rows.len())
            .map(|r| {
                let (present, _) = self.row(r);
                present
                    .iter()
                    .map(|w| w.count_ones() as usize)
                    .sum::<usize>()
            })
            .sum()
    }

    /// Calls `each(timestamp, row)` for every row after `after_ms`, with the row's (column id,
    /// bits) in column order.
    pub fn rows_after(&self, after_ms: Option<i64>, mut each: impl FnMut(i64, &[(u32, u64)])) {
        let mut out = Vec::new();
        for (r, &t) in self.timestamps.iter().enumerate() {
            if after_ms.is_some_and(|a| t <= a) {
                continue;
            }
            let (present, values) = self.row(r);
            out.clear();
            out.extend(ones(present).map(|id| (id as u32, values[id])));
            each(t, &out);
        }
    }

    /// Compresses the block; `None` when it has no rows.
    pub fn seal(&self) -> Result<Option<SealedBlock>, BlockError> {
        let (Some(&first), Some(&last)) = (self.timestamps.first(), self.timestamps.last()) else {
            return Ok(None);
        };
        let rows = self.timestamps.len();
        let timestamps = compress(Kind::Signed, &self.timestamps_bits())?;
        let columns = self.columns();
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(columns + 1);
        let mut present_values = Vec::with_capacity(rows);
        let mut bitmap = vec![0u8; rows.div_ceil(8)];
        for id in 0..columns {
            offsets.push(u32::try_from(data.len()).map_err(|_| BlockError::Corrupt("too big"))?);
            let Some(kind) = self.kind(id) else { continue };
            present_values.clear();
            bitmap.fill(0);
            for row in 0..rows {
                if let Some(v) = self.get(row, id) {
                    present_values.push(v);
                    bitmap[row / 8] |= 1 << (row % 8);
                }
            }
            if present_values.is_empty() {
                continue;
            }
            if present_values.len() == rows {
                data.push(kind as u8);
            } else {
                data.push(kind as u8 | HAS_GAPS);
                data.extend_from_slice(&bitmap);
            }
            data.extend_from_slice(&compress(kind, &present_values)?);
        }
        offsets.push(u32::try_from(data.len()).map_err(|_| BlockError::Corrupt("too big"))?);
        Ok(Some(SealedBlock {
            first_ms: first,
            last_ms: last,
            rows: rows as u32,
            timestamps: timestamps.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
            data: data.into_boxed_slice(),
        }))
    }

    fn timestamps_bits(&self) -> Vec<u64> {
        self.timestamps.iter().map(|&t| t as u64).collect()
    }
}

/// A block of rows, compressed. Read-only; dropped whole when it leaves its tier.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedBlock {
    /// Unix ms of the first row.
    pub first_ms: i64,
    /// Unix ms of the last row.
    pub last_ms: i64,
    /// Number of rows.
    pub rows: u32,
    /// The rows' timestamps, pco-compressed `i64` (regular intervals cost almost nothing: pco
    /// finds the delta order itself).
    pub timestamps: Box<[u8]>,
    /// Where each column starts in `data`, one more than there are columns; an empty range is
    /// a column with no value in this block.
    pub offsets: Box<[u32]>,
    /// The columns: kind byte (with `HAS_GAPS`), presence bitmap when gappy, pco bytes.
    pub data: Box<[u8]>,
}

impl SealedBlock {
    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.timestamps.len() + self.offsets.len() * 4 + self.data.len()
    }

    /// Number of columns.
    pub fn columns(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The rows' timestamps.
    pub fn timestamps(&self) -> Result<Vec<i64>, BlockError> {
        let ts: Vec<i64> =
            pco::standalone::simple_decompress(&self.timestamps).map_err(BlockError::Decompress)?;
        if ts.len() != self.rows as usize {
            return Err(BlockError::Corrupt("timestamp count"));
        }
        Ok(ts)
    }

    /// Column `id`: its kind and one entry per row (`None`: no value), or `None` when the block
    /// has no value of it.
    #[allow(clippy::type_complexity)]
    pub fn column(&self, id: usize) -> Result<Option<(Kind, Vec<Option<u64>>)>, BlockError> {
        let (Some(&start), Some(&end)) = (self.offsets.get(id), self.offsets.get(id + 1)) else {
            return Ok(None);
        };
        let (start, end) = (start as usize, end as usize);
        if start == end {
            return Ok(None);
        }
        let bytes = self
            .data
            .get(start..end)
            .ok_or(BlockError::Corrupt("column offsets"))?;
        let rows = self.rows as usize;
        let (&head, rest) = bytes.split_first().ok_or(BlockError::Corrupt("empty"))?;
        let kind = Kind::from_byte(head & !HAS_GAPS).ok_or(BlockError::Corrupt("kind"))?;
        let (bitmap, packed) = if head & HAS_GAPS != 0 {
            let n = rows.div_ceil(8);
            if rest.len() < n {
                return Err(BlockError::Corrupt("bitmap"));
            }
            let (bitmap, packed) = rest.split_at(n);
            (Some(bitmap), packed)
        } else {
            (None, rest)
        };
        let values = decompress(kind, packed)?;
        let mut out = Vec::with_capacity(rows);
        let mut next = values.iter();
        for row in 0..rows {
            let present = bitmap.is_none_or(|b| b[row / 8] & (1 << (row % 8)) != 0);
            out.push(if present {
                Some(*next.next().ok_or(BlockError::Corrupt("too few values"))?)
            } else {
                None
            });
        }
        if next.next().is_some() {
            return Err(BlockError::Corrupt("too many values"));
        }
        Ok(Some((kind, out)))
    }
}

fn config() -> pco::ChunkConfig {
    pco::ChunkConfig::default().with_compression_level(LEVEL)
}

/// pco bytes of `bits` read as `kind` (so that pco sees floats as floats).
fn compress(kind: Kind, bits: &[u64]) -> Result<Vec<u8>, BlockError> {
    let compressed = match kind {
        Kind::Unsigned => pco::standalone::simple_compress(bits, &config()),
        Kind::Signed => {
            let v: Vec<i64> = bits.iter().map(|&b| b as i64).collect();
            pco::standalone::simple_compress(&v, &config())
        }
        Kind::Float => {
            let v: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
            pco::standalone::simple_compress(&v, &config())
        }
    };
    compressed.map_err(BlockError::Compress)
}

fn decompress(kind: Kind, bytes: &[u8]) -> Result<Vec<u64>, BlockError> {
    let bits = match kind {
        Kind::Unsigned => pco::standalone::simple_decompress::<u64>(bytes),
        Kind::Signed => pco::standalone::simple_decompress::<i64>(bytes)
            .map(|v| v.into_iter().map(|x| x as u64).collect()),
        Kind::Float => pco::standalone::simple_decompress::<f64>(bytes)
            .map(|v| v.into_iter().map(f64::to_bits).collect()),
    };
    bits.map_err(BlockError::Decompress)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a row of (column id, kind, bits) at `t`.
    fn push(block: &mut OpenBlock, row: &mut Row, t: i64, values: &[(usize, Kind, u64)]) {
        row.clear();
        for &(id, _, bits) in values {
            row.set(id, bits);
        }
        block.push_row(t, row, |id| {
            values
                .iter()
                .find(|v| v.0 == id)
                .map_or(Kind::Unsigned, |v| v.1)
        });
    }

    #[test]
    fn a_sealed_block_gives_back_every_value_and_gap() {
        let mut block = OpenBlock::default();
        let mut row = Row::default();
        for r in 0..300usize {
            let mut values = vec![(0, Kind::Float, (r as f64 / 7.0).to_bits())];
            if r % 5 != 0 {
                values.push((2, Kind::Unsigned, u64::MAX - r as u64));
            }
            if r > 100 {
                values.push((3, Kind::Signed, (-(r as i64)) as u64));
            }
            push(
                &mut block,
                &mut row,
                1_000_000 + r as i64 * 1000 + (r % 3) as i64,
                &values,
            );
        }
        let sealed = block.seal().unwrap().unwrap();
        assert_eq!(sealed.timestamps().unwrap(), block.timestamps);
        assert_eq!(sealed.columns(), 4);
        for id in 0..4 {
            let open: Vec<Option<u64>> = (0..300).map(|r| block.get(r, id)).collect();
            match sealed.column(id).unwrap() {
                None => assert!(open.iter().all(Option::is_none), "column {id}"),
                Some((kind, values)) => {
                    assert_eq!(Some(kind), block.kind(id));
                    assert_eq!(values, open, "column {id}");
                }
            }
        }
        assert!(sealed.column(1).unwrap().is_none());
        assert!(sealed.column(9).unwrap().is_none());
    }

    #[test]
    fn a_corrupted_block_is_an_error_not_a_panic() {
        let mut block = OpenBlock::default();
        let mut row = Row::default();
        for r in 0..50usize {
            let bits = (r as f64).sqrt().to_bits();
            push(&mut block, &mut row, r as i64, &[(0, Kind::Float, bits)]);
        }
        let sealed = block.seal().unwrap().unwrap();
        for cut in 0..sealed.data.len() {
            let mut broken = sealed.clone();
            broken.data = sealed.data[..cut].into();
            let _ = broken.column(0);
            let mut flipped = sealed.clone();
            let mut data = sealed.data.to_vec();
            data[cut] ^= 0x5a;
            flipped.data = data.into();
            let _ = flipped.column(0);
        }
    }

    /// What each row of the shape-changing block below holds: ids 0..width, some missing.
    fn expected(r: usize) -> Vec<(usize, Kind, u64)> {
        // Wider (new series, past a bitmap word), then narrower (series gone), then back.
        let width = match r {
            0..=9 => 3,
            10..=19 => 130,
            20..=29 => 2,
            _ => 70,
        };
        (0..width)
            .filter(|id| !(id + r).is_multiple_of(7))
            .map(|id| {
                let kind = [Kind::Unsigned, Kind::Signed, Kind::Float][id % 3];
                (id, kind, (r * 1000 + id) as u64)
            })
            .collect()
    }

    #[test]
    fn a_row_major_block_gives_back_every_value_and_gap_across_shape_changes() {
        let mut block = OpenBlock::default();
        let mut row = Row::default();
        let rows = 40;
        for r in 0..rows {
            push(&mut block, &mut row, r as i64 * 10, &expected(r));
        }
        assert_eq!(block.timestamps.len(), rows);
        assert_eq!(block.columns(), 130);
        let by_column: Vec<Vec<Option<u64>>> = (0..131)
            .map(|id| {
                (0..rows)
                    .map(|r| expected(r).iter().find(|e| e.0 == id).map(|e| e.2))
                    .collect()
            })
            .collect();
        let sealed = block.seal().unwrap().unwrap();
        for (id, want) in by_column.iter().enumerate() {
            let kind = [Kind::Unsigned, Kind::Signed, Kind::Float][id % 3];
            for (r, v) in want.iter().enumerate() {
                assert_eq!(block.get(r, id), *v, "row {r} column {id}");
            }
            let open = block.column(id);
            let sealed = sealed.column(id).unwrap();
            if want.iter().all(Option::is_none) {
                assert!(open.is_none() && sealed.is_none(), "column {id}");
                assert_eq!(block.kind(id), None);
            } else {
                assert_eq!(open, Some((kind, want.clone())), "column {id}");
                assert_eq!(sealed, Some((kind, want.clone())), "column {id}");
            }
        }
        let mut seen = Vec::new();
        block.rows_after(Some(185), |t, row| seen.push((t, row.to_vec())));
        let want: Vec<(i64, Vec<(u32, u64)>)> = (19..rows)
            .map(|r| {
                let row = expected(r)
                    .iter()
                    .map(|&(id, _, b)| (id as u32, b))
                    .collect();
                (r as i64 * 10, row)
            })
            .collect();
        assert_eq!(seen, want);
        assert_eq!(
            block.values(),
            (0..rows).map(|r| expected(r).len()).sum::<usize>()
        );
    }

    #[test]
    fn a_column_set_twice_in_one_row_keeps_the_last_value() {
        let mut row = Row::default();
        row.set(5, 1);
        row.set(5, 2);
        row.set(1, 3);
        assert_eq!(row.iter().collect::<Vec<_>>(), [(1, 3), (5, 2)]);
        let mut block = OpenBlock::default();
        block.push_row(7, &row, |_| Kind::Unsigned);
        assert_eq!(block.get(0, 5), Some(2));
        assert_eq!(block.get(0, 1), Some(3));
        assert_eq!(block.get(0, 0), None);
        row.clear();
        assert_eq!(row.iter().count(), 0);
        assert_eq!(row.get(5), None);
    }

    #[test]
    fn an_open_block_grows_with_its_rows() {
        // The raw tier of the bench host, and its minute tier (rows wider than half a chunk).
        for width in [727, 4 * 727] {
            grows_with_its_rows(width);
        }
    }

    fn grows_with_its_rows(width: usize) {
        let mut block = OpenBlock::default();
        let mut row = Row::default();
        for r in 0..240usize {
            row.clear();
            for id in 0..width {
                row.set(id, (r + id) as u64);
            }
            block.push_row(r as i64, &row, |_| Kind::Unsigned);
            let needed = (r + 1) * (width + width.div_ceil(64)) * 8;
            let held = block.heap_bytes();
            // The rows' words, one chunk not yet full at most, the per-row index.
            assert!(held >= needed, "row {r}: {held} < {needed}");
            let row_bytes = (width + width.div_ceil(64)) * 8;
            assert!(
                held <= needed + (CHUNK_WORDS * 8).max(row_bytes) + (r + 1) * 64 + 16 * 1024,
                "row {r}: {held} for {needed}"
            );
        }
    }
}
