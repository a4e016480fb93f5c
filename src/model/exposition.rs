//! The Prometheus text exposition format (0.0.4) read back: a pure parser over `&str` into
//! families of samples, for metrics other programs write (the textfile collector's `*.prom`
//! files; exec plugins' output). It accepts what Prometheus' own text parser (Go's `expfmt`,
//! which node_exporter's textfile collector uses) accepts and refuses what it refuses, naming
//! the line.
//!
//! ```
//! use system_monitor::model::exposition::{parse, MetricType};
//!
//! let text = "# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\n\
//!             jobs_total{queue=\"a\\\"b\"} 3\n";
//! let families = parse(text).unwrap();
//! assert_eq!(families[0].name, "jobs_total");
//! assert_eq!(families[0].kind, MetricType::Counter);
//! assert_eq!(families[0].samples[0].labels, [("queue".to_string(), "a\"b".to_string())]);
//! assert_eq!(families[0].samples[0].value, 3.0);
//! assert!(parse("jobs_total 3 x\n").is_err());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

/// A family's declared type (`# TYPE`); `Untyped` when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Untyped,
    Summary,
    Histogram,
}

impl MetricType {
    /// The type as `# TYPE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Untyped => "untyped",
            Self::Summary => "summary",
            Self::Histogram => "histogram",
        }
    }

    /// A `# TYPE` word; like expfmt, any letter case.
    fn parse(word: &str) -> Option<Self> {
        [
            Self::Counter,
            Self::Gauge,
            Self::Untyped,
            Self::Summary,
            Self::Histogram,
        ]
        .into_iter()
        .find(|kind| kind.as_str().eq_ignore_ascii_case(word))
    }

    /// The suffixes a sample of a family of this type may add to the family name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Summary => &["_sum", "_count"],
            Self::Histogram => &["_bucket", "_sum", "_count"],
            _ => &[],
        }
    }
}

/// One family: its name, HELP, TYPE and samples, in the order the text gave them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricFamily {
    /// The family name (a histogram's or summary's base name).
    pub name: String,
    /// The `# HELP` text, unescaped; `None` without a HELP line.
    pub help: Option<String>,
    /// The `# TYPE`, `Untyped` without one.
    pub kind: MetricType,
    /// The samples; never empty (a family declared without samples is left out).
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The sample's own name: the family name, or it plus `_bucket`, `_sum`, `_count`.
    pub name: String,
    /// Label names and unescaped values, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
    /// The optional timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// A family read from outside the monitor (a textfile), as a snapshot carries it to `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignFamily {
    /// The family, ready to be written (its HELP filled in where the source had none).
    pub family: MetricFamily,
    /// Where it was read (the files, comma-separated), for reports about it.
    pub source: String,
}

/// Why a text is not a valid exposition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Parses a whole exposition. Families come in the order their names first appear; samples of
/// one family written apart are gathered under it (as expfmt does).
pub fn parse(text: &str) -> Result<Vec<MetricFamily>, ParseError> {
    let mut parser = Parser::default();
    for (index, line) in text.split('\n').enumerate() {
        // A file written on Windows: its `\r` is not part of the value.
        let line = line.strip_suffix('\r').unwrap_or(line);
        parser.line(line).map_err(|message| ParseError {
            line: index + 1,
            message,
        })?;
    }
    Ok(parser
        .families
        .into_iter()
        .map(|f| f.family)
        .filter(|f| !f.samples.is_empty())
        .collect())
}

