//! DCGM profiling against the fake DCGM library (`fakes/dcgm`), through the real loading and FFI
//! code: in this process (a collector filling a snapshot that holds NVIDIA accelerators, as the
//! `nvidia` collector would leave it) and through the real binary (missing library, host engine
//! address, unsupported profiling, REST still serving).
//!
//! Each in-process test loads its own copy of the fake (a new file is a new instance with its
//! own state) and points it at its own configuration through the fake's `fakeDcgmConfigure`, so
//! tests running in parallel threads do not share a DCGM.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::fakes::fake_library;
use common::{Monitor, BIN};
use system_monitor::collect::accel::dcgm::{
    Connection, DcgmCollector, DcgmError, HostEngineAddress, Options,
};
use system_monitor::collect::Collector;
use system_monitor::model::{Accelerator, ProfilingStats, Snapshot};

/// One private instance of the fake DCGM with its configuration and call record.
struct Fake {
    /// Holds the library copy, the configuration and the record.
    dir: tempfile::TempDir,
    /// The copy of the fake that this test loads.
    library: PathBuf,
    /// Keeps the configured instance loaded while the collector opens it by path.
    _configured: libloading::Library,
}

impl Fake {
    /// A fresh instance configured with `config` (plus a `record` line).
    fn new(config: &str) -> Fake {
        let dir = tempfile::tempdir().expect("temporary directory");
        let library = dir.path().join("libdcgm_fake.so");
        std::fs::copy(fake_library("fake_dcgm"), &library).expect("copy the fake DCGM");
        // SAFETY: the fake DCGM has no initialisers with preconditions.
        let configured = unsafe { libloading::Library::new(&library) }.expect("load the fake");
        let fake = Fake {
            dir,
            library,
            _configured: configured,
        };
        fake.configure(config);
        let path = std::ffi::CString::new(fake.config_path().to_string_lossy().into_owned())
            .expect("path without NUL");
        // SAFETY: `fakeDcgmConfigure(const char *)` as the fake exports it; the fake copies the
        // string during the call.
        unsafe {
            let set: libloading::Symbol<unsafe extern "C" fn(*const std::ffi::c_char)> = fake
                ._configured
                .get(b"fakeDcgmConfigure\0")
                .expect("fakeDcgmConfigure");
            set(path.as_ptr());
        }
        fake
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("fake_dcgm.conf")
    }

    fn record_path(&self) -> PathBuf {
        self.dir.path().join("record")
    }

    /// A path in this fake's directory (e.g. the `fail_file`).
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rewrites the configuration; read again at the next `dcgmInit`.
    fn configure(&self, config: &str) {
        let text = format!("{config}\nrecord={}\n", self.record_path().display());
        std::fs::write(self.config_path(), text).expect("write the fake's configuration");
    }

