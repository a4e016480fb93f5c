//! Exec plugins end to end: the real binary with `--plugin.exec` running a good plugin, a
//! failing one, a hanging one and one that shadows a family of ours, and what `/metrics`,
//! `/api/system/metrics` (`custom`, `collectors`) and the sampling cadence show of them.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Monitor;

/// Writes an executable shell script `dir/name`; returns its path.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write a plugin script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

/// The element of `/api/system/metrics` once `ready` holds of it, at most 20 s.
async fn element_when(
    monitor: &Monitor,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = monitor.get("/api/system/metrics").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let element = reply.json()[0].clone();
        if ready(&element) || Instant::now() > deadline {
            return element;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `plugin:<name>` status of `element`.
fn status<'a>(element: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    element["collectors"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == format!("plugin:{name}"))
}

#[tokio::test]
async fn plugins_join_every_view_and_a_bad_one_affects_nothing_else() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let good = script(
        dir.path(),
        "queue.sh",
        "printf '# HELP queue_jobs Jobs waiting.\\n# TYPE queue_jobs gauge\\n\
         queue_jobs{queue=\"b\",host=\"x\"} 7\\nqueue_up 1\\n'\n",
    );
    let failing = script(dir.path(), "fail.sh", "echo 'no database' >&2\nexit 2\n");
    let hanging = script(dir.path(), "hang.sh", "sleep 1000\n");
    let shadow = script(
        dir.path(),
        "shadow.sh",
        "echo 'node_load1 99'\necho 'shadow_ok 1'\n",
    );
    let specs = [
        format!("queue={good}"),
        format!("fail={failing}"),
        format!("hang={hanging}"),
        format!("shadow={shadow}"),
    ];
    let mut args: Vec<&str> = vec![
        "--node-id",
        "plug-node",
        "--interval",
        "200ms",
        "--plugin.interval",
        "300ms",
        "--plugin.timeout",
        "1s",
    ];
    for spec in &specs {
        args.extend(["--plugin.exec", spec.as_str()]);
    }
    let monitor = Monitor::on_fixture("server", &args);

    let element = element_when(&monitor, |e| {
        e["custom"]["queue_up"] == 1.0
            && e["custom"]["shadow_ok"] == 1.0
            && status(e, "fail").is_some_and(|s| s["ok"] == false)
            && status(e, "hang").is_some_and(|s| s["ok"] == false)
    })
    .await;
    assert_eq!(
        element["custom"],
        serde_json::json!({
            "queue_jobs{host=\"x\",queue=\"b\"}": 7.0,
            "queue_up": 1.0,
            "shadow_ok": 1.0,
        }),
        "{element:#}"
    );
    let fail = status(&element, "fail").expect("fail status");
    assert!(
        fail["error"].as_str().unwrap().contains("no database"),
        "{fail}"
    );
    let hang = status(&element, "hang").expect("hang status");
    assert!(hang["error"].as_str().unwrap().contains("killed"), "{hang}");
    let shadowed = status(&element, "shadow").expect("shadow status");
    assert_eq!(shadowed["ok"], true);
    assert!(
        shadowed["error"].as_str().unwrap().contains("node_load1"),
        "{shadowed}"
    );

    let text = monitor.get("/metrics").await.body;
    assert!(
        text.contains(
            "# HELP queue_jobs Jobs waiting.\n# TYPE queue_jobs gauge\n\
             queue_jobs{node=\"plug-node\",host=\"x\",queue=\"b\"} 7\n"
        ),
        "{text}"
    );
    assert!(text.contains("system_monitor_plugin_success{node=\"plug-node\",plugin=\"queue\"} 1\n"));
    assert!(text.contains("system_monitor_plugin_success{node=\"plug-node\",plugin=\"fail\"} 0\n"));
    assert!(text.contains("system_monitor_plugin_success{node=\"plug-node\",plugin=\"hang\"} 0\n"));
    assert!(
        !text.contains("node_load1{node=\"plug-node\"} 99"),
        "shadowing family written"
    );

    // Sampling keeps its 200 ms cadence while a plugin hangs a whole second at a time: over
    // 2 s, samples keep arriving (a blocked sampler would leave gaps of a second or more).
    let mut last = element["timestamp"].as_i64().unwrap();
    let mut widest = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let now = monitor.get("/api/system/metrics").await.json()[0]["timestamp"]
            .as_i64()
            .unwrap();
        if now != last {
            widest = widest.max(now - last);
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        widest > 0 && widest < 900,
        "widest gap between samples {widest} ms"
    );

    let health = monitor.get("/api/health").await;
    assert_eq!(
        health.status, 200,
        "a failing plugin degrades, never fails health"
    );
}

#[test]
fn a_bad_plugin_flag_is_a_clear_usage_error() {
    for (flag, expected) in [
        ("1bad=true", "must be letters, digits and underscores"),
        ("noequals", "expected NAME=COMMAND"),
        ("empty=", "empty command"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_system_monitor"))
            .args(["--plugin.exec", flag])
            .output()
            .expect("run the binary");
        assert_eq!(output.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flag}: {stderr}");
    }
}
