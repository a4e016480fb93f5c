//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 of one [`Snapshot`]: host metrics under
//! node_exporter's names and labels, NVIDIA GPUs under dcgm-exporter's, our own under
//! `system_monitor_`. A pure function of the snapshot; the REST layer caches its output.
//!
//! Every sample carries `node="<node_id>"`, added in one place (`Writer`). Counters are the raw
//! counters (no rates). A section whose collector failed is left out entirely; its
//! `system_monitor_collector_success` says 0.
//!
//! A small hand-written writer rather than a client library: the values already sit in the
//! snapshot (no registry to keep in sync), both formats come from one code path, and the output
//! is a single pass over a `String`.

mod accel;

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::model::{
    CollectorStatus, CpuStats, DisksStats, FilesystemState, FilesystemsStats, MemoryStats,
    NetworkStats, PressureStats, Snapshot, TemperatureSensor,
};

/// One metric read from each device of a list: name, help, and the value (None: not reported).
type DeviceField<T, V> = (&'static str, &'static str, fn(&T) -> V);

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

/// The whole exposition of `snapshot` in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    let mut w = Writer::new(&snapshot.node_id, format);
    if let Some(cpu) = &snapshot.cpu {
        cpu_metrics(&mut w, cpu);
    }
    if let Some(sensors) = &snapshot.temperatures {
        temperature_metrics(&mut w, sensors);
    }
    if let Some(memory) = &snapshot.memory {
        memory_metrics(&mut w, memory);
    }
    if let Some(pressure) = &snapshot.pressure {
        pressure_metrics(&mut w, pressure);
    }
    if let Some(disks) = &snapshot.disks {
        disk_metrics(&mut w, disks);
    }
    if let Some(filesystems) = &snapshot.filesystems {
        filesystem_metrics(&mut w, filesystems);
    }
    if let Some(network) = &snapshot.network {
        network_metrics(&mut w, network);
    }
    accel::accelerator_metrics(&mut w, &snapshot.accelerators, &snapshot.hostname);
    accel::power_metrics(&mut w, &snapshot.power);
    own_metrics(&mut w, snapshot);
    w.finish()
}

fn cpu_metrics(w: &mut Writer, cpu: &CpuStats) {
    let ids: Vec<String> = cpu.cores.iter().map(|c| c.id.to_string()).collect();
    let cores = || cpu.cores.iter().zip(&ids);

    let mut f = w.counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    for (core, id) in cores() {
        for (mode, seconds) in core.times.modes() {
            f.sample(&[("cpu", id), ("mode", mode)], seconds);
        }
    }
    let mut f = w.counter(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    );
    for (core, id) in cores() {
        f.sample(&[("cpu", id), ("mode", "user")], core.times.guest);
        f.sample(&[("cpu", id), ("mode", "nice")], core.times.guest_nice);
    }
    let frequencies: [DeviceField<crate::model::CoreStats, Option<f64>>; 3] = [
        (
            "node_cpu_scaling_frequency_hertz",
            "Current scaled CPU thread frequency in hertz.",
            |c| c.frequency_mhz,
        ),
        (
            "node_cpu_scaling_frequency_min_hertz",
            "Minimum scaled CPU thread frequency in hertz.",
            |c| c.min_frequency_mhz,
        ),
        (
            "node_cpu_scaling_frequency_max_hertz",
            "Maximum scaled CPU thread frequency in hertz.",
            |c| c.max_frequency_mhz,
        ),
    ];
    for (name, help, mhz) in frequencies {
        let mut f = w.gauge(name, help);
        for (core, id) in cores() {
            if let Some(mhz) = mhz(core) {
                f.sample(&[("cpu", id)], mhz * 1e6);
            }
        }
    }

    let [load1, load5, load15] = cpu.load_average;
    w.gauge("node_load1", "1m load average.").sample(&[], load1);
    w.gauge("node_load5", "5m load average.").sample(&[], load5);
    w.gauge("node_load15", "15m load average.")
        .sample(&[], load15);
    w.gauge(
        "node_procs_running",
        "Number of processes in runnable state.",
    )
    .sample(&[], cpu.procs_running);
    w.gauge(
        "node_procs_blocked",
        "Number of processes blocked waiting for I/O to complete.",
    )
    .sample(&[], cpu.procs_blocked);
    w.counter(
        "node_context_switches_total",
        "Total number of context switches.",
    )
    .sample(&[], cpu.context_switches_total);
    w.counter("node_intr_total", "Total number of interrupts serviced.")
        .sample(&[], cpu.interrupts_total);
    w.counter("node_forks_total", "Total number of forks.")
        .sample(&[], cpu.forks_total);
    w.gauge("node_boot_time_seconds", "Node boot time, in unixtime.")
        .sample(&[], cpu.boot_time_seconds);
    w.gauge("node_processes_pids", "Number of PIDs")
        .sample(&[], cpu.processes);
    w.gauge("node_processes_threads", "Allocated threads in system")
        .sample(&[], cpu.threads);
}

