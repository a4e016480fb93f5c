//! Tests of `network`.

use super::*;
use crate::config::CollectConfig;

use crate::collect::linux::fixture;

/// One sample with the default configuration (connections from the kernel's counter).
fn collect(paths: HostPaths) -> (NetworkStats, Result<(), CollectError>) {
    collect_with(paths, CollectConfig::default().tcp_scan_interval)
}

/// One sample of a collector that scans the TCP tables (`--collector.tcp.scan-interval 30s`).
fn scanned(paths: HostPaths) -> (NetworkStats, Result<(), CollectError>) {
    collect_with(paths, Some(Duration::from_secs(30)))
}

fn collect_with(
    paths: HostPaths,
    tcp_scan_interval: Option<Duration>,
) -> (NetworkStats, Result<(), CollectError>) {
    let config = CollectConfig::default();
    let mut collector =
        NetworkCollector::new(paths, config.netdev_aggregate_exclude, tcp_scan_interval);
    let mut snapshot = Snapshot::default();
    let result = collector.collect(&mut snapshot);
    (snapshot.network.unwrap_or_default(), result)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn parses_every_counter_of_a_row() {
    let row = parse_net_dev_line(
        "  eno1: 918223412233 712233412    0 1203    0     0          0    412233 \
         412990234112 402213998    0    0    0     0       0          0",
    )
    .unwrap();
    assert_eq!(row.name, "eno1");
    let s = row.to_stats(true);
    assert_eq!(s.receive_bytes_total, 918_223_412_233);
    assert_eq!(s.receive_drop_total, 1203);
    assert_eq!(s.receive_multicast_total, 412_233);
    assert_eq!(s.transmit_bytes_total, 412_990_234_112);
    assert_eq!(s.transmit_packets_total, 402_213_998);

    let counters: Vec<String> = (1..=16).map(|i| i.to_string()).collect();
    let line = format!("eth0:{}", counters.join(" "));
    let glued = parse_net_dev_line(&line).unwrap();
    assert_eq!(glued.name, "eth0");
    assert_eq!(glued.counters, std::array::from_fn(|i| i as u64 + 1));
}

#[test]
fn malformed_interface_rows_are_errors() {
    assert!(parse_net_dev_line("eth0 1 2 3")
        .unwrap_err()
        .contains("no `name:`"));
    assert!(parse_net_dev_line("eth0: 1 2 3")
        .unwrap_err()
        .contains("fewer than 16"));
    assert!(
        parse_net_dev_line("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x")
            .unwrap_err()
            .contains("\"x\"")
    );
    assert!(parse_net_dev_line(": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").is_err());

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    std::fs::write(dir.path().join("net/dev"), "h1\nh2\n  lo: 1 2\n").unwrap();
    let (net, result) = collect(HostPaths::new(dir.path(), "/sys", "/"));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("net/dev") && err.contains("interface row 1"),
        "{err}"
    );
    assert!(net.interfaces.is_empty());
}

#[test]
fn counts_established_rows_only() {
    let table = b"  sl  local_address rem_address   st tx_queue\n\
        0: 00000000:0016 00000000:0000 0A 00000000:00000000\n\
        1: 0100007F:1F90 0100007F:C800 01 00000000:00000000\n\
        2: 0100007F:C800 0100007F:1F90 01 00000000:00000000\n\
        3: 0100007F:C802 0100007F:1F90 06 00000000:00000000\n\
        \n";
    assert_eq!(count_established(table), Ok(2));
    assert_eq!(
        count_established(b"  sl  local_address rem_address   st\n"),
        Ok(0)
    );
    assert_eq!(count_established(b""), Ok(0));
    // "01" must be the whole state word, not a prefix of it.
    assert_eq!(count_established(b"h\n 0: a b 011 c\n 1: a b 10 c"), Ok(0));
    assert!(count_established(b"header\n   0: 0100007F:1F90\n")
        .unwrap_err()
        .contains("row 1"));
}

#[test]
fn streaming_matches_whole_table_across_chunk_boundaries() {
    let table = read(&fixture("server").join("proc/net/tcp"));
    let whole = count_established(&table).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcp");
    std::fs::write(&path, &table).unwrap();
    // Chunks smaller than the file and not aligned to rows split lines across reads.
    for size in [160, 200, 333, 1000, TCP_CHUNK_BYTES] {
        let mut chunk = vec![0; size];
        assert_eq!(
            count_established_in(&path, &mut chunk).unwrap(),
            Some(whole),
            "{size}"
        );
    }
    let mut tiny = vec![0; 64];
    let err = count_established_in(&path, &mut tiny)
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than the read buffer"), "{err}");
    let missing = dir.path().join("tcp6");
    assert_eq!(count_established_in(&missing, &mut tiny).unwrap(), None);
}

