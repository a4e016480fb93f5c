//! A history question (`from`, `to`, `step`, `fields`, `agg`), checked, and its answer: one
//! object per node, `{node_id, from, to, step_ms, timestamps, series}`, the same over REST
//! (`GET /api/system/history`) and gRPC v1 (`GetHistory`).
//!
//! Without `step` the answer is at native resolution (each sample as served) when the window
//! holds at most [`MAX_AUTO_POINTS`] samples, else at the smallest step that gives that many
//! points. A window that starts inside the raw tier is answered from it; one that starts
//! earlier, from the minute tier (steps then are whole minutes). With a step, points are the
//! buckets `[k·step, (k+1)·step)` that meet the window, each the `agg` (mean, min or max) of
//! the values in it; a bucket without values is null.

use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::block::Kind;
use super::flatten::Number;
use super::store::{Store, Tier, COUNT, MAX, MEAN, MIN, MINUTE_COLUMNS, MINUTE_MS};
use super::HistoryError;

/// Without `step`, native resolution up to this many points; more, a coarser step.
pub const MAX_AUTO_POINTS: usize = 1_000;

/// With `step`, at most this many points (a 7-day window at 1 minute is 10,080).
pub const MAX_POINTS: usize = 11_000;

/// At most this many fields in one question.
pub const MAX_FIELDS: usize = 2_048;

/// `from` when not given: this long before `to`.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How a step's values are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    /// The mean (the default).
    #[default]
    Mean,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

impl Agg {
    /// `mean`, `min` or `max`.
    pub fn parse(text: &str) -> Result<Agg, QueryError> {
        match text {
            "mean" | "avg" => Ok(Agg::Mean),
            "min" => Ok(Agg::Min),
            "max" => Ok(Agg::Max),
            other => Err(QueryError::Agg(super::echo(other))),
        }
    }
}

/// Why a question is refused (REST 400, gRPC INVALID_ARGUMENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("from ({from}) is after to ({to})")]
    Order { from: i64, to: i64 },
    #[error("{0:?} is not a duration (try 10s, 5m, 1h or a number of seconds)")]
    Step(String),
    #[error("step must be at least 1 ms")]
    ZeroStep,
    #[error(
        "{points} points at that step; at most {max}: ask for a larger step or a shorter window"
    )]
    TooManyPoints { points: u64, max: usize },
    #[error("{0:?} is not a field: fields are dotted paths such as cpu.overall or cpu.cores.3.usage, optionally ending in * (a prefix)")]
    Field(String),
    #[error("at most {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("agg must be mean, min or max, not {0:?}")]
    Agg(String),
}

/// A checked question.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Unix ms, inclusive.
    pub from: i64,
    /// Unix ms, inclusive.
    pub to: i64,
    /// The step asked for, if any.
    pub step_ms: Option<i64>,
    /// The fields asked for; `None`: the headline set.
    pub fields: Option<Vec<String>>,
    /// How steps combine values.
    pub agg: Agg,
}

impl Query {
    /// Checks the parts of a question; `now_ms` fills the defaults.
    pub fn new(
        from: Option<i64>,
        to: Option<i64>,
        step: Option<&str>,
        fields: Option<&str>,
        agg: Option<&str>,
        now_ms: i64,
    ) -> Result<Query, QueryError> {
        let to = to.unwrap_or(now_ms);
        let from = from.unwrap_or(to - DEFAULT_WINDOW.as_millis() as i64);
        if from > to {
            return Err(QueryError::Order { from, to });
        }
        let step_ms = step.map(parse_step).transpose()?;
        let fields = fields.map(parse_fields).transpose()?;
        let agg = agg.map(Agg::parse).transpose()?.unwrap_or_default();
        Ok(Query {
            from,
            to,
            step_ms,
            fields,
            agg,
        })
    }
}

/// `10s`, `5m`, `1h`, `500ms`, or plain seconds (`30`, `0.5`).
pub fn parse_step(text: &str) -> Result<i64, QueryError> {
    let text = text.trim();
    let duration = match text.parse::<f64>() {
        Ok(seconds) if (0.0..1e12).contains(&seconds) => Duration::from_secs_f64(seconds),
        Ok(_) => return Err(QueryError::Step(super::echo(text))),
        Err(_) => {
            humantime::parse_duration(text).map_err(|_| QueryError::Step(super::echo(text)))?
        }
    };
    let ms =
        i64::try_from(duration.as_millis()).map_err(|_| QueryError::Step(super::echo(text)))?;
    if ms == 0 {
        return Err(QueryError::ZeroStep);
    }
    Ok(ms)
}

