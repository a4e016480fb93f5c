//! Tests of `netstat`.

use std::path::Path;

use super::*;
use crate::collect::linux::fixture;
use crate::config::CollectConfig;

fn collector(proc: &Path, fields: Regex) -> NetstatCollector {
    NetstatCollector::new(&HostPaths::new(proc, "/sys", "/"), fields)
}

fn default_fields() -> Regex {
    CollectConfig::default().netstat_fields
}

fn collect(c: &mut NetstatCollector) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = c.collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

fn value(families: &[KernelFamily], name: &str) -> Option<f64> {
    let family = families.iter().find(|f| &*f.name == name)?;
    assert_eq!(family.samples.len(), 1, "{name}");
    Some(family.samples[0].value)
}

/// A /proc with the given net/ files.
fn proc_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("net").join(name), text).unwrap();
    }
    dir
}

#[test]
fn captured_vm_reports_node_exporters_default_fields() {
    let mut c = collector(&fixture("captured-vm").join("proc"), default_fields());
    let (families, result) = collect(&mut c);
    result.unwrap();
    let names: Vec<&str> = families.iter().map(|f| &*f.name).collect();
    // What node_exporter 1.5.0 reports on the same host, in its (sorted) order.
    assert_eq!(
        names,
        [
            "node_netstat_Icmp6_InErrors",
            "node_netstat_Icmp6_InMsgs",
            "node_netstat_Icmp6_OutMsgs",
            "node_netstat_Icmp_InErrors",
            "node_netstat_Icmp_InMsgs",
            "node_netstat_Icmp_OutMsgs",
            "node_netstat_Ip6_InOctets",
            "node_netstat_Ip6_OutOctets",
            "node_netstat_IpExt_InOctets",
            "node_netstat_IpExt_OutOctets",
            "node_netstat_Ip_Forwarding",
            "node_netstat_TcpExt_ListenDrops",
            "node_netstat_TcpExt_ListenOverflows",
            "node_netstat_TcpExt_SyncookiesFailed",
            "node_netstat_TcpExt_SyncookiesRecv",
            "node_netstat_TcpExt_SyncookiesSent",
            "node_netstat_TcpExt_TCPSynRetrans",
            "node_netstat_TcpExt_TCPTimeouts",
            "node_netstat_Tcp_ActiveOpens",
            "node_netstat_Tcp_CurrEstab",
            "node_netstat_Tcp_InErrs",
            "node_netstat_Tcp_InSegs",
            "node_netstat_Tcp_OutRsts",
            "node_netstat_Tcp_OutSegs",
            "node_netstat_Tcp_PassiveOpens",
            "node_netstat_Tcp_RetransSegs",
            "node_netstat_Udp6_InDatagrams",
            "node_netstat_Udp6_InErrors",
            "node_netstat_Udp6_NoPorts",
            "node_netstat_Udp6_OutDatagrams",
            "node_netstat_Udp6_RcvbufErrors",
            "node_netstat_Udp6_SndbufErrors",
            "node_netstat_UdpLite6_InErrors",
            "node_netstat_UdpLite_InErrors",
            "node_netstat_Udp_InDatagrams",
            "node_netstat_Udp_InErrors",
            "node_netstat_Udp_NoPorts",
            "node_netstat_Udp_OutDatagrams",
            "node_netstat_Udp_RcvbufErrors",
            "node_netstat_Udp_SndbufErrors",
        ]
    );
    assert!(families
        .iter()
        .all(|f| f.kind == KernelMetricKind::Untyped && f.samples[0].labels.is_empty()));
    let tcp_in_segs = families
        .iter()
        .find(|f| &*f.name == "node_netstat_Tcp_InSegs")
        .unwrap();
    assert_eq!(&*tcp_in_segs.help, "Statistic TcpInSegs.");
}

#[test]
fn server_values_come_from_the_right_file_and_column() {
    let mut c = collector(&fixture("server").join("proc"), default_fields());
    let (families, result) = collect(&mut c);
    result.unwrap();
    let expected = [
        // /proc/net/snmp
        ("node_netstat_Ip_Forwarding", 1.0),
        ("node_netstat_Tcp_CurrEstab", 10.0),
        ("node_netstat_Tcp_RetransSegs", 4_122_334.0),
        ("node_netstat_Tcp_InErrs", 1223.0),
        ("node_netstat_Udp_RcvbufErrors", 1208.0),
        ("node_netstat_Icmp_OutMsgs", 401_223.0),
        // /proc/net/netstat
        ("node_netstat_TcpExt_ListenDrops", 3420.0),
        ("node_netstat_TcpExt_TCPTimeouts", 102_234.0),
        ("node_netstat_IpExt_InOctets", 412_233_412_233_412.0),
        // /proc/net/snmp6
        ("node_netstat_Ip6_OutOctets", 49_912_233_412.0),
        ("node_netstat_Icmp6_InErrors", 4.0),
        ("node_netstat_Udp6_RcvbufErrors", 7.0),
    ];
    for (name, expected) in expected {
        assert_eq!(value(&families, name), Some(expected), "{name}");
    }
    // Left out by the default filter.
    assert_eq!(value(&families, "node_netstat_Tcp_MaxConn"), None);
    assert_eq!(value(&families, "node_netstat_IcmpMsg_InType3"), None);
}