    /// The calls the fake recorded, one per line.
    fn record(&self) -> Vec<String> {
        std::fs::read_to_string(self.record_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Options for a collector on this fake, with a short backoff.
    fn options(&self, connection: Connection) -> Options {
        Options {
            library: Some(self.library.clone()),
            connection,
            update_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            backoff_first: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
        }
    }

    fn start(&self) -> DcgmCollector {
        DcgmCollector::start(self.options(Connection::Embedded))
            .unwrap_or_else(|e| panic!("DCGM did not start: {e}\nrecord: {:#?}", self.record()))
    }
}

/// The fake's default UUID of GPU `id`.
fn uuid(id: u32) -> String {
    format!("GPU-00000000-0000-0000-0000-{id:012}")
}

fn nvidia(index: u32, uuid: Option<String>) -> Accelerator {
    Accelerator {
        id: format!("nvidia{index}"),
        index,
        vendor: "nvidia".into(),
        name: "NVIDIA H100 80GB HBM3".into(),
        uuid,
        utilization_percent: Some(42.0),
        ..Accelerator::default()
    }
}

/// A snapshot as the `nvidia` collector leaves it for `n` GPUs, plus an AMD GPU with index 0.
fn snapshot_with(n: u32) -> Snapshot {
    let mut accelerators: Vec<Accelerator> = (0..n).map(|i| nvidia(i, Some(uuid(i)))).collect();
    accelerators.push(Accelerator {
        id: "amd0".into(),
        index: 0,
        vendor: "amd".into(),
        ..Accelerator::default()
    });
    Snapshot {
        accelerators,
        ..Snapshot::default()
    }
}

/// What the fake reports for DCGM GPU `gpu` by default: ratios (gpu+1)/10 + (field-1000)/100,
/// bytes per second (gpu+1)·10⁶ + (field-1000)·10³.
fn expected(gpu: u32) -> ProfilingStats {
    let ratio = |field: u32| Some(f64::from(gpu + 1) / 10.0 + f64::from(field - 1000) / 100.0);
    let bytes = |field: u32| Some(f64::from(gpu + 1) * 1e6 + f64::from(field - 1000) * 1e3);
    ProfilingStats {
        graphics_engine_active: ratio(1001),
        sm_active: ratio(1002),
        sm_occupancy: ratio(1003),
        tensor_active: ratio(1004),
        dram_active: ratio(1005),
        fp64_active: ratio(1006),
        fp32_active: ratio(1007),
        fp16_active: ratio(1008),
        pcie_tx_bytes_per_sec: bytes(1009),
        pcie_rx_bytes_per_sec: bytes(1010),
        nvlink_tx_bytes_per_sec: bytes(1011),
        nvlink_rx_bytes_per_sec: bytes(1012),
    }
}

fn collect(collector: &mut DcgmCollector, snapshot: &mut Snapshot) -> Result<(), String> {
    collector.collect(snapshot).map_err(|e| e.to_string())
}

#[test]
fn embedded_profiling_fills_the_nvidia_devices_only() {
    let fake = Fake::new("gpus=2");
    let mut collector = fake.start();
    let mut snapshot = snapshot_with(2);
    collect(&mut collector, &mut snapshot).expect("a healthy DCGM reads");

    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
    assert_eq!(snapshot.accelerators[1].profiling, Some(expected(1)));
    // Spot check against literal numbers, so the formula above cannot drift with the fake's.
    let gpu0 = snapshot.accelerators[0]
        .profiling
        .clone()
        .unwrap_or_default();
    assert!((gpu0.sm_active.unwrap_or(0.0) - 0.12).abs() < 1e-9);
    assert_eq!(gpu0.pcie_rx_bytes_per_sec, Some(1_010_000.0));
    // Not NVIDIA: left alone, although its index is a DCGM GPU id.
    assert_eq!(snapshot.accelerators[2].profiling, None);
    // Nothing else touched.
    assert_eq!(snapshot.accelerators[0].utilization_percent, Some(42.0));

    let record = fake.record();
    assert!(
        record.contains(&"start_embedded mode=1 -> 0".to_string()),
        "{record:#?}"
    );
    assert!(
        record.iter().any(|l| l.starts_with("field_group_create 1 ")
            && l.ends_with(" fields=1001,1002,1003,1004,1005,1006,1007,1008,1009,1010,1011,1012")),
        "{record:#?}"
    );
    assert!(
        record.contains(
            &"watch field_group=1 freq_us=1000000 keep_age=0 keep_samples=2 -> 0".to_string()
        ),
        "{record:#?}"
    );

    // Dropping the collector ends DCGM: groups destroyed, engine stopped, library shut down.
    drop(collector);
    let record = fake.record();
    let tail: Vec<&str> = record
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "field_group_destroy 1",
            "field_group_destroy 2",
            "stop_embedded",
            "shutdown"
        ]
    );
}

#[test]
fn gpus_are_matched_by_uuid_not_position() {
    // DCGM's GPU 0 is NVML's second device and the other way round.
    let fake = Fake::new(&format!("gpus=2\nuuid.0={}\nuuid.1={}", uuid(1), uuid(0)));
    let mut collector = fake.start();
    let mut snapshot = snapshot_with(2);
    snapshot
        .accelerators
        .push(nvidia(5, Some("GPU-not-in-dcgm".into())));
    collect(&mut collector, &mut snapshot).expect("reads");
    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(1)));
    assert_eq!(snapshot.accelerators[1].profiling, Some(expected(0)));
    assert_eq!(snapshot.accelerators[3].profiling, None);
}

#[test]
fn without_uuids_gpus_are_matched_by_index() {
    let fake = Fake::new("gpus=2\nuuids=blank");
    let mut collector = fake.start();
    let mut snapshot = snapshot_with(2);
    snapshot.accelerators[1].uuid = None;
    collect(&mut collector, &mut snapshot).expect("reads");
    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
    assert_eq!(snapshot.accelerators[1].profiling, Some(expected(1)));
}

#[test]
fn blank_values_and_bad_statuses_are_none() {
    // 1004 and 1011 blank (FP64 and INT64 markers), 1005 with DCGM_ST_NOT_WATCHED.
    let fake = Fake::new("gpus=1\nblank=1004,1011\nstatus.1005=-16");
    let mut collector = fake.start();
    let mut snapshot = snapshot_with(1);
    collect(&mut collector, &mut snapshot).expect("blank values are not an error");
    let got = snapshot.accelerators[0].profiling.clone();
    let want = ProfilingStats {
        tensor_active: None,
        nvlink_tx_bytes_per_sec: None,
        dram_active: None,
        ..expected(0)
    };
    assert_eq!(got, Some(want));
}

