//! `/metrics` checked by Prometheus' own tools: `promtool check metrics` lints the text format,
//! and `promtool tsdb create-blocks-from openmetrics` runs Prometheus' strict OpenMetrics parser
//! over the OpenMetrics format. Run on the fixture hosts and on this machine.
//!
//! promtool comes from Debian's `prometheus` package, which the README's test command installs.
//! Without it these tests fail, unless `SYSTEM_MONITOR_SKIP_PROMTOOL=1` says to skip them.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Monitor;

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

/// What `promtool check metrics` may say: node_exporter's own meminfo names and dcgm-exporter's
/// label names are not snake_case, and we keep them as they are for dashboard compatibility.
fn allowed_lint(line: &str) -> bool {
    let Some((name, message)) = line.split_once(' ') else {
        return false;
    };
    let inherited = name.starts_with("node_memory_") || name.starts_with("DCGM_FI_");
    inherited
        && (message == "metric names should be written in 'snake_case' not 'camelCase'"
            || message == "label names should be written in 'snake_case' not 'camelCase'")
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

async fn check_monitor(monitor: &Monitor, what: &str) {
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
    assert!(!allowed_lint("node_memory_MemTotal_bytes no help text"));
}
