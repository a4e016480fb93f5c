//! What the history costs for a 64-core, 8-GPU, 16-disk, 8-interface host sampled every second,
//! on a realistic trace: memory per stored value in each tier, the whole default history
//! (1 h raw + 7 d of minutes), the time to append one sample, and a 7-day query.
//!
//! The trace (`benches/fixtures/history_trace.csv`) was recorded from `/api/system/metrics` at
//! 1 s on a busy 2-vCPU build VM; it is scaled up here: each of the 64 cores replays one of the
//! two recorded cores at its own time offset, each disk the recorded disk, each interface a
//! recorded interface, and each GPU is derived from recorded series at NVML's resolutions
//! (integer %, MiB, mW, °C). A second, pessimistic trace replaces every core's usage with a
//! full-precision float taken from the recorded disk rates (what an idle-and-bursty host with
//! 1-jiffy noise looks like). Figures are printed before criterion's timings; see
//! bench/RESULTS.md. Run: `cargo bench --bench history`.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use system_monitor::config::HistoryConfig;
use system_monitor::history::query::{answer, Query};
use system_monitor::history::store::{Keep, Store, RAW_BLOCK_ROWS};
use system_monitor::history::History;
use system_monitor::model::wire::{
    Accelerator, AcceleratorMemory, Collector, Core, Cpu, Disk, DiskDevice, Ecc, Filesystem,
    Interface, Memory, Network, NodeMetrics, Pcie, Pressure, PressureLine, PressureResource,
    Process, Sensor, Swap,
};
use system_monitor::model::AcceleratorKind;

const TRACE: &str = include_str!("fixtures/history_trace.csv");

const CORES: usize = 64;
const GPUS: usize = 8;
const DISKS: usize = 16;
const INTERFACES: usize = 8;