#[test]
fn a_lost_gpu_empties_only_its_own_fields() {
    let fake = Fake::new("gpus=2\nlost_gpu=1");
    let mut collector = fake.start();
    for _ in 0..2 {
        let mut snapshot = snapshot_with(2);
        let error = collect(&mut collector, &mut snapshot).expect_err("GPU 1 fails");
        assert!(
            error.contains("GPU 1") && error.contains("DCGM_ST_GPU_IS_LOST (-18)"),
            "{error}"
        );
        assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
        assert_eq!(snapshot.accelerators[1].profiling, None);
    }
    // The session is kept: one GPU failing is not a lost connection.
    let inits = fake
        .record()
        .iter()
        .filter(|l| l.starts_with("init"))
        .count();
    assert_eq!(inits, 1);
}

#[test]
fn a_failure_mid_run_empties_the_fields_then_reconnects() {
    let fake = Fake::new("");
    let fail = fake.path("fail");
    fake.configure(&format!("gpus=2\nfail_file={}", fail.display()));
    // A backoff long enough that the sample right after the failure comes within it even on a
    // loaded machine.
    let mut options = fake.options(Connection::Embedded);
    options.backoff_first = Duration::from_millis(500);
    options.backoff_max = Duration::from_secs(1);
    let mut collector = DcgmCollector::start(options).expect("starts");

    let mut snapshot = snapshot_with(2);
    collect(&mut collector, &mut snapshot).expect("healthy at first");
    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));

    // DCGM goes away (the fake answers DCGM_ST_CONNECTION_NOT_VALID while the file exists).
    std::fs::write(&fail, "").expect("create the fail file");
    let mut snapshot = snapshot_with(2);
    let error = collect(&mut collector, &mut snapshot).expect_err("DCGM is gone");
    assert!(
        error.contains("DCGM_ST_CONNECTION_NOT_VALID (-21)"),
        "{error}"
    );
    assert!(snapshot.accelerators.iter().all(|a| a.profiling.is_none()));
    assert_eq!(snapshot.accelerators[0].utilization_percent, Some(42.0));
    // The broken session was ended before anything else.
    let record = fake.record();
    let tail: Vec<&str> = record
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["stop_embedded", "shutdown"], "{record:#?}");

    // Within the backoff nothing is attempted.
    let before = fake.record().len();
    let mut snapshot = snapshot_with(2);
    let error = collect(&mut collector, &mut snapshot).expect_err("still waiting");
    assert!(error.contains("next attempt"), "{error}");
    assert_eq!(fake.record().len(), before);

    // After the backoff it tries, fails again, and waits longer (1 s).
    std::thread::sleep(Duration::from_millis(600));
    let mut snapshot = snapshot_with(2);
    collect(&mut collector, &mut snapshot).expect_err("still failing");
    assert!(snapshot.accelerators.iter().all(|a| a.profiling.is_none()));
    let record = fake.record();
    assert!(
        record[before..].contains(&"start_embedded mode=1 -> -21".to_string()),
        "{record:#?}"
    );

    // DCGM is back: the next attempt after the backoff reconnects and values return.
    std::fs::remove_file(&fail).expect("remove the fail file");
    std::thread::sleep(Duration::from_millis(1100));
    let mut snapshot = snapshot_with(2);
    collect(&mut collector, &mut snapshot).expect("reconnected");
    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
    assert_eq!(snapshot.accelerators[1].profiling, Some(expected(1)));
    let starts = fake
        .record()
        .iter()
        .filter(|l| l.as_str() == "start_embedded mode=1 -> 0")
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn host_engine_addresses_reach_dcgm_connect() {
    for (flag, line) in [
        (
            "unix:/run/nvidia-dcgm.sock",
            "connect address=/run/nvidia-dcgm.sock unix=1 timeout_ms=1000 persist=0 -> 0",
        ),
        (
            "10.1.2.3:5555",
            "connect address=10.1.2.3:5555 unix=0 timeout_ms=1000 persist=0 -> 0",
        ),
    ] {
        let fake = Fake::new("gpus=1");
        let address = HostEngineAddress::parse(flag).expect("valid address");
        let mut collector =
            DcgmCollector::start(fake.options(Connection::HostEngine(address))).expect("connects");
        let mut snapshot = snapshot_with(1);
        collect(&mut collector, &mut snapshot).expect("reads");
        assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
        drop(collector);
        let record = fake.record();
        assert!(record.contains(&line.to_string()), "{record:#?}");
        assert_eq!(
            record.iter().rev().nth(1).map(String::as_str),
            Some("disconnect")
        );
        assert_eq!(record.last().map(String::as_str), Some("shutdown"));
    }
}