#[test]
fn server_fixture_end_to_end() {
    let (net, result) = collect(HostPaths::fixture(fixture("server")));
    result.unwrap();
    let names: Vec<_> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lo",
            "eno1",
            "eno2",
            "ens1f0",
            "bond0",
            "ib0",
            "docker0",
            "veth1a2b3c",
            "cni0",
            "flannel.1",
            "cali123"
        ]
    );
    let counted: Vec<_> = net
        .interfaces
        .iter()
        .filter(|i| i.counted_in_total)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(counted, ["eno1", "eno2", "ens1f0", "bond0", "ib0"]);
    let ib0 = &net.interfaces[5];
    assert_eq!(ib0.receive_bytes_total, 98_122_341_220_012);
    assert_eq!(ib0.transmit_packets_total, 41_199_812_230);
    // From sysfs, beside /proc/net/dev's counters.
    assert_eq!(net.interfaces[1].receive_nohandler_total, Some(34));
    assert_eq!(ib0.receive_nohandler_total, Some(0));
    // Cross-check against each table counted on its own.
    let dir = fixture("server").join("proc/net");
    let v4 = count_established(&read(&dir.join("tcp"))).unwrap();
    let v6 = count_established(&read(&dir.join("tcp6"))).unwrap();
    assert_eq!((v4, v6), (7, 3));
    // By default, the kernel's counter (the fixture's `Tcp: … CurrEstab` is 10), and no scan.
    assert_eq!(net.tcp_current_established, Some(10));
    assert_eq!(net.tcp_established, None);
    assert_eq!(net.connections(), Some(10));
    let (scan, result) = scanned(HostPaths::fixture(fixture("server")));
    result.unwrap();
    assert_eq!(scan.tcp_established, Some(10));
    assert_eq!(scan.tcp_current_established, None);
    assert_eq!(scan.interfaces, net.interfaces);
}

#[test]
fn captured_vm_end_to_end() {
    let (net, result) = collect(HostPaths::fixture(fixture("captured-vm")));
    result.unwrap();
    let names: Vec<_> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    assert!(!net.interfaces[0].counted_in_total);
    assert!(net.interfaces[3].counted_in_total);
    assert!(net.interfaces[3].receive_bytes_total > 0);
    // Captured as it was: the counter said 0 while the tables were read with one row open.
    assert_eq!(net.connections(), Some(0));
    let dir = fixture("captured-vm").join("proc/net");
    let expected = count_established(&read(&dir.join("tcp"))).unwrap()
        + count_established(&read(&dir.join("tcp6"))).unwrap();
    let (scan, _) = scanned(HostPaths::fixture(fixture("captured-vm")));
    assert_eq!(
        (scan.tcp_established, scan.connections()),
        (Some(1), Some(expected))
    );
}

#[test]
fn the_counter_is_read_each_sample_and_its_faults_lose_only_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    std::fs::create_dir_all(proc.join("net")).unwrap();
    std::fs::copy(fixture("server").join("proc/net/dev"), proc.join("net/dev")).unwrap();
    let exclude = CollectConfig::default().netdev_aggregate_exclude;
    let mut collector = NetworkCollector::new(HostPaths::new(proc, "/sys", "/"), exclude, None);
    let mut sample = || {
        let mut snapshot = Snapshot::default();
        let result = collector.collect(&mut snapshot);
        (snapshot.network.unwrap_or_default(), result)
    };
    // No /proc/net/snmp (an odd namespace): no count, and nothing failed.
    let (net, result) = sample();
    result.unwrap();
    assert_eq!((net.connections(), net.interfaces.len()), (None, 11));

    let snmp = |estab: &str| {
        format!(
            "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
             Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens CurrEstab InSegs\n\
             Tcp: 1 200 120000 -1 55 {estab} 9000\n\
             Udp: InDatagrams\nUdp: 12\n"
        )
    };
    std::fs::write(proc.join("net/snmp"), snmp("5")).unwrap();
    assert_eq!(sample().0.connections(), Some(5));
    // Read again each sample, from the file kept open.
    std::fs::write(proc.join("net/snmp"), snmp("6")).unwrap();
    assert_eq!(sample().0.connections(), Some(6));

    std::fs::write(proc.join("net/snmp"), snmp("many")).unwrap();
    let (net, result) = sample();
    assert!(
        matches!(result, Err(CollectError::Partial(ref m)) if m.contains("net/snmp") && m.contains("\"many\"")),
        "{result:?}"
    );
    assert_eq!((net.connections(), net.interfaces.len()), (None, 11));
}

