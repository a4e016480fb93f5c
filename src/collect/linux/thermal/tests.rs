//! Tests of `thermal`.

use super::*;

use crate::collect::linux::fixture;

fn collect(paths: HostPaths) -> Vec<TemperatureSensor> {
    let mut snapshot = Snapshot::default();
    ThermalCollector::new(paths).collect(&mut snapshot).unwrap();
    snapshot.temperatures.unwrap()
}

fn find<'a>(sensors: &'a [TemperatureSensor], chip: &str, sensor: &str) -> &'a TemperatureSensor {
    sensors
        .iter()
        .find(|s| s.chip == chip && s.sensor == sensor)
        .unwrap_or_else(|| panic!("no {chip}/{sensor} in {sensors:#?}"))
}

#[test]
fn parses_values_and_cleans_names() {
    assert_eq!(parse_millidegrees("47000\n"), Some(47.0));
    assert_eq!(parse_millidegrees("-273150"), Some(-273.15));
    assert_eq!(parse_millidegrees(""), None);
    assert_eq!(parse_millidegrees("hot"), None);
    assert_eq!(clean_name("coretemp.0"), "coretemp_0");
    assert_eq!(clean_name("0000:00:18.3"), "0000:00:18_3");
    assert_eq!(clean_name("_Applesmc.768-x_\n"), "applesmc_768_x");
    assert_eq!(temp_input_index("temp12_input"), Some(12));
    assert_eq!(temp_input_index("temp1_label"), None);
    assert_eq!(temp_input_index("in0_input"), None);
}

#[test]
fn server_fixture_has_coretemp_nvme_acpitz_and_zones() {
    let sensors = collect(HostPaths::fixture(fixture("server")));
    let package1 = find(&sensors, "platform_coretemp_1", "temp1");
    assert_eq!(package1.chip_name, "coretemp");
    assert_eq!(package1.label.as_deref(), Some("Package id 1"));
    assert_eq!(package1.celsius, 52.0);
    assert_eq!(package1.critical_celsius, Some(97.0));
    assert_eq!(package1.max_celsius, Some(87.0));
    let core4 = find(&sensors, "platform_coretemp_0", "temp6");
    assert_eq!(
        (core4.label.as_deref(), core4.celsius),
        (Some("Core 4"), 46.0)
    );
    let nvme = find(&sensors, "nvme_nvme0", "temp1");
    assert_eq!((nvme.chip_name.as_str(), nvme.celsius), ("nvme", 38.85));
    assert_eq!(nvme.label.as_deref(), Some("Composite"));
    let acpi = find(&sensors, "thermal_thermal_zone0", "temp1");
    assert_eq!(
        (acpi.label.as_deref(), acpi.critical_celsius),
        (None, Some(119.0))
    );
    let zone = find(&sensors, "thermal_zone2", "temp");
    assert!(zone.thermal_zone);
    assert_eq!(
        (zone.chip_name.as_str(), zone.celsius),
        ("x86_pkg_temp", 52.0)
    );
    // 1 acpitz + 2×3 coretemp + 2 nvme inputs, 3 zones; the cooling device is not a zone.
    assert_eq!(sensors.len(), 12);
    assert_eq!(sensors.iter().filter(|s| s.thermal_zone).count(), 3);
    // hwmon chips come in hwmonN order, their inputs in N order.
    let order: Vec<(&str, &str)> = sensors
        .iter()
        .take(4)
        .map(|s| (s.chip.as_str(), s.sensor.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("thermal_thermal_zone0", "temp1"),
            ("platform_coretemp_0", "temp1"),
            ("platform_coretemp_0", "temp2"),
            ("platform_coretemp_0", "temp6"),
        ]
    );
}

#[test]
fn amd_fixture_real_directory_with_pci_device() {
    let sensors = collect(HostPaths::fixture(fixture("amd-desktop")));
    let tctl = find(&sensors, "pci0000:00_0000:00:18_3", "temp1");
    assert_eq!(tctl.chip_name, "k10temp");
    assert_eq!((tctl.label.as_deref(), tctl.celsius), (Some("Tctl"), 55.5));
    assert_eq!(
        find(&sensors, "pci0000:00_0000:00:18_3", "temp3").celsius,
        48.25
    );
    assert_eq!(sensors.len(), 2);
}

#[test]
fn amd_package_temperature_reaches_every_core_through_rates() {
    let mut snapshot = Snapshot {
        cpu: Some(crate::model::CpuStats {
            cores: vec![crate::model::CoreStats::default(); 2],
            ..Default::default()
        }),
        ..Snapshot::default()
    };
    ThermalCollector::new(HostPaths::fixture(fixture("amd-desktop")))
        .collect(&mut snapshot)
        .unwrap();
    crate::collect::rates::derive(&mut snapshot, None, 0.0);
    let cores = &snapshot.cpu.unwrap().cores;
    assert!(cores.iter().all(|c| c.temperature_celsius == Some(55.5)));
}