#[test]
fn an_unreachable_host_engine_is_retried() {
    let fake = Fake::new("gpus=1\nconnect_error=-21");
    let address = HostEngineAddress::parse("/run/nvidia-dcgm.sock").expect("valid address");
    let mut collector = DcgmCollector::start(fake.options(Connection::HostEngine(address)))
        .expect("an unreachable host engine still gives a collector");
    let mut snapshot = snapshot_with(1);
    let error = collect(&mut collector, &mut snapshot).expect_err("not connected");
    assert!(error.contains("DCGM_ST_CONNECTION_NOT_VALID"), "{error}");
    assert_eq!(snapshot.accelerators[0].profiling, None);

    fake.configure("gpus=1");
    std::thread::sleep(Duration::from_millis(80));
    let mut snapshot = snapshot_with(1);
    collect(&mut collector, &mut snapshot).expect("connected once the host engine answers");
    assert_eq!(snapshot.accelerators[0].profiling, Some(expected(0)));
}

#[test]
fn start_failures_carry_the_call_and_code() {
    let code_of = |config: &str| {
        let fake = Fake::new(config);
        let error = DcgmCollector::start(fake.options(Connection::Embedded))
            .err()
            .expect("start fails");
        (error.to_string(), error.code(), fake.record())
    };
    let (text, code, _) = code_of("init_error=-7");
    assert_eq!(code, Some(-7));
    assert_eq!(text, "dcgmInit failed: DCGM_ST_INIT_ERROR (-7)");

    let (text, code, record) = code_of("connect_error=-6");
    assert_eq!(code, Some(-6));
    assert!(text.starts_with("dcgmStartEmbedded failed"), "{text}");
    assert_eq!(record.last().map(String::as_str), Some("shutdown"));

    // Profiling not supported: DCGM is shut down again, nothing left behind.
    let (text, code, record) = code_of("watch_error=-36");
    assert_eq!(code, Some(-36));
    assert_eq!(
        text,
        "dcgmWatchFields failed: DCGM_ST_PROFILING_NOT_SUPPORTED (-36)"
    );
    let tail: Vec<&str> = record
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["field_group_destroy 1", "stop_embedded", "shutdown"]);
}

#[test]
fn a_missing_library_or_symbol_is_a_typed_error() {
    let mut options = Fake::new("").options(Connection::Embedded);
    options.library = Some(PathBuf::from("/nonexistent/libdcgm.so.4"));
    let error = DcgmCollector::start(options.clone())
        .err()
        .expect("no library");
    assert!(matches!(error, DcgmError::Load { .. }), "{error}");
    assert!(
        error.to_string().contains("/nonexistent/libdcgm.so.4"),
        "{error}"
    );

    // A shared library that is not DCGM.
    options.library = Some(fake_library("fake_nvml"));
    let error = DcgmCollector::start(options).err().expect("not DCGM");
    assert!(
        matches!(
            error,
            DcgmError::Symbol {
                symbol: "dcgmInit",
                ..
            }
        ),
        "{error}"
    );
}

// ---- The real binary ----

/// The lines of `stderr` that mention DCGM.
fn dcgm_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("dcgm"))
        .map(str::to_string)
        .collect()
}

/// With DCGM working, its only line is the info one saying profiling is on (the default level
/// is info: a start says what it found); no warning.
fn assert_profiling_on_and_nothing_else(stderr: &str) {
    let lines = dcgm_lines(stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(" INFO "), "{}", lines[0]);
    assert!(lines[0].contains("DCGM profiling on ("), "{}", lines[0]);
}

async fn assert_serving(monitor: &Monitor) {
    let health = monitor.get("/api/health").await;
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "healthy");
    let metrics = monitor.get("/api/system/metrics").await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(metrics.json().as_array().is_some_and(|a| a.len() == 1));
    let prometheus = monitor.get("/metrics").await;
    assert_eq!(prometheus.status, 200);
}