fn temperature_metrics(w: &mut Writer, sensors: &[TemperatureSensor]) {
    let hwmon = || sensors.iter().filter(|s| !s.thermal_zone);

    let mut f = w.gauge(
        "node_hwmon_chip_names",
        "Annotation metric for human-readable chip names",
    );
    let mut seen = HashSet::new();
    for s in hwmon().filter(|s| !s.chip_name.is_empty()) {
        if seen.insert(s.chip.as_str()) {
            f.sample(&[("chip", &s.chip), ("chip_name", &s.chip_name)], 1);
        }
    }
    let mut f = w.gauge("node_hwmon_sensor_label", "Label for given chip and sensor");
    for s in hwmon() {
        if let Some(label) = s.label.as_deref().filter(|l| !l.is_empty()) {
            f.sample(
                &[("chip", &s.chip), ("sensor", &s.sensor), ("label", label)],
                1,
            );
        }
    }
    let mut f = w.gauge(
        "node_hwmon_temp_celsius",
        "Hardware monitor for temperature (input)",
    );
    for s in hwmon() {
        f.sample(&[("chip", &s.chip), ("sensor", &s.sensor)], s.celsius);
    }
    let mut f = w.gauge(
        "node_hwmon_temp_crit_celsius",
        "Hardware monitor for temperature (crit)",
    );
    for s in hwmon() {
        if let Some(celsius) = s.critical_celsius {
            f.sample(&[("chip", &s.chip), ("sensor", &s.sensor)], celsius);
        }
    }
    let mut f = w.gauge(
        "node_hwmon_temp_max_celsius",
        "Hardware monitor for temperature (max)",
    );
    for s in hwmon() {
        if let Some(celsius) = s.max_celsius {
            f.sample(&[("chip", &s.chip), ("sensor", &s.sensor)], celsius);
        }
    }
    let mut f = w.gauge("node_thermal_zone_temp", "Zone temperature in Celsius");
    for s in sensors.iter().filter(|s| s.thermal_zone) {
        // node_exporter's `zone` is the N of thermal_zoneN.
        let zone = s.chip.strip_prefix("thermal_zone").unwrap_or(&s.chip);
        f.sample(&[("zone", zone), ("type", &s.chip_name)], s.celsius);
    }
}

fn memory_metrics(w: &mut Writer, memory: &MemoryStats) {
    if memory.raw.is_empty() {
        // The portable backend has no meminfo: the fields it does know, under meminfo's names.
        let known = [
            ("MemTotal_bytes", memory.total_bytes),
            ("MemFree_bytes", memory.free_bytes),
            ("MemAvailable_bytes", memory.available_bytes),
            ("SwapTotal_bytes", memory.swap_total_bytes),
            (
                "SwapFree_bytes",
                memory
                    .swap_total_bytes
                    .saturating_sub(memory.swap_used_bytes),
            ),
        ];
        for (field, value) in known {
            meminfo_field(w, field, value);
        }
        return;
    }
    for (field, value) in &memory.raw {
        meminfo_field(w, field, *value);
    }
}

