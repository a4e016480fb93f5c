//! The portable backend (macOS, Windows; also selectable on Linux with `--backend portable`): the
//! same model, read through sysinfo. It has no per-mode CPU times, PSI or raw meminfo; sysinfo
//! computes CPU usage itself, so the collector fills the usage percentages directly.

use regex_lite::Regex;
use sysinfo::{Components, CpuRefreshKind, Disks, Networks, ProcessesToUpdate, System};

use super::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::model::{
    percent, CoreStats, CpuStats, DiskStats, DisksStats, FilesystemStats, FilesystemsStats,
    InterfaceStats, MemoryStats, NetworkStats, Snapshot, SystemInfo, TemperatureSensor,
};

/// The portable collectors.
pub fn collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let mut list: Vec<Box<dyn Collector>> = Vec::new();
    match System::new() {
        Ok(system) => {
            list.push(Box::new(CpuCollector { system }));
        }
        Err(e) => tracing::warn!("sysinfo cannot read CPUs here: {e}"),
    }
    if let Ok(system) = System::new() {
        list.push(Box::new(MemoryCollector { system }));
    }
    if let Ok(components) = Components::new_with_refreshed_list() {
        list.push(Box::new(ThermalCollector { components }));
    }
    if let Ok(disks) = Disks::new_with_refreshed_list() {
        list.push(Box::new(DiskCollector {
            disks,
            samples: 0,
            fs_types_exclude: config.fs_types_exclude.clone(),
            mount_points_exclude: config.fs_mount_points_exclude.clone(),
        }));
    }
    if let Ok(networks) = Networks::new_with_refreshed_list() {
        list.push(Box::new(NetworkCollector {
            networks,
            aggregate_exclude: config.netdev_aggregate_exclude.clone(),
        }));
    }
    list
}

/// Static facts through sysinfo.
pub fn system_info() -> SystemInfo {
    let mut system = System::new().ok();
    if let Some(s) = system.as_mut() {
        s.refresh_cpu_specifics(CpuRefreshKind::nothing());
    }
    let cpus = system.as_ref().map_or(&[][..], |s| s.cpus());
    let threads = u32::try_from(cpus.len()).unwrap_or(u32::MAX);
    SystemInfo {
        platform: std::env::consts::OS.into(),
        os_version: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        architecture: std::env::consts::ARCH.into(),
        cpu_model: cpus
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_default(),
        cpu_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(threads),
        cpu_threads: threads,
        hostname: System::host_name().unwrap_or_default(),
        ip_address: first_ip_address(),
        boot_time_seconds: System::boot_time()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
    }
}

/// The first IPv4 address of an interface that counts as physical (not loopback or a virtual
/// NIC), else any non-loopback address; empty when there is none. Read from the local interface
/// list: no packet leaves the host.
pub fn first_ip_address() -> String {
    let Ok(networks) = Networks::new_with_refreshed_list() else {
        return String::new();
    };
    let virtual_nic = Regex::new(crate::config::DEFAULT_NETDEV_AGGREGATE_EXCLUDE).ok();
    let mut names: Vec<_> = networks.keys().collect();
    names.sort();
    let candidates = |physical_only: bool| -> Vec<std::net::IpAddr> {
        names
            .iter()
            .filter(|name| {
                let is_virtual = virtual_nic
                    .as_ref()
                    .is_some_and(|re| re.is_match(&name.to_string_lossy()));
                !(physical_only && is_virtual)
            })
            .flat_map(|name| networks[*name].ip_networks())
            .map(|n| n.addr)
            .filter(|a| !a.is_loopback() && !a.is_unspecified())
            .collect::<Vec<_>>()
    };
    let physical = candidates(true);
    let any = candidates(false);
    physical
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| physical.first())
        .or_else(|| any.iter().find(|a| a.is_ipv4()))
        .or_else(|| any.first())
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// CPU usage (computed by sysinfo between refreshes), frequency, load and task counts.
struct CpuCollector {
    system: System,
}