#[test]
fn server_cores_get_their_own_core_sensor_through_the_sampler() {
    let paths = HostPaths::fixture(fixture("server"));
    let collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(super::super::cpu::CpuCollector::new(paths.clone())),
        Box::new(ThermalCollector::new(paths)),
    ];
    let mut sampler =
        crate::collect::Sampler::new("n".into(), crate::model::SystemInfo::default(), collectors);
    let snapshot = sampler.sample();
    let temps: Vec<Option<f64>> = snapshot
        .cpu
        .as_ref()
        .unwrap()
        .cores
        .iter()
        .map(|c| c.temperature_celsius)
        .collect();
    // coretemp inputs: package 0 Core 0/4 = 44/46 °C, package 1 Core 0/4 = 49/51 °C;
    // cpu4–7 are the hyper-thread siblings of cpu0–3.
    let expected = [44.0, 46.0, 49.0, 51.0, 44.0, 46.0, 49.0, 51.0].map(Some);
    assert_eq!(temps, expected);
}

#[test]
fn naming_fallbacks_and_unreadable_sensors() {
    let tmp = tempfile::tempdir().unwrap();
    let hwmon = tmp.path().join("sys/class/hwmon");
    // hwmon0: no device link, a name → the name.
    let h0 = hwmon.join("hwmon0");
    std::fs::create_dir_all(&h0).unwrap();
    std::fs::write(h0.join("name"), "Drive Temp\n").unwrap();
    std::fs::write(h0.join("temp1_input"), "30000\n").unwrap();
    // hwmon10: neither → hwmon10; its temp2 is unreadable (a directory stands in for a file
    // that fails with EIO), temp3 holds garbage; both are skipped, temp1 still reads.
    let h10 = hwmon.join("hwmon10");
    std::fs::create_dir_all(h10.join("temp2_input")).unwrap();
    std::fs::write(h10.join("temp1_input"), "41000\n").unwrap();
    std::fs::write(h10.join("temp1_label"), "\n").unwrap();
    std::fs::write(h10.join("temp3_input"), "n/a\n").unwrap();
    // hwmon2: sensors live on the parent device (old driver), device is a relative link.
    let device = tmp.path().join("sys/devices/platform/it87.656");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("temp1_input"), "35000\n").unwrap();
    std::fs::write(device.join("temp1_crit"), "90000\n").unwrap();
    let h2 = hwmon.join("hwmon2");
    std::fs::create_dir_all(&h2).unwrap();
    std::os::unix::fs::symlink("../../../devices/platform/it87.656", h2.join("device")).unwrap();

    let sensors = collect(HostPaths::fixture(tmp.path()));
    let chips: Vec<&str> = sensors.iter().map(|s| s.chip.as_str()).collect();
    assert_eq!(chips, ["drive_temp", "platform_it87_656", "hwmon10"]);
    assert_eq!(sensors[0].chip_name, "Drive Temp");
    assert_eq!(sensors[1].critical_celsius, Some(90.0));
    assert_eq!(
        (sensors[2].celsius, sensors[2].label.as_deref()),
        (41.0, None)
    );
}

#[test]
fn no_sensors_is_an_empty_list_and_removed_chips_trigger_a_rescan() {
    let tmp = tempfile::tempdir().unwrap();
    let mut collector = ThermalCollector::new(HostPaths::fixture(tmp.path()));
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    assert_eq!(snapshot.temperatures.as_deref(), Some(&[][..]));

    let zone = tmp.path().join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "acpitz\n").unwrap();
    std::fs::write(zone.join("temp"), "27800\n").unwrap();
    for _ in 0..RESCAN_EVERY {
        collector.collect(&mut snapshot).unwrap();
    }
    assert_eq!(snapshot.temperatures.as_ref().map(Vec::len), Some(1));
    std::fs::remove_dir_all(&zone).unwrap();
    collector.collect(&mut snapshot).unwrap(); // notices the vanished file
    assert_eq!(collector.since_scan, None);
    collector.collect(&mut snapshot).unwrap();
    assert_eq!(collector.inputs.len(), 0);
}

#[test]
fn live_host_invariants() {
    let sensors = collect(HostPaths::default());
    // An independent count of what this machine exposes and can be read right now.
    let entries = |dir: &str| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let reads = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .is_some()
    };
    let hwmon_inputs: usize = entries("/sys/class/hwmon")
        .iter()
        .flat_map(|chip| entries(&chip.to_string_lossy()))
        .filter(|f| {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("temp") && name.ends_with("_input") && reads(f)
        })
        .count();
    let zones = entries("/sys/class/thermal")
        .iter()
        .filter(|z| z.to_string_lossy().contains("thermal_zone") && reads(&z.join("temp")))
        .count();
    assert_eq!(
        sensors.iter().filter(|s| !s.thermal_zone).count(),
        hwmon_inputs
    );
    assert_eq!(sensors.iter().filter(|s| s.thermal_zone).count(), zones);
    for s in &sensors {
        assert!(!s.chip.is_empty() && !s.sensor.is_empty());
        assert!(s.celsius.is_finite());
    }
}
