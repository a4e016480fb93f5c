//! The REST API on the REST port: `/api/health`, `/api/system/info`, `/api/system/metrics` (the
//! TrackLab JSON shapes of DESIGN.md), `/api/system/stream` (SSE), and Prometheus `/metrics`.
//!
//! Handlers read the latest snapshot and never collect. Each representation is encoded once per
//! snapshot (`EncodedCache`): a thousand requests in one interval cost one serialization. The
//! JSON encoders ([`metrics_view`], [`info_view`]) are pure functions of a snapshot, for the
//! coordinator to reuse.
//!
//! Conventions of the JSON: the contract fields of `/api/system/metrics` are always present —
//! a section whose collector failed reports zeros (and `collectors` says why); a value the host
//! does not expose (a core's frequency or temperature, an accelerator's power, the connection
//! count) is `null`. Never NaN or infinity. Fields added beside the contract are camelCase in
//! `metrics` and snake_case in `info`, like their neighbours. Every error is JSON
//! `{"error": ..., ...}` with the right status.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_http::cors::CorsLayer;

use super::prometheus::{self, Format};
use super::{stream, AppState};
use crate::collect::unix_ms;
use crate::model::{Accelerator, AcceleratorProcess, FilesystemState, Snapshot};

/// The REST routes.
pub fn router(state: AppState) -> Router {
    let state = RestState {
        app: state,
        cache: Arc::new(EncodedCache::default()),
    };
    Router::new()
        .route("/api/health", get(health))
        .route("/api/system/info", get(info))
        .route("/api/system/metrics", get(metrics))
        .route("/api/system/stream", get(stream::metrics_stream))
        .route("/metrics", get(prometheus_metrics))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(CorsLayer::permissive())
        .with_state(state)
}

/// What the REST handlers share.
#[derive(Clone)]
pub(super) struct RestState {
    /// The snapshots and settings every server shares.
    pub(super) app: AppState,
    /// The encoded responses of the latest snapshot.
    pub(super) cache: Arc<EncodedCache>,
}

impl RestState {
    /// `[element]` of `snapshot` as JSON bytes, encoded once per snapshot.
    pub(super) fn metrics_json(&self, snapshot: &Snapshot) -> Result<Bytes, serde_json::Error> {
        self.cache
            .metrics
            .get_or_encode(snapshot.sequence, || metrics_array_json([snapshot]))
    }
}

/// Encoded responses keyed by snapshot sequence, one slot per representation.
#[derive(Default)]
pub(super) struct EncodedCache {
    metrics: Slot,
    info: Slot,
    prometheus_text: Slot,
    openmetrics: Slot,
}

/// The bytes of one representation of one snapshot.
#[derive(Default)]
struct Slot(Mutex<Option<(u64, Bytes)>>);

impl Slot {
    /// The cached bytes for snapshot `sequence`, encoding them first if the slot holds another
    /// snapshot. Concurrent requests for a new snapshot wait for the one encoding rather than
    /// each doing it.
    fn get_or_encode<E>(
        &self,
        sequence: u64,
        encode: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Bytes, E> {
        // A panic while encoding leaves at worst a stale entry, which the sequence check ignores.
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, bytes)) = slot.as_ref() {
            if *cached == sequence {
                return Ok(bytes.clone());
            }
        }
        let bytes = Bytes::from(encode()?);
        *slot = Some((sequence, bytes.clone()));
        Ok(bytes)
    }
}

/// The `/api/system/metrics` array of `snapshots`, as JSON bytes.
pub fn metrics_array_json<'a>(
    snapshots: impl IntoIterator<Item = &'a Snapshot>,
) -> Result<Vec<u8>, serde_json::Error> {
    let views: Vec<NodeMetrics<'_>> = snapshots.into_iter().map(metrics_view).collect();
    serde_json::to_vec(&views)
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn health(State(state): State<RestState>) -> Response {
    let snapshot = state.app.latest();
    let now = SystemTime::now();
    let age_ms = unix_ms(now).saturating_sub(snapshot.timestamp_ms).max(0);
    let uptime = now
        .duration_since(state.app.started_at)
        .unwrap_or_default()
        .as_secs_f64();
    let mut body = json!({
        "status": "healthy",
        "service": "system_monitor",
        "timestamp": humantime::format_rfc3339_millis(now).to_string(),
        "node_id": snapshot.node_id,
        "version": crate::VERSION,
        "uptime_seconds": round3(uptime),
        "last_sample_age_seconds": round3(age_ms as f64 / 1000.0),
        "interval_seconds": state.app.interval.as_secs_f64(),
    });
    let status = match state.app.stale_reason(&snapshot) {
        None => StatusCode::OK,
        Some(reason) => {
            body["status"] = json!("unhealthy");
            body["reason"] = json!(reason);
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    (status, no_store(), axum::Json(body)).into_response()
}

async fn info(State(state): State<RestState>) -> Response {
    let snapshot = state.app.latest();
    let encoded = state.cache.info.get_or_encode(snapshot.sequence, || {
        serde_json::to_vec(&info_view(&snapshot))
    });
    json_bytes(encoded)
}

/// `?node_id=ID` or `?node_id=ID1,ID2`.
#[derive(Debug, Deserialize)]
struct MetricsQuery {
    node_id: Option<String>,
}

async fn metrics(
    State(state): State<RestState>,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid query", "detail": rejection.body_text()}),
            )
        }
    };
    let snapshot = state.app.latest();
    if let Some(requested) = &query.node_id {
        let ids = match parse_node_ids(requested) {
            Ok(ids) => ids,
            Err(reason) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid node_id", "detail": reason, "node_id": requested}),
                )
            }
        };
        // An agent knows one node: every listed id must be it.
        if let Some(unknown) = ids.iter().find(|id| **id != snapshot.node_id) {
            return error(
                StatusCode::NOT_FOUND,
                json!({"error": "unknown node_id", "node_id": unknown}),
            );
        }
    }
    json_bytes(state.metrics_json(&snapshot))
}

