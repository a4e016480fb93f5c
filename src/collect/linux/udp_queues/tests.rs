//! Tests of `udp_queues`.

use super::*;
use crate::collect::linux::fixture;

fn collect(c: &mut UdpQueuesCollector) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = c.collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

fn samples(family: &KernelFamily) -> Vec<(String, f64)> {
    family
        .samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (labels.join(","), s.value)
        })
        .collect()
}

fn sums(table: &str) -> Result<(u64, u64), String> {
    let mut sums = QueueSums::default();
    sums.feed(table.as_bytes())?;
    Ok((sums.tx, sums.rx))
}

#[test]
fn sums_the_queue_column() {
    let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          53: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 21334 2 0000000000000000 0\n\
         291: 00000000:1FBD 00000000:0000 07 00000000:00003000 00:00000000 00000000   998        0 48812 2 0000000000000000 1208\n\
         512: 0B00140A:B420 0200140A:0035 01 00000240:00000000 00:00000000 00000000   998        0 51223 2 0000000000000000 0\n";
    assert_eq!(sums(table), Ok((0x240, 0x3000)));
    assert_eq!(sums("header only\n"), Ok((0, 0)));
    assert_eq!(sums(""), Ok((0, 0)));
    // Fewer than 10 columns, or a queue column that is not `hex:hex`, as node_exporter rejects.
    assert!(sums("h\n 1: a b 07 00000000:00000000 00:0 0 0 0\n")
        .unwrap_err()
        .contains("row 1"));
    assert!(sums("h\n 1: a b 07 0000000x:00000000 00:0 0 0 0 1\n").is_err());
    assert!(sums("h\n 1: a b 07 00000000 00:0 0 0 0 1\n").is_err());
}

#[test]
fn server_fixture() {
    let mut c = UdpQueuesCollector::new(&HostPaths::fixture(fixture("server")), Duration::ZERO);
    let (families, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(families.len(), 1);
    let family = &families[0];
    assert_eq!(&*family.name, "node_udp_queues");
    assert_eq!(family.kind, KernelMetricKind::Gauge);
    assert_eq!(
        samples(family),
        [
            ("ip=v4,queue=rx".to_string(), 12288.0),
            ("ip=v4,queue=tx".to_string(), 576.0),
            ("ip=v6,queue=rx".to_string(), 6144.0),
            ("ip=v6,queue=tx".to_string(), 0.0),
        ]
    );
}

#[test]
fn streaming_agrees_with_the_whole_table_across_chunk_boundaries() {
    let path = fixture("server").join("proc/net/udp");
    let whole = sums(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for size in [200, 333, 1000, CHUNK_BYTES] {
        let mut chunk = vec![0; size];
        let mut streamed = QueueSums::default();
        assert!(stream_lines(&path, &mut chunk, |l| streamed.feed(l)).unwrap());
        assert_eq!((streamed.tx, streamed.rx), whole, "{size}");
    }
}

#[test]
fn tables_are_scanned_once_per_scan_interval_and_no_tables_is_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    let paths = HostPaths::new(dir.path(), "/sys", "/");
    let mut hourly = UdpQueuesCollector::new(&paths, Duration::from_secs(3600));
    let mut every = UdpQueuesCollector::new(&paths, Duration::ZERO);
    for c in [&mut hourly, &mut every] {
        let (families, result) = collect(c);
        assert!(matches!(result, Err(CollectError::NoData(_))), "{result:?}");
        assert!(families.is_empty());
    }

    // IPv6 only.
    std::fs::copy(fixture("server").join("proc/net/udp6"), net.join("udp6")).unwrap();
    let (families, result) = collect(&mut every);
    result.unwrap();
    assert_eq!(
        samples(&families[0]),
        [
            ("ip=v6,queue=rx".to_string(), 6144.0),
            ("ip=v6,queue=tx".to_string(), 0.0)
        ]
    );
    // The hourly collector keeps what it found until its next scan.
    let (_, result) = collect(&mut hourly);
    assert!(matches!(result, Err(CollectError::NoData(_))));

    // A malformed table fails the scan, and is not kept.
    std::fs::write(net.join("udp"), "h\n 1: short\n").unwrap();
    let (families, result) = collect(&mut every);
    assert!(
        matches!(result, Err(CollectError::Parse { .. })),
        "{result:?}"
    );
    assert!(families.is_empty());
    std::fs::remove_file(net.join("udp")).unwrap();
    let (families, result) = collect(&mut every);
    result.unwrap();
    assert_eq!(families[0].samples.len(), 2);
}