/// One `node_memory_*` gauge. `field` is already node_exporter's name (`Active_anon_bytes`,
/// `HugePages_Total`: the memory collector names and scales them); it is only sanitised here so
/// that an odd kernel field can never break the exposition.
fn meminfo_field(w: &mut Writer, field: &str, value: u64) {
    let field = metric_name_part(field);
    let name = format!("node_memory_{field}");
    let help = format!("Memory information field {field}.");
    w.gauge(&name, &help).sample(&[], value);
}

fn pressure_metrics(w: &mut Writer, pressure: &PressureStats) {
    let resources = [
        ("cpu", &pressure.cpu, "CPU time", "CPU"),
        ("memory", &pressure.memory, "memory", "memory congestion"),
        ("io", &pressure.io, "IO", "IO congestion"),
    ];
    for (resource, stats, waited_for, stalled_by) in resources {
        let Some(stats) = stats else { continue };
        let name = format!("node_pressure_{resource}_waiting_seconds_total");
        let help = format!("Total time in seconds that processes have waited for {waited_for}");
        w.counter(&name, &help)
            .sample(&[], stats.some.total_seconds);
        if let Some(full) = &stats.full {
            let name = format!("node_pressure_{resource}_stalled_seconds_total");
            let help =
                format!("Total time in seconds no process could make progress due to {stalled_by}");
            w.counter(&name, &help).sample(&[], full.total_seconds);
        }
    }
}

fn disk_metrics(w: &mut Writer, disks: &DisksStats) {
    // Sectors are always 512 bytes in /proc/diskstats.
    let fields: [DeviceField<crate::model::DiskStats, Option<f64>>; 17] = [
        (
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
            |d| Some(d.reads_completed_total as f64),
        ),
        (
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
            |d| Some(d.reads_merged_total as f64),
        ),
        (
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
            |d| Some(d.read_bytes_total as f64),
        ),
        (
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
            |d| Some(d.read_time_seconds_total),
        ),
        (
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
            |d| Some(d.writes_completed_total as f64),
        ),
        (
            "node_disk_writes_merged_total",
            "The number of writes merged.",
            |d| Some(d.writes_merged_total as f64),
        ),
        (
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
            |d| Some(d.written_bytes_total as f64),
        ),
        (
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
            |d| Some(d.write_time_seconds_total),
        ),
        (
            "node_disk_io_now",
            "The number of I/Os currently in progress.",
            |d| Some(d.io_now as f64),
        ),
        (
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
            |d| Some(d.io_time_seconds_total),
        ),
        (
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
            |d| Some(d.io_time_weighted_seconds_total),
        ),
        (
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
            |d| d.discards_completed_total.map(|v| v as f64),
        ),
        (
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
            |d| d.discards_merged_total.map(|v| v as f64),
        ),
        (
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
            |d| d.discarded_bytes_total.map(|v| (v / 512) as f64),
        ),
        (
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
            |d| d.discard_time_seconds_total,
        ),
        (
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
            |d| d.flush_requests_total.map(|v| v as f64),
        ),
        (
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
            |d| d.flush_requests_time_seconds_total,
        ),
    ];
    for (name, help, value) in fields {
        // io_now is the one gauge among them.
        let mut f = if name.ends_with("_total") {
            w.counter(name, help)
        } else {
            w.gauge(name, help)
        };
        for device in &disks.devices {
            if let Some(v) = value(device) {
                f.sample(&[("device", &device.name)], v);
            }
        }
    }
}