#[test]
fn current_established_reads_the_tcp_lines_by_header() {
    let text = std::fs::read_to_string(fixture("server").join("proc/net/snmp")).unwrap();
    assert_eq!(current_established(&text), Ok(10));
    assert_eq!(
        current_established("Tcp: CurrEstab MaxConn\nTcp: 3 -1\n"),
        Ok(3),
        "found by name, wherever it is"
    );
    assert!(current_established("Ip: Forwarding\nIp: 1\n")
        .unwrap_err()
        .contains("no Tcp lines"));
    assert!(current_established("Tcp: MaxConn\nTcp: -1\n")
        .unwrap_err()
        .contains("no CurrEstab"));
    assert!(current_established("Tcp: MaxConn CurrEstab\nTcp: -1\n")
        .unwrap_err()
        .contains("end before CurrEstab"));
    assert!(current_established("Tcp: CurrEstab\n").is_err());
}

#[test]
fn tcp_tables_are_scanned_once_per_scan_interval() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    std::fs::create_dir_all(proc.join("net")).unwrap();
    let server = fixture("server").join("proc/net");
    std::fs::copy(server.join("dev"), proc.join("net/dev")).unwrap();
    std::fs::copy(server.join("tcp"), proc.join("net/tcp")).unwrap();
    let exclude = CollectConfig::default().netdev_aggregate_exclude;
    let paths = HostPaths::new(proc, "/sys", "/");
    let mut hourly = NetworkCollector::new(
        paths.clone(),
        exclude.clone(),
        Some(Duration::from_secs(3600)),
    );
    let mut every = NetworkCollector::new(paths, exclude, Some(Duration::ZERO));
    let count = |c: &mut NetworkCollector| {
        let mut snapshot = Snapshot::default();
        c.collect(&mut snapshot).unwrap();
        snapshot.network.unwrap().tcp_established
    };
    assert_eq!(count(&mut hourly), Some(7));
    assert_eq!(count(&mut every), Some(7));
    // The table changes: the hourly collector keeps its last count, the other sees the change.
    std::fs::write(
        proc.join("net/tcp"),
        "  sl  local_address rem_address   st\n",
    )
    .unwrap();
    assert_eq!(count(&mut hourly), Some(7));
    assert_eq!(count(&mut every), Some(0));
}

#[test]
fn missing_tcp_tables() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    std::fs::create_dir_all(proc.join("net")).unwrap();
    let server = fixture("server").join("proc/net");
    std::fs::copy(server.join("dev"), proc.join("net/dev")).unwrap();
    let paths = || HostPaths::new(proc, "/sys", "/");

    let (net, result) = scanned(paths());
    result.unwrap();
    assert_eq!(net.tcp_established, None);

    std::fs::copy(server.join("tcp"), proc.join("net/tcp")).unwrap();
    let (net, _) = scanned(paths());
    assert_eq!(net.tcp_established, Some(7), "IPv6 disabled: IPv4 alone");

    // A corrupt table loses the count, not the interfaces; the collector still succeeds.
    std::fs::write(proc.join("net/tcp6"), "header\n 0: short\n").unwrap();
    let (net, result) = scanned(paths());
    assert!(matches!(result, Err(CollectError::Partial(ref m)) if m.contains("tcp6")));
    assert_eq!(net.tcp_established, None);
    assert_eq!(net.interfaces.len(), 11);
}

#[test]
fn live_counters_do_not_decrease_and_connections_are_seen() {
    let paths = HostPaths::default();
    if !paths.proc("net/dev").exists() {
        return; // Not Linux with procfs.
    }
    let (first, result) = collect(paths.clone());
    result.unwrap();
    // Hold an established loopback connection (both ends) while sampling.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let (second, result) = collect(paths.clone());
    result.unwrap();
    let (scan, result) = scanned(paths);
    result.unwrap();
    for now in &second.interfaces {
        let Some(before) = first.interfaces.iter().find(|i| i.name == now.name) else {
            continue;
        };
        assert!(
            now.receive_bytes_total >= before.receive_bytes_total,
            "{}",
            now.name
        );
        assert!(
            now.transmit_bytes_total >= before.transmit_bytes_total,
            "{}",
            now.name
        );
        assert!(
            now.receive_packets_total >= before.receive_packets_total,
            "{}",
            now.name
        );
    }
    let rows: usize = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| t.lines().count().saturating_sub(1))
        .sum();
    for (how, established) in [
        ("counter", second.tcp_current_established),
        ("scan", scan.tcp_established),
    ] {
        let established = established.unwrap();
        assert!(established >= 2, "{how}: our own connection: {established}");
        // Other sockets come and go between the reads; allow some slack.
        assert!(
            established <= rows as u64 + 64,
            "{how}: {established} > {rows} rows"
        );
    }
    drop((client, server));
}

#[test]
fn without_sysfs_there_is_no_nohandler_count_and_nothing_else_is_lost() {
    let empty = tempfile::tempdir().unwrap();
    let server = fixture("server");
    let (net, result) = collect(HostPaths::new(server.join("proc"), empty.path(), "/"));
    result.unwrap();
    assert_eq!(net.interfaces.len(), 11);
    assert!(net
        .interfaces
        .iter()
        .all(|i| i.receive_nohandler_total.is_none()));
    assert_eq!(net.connections(), Some(10));
}
