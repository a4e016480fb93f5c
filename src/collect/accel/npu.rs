//! Intel NPUs (Meteor Lake and later) from the `intel_vpu` driver's sysfs, read through
//! `--path.sysfs`: each `/sys/class/accel/accelN/device` bound to `intel_vpu`, with the
//! attributes of drivers/accel/ivpu/ivpu_sysfs.c (`npu_busy_time_us`,
//! `npu_current_frequency_mhz`, `npu_max_frequency_mhz`, `npu_memory_utilization`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sysfs;
use crate::collect::{numbered_dirs, read_number, CollectError, Collector, HostPaths};
use crate::config::CollectConfig;
use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, Snapshot, Vendor};

/// The kernel driver of Intel NPUs (`DRIVER_NAME` in ivpu_drv.h).
const DRIVER: &str = "intel_vpu";
/// Intel's PCI vendor id, for trees where the `driver` link is missing.
const INTEL_VENDOR: u16 = 0x8086;

/// How often the device list is read again (an NPU is part of the SoC: it appears only when the
/// driver is loaded late); a device that disappears triggers a rescan at once.
const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// The collector, or `None` where this host has no Intel NPU (checked once, at start).
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let collector = NpuCollector::new(config.paths.clone());
    if collector.devices.is_empty() {
        tracing::debug!(
            sysfs = %config.paths.sysfs.display(),
            "no intel_vpu device under class/accel; NPU collector off"
        );
        return None;
    }
    Some(Box::new(collector))
}

/// The SoC generation of an NPU, by the PCI device ids the ivpu driver binds (ivpu_drv.h).
fn generation(device_id: u16) -> Option<&'static str> {
    Some(match device_id {
        0x7d1d => "Meteor Lake",
        0xad1d => "Arrow Lake",
        0x643e => "Lunar Lake",
        0xb03e => "Panther Lake",
        0xfd3e => "Wildcat Lake",
        0xd71d => "Nova Lake",
        _ => return None,
    })
}

/// The product name: `Intel NPU (Meteor Lake)`, or with the device id where the generation is
/// not known yet (`Intel NPU 0x1234`).
fn npu_name(device_id: Option<u16>) -> String {
    match device_id {
        Some(id) => match generation(id) {
            Some(generation) => format!("Intel NPU ({generation})"),
            None => format!("Intel NPU {id:#06x}"),
        },
        None => "Intel NPU".to_string(),
    }
}

/// Busy share of the interval between two readings of the busy-time counter, 0–100. `None`
/// when the counter went backwards (driver reloaded) or no time passed.
pub fn busy_percent(previous_us: u64, current_us: u64, wall: Duration) -> Option<f64> {
    let busy = current_us.checked_sub(previous_us)?;
    let wall_us = wall.as_secs_f64() * 1e6;
    // The counter includes the job running at the moment of each read, so a busy NPU read
    // a little late can exceed the wall time by a few µs.
    (wall_us > 0.0).then(|| (busy as f64 / wall_us * 100.0).clamp(0.0, 100.0))
}

/// One `npu_busy_time_us` reading and when it was taken.
#[derive(Debug, Clone, Copy)]
struct BusyReading {
    /// The counter, µs of busy time since the driver was loaded.
    busy_us: u64,
    /// When it was read (monotonic).
    at: Instant,
}

/// One NPU: where its files are, its static facts, and the previous busy-time reading.
#[derive(Debug, Clone)]
struct Npu {
    /// The NPU's PCI device directory (`class/accel/accelN/device`).
    device: PathBuf,
    /// The accelerator with its identity and static facts; values are filled in each sample.
    model: Accelerator,
    /// The last reading of the busy-time counter; utilization is the busy share since then.
    previous: Option<BusyReading>,
}

