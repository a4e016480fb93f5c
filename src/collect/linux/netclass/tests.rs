//! Tests of `netclass`.

use super::*;
use crate::collect::linux::fixture;

fn collect(c: &mut NetClassCollector) -> (Vec<KernelFamily>, Result<(), CollectError>) {
    let mut snapshot = Snapshot::default();
    let result = c.collect(&mut snapshot);
    (snapshot.kernel_families, result)
}

/// `device=value` of one family, in sample order.
fn per_device(families: &[KernelFamily], name: &str) -> Vec<(String, f64)> {
    let family = families
        .iter()
        .find(|f| &*f.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    family
        .samples
        .iter()
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect()
}

fn pairs(list: &[(&str, f64)]) -> Vec<(String, f64)> {
    list.iter().map(|(d, v)| (d.to_string(), *v)).collect()
}

#[test]
fn numbers_parse_as_go_parse_int_with_base_zero() {
    assert_eq!(parse_number("0x1003"), Some(4099));
    assert_eq!(parse_number("0x0"), Some(0));
    assert_eq!(parse_number("1500"), Some(1500));
    assert_eq!(parse_number("-1"), Some(-1));
    assert_eq!(parse_number("0"), Some(0));
    assert_eq!(parse_number("010"), Some(8));
    assert_eq!(parse_number("0b101"), Some(5));
    assert_eq!(parse_number(""), None);
    assert_eq!(parse_number("up"), None);
    assert_eq!(parse_number("0x"), None);
    assert_eq!(parse_number("--1"), None);
    assert_eq!(parse_number("9223372036854775808"), None);
}

#[test]
fn captured_vm_matches_node_exporter() {
    let mut c = NetClassCollector::new(&HostPaths::fixture(fixture("captured-vm")));
    let (families, result) = collect(&mut c);
    result.unwrap();
    let names: Vec<&str> = families.iter().map(|f| &*f.name).collect();
    assert_eq!(
        names,
        [
            "node_network_address_assign_type",
            "node_network_carrier",
            "node_network_carrier_changes_total",
            "node_network_carrier_down_changes_total",
            "node_network_carrier_up_changes_total",
            "node_network_device_id",
            "node_network_dormant",
            "node_network_flags",
            "node_network_iface_id",
            "node_network_iface_link",
            "node_network_iface_link_mode",
            "node_network_info",
            "node_network_mtu_bytes",
            "node_network_name_assign_type",
            "node_network_net_dev_group",
            "node_network_protocol_type",
            "node_network_speed_bytes",
            "node_network_transmit_queue_length",
            "node_network_up",
        ]
    );
    // What node_exporter 1.5.0 reported on this VM.
    assert_eq!(
        per_device(&families, "node_network_up"),
        pairs(&[("eth0", 1.0), ("ifb0", 0.0), ("ifb1", 0.0), ("lo", 0.0)])
    );
    assert_eq!(
        per_device(&families, "node_network_carrier"),
        pairs(&[("eth0", 1.0), ("lo", 1.0)])
    );
    assert_eq!(
        per_device(&families, "node_network_speed_bytes"),
        pairs(&[("eth0", -125_000.0)])
    );
    assert_eq!(
        per_device(&families, "node_network_flags"),
        pairs(&[
            ("eth0", 4099.0),
            ("ifb0", 130.0),
            ("ifb1", 130.0),
            ("lo", 9.0)
        ])
    );
    assert_eq!(
        per_device(&families, "node_network_name_assign_type"),
        pairs(&[("eth0", 1.0), ("lo", 2.0)])
    );
    for f in &families {
        let counter = f.name.ends_with("_total");
        let expected = if counter {
            KernelMetricKind::Counter
        } else {
            KernelMetricKind::Gauge
        };
        assert_eq!(f.kind, expected, "{}", f.name);
    }
    let info = families
        .iter()
        .find(|f| &*f.name == "node_network_info")
        .unwrap();
    let lo = &info.samples[3];
    let labels: Vec<(&str, &str)> = lo.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        labels,
        [
            ("device", "lo"),
            ("address", "00:00:00:00:00:00"),
            ("broadcast", "00:00:00:00:00:00"),
            ("duplex", ""),
            ("operstate", "unknown"),
            ("ifalias", ""),
        ]
    );
}

#[test]
fn server_fixture() {
    let mut c = NetClassCollector::new(&HostPaths::fixture(fixture("server")));
    let (families, result) = collect(&mut c);
    result.unwrap();
    // eno2 is down: no carrier, speed, duplex or dormant; bridges have no speed.
    assert_eq!(
        per_device(&families, "node_network_speed_bytes"),
        pairs(&[
            ("bond0", 12_500_000_000.0),
            ("cali123", 1_250_000_000.0),
            ("eno1", 125_000_000.0),
            ("ens1f0", 12_500_000_000.0),
            ("ib0", 25_000_000_000.0),
            ("veth1a2b3c", 1_250_000_000.0),
        ])
    );
    let carrier = per_device(&families, "node_network_carrier");
    assert_eq!(carrier.len(), 10);
    assert!(!carrier.iter().any(|(d, _)| d == "eno2"));
    let of = |name: &str, device: &str| {
        per_device(&families, name)
            .into_iter()
            .find(|(d, _)| d == device)
            .map(|(_, v)| v)
    };
    assert_eq!(of("node_network_carrier_changes_total", "eno1"), Some(4.0));
    assert_eq!(of("node_network_flags", "docker0"), Some(4099.0));
    assert_eq!(of("node_network_flags", "ens1f0"), Some(6147.0));
    assert_eq!(of("node_network_protocol_type", "ib0"), Some(32.0));
    let info = families
        .iter()
        .find(|f| &*f.name == "node_network_info")
        .unwrap();
    let eno1 = &info.samples[4];
    assert_eq!(eno1.labels[0].1, "eno1");
    assert_eq!(eno1.labels[3], ("duplex", "full".to_string()));
    assert_eq!(eno1.labels[5], ("ifalias", "uplink to tor-a".to_string()));
}