#[test]
fn the_fields_pattern_chooses_the_families() {
    let every = Regex::new(".*").unwrap();
    let mut c = collector(&fixture("server").join("proc"), every);
    let (families, result) = collect(&mut c);
    result.unwrap();
    // Tcp: MaxConn is -1, as the kernel writes it.
    assert_eq!(value(&families, "node_netstat_Tcp_MaxConn"), Some(-1.0));
    assert_eq!(
        value(&families, "node_netstat_IcmpMsg_InType3"),
        Some(312_233.0)
    );
    assert_eq!(value(&families, "node_netstat_Icmp6_OutType135"), Some(5.0));
    assert_eq!(
        value(&families, "node_netstat_UdpLite6_InDatagrams"),
        Some(0.0)
    );
    assert!(families.windows(2).all(|w| w[0].name < w[1].name));
}

#[test]
fn snmp6_names_split_at_their_first_six() {
    let text = "Ip6InReceives                   \t2\nIcmp6OutType135 5\nUdpLite6InErrors 0\n\
                NoSixHere 1\nIp6Alone\n";
    let fields: Vec<_> = snmp6_fields(text).collect();
    assert_eq!(
        fields,
        [
            ("Ip6", "InReceives", "2"),
            ("Icmp6", "OutType135", "5"),
            ("UdpLite6", "InErrors", "0"),
        ]
    );
}

#[test]
fn snmp6_is_optional_netstat_and_snmp_are_not() {
    let server = fixture("server").join("proc/net");
    let read = |name: &str| std::fs::read_to_string(server.join(name)).unwrap();
    let (netstat, snmp) = (read("netstat"), read("snmp"));

    // IPv6 disabled: no snmp6, the rest is reported.
    let dir = proc_with(&[("netstat", &netstat), ("snmp", &snmp)]);
    let (families, result) = collect(&mut collector(dir.path(), default_fields()));
    result.unwrap();
    assert_eq!(value(&families, "node_netstat_Tcp_InErrs"), Some(1223.0));
    assert!(!families.iter().any(|f| f.name.contains("6_")));

    let dir = proc_with(&[("snmp", &snmp)]);
    let (families, result) = collect(&mut collector(dir.path(), default_fields()));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("net/netstat"), "{err}");
    assert!(families.is_empty());
}

#[test]
fn malformed_files_are_errors() {
    let cases = [
        (
            "Tcp: InSegs OutSegs\nTcp: 1 2 3\n",
            "field count mismatch for Tcp",
        ),
        ("Tcp: InSegs OutSegs\n", "no values under"),
        ("Tcp InSegs\nTcp 1\n", "no `Protocol:`"),
        ("Tcp: InSegs OutSegs\nTcp: 1 x\n", "invalid value \"x\""),
    ];
    for (snmp, message) in cases {
        let dir = proc_with(&[("netstat", ""), ("snmp", snmp)]);
        let (families, result) = collect(&mut collector(dir.path(), default_fields()));
        let err = result.unwrap_err().to_string();
        assert!(err.contains("net/snmp") && err.contains(message), "{err}");
        assert!(families.is_empty());
    }
}

#[test]
fn a_changed_header_is_read_anew() {
    let dir = proc_with(&[
        ("netstat", "TcpExt: ListenDrops\nTcpExt: 4\n"),
        ("snmp", "Tcp: InSegs\nTcp: 10\n"),
        ("snmp6", "Udp6InErrors 1\n"),
    ]);
    let mut c = collector(dir.path(), default_fields());
    let (first, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(value(&first, "node_netstat_Tcp_InSegs"), Some(10.0));
    let (again, _) = collect(&mut c);
    assert_eq!(first, again);

    // A kernel with another layout (the file rewritten in place, as a kept file sees it).
    let net = dir.path().join("net");
    std::fs::write(net.join("snmp"), "Tcp: OutSegs InSegs\nTcp: 7 11\n").unwrap();
    std::fs::write(net.join("snmp6"), "Udp6NoPorts 3\nUdp6InErrors 2\n").unwrap();
    let (families, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(value(&families, "node_netstat_Tcp_InSegs"), Some(11.0));
    assert_eq!(value(&families, "node_netstat_Tcp_OutSegs"), Some(7.0));
    assert_eq!(value(&families, "node_netstat_Udp6_NoPorts"), Some(3.0));
    assert_eq!(value(&families, "node_netstat_Udp6_InErrors"), Some(2.0));
    assert_eq!(
        value(&families, "node_netstat_TcpExt_ListenDrops"),
        Some(4.0)
    );
}

#[test]
fn live_host_counters_are_read() {
    let paths = HostPaths::default();
    if !paths.proc("net/snmp").exists() {
        return; // Not Linux with procfs.
    }
    let mut c = NetstatCollector::new(&paths, default_fields());
    let (first, result) = collect(&mut c);
    result.unwrap();
    let (second, result) = collect(&mut c);
    result.unwrap();
    let segs = |f: &[KernelFamily]| value(f, "node_netstat_Tcp_OutSegs").unwrap();
    assert!(segs(&second) >= segs(&first));
}
