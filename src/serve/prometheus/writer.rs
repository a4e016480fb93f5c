//! The one Prometheus writer of the crate, used by the agent's snapshot encoder and by the
//! coordinator's own metrics: family headers, escaping, sample lines carrying the node label,
//! histograms, and what differs between text format 0.0.4 and OpenMetrics 1.0 (counter family
//! names without `_total`, type spellings, `# EOF`). Reads nothing; writes into one `String`.
//!
//! A small hand-written writer rather than a client library: the values already sit in the
//! snapshot or in the coordinator's atomics (no registry to keep in sync), both formats come from
//! one code path, and the output is a single pass over a `String` with no allocation per line.
//!
//! ```
//! use system_monitor::serve::prometheus::{Format, Writer};
//!
//! let mut w = Writer::new("n1", Format::OpenMetrics);
//! w.counter("jobs_total", "Jobs \\ done.").sample(&[("queue", "a\"b")], 3_u64);
//! w.gauge("temperature_celsius", "Now.").sample(&[], 21.5);
//! assert_eq!(
//!     w.finish(),
//!     concat!(
//!         "# HELP jobs Jobs \\\\ done.\n",
//!         "# TYPE jobs counter\n",
//!         "jobs_total{node=\"n1\",queue=\"a\\\"b\"} 3\n",
//!         "# HELP temperature_celsius Now.\n",
//!         "# TYPE temperature_celsius gauge\n",
//!         "temperature_celsius{node=\"n1\"} 21.5\n",
//!         "# EOF\n",
//!     )
//! );
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;

use super::Histogram;
use crate::model::exposition::MetricType;

/// Which exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0: counters declared without `_total`, `# EOF` at the end.
    OpenMetrics,
}

/// Content type of [`Format::Text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of [`Format::OpenMetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` with a quality at least that of the text format (Prometheus
    /// sends both, preferring OpenMetrics when so configured); text otherwise, and when absent.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut openmetrics = 0.0_f64;
        let mut text = 0.0_f64;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f64>().ok())
                .filter(|q| q.is_finite())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(quality);
            } else if media.eq_ignore_ascii_case("text/plain") || media == "*/*" {
                text = text.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => TEXT_CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// What a family is declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A raw monotonic value, named with `_total`.
    Counter,
    /// A counter another exporter named without `_total` (see [`Writer::foreign_counter`]).
    ForeignCounter,
    Gauge,
    /// node_exporter's `untyped` (`unknown` in OpenMetrics): the netstat and vmstat counters it
    /// copies without a type.
    Untyped,
    /// `_bucket{le=...}`, `_sum` and `_count` lines under one family name, in both formats.
    Histogram,
    /// Quantile lines, `_sum` and `_count` under one family name: only read from outside
    /// ([`Writer::foreign`]), the monitor writes none of its own.
    Summary,
}

/// Where a family's samples carry the node label among their own labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeLabel {
    First,
    Last,
}

/// Accumulates the exposition. Owns the one place where the node label is added.
pub struct Writer {
    /// The text written so far.
    out: String,
    /// Which format the headers and trailer follow.
    format: Format,
    /// `node="<id>"`, escaped once, the first label of every sample.
    node_label: String,
    /// The names written so far (families and the sample names they imply), once
    /// [`Writer::track_names`] asks for them: what a family read from outside must not shadow.
    names: Option<HashSet<String>>,
}

impl Writer {
    /// An empty exposition in `format` whose every sample will carry `node="<node_id>"`.
    pub fn new(node_id: &str, format: Format) -> Self {
        let mut node_label = String::from("node=\"");
        escape_label_value(&mut node_label, node_id);
        node_label.push('"');
        Self {
            out: String::with_capacity(64 * 1024),
            format,
            node_label,
            names: None,
        }
    }

    /// Records the names of the families written from now on (see [`Writer::has_written`]).
    pub fn track_names(&mut self) {
        self.names.get_or_insert_with(HashSet::new);
    }

