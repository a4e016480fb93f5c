//! Kernel figures that only `/metrics` shows, under node_exporter's names: netstat, sockstat,
//! vmstat, timex, uname and the like. They have no place in the TrackLab JSON, so they are kept as
//! ready-named families instead of one struct per file; the collector that reads a file names
//! its families exactly as node_exporter's collector of the same name does (and the `process`
//! collector its `process_*` as the Prometheus client libraries name them).

use std::sync::Arc;

use serde::Serialize;

/// How a family is declared on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelMetricKind {
    /// A raw monotonic value. One named without `_total` is `counter` in the text format, as
    /// node_exporter declares it, and `unknown` in OpenMetrics, whose counters end in `_total`.
    Counter,
    /// A value that goes up and down, or an info metric (`…_info` with value 1).
    Gauge,
    /// node_exporter's `untyped`: the netstat and vmstat counters it copies without a type.
    Untyped,
}

/// One family: its name, help, kind and samples (each sample's own labels; the node label is
/// added when it is written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelFamily {
    /// Full metric name, e.g. `node_netstat_Tcp_InSegs`.
    pub name: Arc<str>,
    /// The HELP text.
    pub help: Arc<str>,
    /// Counter, gauge or untyped.
    pub kind: KernelMetricKind,
    /// The samples, in the order they are written.
    pub samples: Vec<KernelSample>,
}

/// One sample of a [`KernelFamily`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelSample {
    /// Label names and values, e.g. `[("device", "eth0")]`; empty for a single-value family.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

impl KernelFamily {
    /// An empty family.
    pub fn new(
        name: impl Into<Arc<str>>,
        help: impl Into<Arc<str>>,
        kind: KernelMetricKind,
    ) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// A family of one unlabelled sample.
    pub fn single(
        name: impl Into<Arc<str>>,
        help: impl Into<Arc<str>>,
        kind: KernelMetricKind,
        value: f64,
    ) -> Self {
        let mut family = Self::new(name, help, kind);
        family.push(&[], value);
        family
    }

    /// Appends a sample with `labels`.
    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(KernelSample {
            labels: labels.iter().map(|&(k, v)| (k, v.to_string())).collect(),
            value,
        });
    }

    /// The builder form of [`KernelFamily::push`].
    pub fn with(mut self, labels: &[(&'static str, &str)], value: f64) -> Self {
        self.push(labels, value);
        self
    }
}
