//! `/metrics` checked by Prometheus' own tools: `promtool check metrics` lints the text format,
//! and `promtool tsdb create-blocks-from openmetrics` runs Prometheus' strict OpenMetrics parser
//! over the OpenMetrics format. Run on the fixture hosts and on this machine.
//!
//! promtool comes from Debian's `prometheus` package, which the README's test command installs.
//! Without it these tests fail, unless `SYSTEM_MONITOR_SKIP_PROMTOOL=1` says to skip them.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use common::cluster::{agent, eventually, DEADLINE};
use common::Monitor;
use system_monitor::model::{
    Accelerator, AcceleratorInfo, AcceleratorKind, AcceleratorProcess, MigDevice, PodRef,
    PowerReading, ProfilingStats, Snapshot,
};
use system_monitor::serve::prometheus::{encode, Format};

const OPENMETRICS_ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

/// Whether promtool can run; panics with instructions when it cannot and skipping was not asked.
fn promtool_available() -> bool {
    if std::env::var("SYSTEM_MONITOR_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("SYSTEM_MONITOR_SKIP_PROMTOOL=1: promtool checks skipped");
        return false;
    }
    match Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => panic!(
            "promtool --version failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "promtool is not installed ({e}). Run the test command from the README, which \
             installs it (Debian package `prometheus`), or set SYSTEM_MONITOR_SKIP_PROMTOOL=1 \
             to skip these checks."
        ),
    }
}

/// What `promtool check metrics` may say: node_exporter's own meminfo, netstat and sockstat names
/// (`node_netstat_TcpExt_ListenDrops`, `node_sockstat_TCP_inuse`) and dcgm-exporter's label names
/// are not snake_case, dcgm-exporter's counters have no `_total`, and node_exporter's entropy
/// gauges count bits; we keep them as they are for dashboard compatibility.
fn allowed_lint(line: &str) -> bool {
    let Some((name, message)) = line.split_once(' ') else {
        return false;
    };
    if name.starts_with("node_entropy_") && message == "use base unit \"bytes\" instead of \"bits\""
    {
        return true;
    }
    let inherited = [
        "node_memory_",
        "node_netstat_",
        "node_sockstat_",
        "DCGM_FI_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix));
    inherited
        && (message == "metric names should be written in 'snake_case' not 'camelCase'"
            || message == "label names should be written in 'snake_case' not 'camelCase'"
            || (name.starts_with("DCGM_FI_")
                && message == "counter metrics should have \"_total\" suffix"))
}

/// Lints the text format with `promtool check metrics`; fails on anything but the allowed lints.
fn check_text(exposition: &str, what: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !allowed_lint(l))
        .collect();
    assert!(
        problems.is_empty(),
        "promtool check metrics on {what}:\n{}\n--- exposition ---\n{exposition}",
        problems.join("\n")
    );
    // promtool exits 3 for lint findings only, and 1 for a parse error.
    let code = out.status.code();
    assert!(
        code == Some(0) || (code == Some(3) && !report.trim().is_empty()),
        "promtool check metrics on {what} exited {:?}:\n{report}",
        out.status
    );
}

/// Parses the OpenMetrics format with Prometheus' OpenMetrics parser by backfilling it into a
/// throwaway TSDB (backfill wants a timestamp on every sample, so one is appended).
fn check_openmetrics(exposition: &str, what: &str) {
    assert!(exposition.ends_with("# EOF\n"), "{what}: no # EOF");
    let dir = tempfile::tempdir().expect("temporary directory");
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
        - 60;
    let mut stamped = String::with_capacity(exposition.len() * 2);
    for line in exposition.lines() {
        stamped.push_str(line);
        if !line.starts_with('#') && !line.is_empty() {
            stamped.push_str(&format!(" {timestamp}"));
        }
        stamped.push('\n');
    }
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, stamped).expect("write exposition");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "OpenMetrics parse of {what} failed: {}{}\n--- exposition ---\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!(" {samples} ")),
        "{what}: expected {samples} series ingested:\n{report}"
    );
}

/// Checks both formats of `monitor`'s `/metrics`; returns them (text, OpenMetrics).
async fn check_monitor(monitor: &Monitor, what: &str) -> (String, String) {
    let text = monitor.get("/metrics").await;
    assert_eq!(text.status, 200, "{what}: {}", text.body);
    assert!(text.body.contains("system_monitor_build_info"), "{what}");
    check_text(&text.body, what);

    let openmetrics = monitor
        .get_with("/metrics", &[("Accept", OPENMETRICS_ACCEPT)])
        .await;
    assert_eq!(openmetrics.status, 200, "{what}: {}", openmetrics.body);
    assert!(
        openmetrics
            .content_type
            .starts_with("application/openmetrics-text"),
        "{what}: {}",
        openmetrics.content_type
    );
    check_openmetrics(&openmetrics.body, what);
    (text.body, openmetrics.body)
}