/// The key of one series in the REST element's `custom` map (and, as `custom.<key>`, in GetStats
/// and the history): the sample name alone when it has no labels, else
/// `name{a="b",c="d"}` with the labels sorted by name and their values escaped as the text
/// format escapes them (`\\`, `\"`, `\n`), so that one series always has one key.
pub fn series_key(name: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort_unstable();
    let mut key = String::with_capacity(name.len() + 16 * labels.len());
    key.push_str(name);
    key.push('{');
    for (i, (label, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(label);
        key.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    key
}

/// Every series of `families` by [`series_key`], with its value: what the REST element shows
/// under `custom`. JSON has no NaN or infinity, so such values are left out; when two families
/// give the same key, the first one wins (the textfiles come before the plugins).
pub fn custom_series(families: &[Arc<ForeignFamily>]) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    for sample in families.iter().flat_map(|f| &f.family.samples) {
        if sample.value.is_finite() {
            series
                .entry(series_key(&sample.name, &sample.labels))
                .or_insert(sample.value);
        }
    }
    series
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A family being read, with what expfmt checks about its header lines.
struct Pending {
    family: MetricFamily,
    /// Whether a TYPE line was seen (a second one is an error).
    typed: bool,
}

#[derive(Default)]
struct Parser {
    families: Vec<Pending>,
    /// Family name → index in `families`.
    index: HashMap<String, usize>,
}

/// The line being read, consumed from the front.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn skip_blanks(&mut self) {
        self.0 = self.0.trim_start_matches([' ', '\t']);
    }

    /// The next run of characters up to a blank (or the end).
    fn word(&mut self) -> &'a str {
        let end = self.0.find([' ', '\t']).unwrap_or(self.0.len());
        let (word, rest) = self.0.split_at(end);
        self.0 = rest;
        word
    }

    /// The longest prefix of characters accepted by `accept`.
    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> &'a str {
        let end = self.0.find(|c| !accept(c)).unwrap_or(self.0.len());
        let (taken, rest) = self.0.split_at(end);
        self.0 = rest;
        taken
    }

    fn eat(&mut self, c: char) -> bool {
        match self.0.strip_prefix(c) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let mut cursor = Cursor(line);
        cursor.skip_blanks();
        if cursor.0.is_empty() {
            return Ok(());
        }
        if cursor.eat('#') {
            return self.comment(cursor);
        }
        self.sample(cursor)
    }

    /// `# HELP name text`, `# TYPE name type`, or any other comment (ignored).
    fn comment(&mut self, mut cursor: Cursor<'_>) -> Result<(), String> {
        cursor.skip_blanks();
        let keyword = cursor.word();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(());
        }
        cursor.skip_blanks();
        let name = cursor.word();
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?} in {keyword} line"));
        }
        let at = self.family_index(name);
        let pending = &mut self.families[at];
        if keyword == "HELP" {
            if pending.family.help.is_some() {
                return Err(format!("second HELP line for metric name {name:?}"));
            }
            cursor.skip_blanks();
            pending.family.help = Some(unescape_help(cursor.0)?);
            return Ok(());
        }
        if pending.typed {
            return Err(format!("second TYPE line for metric name {name:?}"));
        }
        if !pending.family.samples.is_empty() {
            return Err(format!(
                "TYPE line for {name:?} must appear before the first sample"
            ));
        }
        cursor.skip_blanks();
        let word = cursor.word();
        let kind =
            MetricType::parse(word).ok_or_else(|| format!("unknown metric type {word:?}"))?;
        cursor.skip_blanks();
        if !cursor.0.is_empty() {
            return Err(format!("unexpected {:?} after the TYPE", cursor.0));
        }
        pending.family.kind = kind;
        pending.typed = true;
        Ok(())
    }

    /// `name{label="value",…} value [timestamp]`.
    fn sample(&mut self, mut cursor: Cursor<'_>) -> Result<(), String> {
        let name = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !is_metric_name(name) {
            return Err(format!("invalid metric name at {:?}", cursor.0));
        }
        cursor.skip_blanks();
        let labels = if cursor.eat('{') {
            labels(&mut cursor)?
        } else {
            Vec::new()
        };
        cursor.skip_blanks();
        let value = cursor.word();
        if value.is_empty() {
            return Err(format!("no value for {name}"));
        }
        let value = parse_float(value).ok_or_else(|| format!("invalid value {value:?}"))?;
        cursor.skip_blanks();
        let timestamp_ms = match cursor.word() {
            "" => None,
            word => Some(
                word.parse::<i64>()
                    .map_err(|_| format!("invalid timestamp {word:?}"))?,
            ),
        };
        cursor.skip_blanks();
        if !cursor.0.is_empty() {
            return Err(format!("unexpected {:?} after the value", cursor.0));
        }

        let at = self.family_of(name);
        let family = &mut self.families[at].family;
        let suffix = &name[family.name.len()..];
        match (family.kind, suffix) {
            (MetricType::Summary, "") => quantile_or_le(&labels, "quantile", name)?,
            (MetricType::Histogram, "_bucket") => quantile_or_le(&labels, "le", name)?,
            (MetricType::Histogram, "") => {
                return Err(format!("histogram sample {name} needs a suffix"))
            }
            _ => {}
        }
        family.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
            timestamp_ms,
        });
        Ok(())
    }

    /// The family a sample named `name` belongs to: the one of that name, else a summary or
    /// histogram whose samples add that suffix, else a new untyped family.
    fn family_of(&mut self, name: &str) -> usize {
        if let Some(&at) = self.index.get(name) {
            return at;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = name.strip_suffix(suffix) else {
                continue;
            };
            if let Some(&at) = self.index.get(base) {
                if self.families[at].family.kind.suffixes().contains(&suffix) {
                    return at;
                }
            }
        }
        self.family_index(name)
    }

    /// The family named `name`, created (untyped, without help) if new.
    fn family_index(&mut self, name: &str) -> usize {
        if let Some(&at) = self.index.get(name) {
            return at;
        }
        self.families.push(Pending {
            family: MetricFamily {
                name: name.to_string(),
                help: None,
                kind: MetricType::Untyped,
                samples: Vec::new(),
            },
            typed: false,
        });
        let at = self.families.len() - 1;
        self.index.insert(name.to_string(), at);
        at
    }
}