impl Collector for CpuCollector {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.system.refresh_cpu_all();
        self.system.refresh_processes(ProcessesToUpdate::All, true);
        let cores = self
            .system
            .cpus()
            .iter()
            .enumerate()
            .map(|(id, cpu)| CoreStats {
                id: u32::try_from(id).unwrap_or(u32::MAX),
                usage_percent: finite_percent(cpu.usage()),
                frequency_mhz: (cpu.frequency() > 0).then_some(cpu.frequency() as f64),
                ..CoreStats::default()
            })
            .collect();
        let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
            one: 0.0,
            five: 0.0,
            fifteen: 0.0,
        });
        let processes = self.system.processes();
        // Threads are known only where sysinfo lists a process's tasks (Linux); elsewhere each
        // process counts once, which undercounts but never invents numbers.
        let threads = processes
            .values()
            .map(|p| p.tasks().map_or(1, |t| t.len().max(1)) as u64)
            .sum();
        snapshot.cpu = Some(CpuStats {
            usage_percent: finite_percent(self.system.global_cpu_usage()),
            cores,
            load_average: [load.one, load.five, load.fifteen],
            processes: processes.len() as u64,
            threads,
            boot_time_seconds: System::boot_time()
                .ok()
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0),
            ..CpuStats::default()
        });
        Ok(())
    }
}

fn finite_percent(value: f32) -> f64 {
    let value = f64::from(value);
    if value.is_finite() {
        value.clamp(0.0, 100.0)
    } else {
        0.0
    }
}

/// Memory and swap.
struct MemoryCollector {
    system: System,
}

impl Collector for MemoryCollector {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.system.refresh_memory();
        let s = &self.system;
        let total = s.total_memory();
        let available = s.available_memory();
        let used = total.saturating_sub(available);
        let swap_total = s.total_swap();
        let swap_used = s.used_swap();
        snapshot.memory = Some(MemoryStats {
            total_bytes: total,
            available_bytes: available,
            used_bytes: used,
            free_bytes: s.free_memory(),
            // sysinfo does not report the page cache.
            cached_bytes: None,
            usage_percent: percent(used as f64, total as f64),
            swap_total_bytes: swap_total,
            swap_used_bytes: swap_used,
            swap_percent: percent(swap_used as f64, swap_total as f64),
            raw: Vec::new(),
        });
        Ok(())
    }
}

/// Temperature sensors.
struct ThermalCollector {
    components: Components,
}

impl Collector for ThermalCollector {
    fn name(&self) -> &'static str {
        "thermal"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.components.refresh(true);
        let sensors = self
            .components
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let celsius = f64::from(c.temperature()?);
                celsius.is_finite().then(|| TemperatureSensor {
                    chip: c.id().unwrap_or(c.label()).to_string(),
                    chip_name: c.label().to_string(),
                    sensor: format!("temp{}", i + 1),
                    label: Some(c.label().to_string()),
                    celsius,
                    critical_celsius: c.critical().map(f64::from).filter(|v| v.is_finite()),
                    max_celsius: c.max().map(f64::from).filter(|v| v.is_finite()),
                    thermal_zone: false,
                })
            })
            .collect();
        snapshot.temperatures = Some(sensors);
        Ok(())
    }
}

/// Volumes: filesystem usage, and I/O counters per disk where the OS provides them.
struct DiskCollector {
    disks: Disks,
    /// Samples taken; the volume list is rescanned every [`RESCAN_EVERY`] samples.
    samples: u64,
    fs_types_exclude: Regex,
    mount_points_exclude: Regex,
}

