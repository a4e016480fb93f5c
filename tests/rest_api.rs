//! The REST API over HTTP, served in-process from synthetic snapshots: the TrackLab JSON shapes
//! and units, health and staleness, node_id handling, JSON errors (the HTTP layer's too, over raw
//! TCP), the Host check and CORS, `/metrics` negotiation and caching, and the SSE stream.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use system_monitor::config::{BrowserConfig, CollectConfig, NodeIdOrigin};
use system_monitor::model::unix_ms;
use system_monitor::model::{
    Accelerator, AcceleratorKind, CollectorStatus, CoreStats, CpuStats, DiskStats, DisksStats,
    FilesystemState, FilesystemStats, FilesystemsStats, InterfaceStats, MemoryStats, NetworkStats,
    PressureLine, PressureResource, PressureStats, Snapshot, SystemInfo,
};
use system_monitor::serve::{AppState, Guard};

/// A router served on an ephemeral loopback port, with the handle that publishes snapshots.
struct Served {
    base: String,
    publish: watch::Sender<Arc<Snapshot>>,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves `snapshot` on loopback with the default guard (no CORS, loopback Hosts only), as
    /// a node named with `--node-id`.
    async fn start(snapshot: Snapshot) -> Served {
        Self::start_with(snapshot, &BrowserConfig::default()).await
    }

    /// Serves `snapshot` on loopback with the guard `browser` describes, as a node named with
    /// `--node-id`.
    async fn start_with(snapshot: Snapshot, browser: &BrowserConfig) -> Served {
        Self::start_as(snapshot, browser, NodeIdOrigin::Flag).await
    }

