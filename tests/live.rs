//! Live-machine invariants: the real binary on this host, its REST answers checked against
//! relations (percentages in range, used ≤ total, counters that only grow) and against an
//! independent reading of the same kernel sources.

mod common;

use std::time::Duration;

use common::Monitor;
use serde_json::Value;

fn meminfo_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

fn percent(v: &Value) -> f64 {
    let p = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((0.0..=100.0).contains(&p), "percentage out of range: {p}");
    p
}

async fn element(monitor: &Monitor) -> Value {
    let reply = monitor.get("/api/system/metrics").await;
    assert_eq!(reply.status, 200);
    let array = reply.json();
    assert_eq!(array.as_array().map(Vec::len), Some(1));
    array[0].clone()
}

#[tokio::test(flavor = "current_thread")]
async fn live_metrics_agree_with_the_kernel() {
    if !std::path::Path::new("/proc/meminfo").exists() {
        return; // Not Linux with procfs.
    }
    let monitor = Monitor::start(&["--interval", "250ms", "--node-id", "live"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let first = element(&monitor).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = element(&monitor).await;

    assert!(second["timestamp"].as_i64() > first["timestamp"].as_i64());
    for m in [&first, &second] {
        // CPU: one entry per logical CPU the kernel lists, each within range.
        let cpus = std::fs::read_to_string("/proc/stat")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        let cores = m["cpu"]["cores"].as_array().unwrap();
        assert_eq!(cores.len(), cpus);
        percent(&m["cpu"]["overall"]);
        cores.iter().for_each(|c| {
            percent(&c["usage"]);
        });
        assert_eq!(m["cpu"]["loadAverage"].as_array().unwrap().len(), 3);
        let processes = m["cpu"]["processes"].as_u64().unwrap();
        let threads = m["cpu"]["threads"].as_u64().unwrap();
        assert!(
            processes > 0 && threads >= processes,
            "{processes} {threads}"
        );

        // Memory: MemTotal exactly; used = total − available within what moves in a second.
        let total = meminfo_kib("MemTotal") * 1024;
        assert_eq!(m["memory"]["total"].as_u64(), Some(total));
        let used = m["memory"]["used"].as_u64().unwrap();
        let now_used = total - meminfo_kib("MemAvailable") * 1024;
        assert!(used <= total);
        assert!(used.abs_diff(now_used) < total / 10, "{used} vs {now_used}");
        percent(&m["memory"]["usage"]);
        let swap = &m["memory"]["swap"];
        assert_eq!(
            swap["total"].as_u64(),
            Some(meminfo_kib("SwapTotal") * 1024)
        );
        assert!(swap["used"].as_u64() <= swap["total"].as_u64());
        // Page cache: Cached + SReclaimable, within what moves in a second.
        let cached = m["memory"]["cached"].as_u64().unwrap();
        let now_cached = (meminfo_kib("Cached") + meminfo_kib("SReclaimable")) * 1024;
        assert!(cached <= total);
        assert!(
            cached.abs_diff(now_cached) < total / 10,
            "{cached} vs {now_cached}"
        );

        // Disk: used ≤ total; rates are non-negative.
        assert!(m["disk"]["used"].as_u64() <= m["disk"]["total"].as_u64());
        percent(&m["disk"]["usage"]);
        for key in ["ioRead", "ioWrite", "iops"] {
            assert!(m["disk"][key].as_f64().unwrap() >= 0.0, "{key}");
        }
        for key in ["bytesIn", "bytesOut", "packetsIn", "packetsOut"] {
            assert!(m["network"][key].as_f64().unwrap() >= 0.0, "{key}");
        }
        assert!(m["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true));
    }
    // The filesystem totals equal the sum of the counted mounts.
    let mounts = second["filesystems"].as_array().unwrap();
    let counted: u64 = mounts
        .iter()
        .filter(|f| f["countedInTotal"] == true)
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    assert_eq!(second["disk"]["total"].as_u64(), Some(counted));

    // /metrics keeps raw counters: node_cpu_seconds_total only grows between two scrapes.
    let scrape = |text: String| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("node_cpu_seconds_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = scrape(monitor.get("/metrics").await.body);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = scrape(monitor.get("/metrics").await.body);
    assert!(before > 0.0 && after >= before, "{before} → {after}");
}