/// How often (in samples) the portable backends rescan their device lists.
const RESCAN_EVERY: u64 = 60;

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.disks
            .refresh(self.samples.is_multiple_of(RESCAN_EVERY));
        self.samples += 1;
        let mut mounts = Vec::new();
        let mut devices: Vec<DiskStats> = Vec::new();
        for disk in self.disks.iter() {
            let device = disk.name().to_string_lossy().into_owned();
            let fstype = disk.file_system().to_string_lossy().into_owned();
            let mountpoint = disk.mount_point().to_string_lossy().into_owned();
            if self.fs_types_exclude.is_match(&fstype)
                || self.mount_points_exclude.is_match(&mountpoint)
            {
                continue;
            }
            let first_of_device = !mounts.iter().any(|m: &FilesystemStats| m.device == device);
            let size = disk.total_space();
            let avail = disk.available_space();
            mounts.push(FilesystemStats {
                device: device.clone(),
                mountpoint,
                fstype,
                readonly: disk.is_read_only(),
                size_bytes: size,
                free_bytes: avail,
                avail_bytes: avail,
                usage_percent: percent(size.saturating_sub(avail) as f64, size as f64),
                counted_in_total: first_of_device && size > 0,
                ..FilesystemStats::default()
            });
            if first_of_device {
                let usage = disk.usage();
                devices.push(DiskStats {
                    name: device,
                    read_bytes_total: usage.total_read_bytes,
                    written_bytes_total: usage.total_written_bytes,
                    counted_in_total: true,
                    ..DiskStats::default()
                });
            }
        }
        snapshot.filesystems = Some(FilesystemsStats {
            mounts,
            ..FilesystemsStats::default()
        });
        snapshot.disks = Some(DisksStats {
            devices,
            ..DisksStats::default()
        });
        Ok(())
    }
}

/// Network interfaces.
struct NetworkCollector {
    networks: Networks,
    aggregate_exclude: Regex,
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.networks.refresh(true);
        let mut interfaces: Vec<InterfaceStats> = self
            .networks
            .iter()
            .map(|(name, data)| {
                let name = name.to_string_lossy().into_owned();
                InterfaceStats {
                    counted_in_total: !self.aggregate_exclude.is_match(&name),
                    name,
                    receive_bytes_total: data.total_received(),
                    receive_packets_total: data.total_packets_received(),
                    receive_errs_total: data.total_errors_on_received(),
                    transmit_bytes_total: data.total_transmitted(),
                    transmit_packets_total: data.total_packets_transmitted(),
                    transmit_errs_total: data.total_errors_on_transmitted(),
                    ..InterfaceStats::default()
                }
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.network = Some(NetworkStats {
            interfaces,
            ..NetworkStats::default()
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Sampler;
    use crate::config::Backend;

    /// The portable backend runs on Linux too, so its invariants are checked on every CI run.
    #[test]
    fn portable_backend_fills_every_domain_with_sane_values() {
        let config = CollectConfig {
            backend: Backend::Portable,
            ..CollectConfig::default()
        };
        let mut sampler = Sampler::from_config("portable".into(), &config);
        sampler.sample();
        std::thread::sleep(std::time::Duration::from_millis(250));
        let snap = sampler.sample();
        for status in &snap.collectors {
            assert!(status.ok, "{status:?}");
        }
        let cpu = snap.cpu.as_ref().expect("cpu");
        assert!(!cpu.cores.is_empty());
        assert!((0.0..=100.0).contains(&cpu.usage_percent));
        assert!(cpu.processes > 0 && cpu.threads >= cpu.processes);
        let mem = snap.memory.as_ref().expect("memory");
        assert!(mem.total_bytes > 0 && mem.used_bytes <= mem.total_bytes);
        assert!((0.0..=100.0).contains(&mem.usage_percent));
        let fs = snap.filesystems.as_ref().expect("filesystems");
        assert!(fs.used_bytes <= fs.total_bytes);
        let net = snap.network.as_ref().expect("network");
        assert!(net
            .interfaces
            .iter()
            .any(|i| i.name == "lo" && !i.counted_in_total));
        let info = system_info();
        assert!(info.cpu_threads as usize == cpu.cores.len());
        assert!(info.cpu_cores >= 1 && info.cpu_cores <= info.cpu_threads);
    }
}
