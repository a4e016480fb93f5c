//! Tests of `textfile`.

use super::*;

/// A textfile directory and a collector reading it.
struct Dir {
    dir: tempfile::TempDir,
    collector: TextfileCollector,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        let collector = TextfileCollector::new(Some(dir.path().to_path_buf()));
        Dir { dir, collector }
    }

    fn write(&self, name: &str, text: &str) {
        // As the textfile writers do: a temporary file renamed over the old one.
        let temporary = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, self.dir.path().join(name)).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    /// One sample: the snapshot and the collector's outcome.
    fn sample(&mut self) -> (Snapshot, Result<(), CollectError>) {
        let mut snapshot = Snapshot::default();
        let result = self.collector.collect(&mut snapshot);
        (snapshot, result)
    }
}

fn kernel<'a>(snapshot: &'a Snapshot, name: &str) -> Option<&'a KernelFamily> {
    snapshot.kernel_families.iter().find(|f| &*f.name == name)
}

fn scrape_error(snapshot: &Snapshot) -> f64 {
    kernel(snapshot, "node_textfile_scrape_error")
        .unwrap()
        .samples[0]
        .value
}

fn foreign_names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot
        .foreign_families
        .iter()
        .map(|f| f.family.name.as_str())
        .collect()
}

#[test]
fn without_a_directory_only_the_error_gauge_at_zero() {
    let mut collector = TextfileCollector::new(None);
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    assert_eq!(snapshot.kernel_families.len(), 1);
    assert_eq!(scrape_error(&snapshot), 0.0);
    assert!(snapshot.foreign_families.is_empty());
}

#[test]
fn good_files_are_read_and_a_bad_one_is_left_out_with_the_error_gauge_at_one() {
    let mut dir = Dir::new();
    dir.write(
        "apt.prom",
        "# HELP node_apt_upgrades_pending Apt packages pending updates.\n\
         # TYPE node_apt_upgrades_pending gauge\n\
         node_apt_upgrades_pending{origin=\"security\",arch=\"amd64\"} 2\n",
    );
    dir.write("bad.prom", "# TYPE broken gauge\nbroken{a=\"1\" 1\n");
    dir.write("stamped.prom", "stamped 1 1700000000000\n");
    dir.write("not-a-prom.txt", "ignored 1\n");
    let (snapshot, result) = dir.sample();
    let Err(CollectError::Partial(error)) = result else {
        panic!("a bad file makes the result partial: {result:?}");
    };
    assert!(
        error.contains("bad.prom") && error.contains("line 2"),
        "{error}"
    );
    assert!(
        error.contains("stamped.prom") && error.contains("timestamps"),
        "{error}"
    );
    assert_eq!(scrape_error(&snapshot), 1.0);
    assert_eq!(foreign_names(&snapshot), ["node_apt_upgrades_pending"]);
    let family = &snapshot.foreign_families[0];
    assert_eq!(family.source, dir.path("apt.prom"));
    // Labels in name order, as node_exporter writes them.
    assert_eq!(
        family.family.samples[0].labels,
        [
            ("arch".to_string(), "amd64".to_string()),
            ("origin".to_string(), "security".to_string())
        ]
    );
    // Only the good file's modification time.
    let mtimes = kernel(&snapshot, "node_textfile_mtime_seconds").unwrap();
    assert_eq!(mtimes.samples.len(), 1);
    assert_eq!(mtimes.samples[0].labels, [("file", dir.path("apt.prom"))]);
    assert!(mtimes.samples[0].value > 1.6e9);

    // Fixed: the gauge goes back to 0 and the file is read.
    dir.write("bad.prom", "# TYPE broken gauge\nbroken{a=\"1\"} 1\n");
    std::fs::remove_file(dir.dir.path().join("stamped.prom")).unwrap();
    let (snapshot, result) = dir.sample();
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(scrape_error(&snapshot), 0.0);
    assert_eq!(
        foreign_names(&snapshot),
        ["node_apt_upgrades_pending", "broken"]
    );
}

#[test]
fn a_node_label_is_refused_since_every_series_gets_ours() {
    let mut dir = Dir::new();
    dir.write("k8s.prom", "kube_thing{node=\"worker-1\"} 1\n");
    let (snapshot, result) = dir.sample();
    assert!(matches!(result, Err(CollectError::Partial(e)) if e.contains("`node` label")));
    assert_eq!(scrape_error(&snapshot), 1.0);
    assert!(snapshot.foreign_families.is_empty());
}