/// A sysfs tree with one interface.
fn one_interface(sys: &Path, name: &str, attributes: &[(&str, &str)]) {
    let dir = sys.join("class/net").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in attributes {
        std::fs::write(dir.join(file), format!("{text}\n")).unwrap();
    }
}

#[test]
fn attributes_are_read_again_when_the_link_moves() {
    let root = tempfile::tempdir().unwrap();
    let sys = root.path();
    one_interface(
        sys,
        "eth0",
        &[
            ("operstate", "up"),
            ("carrier_changes", "1"),
            ("mtu", "1500"),
            ("speed", "1000"),
        ],
    );
    // bonding's file among the interfaces is not one.
    std::fs::write(sys.join("class/net/bonding_masters"), "bond0\n").unwrap();
    let mut c = NetClassCollector::new(&HostPaths::new("/proc", sys, "/"));
    let (families, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(
        per_device(&families, "node_network_up"),
        pairs(&[("eth0", 1.0)])
    );
    let dir = sys.join("class/net/eth0");

    // An MTU changed by hand is seen at the next refresh, not at once.
    std::fs::write(dir.join("mtu"), "9000\n").unwrap();
    let (families, _) = collect(&mut c);
    assert_eq!(
        per_device(&families, "node_network_mtu_bytes"),
        pairs(&[("eth0", 1500.0)])
    );

    // The link went down and up again at 10G: carrier_changes moved, everything is read again.
    std::fs::write(dir.join("carrier_changes"), "3\n").unwrap();
    std::fs::write(dir.join("speed"), "10000\n").unwrap();
    let (families, _) = collect(&mut c);
    assert_eq!(
        per_device(&families, "node_network_speed_bytes"),
        pairs(&[("eth0", 1_250_000_000.0)])
    );
    assert_eq!(
        per_device(&families, "node_network_mtu_bytes"),
        pairs(&[("eth0", 9000.0)])
    );

    // Down: operstate moved.
    std::fs::write(dir.join("operstate"), "down\n").unwrap();
    std::fs::remove_file(dir.join("speed")).unwrap();
    let (families, _) = collect(&mut c);
    assert_eq!(
        per_device(&families, "node_network_up"),
        pairs(&[("eth0", 0.0)])
    );
    assert!(!families
        .iter()
        .any(|f| &*f.name == "node_network_speed_bytes"));

    // A new interface is read when it appears; a removed one is dropped.
    one_interface(sys, "eth1", &[("operstate", "up"), ("mtu", "1500")]);
    let (families, _) = collect(&mut c);
    assert_eq!(
        per_device(&families, "node_network_up"),
        pairs(&[("eth0", 0.0), ("eth1", 1.0)])
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let (families, _) = collect(&mut c);
    assert_eq!(
        per_device(&families, "node_network_mtu_bytes"),
        pairs(&[("eth1", 1500.0)])
    );
}

#[test]
fn interfaces_beyond_the_kept_ones_are_read_by_opening_their_files() {
    let root = tempfile::tempdir().unwrap();
    let sys = root.path();
    let count = KEPT_INTERFACES + 3;
    for i in 0..count {
        one_interface(sys, &format!("veth{i:03}"), &[("operstate", "up")]);
    }
    let mut c = NetClassCollector::new(&HostPaths::new("/proc", sys, "/"));
    let (families, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(per_device(&families, "node_network_up").len(), count);
    let kept = c
        .interfaces
        .iter()
        .filter(|i| i.operstate.is_kept())
        .count();
    assert_eq!(kept, KEPT_INTERFACES);
    // The transient ones still follow changes.
    let last = sys.join(format!("class/net/veth{:03}/operstate", count - 1));
    std::fs::write(last, "down\n").unwrap();
    let (families, _) = collect(&mut c);
    assert_eq!(per_device(&families, "node_network_up")[count - 1].1, 0.0);
}

#[test]
fn no_class_net_is_no_data() {
    let root = tempfile::tempdir().unwrap();
    let mut c = NetClassCollector::new(&HostPaths::new("/proc", root.path(), "/"));
    let (families, result) = collect(&mut c);
    assert!(matches!(result, Err(CollectError::NoData(_))), "{result:?}");
    assert!(families.is_empty());
}

#[test]
fn live_host_interfaces_are_listed() {
    let paths = HostPaths::default();
    if !paths.sys("class/net/lo").exists() {
        return; // Not Linux with sysfs.
    }
    let mut c = NetClassCollector::new(&paths);
    let (families, result) = collect(&mut c);
    result.unwrap();
    let up = per_device(&families, "node_network_up");
    assert!(up.iter().any(|(d, _)| d == "lo"), "{up:?}");
    let (again, result) = collect(&mut c);
    result.unwrap();
    assert_eq!(
        per_device(&again, "node_network_iface_id"),
        per_device(&families, "node_network_iface_id")
    );
}
