//! Operator comforts on the real binary: flags from `SYSTEM_MONITOR_*` variables and a `--config`
//! file (flag > variable > file > default), `--log-format json`, `completions` and `man`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Monitor, BIN};

/// The node id `/api/health` reports.
async fn node_id(monitor: &Monitor) -> String {
    let health = monitor.get("/api/health").await.json();
    health["node_id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn variables_fill_what_flags_do_not_and_the_file_what_neither_does() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("system_monitor.toml");
    std::fs::write(
        &config,
        "node-id = \"file-node\"\ninterval = \"250ms\"\nlog-format = \"json\"\n",
    )
    .expect("config file");

    // The file alone.
    let monitor = Monitor::start_with_env(&["--config", config.to_str().unwrap()], &[]);
    assert_eq!(node_id(&monitor).await, "file-node");
    let health = monitor.get("/api/health").await.json();
    assert_eq!(health["interval_seconds"], 0.25, "{health}");
    drop(monitor);

    // A variable beats the file (and names the file itself).
    let monitor = Monitor::start_with_env::<&str>(
        &[],
        &[
            ("SYSTEM_MONITOR_CONFIG", config.as_path()),
            ("SYSTEM_MONITOR_NODE_ID", Path::new("env-node")),
        ],
    );
    assert_eq!(node_id(&monitor).await, "env-node");
    // The file's log format still applies: every line is a JSON object.
    let stderr = monitor.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{line}"
        );
        assert!(event["message"].is_string(), "{line}");
    }
    assert!(
        stderr.contains("\"message\":\"REST API at http://127.0.0.1:"),
        "{stderr}"
    );
    drop(monitor);

    // A flag beats both.
    let monitor = Monitor::start_with_env(
        &["--node-id", "flag-node"],
        &[
            ("SYSTEM_MONITOR_CONFIG", config.as_path()),
            ("SYSTEM_MONITOR_NODE_ID", Path::new("env-node")),
        ],
    );
    assert_eq!(node_id(&monitor).await, "flag-node");
}

#[test]
fn a_bad_variable_or_file_is_a_usage_error_saying_where_it_came_from() {
    let output = Command::new(BIN)
        .env("SYSTEM_MONITOR_INTERVAL", "soon")
        .output()
        .expect("running the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'soon' for '--interval"), "{stderr}");
    assert!(
        stderr.contains("from the environment: SYSTEM_MONITOR_INTERVAL"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "rest-api-prot = 9100\n").expect("config file");
    let output = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "system_monitor: error: config file {}: unknown key `rest-api-prot` (keys are the long \
             flags without `--`, e.g. `rest-api-port`; see `system_monitor --help`)",
            config.display()
        )
    );
}

#[test]
fn completions_and_the_manual_are_printed() {
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .output()
            .expect("running the binary");
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    assert!(run(&["completions", "bash"]).contains("--kubelet-pod-resources-socket"));
    assert!(run(&["completions", "fish"]).contains("log-format"));
    let page = run(&["man"]);
    assert!(
        page.starts_with(".ie") && page.contains(".TH system_monitor 1"),
        "{page}"
    );
    assert!(run(&["man", "coordinator"]).contains("system_monitor\\-coordinator"));
    let output = Command::new(BIN)
        .args(["man", "nope"])
        .output()
        .expect("running");
    assert_eq!(output.status.code(), Some(2));
    let output = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("running");
    assert_eq!(output.status.code(), Some(2));
}