#[test]
fn an_unreadable_directory_is_an_error_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = TextfileCollector::new(Some(dir.path().join("absent")));
    let mut snapshot = Snapshot::default();
    let result = collector.collect(&mut snapshot);
    assert!(
        matches!(result, Err(CollectError::Partial(_))),
        "{result:?}"
    );
    assert_eq!(scrape_error(&snapshot), 1.0);
}

#[test]
fn families_of_one_name_in_several_files_are_merged_as_node_exporter_does() {
    let mut dir = Dir::new();
    dir.write(
        "a.prom",
        "# TYPE job_last_success_seconds gauge\njob_last_success_seconds{job=\"backup\"} 10\n",
    );
    dir.write(
        "b.prom",
        "job_last_success_seconds{job=\"backup\"} 99\n\
         # TYPE job_last_success_seconds gauge\n",
    );
    dir.write(
        "c.prom",
        "# TYPE job_last_success_seconds gauge\n\
         job_last_success_seconds{job=\"cleanup\",host=\"x\"} 20\n\
         # TYPE other counter\nother 1\n",
    );
    dir.write(
        "d.prom",
        "# TYPE job_last_success_seconds counter\njob_last_success_seconds 5\n",
    );
    let (snapshot, _) = dir.sample();
    assert_eq!(
        foreign_names(&snapshot),
        ["job_last_success_seconds", "other"]
    );
    let merged = &snapshot.foreign_families[0];
    // b.prom's TYPE after its sample is a parse error: the whole file is out. d.prom's family
    // has another type: left out. The series of a.prom and c.prom remain, labels completed.
    let series: Vec<(Vec<(&str, &str)>, f64)> = merged
        .family
        .samples
        .iter()
        .map(|s| {
            (
                s.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                s.value,
            )
        })
        .collect();
    assert_eq!(
        series,
        [
            (vec![("host", ""), ("job", "backup")], 10.0),
            (vec![("host", "x"), ("job", "cleanup")], 20.0),
        ]
    );
    assert_eq!(
        merged.family.help.as_deref(),
        Some(
            format!(
                "Metric read from {}, {}",
                dir.path("a.prom"),
                dir.path("c.prom")
            )
            .as_str()
        )
    );
    assert_eq!(
        merged.source,
        format!("{}, {}", dir.path("a.prom"), dir.path("c.prom"))
    );
}

#[test]
fn a_series_read_twice_is_kept_once() {
    let mut dir = Dir::new();
    dir.write("a.prom", "up_to_date 1\n");
    dir.write("b.prom", "up_to_date 0\n");
    let (snapshot, _) = dir.sample();
    let samples = &snapshot.foreign_families[0].family.samples;
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].value, 1.0);
}

#[test]
fn unchanged_files_are_not_parsed_again_and_share_their_families() {
    let mut dir = Dir::new();
    dir.write("a.prom", "x 1\n");
    let (first, _) = dir.sample();
    let (second, _) = dir.sample();
    assert!(Arc::ptr_eq(
        &first.foreign_families[0],
        &second.foreign_families[0]
    ));
    dir.write("a.prom", "x 2\n");
    let (third, _) = dir.sample();
    assert_eq!(third.foreign_families[0].family.samples[0].value, 2.0);
}

#[test]
fn histogram_labels_keep_le_last() {
    let mut dir = Dir::new();
    dir.write(
        "h.prom",
        "# TYPE req_seconds histogram\n\
         req_seconds_bucket{path=\"/\",le=\"0.1\"} 1\n\
         req_seconds_bucket{le=\"+Inf\",path=\"/\",code=\"200\"} 2\n\
         req_seconds_sum{path=\"/\"} 0.3\n\
         req_seconds_count{path=\"/\"} 2\n",
    );
    let (snapshot, result) = dir.sample();
    assert!(result.is_ok());
    let samples = &snapshot.foreign_families[0].family.samples;
    let names: Vec<Vec<&str>> = samples
        .iter()
        .map(|s| s.labels.iter().map(|(k, _)| k.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        [
            vec!["code", "path", "le"],
            vec!["code", "path", "le"],
            vec!["code", "path"],
            vec!["code", "path"],
        ]
    );
}