    /// Whether a family or sample of this name was written since [`Writer::track_names`] (in
    /// either format's spelling: `c_total` and `c` for a counter; a histogram's `_bucket`,
    /// `_sum` and `_count`).
    pub fn has_written(&self, name: &str) -> bool {
        self.names
            .as_ref()
            .is_some_and(|names| names.contains(name))
    }

    /// The names recorded since [`Writer::track_names`] (none if it was not called).
    pub fn into_names(self) -> HashSet<String> {
        self.names.unwrap_or_default()
    }

    /// A counter family; `name` ends in `_total`, which OpenMetrics leaves out of the family name.
    pub fn counter<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.family(name, help, Kind::Counter)
    }

    /// A gauge family.
    pub fn gauge<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        self.family(name, help, Kind::Gauge)
    }

    /// A counter whose name another exporter chose without `_total` (dcgm-exporter's
    /// `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`): `counter` in the text format, as that exporter
    /// declares it, but `unknown` in OpenMetrics, whose counters must end in `_total`.
    pub fn foreign_counter<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        self.family(name, help, Kind::ForeignCounter)
    }

    /// An untyped family (`unknown` in OpenMetrics), for names another exporter declares so.
    pub fn untyped<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        self.family(name, help, Kind::Untyped)
    }

    /// A histogram family: `name` is the base name of its `_bucket`, `_sum` and `_count` lines.
    pub fn histogram<'a>(&'a mut self, name: &'a str, help: &'a str) -> HistogramFamily<'a> {
        HistogramFamily(self.family(name, help, Kind::Histogram))
    }

    /// A family read from outside (a textfile), declared as its source typed it: a counter named
    /// without `_total` as [`Writer::foreign_counter`]; untyped as [`Writer::untyped`]. Its
    /// samples are written under their own names with [`Family::sample_named`].
    pub fn foreign<'a>(&'a mut self, name: &'a str, help: &'a str, kind: MetricType) -> Family<'a> {
        let kind = match kind {
            MetricType::Counter if name.ends_with("_total") => Kind::Counter,
            MetricType::Counter => Kind::ForeignCounter,
            MetricType::Gauge => Kind::Gauge,
            MetricType::Untyped => Kind::Untyped,
            MetricType::Histogram => Kind::Histogram,
            MetricType::Summary => Kind::Summary,
        };
        self.family(name, help, kind)
    }

    fn family<'a>(&'a mut self, name: &'a str, help: &'a str, kind: Kind) -> Family<'a> {
        Family {
            writer: self,
            name,
            help,
            kind,
            node: NodeLabel::First,
            started: false,
        }
    }

    /// The exposition, with OpenMetrics' `# EOF` where that is the format.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    /// `# HELP` and `# TYPE` of a family, under the name each format gives it.
    fn header(&mut self, name: &str, help: &str, kind: Kind) {
        if let Some(names) = self.names.as_mut() {
            names.insert(name.to_string());
            let implied: &[&str] = match kind {
                Kind::Histogram => &["_bucket", "_sum", "_count"],
                Kind::Summary => &["_sum", "_count"],
                _ => &[],
            };
            names.extend(implied.iter().map(|suffix| format!("{name}{suffix}")));
            if let (Kind::Counter, Some(base)) = (kind, name.strip_suffix("_total")) {
                names.insert(base.to_string());
            }
        }
        // OpenMetrics names a counter family without the `_total` its samples carry.
        let family = match (self.format, kind) {
            (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let kind = match (self.format, kind) {
            (_, Kind::Counter) | (Format::Text, Kind::ForeignCounter) => "counter",
            (Format::OpenMetrics, Kind::ForeignCounter | Kind::Untyped) => "unknown",
            (Format::Text, Kind::Untyped) => "untyped",
            (_, Kind::Gauge) => "gauge",
            (_, Kind::Histogram) => "histogram",
            (_, Kind::Summary) => "summary",
        };
        self.out.push_str("# HELP ");
        self.out.push_str(family);
        self.out.push(' ');
        escape_help(&mut self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(family);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// A sample line up to its last label, `name<suffix>{node="…",k="v"…`, left open for a
    /// histogram's `le`; [`Writer::close_sample`] ends it.
    fn open_sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], node: NodeLabel) {
        let out = &mut self.out;
        out.push_str(name);
        out.push_str(suffix);
        out.push('{');
        if node == NodeLabel::First {
            out.push_str(&self.node_label);
        }
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 || node == NodeLabel::First {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label_value(out, value);
            out.push('"');
        }
        if node == NodeLabel::Last {
            if !labels.is_empty() {
                out.push(',');
            }
            out.push_str(&self.node_label);
        }
    }

    /// `} <value>` and the end of the line.
    fn close_sample(&mut self, value: impl SampleValue) {
        self.out.push_str("} ");
        value.write_to(&mut self.out);
        self.out.push('\n');
    }
}

/// One metric family being written: its HELP and TYPE go out with its first sample, so a family
/// with no samples (no devices, values unknown) leaves no trace.
pub struct Family<'a> {
    writer: &'a mut Writer,
    name: &'a str,
    help: &'a str,
    kind: Kind,
    /// Where the node label goes; first but for [`Family::node_label_last`].
    node: NodeLabel,
    started: bool,
}