/// A comma-separated list of dotted paths; a path may end in `*` (every field under it).
pub fn parse_fields(text: &str) -> Result<Vec<String>, QueryError> {
    let mut fields = Vec::new();
    for field in text.split(',') {
        let field = field.trim();
        let ok = !field.is_empty()
            && field.len() <= 512
            && !field.starts_with('.')
            && !field.contains("..")
            && !field.chars().any(char::is_control)
            && !field[..field.len().saturating_sub(1)].contains('*');
        if !ok {
            return Err(QueryError::Field(super::echo(field)));
        }
        if fields.len() == MAX_FIELDS {
            return Err(QueryError::TooManyFields);
        }
        if !fields.iter().any(|f| f == field) {
            fields.push(field.to_string());
        }
    }
    Ok(fields)
}

/// The answer for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The node (as asked).
    pub node_id: String,
    /// The window, unix ms.
    pub from: i64,
    /// See `from`.
    pub to: i64,
    /// The step of the points; the sampling interval at native resolution.
    pub step_ms: i64,
    /// Whether points are samples as served (true) or aggregates per step.
    pub native: bool,
    /// Unix ms of each point (the sample's, or the start of the step).
    pub timestamps: Vec<i64>,
    /// Per field, in the order asked: one value per timestamp.
    pub series: Vec<(String, Vec<Option<Number>>)>,
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Number::Unsigned(v) => s.serialize_u64(v),
            Number::Signed(v) => s.serialize_i64(v),
            Number::Float(v) if v.is_finite() => s.serialize_f64(v),
            Number::Float(_) => s.serialize_none(),
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Series<'a>(&'a [(String, Vec<Option<Number>>)]);
        impl Serialize for Series<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (name, values) in self.0 {
                    map.serialize_entry(name, values)?;
                }
                map.end()
            }
        }
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("node_id", &self.node_id)?;
        map.serialize_entry("from", &self.from)?;
        map.serialize_entry("to", &self.to)?;
        map.serialize_entry("step_ms", &self.step_ms)?;
        map.serialize_entry("timestamps", &self.timestamps)?;
        map.serialize_entry("series", &Series(&self.series))?;
        map.end()
    }
}

