//! Columns of one block of rows: the open block (plain `u64` words, appended to) and the sealed
//! block (each column compressed with pco, all columns in one buffer). A block's rows share one
//! timestamp column; each series is a column (the minute tier: four, see [`super::store`]).
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

/// The rows appended since the last seal, uncompressed.
#[derive(Debug, Default, Clone)]
pub struct OpenBlock {
    /// Unix ms of each row.
    pub timestamps: Vec<i64>,
    /// One per column id; a column may be shorter than `timestamps` (no value in the last rows).
    pub columns: Vec<OpenColumn>,
}

/// One column of the open block.
#[derive(Debug, Default, Clone)]
pub struct OpenColumn {
    /// Its kind (set by the first value).
    pub kind: Option<Kind>,
    /// One word per row up to the last row with a value (0 where there was none).
    pub values: Vec<u64>,
    /// Bit `r` set: row `r` has a value.
    pub present: Vec<u64>,
}

impl OpenColumn {
    /// Sets the value of `row` (rows only grow).
    pub fn set(&mut self, row: usize, kind: Kind, bits: u64) {
        if self.values.len() > row {
            // A path seen twice in one row (a map repeating a key): the last one wins.
            self.values[row] = bits;
            return;
        }
        self.values.resize(row, 0);
        self.values.push(bits);
        let word = row / 64;
        if self.present.len() <= word {
            self.present.resize(word + 1, 0);
        }
        self.present[word] |= 1 << (row % 64);
        self.kind.get_or_insert(kind);
    }

    /// The value at `row`, if any.
    pub fn get(&self, row: usize) -> Option<u64> {
        let present = self
            .present
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0);
        if present {
            self.values.get(row).copied()
        } else {
            None
        }
    }

    fn heap_bytes(&self) -> usize {
        (self.values.capacity() + self.present.capacity()) * 8
    }
}

impl OpenBlock {
    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.timestamps.capacity() * 8
            + self.columns.capacity() * std::mem::size_of::<OpenColumn>()
            + self
                .columns
                .iter()
                .map(OpenColumn::heap_bytes)
                .sum::<usize>()
    }

    /// The timestamp of the last row.
    pub fn last_ms(&self) -> Option<i64> {
        self.timestamps.last().copied()
    }

    /// Calls `each(timestamp, row)` for every row after `after_ms`, with the row's (column id,
    /// bits) in column order.
    pub fn rows_after(&self, after_ms: Option<i64>, mut each: impl FnMut(i64, &[(u32, u64)])) {
        let mut row = Vec::with_capacity(self.columns.len());
        for (r, &t) in self.timestamps.iter().enumerate() {
            if after_ms.is_some_and(|a| t <= a) {
                continue;
            }
            row.clear();
            for (id, column) in self.columns.iter().enumerate() {
                if let Some(bits) = column.get(r) {
                    row.push((id as u32, bits));
                }
            }
            each(t, &row);
        }
    }

    /// The column `id`, created (empty) when new.
    pub fn column(&mut self, id: usize) -> &mut OpenColumn {
        if self.columns.len() <= id {
            self.columns.resize_with(id + 1, OpenColumn::default);
        }
        &mut self.columns[id]
    }

    /// Compresses the block; `None` when it has no rows.
    pub fn seal(&self) -> Result<Option<SealedBlock>, BlockError> {
        let (Some(&first), Some(&last)) = (self.timestamps.first(), self.timestamps.last()) else {
            return Ok(None);
        };
        let rows = self.timestamps.len();
        let timestamps = compress(Kind::Signed, &self.timestamps_bits())?;
        let mut data = Vec::new();
        let mut offsets = Vec::with_capacity(self.columns.len() + 1);
        let mut present_values = Vec::with_capacity(rows);
        for column in &self.columns {
            offsets.push(u32::try_from(data.len()).map_err(|_| BlockError::Corrupt("too big"))?);
            let Some(kind) = column.kind else { continue };
            present_values.clear();
            let mut all = true;
            for row in 0..rows {
                match column.get(row) {
                    Some(v) => present_values.push(v),
                    None => all = false,
                }
            }
            if present_values.is_empty() {
                continue;
            }
            if all {
                data.push(kind as u8);
            } else {
                data.push(kind as u8 | HAS_GAPS);
                let mut bitmap = vec![0u8; rows.div_ceil(8)];
                for row in 0..rows {
                    if column.get(row).is_some() {
                        bitmap[row / 8] |= 1 << (row % 8);
                    }
                }
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

    #[test]
    fn a_sealed_block_gives_back_every_value_and_gap() {
        let mut block = OpenBlock::default();
        for row in 0..300usize {
            block
                .timestamps
                .push(1_000_000 + row as i64 * 1000 + (row % 3) as i64);
            block
                .column(0)
                .set(row, Kind::Float, (row as f64 / 7.0).to_bits());
            if row % 5 != 0 {
                block
                    .column(2)
                    .set(row, Kind::Unsigned, u64::MAX - row as u64);
            }
            if row > 100 {
                block
                    .column(3)
                    .set(row, Kind::Signed, (-(row as i64)) as u64);
            }
        }
        let sealed = block.seal().unwrap().unwrap();
        assert_eq!(sealed.timestamps().unwrap(), block.timestamps);
        assert_eq!(sealed.columns(), 4);
        for id in 0..4 {
            let open: Vec<Option<u64>> = (0..300).map(|r| block.columns[id].get(r)).collect();
            match sealed.column(id).unwrap() {
                None => assert!(open.iter().all(Option::is_none), "column {id}"),
                Some((kind, values)) => {
                    assert_eq!(Some(kind), block.columns[id].kind);
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
        for row in 0..50usize {
            block.timestamps.push(row as i64);
            block
                .column(0)
                .set(row, Kind::Float, (row as f64).sqrt().to_bits());
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
}
