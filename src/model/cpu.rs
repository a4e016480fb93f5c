//! CPU usage, frequency, load and temperature sensors.

use serde::Serialize;

/// CPU state of the host at one sample.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CpuStats {
    /// Busy share of all CPUs over the last interval (idle and iowait count as idle), 0–100.
    pub usage_percent: f64,
    /// One entry per logical CPU, ordered by id.
    pub cores: Vec<CoreStats>,
    /// Per-mode seconds summed over all CPUs (the `cpu` line of /proc/stat).
    pub total_times: CpuTimes,
    /// 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    /// Number of processes.
    pub processes: u64,
    /// Number of threads (all tasks).
    pub threads: u64,
    /// Tasks currently runnable (`procs_running`).
    pub procs_running: u64,
    /// Tasks blocked on I/O (`procs_blocked`).
    pub procs_blocked: u64,
    /// Context switches since boot.
    pub context_switches_total: u64,
    /// Interrupts serviced since boot.
    pub interrupts_total: u64,
    /// Processes and threads created since boot.
    pub forks_total: u64,
    /// Boot time, Unix seconds.
    pub boot_time_seconds: i64,
}

/// One logical CPU.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CoreStats {
    /// Logical CPU number (the N of `cpuN`).
    pub id: u32,
    /// Busy share over the last interval, 0–100.
    pub usage_percent: f64,
    /// Current frequency, when the host exposes it.
    pub frequency_mhz: Option<f64>,
    /// Minimum and maximum frequency the governor may pick, when exposed.
    pub min_frequency_mhz: Option<f64>,
    pub max_frequency_mhz: Option<f64>,
    /// Temperature of the physical core this CPU runs on (or its package), when a sensor says.
    pub temperature_celsius: Option<f64>,
    /// Physical core id within its package (`topology/core_id`), to match sensors and count cores.
    pub core_id: Option<u32>,
    /// Physical package (socket) id.
    pub package_id: Option<u32>,
    /// Raw per-mode seconds for this CPU since boot.
    pub times: CpuTimes,
}

/// Seconds spent in each mode since boot, as /proc/stat counts them (USER_HZ ticks / 100).
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct CpuTimes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
    /// Guest time is already included in `user`; kept for node_exporter's `node_cpu_guest_seconds_total`.
    pub guest: f64,
    /// Guest nice time, already included in `nice`.
    pub guest_nice: f64,
}

impl CpuTimes {
    /// Modes in node_exporter's order and names, guest modes excluded (they are part of user/nice).
    pub fn modes(&self) -> [(&'static str, f64); 8] {
        [
            ("user", self.user),
            ("nice", self.nice),
            ("system", self.system),
            ("idle", self.idle),
            ("iowait", self.iowait),
            ("irq", self.irq),
            ("softirq", self.softirq),
            ("steal", self.steal),
        ]
    }

    /// Time counted as idle: idle plus iowait.
    pub fn idle_total(&self) -> f64 {
        self.idle + self.iowait
    }

    /// All time (guest modes are already inside user and nice, so they are not added).
    pub fn total(&self) -> f64 {
        self.modes().iter().map(|(_, v)| v).sum()
    }

    /// Busy share between an earlier reading and this one, 0–100; 0 when no time passed.
    pub fn busy_percent_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total() - earlier.total();
        let idle = self.idle_total() - earlier.idle_total();
        super::percent(total - idle, total)
    }
}

/// One temperature sensor: an hwmon input or a thermal zone.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct TemperatureSensor {
    /// node_exporter's `chip` label: the hwmon device path made a name (`platform_coretemp_0`,
    /// `pci0000:00_0000:00:18_3`), or `thermal_zoneN` for a thermal zone. Unique per chip.
    pub chip: String,
    /// The chip's `name` file (`coretemp`, `k10temp`, `nvme`, `acpitz`) or the zone's `type`
    /// (`x86_pkg_temp`).
    pub chip_name: String,
    /// Sensor name: hwmon `tempN` (node_exporter's `sensor` label); `temp` for a thermal zone.
    pub sensor: String,
    /// The sensor's label (`Core 0`, `Package id 0`, `Tctl`), when it has one.
    pub label: Option<String>,
    /// Current reading.
    pub celsius: f64,
    /// Critical threshold, when the chip reports one.
    pub critical_celsius: Option<f64>,
    /// Maximum (high) threshold, when the chip reports one.
    pub max_celsius: Option<f64>,
    /// True for thermal zones (`/sys/class/thermal`), false for hwmon.
    pub thermal_zone: bool,
}