/// The recorded columns, by name.
struct Trace {
    names: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Trace {
    fn load() -> Trace {
        let mut lines = TRACE.lines().filter(|l| !l.starts_with('#'));
        let names: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(String::from)
            .collect();
        let rows = lines
            .map(|l| l.split(',').map(|v| v.parse().unwrap_or(0.0)).collect())
            .collect();
        Trace { names, rows }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    /// Column `name` at row `t` (wrapping).
    fn at(&self, name: &str, t: usize) -> f64 {
        let col = self.names.iter().position(|n| n == name).unwrap_or(0);
        self.rows[t % self.rows.len()][col]
    }
}

/// The element of the big host at trace step `t`.
fn element(trace: &Trace, t: usize, noisy: bool) -> NodeMetrics<'static> {
    let text = |s: String| Cow::Owned(s);
    let cores: Vec<Core> = (0..CORES)
        .map(|k| {
            let at = t + 17 * k;
            let usage = if noisy {
                // Full-precision floats in 0–100 from the recorded disk rate's low digits.
                let w = trace.at("disk_write", at) + trace.at("disk_read", at + 3) + k as f64;
                (w % 997.0) / 9.97
            } else {
                trace.at(if k % 2 == 0 { "core0" } else { "core1" }, at)
            };
            Core {
                id: k as u32,
                usage,
                frequency: Some(trace.at(if k % 2 == 0 { "freq0" } else { "freq1" }, at)),
                temperature: Some((38.0 + usage * 0.35).round()),
            }
        })
        .collect();
    let overall = cores.iter().map(|c| c.usage).sum::<f64>() / CORES as f64;
    let mem_total: u64 = 512 << 30;
    let mem_used = (trace.at("mem_used", t) as u64) * 16;
    let disks: Vec<DiskDevice> = (0..DISKS)
        .map(|d| {
            let at = t + 31 * d;
            let reads = trace.at("disk_reads", at);
            let writes = trace.at("disk_writes", at);
            DiskDevice {
                device: text(format!("nvme{d}n1")),
                io_read: trace.at("disk_read", at),
                io_write: trace.at("disk_write", at),
                reads_per_sec: reads,
                writes_per_sec: writes,
                iops: reads + writes,
                utilization: trace.at("disk_util", at),
                counted_in_total: true,
            }
        })
        .collect();
    let interfaces: Vec<Interface> = (0..INTERFACES)
        .map(|i| {
            let at = t + 13 * i;
            let scale = (i + 1) as f64;
            Interface {
                name: text(format!("ens{i}")),
                bytes_in: trace.at("lo_in", at) * scale + trace.at("eth_in", at),
                bytes_out: trace.at("lo_in", at + 1) * scale + trace.at("eth_out", at),
                packets_in: trace.at("lo_pin", at),
                packets_out: trace.at("lo_pin", at + 1),
                counted_in_total: true,
            }
        })
        .collect();
    let filesystems: Vec<Filesystem> = (0..DISKS)
        .map(|d| {
            let size: u64 = 3_840_000_000_000;
            let used = trace.at("fs_used", t + d) as u64 + d as u64 * 10_000_000_000;
            Filesystem {
                device: text(format!("/dev/nvme{d}n1")),
                mountpoint: text(format!("/data{d}")),
                fstype: Cow::Borrowed("ext4"),
                size,
                used,
                avail: size - used,
                usage: used as f64 / size as f64 * 100.0,
                readonly: false,
                state: Cow::Borrowed("ok"),
                error: None,
                counted_in_total: true,
            }
        })
        .collect();
    let accelerators: Vec<Accelerator> = (0..GPUS)
        .map(|g| {
            let at = t + 7 * g;
            let util = (trace.at("core0", at) * 0.6 + trace.at("core1", at + 1) * 0.4).round();
            let mem_used = ((trace.at("mem_used", at) as u64 * 30) >> 20) << 20;
            let mem_total: u64 = 80 << 30;
            let milliwatts = (util * 6_500.0) as u64 + (trace.at("disk_util", at) * 100.0) as u64;
            // A counter: joules since the driver loaded, NVML's mJ over 1000.
            let energy_mj = t as u64 * 455_000 + milliwatts;
            let temp = (35.0 + util * 0.4).round();
            let pcie = ((trace.at("disk_write", at) / 1024.0) as u64) * 1024;
            Accelerator {
                id: text(format!("GPU-{g}")),
                kind: AcceleratorKind::Gpu,
                name: Cow::Borrowed("NVIDIA H100 80GB HBM3"),
                utilization: Some(util),
                memory: AcceleratorMemory {
                    used: Some(mem_used),
                    total: Some(mem_total),
                    percentage: Some(mem_used as f64 / mem_total as f64 * 100.0),
                    reserved: Some(512 << 20),
                },
                temperature: Some(temp),
                power: Some(milliwatts as f64 / 1000.0),
                fan_speed: None,
                vendor: Cow::Borrowed("nvidia"),
                index: g as u32,
                uuid: Some(text(format!("GPU-0000-{g}"))),
                pci_bus_id: Some(text(format!("00000000:{g:02x}:00.0"))),
                power_limit: Some(700.0),
                energy: Some(energy_mj as f64 / 1000.0),
                memory_utilization: Some((util * 0.45).round()),
                encoder_utilization: Some(0.0),
                decoder_utilization: Some(0.0),
                memory_temperature: Some(temp + 4.0),
                sm_clock: Some(1980.0),
                memory_clock: Some(2619.0),
                graphics_clock: Some(1980.0),
                pcie: Some(Pcie {
                    tx_bytes_per_sec: Some(pcie as f64),
                    rx_bytes_per_sec: Some((pcie / 2) as f64),
                    link_gen: Some(5),
                    link_width: Some(16),
                }),
                performance_state: Some(0),
                throttle_reasons: Some(Vec::new()),
                throttle_reasons_mask: Some(0),
                ecc: Some(Ecc {
                    corrected: Some(0),
                    uncorrected: Some(0),
                }),
                mig_devices: Vec::new(),
                profiling: None,
                processes: vec![Process {
                    pid: 4242 + g as u32,
                    memory_used: Some(mem_used.saturating_sub(512 << 20)),
                    pod: None,
                }],
                pods: Vec::new(),
                error: None,
            }
        })
        .collect();
    let line = |res: &str, l: &str| PressureLine {
        avg10: trace.at(&format!("psi_{res}_{l}_avg10"), t),
        avg60: trace.at(&format!("psi_{res}_{l}_avg60"), t),
        avg300: trace.at(&format!("psi_{res}_{l}_avg300"), t),
        total_seconds: trace.at(&format!("psi_{res}_{l}_totalSeconds"), t),
    };
    let resource = |res: &str| {
        Some(PressureResource {
            some: line(res, "some"),
            full: Some(line(res, "full")),
        })
    };
    let collectors = trace
        .names
        .iter()
        .filter_map(|n| n.strip_prefix("dur_"))
        .chain(["nvml"])
        .map(|name| Collector {
            name: text(name.to_string()),
            ok: true,
            error: None,
            duration_seconds: trace.at(&format!("dur_{name}"), t),
        })
        .collect();
    NodeMetrics {
        node_id: Cow::Borrowed("gpu-node-01"),
        timestamp: 0,
        cpu: Some(Cpu {
            overall,
            cores,
            load_average: [
                trace.at("load1", t) * 20.0,
                trace.at("load5", t) * 20.0,
                trace.at("load15", t) * 20.0,
            ],
            processes: trace.at("processes", t) as u64 * 10,
            threads: trace.at("threads", t) as u64 * 20,
        }),
        memory: Some(Memory {
            usage: mem_used as f64 / mem_total as f64 * 100.0,
            used: mem_used,
            total: mem_total,
            swap: Swap::default(),
            available: mem_total - mem_used,
            cached: Some(trace.at("mem_cached", t) as u64 * 16),
        }),
        disk: Some(Disk {
            usage: filesystems.iter().map(|f| f.used).sum::<u64>() as f64
                / filesystems.iter().map(|f| f.size).sum::<u64>() as f64
                * 100.0,
            used: filesystems.iter().map(|f| f.used).sum(),
            total: filesystems.iter().map(|f| f.size).sum(),
            io_read: disks.iter().map(|d| d.io_read).sum(),
            io_write: disks.iter().map(|d| d.io_write).sum(),
            iops: disks.iter().map(|d| d.iops).sum(),
        }),
        network: Some(Network {
            bytes_in: interfaces.iter().map(|i| i.bytes_in).sum(),
            bytes_out: interfaces.iter().map(|i| i.bytes_out).sum(),
            packets_in: interfaces.iter().map(|i| i.packets_in).sum(),
            packets_out: interfaces.iter().map(|i| i.packets_out).sum(),
            connections: Some(trace.at("threads", t) as u64 / 4),
        }),
        accelerators,
        hostname: Cow::Borrowed("gpu-node-01"),
        temperatures: (0..2)
            .map(|s| Sensor {
                chip: text(format!("coretemp-isa-000{s}")),
                chip_name: Cow::Borrowed("coretemp"),
                sensor: Cow::Borrowed("temp1"),
                label: Some(text(format!("Package id {s}"))),
                temperature: (40.0 + trace.at("core0", t + s) * 0.3).round(),
                critical: Some(100.0),
                max: Some(90.0),
            })
            .collect(),
        disks,
        filesystems,
        interfaces,
        pressure: Some(Pressure {
            cpu: resource("cpu"),
            memory: resource("memory"),
            io: resource("io"),
        }),
        power: Vec::new(),
        collectors,
        custom: Default::default(),
    }
}

/// One period of the trace's elements, and their timestamps' jitter (ms off the whole second).
fn elements(trace: &Trace, noisy: bool) -> (Vec<NodeMetrics<'static>>, Vec<i64>) {
    let elements = (0..trace.len()).map(|t| element(trace, t, noisy)).collect();
    let jitter = (0..trace.len())
        .map(|t| {
            (trace.at("ms", t) as i64 - t as i64 * 1000)
                .rem_euclid(1000)
                .min(400)
        })
        .collect();
    (elements, jitter)
}

const START_MS: i64 = 1_790_000_000_000;

fn keep() -> Keep {
    Keep {
        raw_ms: 3_600_000,
        minute_ms: 7 * 86_400_000,
    }
}

/// A store filled with `seconds` of samples, every full block sealed as it fills (inline: the
/// agent's worker thread does it in the background). Returns the store and the time spent in
/// `append` alone (flattening and pushing), in seconds.
fn filled(seconds: usize, elements: &[NodeMetrics<'static>], jitter: &[i64]) -> (Store, f64) {
    let mut store = Store::new(keep());
    let mut appending = 0.0;
    for t in 0..seconds {
        let i = t % elements.len();
        let ts = START_MS + t as i64 * 1000 + jitter[i];
        let started = Instant::now();
        let full = store.append(ts, &elements[i]).expect("append");
        appending += started.elapsed().as_secs_f64();
        if full {
            store.seal_full().expect("seal");
        }
    }
    (store, appending)
}

/// The default history after 7 days and 1 hour of samples: every sample is appended (the minute
/// tier is the trace's own minutes), but raw blocks that would leave the 1-hour tier before the
/// end are dropped instead of compressed (compressing 5,000 of them took most of 5–7 minutes).
fn week(elements: &[NodeMetrics<'static>], jitter: &[i64]) -> Store {
    let seconds = 7 * 86_400 + 3_600;
    let mut store = Store::new(keep());
    for t in 0..seconds {
        let i = t % elements.len();
        let ts = START_MS + t as i64 * 1000 + jitter[i];
        if store.append(ts, &elements[i]).expect("append") {
            if t + 3_600 + 240 < seconds {
                store.raw.full.clear();
            }
            store.seal_full().expect("seal");
        }
    }
    store
}

/// Values present in a tier (raw: one per series per row; minute: four per series per row).
fn values(store: &Store, minute: bool) -> usize {
    let tier = if minute { &store.minute } else { &store.raw };
    let mut n = 0;
    for block in &tier.sealed {
        for c in 0..block.columns() {
            if let Ok(Some((_, col))) = block.column(c) {
                n += col.iter().filter(|v| v.is_some()).count();
            }
        }
    }
    for block in tier.unsealed() {
        n += block.values();
    }
    n
}

fn report(name: &str, noisy: bool) {
    let trace = Trace::load();
    let (elements, jitter) = elements(&trace, noisy);
    let started = Instant::now();
    let (hour, appending) = filled(3_600, &elements, &jitter);
    let hour_s = started.elapsed().as_secs_f64();
    let raw_bytes = hour.raw.heap_bytes();
    let raw_values = values(&hour, false);
    let sealed_raw: usize = hour.raw.sealed.iter().map(|b| b.heap_bytes()).sum();
    let sealed_values = raw_values - hour.raw.open.values();
    println!(
        "history/{name}: {} series; raw tier after 1 h: {} values, {} bytes = {:.3} bytes/value \
         (sealed blocks alone {:.3}); 3,600 samples: append (flatten + push) {:.1} µs each, \
         sealing {:.0} ms per block of {} rows",
        hour.catalog.series.len(),
        raw_values,
        raw_bytes,
        raw_bytes as f64 / raw_values as f64,
        sealed_raw as f64 / sealed_values.max(1) as f64,
        appending * 1e6 / 3_600.0,
        (hour_s - appending) * 1e3 / (3_600 / RAW_BLOCK_ROWS) as f64,
        RAW_BLOCK_ROWS,
    );
    let started = Instant::now();
    let week = week(&elements, &jitter);
    let minute_bytes = week.minute.heap_bytes();
    let minute_values = values(&week, true);
    println!(
        "history/{name}: minute tier after 7 d: {} rows, {} values, {} bytes = {:.3} bytes/value; \
         whole default history (1 h raw + 7 d minutes + catalog): {} bytes = {:.2} MiB \
         (filled in {:.0} s)",
        week.minute.rows(),
        minute_values,
        minute_bytes,
        minute_bytes as f64 / minute_values as f64,
        week.heap_bytes(),
        week.heap_bytes() as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64(),
    );
}

/// The trace's element for second `t`, stamped with its time; `t` moves on a second.
fn next_sample<'e>(
    elements: &'e mut [NodeMetrics<'static>],
    jitter: &[i64],
    t: &mut usize,
) -> &'e NodeMetrics<'static> {
    let i = *t % elements.len();
    elements[i].timestamp = START_MS + *t as i64 * 1000 + jitter[i];
    *t += 1;
    &elements[i]
}

fn benches(c: &mut Criterion) {
    report("busy", false);
    report("noisy", true);

    let trace = Trace::load();
    let (mut elements, jitter) = elements(&trace, false);
    let store = week(&elements, &jitter);
    let mut t = 7 * 86_400 + 3_600;
    let now = START_MS + t as i64 * 1000;
    let week =
        Query::new(Some(now - 7 * 86_400_000), Some(now), None, None, None, now).expect("query");
    let got = answer(&store, "gpu-node-01", &week, 1000).expect("answer");
    println!(
        "history/query_7d: {} points of {} fields at step {} ms",
        got.timestamps.len(),
        got.series.len(),
        got.step_ms
    );
    c.bench_function("history/query_7d_headline", |b| {
        b.iter(|| answer(&store, "gpu-node-01", &week, 1000).expect("answer"))
    });
    let hour = Query::new(Some(now - 3_600_000), Some(now), None, None, None, now).expect("query");
    c.bench_function("history/query_1h_headline", |b| {
        b.iter(|| answer(&store, "gpu-node-01", &hour, 1000).expect("answer"))
    });
    let native =
        Query::new(Some(now - 900_000), Some(now), None, Some("*"), None, now).expect("query");
    c.bench_function("history/query_15m_all_fields_native", |b| {
        b.iter(|| answer(&store, "gpu-node-01", &native, 1000).expect("answer"))
    });
    drop(store);

    // What the agent does per sample: History::append (write lock, flatten, push; a block that
    // fills goes to the worker thread, which compresses it in the background). At 1 s the worker
    // seals one raw block in 240 s and is idle the rest of the time: the appends of a block are
    // timed back to back, and the worker is let finish each full block before the next one
    // starts (untimed), as it has in the agent.
    let history = History::new(&HistoryConfig::default(), Duration::from_secs(1));
    let sealed = |h: &History| h.with_store(|s| s.raw.full.is_empty() && s.minute.full.is_empty());
    c.bench_function("history/append", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let started = Instant::now();
                let mut filled = false;
                while done < iters && !filled {
                    filled = history.append(next_sample(&mut elements, &jitter, &mut t));
                    done += 1;
                }
                timed += started.elapsed();
                while !sealed(&history) {
                    std::thread::yield_now();
                }
            }
            timed
        })
    });
    // A yardstick from the same run: the element encoded as `/api/system/metrics` writes it
    // (serde_json, into a reused buffer), a walk of the same value by serde. This VM's speed
    // varies by 2x or more from hour to hour; the ratio of the append to this does much less.
    let mut json = Vec::with_capacity(1 << 17);
    c.bench_function("history/reference_json_encode", |b| {
        b.iter(|| {
            json.clear();
            let element = next_sample(&mut elements, &jitter, &mut t);
            serde_json::to_writer(&mut json, element).expect("encode");
            json.len()
        })
    });
    // The same back to back, the worker sealing meanwhile: in this loop a block fills every
    // 240 appends, a few ms, while sealing one takes longer, so the worker seals all the time
    // on the other vCPU (as it never does at 1 s) and the two share the machine.
    c.bench_function("history/append_while_sealing", |b| {
        b.iter(|| history.append(next_sample(&mut elements, &jitter, &mut t)))
    });
    history.close();
}

criterion_group! {
    name = history;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(history);
