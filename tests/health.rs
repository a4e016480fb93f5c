//! `/api/health` tells the truth about the collectors, end to end: the binary on a fixture tree
//! with parts of it missing or broken, and the log saying so once.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{fixture_dir, Monitor};

/// How long a condition may take on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// `--path.*` flags: procfs `proc`, and the `server` fixture's sysfs and rootfs.
fn args_with_procfs(proc: &Path) -> Vec<String> {
    let server = fixture_dir("server");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    vec![
        "--path.procfs".into(),
        path(proc),
        "--path.sysfs".into(),
        path(&server.join("sys")),
        "--path.rootfs".into(),
        path(&server.join("root")),
        "--interval".into(),
        "200ms".into(),
    ]
}

/// Waits until the monitor has published `n` more samples (distinct `timestamp`s of
/// `/api/system/metrics`) than when called.
async fn wait_samples(monitor: &Monitor, n: usize) {
    let until = Instant::now() + DEADLINE;
    let mut seen = BTreeSet::new();
    while seen.len() <= n {
        let reply = monitor.get("/api/system/metrics").await;
        let element = &reply.json()[0];
        if let Some(timestamp) = element["timestamp"].as_i64() {
            seen.insert(timestamp);
        }
        assert!(
            Instant::now() < until,
            "fewer than {n} new samples within {DEADLINE:?}\nstderr:\n{}",
            monitor.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The log lines containing `text`.
fn lines_with(stderr: &str, text: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn an_empty_procfs_is_unhealthy_naming_each_contract_collector_and_logged_once() {
    let empty = tempfile::tempdir().unwrap();
    let monitor = Monitor::start(&args_with_procfs(empty.path()));
    let reply = monitor.get("/api/health").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "unhealthy");
    let failing: Vec<&str> = body["failing"]
        .as_array()
        .unwrap_or_else(|| panic!("no failing list: {body}"))
        .iter()
        .map(|f| f["collector"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        failing,
        ["cpu", "memory", "diskstats", "filesystem", "network"],
        "{body}"
    );
    let proc = empty.path().display();
    let memory = body["failing"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["collector"] == "memory"))
        .cloned()
        .unwrap_or(Value::Null);
    let error = memory["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "reading {proc}/meminfo: No such file or directory"
        )),
        "{body}"
    );
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("collectors cpu, memory, diskstats, filesystem, network failed"),
        "{reason}"
    );
    // node_exporter's kernel collectors that read procfs fail too, but carry no contract field
    // (conntrack and udp_queues report no data, which is not a failure).
    let degraded: Vec<&str> = body["degraded"]
        .as_array()
        .unwrap_or_else(|| panic!("no degraded list: {body}"))
        .iter()
        .map(|f| f["collector"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        degraded,
        ["uname", "vmstat", "filefd", "entropy", "netstat", "softnet", "arp"],
        "{body}"
    );

    // Several samples later, each failure has been logged exactly once, as a warning.
    wait_samples(&monitor, 3).await;
    let stderr = monitor.stderr();
    for collector in failing {
        let lines = lines_with(&stderr, &format!("collector {collector} failed: "));
        assert_eq!(lines.len(), 1, "{collector}:\n{stderr}");
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
    assert!(lines_with(&stderr, "recovered").is_empty(), "{stderr}");
}

/// A procfs that is the `server` fixture's but for `pressure/`, which holds `files`.
fn procfs_with_pressure(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    std::fs::create_dir(&proc).unwrap();
    for entry in std::fs::read_dir(fixture_dir("server").join("proc")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "pressure" {
            std::os::unix::fs::symlink(entry.path(), proc.join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir(proc.join("pressure")).unwrap();
    for (name, text) in files {
        std::fs::write(proc.join("pressure").join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn a_failed_collector_outside_the_contract_is_healthy_and_listed_as_degraded() {
    let tree = procfs_with_pressure(&[("cpu", "not pressure at all\n")]);
    let monitor = Monitor::start(&args_with_procfs(&tree.path().join("proc")));
    let reply = monitor.get("/api/health").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["failing"], json!([]), "{body}");
    let degraded = body["degraded"]
        .as_array()
        .unwrap_or_else(|| panic!("no degraded list: {body}"));
    assert_eq!(degraded.len(), 1, "{body}");
    assert_eq!(degraded[0]["collector"], "pressure");
    let error = degraded[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "parsing {}",
            tree.path().join("proc/pressure/cpu").display()
        )),
        "{error}"
    );
    assert!(body.get("reason").is_none(), "{body}");
    // The contract is whole.
    let element = &monitor.get("/api/system/metrics").await.json()[0];
    assert!(
        element["memory"]["total"].as_f64().unwrap_or(0.0) > 0.0,
        "{element}"
    );

    wait_samples(&monitor, 3).await;
    let stderr = monitor.stderr();
    assert_eq!(
        lines_with(&stderr, "collector pressure failed").len(),
        1,
        "{stderr}"
    );

    // Mended, it recovers: once in the log, and off the list.
    let good = std::fs::read_to_string(fixture_dir("server").join("proc/pressure/cpu")).unwrap();
    std::fs::write(tree.path().join("proc/pressure/cpu"), good).unwrap();
    let until = Instant::now() + DEADLINE;
    loop {
        let body = monitor.get("/api/health").await.json();
        if body["degraded"] == json!([]) {
            break;
        }
        assert!(Instant::now() < until, "still degraded: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_samples(&monitor, 2).await;
    let stderr = monitor.stderr();
    let recovered = lines_with(&stderr, "collector pressure recovered after ");
    assert_eq!(recovered.len(), 1, "{stderr}");
    assert!(recovered[0].contains("INFO"), "{}", recovered[0]);
}
