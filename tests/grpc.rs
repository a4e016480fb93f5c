//! The gRPC services end to end: the real binary, called with the generated tonic clients — the
//! legacy `SystemMonitorService` (GetStats, GetMetadata, TearDown) and the typed v1
//! `MonitorService` — plus the wire numbers of the legacy messages.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

use system_monitor::pb::legacy::record::RecordType;
use system_monitor::pb::legacy::system_monitor_service_client::SystemMonitorServiceClient;
use system_monitor::pb::legacy::{
    GetMetadataRequest, GetStatsRequest, Record, StatsItem, StatsRecord, TearDownRequest,
};
use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::{GetInfoRequest, GetMetricsRequest, WatchMetricsRequest};

const NODE: &str = "grpc-test-node";
const STARTUP: Duration = Duration::from_secs(20);

/// A running `system_monitor`, killed when dropped.
struct Monitor {
    child: Child,
    grpc_port: u16,
    /// Holds the portfile.
    _dir: tempfile::TempDir,
}

impl Monitor {
    /// Starts the binary as TrackLab's launcher does: `--portfile`, ephemeral ports, and waits for
    /// the portfile's `sock=` line.
    fn child(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let portfile = dir.path().join("ports");
        let mut args = vec!["--portfile".to_string(), portfile.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn(&args);
        let grpc_port = wait_for_portfile(&portfile, child);
        Self {
            child: grpc_port.1,
            grpc_port: grpc_port.0,
            _dir: dir,
        }
    }

    /// Starts the binary WITHOUT `--portfile`/`--parent-pid` (so not a child monitor) on a port
    /// picked here, and waits until it answers as itself: the port is free when picked but another
    /// test's monitor may take it first, in which case ours exits and we try another.
    async fn standalone() -> Self {
        const NAME: &str = "standalone-node";
        for _ in 0..5 {
            let port = free_port();
            let child = spawn(&[
                "--grpc-port".into(),
                port.to_string(),
                "--rest-api-port".into(),
                "0".into(),
                "--node-id".into(),
                NAME.into(),
            ]);
            let mut monitor = Self {
                child,
                grpc_port: port,
                _dir: tempfile::tempdir().expect("tempdir"),
            };
            let deadline = Instant::now() + STARTUP;
            while Instant::now() < deadline {
                if monitor.child.try_wait().expect("try_wait").is_some() {
                    break; // port taken: try another
                }
                if let Ok(mut client) = MonitorServiceClient::connect(monitor.url()).await {
                    if let Ok(info) = client.get_info(GetInfoRequest::default()).await {
                        if info.get_ref().node_id == NAME {
                            return monitor;
                        }
                        break; // someone else's monitor on this port
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("could not start a standalone monitor");
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    async fn legacy(&self) -> SystemMonitorServiceClient<Channel> {
        SystemMonitorServiceClient::connect(self.url())
            .await
            .expect("connect legacy client")
    }

    async fn v1(&self) -> MonitorServiceClient<Channel> {
        MonitorServiceClient::connect(self.url())
            .await
            .expect("connect v1 client")
    }

    /// Waits up to `limit` for the process to exit on its own. Async, so that the test's clients
    /// keep answering the server (HTTP/2 graceful shutdown waits for a PING round trip).
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_system_monitor"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start system_monitor")
}

/// Reads `sock=<port>` from the portfile once it appears (it is written atomically).
fn wait_for_portfile(path: &Path, mut child: Child) -> (u16, Child) {
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let first = text.lines().next().unwrap_or_default();
            let port = first
                .strip_prefix("sock=")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("bad portfile {text:?}"));
            return (port, child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("system_monitor exited before writing the portfile: {status}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no portfile at {} after {STARTUP:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn default_args() -> Vec<&'static str> {
    vec![
        "--rest-api-port",
        "0",
        "--interval",
        "200ms",
        "--node-id",
        NODE,
    ]
}

fn stats_record(record: Option<Record>) -> StatsRecord {
    match record.and_then(|r| r.record_type) {
        Some(RecordType::Stats(stats)) => stats,
        other => panic!("expected a stats record, got {other:?}"),
    }
}

/// The items as numbers, asserting each value is the JSON text of a finite number.
fn numbers(items: &[StatsItem]) -> HashMap<String, f64> {
    items
        .iter()
        .map(|item| {
            let value: serde_json::Value = serde_json::from_str(&item.value_json)
                .unwrap_or_else(|e| panic!("{}: {:?} is not JSON: {e}", item.key, item.value_json));
            let number = value
                .as_f64()
                .unwrap_or_else(|| panic!("{}: {value} is not a number", item.key));
            assert!(number.is_finite(), "{}: {number}", item.key);
            (item.key.clone(), number)
        })
        .collect()
}

fn percent(values: &HashMap<String, f64>, key: &str) -> f64 {
    let v = *values
        .get(key)
        .unwrap_or_else(|| panic!("missing {key} in {values:?}"));
    assert!((0.0..=100.0).contains(&v), "{key} = {v}");
    v
}

#[tokio::test]
async fn get_stats_for_our_own_pid() {
    let monitor = Monitor::child(&default_args());
    let info = monitor
        .v1()
        .await
        .get_info(GetInfoRequest::default())
        .await
        .expect("GetInfo")
        .into_inner();
    let response = monitor
        .legacy()
        .await
        .get_stats(GetStatsRequest {
            pid: std::process::id() as i32,
            gpu_device_ids: vec![],
        })
        .await
        .expect("GetStats")
        .into_inner();
    let stats = stats_record(response.record);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let stamp = stats.timestamp.expect("timestamp").seconds;
    assert!((stamp - now).abs() <= 5, "timestamp {stamp} vs now {now}");
    let values = numbers(&stats.item);

    percent(&values, "cpu");
    percent(&values, "memory_percent");
    percent(&values, "proc.memory.percent");
    let cores = values
        .keys()
        .filter(|k| k.starts_with("cpu.") && k.ends_with(".cpu_percent"))
        .count();
    assert!(info.cpu_threads > 0, "GetInfo reports no logical CPUs");
    assert_eq!(
        cores, info.cpu_threads as usize,
        "one cpu.{{i}} per logical CPU"
    );
    for i in 0..cores {
        percent(&values, &format!("cpu.{i}.cpu_percent"));
    }
    // Our tree includes the monitor itself (our child): several threads, some MiB resident.
    assert!(values["proc.cpu.threads"] >= 2.0, "{values:?}");
    assert!(values["proc.memory.rssMB"] > 1.0, "{values:?}");
    assert!(values["proc.memory.availableMB"] > 0.0);
    for key in ["network.sent", "network.recv", "disk.in", "disk.out"] {
        assert!(values[key] >= 0.0, "{key}");
    }
    // Filesystem keys come in pairs.
    let usage_percent: Vec<_> = values
        .keys()
        .filter_map(|k| k.strip_suffix(".usagePercent"))
        .collect();
    for prefix in usage_percent {
        assert!(prefix.starts_with("disk./"), "{prefix}");
        assert!(values.contains_key(&format!("{prefix}.usageGB")));
    }
}

#[tokio::test]
async fn get_stats_measures_a_busy_child() {
    let monitor = Monitor::child(&default_args());
    let mut busy = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn busy loop");
    let pid = busy.id() as i32;
    let client = monitor.legacy().await;
    let ask = || {
        let request = GetStatsRequest {
            pid,
            gpu_device_ids: vec![],
        };
        let mut client = client.clone();
        async move { client.get_stats(request).await }
    };
    // Let it run long enough for its average since start to mean something.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = ask().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = ask().await;
    let _ = busy.kill();
    let _ = busy.wait();
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    for response in [first, second] {
        let values = numbers(&stats_record(response.expect("GetStats").into_inner().record).item);
        let cpu = percent(&values, "cpu");
        // One spinning process is up to 1/logical of the machine; even on a loaded machine it
        // gets a visible share.
        assert!(cpu > 2.0, "busy child at {cpu}%");
        assert!(cpu <= 100.0 / logical * 1.5 + 1.0, "busy child at {cpu}%");
        assert_eq!(values["proc.cpu.threads"], 1.0);
    }
}

#[tokio::test]
async fn get_stats_for_the_system_and_bad_pids() {
    let monitor = Monitor::child(&default_args());
    let mut client = monitor.legacy().await;
    let system = client
        .get_stats(GetStatsRequest {
            pid: 0,
            gpu_device_ids: vec![],
        })
        .await
        .expect("GetStats pid 0")
        .into_inner();
    let values = numbers(&stats_record(system.record).item);
    percent(&values, "cpu");
    percent(&values, "memory_percent");
    assert!(
        !values.contains_key("proc.memory.rssMB"),
        "pid 0 has no tree"
    );

    // Above any kernel's pid_max (at most 2^22).
    let missing = client
        .get_stats(GetStatsRequest {
            pid: i32::MAX,
            gpu_device_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert!(missing.message().contains(&i32::MAX.to_string()));

    let negative = client
        .get_stats(GetStatsRequest {
            pid: -5,
            gpu_device_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(negative.code(), Code::InvalidArgument, "{negative:?}");
}

#[tokio::test]
async fn get_metadata_describes_the_machine() {
    let monitor = Monitor::child(&default_args());
    let response = monitor
        .legacy()
        .await
        .get_metadata(GetMetadataRequest {})
        .await
        .expect("GetMetadata")
        .into_inner();
    let env = match response.record.and_then(|r| r.record_type) {
        Some(RecordType::Environment(env)) => env,
        other => panic!("expected an environment record, got {other:?}"),
    };
    if cfg!(target_os = "linux") {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(
            env.os,
            format!("Linux-{}-{}", kernel.trim(), std::env::consts::ARCH)
        );
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(env.host, hostname.trim());
    }
    assert!(env.cpu_count_logical >= 1, "{env:?}");
    assert!(
        (1..=env.cpu_count_logical).contains(&env.cpu_count),
        "{env:?}"
    );
    assert_eq!(
        env.gpu_count as usize,
        env.gpu_nvidia.len() + env.gpu_amd.len()
    );
}

#[tokio::test]
async fn v1_info_and_metrics() {
    let monitor = Monitor::child(&default_args());
    let mut client = monitor.v1().await;
    let info = client
        .get_info(GetInfoRequest::default())
        .await
        .expect("GetInfo")
        .into_inner();
    assert_eq!(info.node_id, NODE);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    let same = client
        .get_info(GetInfoRequest {
            node_id: NODE.into(),
        })
        .await
        .expect("GetInfo by node id")
        .into_inner();
    assert_eq!(same.node_id, NODE);

    let metrics = client
        .get_metrics(GetMetricsRequest::default())
        .await
        .expect("GetMetrics")
        .into_inner();
    assert_eq!(metrics.nodes.len(), 1);
    let node = &metrics.nodes[0];
    assert_eq!(node.node_id, NODE);
    assert!(node.timestamp_unix_ms > 1_600_000_000_000);
    let cpu = node.cpu.as_ref().expect("cpu section");
    assert!((0.0..=100.0).contains(&cpu.overall_percent));
    assert_eq!(cpu.cores.len(), info.cpu_threads as usize);
    let memory = node.memory.as_ref().expect("memory section");
    assert!(memory.used_bytes <= memory.total_bytes && memory.total_bytes > 0);
    assert_eq!(memory.total_bytes, info.memory_total_bytes);

    for (what, status) in [
        (
            "unknown GetInfo",
            client
                .get_info(GetInfoRequest {
                    node_id: "worker-99".into(),
                })
                .await
                .unwrap_err(),
        ),
        (
            "unknown GetMetrics",
            client
                .get_metrics(GetMetricsRequest {
                    node_id: "worker-99".into(),
                })
                .await
                .unwrap_err(),
        ),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{what}: {status:?}");
        assert!(status.message().contains("worker-99"), "{what}: {status:?}");
    }
    let bad = client
        .get_metrics(GetMetricsRequest {
            node_id: "../etc/passwd".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
}

#[tokio::test]
async fn v1_watch_streams_new_snapshots() {
    let monitor = Monitor::child(&default_args());
    let mut stream = monitor
        .v1()
        .await
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .expect("WatchMetrics")
        .into_inner();
    let mut stamps = Vec::new();
    while stamps.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a snapshot within 5 s (interval is 200 ms)")
            .expect("stream still open")
            .expect("no error");
        assert_eq!(next.node_id, NODE);
        stamps.push(next.timestamp_unix_ms);
    }
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "timestamps must increase: {stamps:?}"
    );

    let refused = monitor
        .v1()
        .await
        .watch_metrics(WatchMetricsRequest {
            node_id: "worker-99".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
}

#[tokio::test]
async fn teardown_is_refused_for_a_standalone_monitor() {
    let mut monitor = Monitor::standalone().await;
    let status = monitor
        .legacy()
        .await
        .tear_down(TearDownRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("--portfile"), "{status:?}");
    assert!(
        monitor
            .wait_exit(Duration::from_millis(500))
            .await
            .is_none(),
        "a refused TearDown must not stop the monitor"
    );
}

#[tokio::test]
async fn teardown_stops_a_child_monitor() {
    let mut monitor = Monitor::child(&default_args());
    // A stream in flight must not keep the monitor alive.
    let mut stream = monitor
        .v1()
        .await
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .expect("WatchMetrics")
        .into_inner();
    stream.next().await.expect("first snapshot").expect("ok");
    monitor
        .legacy()
        .await
        .tear_down(TearDownRequest {})
        .await
        .expect("TearDown answered");
    // The stream ends (cleanly or with an error) instead of hanging.
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(end.is_ok(), "WatchMetrics still open 5 s after TearDown");
    let status = monitor
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("monitor exits within 5 s of TearDown");
    assert!(status.success(), "{status}");
}

/// The legacy messages must keep the established field numbers: decoders in other languages
/// depend on them, not on names.
#[test]
fn legacy_wire_numbers() {
    let request = GetStatsRequest {
        pid: 7,
        gpu_device_ids: vec![1, 2],
    };
    // pid: field 1 varint (0x08); gpu_device_ids: field 2, packed (0x12, length 2).
    assert_eq!(request.encode_to_vec(), [0x08, 7, 0x12, 2, 1, 2]);

    let item = StatsItem {
        key: "cpu".into(),
        value_json: "1".into(),
    };
    // key: field 1 (0x0a); value_json: field 16, length-delimited → tag (16 << 3 | 2) = 130 =
    // varint 0x82 0x01.
    assert_eq!(
        item.encode_to_vec(),
        [0x0a, 3, b'c', b'p', b'u', 0x82, 0x01, 1, b'1']
    );

    let stats = Record {
        record_type: Some(RecordType::Stats(StatsRecord {
            stats_type: 0,
            timestamp: None,
            item: vec![],
        })),
        num: 1,
        uuid: "u".into(),
    };
    // num: field 1 (0x08); stats: field 7 (0x3a) empty; uuid: field 19 → tag 154 = 0x9a 0x01.
    let bytes = stats.encode_to_vec();
    assert_eq!(bytes, [0x08, 1, 0x3a, 0, 0x9a, 0x01, 1, b'u']);

    let env = Record {
        record_type: Some(RecordType::Environment(
            system_monitor::pb::legacy::EnvironmentRecord {
                cpu_count: 3,
                cpu_count_logical: 4,
                host: "h".into(),
                gpu_type: "g".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    // environment: field 26 → tag 210 = 0xd2 0x01; inside: host 12 (0x62), cpu_count 16 (0x80 0x01),
    // cpu_count_logical 17 (0x88 0x01), gpu_type 18 (0x92 0x01).
    let inner = [
        0x62, 1, b'h', 0x80, 0x01, 3, 0x88, 0x01, 4, 0x92, 0x01, 1, b'g',
    ];
    let mut expected = vec![0xd2, 0x01, inner.len() as u8];
    expected.extend_from_slice(&inner);
    assert_eq!(env.encode_to_vec(), expected);

    // And a message from an older encoder (unknown extra fields) still decodes.
    let mut with_unknown = item.encode_to_vec();
    with_unknown.extend_from_slice(&[0x18, 5]); // field 3 varint, not declared here
    let decoded = StatsItem::decode(with_unknown.as_slice()).expect("decode");
    assert_eq!(decoded, item);
}