impl Family<'_> {
    /// Puts the node label after the family's own labels instead of first. Only for a family
    /// whose lines were written that way before this writer existed (the coordinator's
    /// `poll_errors_total{kind=…,node=…}`): scrapes and tests that match the line text rely on it.
    pub fn node_label_last(mut self) -> Self {
        self.node = NodeLabel::Last;
        self
    }

    /// One sample with `labels` after (or, see [`Family::node_label_last`], before) the node's.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl SampleValue) {
        self.start();
        let w = &mut *self.writer;
        w.open_sample(self.name, "", labels, self.node);
        w.close_sample(value);
    }

    /// One sample named `name` (a histogram's `…_bucket`, `…_sum`; the family name otherwise),
    /// for families read from outside, whose lines come already named.
    pub fn sample_named(&mut self, name: &str, labels: &[(&str, &str)], value: impl SampleValue) {
        self.start();
        let w = &mut *self.writer;
        w.open_sample(name, "", labels, self.node);
        w.close_sample(value);
    }

    /// The family's header, before its first sample.
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.writer.header(self.name, self.help, self.kind);
        }
    }
}

/// A histogram family being written (see [`Writer::histogram`]).
pub struct HistogramFamily<'a>(Family<'a>);

impl HistogramFamily<'_> {
    /// One histogram with `labels` after the node's: a cumulative `_bucket` line per bound, then
    /// `le="+Inf"`, `_sum` and `_count` (the same lines in both formats).
    pub fn sample(&mut self, labels: &[(&str, &str)], histogram: &Histogram) {
        let f = &mut self.0;
        f.start();
        let w = &mut *f.writer;
        let mut count = 0;
        for (bound, cumulative) in histogram.cumulative() {
            w.open_sample(f.name, "_bucket", labels, f.node);
            w.out.push_str(",le=\"");
            write_float(&mut w.out, bound);
            w.out.push('"');
            w.close_sample(cumulative);
            count = cumulative;
        }
        w.open_sample(f.name, "_sum", labels, f.node);
        w.close_sample(histogram.sum_seconds());
        w.open_sample(f.name, "_count", labels, f.node);
        w.close_sample(count);
    }
}

/// A sample value, written exactly: integers as integers (a u64 counter above 2^53 keeps every
/// digit), floats in the shortest form that reads back the same.
pub trait SampleValue {
    /// Appends the value as the exposition spells it.
    fn write_to(self, out: &mut String);
}