fn filesystem_metrics(w: &mut Writer, filesystems: &FilesystemsStats) {
    // node_exporter exposes a (device, mountpoint, fstype) once, even when mounted several times.
    let mut seen = HashSet::new();
    let mounts: Vec<_> = filesystems
        .mounts
        .iter()
        .filter(|m| seen.insert((&m.device, &m.mountpoint, &m.fstype)))
        .collect();
    fn labels(m: &crate::model::FilesystemStats) -> [(&'static str, &str); 3] {
        [
            ("device", m.device.as_str()),
            ("mountpoint", m.mountpoint.as_str()),
            ("fstype", m.fstype.as_str()),
        ]
    }
    let answered = || {
        mounts
            .iter()
            .filter(|m| matches!(m.state, FilesystemState::Ok))
    };

    let mut f = w.gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    for m in &mounts {
        let error = !matches!(m.state, FilesystemState::Ok);
        f.sample(&labels(m), error);
    }
    let mut f = w.gauge("node_filesystem_readonly", "Filesystem read-only status.");
    for m in &mounts {
        f.sample(&labels(m), m.readonly);
    }
    // Like node_exporter, a mount whose statvfs failed or hung gets no size figures at all
    // rather than stale or zero ones.
    let fields: [DeviceField<crate::model::FilesystemStats, u64>; 5] = [
        (
            "node_filesystem_size_bytes",
            "Filesystem size in bytes.",
            |m| m.size_bytes,
        ),
        (
            "node_filesystem_free_bytes",
            "Filesystem free space in bytes.",
            |m| m.free_bytes,
        ),
        (
            "node_filesystem_avail_bytes",
            "Filesystem space available to non-root users in bytes.",
            |m| m.avail_bytes,
        ),
        (
            "node_filesystem_files",
            "Filesystem total file nodes.",
            |m| m.files,
        ),
        (
            "node_filesystem_files_free",
            "Filesystem total free file nodes.",
            |m| m.files_free,
        ),
    ];
    for (name, help, value) in fields {
        let mut f = w.gauge(name, help);
        for m in answered() {
            f.sample(&labels(m), value(m));
        }
    }
}

fn network_metrics(w: &mut Writer, network: &NetworkStats) {
    type Counter = (&'static str, fn(&crate::model::InterfaceStats) -> u64);
    let fields: [Counter; 16] = [
        ("receive_bytes", |i| i.receive_bytes_total),
        ("receive_packets", |i| i.receive_packets_total),
        ("receive_errs", |i| i.receive_errs_total),
        ("receive_drop", |i| i.receive_drop_total),
        ("receive_fifo", |i| i.receive_fifo_total),
        ("receive_frame", |i| i.receive_frame_total),
        ("receive_compressed", |i| i.receive_compressed_total),
        ("receive_multicast", |i| i.receive_multicast_total),
        ("transmit_bytes", |i| i.transmit_bytes_total),
        ("transmit_packets", |i| i.transmit_packets_total),
        ("transmit_errs", |i| i.transmit_errs_total),
        ("transmit_drop", |i| i.transmit_drop_total),
        ("transmit_fifo", |i| i.transmit_fifo_total),
        ("transmit_colls", |i| i.transmit_colls_total),
        ("transmit_carrier", |i| i.transmit_carrier_total),
        ("transmit_compressed", |i| i.transmit_compressed_total),
    ];
    for (stat, value) in fields {
        let name = format!("node_network_{stat}_total");
        let help = format!("Network device statistic {stat}.");
        let mut f = w.counter(&name, &help);
        for interface in &network.interfaces {
            f.sample(&[("device", &interface.name)], value(interface));
        }
    }
    if let Some(established) = network.tcp_established {
        w.gauge("node_tcp_connection_states", "Number of connection states.")
            .sample(&[("state", "established")], established);
    }
}

fn own_metrics(w: &mut Writer, snapshot: &Snapshot) {
    let collectors = &snapshot.collectors;
    let each = |w: &mut Writer, name, help, value: fn(&CollectorStatus) -> f64| {
        let mut f = w.gauge(name, help);
        for c in collectors {
            f.sample(&[("collector", &c.name)], value(c));
        }
    };
    each(
        w,
        "system_monitor_collector_duration_seconds",
        "Time the collector took in the last sample.",
        |c| c.duration_seconds,
    );
    each(
        w,
        "system_monitor_collector_success",
        "Whether the collector produced its section in the last sample.",
        |c| if c.ok { 1.0 } else { 0.0 },
    );
    w.gauge(
        "system_monitor_sample_timestamp_seconds",
        "When the sample behind these metrics was taken, in unixtime.",
    )
    .sample(&[], snapshot.timestamp_ms as f64 / 1000.0);
    w.gauge(
        "system_monitor_build_info",
        "A metric with a constant '1' value labeled by the system_monitor version.",
    )
    .sample(&[("version", crate::VERSION)], 1);
}

/// A metric name fragment from outside (a meminfo field): anything but `[A-Za-z0-9_]` becomes
/// `_`, as node_exporter does with `Active(anon)` → `Active_anon`.
fn metric_name_part(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while name.ends_with('_') {
        name.pop();
    }
    name
}

/// Whether a family is a counter (raw monotonic value, `_total`) or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    /// A counter another exporter named without the `_total` suffix (dcgm-exporter's
    /// `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`): `counter` in the text format, as that exporter
    /// declares it, but `unknown` in OpenMetrics, whose counters must end in `_total`.
    ForeignCounter,
    Gauge,
}

/// Accumulates the exposition. Owns the one place where the node label is added.
struct Writer {
    /// The text written so far.
    out: String,
    /// Which format the headers and trailer follow.
    format: Format,
    /// `node="<id>"`, escaped once, the first label of every sample.
    node_label: String,
}

impl Writer {
    fn new(node_id: &str, format: Format) -> Self {
        let mut node_label = String::from("node=\"");
        escape_label_value(&mut node_label, node_id);
        node_label.push('"');
        Self {
            out: String::with_capacity(64 * 1024),
            format,
            node_label,
        }
    }

    fn counter<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.family(name, help, Kind::Counter)
    }

    fn gauge<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        self.family(name, help, Kind::Gauge)
    }

    /// A counter whose name another exporter chose without `_total` (see [`Kind::ForeignCounter`]).
    fn foreign_counter<'a>(&'a mut self, name: &'a str, help: &'a str) -> Family<'a> {
        self.family(name, help, Kind::ForeignCounter)
    }

    fn family<'a>(&'a mut self, name: &'a str, help: &'a str, kind: Kind) -> Family<'a> {
        Family {
            writer: self,
            name,
            help,
            kind,
            started: false,
        }
    }

    fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// One metric family being written: its HELP and TYPE go out with its first sample, so a family
