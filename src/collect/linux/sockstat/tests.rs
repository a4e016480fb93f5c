//! Tests of `sockstat`.

use super::*;
use crate::collect::linux::fixture;

fn collect(paths: &HostPaths) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = SockstatCollector::new(paths).collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

fn values(families: &[KernelFamily]) -> Vec<(&str, f64)> {
    families
        .iter()
        .map(|f| {
            assert_eq!(f.kind, KernelMetricKind::Gauge);
            assert_eq!(f.samples.len(), 1);
            (&*f.name, f.samples[0].value)
        })
        .collect()
}

#[test]
fn parses_both_files_as_node_exporter_does() {
    let v4 = parse(
        "sockets: used 20\nTCP: inuse 5 orphan 0 tw 0 alloc 5 mem 110\nUDP: inuse 0 mem 0\n\
                    FRAG: inuse 0 memory 0\n",
    )
    .unwrap();
    assert_eq!(v4.used, Some(20));
    assert_eq!(
        v4.protocols[0],
        Protocol {
            name: "TCP",
            inuse: 5,
            orphan: Some(0),
            tw: Some(0),
            alloc: Some(5),
            mem: Some(110),
            memory: None,
        }
    );
    assert_eq!(v4.protocols[2].memory, Some(0));
    let v6 = parse("TCP6: inuse 1\nUDP6: inuse 0\n").unwrap();
    assert_eq!(v6.used, None);
    assert_eq!(v6.protocols.len(), 2);
    // Unknown keys are ignored; a protocol line without `inuse` still reports it, as 0.
    let odd = parse("SCTP: assocs 3\n").unwrap();
    assert_eq!(odd.protocols[0].inuse, 0);
}

#[test]
fn malformed_lines_are_errors() {
    assert!(parse("TCP:\n").unwrap_err().contains("malformed"));
    assert!(parse("TCP: inuse 5 orphan\n")
        .unwrap_err()
        .contains("odd number"));
    assert!(parse("TCP: inuse x\n").unwrap_err().contains("\"x\""));
}

#[test]
fn server_fixture() {
    let (families, result) = collect(&HostPaths::fixture(fixture("server")));
    result.unwrap();
    let page = rustix::param::page_size() as f64;
    assert_eq!(
        values(&families),
        [
            ("node_sockstat_FRAG6_inuse", 0.0),
            ("node_sockstat_FRAG6_memory", 0.0),
            ("node_sockstat_FRAG_inuse", 0.0),
            ("node_sockstat_FRAG_memory", 0.0),
            ("node_sockstat_RAW6_inuse", 1.0),
            ("node_sockstat_RAW_inuse", 1.0),
            ("node_sockstat_TCP6_inuse", 41.0),
            ("node_sockstat_TCP_alloc", 402.0),
            ("node_sockstat_TCP_inuse", 312.0),
            ("node_sockstat_TCP_mem", 2811.0),
            ("node_sockstat_TCP_mem_bytes", 2811.0 * page),
            ("node_sockstat_TCP_orphan", 2.0),
            ("node_sockstat_TCP_tw", 1204.0),
            ("node_sockstat_UDP6_inuse", 6.0),
            ("node_sockstat_UDPLITE6_inuse", 0.0),
            ("node_sockstat_UDPLITE_inuse", 0.0),
            ("node_sockstat_UDP_inuse", 18.0),
            ("node_sockstat_UDP_mem", 12.0),
            ("node_sockstat_UDP_mem_bytes", 12.0 * page),
            ("node_sockstat_sockets_used", 1402.0),
        ]
    );
    let tcp_tw = families
        .iter()
        .find(|f| &*f.name == "node_sockstat_TCP_tw")
        .unwrap();
    assert_eq!(&*tcp_tw.help, "Number of TCP sockets in state tw.");
    let used = families.last().unwrap();
    assert_eq!(&*used.help, "Number of IPv4 sockets in use.");
}

#[test]
fn either_file_may_be_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    let paths = HostPaths::new(dir.path(), "/sys", "/");
    let (families, result) = collect(&paths);
    result.unwrap();
    assert!(families.is_empty());

    std::fs::write(dir.path().join("net/sockstat6"), "TCP6: inuse 3\n").unwrap();
    let (families, result) = collect(&paths);
    result.unwrap();
    assert_eq!(values(&families), [("node_sockstat_TCP6_inuse", 3.0)]);

    std::fs::write(dir.path().join("net/sockstat"), "TCP: inuse\n").unwrap();
    let (_, result) = collect(&paths);
    assert!(result.unwrap_err().to_string().contains("net/sockstat"));
}
