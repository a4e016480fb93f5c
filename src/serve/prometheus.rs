//! Prometheus text exposition (0.0.4) and OpenMetrics 1.0 of one [`Snapshot`]: host metrics under
//! node_exporter's names and labels, NVIDIA GPUs under dcgm-exporter's, our own under
//! `system_monitor_`. A pure function of the snapshot; the REST layer caches its output.
//!
//! Every sample carries `node="<node_id>"`, added in one place ([`Writer`], which the
//! coordinator's `/metrics` writes with too). Counters are the raw counters (no rates). A section
//! whose collector failed is left out entirely; its `system_monitor_collector_success` says 0.
//! Families read from outside (textfiles) come last, as read, unless one of ours has their name.

mod accel;
mod histogram;
mod writer;

use std::collections::HashSet;
use std::sync::Arc;

pub use histogram::Histogram;
pub use writer::{
    Family, Format, HistogramFamily, SampleValue, Writer, OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};

use crate::model::exposition::ForeignFamily;
use crate::model::{
    CollectorStatus, CpuStats, DisksStats, FilesystemState, FilesystemsStats, KernelFamily,
    KernelMetricKind, MemoryStats, NetworkStats, PressureStats, Snapshot, TemperatureSensor,
};

/// One metric read from each device of a list: name, help, and the value (None: not reported).
type DeviceField<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// The whole exposition of `snapshot` in `format`.
pub fn encode(snapshot: &Snapshot, format: Format) -> String {
    encode_reporting(snapshot, format).0
}

/// [`encode`], with the families read from outside that were left out because they would
/// shadow ours (for the caller to report).
pub fn encode_reporting(snapshot: &Snapshot, format: Format) -> (String, Vec<Shadowed>) {
    let mut w = Writer::new(&snapshot.node_id, format);
    let shadowed = write_snapshot(&mut w, snapshot);
    (w.finish(), shadowed)
}

/// The names of the families (and the sample names they imply) that `/metrics` writes of
/// `snapshot` itself, leaving out those read from outside, plus the exec plugins' own gauges:
/// what an exec plugin may not name a family.
pub fn family_names(snapshot: &Snapshot) -> HashSet<String> {
    let own = Snapshot {
        foreign_families: Vec::new(),
        ..snapshot.clone()
    };
    let mut w = Writer::new(&own.node_id, Format::Text);
    w.track_names();
    write_snapshot(&mut w, &own);
    let mut names = w.into_names();
    names.extend(
        [
            "system_monitor_plugin_success",
            "system_monitor_plugin_duration_seconds",
        ]
        .map(String::from),
    );
    names
}

/// A family read from outside the monitor (a textfile) that `/metrics` leaves out because one of
/// the monitor's own families, written before it, has its name: two families of one name would
/// make the exposition invalid, and ours win (node_exporter's registry drops such a duplicate
/// too, with an error in its log).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shadowed {
    /// The family's name.
    pub family: String,
    /// Where it was read.
    pub source: String,
}

/// The families of `snapshot`, appended to `w` under `w`'s node label (the snapshot's own node
/// id when called from [`encode`]; the coordinator writes its own families first). Returns the
/// families read from outside that were left out (see [`Shadowed`]).
pub fn write_snapshot(w: &mut Writer, snapshot: &Snapshot) -> Vec<Shadowed> {
    if !snapshot.foreign_families.is_empty() {
        w.track_names();
    }
    if let Some(cpu) = &snapshot.cpu {
        cpu_metrics(w, cpu);
    }
    if let Some(sensors) = &snapshot.temperatures {
        temperature_metrics(w, sensors);
    }
    if let Some(memory) = &snapshot.memory {
        memory_metrics(w, memory);
    }
    if let Some(pressure) = &snapshot.pressure {
        pressure_metrics(w, pressure);
    }
    if let Some(disks) = &snapshot.disks {
        disk_metrics(w, disks);
    }
    if let Some(filesystems) = &snapshot.filesystems {
        filesystem_metrics(w, filesystems);
    }
    if let Some(network) = &snapshot.network {
        network_metrics(w, network);
    }
    accel::accelerator_metrics(w, &snapshot.accelerators, &snapshot.hostname);
    accel::power_metrics(w, &snapshot.power);
    write_kernel_families(w, &snapshot.kernel_families);
    own_metrics(w, snapshot);
    foreign_metrics(w, &snapshot.foreign_families)
}

/// The families the collectors named themselves (node_exporter's netstat, vmstat, uname…; the
/// process's own `process_*`), which the coordinator also writes for its own process.
pub fn write_kernel_families(w: &mut Writer, families: &[KernelFamily]) {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for family in families {
        let (name, help) = (&*family.name, &*family.help);
        let mut f = match family.kind {
            KernelMetricKind::Counter if name.ends_with("_total") => w.counter(name, help),
            KernelMetricKind::Counter => w.foreign_counter(name, help),
            KernelMetricKind::Gauge => w.gauge(name, help),
            KernelMetricKind::Untyped => w.untyped(name, help),
        };
        for sample in &family.samples {
            labels.clear();
            labels.extend(sample.labels.iter().map(|(k, v)| (*k, v.as_str())));
            f.sample(&labels, sample.value);
        }
    }
}

/// The families read from outside (textfiles), as their source typed and named them, but those
/// a family already written would be shadowed by.
fn foreign_metrics(w: &mut Writer, families: &[Arc<ForeignFamily>]) -> Vec<Shadowed> {
    let mut shadowed = Vec::new();
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for foreign in families {
        let family = &foreign.family;
        let clash =
            w.has_written(&family.name) || family.samples.iter().any(|s| w.has_written(&s.name));
        if clash {
            shadowed.push(Shadowed {
                family: family.name.clone(),
                source: foreign.source.clone(),
            });
            continue;
        }
        let help = family.help.as_deref().unwrap_or_default();
        let mut f = w.foreign(&family.name, help, family.kind);
        for sample in &family.samples {
            labels.clear();
            labels.extend(sample.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            f.sample_named(&sample.name, &labels, sample.value);
        }
    }
    shadowed
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
    // Only where sysfs has it (node_exporter's netdev reads it through netlink, for every
    // interface); a family with no sample writes nothing.
    let mut f = w.counter(
        "node_network_receive_nohandler_total",
        "Network device statistic receive_nohandler.",
    );
    for interface in &network.interfaces {
        if let Some(value) = interface.receive_nohandler_total {
            f.sample(&[("device", &interface.name)], value);
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
    // The same two under node_exporter's names, which its dashboards' "scrape" panels read.
    each(
        w,
        "node_scrape_collector_duration_seconds",
        "node_exporter: Duration of a collector scrape.",
        |c| c.duration_seconds,
    );
    each(
        w,
        "node_scrape_collector_success",
        "node_exporter: Whether a collector succeeded.",
        // node_exporter counts a collector with nothing to read on this host as unsuccessful.
        |c| if c.ok && !c.no_data { 1.0 } else { 0.0 },
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

#[cfg(test)]
mod tests;
