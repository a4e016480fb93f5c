//! The REST API over HTTP, served in-process from synthetic snapshots: the TrackLab JSON shapes
//! and units, health and staleness, node_id handling, JSON errors, CORS, `/metrics` negotiation
//! and caching, and the SSE stream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use system_monitor::config::CollectConfig;
use system_monitor::model::unix_ms;
use system_monitor::model::{
    Accelerator, AcceleratorKind, CollectorStatus, CoreStats, CpuStats, DiskStats, DisksStats,
    FilesystemState, FilesystemStats, FilesystemsStats, InterfaceStats, MemoryStats, NetworkStats,
    PressureLine, PressureResource, PressureStats, Snapshot, SystemInfo,
};
use system_monitor::serve::AppState;

/// A router served on an ephemeral loopback port, with the handle that publishes snapshots.
struct Served {
    base: String,
    publish: watch::Sender<Arc<Snapshot>>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(snapshot: Snapshot) -> Served {
        let snapshot = Arc::new(snapshot);
        let (publish, snapshots) = watch::channel(Arc::clone(&snapshot));
        let shutdown = CancellationToken::new();
        let state = AppState {
            snapshots,
            baseline: snapshot,
            interval: Duration::from_secs(1),
            shutdown: shutdown.clone(),
            teardown_allowed: false,
            collect: Arc::new(CollectConfig::default()),
            started_at: SystemTime::now(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = system_monitor::serve::rest::router(state);
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .unwrap();
        });
        Served {
            base,
            publish,
            shutdown,
            server,
        }
    }

    async fn get(&self, path: &str) -> (u16, String, String) {
        self.request(reqwest::Method::GET, path, &[]).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, String) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let (status, content_type, body) = self.get(path).await;
        assert_eq!(content_type, "application/json", "{path}: {body}");
        let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, value)
    }
}

fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// A fresh, fully populated snapshot of node `node-a`.
fn sample(sequence: u64) -> Snapshot {
    let line = |total_seconds| PressureLine {
        avg10: 1.5,
        avg60: 1.0,
        avg300: 0.5,
        total_seconds,
    };
    Snapshot {
        node_id: "node-a".into(),
        hostname: "host-a".into(),
        timestamp_ms: now_ms(),
        sequence,
        interval_seconds: 1.0,
        info: Arc::new(SystemInfo {
            platform: "linux".into(),
            os_version: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            architecture: "x86_64".into(),
            cpu_model: "AMD EPYC 7763 64-Core Processor".into(),
            cpu_cores: 1,
            cpu_threads: 2,
            hostname: "host-a".into(),
            ip_address: "10.0.0.7".into(),
            boot_time_seconds: 1_700_000_000,
        }),
        cpu: Some(CpuStats {
            usage_percent: 42.5,
            cores: vec![
                CoreStats {
                    id: 0,
                    usage_percent: 50.0,
                    frequency_mhz: Some(2450.0),
                    temperature_celsius: Some(55.0),
                    ..CoreStats::default()
                },
                CoreStats {
                    id: 1,
                    usage_percent: 35.0,
                    ..CoreStats::default()
                },
            ],
            load_average: [1.5, 1.25, 1.0],
            processes: 321,
            threads: 1234,
            ..CpuStats::default()
        }),
        memory: Some(MemoryStats {
            total_bytes: 16_000_000_000,
            available_bytes: 12_000_000_000,
            used_bytes: 4_000_000_000,
            free_bytes: 10_000_000_000,
            cached_bytes: Some(3_000_000_000),
            usage_percent: 25.0,
            swap_total_bytes: 2_000_000_000,
            swap_used_bytes: 500_000_000,
            swap_percent: 25.0,
            raw: vec![("MemTotal".into(), 16_000_000_000)],
        }),
        pressure: Some(PressureStats {
            cpu: Some(PressureResource {
                some: line(12.0),
                full: None,
            }),
            memory: None,
            io: None,
        }),
        disks: Some(DisksStats {
            devices: vec![DiskStats {
                name: "nvme0n1".into(),
                read_bytes_per_sec: 4096.0,
                write_bytes_per_sec: 8192.0,
                reads_per_sec: 1.0,
                writes_per_sec: 2.0,
                utilization_percent: 3.0,
                counted_in_total: true,
                ..DiskStats::default()
            }],
            read_bytes_per_sec: 4096.0,
            write_bytes_per_sec: 8192.0,
            iops: 3.0,
        }),
        filesystems: Some(FilesystemsStats {
            mounts: vec![
                FilesystemStats {
                    device: "/dev/nvme0n1p2".into(),
                    mountpoint: "/".into(),
                    fstype: "ext4".into(),
                    size_bytes: 1000,
                    free_bytes: 400,
                    avail_bytes: 350,
                    usage_percent: 60.0,
                    counted_in_total: true,
                    ..FilesystemStats::default()
                },
                FilesystemStats {
                    device: "nas:/export".into(),
                    mountpoint: "/mnt/nas".into(),
                    fstype: "nfs4".into(),
                    state: FilesystemState::Error("stale file handle".into()),
                    ..FilesystemStats::default()
                },
            ],
            total_bytes: 1000,
            used_bytes: 600,
            usage_percent: 60.0,
        }),
        network: Some(NetworkStats {
            interfaces: vec![InterfaceStats {
                name: "eth0".into(),
                receive_bytes_per_sec: 1000.0,
                transmit_bytes_per_sec: 2000.0,
                receive_packets_per_sec: 10.0,
                transmit_packets_per_sec: 20.0,
                counted_in_total: true,
                ..InterfaceStats::default()
            }],
            receive_bytes_per_sec: 1000.0,
            transmit_bytes_per_sec: 2000.0,
            receive_packets_per_sec: 10.0,
            transmit_packets_per_sec: 20.0,
            tcp_established: Some(7),
        }),
        accelerators: vec![
            Accelerator {
                id: "nvidia0".into(),
                index: 0,
                kind: AcceleratorKind::Gpu,
                vendor: "nvidia".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                uuid: Some("GPU-abc".into()),
                utilization_percent: Some(90.0),
                memory_used_bytes: Some(20),
                memory_total_bytes: Some(80),
                temperature_celsius: Some(70.0),
                power_watts: Some(500.0),
                fan_speed_percent: None,
                ..Accelerator::default()
            },
            Accelerator {
                id: "npu0".into(),
                kind: AcceleratorKind::Npu,
                vendor: "intel".into(),
                name: "Intel NPU".into(),
                ..Accelerator::default()
            },
        ],
        collectors: vec![CollectorStatus {
            name: "cpu".into(),
            ok: true,
            error: None,
            duration_seconds: 0.001,
        }],
        ..Snapshot::default()
    }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Every key of `expected` is present in `value`.
fn has_keys(value: &Value, expected: &[&str]) {
    let present = keys(value);
    for key in expected {
        assert!(present.contains(key), "missing {key:?} in {value}");
    }
}

#[tokio::test]
async fn health_is_200_while_samples_are_fresh() {
    let served = Served::start(sample(1)).await;
    let (status, body) = served.json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "system_monitor");
    assert_eq!(body["node_id"], "node-a");
    assert_eq!(body["version"], system_monitor::VERSION);
    assert_eq!(body["interval_seconds"], 1.0);
    let timestamp = body["timestamp"].as_str().unwrap();
    humantime::parse_rfc3339(timestamp).unwrap_or_else(|e| panic!("{timestamp}: {e}"));
    assert!(body["uptime_seconds"].as_f64().unwrap() >= 0.0);
    let age = body["last_sample_age_seconds"].as_f64().unwrap();
    assert!((0.0..3.0).contains(&age), "{age}");
    assert!(body.get("reason").is_none());
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_samples_are_stale() {
    let mut old = sample(1);
    old.timestamp_ms = now_ms() - 10_000;
    let served = Served::start(old).await;
    let (status, body) = served.json("/api/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["service"], "system_monitor");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("stalled"), "{reason}");
    assert!(reason.contains("more than 3 intervals of 1s"), "{reason}");
    assert_eq!(body["failing"], serde_json::json!([]), "{body}");
    assert!(body["last_sample_age_seconds"].as_f64().unwrap() >= 10.0);

    // A fresh sample makes it healthy again.
    served.publish.send_replace(Arc::new(sample(2)));
    let (status, body) = served.json("/api/health").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn metrics_is_an_array_of_the_contract_element() {
    let served = Served::start(sample(1)).await;
    let (status, body) = served.json("/api/system/metrics").await;
    assert_eq!(status, 200);
    let array = body.as_array().unwrap();
    assert_eq!(array.len(), 1);
    let node = &array[0];
    has_keys(
        node,
        &[
            "node_id",
            "timestamp",
            "cpu",
            "memory",
            "disk",
            "network",
            "accelerators",
        ],
    );
    assert_eq!(node["node_id"], "node-a");
    assert!(
        node["timestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "ms"
    );

    let cpu = &node["cpu"];
    assert_eq!(
        keys(cpu),
        ["cores", "loadAverage", "overall", "processes", "threads"]
    );
    assert_eq!(cpu["overall"], 42.5);
    assert_eq!(cpu["loadAverage"], serde_json::json!([1.5, 1.25, 1.0]));
    assert_eq!(cpu["processes"], 321);
    assert_eq!(cpu["threads"], 1234);
    assert_eq!(
        keys(&cpu["cores"][0]),
        ["frequency", "id", "temperature", "usage"]
    );
    assert_eq!(
        cpu["cores"][0],
        serde_json::json!({"id": 0, "usage": 50.0, "frequency": 2450.0, "temperature": 55.0})
    );
    // Unknown per-core values are null, not 0.
    assert_eq!(cpu["cores"][1]["frequency"], Value::Null);
    assert_eq!(cpu["cores"][1]["temperature"], Value::Null);

    let memory = &node["memory"];
    has_keys(memory, &["usage", "used", "total", "swap"]);
    assert_eq!(memory["used"], 4_000_000_000_u64);
    assert_eq!(memory["total"], 16_000_000_000_u64);
    assert_eq!(memory["usage"], 25.0);
    assert_eq!(
        memory["swap"],
        serde_json::json!({"used": 500_000_000_u64, "total": 2_000_000_000_u64, "percentage": 25.0})
    );
    assert_eq!(memory["available"], 12_000_000_000_u64);
    assert_eq!(memory["cached"], 3_000_000_000_u64);

    assert_eq!(
        node["disk"],
        serde_json::json!({"usage": 60.0, "used": 600, "total": 1000, "ioRead": 4096.0, "ioWrite": 8192.0, "iops": 3.0})
    );
    assert_eq!(
        node["network"],
        serde_json::json!({"bytesIn": 1000.0, "bytesOut": 2000.0, "packetsIn": 10.0, "packetsOut": 20.0, "connections": 7})
    );

    let gpu = &node["accelerators"][0];
    has_keys(
        gpu,
        &[
            "id",
            "type",
            "name",
            "utilization",
            "memory",
            "temperature",
            "power",
            "fanSpeed",
        ],
    );
    assert_eq!(gpu["type"], "gpu");
    assert_eq!(gpu["utilization"], 90.0);
    assert_eq!(
        gpu["memory"],
        serde_json::json!({"used": 20, "total": 80, "percentage": 25.0, "reserved": null})
    );
    assert_eq!(gpu["fanSpeed"], Value::Null);
    assert_eq!(node["accelerators"][1]["type"], "npu");
    assert_eq!(node["accelerators"][1]["memory"]["percentage"], Value::Null);

    // The added detail.
    assert_eq!(node["hostname"], "host-a");
    assert_eq!(node["disks"][0]["device"], "nvme0n1");
    assert_eq!(node["disks"][0]["iops"], 3.0);
    assert_eq!(node["interfaces"][0]["name"], "eth0");
    assert_eq!(node["interfaces"][0]["countedInTotal"], true);
    let fs = &node["filesystems"];
    has_keys(
        &fs[0],
        &[
            "device",
            "mountpoint",
            "fstype",
            "size",
            "used",
            "avail",
            "usage",
            "state",
        ],
    );
    assert_eq!(fs[0]["used"], 600);
    assert_eq!(fs[0]["state"], "ok");
    assert_eq!(fs[1]["state"], "error");
    assert_eq!(fs[1]["error"], "stale file handle");
    assert_eq!(node["pressure"]["cpu"]["some"]["totalSeconds"], 12.0);
    assert_eq!(node["pressure"]["memory"], Value::Null);
    assert_eq!(
        node["collectors"][0],
        serde_json::json!({"name": "cpu", "ok": true, "error": null, "durationSeconds": 0.001})
    );
}

#[tokio::test]
async fn failed_sections_keep_the_contract_shape_with_zeros() {
    let mut snapshot = sample(1);
    snapshot.cpu = None;
    snapshot.memory = None;
    snapshot.disks = None;
    snapshot.filesystems = None;
    snapshot.network = None;
    let served = Served::start(snapshot).await;
    let (_, body) = served.json("/api/system/metrics").await;
    let node = &body[0];
    assert_eq!(node["cpu"]["overall"], 0.0);
    assert_eq!(node["cpu"]["cores"], serde_json::json!([]));
    assert_eq!(
        node["cpu"]["loadAverage"],
        serde_json::json!([0.0, 0.0, 0.0])
    );
    assert_eq!(node["memory"]["total"], 0);
    assert_eq!(node["memory"]["swap"]["percentage"], 0.0);
    assert_eq!(node["disk"]["total"], 0);
    assert_eq!(node["network"]["bytesIn"], 0.0);
    assert_eq!(node["network"]["connections"], Value::Null);
}

#[tokio::test]
async fn non_finite_values_never_reach_the_json() {
    let mut snapshot = sample(1);
    if let Some(cpu) = snapshot.cpu.as_mut() {
        cpu.usage_percent = f64::NAN;
        cpu.load_average = [f64::INFINITY, 1.0, f64::NEG_INFINITY];
        cpu.cores[0].frequency_mhz = Some(f64::NAN);
        cpu.cores[0].usage_percent = f64::INFINITY;
    }
    snapshot.accelerators[0].power_watts = Some(f64::NAN);
    let served = Served::start(snapshot).await;
    let (_, _, body) = served.get("/api/system/metrics").await;
    assert!(!body.contains("NaN") && !body.contains("inf"), "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    let cpu = &value[0]["cpu"];
    assert_eq!(cpu["overall"], 0.0);
    assert_eq!(cpu["loadAverage"], serde_json::json!([0.0, 1.0, 0.0]));
    assert_eq!(cpu["cores"][0]["usage"], 0.0);
    assert_eq!(cpu["cores"][0]["frequency"], Value::Null);
    assert_eq!(value[0]["accelerators"][0]["power"], Value::Null);
}

#[tokio::test]
async fn node_id_selects_this_node_or_fails_with_json() {
    let served = Served::start(sample(1)).await;
    for ok in ["node-a", "node-a,node-a"] {
        let (status, body) = served
            .json(&format!("/api/system/metrics?node_id={ok}"))
            .await;
        assert_eq!(status, 200, "{ok}: {body}");
        assert_eq!(body[0]["node_id"], "node-a");
        assert_eq!(body.as_array().unwrap().len(), 1);
    }
    for unknown in ["worker-01", "node-a,worker-01"] {
        let (status, body) = served
            .json(&format!("/api/system/metrics?node_id={unknown}"))
            .await;
        assert_eq!(status, 404, "{unknown}: {body}");
        assert_eq!(body["error"], "unknown node_id");
        assert_eq!(body["node_id"], "worker-01");
    }
    let too_long = "a".repeat(254);
    for bad in [
        "",
        "a%2Fb",
        "node-a,",
        "%20node-a",
        "x%22y",
        too_long.as_str(),
    ] {
        let (status, body) = served
            .json(&format!("/api/system/metrics?node_id={bad}"))
            .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["error"], "invalid node_id");
    }
    // A query axum cannot parse is a JSON 400 too, not plain text.
    let (status, body) = served.json("/api/system/metrics?node_id=a&node_id=b").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid query");
    // Parameters we do not know are ignored (cache busters).
    let (status, _) = served.json("/api/system/metrics?_=12345").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors() {
    let served = Served::start(sample(1)).await;
    let (status, body) = served.json("/api/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not found");
    assert_eq!(body["path"], "/api/nope");

    let (status, content_type, body) = served
        .request(reqwest::Method::POST, "/api/system/metrics", &[])
        .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(content_type, "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "method not allowed");
    assert_eq!(body["method"], "POST");
}

#[tokio::test]
async fn cors_is_permissive() {
    let served = Served::start(sample(1)).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/system/metrics", served.base))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "*",
        "{:?}",
        response.headers()
    );
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/system/metrics", served.base),
        )
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
}

#[tokio::test]
async fn info_has_the_contract_fields_from_info_and_sample() {
    let served = Served::start(sample(1)).await;
    let (status, info) = served.json("/api/system/info").await;
    assert_eq!(status, 200);
    has_keys(
        &info,
        &[
            "platform",
            "architecture",
            "cpu_model",
            "cpu_cores",
            "cpu_threads",
            "memory_total",
            "swap_total",
            "disk_total",
            "gpu_count",
            "gpu_info",
            "hostname",
            "ip_address",
            "node_id",
            "kernel",
            "os_version",
            "boot_time",
            "version",
            "gpus",
        ],
    );
    assert_eq!(info["platform"], "linux");
    assert_eq!(info["cpu_cores"], 1);
    assert_eq!(info["cpu_threads"], 2);
    assert_eq!(info["memory_total"], 16_000_000_000_u64);
    assert_eq!(info["swap_total"], 2_000_000_000_u64);
    assert_eq!(info["disk_total"], 1000);
    assert_eq!(info["gpu_count"], 1, "the NPU is not a GPU");
    assert_eq!(
        info["gpu_info"],
        serde_json::json!(["NVIDIA H100 80GB HBM3"])
    );
    assert_eq!(info["gpus"][0]["uuid"], "GPU-abc");
    assert_eq!(info["accelerators"].as_array().unwrap().len(), 2);
    assert_eq!(info["ip_address"], "10.0.0.7");
    assert_eq!(info["node_id"], "node-a");
    assert_eq!(info["boot_time"], 1_700_000_000);
    assert_eq!(info["version"], system_monitor::VERSION);
}

#[tokio::test]
async fn prometheus_format_follows_accept_and_is_encoded_once_per_snapshot() {
    let served = Served::start(sample(1)).await;
    let (status, content_type, text) = served.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("node_load1{node=\"node-a\"} 1.5\n"), "{text}");
    assert!(!text.contains("# EOF"));

    let (_, content_type, openmetrics) = served
        .request(
            reqwest::Method::GET,
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )],
        )
        .await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"));

    // A new snapshot is a new encoding; the same one is served from the cache.
    let mut next = sample(2);
    if let Some(cpu) = next.cpu.as_mut() {
        cpu.load_average[0] = 9.0;
    }
    served.publish.send_replace(Arc::new(next));
    let (_, _, text) = served.get("/metrics").await;
    assert!(text.contains("node_load1{node=\"node-a\"} 9\n"), "{text}");
    let (_, first) = served.json("/api/system/metrics").await;
    let (_, second) = served.json("/api/system/metrics").await;
    assert_eq!(first, second);
    assert_eq!(first[0]["cpu"]["loadAverage"][0], 9.0);
}

/// Reads SSE bytes until one whole event (ending in a blank line) has arrived.
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> Option<String> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event = buffer[..end].to_string();
            buffer.drain(..end + 2);
            // Keep-alive comments are not events.
            if event.lines().all(|l| l.starts_with(':')) {
                continue;
            }
            return Some(event);
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an SSE event within 10 s")
            .unwrap()?;
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn stream_sends_each_new_snapshot_and_ends_on_shutdown() {
    let served = Served::start(sample(1)).await;
    let mut response = reqwest::Client::new()
        .get(format!("{}/api/system/stream", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();

    let first = next_event(&mut response, &mut buffer).await.unwrap();
    assert!(
        first.contains("id: 1\n") || first.starts_with("id: 1"),
        "{first}"
    );
    let data = first
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let value: Value = serde_json::from_str(data).unwrap();
    assert_eq!(value[0]["node_id"], "node-a");

    served.publish.send_replace(Arc::new(sample(2)));
    let second = next_event(&mut response, &mut buffer).await.unwrap();
    assert!(second.contains("id: 2"), "{second}");

    served.shutdown.cancel();
    let end = tokio::time::timeout(
        Duration::from_secs(10),
        next_event(&mut response, &mut buffer),
    )
    .await
    .expect("the stream ends on shutdown");
    assert_eq!(end, None);
    tokio::time::timeout(Duration::from_secs(10), served.server)
        .await
        .expect("graceful shutdown is not held up by the stream")
        .unwrap();
}
