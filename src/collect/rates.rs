//! What the sampler derives after the collectors ran: rates from two consecutive snapshots,
//! aggregates over the devices that count, and per-core temperatures from the sensors.
//! Pure functions of snapshots.

use std::collections::HashMap;

use crate::model::{percent, CoreStats, Snapshot, TemperatureSensor};

/// Fills every derived field of `current` from `previous` (the snapshot before it, if any) and the
/// seconds between them. With no previous snapshot or no elapsed time, rates stay 0.
pub fn derive(current: &mut Snapshot, previous: Option<&Snapshot>, elapsed_seconds: f64) {
    let previous = previous.filter(|_| elapsed_seconds > 0.0);
    cpu_usage(current, previous);
    disk_rates(current, previous, elapsed_seconds);
    network_rates(current, previous, elapsed_seconds);
    filesystem_totals(current);
    core_temperatures(current);
}

/// Counter growth per second; a counter that went backwards (device re-added, wrap) gives 0.
fn per_sec(now: u64, before: u64, seconds: f64) -> f64 {
    now.saturating_sub(before) as f64 / seconds
}

fn cpu_usage(current: &mut Snapshot, previous: Option<&Snapshot>) {
    let (Some(cpu), Some(before)) = (current.cpu.as_mut(), previous.and_then(|p| p.cpu.as_ref()))
    else {
        return;
    };
    cpu.usage_percent = cpu.total_times.busy_percent_since(&before.total_times);
    let earlier: HashMap<u32, &CoreStats> = before.cores.iter().map(|c| (c.id, c)).collect();
    for core in &mut cpu.cores {
        if let Some(old) = earlier.get(&core.id) {
            core.usage_percent = core.times.busy_percent_since(&old.times);
        }
    }
}

fn disk_rates(current: &mut Snapshot, previous: Option<&Snapshot>, seconds: f64) {
    let Some(disks) = current.disks.as_mut() else {
        return;
    };
    if let Some(before) = previous.and_then(|p| p.disks.as_ref()) {
        let earlier: HashMap<&str, _> = before
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d))
            .collect();
        for d in &mut disks.devices {
            let Some(old) = earlier.get(d.name.as_str()) else {
                continue;
            };
            d.read_bytes_per_sec = per_sec(d.read_bytes_total, old.read_bytes_total, seconds);
            d.write_bytes_per_sec =
                per_sec(d.written_bytes_total, old.written_bytes_total, seconds);
            d.reads_per_sec = per_sec(d.reads_completed_total, old.reads_completed_total, seconds);
            d.writes_per_sec = per_sec(
                d.writes_completed_total,
                old.writes_completed_total,
                seconds,
            );
            let busy = (d.io_time_seconds_total - old.io_time_seconds_total).max(0.0);
            d.utilization_percent = percent(busy, seconds);
        }
    }
    let counted = || disks.devices.iter().filter(|d| d.counted_in_total);
    let read = counted().map(|d| d.read_bytes_per_sec).sum();
    let write = counted().map(|d| d.write_bytes_per_sec).sum();
    let iops = counted().map(|d| d.reads_per_sec + d.writes_per_sec).sum();
    (
        disks.read_bytes_per_sec,
        disks.write_bytes_per_sec,
        disks.iops,
    ) = (read, write, iops);
}

fn network_rates(current: &mut Snapshot, previous: Option<&Snapshot>, seconds: f64) {
    let Some(net) = current.network.as_mut() else {
        return;
    };
    if let Some(before) = previous.and_then(|p| p.network.as_ref()) {
        let earlier: HashMap<&str, _> = before
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i))
            .collect();
        for i in &mut net.interfaces {
            let Some(old) = earlier.get(i.name.as_str()) else {
                continue;
            };
            i.receive_bytes_per_sec =
                per_sec(i.receive_bytes_total, old.receive_bytes_total, seconds);
            i.transmit_bytes_per_sec =
                per_sec(i.transmit_bytes_total, old.transmit_bytes_total, seconds);
            i.receive_packets_per_sec =
                per_sec(i.receive_packets_total, old.receive_packets_total, seconds);
            i.transmit_packets_per_sec = per_sec(
                i.transmit_packets_total,
                old.transmit_packets_total,
                seconds,
            );
        }
    }
    let counted = || net.interfaces.iter().filter(|i| i.counted_in_total);
    net.receive_bytes_per_sec = counted().map(|i| i.receive_bytes_per_sec).sum();
    net.transmit_bytes_per_sec = counted().map(|i| i.transmit_bytes_per_sec).sum();
    net.receive_packets_per_sec = counted().map(|i| i.receive_packets_per_sec).sum();
    net.transmit_packets_per_sec = counted().map(|i| i.transmit_packets_per_sec).sum();
}