impl SampleValue for u64 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for usize {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for i64 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for i32 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl SampleValue for bool {
    fn write_to(self, out: &mut String) {
        out.push(if self { '1' } else { '0' });
    }
}

impl SampleValue for f64 {
    fn write_to(self, out: &mut String) {
        write_float(out, self);
    }
}

/// A float as both formats spell it: `NaN`, `+Inf`, `-Inf`; integral values without a fraction or
/// exponent; very large or small magnitudes with an exponent (`1.5e-7`), others plainly.
fn write_float(out: &mut String, v: f64) {
    let _ = if v.is_nan() {
        write!(out, "NaN")
    } else if v.is_infinite() {
        write!(out, "{}", if v > 0.0 { "+Inf" } else { "-Inf" })
    } else if v == 0.0 {
        // Also turns -0 into 0.
        write!(out, "0")
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        write!(out, "{}", v as i64)
    } else if (1e-4..1e15).contains(&v.abs()) {
        write!(out, "{v}")
    } else {
        write!(out, "{v:e}")
    };
}

/// Label values escape `\`, `"` and newline (both formats).
fn escape_label_value(out: &mut String, value: &str) {
    escape(out, value, |b| matches!(b, b'\\' | b'"' | b'\n'));
}

/// HELP text escapes `\` and newline.
fn escape_help(out: &mut String, help: &str) {
    escape(out, help, |b| matches!(b, b'\\' | b'\n'));
}

/// Appends `text` with each byte `special` picks escaped (`\\`, `\"`, `\n`): the runs between
/// them are copied whole, so text with nothing to escape (nearly all of it) is one copy.
fn escape(out: &mut String, text: &str, special: impl Fn(u8) -> bool) {
    let mut run = 0;
    for (at, byte) in text.bytes().enumerate() {
        if !special(byte) {
            continue;
        }
        // `at` is an ASCII byte's index: a char boundary.
        out.push_str(&text[run..at]);
        out.push_str(match byte {
            b'\n' => "\\n",
            b'"' => "\\\"",
            _ => "\\\\",
        });
        run = at + 1;
    }
    out.push_str(&text[run..]);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn float(v: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, v);
        s
    }