/// The `label="value",…}` part (after the `{`).
fn labels(cursor: &mut Cursor<'_>) -> Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        cursor.skip_blanks();
        if cursor.eat('}') {
            return Ok(labels);
        }
        let name = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_label_name(name) {
            return Err(format!("invalid label name at {:?}", cursor.0));
        }
        if name == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label name {name:?}"));
        }
        cursor.skip_blanks();
        if !cursor.eat('=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        cursor.skip_blanks();
        if !cursor.eat('"') {
            return Err(format!(
                "expected '\"' to start the value of label {name:?}"
            ));
        }
        let value = label_value(cursor).map_err(|e| format!("label {name:?}: {e}"))?;
        labels.push((name.to_string(), value));
        cursor.skip_blanks();
        if cursor.eat(',') {
            continue;
        }
        if !cursor.0.starts_with('}') {
            return Err(format!("expected ',' or '}}' at {:?}", cursor.0));
        }
    }
}

/// A label value up to its closing quote (consumed), with `\\`, `\"` and `\n` unescaped.
fn label_value(cursor: &mut Cursor<'_>) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = cursor.0.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                cursor.0 = &cursor.0[i + 1..];
                return Ok(value);
            }
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => return Err(format!("invalid escape sequence \\{other}")),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err("unterminated value".into())
}

/// HELP text with `\\` and `\n` unescaped.
fn unescape_help(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => return Err(format!("invalid escape sequence \\{other} in HELP")),
            None => return Err("HELP ends in a lone backslash".into()),
        }
    }
    Ok(out)
}

/// A summary's `quantile` or a histogram bucket's `le` label: required, and a number.
fn quantile_or_le(labels: &[(String, String)], label: &str, sample: &str) -> Result<(), String> {
    let (_, value) = labels
        .iter()
        .find(|(n, _)| n == label)
        .ok_or_else(|| format!("{sample} has no {label:?} label"))?;
    parse_float(value)
        .map(drop)
        .ok_or_else(|| format!("{sample}: {label} {value:?} is not a number"))
}

/// A sample value as Go's `strconv.ParseFloat` reads it: decimal or exponent notation, and
/// `NaN`, `Inf`, `+Inf`, `-Inf` (any case).
fn parse_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