fn filesystem_totals(current: &mut Snapshot) {
    let Some(fs) = current.filesystems.as_mut() else {
        return;
    };
    let counted = || fs.mounts.iter().filter(|m| m.counted_in_total);
    fs.total_bytes = counted().map(|m| m.size_bytes).sum();
    fs.used_bytes = counted()
        .map(|m| m.size_bytes.saturating_sub(m.free_bytes))
        .sum();
    fs.usage_percent = percent(fs.used_bytes as f64, fs.total_bytes as f64);
}

/// Gives each logical CPU the temperature of its physical core: Intel's coretemp `Core N` sensor
/// of the chip that reports `Package id P`; else the package sensor (AMD `Tctl`/`Tdie`, coretemp
/// `Package id P`); else the `x86_pkg_temp` thermal zone. Cores with no matching sensor keep None.
fn core_temperatures(current: &mut Snapshot) {
    let (Some(cpu), Some(sensors)) = (current.cpu.as_mut(), current.temperatures.as_ref()) else {
        return;
    };
    let hwmon: Vec<&TemperatureSensor> = sensors.iter().filter(|s| !s.thermal_zone).collect();
    // chip → package id, from the chip's `Package id N` sensor.
    let package_of_chip: HashMap<&str, u32> = hwmon
        .iter()
        .filter_map(|s| {
            let id = s.label.as_deref()?.strip_prefix("Package id ")?;
            Some((s.chip.as_str(), id.trim().parse().ok()?))
        })
        .collect();
    let cpu_chips: Vec<&&TemperatureSensor> = hwmon
        .iter()
        .filter(|s| matches!(s.chip_name.as_str(), "coretemp" | "k10temp" | "zenpower"))
        .collect();
    let single_chip = {
        let mut chips: Vec<&str> = cpu_chips.iter().map(|s| s.chip.as_str()).collect();
        chips.dedup();
        chips.len() == 1
    };
    let on_package = |s: &TemperatureSensor, package: Option<u32>| {
        single_chip || package_of_chip.get(s.chip.as_str()).copied() == package
    };
    let zone = sensors
        .iter()
        .find(|s| s.thermal_zone && s.chip_name == "x86_pkg_temp")
        .map(|s| s.celsius);
    for core in &mut cpu.cores {
        let label_is = |s: &TemperatureSensor, want: &str| s.label.as_deref() == Some(want);
        let by_core = core.core_id.and_then(|id| {
            let want = format!("Core {id}");
            cpu_chips
                .iter()
                .find(|s| label_is(s, &want) && on_package(s, core.package_id))
        });
        let by_package = || {
            cpu_chips.iter().find(|s| {
                let package_label = s
                    .label
                    .as_deref()
                    .is_some_and(|l| l.starts_with("Package id ") || l == "Tctl" || l == "Tdie");
                package_label && on_package(s, core.package_id)
            })
        };
        core.temperature_celsius = by_core.or_else(by_package).map(|s| s.celsius).or(zone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CpuStats, CpuTimes, DiskStats, DisksStats, InterfaceStats, NetworkStats};

    fn times(busy: f64, idle: f64) -> CpuTimes {
        CpuTimes {
            user: busy,
            idle,
            ..CpuTimes::default()
        }
    }

    fn cpu(total: CpuTimes, cores: Vec<CpuTimes>) -> Option<CpuStats> {
        Some(CpuStats {
            total_times: total,
            cores: cores
                .into_iter()
                .enumerate()
                .map(|(i, t)| CoreStats {
                    id: i as u32,
                    core_id: Some(i as u32),
                    package_id: Some(0),
                    times: t,
                    ..CoreStats::default()
                })
                .collect(),
            ..CpuStats::default()
        })
    }

    #[test]
    fn cpu_usage_is_busy_share_of_the_interval() {
        let before = Snapshot {
            cpu: cpu(times(10.0, 10.0), vec![times(5.0, 5.0), times(5.0, 5.0)]),
            ..Snapshot::default()
        };
        let mut now = Snapshot {
            cpu: cpu(times(13.0, 11.0), vec![times(8.0, 5.0), times(5.0, 6.0)]),
            ..Snapshot::default()
        };
        derive(&mut now, Some(&before), 1.0);
        let cpu = now.cpu.unwrap();
        assert_eq!(cpu.usage_percent, 75.0);
        assert_eq!(cpu.cores[0].usage_percent, 100.0);
        assert_eq!(cpu.cores[1].usage_percent, 0.0);
    }

    #[test]
    fn first_sample_has_zero_rates() {
        let mut now = Snapshot {
            cpu: cpu(times(13.0, 11.0), vec![]),
            ..Snapshot::default()
        };
        derive(&mut now, None, 0.0);
        assert_eq!(now.cpu.unwrap().usage_percent, 0.0);
    }

    #[test]
    fn disk_and_network_rates_sum_counted_devices_and_survive_resets() {
        let disk = |name: &str, read: u64, counted: bool| DiskStats {
            name: name.into(),
            read_bytes_total: read,
            reads_completed_total: read / 512,
            io_time_seconds_total: read as f64 / 4096.0,
            counted_in_total: counted,
            ..DiskStats::default()
        };
        let iface = |name: &str, rx: u64, counted: bool| InterfaceStats {
            name: name.into(),
            receive_bytes_total: rx,
            counted_in_total: counted,
            ..InterfaceStats::default()
        };
        let snap = |sda, md0, eth0, lo| Snapshot {
            disks: Some(DisksStats {
                devices: vec![disk("sda", sda, true), disk("md0", md0, false)],
                ..DisksStats::default()
            }),
            network: Some(NetworkStats {
                interfaces: vec![iface("eth0", eth0, true), iface("lo", lo, false)],
                ..NetworkStats::default()
            }),
            ..Snapshot::default()
        };
        let before = snap(1024, 1024, 1000, 5000);
        let mut now = snap(1024 + 2048, 4096, 500, 9000);
        derive(&mut now, Some(&before), 2.0);
        let disks = now.disks.unwrap();
        assert_eq!(disks.read_bytes_per_sec, 1024.0);
        assert_eq!(disks.iops, 2.0);
        assert_eq!(disks.devices[1].read_bytes_per_sec, 1536.0);
        assert_eq!(disks.devices[0].utilization_percent, 25.0);
        let net = now.network.unwrap();
        // eth0's counter went backwards: 0, not a huge number; lo is not counted.
        assert_eq!(net.receive_bytes_per_sec, 0.0);
        assert_eq!(net.interfaces[1].receive_bytes_per_sec, 2000.0);
    }

    fn sensor(chip: &str, name: &str, label: &str, celsius: f64) -> TemperatureSensor {
        TemperatureSensor {
            chip: chip.into(),
            chip_name: name.into(),
            sensor: "temp1".into(),
            label: Some(label.into()),
            celsius,
            ..TemperatureSensor::default()
        }
    }

    #[test]
    fn core_temperatures_follow_package_and_core_ids() {
        let mut snap = Snapshot {
            cpu: cpu(CpuTimes::default(), vec![CpuTimes::default(); 3]),
            temperatures: Some(vec![
                sensor("platform_coretemp_0", "coretemp", "Package id 0", 50.0),
                sensor("platform_coretemp_0", "coretemp", "Core 0", 41.0),
                sensor("platform_coretemp_0", "coretemp", "Core 1", 42.0),
                sensor("platform_coretemp_1", "coretemp", "Package id 1", 60.0),
                sensor("platform_coretemp_1", "coretemp", "Core 0", 61.0),
            ]),
            ..Snapshot::default()
        };
        if let Some(cpu) = snap.cpu.as_mut() {
            cpu.cores[2].core_id = Some(0);
            cpu.cores[2].package_id = Some(1);
        }
        derive(&mut snap, None, 0.0);
        let temps: Vec<_> = snap
            .cpu
            .unwrap()
            .cores
            .iter()
            .map(|c| c.temperature_celsius)
            .collect();
        assert_eq!(temps, [Some(41.0), Some(42.0), Some(61.0)]);
    }

    #[test]
    fn amd_package_sensor_applies_to_every_core() {
        let mut snap = Snapshot {
            cpu: cpu(CpuTimes::default(), vec![CpuTimes::default(); 2]),
            temperatures: Some(vec![sensor(
                "pci0000:00_0000:00:18_3",
                "k10temp",
                "Tctl",
                55.5,
            )]),
            ..Snapshot::default()
        };
        derive(&mut snap, None, 0.0);
        assert!(snap
            .cpu
            .unwrap()
            .cores
            .iter()
            .all(|c| c.temperature_celsius == Some(55.5)));
    }
}