/// The headline fields: what a chart of the node shows first.
pub fn headline(store: &Store) -> Vec<String> {
    let mut fields: Vec<String> = [
        "cpu.overall",
        "memory.used",
        "memory.usage",
        "disk.ioRead",
        "disk.ioWrite",
        "network.bytesIn",
        "network.bytesOut",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for i in 0.. {
        let utilization = format!("accelerators.{i}.utilization");
        let memory = format!("accelerators.{i}.memory.used");
        if store.catalog.id(&utilization).is_none() && store.catalog.id(&memory).is_none() {
            break;
        }
        fields.push(utilization);
        fields.push(memory);
    }
    fields
}

/// The fields of `asked`, with prefixes (`cpu.cores.*`) expanded to the known series in id
/// order, and the series id of each (None: never seen, all null).
fn resolve(store: &Store, asked: &[String]) -> Vec<(String, Option<u32>)> {
    let mut out: Vec<(String, Option<u32>)> = Vec::new();
    for field in asked {
        if let Some(prefix) = field.strip_suffix('*') {
            for (id, series) in store.catalog.series.iter().enumerate() {
                if series.path.starts_with(prefix) && !out.iter().any(|(f, _)| **f == *series.path)
                {
                    out.push((series.path.to_string(), Some(id as u32)));
                }
            }
        } else if !out.iter().any(|(f, _)| f == field) {
            out.push((field.clone(), store.catalog.id(field)));
        }
        if out.len() > MAX_FIELDS {
            out.truncate(MAX_FIELDS);
            break;
        }
    }
    out
}

/// Answers `query` from `store` for `node_id`; `interval_ms` is the sampling interval.
pub fn answer(
    store: &Store,
    node_id: &str,
    query: &Query,
    interval_ms: i64,
) -> Result<Answer, HistoryError> {
    let fields = match &query.fields {
        Some(asked) => resolve(store, asked),
        None => resolve(store, &headline(store)),
    };
    let span = query.to - query.from;
    let interval_ms = interval_ms.max(1);
    // The raw tier answers a window that starts within its reach (even where a young node has
    // less than that): the minute tier holds nothing older than the raw tier does.
    let in_raw = store
        .latest_ms
        .is_none_or(|latest| query.from >= latest - store.keep.raw_ms);
    let step = match query.step_ms {
        Some(step) if step <= interval_ms && in_raw => None,
        Some(step) if in_raw => Some(step),
        Some(step) => Some(round_up(step.max(MINUTE_MS), MINUTE_MS)),
        None if in_raw => {
            let samples = count_rows(&store.raw, query.from, query.to);
            if samples <= MAX_AUTO_POINTS {
                None
            } else {
                Some(round_up(ceil_div(span + 1, MAX_AUTO_POINTS as i64), 1000))
            }
        }
        None => Some(round_up(
            ceil_div(span + 1, MAX_AUTO_POINTS as i64).max(MINUTE_MS),
            MINUTE_MS,
        )),
    };
    let mut answer = Answer {
        node_id: node_id.to_string(),
        from: query.from,
        to: query.to,
        step_ms: step.unwrap_or(interval_ms),
        native: step.is_none(),
        timestamps: Vec::new(),
        series: Vec::new(),
    };
    match step {
        None => native(store, &fields, query, &mut answer)?,
        Some(step) => {
            let first = query.from.div_euclid(step);
            let last = query.to.div_euclid(step);
            let points = (last - first + 1) as u64;
            if points > MAX_POINTS as u64 {
                return Err(QueryError::TooManyPoints {
                    points,
                    max: MAX_POINTS,
                }
                .into());
            }
            answer.timestamps = (first..=last).map(|k| k * step).collect();
            if in_raw {
                aggregate_raw(store, &fields, query, step, &mut answer)?;
            } else {
                aggregate_minutes(store, &fields, query, step, &mut answer)?;
            }
        }
    }
    Ok(answer)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

fn round_up(v: i64, unit: i64) -> i64 {
    ceil_div(v, unit) * unit
}

/// Rows of `tier` within `[from, to]`, counted from block bounds and open timestamps.
fn count_rows(tier: &Tier, from: i64, to: i64) -> usize {
    let mut n = 0;
    for block in &tier.sealed {
        if block.last_ms < from || block.first_ms > to {
            continue;
        }
        if block.first_ms >= from && block.last_ms <= to {
            n += block.rows as usize;
        } else if let Ok(ts) = block.timestamps() {
            n += ts.iter().filter(|&&t| t >= from && t <= to).count();
        }
    }
    n + tier
        .unsealed()
        .map(|open| {
            open.timestamps
                .iter()
                .filter(|&&t| t >= from && t <= to)
                .count()
        })
        .sum::<usize>()
}

/// Calls `each(timestamps, column)` for each block of `tier` (sealed, then full and open:
/// blocks waiting to be sealed are read as they are) that meets
/// `[from, to]`, with the block's timestamps and the decoded column of each id in `ids`.
fn scan(
    tier: &Tier,
    from: i64,
    to: i64,
    ids: &[Option<usize>],
    mut each: impl FnMut(&[i64], &[Option<(Kind, Vec<Option<u64>>)>]),
) -> Result<(), HistoryError> {
    for block in &tier.sealed {
        if block.last_ms < from || block.first_ms > to {
            continue;
        }
        let ts = block.timestamps()?;
        let columns = ids
            .iter()
            .map(|id| match id {
                Some(id) => block.column(*id),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        each(&ts, &columns);
    }
    for open in tier.unsealed() {
        if !(open.timestamps.first().is_some_and(|&t| t <= to)
            && open.timestamps.last().is_some_and(|&t| t >= from))
        {
            continue;
        }
        let columns: Vec<_> = ids
            .iter()
            .map(|id| id.and_then(|id| open.column(id)))
            .collect();
        each(&open.timestamps, &columns);
    }
    Ok(())
}

fn native(
    store: &Store,
    fields: &[(String, Option<u32>)],
    query: &Query,
    answer: &mut Answer,
) -> Result<(), HistoryError> {
    let ids: Vec<Option<usize>> = fields
        .iter()
        .map(|(_, id)| id.map(|i| i as usize))
        .collect();
    let mut values: Vec<Vec<Option<Number>>> = vec![Vec::new(); fields.len()];
    let timestamps = &mut answer.timestamps;
    scan(&store.raw, query.from, query.to, &ids, |ts, columns| {
        for (row, &t) in ts.iter().enumerate() {
            if t < query.from || t > query.to {
                continue;
            }
            timestamps.push(t);
            for (out, column) in values.iter_mut().zip(columns) {
                out.push(column.as_ref().and_then(|(kind, col)| {
                    col.get(row).copied().flatten().map(|b| kind.number(b))
                }));
            }
        }
    })?;
    answer.series = fields.iter().map(|(f, _)| f.clone()).zip(values).collect();
    Ok(())
}

/// Each field's series: its buckets' `agg`, `None` for an empty bucket.
fn bucket_series(
    fields: &[(String, Option<u32>)],
    buckets: &[Vec<Bucket>],
    agg: Agg,
) -> Vec<(String, Vec<Option<Number>>)> {
    fields
        .iter()
        .zip(buckets)
        .map(|((f, _), b)| (f.clone(), b.iter().map(|b| b.value(agg)).collect()))
        .collect()
}

/// Per bucket: min, max, sum and count of the values in it.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    min: f64,
    max: f64,
    min_n: Option<Number>,
    max_n: Option<Number>,
    sum: f64,
    count: f64,
}

impl Bucket {
    /// Adds the value `bits` of `kind`, standing for `weight` samples (a minute row's count).
    fn add(&mut self, kind: Kind, bits: u64, weight: f64) {
        let v = kind.float(bits);
        if v < self.min {
            self.min = v;
            self.min_n = Some(kind.number(bits));
        }
        if v > self.max {
            self.max = v;
            self.max_n = Some(kind.number(bits));
        }
        self.sum += v * weight;
        self.count += weight;
    }
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            min_n: None,
            max_n: None,
            sum: 0.0,
            count: 0.0,
        }
    }
}

impl Bucket {
    fn value(&self, agg: Agg) -> Option<Number> {
        if self.count == 0.0 {
            return None;
        }
        match agg {
            Agg::Mean => Some(Number::Float(self.sum / self.count)),
            // The extremes are samples: given back as the sample was (an integer stays one).
            Agg::Min => self.min_n,
            Agg::Max => self.max_n,
        }
    }
}

fn aggregate_raw(
    store: &Store,
    fields: &[(String, Option<u32>)],
    query: &Query,
    step: i64,
    answer: &mut Answer,
) -> Result<(), HistoryError> {
    let ids: Vec<Option<usize>> = fields
        .iter()
        .map(|(_, id)| id.map(|i| i as usize))
        .collect();
    let first = query.from.div_euclid(step);
    let n = answer.timestamps.len();
    let mut buckets = vec![vec![Bucket::default(); n]; fields.len()];
    scan(&store.raw, query.from, query.to, &ids, |ts, columns| {
        for (row, &t) in ts.iter().enumerate() {
            if t < query.from || t > query.to {
                continue;
            }
            let b = (t.div_euclid(step) - first) as usize;
            for (out, column) in buckets.iter_mut().zip(columns) {
                let Some((kind, col)) = column else { continue };
                let Some(bits) = col.get(row).copied().flatten() else {
                    continue;
                };
                out[b].add(*kind, bits, 1.0);
            }
        }
    })?;
    answer.series = bucket_series(fields, &buckets, query.agg);
    Ok(())
}

fn aggregate_minutes(
    store: &Store,
    fields: &[(String, Option<u32>)],
    query: &Query,
    step: i64,
    answer: &mut Answer,
) -> Result<(), HistoryError> {
    // Per field, the minute column that agg needs, and the count (to weigh means).
    let wanted = match query.agg {
        Agg::Mean => MEAN,
        Agg::Min => MIN,
        Agg::Max => MAX,
    };
    let mut ids: Vec<Option<usize>> = Vec::with_capacity(fields.len() * 2);
    for (_, id) in fields {
        let base = id.map(|i| i as usize * MINUTE_COLUMNS);
        ids.push(base.map(|b| b + wanted));
        ids.push(if query.agg == Agg::Mean {
            base.map(|b| b + COUNT)
        } else {
            None
        });
    }
    let first = query.from.div_euclid(step);
    let n = answer.timestamps.len();
    let mut buckets = vec![vec![Bucket::default(); n]; fields.len()];
    // A minute row stands for [minute, minute + 1 min): it belongs to the window when that
    // range meets it.
    let from = query.from - (MINUTE_MS - 1);
    scan(&store.minute, from, query.to, &ids, |ts, columns| {
        for (row, &t) in ts.iter().enumerate() {
            if t < from || t > query.to {
                continue;
            }
            let b = (t.max(query.from).div_euclid(step) - first) as usize;
            for (f, out) in buckets.iter_mut().enumerate() {
                let Some((kind, col)) = &columns[2 * f] else {
                    continue;
                };
                let Some(bits) = col.get(row).copied().flatten() else {
                    continue;
                };
                let weight = columns[2 * f + 1]
                    .as_ref()
                    .and_then(|(_, c)| c.get(row).copied().flatten())
                    .map_or(1.0, |c| c as f64);
                if let Some(bucket) = out.get_mut(b) {
                    bucket.add(*kind, bits, weight);
                }
            }
        }
    })?;
    answer.series = bucket_series(fields, &buckets, query.agg);
    Ok(())
}
