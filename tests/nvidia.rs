//! The NVIDIA collector end to end: the real binary loads the fake NVML library (`fakes/nvml`)
//! through `--nvml-library`, and the GPUs it was configured with must come out of REST,
//! `/metrics` and `snapshot` with the values the fake returns; unsupported queries, a failing
//! initialisation, a missing library and a GPU lost mid-run must all be survived.
//!
//! The fake's values are functions of the GPU index (see `fakes/nvml/src/lib.rs`); the
//! expectations below restate them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::fakes::fake_library;
use common::{Monitor, BIN};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// A fake configuration in its own directory (which also holds the marker and counts files).
struct Fake {
    dir: tempfile::TempDir,
    library: PathBuf,
}

impl Fake {
    fn new(config: &str) -> Fake {
        let dir = tempfile::tempdir().expect("temporary directory");
        let text = config.replace("$DIR", &dir.path().to_string_lossy());
        std::fs::write(dir.path().join("config"), text).expect("writing the fake's config");
        Fake {
            dir,
            library: fake_library("fake_nvml"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn library_arg(&self) -> String {
        self.library.to_string_lossy().into_owned()
    }

    /// Starts the monitor on this fake with `args` added.
    fn start(&self, args: &[&str]) -> Monitor {
        let mut all = vec!["--nvml-library".to_string(), self.library_arg()];
        all.extend(args.iter().map(|a| a.to_string()));
        let config = self.path("config");
        Monitor::start_with_env(&all, &[("FAKE_NVML_CONFIG", config.as_path())])
    }

    /// `system_monitor snapshot --format model` on this fake, as JSON.
    fn snapshot(&self) -> Value {
        let output = Command::new(BIN)
            .args([
                "snapshot",
                "--format",
                "model",
                "--interval",
                "0.1",
                "--nvml-library",
            ])
            .arg(&self.library)
            .env("FAKE_NVML_CONFIG", self.path("config"))
            .output()
            .expect("running system_monitor snapshot");
        assert!(
            output.status.success(),
            "snapshot failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("snapshot prints JSON")
    }

    /// Calls per NVML function, from the counts file the fake writes every 20 ms.
    fn counts(&self) -> Vec<(String, u64)> {
        let text = std::fs::read_to_string(self.path("counts")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let (name, n) = l.split_once(' ')?;
                Some((name.to_string(), n.parse().ok()?))
            })
            .collect()
    }

    fn count(&self, function: &str) -> u64 {
        self.counts()
            .into_iter()
            .find(|(n, _)| n == function)
            .map_or(0, |(_, c)| c)
    }
}

/// The accelerators of the first node in `/api/system/metrics`.
async fn rest_accelerators(monitor: &Monitor) -> Vec<Value> {
    let reply = monitor.get("/api/system/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0]["accelerators"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no accelerators array: {}", reply.body))
}

/// Polls `/api/system/metrics` until `done` holds for the accelerators, or panics after `limit`.
async fn wait_for(
    monitor: &Monitor,
    limit: Duration,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = Instant::now() + limit;
    loop {
        let accelerators = rest_accelerators(monitor).await;
        if done(&accelerators) {
            return accelerators;
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {what}; last accelerators: {accelerators:#?}\nstderr:\n{}",
            monitor.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the `/metrics` sample `name` whose labels include `label`.
fn metric(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn gpu_healthy(a: &Value, i: u64) -> bool {
    a["utilization"].as_f64() == Some(10.0 + i as f64) && a.get("error").is_none_or(Value::is_null)
}

#[tokio::test]
async fn gpus_appear_in_rest_and_metrics_with_the_fakes_values() {
    let fake = Fake::new("devices=4\nprocesses=2\n");
    let monitor = fake.start(&["--interval", "0.2"]);
    let accelerators = rest_accelerators(&monitor).await;
    assert_eq!(accelerators.len(), 4, "{accelerators:#?}");
    for (i, a) in accelerators.iter().enumerate() {
        let i = i as u64;
        assert_eq!(a["id"], format!("nvidia{i}"));
        assert_eq!(a["type"], "gpu");
        assert_eq!(a["name"], "NVIDIA H100 80GB HBM3");
        assert_eq!(a["utilization"].as_f64(), Some(10.0 + i as f64));
        assert_eq!(a["memory"]["used"].as_u64(), Some((i + 1) * GIB));
        assert_eq!(a["memory"]["total"].as_u64(), Some(80 * GIB));
        let percentage = a["memory"]["percentage"].as_f64().unwrap_or(-1.0);
        assert!(
            (percentage - (i + 1) as f64 / 80.0 * 100.0).abs() < 1e-9,
            "{percentage}"
        );
        assert_eq!(a["temperature"].as_f64(), Some(40.0 + i as f64));
        assert_eq!(a["power"].as_f64(), Some(150.25 + i as f64));
        assert_eq!(a["fanSpeed"].as_f64(), Some(30.0 + i as f64));
    }

    let reply = monitor.get("/metrics").await;
    assert_eq!(reply.status, 200);
    for i in 0..4u64 {
        let gpu = format!("gpu=\"{i}\"");
        assert_eq!(
            metric(&reply.body, "DCGM_FI_DEV_GPU_UTIL", &gpu),
            Some(10.0 + i as f64),
            "{}",
            reply.body
        );
        assert_eq!(
            metric(&reply.body, "DCGM_FI_DEV_FB_USED", &gpu),
            Some(((i + 1) * GIB / MIB) as f64)
        );
        let uuid = format!("UUID=\"GPU-{i:08x}-fake-4000-8000-{i:012x}\"");
        assert!(
            metric(&reply.body, "DCGM_FI_DEV_GPU_UTIL", &uuid).is_some(),
            "no sample with {uuid}"
        );
    }
}

#[test]
fn snapshot_carries_every_field_mig_devices_and_processes() {
    let fake = Fake::new("devices=2\nmig=1\nmig_instances=3\nprocesses=2\ngraphics_processes=1\n");
    let snapshot = fake.snapshot();
    let accelerators = snapshot["accelerators"].as_array().expect("accelerators");
    assert_eq!(accelerators.len(), 2, "{accelerators:#?}");

    let a = &accelerators[0];
    let expect = [
        ("id", Value::from("nvidia0")),
        ("index", Value::from(0)),
        ("kind", Value::from("gpu")),
        ("vendor", Value::from("nvidia")),
        (
            "uuid",
            Value::from("GPU-00000000-fake-4000-8000-000000000000"),
        ),
        ("pci_bus_id", Value::from("00000000:18:00.0")),
        ("utilization_percent", Value::from(10.0)),
        ("memory_utilization_percent", Value::from(20.0)),
        ("encoder_utilization_percent", Value::from(30.0)),
        ("decoder_utilization_percent", Value::from(40.0)),
        ("memory_used_bytes", Value::from(GIB)),
        ("memory_total_bytes", Value::from(80 * GIB)),
        ("memory_reserved_bytes", Value::from(512 * MIB)),
        ("temperature_celsius", Value::from(40.0)),
        ("memory_temperature_celsius", Value::from(60.0)),
        ("power_watts", Value::from(150.25)),
        ("power_limit_watts", Value::from(700.0)),
        ("energy_joules", Value::from(1_000_000.123)),
        ("fan_speed_percent", Value::from(30.0)),
        ("sm_clock_mhz", Value::from(1755.0)),
        ("memory_clock_mhz", Value::from(2619.0)),
        ("graphics_clock_mhz", Value::from(1700.0)),
        ("pcie_tx_bytes_per_sec", Value::from(2000.0 * 1024.0)),
        ("pcie_rx_bytes_per_sec", Value::from(3000.0 * 1024.0)),
        ("pcie_link_gen", Value::from(5)),
        ("pcie_link_width", Value::from(16)),
        ("performance_state", Value::from(0)),
        ("throttle_reasons", Value::from(4)),
        ("ecc_errors_corrected", Value::from(3)),
        ("ecc_errors_uncorrected", Value::from(0)),
        ("error", Value::Null),
    ];
    for (field, value) in expect {
        assert_eq!(a[field], value, "nvidia0.{field} in {a:#}");
    }
    assert_eq!(
        a["throttle_reason_names"],
        serde_json::json!(["sw_power_cap"])
    );
    let info = &a["info"];
    assert_eq!(info["driver_version"], "550.54.15");
    assert_eq!(info["cuda_version"], "12.4");
    assert_eq!(info["architecture"], "Hopper");
    assert_eq!(info["cores"], 16896);
    assert_eq!(info["vbios_version"], "96.00.99.00.01");
    assert_eq!(info["max_power_watts"], 700.0);
    assert_eq!(info["mig_enabled"], false);
    assert_eq!(a["mig_devices"], serde_json::json!([]));
    assert_eq!(
        a["processes"],
        serde_json::json!([
            {"pid": 10000, "memory_used_bytes": 64 * MIB},
            {"pid": 10001, "memory_used_bytes": 128 * MIB},
            {"pid": 20000, "memory_used_bytes": 32 * MIB},
        ])
    );

    // GPU 1 is in MIG mode: no whole-GPU utilization (as real GPUs), three instances.
    let b = &accelerators[1];
    assert_eq!(b["info"]["mig_enabled"], true);
    assert_eq!(b["utilization_percent"], Value::Null);
    assert_eq!(
        b["throttle_reason_names"],
        serde_json::json!(["sw_power_cap", "hw_thermal_slowdown"])
    );
    let mig = b["mig_devices"].as_array().expect("mig_devices");
    assert_eq!(mig.len(), 3, "{mig:#?}");
    for (j, m) in mig.iter().enumerate() {
        let j = j as u64;
        assert_eq!(m["index"], j);
        assert_eq!(m["uuid"], format!("MIG-00000001-fake-4000-8000-{j:012x}"));
        assert_eq!(m["gpu_instance_id"], 1 + j);
        assert_eq!(m["compute_instance_id"], 0);
        assert_eq!(m["profile"], "1g.10gb");
        assert_eq!(m["multiprocessors"], 16);
        assert_eq!(m["memory_total_bytes"], 9856 * MIB);
        assert_eq!(m["memory_used_bytes"], (j + 1) * 256 * MIB);
        assert_eq!(
            m["processes"],
            serde_json::json!([{"pid": 30100 + j, "memory_used_bytes": 128 * MIB}])
        );
    }
    // The parent lists the processes of its instances, then its graphics process.
    let pids: Vec<u64> = b["processes"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(pids, [30100, 30101, 30102, 20100]);
}

#[tokio::test]
async fn an_unsupported_query_is_asked_once_per_gpu() {
    let fake = Fake::new(
        "devices=2\n\
         unsupported=nvmlDeviceGetFanSpeed_v2,nvmlDeviceGetTotalEccErrors\n\
         counts_file=$DIR/counts\n",
    );
    let monitor = fake.start(&["--interval", "0.1"]);
    // Several samples: the power query runs once per GPU per sample.
    let until = Instant::now() + Duration::from_secs(20);
    while fake.count("nvmlDeviceGetPowerUsage") < 2 * 6 {
        assert!(
            Instant::now() < until,
            "samples do not advance: {:?}",
            fake.counts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One call per GPU; ECC is two queries (corrected, uncorrected) per GPU.
    assert_eq!(
        fake.count("nvmlDeviceGetFanSpeed_v2"),
        2,
        "{:?}",
        fake.counts()
    );
    assert_eq!(
        fake.count("nvmlDeviceGetTotalEccErrors"),
        4,
        "{:?}",
        fake.counts()
    );
    // Handles and static facts are cached: looked up once, not per sample.
    assert_eq!(fake.count("nvmlDeviceGetHandleByIndex_v2"), 2);
    assert_eq!(fake.count("nvmlDeviceGetName"), 2);
    let accelerators = rest_accelerators(&monitor).await;
    assert_eq!(accelerators.len(), 2);
    for a in &accelerators {
        assert_eq!(a["fanSpeed"], Value::Null, "{a:#}");
        assert!(a["temperature"].is_number(), "{a:#}");
    }
}

#[tokio::test]
async fn a_failing_initialisation_leaves_no_gpus_and_is_retried_until_the_driver_loads() {
    // 9: NVML_ERROR_DRIVER_NOT_LOADED.
    let fake = Fake::new("devices=2\ninit_error=9\n");
    let monitor = fake.start(&["--interval", "0.2"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let health = monitor.get("/api/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "healthy");
    assert_eq!(rest_accelerators(&monitor).await, Vec::<Value>::new());
    let stderr = monitor.stderr();
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "a missing driver is not worth a warning:\n{stderr}"
    );

    // The driver loads later (a node whose driver container starts after the agent): the
    // collector, retrying with backoff, finds the GPUs without a restart.
    std::fs::write(fake.path("config"), "devices=2\n").expect("rewriting the fake's config");
    let accelerators = wait_for(
        &monitor,
        Duration::from_secs(20),
        "GPUs after the driver loads",
        |a| a.len() == 2,
    )
    .await;
    assert!(
        accelerators.iter().zip(0..).all(|(a, i)| gpu_healthy(a, i)),
        "{accelerators:#?}"
    );
}

#[tokio::test]
async fn a_missing_library_leaves_no_gpus_and_a_healthy_monitor() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("libnvidia-ml.so.1");
    let monitor = Monitor::start(&[
        "--nvml-library",
        &missing.to_string_lossy(),
        "--interval",
        "0.2",
    ]);
    let health = monitor.get("/api/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(rest_accelerators(&monitor).await, Vec::<Value>::new());
    let info = monitor.get("/api/system/info").await.json();
    assert_eq!(info["gpu_count"], 0);
    let stderr = monitor.stderr();
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_lost_gpu_is_reported_then_recovered_by_reinitialising_nvml() {
    let fake =
        Fake::new("devices=3\nlost_device=1\nlost_marker=$DIR/lost\ncounts_file=$DIR/counts\n");
    let marker = fake.path("lost");
    let monitor = fake.start(&["--interval", "0.2"]);
    let accelerators = rest_accelerators(&monitor).await;
    assert_eq!(accelerators.len(), 3);
    assert!(accelerators.iter().zip(0..).all(|(a, i)| gpu_healthy(a, i)));

    // The GPU falls off the bus.
    touch(&marker);
    let accelerators = wait_for(&monitor, Duration::from_secs(10), "nvidia1 lost", |a| {
        a.len() == 3 && a[1]["utilization"].is_null()
    })
    .await;
    let lost = &accelerators[1];
    assert_eq!(lost["id"], "nvidia1");
    assert_eq!(
        lost["name"], "NVIDIA H100 80GB HBM3",
        "identity kept: {lost:#}"
    );
    if let Some(error) = lost.get("error") {
        let error = error.as_str().unwrap_or_default();
        assert!(error.contains("nvidia1"), "{error}");
    }
    // The other GPUs and the other sections go on.
    assert!(gpu_healthy(&accelerators[0], 0), "{accelerators:#?}");
    assert!(gpu_healthy(&accelerators[2], 2), "{accelerators:#?}");
    let node = &monitor.get("/api/system/metrics").await.json()[0];
    assert!(
        node["memory"]["total"].as_u64().unwrap_or(0) > 0,
        "{node:#}"
    );
    assert_eq!(monitor.get("/api/health").await.status, 200);

    // Lost for a while: re-initialisation is attempted (with backoff) and fails meanwhile.
    let inits_before = fake.count("nvmlInit_v2");
    let until = Instant::now() + Duration::from_secs(10);
    while fake.count("nvmlInit_v2") < inits_before + 1 {
        assert!(
            Instant::now() < until,
            "no re-initialisation: {:?}",
            fake.counts()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accelerators = rest_accelerators(&monitor).await;
    assert!(
        accelerators[1]["utilization"].is_null(),
        "still lost while the marker is there"
    );

    // Back on the bus: it answers again only after a fresh nvmlInit, which the collector does.
    std::fs::remove_file(&marker).expect("removing the marker");
    let inits_while_lost = fake.count("nvmlInit_v2");
    wait_for(
        &monitor,
        Duration::from_secs(30),
        "nvidia1 recovered",
        |a| a.len() == 3 && a.iter().zip(0..).all(|(a, i)| gpu_healthy(a, i)),
    )
    .await;
    // The fake publishes its call counts every 20 ms: wait for the publication that follows
    // the recovery rather than read one written before it.
    let until = Instant::now() + Duration::from_secs(10);
    while !(fake.count("nvmlInit_v2") > inits_while_lost && fake.count("nvmlShutdown") >= 2) {
        assert!(
            Instant::now() < until,
            "recovered without a fresh nvmlInit after nvmlShutdown: {:?}",
            fake.counts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One warning for the whole incident, not one per sample or per attempt.
    let stderr = monitor.stderr();
    let warnings = stderr.lines().filter(|l| l.contains("WARN")).count();
    assert_eq!(warnings, 1, "{stderr}");
}

fn touch(path: &Path) {
    std::fs::write(path, b"").expect("creating the marker");
}

/// The TrackLab SDK's view: legacy GetStats `gpu.{i}.*` keys (with the `gpu_device_ids` filter)
/// and GetMetadata's `gpu_nvidia`, `gpu_count`, `gpu_type` and `cuda_version`, over gRPC from the
/// real binary on the fake.
#[tokio::test]
async fn legacy_grpc_serves_the_gpus() {
    use system_monitor::pb::legacy::record::RecordType;
    use system_monitor::pb::legacy::system_monitor_service_client::SystemMonitorServiceClient;
    use system_monitor::pb::legacy::{GetMetadataRequest, GetStatsRequest};

    let fake = Fake::new("devices=2\n");
    let monitor = Fake::start(&fake, &[]);
    let mut client =
        SystemMonitorServiceClient::connect(format!("http://127.0.0.1:{}", monitor.grpc_port))
            .await
            .expect("connect to the legacy service");

    let stats = client
        .get_stats(GetStatsRequest {
            pid: 0,
            gpu_device_ids: vec![1],
        })
        .await
        .expect("GetStats")
        .into_inner();
    let items = match stats.record.and_then(|r| r.record_type) {
        Some(RecordType::Stats(stats)) => stats.item,
        other => panic!("expected a stats record, got {other:?}"),
    };
    let value = |key: &str| -> Option<f64> {
        let item = items.iter().find(|i| i.key == key)?;
        serde_json::from_str::<f64>(&item.value_json).ok()
    };
    // GPU 1 of the fake: utilization 11 %, memory controller 21 %, 2 GiB of 80 GiB used,
    // 41 °C, 151.25 W of 700 W, SM clock 1756 MHz, memory clock 2619 MHz, fan 31 %.
    assert_eq!(value("gpu.1.gpu"), Some(11.0));
    assert_eq!(value("gpu.1.memory"), Some(21.0));
    assert_eq!(value("gpu.1.memoryAllocated"), Some(2.5));
    assert_eq!(value("gpu.1.memoryAllocatedBytes"), Some((2 * GIB) as f64));
    assert_eq!(value("gpu.1.temp"), Some(41.0));
    assert_eq!(value("gpu.1.powerWatts"), Some(151.25));
    assert_eq!(value("gpu.1.enforcedPowerLimitWatts"), Some(700.0));
    assert_eq!(value("gpu.1.smClock"), Some(1756.0));
    assert_eq!(value("gpu.1.memoryClock"), Some(2619.0));
    assert_eq!(value("gpu.1.fanSpeed"), Some(31.0));
    let gpu0: Vec<&str> = items
        .iter()
        .map(|i| i.key.as_str())
        .filter(|k| k.starts_with("gpu.0."))
        .collect();
    assert!(
        gpu0.is_empty(),
        "gpu_device_ids=[1] must leave GPU 0 out: {gpu0:?}"
    );

    let metadata = client
        .get_metadata(GetMetadataRequest {})
        .await
        .expect("GetMetadata")
        .into_inner();
    let env = match metadata.record.and_then(|r| r.record_type) {
        Some(RecordType::Environment(env)) => env,
        other => panic!("expected an environment record, got {other:?}"),
    };
    assert_eq!(env.gpu_count, 2);
    assert_eq!(env.gpu_type, "NVIDIA H100 80GB HBM3");
    assert_eq!(env.cuda_version, "12.4");
    assert_eq!(env.gpu_nvidia.len(), 2);
    for (i, gpu) in env.gpu_nvidia.iter().enumerate() {
        assert_eq!(gpu.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.memory_total, 80 * GIB);
        assert_eq!(gpu.cuda_cores, 16896);
        assert_eq!(gpu.architecture, "Hopper");
        assert_eq!(gpu.uuid, format!("GPU-{i:08x}-fake-4000-8000-{i:012x}"));
    }
}