/// Splits a `node_id` parameter into ids, each checked like `--node-id`.
pub fn parse_node_ids(text: &str) -> Result<Vec<&str>, String> {
    text.split(',')
        .map(|id| {
            crate::cli::parse_node_id(id)
                .map(|_| id)
                .map_err(|e| format!("{id:?}: {e}"))
        })
        .collect()
}

async fn prometheus_metrics(State(state): State<RestState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let snapshot = state.app.latest();
    let slot = match format {
        Format::Text => &state.cache.prometheus_text,
        Format::OpenMetrics => &state.cache.openmetrics,
    };
    let Ok(body) = slot.get_or_encode(snapshot.sequence, || {
        Ok::<_, std::convert::Infallible>(prometheus::encode(&snapshot, format).into_bytes())
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

pub(crate) async fn not_found(uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": "not found", "path": uri.path()}),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": "method not allowed", "method": method.as_str(), "path": uri.path()}),
    )
}

pub(crate) fn error(status: StatusCode, body: serde_json::Value) -> Response {
    (status, no_store(), axum::Json(body)).into_response()
}

/// Live data must not be cached by browsers or proxies.
pub(crate) fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// A 200 JSON response from pre-encoded bytes, or a JSON 500 when encoding failed (a bug: our
/// views have no maps with non-string keys and no non-finite floats).
pub(crate) fn json_bytes(encoded: Result<Bytes, serde_json::Error>) -> Response {
    match encoded {
        Ok(body) => (
            no_store(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!("encoding a REST response failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "encoding failed", "detail": e.to_string()}),
            )
        }
    }
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// /api/system/metrics

/// A float that is safe in JSON: non-finite becomes 0.
fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// An optional float that is safe in JSON: non-finite becomes null.
fn finite_opt(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

/// One element of the `/api/system/metrics` array: one node at one sample.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics<'a> {
    #[serde(rename = "node_id")]
    node_id: &'a str,
    /// Unix milliseconds.
    timestamp: i64,
    cpu: CpuView,
    memory: MemoryView,
    disk: DiskView,
    network: NetworkView,
    accelerators: Vec<AcceleratorView<'a>>,
    // Added beside the contract.
    hostname: &'a str,
    temperatures: Vec<SensorView<'a>>,
    disks: Vec<DiskDeviceView<'a>>,
    filesystems: Vec<FilesystemView<'a>>,
    interfaces: Vec<InterfaceView<'a>>,
    pressure: Option<PressureView>,
    /// Power outside any accelerator (Apple SoC clusters, DRAM); left out where there is none,
    /// so that hosts without such readings keep the shape they always had.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    power: Vec<PowerView<'a>>,
    collectors: Vec<CollectorView<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CpuView {
    overall: f64,
    cores: Vec<CoreView>,
    load_average: [f64; 3],
    processes: u64,
    threads: u64,
}

#[derive(Debug, Serialize)]
struct CoreView {
    id: u32,
    usage: f64,
    /// MHz.
    frequency: Option<f64>,
    /// °C.
    temperature: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MemoryView {
    usage: f64,
    used: u64,
    total: u64,
    swap: SwapView,
    available: u64,
}

#[derive(Debug, Serialize)]
struct SwapView {
    used: u64,
    total: u64,
    percentage: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskView {
    usage: f64,
    used: u64,
    total: u64,
    io_read: f64,
    io_write: f64,
    iops: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NetworkView {
    bytes_in: f64,
    bytes_out: f64,
    packets_in: f64,
    packets_out: f64,
    connections: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AcceleratorView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    utilization: Option<f64>,
    memory: AcceleratorMemoryView,
    temperature: Option<f64>,
    power: Option<f64>,
    fan_speed: Option<f64>,
    // Added beside the contract.
    vendor: &'a str,
    index: u32,
    uuid: Option<&'a str>,
    pci_bus_id: Option<&'a str>,
    /// W, the limit the driver enforces.
    power_limit: Option<f64>,
    /// J since the driver was loaded (a counter).
    energy: Option<f64>,
    memory_utilization: Option<f64>,
    encoder_utilization: Option<f64>,
    decoder_utilization: Option<f64>,
    memory_temperature: Option<f64>,
    sm_clock: Option<f64>,
    memory_clock: Option<f64>,
    graphics_clock: Option<f64>,
    /// Null when the device reports nothing about its PCIe link.
    pcie: Option<PcieView>,
    performance_state: Option<u32>,
    /// Names of the active clock throttle reasons; null when the device does not report them.
    throttle_reasons: Option<&'a [&'static str]>,
    /// The same reasons as NVML's `nvmlClocksEventReasons` bitmask (bits without a name too).
    throttle_reasons_mask: Option<u64>,
    /// Null when the device has no ECC counters.
    ecc: Option<EccView>,
    mig_devices: Vec<MigDeviceView<'a>>,
    /// DCGM profiling; null without `--enable-dcgm-profiling` or where DCGM has no answer.
    profiling: Option<ProfilingView>,
    processes: Vec<ProcessView>,
    error: Option<&'a str>,
}

/// Bytes; `reserved` is added beside the contract's three.
#[derive(Debug, Serialize)]
struct AcceleratorMemoryView {
    used: Option<u64>,
    total: Option<u64>,
    percentage: Option<f64>,
    reserved: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PcieView {
    tx_bytes_per_sec: Option<f64>,
    rx_bytes_per_sec: Option<f64>,
    link_gen: Option<u32>,
    link_width: Option<u32>,
}

#[derive(Debug, Serialize)]
struct EccView {
    corrected: Option<u64>,
    uncorrected: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MigDeviceView<'a> {
    index: u32,
    uuid: Option<&'a str>,
    gpu_instance_id: Option<u32>,
    compute_instance_id: Option<u32>,
    profile: Option<&'a str>,
    multiprocessors: Option<u32>,
    memory: MigMemoryView,
    processes: Vec<ProcessView>,
}

/// The instance's own memory, bytes.
#[derive(Debug, Serialize)]
struct MigMemoryView {
    used: Option<u64>,
    total: Option<u64>,
    percentage: Option<f64>,
}

/// Ratios 0–1 as DCGM reports them, and bytes per second.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfilingView {
    graphics_engine_active: Option<f64>,
    sm_active: Option<f64>,
    sm_occupancy: Option<f64>,
    tensor_active: Option<f64>,
    dram_active: Option<f64>,
    fp64_active: Option<f64>,
    fp32_active: Option<f64>,
    fp16_active: Option<f64>,
    pcie_tx_bytes_per_sec: Option<f64>,
    pcie_rx_bytes_per_sec: Option<f64>,
    nvlink_tx_bytes_per_sec: Option<f64>,
    nvlink_rx_bytes_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessView {
    pid: u32,
    /// Bytes; null where the driver does not say (MIG without privileges).
    memory_used: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PowerView<'a> {
    source: &'a str,
    watts: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SensorView<'a> {
    chip: &'a str,
    chip_name: &'a str,
    sensor: &'a str,
    label: Option<&'a str>,
    temperature: f64,
    critical: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskDeviceView<'a> {
    device: &'a str,
    io_read: f64,
    io_write: f64,
    reads_per_sec: f64,
    writes_per_sec: f64,
    iops: f64,
    utilization: f64,
    counted_in_total: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FilesystemView<'a> {
    device: &'a str,
    mountpoint: &'a str,
    fstype: &'a str,
    size: u64,
    used: u64,
    avail: u64,
    usage: f64,
    readonly: bool,
    /// `ok`, `timed_out` or `error`.
    state: &'static str,
    error: Option<&'a str>,
    counted_in_total: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InterfaceView<'a> {
    name: &'a str,
    bytes_in: f64,
    bytes_out: f64,
    packets_in: f64,
    packets_out: f64,
    counted_in_total: bool,
}

#[derive(Debug, Serialize)]
struct PressureView {
    cpu: Option<PressureResourceView>,
    memory: Option<PressureResourceView>,
    io: Option<PressureResourceView>,
}

#[derive(Debug, Serialize)]
struct PressureResourceView {
    some: PressureLineView,
    full: Option<PressureLineView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PressureLineView {
    avg10: f64,
    avg60: f64,
    avg300: f64,
    total_seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CollectorView<'a> {
    name: &'a str,
    ok: bool,
    error: Option<&'a str>,
    duration_seconds: f64,
}

/// The `/api/system/metrics` element of `snapshot`.
pub fn metrics_view(snapshot: &Snapshot) -> NodeMetrics<'_> {
    let cpu = snapshot.cpu.as_ref();
    let memory = snapshot.memory.as_ref();
    let fs = snapshot.filesystems.as_ref();
    let disks = snapshot.disks.as_ref();
    let network = snapshot.network.as_ref();
    NodeMetrics {
        node_id: &snapshot.node_id,
        timestamp: snapshot.timestamp_ms,
        cpu: CpuView {
            overall: finite(cpu.map_or(0.0, |c| c.usage_percent)),
            cores: cpu.map_or_else(Vec::new, |c| {
                c.cores
                    .iter()
                    .map(|core| CoreView {
                        id: core.id,
                        usage: finite(core.usage_percent),
                        frequency: finite_opt(core.frequency_mhz),
                        temperature: finite_opt(core.temperature_celsius),
                    })
                    .collect()
            }),
            load_average: cpu.map_or([0.0; 3], |c| c.load_average.map(finite)),
            processes: cpu.map_or(0, |c| c.processes),
            threads: cpu.map_or(0, |c| c.threads),
        },
        memory: MemoryView {
            usage: finite(memory.map_or(0.0, |m| m.usage_percent)),
            used: memory.map_or(0, |m| m.used_bytes),
            total: memory.map_or(0, |m| m.total_bytes),
            swap: SwapView {
                used: memory.map_or(0, |m| m.swap_used_bytes),
                total: memory.map_or(0, |m| m.swap_total_bytes),
                percentage: finite(memory.map_or(0.0, |m| m.swap_percent)),
            },
            available: memory.map_or(0, |m| m.available_bytes),
        },
        disk: DiskView {
            usage: finite(fs.map_or(0.0, |f| f.usage_percent)),
            used: fs.map_or(0, |f| f.used_bytes),
            total: fs.map_or(0, |f| f.total_bytes),
            io_read: finite(disks.map_or(0.0, |d| d.read_bytes_per_sec)),
            io_write: finite(disks.map_or(0.0, |d| d.write_bytes_per_sec)),
            iops: finite(disks.map_or(0.0, |d| d.iops)),
        },
        network: NetworkView {
            bytes_in: finite(network.map_or(0.0, |n| n.receive_bytes_per_sec)),
            bytes_out: finite(network.map_or(0.0, |n| n.transmit_bytes_per_sec)),
            packets_in: finite(network.map_or(0.0, |n| n.receive_packets_per_sec)),
            packets_out: finite(network.map_or(0.0, |n| n.transmit_packets_per_sec)),
            connections: network.and_then(|n| n.tcp_established),
        },
        accelerators: snapshot.accelerators.iter().map(accelerator_view).collect(),
        hostname: &snapshot.hostname,
        temperatures: snapshot
            .temperatures
            .iter()
            .flatten()
            .map(|s| SensorView {
                chip: &s.chip,
                chip_name: &s.chip_name,
                sensor: &s.sensor,
                label: s.label.as_deref(),
                temperature: finite(s.celsius),
                critical: finite_opt(s.critical_celsius),
                max: finite_opt(s.max_celsius),
            })
            .collect(),
        disks: disks.map_or_else(Vec::new, |d| {
            d.devices
                .iter()
                .map(|d| DiskDeviceView {
                    device: &d.name,
                    io_read: finite(d.read_bytes_per_sec),
                    io_write: finite(d.write_bytes_per_sec),
                    reads_per_sec: finite(d.reads_per_sec),
                    writes_per_sec: finite(d.writes_per_sec),
                    iops: finite(d.reads_per_sec + d.writes_per_sec),
                    utilization: finite(d.utilization_percent),
                    counted_in_total: d.counted_in_total,
                })
                .collect()
        }),
        filesystems: fs.map_or_else(Vec::new, |f| {
            f.mounts
                .iter()
                .map(|m| {
                    let (state, error) = match &m.state {
                        FilesystemState::Ok => ("ok", None),
                        FilesystemState::TimedOut => ("timed_out", None),
                        FilesystemState::Error(e) => ("error", Some(e.as_str())),
                    };
                    FilesystemView {
                        device: &m.device,
                        mountpoint: &m.mountpoint,
                        fstype: &m.fstype,
                        size: m.size_bytes,
                        used: m.size_bytes.saturating_sub(m.free_bytes),
                        avail: m.avail_bytes,
                        usage: finite(m.usage_percent),
                        readonly: m.readonly,
                        state,
                        error,
                        counted_in_total: m.counted_in_total,
                    }
                })
                .collect()
        }),
        interfaces: network.map_or_else(Vec::new, |n| {
            n.interfaces
                .iter()
                .map(|i| InterfaceView {
                    name: &i.name,
                    bytes_in: finite(i.receive_bytes_per_sec),
                    bytes_out: finite(i.transmit_bytes_per_sec),
                    packets_in: finite(i.receive_packets_per_sec),
                    packets_out: finite(i.transmit_packets_per_sec),
                    counted_in_total: i.counted_in_total,
                })
                .collect()
        }),
        pressure: snapshot.pressure.as_ref().map(|p| {
            let line = |l: &crate::model::PressureLine| PressureLineView {
                avg10: finite(l.avg10),
                avg60: finite(l.avg60),
                avg300: finite(l.avg300),
                total_seconds: finite(l.total_seconds),
            };
            let resource = |r: &Option<crate::model::PressureResource>| {
                r.as_ref().map(|r| PressureResourceView {
                    some: line(&r.some),
                    full: r.full.as_ref().map(line),
                })
            };
            PressureView {
                cpu: resource(&p.cpu),
                memory: resource(&p.memory),
                io: resource(&p.io),
            }
        }),
        power: snapshot
            .power
            .iter()
            .map(|p| PowerView {
                source: &p.source,
                watts: finite(p.watts),
            })
            .collect(),
        collectors: snapshot
            .collectors
            .iter()
            .map(|c| CollectorView {
                name: &c.name,
                ok: c.ok,
                error: c.error.as_deref(),
                duration_seconds: finite(c.duration_seconds),
            })
            .collect(),
    }
}

/// `used` over `total` in percent, when both are known and `total` is not 0.
fn memory_percentage(used: Option<u64>, total: Option<u64>) -> Option<f64> {
    match (used, total) {
        (Some(used), Some(total)) if total > 0 => {
            Some(crate::model::percent(used as f64, total as f64))
        }
        _ => None,
    }
}

fn process_views(processes: &[AcceleratorProcess]) -> Vec<ProcessView> {
    processes
        .iter()
        .map(|p| ProcessView {
            pid: p.pid,
            memory_used: p.memory_used_bytes,
        })
        .collect()
}

fn accelerator_view(a: &Accelerator) -> AcceleratorView<'_> {
    let pcie = (a.pcie_tx_bytes_per_sec.is_some()
        || a.pcie_rx_bytes_per_sec.is_some()
        || a.pcie_link_gen.is_some()
        || a.pcie_link_width.is_some())
    .then(|| PcieView {
        tx_bytes_per_sec: finite_opt(a.pcie_tx_bytes_per_sec),
        rx_bytes_per_sec: finite_opt(a.pcie_rx_bytes_per_sec),
        link_gen: a.pcie_link_gen,
        link_width: a.pcie_link_width,
    });
    let ecc = (a.ecc_errors_corrected.is_some() || a.ecc_errors_uncorrected.is_some()).then_some(
        EccView {
            corrected: a.ecc_errors_corrected,
            uncorrected: a.ecc_errors_uncorrected,
        },
    );
    let throttle_reasons = (a.throttle_reasons.is_some() || !a.throttle_reason_names.is_empty())
        .then_some(a.throttle_reason_names.as_slice());
    AcceleratorView {
        id: &a.id,
        kind: a.kind.as_str(),
        name: &a.name,
        utilization: finite_opt(a.utilization_percent),
        memory: AcceleratorMemoryView {
            used: a.memory_used_bytes,
            total: a.memory_total_bytes,
            percentage: memory_percentage(a.memory_used_bytes, a.memory_total_bytes),
            reserved: a.memory_reserved_bytes,
        },
        temperature: finite_opt(a.temperature_celsius),
        power: finite_opt(a.power_watts),
        fan_speed: finite_opt(a.fan_speed_percent),
        vendor: a.vendor.as_str(),
        index: a.index,
        uuid: a.uuid.as_deref(),
        pci_bus_id: a.pci_bus_id.as_deref(),
        power_limit: finite_opt(a.power_limit_watts),
        energy: finite_opt(a.energy_joules),
        memory_utilization: finite_opt(a.memory_utilization_percent),
        encoder_utilization: finite_opt(a.encoder_utilization_percent),
        decoder_utilization: finite_opt(a.decoder_utilization_percent),
        memory_temperature: finite_opt(a.memory_temperature_celsius),
        sm_clock: finite_opt(a.sm_clock_mhz),
        memory_clock: finite_opt(a.memory_clock_mhz),
        graphics_clock: finite_opt(a.graphics_clock_mhz),
        pcie,
        performance_state: a.performance_state,
        throttle_reasons,
        throttle_reasons_mask: a.throttle_reasons,
        ecc,
        mig_devices: a
            .mig_devices
            .iter()
            .map(|m| MigDeviceView {
                index: m.index,
                uuid: m.uuid.as_deref(),
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: m.profile.as_deref(),
                multiprocessors: m.multiprocessors,
                memory: MigMemoryView {
                    used: m.memory_used_bytes,
                    total: m.memory_total_bytes,
                    percentage: memory_percentage(m.memory_used_bytes, m.memory_total_bytes),
                },
                processes: process_views(&m.processes),
            })
            .collect(),
        profiling: a.profiling.as_ref().map(|p| ProfilingView {
            graphics_engine_active: finite_opt(p.graphics_engine_active),
            sm_active: finite_opt(p.sm_active),
            sm_occupancy: finite_opt(p.sm_occupancy),
            tensor_active: finite_opt(p.tensor_active),
            dram_active: finite_opt(p.dram_active),
            fp64_active: finite_opt(p.fp64_active),
            fp32_active: finite_opt(p.fp32_active),
            fp16_active: finite_opt(p.fp16_active),
            pcie_tx_bytes_per_sec: finite_opt(p.pcie_tx_bytes_per_sec),
            pcie_rx_bytes_per_sec: finite_opt(p.pcie_rx_bytes_per_sec),
            nvlink_tx_bytes_per_sec: finite_opt(p.nvlink_tx_bytes_per_sec),
            nvlink_rx_bytes_per_sec: finite_opt(p.nvlink_rx_bytes_per_sec),
        }),
        processes: process_views(&a.processes),
        error: a.error.as_deref(),
    }
}

// ---------------------------------------------------------------------------------------------
// /api/system/info

/// The `/api/system/info` object of `snapshot`: static facts plus the totals of its sample.
#[derive(Debug, Serialize)]
pub struct InfoView<'a> {
    platform: &'a str,
    architecture: &'a str,
    cpu_model: &'a str,
    /// Physical cores.
    cpu_cores: u32,
    /// Logical CPUs.
    cpu_threads: u32,
    /// Bytes; 0 when unknown.
    memory_total: u64,
    swap_total: u64,
    disk_total: u64,
    gpu_count: usize,
    /// GPU product names.
    gpu_info: Vec<&'a str>,
    hostname: &'a str,
    ip_address: &'a str,
    // Added beside the contract.
    node_id: &'a str,
    kernel: &'a str,
    os_version: &'a str,
    /// Unix seconds.
    boot_time: i64,
    version: &'static str,
    gpus: Vec<DeviceInfoView<'a>>,
    /// Every accelerator, GPUs included.
    accelerators: Vec<DeviceInfoView<'a>>,
}

/// One accelerator's static facts in `/api/system/info`.
#[derive(Debug, Serialize)]
struct DeviceInfoView<'a> {
    id: &'a str,
    index: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    vendor: &'a str,
    name: &'a str,
    uuid: Option<&'a str>,
    pci_bus_id: Option<&'a str>,
    /// Bytes.
    memory_total: Option<u64>,
    driver_version: Option<&'a str>,
    cuda_version: Option<&'a str>,
    architecture: Option<&'a str>,
    /// CUDA cores, compute units or GPU cores.
    cores: Option<u32>,
    vbios_version: Option<&'a str>,
    performance_level: Option<&'a str>,
    sku: Option<&'a str>,
    sclk_range: Option<&'a str>,
    mclk_range: Option<&'a str>,
    /// W, the highest power cap the board allows.
    max_power: Option<f64>,
    /// Null where MIG does not exist.
    mig_enabled: Option<bool>,
    mig_devices: Vec<MigInfoView<'a>>,
}

/// One MIG instance's static facts.
#[derive(Debug, Serialize)]
struct MigInfoView<'a> {
    index: u32,
    uuid: Option<&'a str>,
    gpu_instance_id: Option<u32>,
    compute_instance_id: Option<u32>,
    profile: Option<&'a str>,
    /// Bytes.
    memory_total: Option<u64>,
    multiprocessors: Option<u32>,
}

/// The `/api/system/info` object of `snapshot`.
pub fn info_view(snapshot: &Snapshot) -> InfoView<'_> {
    let info = &snapshot.info;
    let gpus: Vec<&Accelerator> = snapshot
        .accelerators
        .iter()
        .filter(|a| a.kind == crate::model::AcceleratorKind::Gpu)
        .collect();
    let hostname = if info.hostname.is_empty() {
        &snapshot.hostname
    } else {
        &info.hostname
    };
    let boot_time = match info.boot_time_seconds {
        0 => snapshot.cpu.as_ref().map_or(0, |c| c.boot_time_seconds),
        known => known,
    };
    InfoView {
        platform: &info.platform,
        architecture: &info.architecture,
        cpu_model: &info.cpu_model,
        cpu_cores: info.cpu_cores,
        cpu_threads: info.cpu_threads,
        memory_total: snapshot.memory.as_ref().map_or(0, |m| m.total_bytes),
        swap_total: snapshot.memory.as_ref().map_or(0, |m| m.swap_total_bytes),
        disk_total: snapshot.filesystems.as_ref().map_or(0, |f| f.total_bytes),
        gpu_count: gpus.len(),
        gpu_info: gpus.iter().map(|g| g.name.as_str()).collect(),
        hostname,
        ip_address: &info.ip_address,
        node_id: &snapshot.node_id,
        kernel: &info.kernel,
        os_version: &info.os_version,
        boot_time,
        version: crate::VERSION,
        gpus: gpus.iter().map(|g| device_info(g)).collect(),
        accelerators: snapshot.accelerators.iter().map(device_info).collect(),
    }
}

fn device_info(a: &Accelerator) -> DeviceInfoView<'_> {
    let info = &a.info;
    DeviceInfoView {
        id: &a.id,
        index: a.index,
        kind: a.kind.as_str(),
        vendor: a.vendor.as_str(),
        name: &a.name,
        uuid: a.uuid.as_deref(),
        pci_bus_id: a.pci_bus_id.as_deref(),
        memory_total: a.memory_total_bytes,
        driver_version: info.driver_version.as_deref(),
        cuda_version: info.cuda_version.as_deref(),
        architecture: info.architecture.as_deref(),
        cores: info.cores,
        vbios_version: info.vbios_version.as_deref(),
        performance_level: info.performance_level.as_deref(),
        sku: info.sku.as_deref(),
        sclk_range: info.sclk_range.as_deref(),
        mclk_range: info.mclk_range.as_deref(),
        max_power: finite_opt(info.max_power_watts),
        mig_enabled: info.mig_enabled,
        mig_devices: a
            .mig_devices
            .iter()
            .map(|m| MigInfoView {
                index: m.index,
                uuid: m.uuid.as_deref(),
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: m.profile.as_deref(),
                memory_total: m.memory_total_bytes,
                multiprocessors: m.multiprocessors,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::cell::Cell;

    #[test]
    fn slot_encodes_once_per_sequence() {
        let slot = Slot::default();
        let calls = Cell::new(0);
        let encode = |text: &'static str| {
            calls.set(calls.get() + 1);
            Ok::<_, std::convert::Infallible>(text.as_bytes().to_vec())
        };
        let Ok(first) = slot.get_or_encode(1, || encode("one"));
        let Ok(again) = slot.get_or_encode(1, || encode("other"));
        assert_eq!((&first[..], &again[..]), (&b"one"[..], &b"one"[..]));
        assert_eq!(calls.get(), 1);
        let Ok(next) = slot.get_or_encode(2, || encode("two"));
        assert_eq!(&next[..], b"two");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn slot_keeps_nothing_when_encoding_fails() {
        let slot = Slot::default();
        assert!(slot.get_or_encode(1, || Err("broken")).is_err());
        let encoded: Result<Bytes, &str> = slot.get_or_encode(1, || Ok(b"ok".to_vec()));
        assert_eq!(&encoded.unwrap()[..], b"ok");
    }

    #[test]
    fn node_ids_are_a_checked_comma_list() {
        assert_eq!(parse_node_ids("a").unwrap(), ["a"]);
        assert_eq!(parse_node_ids("w-01,w_02.x").unwrap(), ["w-01", "w_02.x"]);
        for bad in ["", ",", "a,", "a b", "a/b", "ü"] {
            let err = parse_node_ids(bad).unwrap_err();
            assert!(err.contains("must be"), "{bad:?}: {err}");
        }
        assert!(parse_node_ids(&"x".repeat(254)).is_err());
    }

    fn a100() -> Accelerator {
        use crate::model::{AcceleratorInfo, AcceleratorKind, MigDevice, ProfilingStats};
        Accelerator {
            id: "nvidia0".into(),
            index: 0,
            kind: AcceleratorKind::Gpu,
            vendor: "nvidia".into(),
            name: "NVIDIA A100-SXM4-80GB".into(),
            uuid: Some("GPU-1".into()),
            pci_bus_id: Some("00000000:07:00.0".into()),
            info: AcceleratorInfo {
                driver_version: Some("550.54.15".into()),
                cuda_version: Some("12.4".into()),
                architecture: Some("Ampere".into()),
                cores: Some(6912),
                vbios_version: Some("92.00.36.00.01".into()),
                max_power_watts: Some(f64::NAN),
                mig_enabled: Some(true),
                ..AcceleratorInfo::default()
            },
            utilization_percent: Some(87.0),
            memory_utilization_percent: Some(40.0),
            encoder_utilization_percent: Some(0.0),
            decoder_utilization_percent: Some(1.0),
            memory_used_bytes: Some(20),
            memory_total_bytes: Some(80),
            memory_reserved_bytes: Some(2),
            temperature_celsius: Some(61.0),
            memory_temperature_celsius: Some(70.0),
            power_watts: Some(300.0),
            power_limit_watts: Some(400.0),
            energy_joules: Some(f64::INFINITY),
            sm_clock_mhz: Some(1410.0),
            memory_clock_mhz: Some(1593.0),
            graphics_clock_mhz: Some(1400.0),
            pcie_link_gen: Some(4),
            performance_state: Some(0),
            throttle_reasons: Some(1),
            throttle_reason_names: vec!["gpu_idle"],
            ecc_errors_uncorrected: Some(0),
            mig_devices: vec![MigDevice {
                index: 0,
                uuid: Some("MIG-0".into()),
                gpu_instance_id: Some(1),
                compute_instance_id: Some(0),
                profile: Some("3g.40gb".into()),
                memory_used_bytes: Some(10),
                memory_total_bytes: Some(40),
                multiprocessors: Some(42),
                processes: vec![AcceleratorProcess {
                    pid: 7,
                    memory_used_bytes: None,
                }],
            }],
            profiling: Some(ProfilingStats {
                sm_active: Some(0.5),
                nvlink_rx_bytes_per_sec: Some(f64::NAN),
                ..ProfilingStats::default()
            }),
            processes: vec![AcceleratorProcess {
                pid: 42,
                memory_used_bytes: Some(1 << 20),
            }],
            ..Accelerator::default()
        }
    }

    #[test]
    fn accelerators_carry_the_whole_model_beside_the_contract() {
        let snapshot = Snapshot {
            accelerators: vec![a100(), Accelerator::default()],
            power: vec![crate::model::PowerReading {
                source: "dram".into(),
                watts: 1.5,
            }],
            ..Snapshot::default()
        };
        let json = serde_json::to_value(metrics_view(&snapshot)).unwrap();
        let gpu = &json["accelerators"][0];
        assert_eq!(
            gpu["memory"],
            json!({"used": 20, "total": 80, "percentage": 25.0, "reserved": 2})
        );
        for (field, expected) in [
            ("powerLimit", json!(400.0)),
            ("energy", json!(null)),
            ("memoryUtilization", json!(40.0)),
            ("encoderUtilization", json!(0.0)),
            ("decoderUtilization", json!(1.0)),
            ("memoryTemperature", json!(70.0)),
            ("smClock", json!(1410.0)),
            ("graphicsClock", json!(1400.0)),
            (
                "pcie",
                json!({"txBytesPerSec": null, "rxBytesPerSec": null, "linkGen": 4, "linkWidth": null}),
            ),
            ("performanceState", json!(0)),
            ("throttleReasons", json!(["gpu_idle"])),
            ("ecc", json!({"corrected": null, "uncorrected": 0})),
            ("processes", json!([{"pid": 42, "memoryUsed": 1_048_576}])),
            ("pciBusId", json!("00000000:07:00.0")),
        ] {
            assert_eq!(gpu[field], expected, "{field}");
        }
        assert_eq!(
            gpu["migDevices"],
            json!([{
                "index": 0, "uuid": "MIG-0", "gpuInstanceId": 1, "computeInstanceId": 0,
                "profile": "3g.40gb", "multiprocessors": 42,
                "memory": {"used": 10, "total": 40, "percentage": 25.0},
                "processes": [{"pid": 7, "memoryUsed": null}],
            }])
        );
        assert_eq!(gpu["profiling"]["smActive"], 0.5);
        assert_eq!(gpu["profiling"]["nvlinkRxBytesPerSec"], Value::Null);
        assert_eq!(gpu["profiling"].as_object().unwrap().len(), 12);
        // A device that reports nothing: null objects, empty lists, never absent.
        let bare = &json["accelerators"][1];
        for field in ["pcie", "ecc", "profiling", "throttleReasons", "energy"] {
            assert_eq!(bare[field], Value::Null, "{field}");
        }
        assert_eq!(bare["migDevices"], json!([]));
        assert_eq!(json["power"], json!([{"source": "dram", "watts": 1.5}]));
        let without = serde_json::to_value(metrics_view(&Snapshot::default())).unwrap();
        assert!(without.get("power").is_none(), "{without}");
        let text = String::from_utf8(metrics_array_json([&snapshot]).unwrap()).unwrap();
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
    }

    #[test]
    fn info_lists_static_accelerator_facts_and_counts_gpus_only() {
        let npu = Accelerator {
            id: "npu0".into(),
            kind: crate::model::AcceleratorKind::Npu,
            name: "Intel NPU".into(),
            ..Accelerator::default()
        };
        let snapshot = Snapshot {
            accelerators: vec![a100(), npu],
            ..Snapshot::default()
        };
        let json = serde_json::to_value(info_view(&snapshot)).unwrap();
        assert_eq!(json["gpu_count"], 1);
        assert_eq!(json["gpu_info"], json!(["NVIDIA A100-SXM4-80GB"]));
        let gpu = &json["gpus"][0];
        assert_eq!(gpu["driver_version"], "550.54.15");
        assert_eq!(gpu["cuda_version"], "12.4");
        assert_eq!(gpu["architecture"], "Ampere");
        assert_eq!(gpu["cores"], 6912);
        assert_eq!(gpu["vbios_version"], "92.00.36.00.01");
        assert_eq!(gpu["max_power"], Value::Null, "NaN becomes null");
        assert_eq!(gpu["mig_enabled"], true);
        assert_eq!(gpu["mig_devices"][0]["profile"], "3g.40gb");
        assert_eq!(gpu["mig_devices"][0]["memory_total"], 40);
        assert_eq!(json["accelerators"][1]["type"], "npu");
        assert_eq!(json["accelerators"][1]["mig_enabled"], Value::Null);
    }

    #[test]
    fn metrics_view_has_no_non_finite_numbers() {
        let snapshot = Snapshot {
            node_id: "n".into(),
            cpu: Some(crate::model::CpuStats {
                usage_percent: f64::NAN,
                ..Default::default()
            }),
            ..Snapshot::default()
        };
        let json = metrics_array_json([&snapshot]).unwrap();
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.starts_with(r#"[{"node_id":"n","timestamp":0,"cpu":{"overall":0.0,"#),
            "{text}"
        );
    }
}
