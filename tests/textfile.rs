//! The textfile collector end to end: the real binary with `--collector.textfile.directory` on
//! a directory holding a good file, a bad file and a file that shadows one of our families, and
//! what its `/metrics` shows of them (node_exporter's semantics, our node label).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Monitor;

/// Writes `text` to `dir/name` as textfile writers do: a temporary file renamed into place.
fn write(dir: &Path, name: &str, text: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).expect("write a textfile");
    std::fs::rename(&temporary, dir.join(name)).expect("rename it into place");
}

/// The sample lines of `name` (any labels) in `exposition`.
fn series<'a>(exposition: &'a str, name: &str) -> Vec<&'a str> {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

/// GET /metrics until `ready` holds (a sample is at most an interval away), at most 10 s.
async fn metrics_when(monitor: &Monitor, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = monitor.get("/metrics").await;
        assert_eq!(reply.status, 200);
        if ready(&reply.body) || Instant::now() > deadline {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn textfiles_join_metrics_with_the_node_label_and_bad_ones_are_reported() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let textfiles = dir.path();
    write(
        textfiles,
        "backup.prom",
        "# HELP backup_last_success_timestamp_seconds When the last backup succeeded.\n\
         # TYPE backup_last_success_timestamp_seconds gauge\n\
         backup_last_success_timestamp_seconds{job=\"db\",target=\"s3\"} 1.7e9\n\
         # TYPE backup_runs_total counter\n\
         backup_runs_total{job=\"db\"} 42\n",
    );
    // Not a valid exposition: an unterminated label value.
    write(textfiles, "broken.prom", "broken_metric{job=\"x} 1\n");
    // Shadows a family the monitor writes itself (the server fixture's load average).
    write(
        textfiles,
        "shadow.prom",
        "# TYPE node_load1 gauge\nnode_load1 99\n",
    );
    write(textfiles, "ignored.txt", "not_a_prom_file 1\n");

    let dir_arg = textfiles.to_string_lossy().into_owned();
    let monitor = Monitor::on_fixture(
        "server",
        &[
            "--node-id",
            "tf-node",
            "--interval",
            "200ms",
            "--collector.textfile.directory",
            &dir_arg,
        ],
    );
    let text = metrics_when(&monitor, |t| t.contains("backup_runs_total")).await;

    assert!(
        text.contains(
            "# HELP backup_last_success_timestamp_seconds When the last backup succeeded.\n\
             # TYPE backup_last_success_timestamp_seconds gauge\n\
             backup_last_success_timestamp_seconds{node=\"tf-node\",job=\"db\",target=\"s3\"} 1700000000\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "# HELP backup_runs_total Metric read from {dir}/backup.prom\n\
             # TYPE backup_runs_total counter\n\
             backup_runs_total{node=\"tf-node\",job=\"db\"} 42\n"
                .replace("{dir}", &dir_arg)
                .as_str()
        ),
        "{text}"
    );
    // The bad file: left out, the error gauge at 1, the collector still successful.
    assert!(series(&text, "broken_metric").is_empty(), "{text}");
    assert!(series(&text, "not_a_prom_file").is_empty(), "{text}");
    assert_eq!(
        series(&text, "node_textfile_scrape_error"),
        ["node_textfile_scrape_error{node=\"tf-node\"} 1"]
    );
    assert_eq!(
        series(&text, "node_scrape_collector_success")
            .into_iter()
            .filter(|l| l.contains("collector=\"textfile\""))
            .collect::<Vec<_>>(),
        ["node_scrape_collector_success{node=\"tf-node\",collector=\"textfile\"} 1"]
    );
    // Only our own load average, once.
    assert_eq!(
        series(&text, "node_load1"),
        ["node_load1{node=\"tf-node\"} 1.52"],
        "{text}"
    );
    assert_eq!(text.matches("# TYPE node_load1 ").count(), 1);
    // The modification time of each file read, by its path; none for the bad one.
    let mtimes = series(&text, "node_textfile_mtime_seconds");
    let files: Vec<String> = mtimes
        .iter()
        .map(|l| {
            l.split("file=\"")
                .nth(1)
                .unwrap_or("")
                .split('"')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        files,
        [
            format!("{dir_arg}/backup.prom"),
            format!("{dir_arg}/shadow.prom")
        ]
    );

    let log = monitor.stderr();
    assert_eq!(log.matches("broken.prom left out").count(), 1, "{log}");
    assert!(log.contains("line 1"), "{log}");
    assert_eq!(
        log.matches("node_load1 (read from").count(),
        1,
        "reported once, however many scrapes: {log}"
    );

    // Fixed, the file is read at the next sample and the gauge goes back to 0.
    write(textfiles, "broken.prom", "broken_metric{job=\"x\"} 1\n");
    let text = metrics_when(&monitor, |t| t.contains("broken_metric{")).await;
    assert_eq!(
        series(&text, "broken_metric"),
        ["broken_metric{node=\"tf-node\",job=\"x\"} 1"]
    );
    assert_eq!(
        series(&text, "node_textfile_scrape_error"),
        ["node_textfile_scrape_error{node=\"tf-node\"} 0"]
    );

    // OpenMetrics: the same families, typed for it, and one `# EOF`.
    let open = monitor
        .get_with("/metrics", &[("Accept", "application/openmetrics-text")])
        .await
        .body;
    assert!(open.contains("# TYPE backup_runs counter\n"), "{open}");
    assert!(open.ends_with("# EOF\n") && open.matches("# EOF").count() == 1);
}

#[tokio::test]
async fn without_a_directory_the_error_gauge_is_zero_as_node_exporter_prints_it() {
    let monitor = Monitor::on_fixture("captured-vm", &["--node-id", "n"]);
    let text = monitor.get("/metrics").await.body;
    assert_eq!(
        series(&text, "node_textfile_scrape_error"),
        ["node_textfile_scrape_error{node=\"n\"} 0"]
    );
    assert!(series(&text, "node_textfile_mtime_seconds").is_empty());
}