#[tokio::test]
async fn metrics_of_fixture_hosts_pass_promtool() {
    if !promtool_available() {
        return;
    }
    for fixture in ["server", "captured-vm"] {
        let monitor = Monitor::on_fixture(fixture, &["--node-id", "promtool-node"]);
        check_monitor(&monitor, fixture).await;
    }
}

#[tokio::test]
async fn metrics_of_this_machine_pass_promtool() {
    if !promtool_available() {
        return;
    }
    let monitor = Monitor::start(&["--node-id", "promtool-live"]);
    check_monitor(&monitor, "this machine").await;
}

/// The coordinator's `/metrics`: its own families, the poll histogram filled by polling a real
/// agent, then (`--sample-self`) its host's, written by the agent's writer as one exposition.
#[tokio::test]
async fn coordinator_metrics_pass_promtool() {
    if !promtool_available() {
        return;
    }
    let worker = agent("captured-vm", "promtool-worker", Ipv4Addr::LOCALHOST, &[]);
    let worker_url = worker.base();
    let mut args = vec![
        "coordinator",
        "--sample-self",
        "--node-id",
        "promtool-coord",
        "--agents",
        &worker_url,
        "--poll-interval",
        "500ms",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(common::fixture_args("server"));
    let coord = Monitor::start(&args);
    let count = r#"system_monitor_coordinator_poll_duration_seconds_count{node="promtool-coord"} "#;
    eventually("a poll in the histogram", DEADLINE, || async {
        let text = coord.get("/metrics").await.body;
        let polls = text
            .lines()
            .find_map(|l| l.strip_prefix(count))
            .and_then(|n| n.parse::<u64>().ok());
        match polls {
            Some(n) if n >= 1 => Ok(()),
            _ => Err(text),
        }
    })
    .await;

    let (text, openmetrics) = check_monitor(&coord, "the coordinator").await;
    for exposition in [&text, &openmetrics] {
        for expected in [
            "# TYPE system_monitor_coordinator_poll_duration_seconds histogram\n",
            r#"system_monitor_coordinator_poll_duration_seconds_bucket{node="promtool-coord",le="+Inf"} "#,
            r#"system_monitor_coordinator_poll_errors_total{kind="timeout",node="promtool-coord"} "#,
            r#"node_cpu_seconds_total{node="promtool-coord","#,
        ] {
            assert!(exposition.contains(expected), "{expected}\n{exposition}");
        }
    }
    assert!(text.contains("# TYPE system_monitor_coordinator_rounds_total counter\n"));
    assert!(openmetrics.contains("# TYPE system_monitor_coordinator_rounds counter\n"));
    assert!(!text.contains("# EOF"));
    assert_eq!(openmetrics.matches("# EOF").count(), 1, "{openmetrics}");
}

/// Every accelerator kind the model knows, every optional field filled: an NVIDIA GPU in MIG mode
/// with DCGM profiling, one that was lost, an AMD GPU, an Intel NPU, a TPU, an Apple GPU with the
/// power readings of its SoC.
fn accelerator_snapshot() -> Snapshot {
    let full = |id: &str, index, kind, vendor: &str, name: &str| Accelerator {
        id: id.into(),
        index,
        kind,
        vendor: vendor.into(),
        name: name.into(),
        uuid: Some(format!("uuid-{id}")),
        pci_bus_id: Some(format!("0000:0{index}:00.0")),
        info: AcceleratorInfo {
            driver_version: Some("1.2.3".into()),
            ..AcceleratorInfo::default()
        },
        utilization_percent: Some(50.0),
        memory_utilization_percent: Some(20.0),
        encoder_utilization_percent: Some(1.0),
        decoder_utilization_percent: Some(2.0),
        memory_used_bytes: Some(1 << 30),
        memory_total_bytes: Some(16 << 30),
        memory_reserved_bytes: Some(1 << 20),
        temperature_celsius: Some(60.0),
        memory_temperature_celsius: Some(70.0),
        power_watts: Some(100.5),
        power_limit_watts: Some(300.0),
        energy_joules: Some(98_765.432),
        fan_speed_percent: Some(30.0),
        sm_clock_mhz: Some(1500.0),
        memory_clock_mhz: Some(1200.0),
        graphics_clock_mhz: Some(1500.0),
        pcie_tx_bytes_per_sec: Some(1e6),
        pcie_rx_bytes_per_sec: Some(2e6),
        pcie_link_gen: Some(4),
        pcie_link_width: Some(16),
        performance_state: Some(2),
        throttle_reasons: Some(0x1),
        throttle_reason_names: vec!["gpu_idle"],
        ecc_errors_corrected: Some(1),
        ecc_errors_uncorrected: Some(0),
        processes: vec![AcceleratorProcess {
            pid: 42,
            memory_used_bytes: Some(1 << 20),
            pod: None,
        }],
        ..Accelerator::default()
    };
    let mut h100 = full(
        "nvidia0",
        0,
        AcceleratorKind::Gpu,
        "nvidia",
        "NVIDIA H100 80GB HBM3",
    );
    h100.mig_devices = (0..3)
        .map(|i| MigDevice {
            index: i,
            uuid: Some(format!("MIG-{i}")),
            gpu_instance_id: Some(i + 1),
            compute_instance_id: Some(0),
            profile: Some("2g.20gb".into()),
            memory_used_bytes: Some(1 << 29),
            memory_total_bytes: Some(20 << 30),
            multiprocessors: Some(32),
            processes: vec![],
            // Pod attribution's labels on one instance (`container`, `namespace`, `pod`).
            pods: (i == 0)
                .then(|| PodRef {
                    namespace: "ml".into(),
                    name: "train-0".into(),
                    container: "trainer".into(),
                })
                .into_iter()
                .collect(),
        })
        .collect();
    h100.profiling = Some(ProfilingStats {
        graphics_engine_active: Some(0.5),
        sm_active: Some(0.4),
        sm_occupancy: Some(0.3),
        tensor_active: Some(0.2),
        dram_active: Some(0.1),
        fp64_active: Some(0.0),
        fp32_active: Some(0.05),
        fp16_active: Some(0.15),
        pcie_tx_bytes_per_sec: Some(1e9),
        pcie_rx_bytes_per_sec: Some(2e9),
        nvlink_tx_bytes_per_sec: Some(3e9),
        nvlink_rx_bytes_per_sec: Some(4e9),
    });
    let mut lost = full(
        "nvidia1",
        1,
        AcceleratorKind::Gpu,
        "nvidia",
        "NVIDIA H100 80GB HBM3",
    );
    lost.error = Some("GPU is lost".into());
    let power = |source: &str, watts| PowerReading {
        source: source.into(),
        watts,
    };
    Snapshot {
        node_id: "promtool-accel".into(),
        hostname: "gpu-host".into(),
        timestamp_ms: 1_700_000_000_000,
        sequence: 1,
        accelerators: vec![
            h100,
            lost,
            full(
                "amd0",
                0,
                AcceleratorKind::Gpu,
                "amd",
                "AMD Instinct MI300X",
            ),
            full("npu0", 0, AcceleratorKind::Npu, "intel", "Intel NPU"),
            full("tpu0", 0, AcceleratorKind::Tpu, "google", "TPU v5e"),
            full("apple0", 0, AcceleratorKind::Gpu, "apple", "Apple M3 Max"),
        ],
        power: vec![
            power("cpu_ecluster", 0.5),
            power("cpu_pcluster", 4.25),
            power("dram", 1.0),
            power("package", 12.0),
        ],
        ..Snapshot::default()
    }
}

#[test]
fn metrics_of_every_accelerator_kind_pass_promtool() {
    if !promtool_available() {
        return;
    }
    let snapshot = accelerator_snapshot();
    let text = encode(&snapshot, Format::Text);
    for family in [
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_PROF_NVLINK_RX_BYTES",
        "GPU_I_PROFILE",
        "system_monitor_accelerator_energy_joules_total",
        "system_monitor_accelerator_up",
        "system_monitor_power_watts",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    check_text(&text, "the accelerator snapshot");
    check_openmetrics(
        &encode(&snapshot, Format::OpenMetrics),
        "the accelerator snapshot",
    );
}

#[test]
fn lint_allowance_is_narrow() {
    assert!(allowed_lint(
        "node_memory_MemTotal_bytes metric names should be written in 'snake_case' not 'camelCase'"
    ));
    assert!(!allowed_lint(
        "node_cpu_seconds_total counter metrics should have \"_total\" suffix"
    ));
    assert!(!allowed_lint(
        "system_monitor_fooBar metric names should be written in 'snake_case' not 'camelCase'"
    ));
    assert!(allowed_lint(
        "node_netstat_TcpExt_ListenDrops metric names should be written in 'snake_case' not 'camelCase'"
    ));
    assert!(!allowed_lint("node_memory_MemTotal_bytes no help text"));
    assert!(allowed_lint(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter metrics should have \"_total\" suffix"
    ));
    assert!(!allowed_lint(
        "system_monitor_accelerator_energy_joules counter metrics should have \"_total\" suffix"
    ));
}
