//! The real binary on the `accel/workstation` fixture (two AMD GPUs and an Intel NPU in its
//! sysfs; its proc and root are the `server` fixture's): the REST accelerators, the
//! `system_monitor_accelerator_*` series on `/metrics`, and the full model in `snapshot`. The
//! expected values are read from the fixture's files, so the tree and the tests cannot drift.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{fixture_args, fixture_dir, Monitor, BIN};

const FIXTURE: &str = "accel/workstation";

/// A number from a file of the fixture's sysfs (relative to `sys/`).
fn sys_number(relative: &str) -> f64 {
    let path: PathBuf = fixture_dir(FIXTURE).join("sys").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path:?} is not a number: {e}"))
}

/// The RX 7900 XTX's device directory and hwmon chip.
const NAVI: &str = "class/drm/card1/device";
const NAVI_HWMON: &str = "class/drm/card1/device/hwmon/hwmon3";
/// The MI210's.
const MI210: &str = "class/drm/card2/device";
const MI210_HWMON: &str = "class/drm/card2/device/hwmon/hwmon4";
/// The NPU's.
const NPU: &str = "class/accel/accel0/device";

fn file(dir: &str, name: &str) -> f64 {
    sys_number(&format!("{dir}/{name}"))
}

/// The accelerators of the REST metrics, once a second sample (the NPU's first utilization)
/// is in.
async fn rest_accelerators(monitor: &Monitor) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = monitor.get("/api/system/metrics").await.json();
        let accelerators = metrics[0]["accelerators"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let npu_ready = accelerators
            .iter()
            .any(|a| a["id"] == "npu0" && a["utilization"].is_number());
        if npu_ready || Instant::now() > until {
            return accelerators;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn rest_reports_the_amd_gpus_and_the_npu() {
    let monitor = Monitor::on_fixture(FIXTURE, &["--interval", "200ms"]);
    let accelerators = rest_accelerators(&monitor).await;
    let ids: Vec<&str> = accelerators
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["amd1", "amd2", "npu0"], "{}", monitor.stderr());

    let navi = &accelerators[0];
    assert_eq!(navi["type"], "gpu");
    assert_eq!(navi["vendor"], "amd");
    assert_eq!(navi["name"], "AMD GPU 0x744c");
    assert_eq!(navi["pciBusId"], "0000:03:00.0");
    assert_eq!(navi["utilization"], file(NAVI, "gpu_busy_percent"));
    assert_eq!(
        navi["memory"]["used"],
        file(NAVI, "mem_info_vram_used") as u64
    );
    assert_eq!(
        navi["memory"]["total"],
        file(NAVI, "mem_info_vram_total") as u64
    );
    assert_eq!(
        navi["temperature"],
        file(NAVI_HWMON, "temp1_input") / 1000.0
    );
    assert_eq!(navi["power"], file(NAVI_HWMON, "power1_input") / 1e6);
    assert_eq!(navi["powerLimit"], file(NAVI_HWMON, "power1_cap") / 1e6);
    assert_eq!(navi["fanSpeed"], file(NAVI_HWMON, "pwm1") / 255.0 * 100.0);
    assert_eq!(navi["smClock"], file(NAVI_HWMON, "freq1_input") / 1e6);
    assert_eq!(navi["memoryClock"], file(NAVI_HWMON, "freq2_input") / 1e6);

    let mi210 = &accelerators[1];
    assert_eq!(mi210["type"], "gpu");
    assert_eq!(mi210["name"], "Instinct MI210");
    assert_eq!(mi210["uuid"], "9d3f2a17c4e5b068");
    assert_eq!(mi210["utilization"], file(MI210, "gpu_busy_percent"));
    assert_eq!(mi210["power"], file(MI210_HWMON, "power1_average") / 1e6);
    assert_eq!(mi210["fanSpeed"], Value::Null);
    let (used, total) = (
        file(MI210, "mem_info_vram_used"),
        file(MI210, "mem_info_vram_total"),
    );
    let percentage = mi210["memory"]["percentage"].as_f64().unwrap();
    assert!(
        (percentage - used / total * 100.0).abs() < 1e-6,
        "{percentage}"
    );

    let npu = &accelerators[2];
    assert_eq!(npu["type"], "npu");
    assert_eq!(npu["vendor"], "intel");
    assert_eq!(npu["name"], "Intel NPU (Meteor Lake)");
    // The busy-time counter does not move in the fixture: idle.
    assert_eq!(npu["utilization"], 0.0);
    assert_eq!(
        npu["memory"]["used"],
        file(NPU, "npu_memory_utilization") as u64
    );
    assert_eq!(npu["memory"]["total"], Value::Null);
    assert_eq!(npu["smClock"], file(NPU, "npu_current_frequency_mhz"));

    // The collectors report themselves.
    let metrics = monitor.get("/api/system/metrics").await.json();
    let collectors = metrics[0]["collectors"].as_array().unwrap();
    for name in ["amd", "npu"] {
        let status = collectors.iter().find(|c| c["name"] == name);
        assert_eq!(status.map(|c| &c["ok"]), Some(&Value::Bool(true)), "{name}");
    }
}

#[tokio::test]
async fn metrics_has_accelerator_series_for_amd_and_npu() {
    let monitor = Monitor::on_fixture(FIXTURE, &[]);
    let text = monitor.get("/metrics").await.body;
    let series = |name: &str, id: &str| -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .find(|l| l.contains(&format!("accelerator=\"{id}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let utilization = "system_monitor_accelerator_utilization_percent";
    assert_eq!(
        series(utilization, "amd1"),
        Some(file(NAVI, "gpu_busy_percent"))
    );
    assert_eq!(
        series(utilization, "amd2"),
        Some(file(MI210, "gpu_busy_percent"))
    );
    assert_eq!(
        series("system_monitor_accelerator_memory_total_bytes", "amd2"),
        Some(file(MI210, "mem_info_vram_total"))
    );
    assert_eq!(
        series("system_monitor_accelerator_power_watts", "amd1"),
        Some(file(NAVI_HWMON, "power1_input") / 1e6)
    );
    assert_eq!(
        series("system_monitor_accelerator_temperature_celsius", "amd2"),
        Some(file(MI210_HWMON, "temp1_input") / 1000.0)
    );
    assert_eq!(
        series("system_monitor_accelerator_memory_used_bytes", "npu0"),
        Some(file(NPU, "npu_memory_utilization"))
    );
    let labels = text
        .lines()
        .find(|l| l.starts_with(utilization) && l.contains("\"amd1\""))
        .unwrap_or_default();
    assert!(
        labels.contains("vendor=\"amd\"") && labels.contains("type=\"gpu\""),
        "{labels}"
    );
    // Not under dcgm-exporter's names: those are NVIDIA's.
    assert!(!text.contains("DCGM_FI_DEV_GPU_UTIL{"), "{text}");
}

#[test]
fn snapshot_carries_the_full_model() {
    let output = Command::new(BIN)
        .args(["snapshot", "--format", "model"])
        .args(fixture_args(FIXTURE))
        .args(["--interval", "100ms"])
        .output()
        .expect("running snapshot");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let snapshot: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let accelerators = snapshot["accelerators"].as_array().expect("accelerators");
    assert_eq!(accelerators.len(), 3, "{accelerators:?}");

    let navi = &accelerators[0];
    assert_eq!(navi["kind"], "gpu");
    assert_eq!(navi["index"], 1);
    assert_eq!(
        navi["memory_utilization_percent"],
        file(NAVI, "mem_busy_percent")
    );
    assert_eq!(
        navi["memory_temperature_celsius"],
        file(NAVI_HWMON, "temp3_input") / 1000.0
    );
    assert_eq!(
        navi["graphics_clock_mhz"],
        file(NAVI_HWMON, "freq1_input") / 1e6
    );
    assert_eq!(navi["pcie_link_gen"], 4);
    assert_eq!(navi["pcie_link_width"], file(NAVI, "current_link_width"));
    assert_eq!(navi["info"]["vbios_version"], "113-D7020100-102");
    assert_eq!(navi["info"]["performance_level"], "auto");
    assert_eq!(navi["info"]["sclk_range"], "500Mhz - 2526Mhz");
    assert_eq!(navi["info"]["mclk_range"], "96Mhz - 1249Mhz");
    assert_eq!(
        navi["info"]["max_power_watts"],
        file(NAVI_HWMON, "power1_cap_max") / 1e6
    );

    let mi210 = &accelerators[1];
    assert_eq!(mi210["pci_bus_id"], "0000:41:00.0");
    assert_eq!(mi210["info"]["sku"], "102-D67302-00");
    assert_eq!(mi210["info"]["performance_level"], "perf_determinism");
    // No hwmon clock inputs on this board: the active DPM levels (`*`).
    assert_eq!(mi210["sm_clock_mhz"], 1700.0);
    assert_eq!(mi210["memory_clock_mhz"], 1600.0);
    assert_eq!(mi210["pcie_link_gen"], 3);
    // From the KFD topology node at the same PCI location, and the RAS counters.
    assert_eq!(mi210["info"]["architecture"], "gfx90a");
    assert_eq!(mi210["info"]["cores"], 104);
    assert_eq!(mi210["ecc_errors_corrected"], 3);
    assert_eq!(mi210["ecc_errors_uncorrected"], 1);

    let npu = &accelerators[2];
    assert_eq!(npu["kind"], "npu");
    assert_eq!(npu["id"], "npu0");
    assert_eq!(npu["info"]["architecture"], "Meteor Lake");
    assert_eq!(npu["pci_bus_id"], "0000:00:0b.0");
    assert_eq!(npu["utilization_percent"], 0.0);

    let statuses = snapshot["collectors"].as_array().unwrap();
    let ok = |name: &str| {
        statuses
            .iter()
            .any(|c| c["name"] == name && c["ok"] == true)
    };
    assert!(ok("amd") && ok("npu"), "{statuses:?}");
    // No TPU chip in this tree and the default runtime address: no TPU collector.
    assert!(!statuses.iter().any(|c| c["name"] == "tpu"), "{statuses:?}");
}
