//! Tests of `conntrack`.

use super::*;
use crate::collect::linux::fixture;

fn collect(paths: &HostPaths) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = ConntrackCollector::new(paths).collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

fn values(families: &[KernelFamily]) -> Vec<(&str, f64)> {
    families
        .iter()
        .map(|f| {
            assert_eq!(f.kind, KernelMetricKind::Gauge);
            (&*f.name, f.samples[0].value)
        })
        .collect()
}

/// A /proc with the given files.
fn proc_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const COUNT: &str = "sys/net/netfilter/nf_conntrack_count";
const MAX: &str = "sys/net/netfilter/nf_conntrack_max";
const STAT: &str = "net/stat/nf_conntrack";

/// Two CPUs' rows (kernel 6.x header).
const TWO_CPUS: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n\
    00000021  00000001 00000002 00000000 00000003 00000004 00000000 00000000 00000005 00000006 00000007 00000008 00000000  00000000 00000000 00000000 00000009\n\
    00000021  00000000 00000010 00000000 00000010 00000010 00000000 00000000 00000010 00000010 00000010 00000010 00000000  00000000 00000000 00000000 00000010\n";

#[test]
fn sums_the_statistics_over_cpus() {
    let sums = parse_stat(TWO_CPUS).unwrap();
    assert_eq!(sums, [18, 19, 20, 21, 22, 23, 24, 25]);
    assert_eq!(parse_stat("header\n").unwrap(), [0; 8]);
    assert!(parse_stat("h\n00000001 00000002\n")
        .unwrap_err()
        .contains("2 columns, 17 expected"));
    let bad = TWO_CPUS.replace("00000009", "0000000z");
    assert!(parse_stat(&bad).unwrap_err().contains("0000000z"));
}

#[test]
fn reads_size_limit_and_statistics() {
    let dir = proc_with(&[(COUNT, "123\n"), (MAX, "262144\n"), (STAT, TWO_CPUS)]);
    let (families, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    result.unwrap();
    assert_eq!(
        values(&families),
        [
            ("node_nf_conntrack_entries", 123.0),
            ("node_nf_conntrack_entries_limit", 262_144.0),
            ("node_nf_conntrack_stat_found", 18.0),
            ("node_nf_conntrack_stat_invalid", 19.0),
            ("node_nf_conntrack_stat_ignore", 20.0),
            ("node_nf_conntrack_stat_insert", 21.0),
            ("node_nf_conntrack_stat_insert_failed", 22.0),
            ("node_nf_conntrack_stat_drop", 23.0),
            ("node_nf_conntrack_stat_early_drop", 24.0),
            ("node_nf_conntrack_stat_search_restart", 25.0),
        ]
    );
}

#[test]
fn captured_vm_fixture() {
    let (families, result) = collect(&HostPaths::fixture(fixture("captured-vm")));
    result.unwrap();
    assert_eq!(families.len(), 10);
    assert_eq!(
        values(&families)[1],
        ("node_nf_conntrack_entries_limit", 262_144.0)
    );
}

#[test]
fn a_host_without_conntrack_has_no_data() {
    // The server fixture has no conntrack module loaded.
    let (families, result) = collect(&HostPaths::fixture(fixture("server")));
    assert!(
        matches!(result, Err(CollectError::NoData(ref m)) if m.contains("nf_conntrack_count")),
        "{result:?}"
    );
    assert!(families.is_empty());

    // What was read before a missing file is kept, as node_exporter sends it before failing.
    let dir = proc_with(&[(COUNT, "7\n")]);
    let (families, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    assert!(matches!(result, Err(CollectError::NoData(ref m)) if m.contains("nf_conntrack_max")));
    assert_eq!(values(&families), [("node_nf_conntrack_entries", 7.0)]);

    let dir = proc_with(&[(COUNT, "7\n"), (MAX, "65536\n")]);
    let (families, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    assert!(matches!(result, Err(CollectError::NoData(ref m)) if m.contains("net/stat")));
    assert_eq!(families.len(), 2);
}

#[test]
fn malformed_files_are_errors() {
    let dir = proc_with(&[(COUNT, "many\n"), (MAX, "1\n"), (STAT, TWO_CPUS)]);
    let (families, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    let err = result.unwrap_err();
    assert!(matches!(err, CollectError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("\"many\""));
    assert!(families.is_empty());
}