/// with no samples (no devices, values unknown) leaves no trace.
struct Family<'a> {
    writer: &'a mut Writer,
    name: &'a str,
    help: &'a str,
    kind: Kind,
    started: bool,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: impl SampleValue) {
        let w = &mut *self.writer;
        if !self.started {
            self.started = true;
            // OpenMetrics names a counter family without the `_total` its samples carry.
            let family = match (w.format, self.kind) {
                (Format::OpenMetrics, Kind::Counter) => {
                    self.name.strip_suffix("_total").unwrap_or(self.name)
                }
                _ => self.name,
            };
            let kind = match (w.format, self.kind) {
                (_, Kind::Counter) | (Format::Text, Kind::ForeignCounter) => "counter",
                (Format::OpenMetrics, Kind::ForeignCounter) => "unknown",
                (_, Kind::Gauge) => "gauge",
            };
            w.out.push_str("# HELP ");
            w.out.push_str(family);
            w.out.push(' ');
            escape_help(&mut w.out, self.help);
            w.out.push_str("\n# TYPE ");
            w.out.push_str(family);
            w.out.push(' ');
            w.out.push_str(kind);
            w.out.push('\n');
        }
        w.out.push_str(self.name);
        w.out.push('{');
        w.out.push_str(&w.node_label);
        for (key, value) in labels {
            w.out.push(',');
            w.out.push_str(key);
            w.out.push_str("=\"");
            escape_label_value(&mut w.out, value);
            w.out.push('"');
        }
        w.out.push_str("} ");
        value.write_to(&mut w.out);
        w.out.push('\n');
    }
}

/// A sample value, written exactly: integers as integers (a u64 counter above 2^53 keeps every
/// digit), floats in the shortest form that reads back the same.
trait SampleValue {
    fn write_to(self, out: &mut String);
}

impl SampleValue for u64 {
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
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes `\` and newline.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