    /// Serves `snapshot` on loopback with the guard `browser` describes, its node id from
    /// `origin`.
    async fn start_as(snapshot: Snapshot, browser: &BrowserConfig, origin: NodeIdOrigin) -> Served {
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
            node_id_origin: origin,
            history: Arc::new(system_monitor::history::History::new(
                &Default::default(),
                Duration::from_secs(1),
            )),
            websocket: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let guard = Guard::new(std::net::Ipv4Addr::LOCALHOST.into(), browser);
        let app = system_monitor::serve::rest::router(state, &guard);
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

    /// Sends `request` as raw bytes on a new connection and reads the answer to its end: the
    /// status, the headers (names lowercase) and the body.
    async fn raw(&self, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        // The server may answer and close before it has read all of an over-long request.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }

    /// GET `path` with `Host: host` (and `Connection: close`), over raw TCP.
    async fn get_as_host(&self, path: &str, host: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, _, body) = self.raw(request.as_bytes()).await;
        (status, body)
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
            tcp_established: None,
            tcp_current_established: Some(7),
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
            no_data: false,
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

/// `/api/system/info` follows the node id rule of `/api/system/metrics`.
#[tokio::test]
async fn info_follows_the_node_id_rule_of_metrics() {
    let served = Served::start(sample(1)).await;
    for ok in ["", "?node_id=node-a", "?node_id=node-a,node-a", "?_=1"] {
        let (status, body) = served.json(&format!("/api/system/info{ok}")).await;
        assert_eq!(status, 200, "{ok}: {body}");
        assert_eq!(body["node_id"], "node-a");
    }
    for path in ["/api/system/info", "/api/system/metrics"] {
        let (status, body) = served.json(&format!("{path}?node_id=worker-01")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "unknown node_id");
        assert_eq!(body["node_id"], "worker-01");
        let (status, body) = served.json(&format!("{path}?node_id=a%2Fb")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid node_id");
        let (status, body) = served.json(&format!("{path}?node_id=a&node_id=b")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid query");
    }
}

/// A node not named with `--node-id` (TrackLab's launcher names none) takes any well-formed
/// `node_id` to name it: its sample under the requested id, one element per distinct id asked
/// (at most 32), in every representation the query selects; malformed ids stay 400.
#[tokio::test]
async fn an_unnamed_node_answers_any_node_id_under_that_id() {
    let served =
        Served::start_as(sample(1), &BrowserConfig::default(), NodeIdOrigin::Hostname).await;
    let (status, own) = served.json("/api/system/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(own[0]["node_id"], "node-a");

    // TrackLab's integration test.
    let (status, body) = served.json("/api/system/metrics?node_id=test-node").await;
    assert_eq!(status, 200, "{body}");
    let elements = body.as_array().unwrap();
    assert_eq!(elements.len(), 1, "{body}");
    assert_eq!(elements[0]["node_id"], "test-node");
    let mut expected = own[0].clone();
    expected["node_id"] = "test-node".into();
    assert_eq!(elements[0], expected, "the sample itself is unchanged");

    // A list: one element per distinct id, in the order asked, the own id among them.
    let (status, body) = served
        .json("/api/system/metrics?node_id=b,node-a,a,b")
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "node-a", "a"]);
    for (status, body) in [
        served.json("/api/system/metrics?node_id=node-a").await,
        served
            .json("/api/system/metrics?node_id=node-a,node-a")
            .await,
    ] {
        assert_eq!(status, 200);
        assert_eq!(body, own);
    }
    let many: Vec<String> = (0..33).map(|i| format!("n{i}")).collect();
    let (status, body) = served
        .json(&format!("/api/system/metrics?node_id={}", many.join(",")))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid node_id");
    let (status, body) = served
        .json(&format!(
            "/api/system/metrics?node_id={}",
            many[..32].join(",")
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 32);

    // /api/system/info: one object, so one node at a time.
    let (status, own_info) = served.json("/api/system/info").await;
    assert_eq!(status, 200);
    let (status, info) = served.json("/api/system/info?node_id=test-node").await;
    assert_eq!(status, 200, "{info}");
    let mut expected = own_info.clone();
    expected["node_id"] = "test-node".into();
    assert_eq!(info, expected);
    let (status, info) = served.json("/api/system/info?node_id=x,x").await;
    assert_eq!((status, &info["node_id"]), (200, &Value::from("x")));
    let (status, body) = served.json("/api/system/info?node_id=x,y").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid node_id");

    // Malformed ids and queries stay 400.
    for path in ["/api/system/metrics", "/api/system/info"] {
        for bad in ["", "a%2Fb", "test-node,", "x%22y"] {
            let (status, body) = served.json(&format!("{path}?node_id={bad}")).await;
            assert_eq!(status, 400, "{path} {bad:?}: {body}");
            assert_eq!(body["error"], "invalid node_id");
        }
        let (status, body) = served.json(&format!("{path}?node_id=a&node_id=b")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid query");
    }
}

/// A bad `node_id` is quoted back cut to 64 characters, not echoed whole (twice) as it was.
#[tokio::test]
async fn a_long_bad_node_id_is_quoted_cut_short() {
    let served = Served::start(sample(1)).await;
    let long = "x%2F".repeat(1_500); // 6,000 characters once decoded, under the URI limit
    for path in ["/api/system/info", "/api/system/metrics"] {
        let (status, content_type, body) = served.get(&format!("{path}?node_id={long}")).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(content_type, "application/json");
        assert!(body.len() < 400, "{} bytes: {body}", body.len());
        let body: Value = serde_json::from_str(&body).unwrap();
        let quoted = body["node_id"].as_str().unwrap();
        assert_eq!(quoted.chars().count(), 64);
        assert!(
            quoted.starts_with("x/x/") && quoted.ends_with('…'),
            "{quoted}"
        );
    }
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

/// Was `cors_is_permissive` (`Access-Control-Allow-Origin: *` for every page): issue 9 changed
/// that contract. No CORS headers by default; the `--cors-allow-origin` origins get them,
/// exactly, and no other origin does.
#[tokio::test]
async fn cors_headers_go_to_the_allowed_origins_only() {
    let origin = "http://localhost:3000";
    let cors = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let get = |base: String, origin: &'static str| async move {
        reqwest::Client::new()
            .get(format!("{base}/api/system/metrics"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap()
    };
    let preflight = |base: String, origin: &'static str| async move {
        reqwest::Client::new()
            .request(
                reqwest::Method::OPTIONS,
                format!("{base}/api/system/metrics"),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .await
            .unwrap()
    };

    let default = Served::start(sample(1)).await;
    let response = get(default.base.clone(), origin).await;
    assert_eq!(response.status(), 200);
    assert_eq!(cors(&response), None, "{:?}", response.headers());
    let response = preflight(default.base.clone(), origin).await;
    assert_eq!(cors(&response), None, "{:?}", response.headers());

    let browser = BrowserConfig {
        cors_allow_origins: vec![origin.into(), "https://ui.example".into()],
        ..BrowserConfig::default()
    };
    let allowing = Served::start_with(sample(1), &browser).await;
    let response = get(allowing.base.clone(), origin).await;
    assert_eq!(response.status(), 200);
    assert_eq!(cors(&response).as_deref(), Some(origin));
    let response = get(allowing.base.clone(), "http://evil.example").await;
    assert_eq!(response.status(), 200);
    assert_eq!(cors(&response), None, "{:?}", response.headers());
    let response = preflight(allowing.base.clone(), origin).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(cors(&response).as_deref(), Some(origin));
    let allowed_headers = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let response = preflight(allowing.base.clone(), "http://evil.example").await;
    assert_eq!(cors(&response), None, "{:?}", response.headers());
}

/// DNS rebinding: a page whose own name now resolves to 127.0.0.1 reads the monitor as its
/// own origin; its requests still carry its name in `Host`, and are refused.
#[tokio::test]
async fn hosts_other_than_loopback_names_are_refused_on_loopback() {
    let served = Served::start(sample(1)).await;
    let port = served.base.rsplit(':').next().unwrap().to_string();
    for good in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
        "127.0.0.2".to_string(),
        format!("app.localhost:{port}"),
    ] {
        let (status, body) = served.get_as_host("/api/health", &good).await;
        assert_eq!(status, 200, "{good}: {body}");
    }
    for path in ["/api/health", "/api/system/metrics", "/metrics", "/nope"] {
        let (status, body) = served.get_as_host(path, "evil.example:80").await;
        assert_eq!(status, 403, "{path}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "host not allowed");
        assert_eq!(body["host"], "evil.example:80");
    }
    let long = format!("{}.example", "a".repeat(10_000));
    let (status, body) = served.get_as_host("/api/health", &long).await;
    assert_eq!(status, 403);
    assert!(body.len() < 300, "the Host is quoted cut short: {body}");

    // HTTP/1.0 without a Host header: refused too (a rebinding page always sends one, but
    // nothing else names the server, so nothing can be checked).
    let (status, _, body) = served.raw(b"GET /api/health HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["host"],
        Value::Null
    );
    let request = format!("GET /api/health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let (status, _, body) = served.raw(request.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn allowed_hosts_are_served_on_loopback() {
    let browser = BrowserConfig {
        allowed_hosts: vec!["monitor.lab".into()],
        ..BrowserConfig::default()
    };
    let served = Served::start_with(sample(1), &browser).await;
    let (status, body) = served.get_as_host("/api/health", "Monitor.Lab:8080").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = served.get_as_host("/api/health", "other.lab").await;
    assert_eq!(status, 403);
}

/// Errors the HTTP layer answers: ours, in JSON, below hyper's own limits (whose answers have
/// no body; README "Errors" lists them).
#[tokio::test]
async fn over_long_requests_get_json_errors() {
    let served = Served::start(sample(1)).await;
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let host = format!("127.0.0.1:{port}");

    let path = format!("/api/system/metrics?node_id={}", "a".repeat(10_000));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, headers, body) = served.raw(request.as_bytes()).await;
    assert_eq!(status, 414, "{body}");
    assert!(
        headers.contains(&("content-type".into(), "application/json".into())),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "URI too long");
    assert_eq!(body["limit_bytes"], 8192);

    let big = "v".repeat(8_000);
    let headers: String = (0..10)
        .map(|i| format!("X-Filler-{i}: {big}\r\n"))
        .collect();
    let request =
        format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    let (status, _, body) = served.raw(request.as_bytes()).await;
    assert_eq!(status, 431, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "request headers too large");

    // What hyper answers before any route runs: a status without a body. These are the
    // documented exceptions; the statuses are checked so that a change shows.
    let (status, _, _) = served.raw(b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(status, 400);
    let path = format!("/{}", "a".repeat(70_000));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let (status, _, _) = served.raw(request.as_bytes()).await;
    assert_eq!(status, 414);
    let headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n");
    let (status, _, _) = served.raw(request.as_bytes()).await;
    assert_eq!(status, 431);
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