impl Npu {
    /// Reads `accelN` if its device is an Intel NPU.
    fn open(minor: u32, accel: &Path) -> Option<Npu> {
        let device = accel.join("device");
        let is_npu = match sysfs::driver_name(&device) {
            Some(driver) => driver == DRIVER,
            None => sysfs::read_pci_id(&device, "vendor") == Some(INTEL_VENDOR),
        };
        if !is_npu {
            return None;
        }
        let model = Accelerator {
            id: format!("npu{minor}"),
            index: minor,
            kind: AcceleratorKind::Npu,
            vendor: Vendor::Intel,
            name: npu_name(sysfs::read_pci_id(&device, "device")),
            pci_bus_id: sysfs::pci_bus_id(&device),
            info: AcceleratorInfo {
                architecture: sysfs::read_pci_id(&device, "device")
                    .and_then(generation)
                    .map(str::to_string),
                ..AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        Some(Npu {
            device,
            model,
            previous: None,
        })
    }

    /// The NPU at this sample; utilization from the busy time since the previous sample.
    fn read(&mut self) -> Accelerator {
        let now = Instant::now();
        let busy_us: Option<u64> = read_number(self.device.join("npu_busy_time_us"));
        let utilization_percent = match (self.previous, busy_us) {
            (Some(previous), Some(current)) => {
                busy_percent(previous.busy_us, current, now - previous.at)
            }
            _ => None,
        };
        self.previous = busy_us.map(|busy_us| BusyReading { busy_us, at: now });
        Accelerator {
            utilization_percent,
            // 0 while the NPU is runtime-suspended (the driver does not wake it to read).
            sm_clock_mhz: read_number(self.device.join("npu_current_frequency_mhz")),
            // Bytes of resident buffers; the NPU shares system memory, so there is no total.
            memory_used_bytes: read_number(self.device.join("npu_memory_utilization")),
            ..self.model.clone()
        }
    }
}

/// Reads every Intel NPU each sample; the device list every minute (`RESCAN_EVERY`).
pub struct NpuCollector {
    /// Where /sys is.
    paths: HostPaths,
    /// The NPUs found by the last scan, by accel minor.
    devices: Vec<Npu>,
    /// When the last scan ran.
    scanned_at: Instant,
}

impl NpuCollector {
    /// Scans `paths`' sysfs for NPUs.
    pub fn new(paths: HostPaths) -> Self {
        let mut collector = Self {
            paths,
            devices: Vec::new(),
            scanned_at: Instant::now(),
        };
        collector.scan();
        collector
    }

    /// Reads the device list again, keeping each known device's previous busy reading.
    fn scan(&mut self) {
        let mut previous = std::mem::take(&mut self.devices);
        self.devices = numbered_dirs(&self.paths.sys("class/accel"), "accel")
            .into_iter()
            .filter_map(|(minor, accel)| {
                let mut npu = Npu::open(minor, &accel)?;
                if let Some(old) = previous.iter_mut().find(|o| o.model.id == npu.model.id) {
                    npu.previous = old.previous.take();
                }
                Some(npu)
            })
            .collect();
        self.scanned_at = Instant::now();
    }
}

impl Collector for NpuCollector {
    fn name(&self) -> &'static str {
        "npu"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let vanished = self.devices.iter().any(|d| !d.device.exists());
        if vanished || self.scanned_at.elapsed() >= RESCAN_EVERY {
            self.scan();
        }
        snapshot
            .accelerators
            .extend(self.devices.iter_mut().map(Npu::read));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_share_of_the_interval() {
        let second = Duration::from_secs(1);
        assert_eq!(busy_percent(1_000_000, 1_250_000, second), Some(25.0));
        assert_eq!(busy_percent(5, 5, second), Some(0.0));
        // Read a little late while a job runs: capped at 100.
        assert_eq!(busy_percent(0, 1_000_050, second), Some(100.0));
        // Driver reloaded: the counter restarted.
        assert_eq!(busy_percent(9_000_000, 10, second), None);
        assert_eq!(busy_percent(0, 10, Duration::ZERO), None);
    }

    #[test]
    fn names_by_generation() {
        assert_eq!(npu_name(Some(0x7d1d)), "Intel NPU (Meteor Lake)");
        assert_eq!(npu_name(Some(0x643e)), "Intel NPU (Lunar Lake)");
        assert_eq!(npu_name(Some(0x1234)), "Intel NPU 0x1234");
        assert_eq!(npu_name(None), "Intel NPU");
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::collect::accel::sysfs::workstation;

    fn collect(collector: &mut NpuCollector) -> Vec<Accelerator> {
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        snapshot.accelerators
    }

    #[test]
    fn reads_the_meteor_lake_npu() {
        let mut collector = NpuCollector::new(workstation());
        let first = collect(&mut collector);
        assert_eq!(first.len(), 1);
        let npu = &first[0];
        assert_eq!(npu.id, "npu0");
        assert_eq!(npu.kind, AcceleratorKind::Npu);
        assert_eq!(npu.vendor, Vendor::Intel);
        assert_eq!(npu.name, "Intel NPU (Meteor Lake)");
        assert_eq!(npu.pci_bus_id.as_deref(), Some("0000:00:0b.0"));
        assert_eq!(npu.info.architecture.as_deref(), Some("Meteor Lake"));
        assert_eq!(npu.sm_clock_mhz, Some(1400.0));
        assert_eq!(npu.memory_used_bytes, Some(157_286_400));
        assert_eq!(npu.memory_total_bytes, None);
        // A counter: no utilization before a second reading.
        assert_eq!(npu.utilization_percent, None);
        // The fixture's counter does not move: idle.
        assert_eq!(collect(&mut collector)[0].utilization_percent, Some(0.0));
    }

    #[test]
    fn no_collector_without_an_npu() {
        let empty = tempfile::tempdir().unwrap();
        let config = CollectConfig {
            paths: HostPaths::fixture(empty.path()),
            ..CollectConfig::default()
        };
        assert!(collector(&config).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn utilization_is_busy_time_over_wall_time() {
        let dir = tempfile::tempdir().unwrap();
        crate::collect::accel::sysfs::copy_tree(&workstation().sysfs, &dir.path().join("sys"))
            .unwrap();
        let paths = HostPaths::fixture(dir.path());
        // Another accel device (a Habana Gaudi) is not an NPU.
        let gaudi = paths.sys("devices/pci0000:80/0000:80:00.0");
        std::fs::create_dir_all(gaudi.join("accel/accel1")).unwrap();
        std::fs::write(gaudi.join("vendor"), "0x1da3\n").unwrap();
        std::os::unix::fs::symlink("../../../bus/pci/drivers/habanalabs", gaudi.join("driver"))
            .unwrap();
        std::os::unix::fs::symlink("../../../0000:80:00.0", gaudi.join("accel/accel1/device"))
            .unwrap();
        std::os::unix::fs::symlink(
            "../../devices/pci0000:80/0000:80:00.0/accel/accel1",
            paths.sys("class/accel/accel1"),
        )
        .unwrap();

        let busy = paths.sys("class/accel/accel0/device/npu_busy_time_us");
        let mut collector = NpuCollector::new(paths.clone());
        let started = Instant::now();
        assert_eq!(collect(&mut collector).len(), 1);
        std::thread::sleep(Duration::from_millis(200));
        // 50 ms busy over at least 200 ms of wall time.
        std::fs::write(&busy, format!("{}\n", 84_233_127 + 50_000)).unwrap();
        let npus = collect(&mut collector);
        let wall = started.elapsed().as_secs_f64();
        let percent = npus[0].utilization_percent.unwrap();
        assert!(percent <= 25.0, "{percent}");
        assert!(
            percent >= 0.05 / wall * 100.0 - 1e-9,
            "{percent} over {wall} s"
        );
        // The driver was reloaded: the counter restarted, no figure for this interval.
        std::fs::write(&busy, "1000\n").unwrap();
        assert_eq!(collect(&mut collector)[0].utilization_percent, None);
    }
}
