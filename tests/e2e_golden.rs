//! End-to-end golden files: the real binary runs on a captured host tree
//! (`tests/fixtures/<name>`) with `--node-id golden-node`, and its `/api/system/metrics`,
//! `/api/system/info` and `/metrics` must equal `tests/golden/<name>/` once volatile values
//! (timestamps, durations, the version, statvfs figures of the fixture directories, the local IP)
//! are masked.
//!
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test --test e2e_golden` and
//! review the diff (see tests/golden/README.md).

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::Monitor;

/// What replaces a volatile value.
const MASK: &str = "<masked>";

/// Volatile fields of each `/api/system/metrics` element, as `a.b` and `list[].field` paths.
const METRICS_VOLATILE: &[&str] = &[
    "timestamp",
    // statvfs of the fixture's directories: the size of whatever disk holds this checkout.
    "disk.usage",
    "disk.used",
    "disk.total",
    "filesystems[].size",
    "filesystems[].used",
    "filesystems[].avail",
    "filesystems[].usage",
    "collectors[].durationSeconds",
];

/// Volatile fields of `/api/system/info`.
/// (`architecture` is the build target's, not the fixture's.)
const INFO_VOLATILE: &[&str] = &["version", "ip_address", "disk_total", "architecture"];

/// `/metrics` families whose values are volatile (the label sets are still compared); a name
/// ending in `*` stands for every family it begins.
const PROMETHEUS_VOLATILE: &[&str] = &[
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "system_monitor_collector_duration_seconds",
    "node_scrape_collector_duration_seconds",
    "system_monitor_sample_timestamp_seconds",
    // The clock now, and the kernel clock discipline's state (adjtimex: no file to fixture).
    "node_time_seconds",
    "node_timex_*",
    // The monitor's own process.
    "process_*",
];

/// Whether `name` is one of [`PROMETHEUS_VOLATILE`].
fn is_volatile(name: &str) -> bool {
    PROMETHEUS_VOLATILE
        .iter()
        .any(|v| match v.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *v,
        })
}

/// node_exporter 1.5.0's own `/metrics` on the same fixture, for the collectors it lists (see
/// tests/golden/README.md): every family in it must be in ours with the same type, help, label
/// sets and values.
const NODE_EXPORTER_REFERENCE: &str = "node_exporter.prom";

#[tokio::test]
async fn server_fixture_matches_golden() {
    check_fixture("server").await;
}

#[tokio::test]
async fn captured_vm_fixture_matches_golden() {
    check_fixture("captured-vm").await;
}

/// A workstation with an Intel iGPU (skipped), an RX 7900 XTX, an MI210 and a Meteor Lake NPU
/// in sysfs, over the server fixture's procfs.
#[tokio::test]
async fn accel_workstation_fixture_matches_golden() {
    // One sample only: the NPU's utilization is a rate over two samples (null in the first), so a
    // second sample landing before the request would change the output.
    check_fixture_with("accel/workstation", &["--interval", "60m"]).await;
}

/// The server fixture with NVIDIA GPUs from the fake NVML (one in MIG mode, with processes)
/// and DCGM profiling from the fake DCGM: every NVIDIA interface through the real loading code.
#[tokio::test]
async fn nvidia_gpus_match_golden() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let nvml_config = dir.path().join("nvml.conf");
    std::fs::write(
        &nvml_config,
        "devices=2\nmig=1\nmig_instances=2\nprocesses=2\n",
    )
    .expect("write the fake NVML's configuration");
    // DCGM must name the GPUs as NVML does, or the profiling fields attach to nothing.
    let dcgm_config = dir.path().join("dcgm.conf");
    std::fs::write(
        &dcgm_config,
        "gpus=2\n\
         uuid.0=GPU-00000000-fake-4000-8000-000000000000\n\
         uuid.1=GPU-00000001-fake-4000-8000-000000000001\n",
    )
    .expect("write the fake DCGM's configuration");
    let nvml = common::fakes::fake_library("fake_nvml");
    let dcgm = common::fakes::fake_library("fake_dcgm");
    let (nvml, dcgm) = (nvml.to_string_lossy(), dcgm.to_string_lossy());
    let args = [
        "--nvml-library",
        &nvml,
        "--enable-dcgm-profiling",
        "--dcgm-library",
        &dcgm,
        // One sample: the golden output must not depend on when the request lands.
        "--interval",
        "60m",
    ];
    let env = [
        ("FAKE_NVML_CONFIG", nvml_config.as_path()),
        ("FAKE_DCGM_CONFIG", dcgm_config.as_path()),
    ];
    check_golden("server", "nvidia", &args, &env).await;
}

/// Connections are the kernel's CurrEstab counter by default (0 in the captured VM's snmp, as the
/// golden files say); with `--collector.tcp.scan-interval`, the ESTABLISHED rows of its TCP
/// tables (one), which `/metrics` also shows as node_exporter's tcpstat family.
#[tokio::test]
async fn a_tcp_scan_interval_counts_the_tables_instead() {
    let mut args = common::fixture_args("captured-vm");
    args.extend(["--node-id", "scan", "--collector.tcp.scan-interval", "30s"].map(String::from));
    let monitor = Monitor::start(&args);
    let metrics = parse_json(&fetch(&monitor, "/api/system/metrics").await, "metrics");
    assert_eq!(metrics[0]["network"]["connections"], 1, "{metrics}");
    let exposition = fetch(&monitor, "/metrics").await;
    assert!(
        exposition.contains("node_tcp_connection_states{node=\"scan\",state=\"established\"} 1\n"),
        "{exposition}"
    );
    // CurrEstab stays on /metrics as node_exporter's netstat shows it.
    assert!(
        exposition.contains("node_netstat_Tcp_CurrEstab{node=\"scan\"} 0\n"),
        "{exposition}"
    );
}

async fn check_fixture(fixture: &str) {
    check_fixture_with(fixture, &[]).await;
}

async fn check_fixture_with(fixture: &str, extra_args: &[&str]) {
    check_golden(fixture, fixture, extra_args, &[]).await;
}

/// Runs the monitor on `fixture` with `extra_args` and `env`, and compares its outputs with
/// `tests/golden/<golden_name>/`.
async fn check_golden(
    fixture: &str,
    golden_name: &str,
    extra_args: &[&str],
    env: &[(&str, &Path)],
) {
    let mut args = common::fixture_args(fixture);
    args.extend(["--node-id", "golden-node"].map(String::from));
    args.extend(extra_args.iter().map(|a| a.to_string()));
    // node_time_zone_offset_seconds{time_zone} is the monitor's own zone: UTC whatever this
    // machine's is.
    let env: Vec<(&str, &Path)> = [("TZ", Path::new("UTC"))]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    let monitor = Monitor::start_with_env(&args, &env);
    let golden = common::repo_dir().join("tests/golden").join(golden_name);

    let metrics = fetch(&monitor, "/api/system/metrics").await;
    let mut metrics: Value = parse_json(&metrics, "/api/system/metrics");
    let elements = metrics.as_array_mut().expect("metrics is an array");
    assert_eq!(elements.len(), 1);
    for element in elements {
        assert_eq!(element["node_id"], "golden-node");
        mask_json(element, "", METRICS_VOLATILE);
    }
    let mut mismatches = Vec::new();
    mismatches.extend(compare(&golden.join("metrics.json"), &pretty(&metrics)));

    let info = fetch(&monitor, "/api/system/info").await;
    let mut info = parse_json(&info, "/api/system/info");
    mask_json(&mut info, "", INFO_VOLATILE);
    mismatches.extend(compare(&golden.join("info.json"), &pretty(&info)));

    let exposition = fetch(&monitor, "/metrics").await;
    mismatches.extend(compare(
        &golden.join("metrics.prom"),
        &mask_prometheus(&exposition),
    ));
    let reference = golden.join(NODE_EXPORTER_REFERENCE);
    if reference.exists() {
        mismatches.extend(same_as_node_exporter(&reference, &exposition));
    }
    assert!(
        mismatches.is_empty(),
        "{}\n\nIf the change is intended, regenerate with \
         `UPDATE_GOLDEN=1 cargo test --test e2e_golden` and review the diff.",
        mismatches.join("\n\n")
    );
}

/// One family of a text exposition.
#[derive(Debug, Default)]
struct ParsedFamily {
    kind: String,
    help: String,
    /// Label sets (sorted, without `node`) and values.
    samples: std::collections::BTreeMap<Vec<(String, String)>, f64>,
}

/// The families of a Prometheus text exposition, by name.
fn parse_exposition(text: &str) -> std::collections::BTreeMap<String, ParsedFamily> {
    let mut families: std::collections::BTreeMap<String, ParsedFamily> = Default::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.into()).or_default().help = help.into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.into()).or_default().kind = kind.into();
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value: f64 = value.parse().expect("a sample value is a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            families
                .entry(name.into())
                .or_default()
                .samples
                .insert(labels, value);
        }
    }
    families
}

/// `a="x",b="y"` as sorted pairs, without `node`.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        let key = key.trim_start_matches(',');
        if key != "node" {
            labels.push((key.to_string(), value));
        }
        rest = &after[end..];
    }
    labels.sort();
    labels
}

/// What differs between node_exporter's reference output and ours, for the families of the
/// reference; `node_scrape_collector_success` is compared for its collectors only.
fn same_as_node_exporter(reference: &Path, ours: &str) -> Option<String> {
    let text = std::fs::read_to_string(reference)
        .unwrap_or_else(|e| panic!("{}: {e}", reference.display()));
    let theirs = parse_exposition(&text);
    let ours = parse_exposition(ours);
    let mut problems = Vec::new();
    for (name, expected) in &theirs {
        let Some(actual) = ours.get(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if name == "node_scrape_collector_success" {
            for (labels, value) in &expected.samples {
                if actual.samples.get(labels) != Some(value) {
                    let got = actual.samples.get(labels);
                    problems.push(format!("{name}{labels:?}: {value} expected, got {got:?}"));
                }
            }
            continue;
        }
        if (&actual.kind, &actual.help) != (&expected.kind, &expected.help) {
            problems.push(format!(
                "{name}: TYPE {} HELP {:?} expected, got TYPE {} HELP {:?}",
                expected.kind, expected.help, actual.kind, actual.help
            ));
        }
        if actual.samples != expected.samples {
            problems.push(format!(
                "{name}: samples differ\n  node_exporter: {:?}\n  ours:          {:?}",
                expected.samples, actual.samples
            ));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{} (node_exporter 1.5.0 on the same fixture) disagrees with our /metrics:\n{}",
            relative(reference).display(),
            problems.join("\n")
        )
    })
}

/// GET `path` and its body, with this checkout's path replaced by `$REPO` (error messages name
/// fixture files).
async fn fetch(monitor: &Monitor, path: &str) -> String {
    let reply = monitor.get(path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    let repo = common::repo_dir();
    reply.body.replace(repo.to_string_lossy().as_ref(), "$REPO")
}

fn parse_json(body: &str, what: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {body}"))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a Value serializes");
    text.push('\n');
    text
}

/// Replaces the fields at `volatile` paths under `value` (whose own path is `path`) by [`MASK`].
fn mask_json(value: &mut Value, path: &str, volatile: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if volatile.contains(&child_path.as_str()) {
                    *child = Value::String(MASK.into());
                } else {
                    mask_json(child, &child_path, volatile);
                }
            }
        }
        Value::Array(items) => {
            let item_path = format!("{path}[]");
            for item in items {
                mask_json(item, &item_path, volatile);
            }
        }
        _ => {}
    }
}

/// Masks the values of [`PROMETHEUS_VOLATILE`] families and the version label.
fn mask_prometheus(exposition: &str) -> String {
    let version_label = format!("version=\"{}\"", system_monitor::VERSION);
    let mut out = String::with_capacity(exposition.len());
    for line in exposition.lines() {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let volatile = !line.starts_with('#') && is_volatile(&line[..name_end]);
        match line.rsplit_once(' ') {
            Some((series, _value)) if volatile => {
                out.push_str(series);
                out.push(' ');
                out.push_str(MASK);
            }
            _ => out.push_str(&line.replace(&version_label, "version=\"<masked>\"")),
        }
        out.push('\n');
    }
    out
}

/// Compares `actual` with the golden file (None when equal, else what differs), or writes it
/// when `UPDATE_GOLDEN=1`.
fn compare(golden: &Path, actual: &str) -> Option<String> {
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        if let Some(dir) = golden.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        std::fs::write(golden, actual).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        eprintln!("updated {}", golden.display());
        return None;
    }
    let expected = match std::fs::read_to_string(golden) {
        Ok(text) => text,
        Err(e) => return Some(format!("cannot read {}: {e}", relative(golden).display())),
    };
    (expected != actual).then(|| {
        format!(
            "{} differs from the output (- golden, + actual):\n{}",
            relative(golden).display(),
            line_diff(&expected, actual)
        )
    })
}

fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(common::repo_dir())
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

/// The differing lines of two texts (a longest-common-subsequence diff), at most 60 of them.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0_u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("{:>5} - {}", i + 1, a[i]));
            i += 1;
        } else {
            out.push(format!("{:>5} + {}", j + 1, b[j]));
            j += 1;
        }
    }
    let shown = out.len().min(60);
    let mut text = out[..shown].join("\n");
    if out.len() > shown {
        text.push_str(&format!("\n… {} more", out.len() - shown));
    }
    text
}

#[test]
fn masking_replaces_only_the_listed_paths() {
    let mut value = serde_json::json!({
        "timestamp": 1,
        "disk": {"usage": 1.5, "iops": 2.0},
        "filesystems": [{"size": 10, "device": "/dev/sda1"}],
        "collectors": [{"name": "cpu", "durationSeconds": 0.1}],
    });
    mask_json(&mut value, "", METRICS_VOLATILE);
    assert_eq!(
        value,
        serde_json::json!({
            "timestamp": MASK,
            "disk": {"usage": MASK, "iops": 2.0},
            "filesystems": [{"size": MASK, "device": "/dev/sda1"}],
            "collectors": [{"name": "cpu", "durationSeconds": MASK}],
        })
    );
    let exposition = format!(
        "# TYPE node_filesystem_files gauge\n\
         node_filesystem_files{{node=\"n\",device=\"a b\"}} 5\n\
         node_filesystem_files_free{{node=\"n\"}} 6\n\
         node_load1{{node=\"n\"}} 0.5\n\
         node_timex_offset_seconds{{node=\"n\"}} 0.001\n\
         node_timex{{node=\"n\"}} 2\n\
         system_monitor_build_info{{node=\"n\",version=\"{}\"}} 1\n",
        system_monitor::VERSION
    );
    assert_eq!(
        mask_prometheus(&exposition),
        "# TYPE node_filesystem_files gauge\n\
         node_filesystem_files{node=\"n\",device=\"a b\"} <masked>\n\
         node_filesystem_files_free{node=\"n\"} <masked>\n\
         node_load1{node=\"n\"} 0.5\n\
         node_timex_offset_seconds{node=\"n\"} <masked>\n\
         node_timex{node=\"n\"} 2\n\
         system_monitor_build_info{node=\"n\",version=\"<masked>\"} 1\n"
    );
}

#[test]
fn expositions_are_compared_as_families_of_label_sets() {
    let theirs = parse_exposition(
        "# HELP node_x Help.\n# TYPE node_x gauge\n\
         node_x{b=\"2\",a=\"say \\\"hi\\\"\"} 1.5e+06\n",
    );
    let ours = parse_exposition(
        "# HELP node_x Help.\n# TYPE node_x gauge\n\
         node_x{node=\"n\",a=\"say \\\"hi\\\"\",b=\"2\"} 1500000\n",
    );
    let (a, b) = (&theirs["node_x"], &ours["node_x"]);
    assert_eq!(a.samples, b.samples);
    let labels: Vec<(String, String)> =
        vec![("a".into(), "say \"hi\"".into()), ("b".into(), "2".into())];
    assert_eq!(a.samples.get(&labels), Some(&1.5e6));
}

#[test]
fn diff_shows_changed_lines() {
    let diff = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
    assert_eq!(diff, "    2 - b\n    2 + B\n    4 + d");
}