#[tokio::test]
async fn a_missing_library_is_one_warning_and_the_rest_works() {
    for verbose in [false, true] {
        let mut args = vec![
            "--enable-dcgm-profiling",
            "--dcgm-library",
            "/nonexistent/libdcgm.so.4",
            "--interval",
            "0.5",
        ];
        if verbose {
            args.push("-v");
        }
        let monitor = Monitor::start(&args);
        assert_serving(&monitor).await;
        // A few samples later, still one line: nothing is logged per sample.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_serving(&monitor).await;
        let stderr = monitor.stderr();
        let lines = dcgm_lines(&stderr);
        assert_eq!(lines.len(), 1, "verbose={verbose}:\n{stderr}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
        assert!(
            lines[0].contains("/nonexistent/libdcgm.so.4"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("--dcgm-library"), "{}", lines[0]);
    }
}

#[tokio::test]
async fn rest_serves_with_the_fake_dcgm_loaded() {
    let fake = fake_library("fake_dcgm");
    let fake = fake.to_string_lossy();
    let monitor = Monitor::start(&["--enable-dcgm-profiling", "--dcgm-library", fake.as_ref()]);
    assert_serving(&monitor).await;
    let stderr = monitor.stderr();
    assert_profiling_on_and_nothing_else(&stderr);
}

/// `system_monitor snapshot` with `args`, the fake DCGM configured by `config`; returns the
/// snapshot JSON, stderr and the fake's record.
fn snapshot_command(config: &str, args: &[&str]) -> (serde_json::Value, String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let record = dir.path().join("record");
    let config_path = dir.path().join("fake_dcgm.conf");
    std::fs::write(
        &config_path,
        format!("{config}\nrecord={}\n", record.display()),
    )
    .expect("write the configuration");
    let output = Command::new(BIN)
        .args(["snapshot", "--format", "model"])
        .args([
            "--enable-dcgm-profiling",
            "--interval",
            "0.1",
            "--dcgm-library",
        ])
        .arg(fake_library("fake_dcgm"))
        .args(args)
        .env("FAKE_DCGM_CONFIG", &config_path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the snapshot command");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("snapshot is not JSON ({e}); stderr:\n{stderr}"));
    (json, stderr, read_lines(&record))
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn dcgm_status(snapshot: &serde_json::Value) -> Option<serde_json::Value> {
    snapshot["collectors"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == "dcgm")
        .cloned()
}

#[test]
fn the_dcgm_address_flag_reaches_the_host_engine_connection() {
    let socket = "/tmp/system-monitor-test/nv-hostengine.sock";
    let (snapshot, stderr, record) =
        snapshot_command("gpus=2", &["--dcgm-address", &format!("unix:{socket}")]);
    let status = dcgm_status(&snapshot).unwrap_or_else(|| panic!("no dcgm status: {snapshot}"));
    assert_eq!(status["ok"], true, "{status}");
    assert_profiling_on_and_nothing_else(&stderr);
    let connect = format!("connect address={socket} unix=1 timeout_ms=1000 persist=0 -> 0");
    assert!(record.contains(&connect), "{record:#?}");
    // The monitor ends the connection when it exits.
    let tail: Vec<&str> = record
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["disconnect", "shutdown"], "{record:#?}");

    let (_, _, record) = snapshot_command("gpus=1", &["--dcgm-address", "127.0.0.1:5555"]);
    assert!(
        record.contains(
            &"connect address=127.0.0.1:5555 unix=0 timeout_ms=1000 persist=0 -> 0".to_string()
        ),
        "{record:#?}"
    );

    let (_, _, record) = snapshot_command("gpus=1", &[]);
    assert!(
        record.contains(&"start_embedded mode=1 -> 0".to_string()),
        "{record:#?}"
    );
}

#[test]
fn unsupported_profiling_is_one_warning_and_no_collector() {
    let (snapshot, stderr, record) = snapshot_command("watch_error=-36", &[]);
    let lines = dcgm_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("DCGM_ST_PROFILING_NOT_SUPPORTED (-36)"),
        "{}",
        lines[0]
    );
    assert_eq!(dcgm_status(&snapshot), None);
    assert_eq!(record.last().map(String::as_str), Some("shutdown"));
    assert!(snapshot["cpu"].is_object(), "the rest is sampled");
}

#[test]
fn an_unreachable_host_engine_is_one_warning_and_an_error_status() {
    let (snapshot, stderr, _) =
        snapshot_command("connect_error=-21", &["--dcgm-address", "127.0.0.1:5555"]);
    let lines = dcgm_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("127.0.0.1:5555"), "{}", lines[0]);
    let status = dcgm_status(&snapshot).unwrap_or_else(|| panic!("no dcgm status: {snapshot}"));
    assert_eq!(status["ok"], false);
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("DCGM_ST_CONNECTION_NOT_VALID")),
        "{status}"
    );
}
