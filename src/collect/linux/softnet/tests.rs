//! Tests of `softnet`.

use super::*;
use crate::collect::linux::fixture;

fn collect(paths: &HostPaths) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = SoftnetCollector::new(paths).collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

#[test]
fn parses_rows_of_every_kernel_layout() {
    // 9 columns (2.6.23), 11 (4.18), 13 (5.14) and 15 (6.x, as captured).
    let text = "00000010 00000001 00000002 00000000 00000000 00000000 00000000 00000000 00000000\n\
                0000001f 00000000 00000003 00000000 00000000 00000000 00000000 00000000 00000000 \
                00000000 00000000\n\
                ffffffff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 \
                00000000 00000000 00000000 00000002\n";
    assert_eq!(
        parse(text).unwrap(),
        [
            SoftnetRow {
                processed: 16,
                dropped: 1,
                times_squeezed: 2
            },
            SoftnetRow {
                processed: 31,
                dropped: 0,
                times_squeezed: 3
            },
            SoftnetRow {
                processed: u32::MAX,
                dropped: 0,
                times_squeezed: 0
            },
        ]
    );
    let captured =
        std::fs::read_to_string(fixture("captured-vm").join("proc/net/softnet_stat")).unwrap();
    let rows = parse(&captured).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.processed > 0));
}

#[test]
fn malformed_rows_are_errors() {
    assert!(parse("00000001 00000002\n")
        .unwrap_err()
        .contains("2 columns were detected, but at least 9"));
    assert!(parse("0000000g 0 0 0 0 0 0 0 0\n")
        .unwrap_err()
        .contains("\"0000000g\""));
}

#[test]
fn server_fixture_counts_per_cpu() {
    let (families, result) = collect(&HostPaths::fixture(fixture("server")));
    result.unwrap();
    let names: Vec<&str> = families.iter().map(|f| &*f.name).collect();
    assert_eq!(
        names,
        [
            "node_softnet_dropped_total",
            "node_softnet_processed_total",
            "node_softnet_times_squeezed_total"
        ]
    );
    assert!(families.iter().all(|f| f.kind == KernelMetricKind::Counter));
    let dropped = &families[0];
    assert_eq!(dropped.samples.len(), 8);
    assert_eq!(dropped.samples[4].labels, [("cpu", "4".to_string())]);
    assert_eq!(dropped.samples[4].value, 3.0);
    assert_eq!(families[1].samples[0].value, 2_212_233_412.0);
    assert_eq!(families[2].samples[7].value, 812.0);
}

#[test]
fn a_missing_file_fails_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let (families, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    assert!(matches!(result, Err(CollectError::Io { .. })));
    assert!(families.is_empty());
}