    #[test]
    fn floats_follow_the_exposition_spelling() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(-0.0), "0");
        assert_eq!(float(3.0), "3");
        assert_eq!(float(-42.0), "-42");
        assert_eq!(float(1_700_000_000_000.0), "1700000000000");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(1234.5678), "1234.5678");
        assert_eq!(float(1.5e-7), "1.5e-7");
        assert_eq!(float(2.5e20), "2.5e20");
        for v in [0.1, 1.0 / 3.0, 1e-300, 6.02e23, 123456.789] {
            assert_eq!(float(v).parse::<f64>().unwrap(), v, "round trip of {v}");
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd");
        assert_eq!(s, r#"a\\b\"c\nd"#);
        let mut s = String::new();
        escape_help(&mut s, "x\\y\nz\"");
        assert_eq!(s, r#"x\\y\nz""#);
        // Runs of multi-byte characters between escapes, and escapes at both ends.
        let mut s = String::new();
        escape_label_value(&mut s, "\"Zürich\\日本\n");
        assert_eq!(s, r#"\"Zürich\\日本\n"#);
        let mut s = String::new();
        escape_label_value(&mut s, "");
        escape_help(&mut s, "plain ü");
        assert_eq!(s, "plain ü");
    }

    #[test]
    fn the_writer_escapes_node_label_values_and_help() {
        for format in [Format::Text, Format::OpenMetrics] {
            let mut w = Writer::new("n\\1\"\n", format);
            w.gauge("g", "Help with \\, \" and\na newline.")
                .sample(&[("path", "C:\\x \"y\"\nz")], 1_u64);
            let text = w.finish();
            let expected = concat!(
                "# HELP g Help with \\\\, \" and\\na newline.\n",
                "# TYPE g gauge\n",
                "g{node=\"n\\\\1\\\"\\n\",path=\"C:\\\\x \\\"y\\\"\\nz\"} 1\n",
            );
            assert!(text.starts_with(expected), "{format:?}:\n{text}");
        }
    }

    #[test]
    fn accept_header_picks_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some("text/plain;q=1, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
    }

    /// The families of every kind, written in `format`.
    fn every_kind(format: Format) -> String {
        static BOUNDS: [f64; 2] = [0.5, 2.0];
        let histogram = Histogram::new(&BOUNDS);
        histogram.observe(Duration::from_millis(250));
        histogram.observe(Duration::from_millis(1500));
        histogram.observe(Duration::from_secs(3));
        let mut w = Writer::new("n1", format);
        w.counter("c_total", "A counter.")
            .sample(&[("k", "v")], 7_u64);
        w.foreign_counter("FOREIGN", "Theirs.").sample(&[], 8_u64);
        w.gauge("g", "A gauge.").sample(&[], 0.5);
        w.histogram("h_seconds", "A histogram.")
            .sample(&[("path", "/x")], &histogram);
        w.counter("late_total", "Node label last.")
            .node_label_last()
            .sample(&[("kind", "a")], 1_u64);
        w.finish()
    }

    #[test]
    fn text_format_of_every_kind() {
        assert_eq!(
            every_kind(Format::Text),
            "# HELP c_total A counter.\n# TYPE c_total counter\n\
             c_total{node=\"n1\",k=\"v\"} 7\n\
             # HELP FOREIGN Theirs.\n# TYPE FOREIGN counter\n\
             FOREIGN{node=\"n1\"} 8\n\
             # HELP g A gauge.\n# TYPE g gauge\n\
             g{node=\"n1\"} 0.5\n\
             # HELP h_seconds A histogram.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"0.5\"} 1\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"2\"} 2\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"+Inf\"} 3\n\
             h_seconds_sum{node=\"n1\",path=\"/x\"} 4.75\n\
             h_seconds_count{node=\"n1\",path=\"/x\"} 3\n\
             # HELP late_total Node label last.\n# TYPE late_total counter\n\
             late_total{kind=\"a\",node=\"n1\"} 1\n"
        );
    }

    #[test]
    fn openmetrics_of_every_kind_ends_with_eof() {
        assert_eq!(
            every_kind(Format::OpenMetrics),
            "# HELP c A counter.\n# TYPE c counter\n\
             c_total{node=\"n1\",k=\"v\"} 7\n\
             # HELP FOREIGN Theirs.\n# TYPE FOREIGN unknown\n\
             FOREIGN{node=\"n1\"} 8\n\
             # HELP g A gauge.\n# TYPE g gauge\n\
             g{node=\"n1\"} 0.5\n\
             # HELP h_seconds A histogram.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"0.5\"} 1\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"2\"} 2\n\
             h_seconds_bucket{node=\"n1\",path=\"/x\",le=\"+Inf\"} 3\n\
             h_seconds_sum{node=\"n1\",path=\"/x\"} 4.75\n\
             h_seconds_count{node=\"n1\",path=\"/x\"} 3\n\
             # HELP late Node label last.\n# TYPE late counter\n\
             late_total{kind=\"a\",node=\"n1\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn an_empty_histogram_still_has_every_line_and_a_family_without_samples_none() {
        static BOUNDS: [f64; 1] = [1.0];
        let histogram = Histogram::new(&BOUNDS);
        let mut w = Writer::new("n", Format::Text);
        w.gauge("unused", "Never sampled.");
        w.histogram("h", "Empty.").sample(&[], &histogram);
        assert_eq!(
            w.finish(),
            "# HELP h Empty.\n# TYPE h histogram\n\
             h_bucket{node=\"n\",le=\"1\"} 0\n\
             h_bucket{node=\"n\",le=\"+Inf\"} 0\n\
             h_sum{node=\"n\"} 0\n\
             h_count{node=\"n\"} 0\n"
        );
        assert_eq!(Writer::new("n", Format::OpenMetrics).finish(), "# EOF\n");
    }

    #[test]
    fn node_label_last_without_labels_is_the_only_label() {
        let mut w = Writer::new("n", Format::Text);
        w.gauge("g", "G.").node_label_last().sample(&[], 1_u64);
        assert!(w.finish().ends_with("\ng{node=\"n\"} 1\n"));
    }
}
