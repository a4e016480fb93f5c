//! Tests of `arp`.

use super::*;
use crate::collect::linux::fixture;

fn collect(paths: &HostPaths) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = ArpCollector::new(paths).collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

#[test]
fn counts_entries_per_device() {
    let captured = std::fs::read_to_string(fixture("captured-vm").join("proc/net/arp")).unwrap();
    assert_eq!(entries_per_device(&captured).unwrap(), [("eth0", 1)]);
    assert_eq!(
        entries_per_device(
            "IP address       HW type     Flags       HW address            Mask     Device\n"
        )
        .unwrap(),
        []
    );
    assert!(entries_per_device("10.0.0.1 0x1 0x2 aa:bb:cc:dd:ee:ff *\n")
        .unwrap_err()
        .contains("5 columns were detected, but 6 were expected"));
}

#[test]
fn server_fixture() {
    let (families, result) = collect(&HostPaths::fixture(fixture("server")));
    result.unwrap();
    assert_eq!(families.len(), 1);
    let family = &families[0];
    assert_eq!(&*family.name, "node_arp_entries");
    assert_eq!(&*family.help, "ARP entries by device");
    assert_eq!(family.kind, KernelMetricKind::Gauge);
    let samples: Vec<(&str, f64)> = family
        .samples
        .iter()
        .map(|s| (s.labels[0].1.as_str(), s.value))
        .collect();
    // The incomplete entry (flags 0x0) on eno1 counts too.
    assert_eq!(samples, [("bond0", 2.0), ("docker0", 1.0), ("eno1", 4.0)]);
}

#[test]
fn a_missing_table_fails_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let (_, result) = collect(&HostPaths::new(dir.path(), "/sys", "/"));
    assert!(matches!(result, Err(CollectError::Io { .. })));
}
