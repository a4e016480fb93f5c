//! AMD GPUs from the amdgpu driver's sysfs, read through `--path.sysfs`: each
//! `/sys/class/drm/cardN/device` whose PCI vendor is AMD (0x1002), with its `hwmon/hwmonM` chip
//! for temperatures, power, fan and clocks. No library and no subprocess (rocm-smi reads the same
//! files).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sysfs;
use crate::collect::{
    numbered_dirs, read_number, read_optional, CollectError, Collector, HostPaths,
};
use crate::config::CollectConfig;
use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, Snapshot, Vendor};

/// AMD's PCI vendor id.
const AMD_VENDOR: u16 = 0x1002;

/// How often the card list and the static facts are read again. GPUs come and go only with a
/// driver reload or a hot-plug (rare), while the scan reads a dozen files per card; a card that
/// disappears triggers a rescan at once (see [`AmdCollector::collect`]). The rescan also picks
/// up a changed `power_dpm_force_performance_level`.
const RESCAN_EVERY: Duration = Duration::from_secs(60);

/// The collector, or `None` where this host has no AMD GPU (checked once, at start).
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let collector = AmdCollector::new(config.paths.clone());
    if collector.cards.is_empty() {
        tracing::debug!(
            sysfs = %config.paths.sysfs.display(),
            "no AMD GPU under class/drm; AMD collector off"
        );
        return None;
    }
    Some(Box::new(collector))
}

/// One current DPM (dynamic power management) clock table, `pp_dpm_sclk` or `pp_dpm_mclk`:
/// lines `N: <freq>Mhz`, the active level marked with `*`. RDNA parts add a deep-sleep level
/// `S: <freq>Mhz`, which is a state, not part of the range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmClocks {
    /// The level marked active, MHz.
    pub current_mhz: Option<f64>,
    /// The lowest numbered level, MHz.
    pub min_mhz: Option<f64>,
    /// The highest numbered level, MHz.
    pub max_mhz: Option<f64>,
}

impl DpmClocks {
    /// The range as rocm-smi writes it (and the legacy `GpuAmdInfo.sclk_range` expects):
    /// `500Mhz - 2500Mhz`.
    pub fn range(&self) -> Option<String> {
        Some(format!(
            "{}Mhz - {}Mhz",
            self.min_mhz?.round(),
            self.max_mhz?.round()
        ))
    }
}

/// Parses a `pp_dpm_*` clock table.
pub fn parse_dpm(text: &str) -> DpmClocks {
    let mut clocks = DpmClocks {
        current_mhz: None,
        min_mhz: None,
        max_mhz: None,
    };
    for line in text.lines() {
        let Some((level, rest)) = line.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let Ok(mhz) = rest[..digits].parse::<f64>() else {
            continue;
        };
        if rest.ends_with('*') {
            clocks.current_mhz = Some(mhz);
        }
        if level.trim().parse::<u32>().is_ok() {
            clocks.min_mhz = Some(clocks.min_mhz.map_or(mhz, |m| m.min(mhz)));
            clocks.max_mhz = Some(clocks.max_mhz.map_or(mhz, |m| m.max(mhz)));
        }
    }
    clocks
}

/// The readable name of a card without a FRU product name (consumer boards): the PCI device id.
fn fallback_name(device_id: Option<u16>) -> String {
    match device_id {
        Some(id) => format!("AMD GPU {id:#06x}"),
        None => "AMD GPU".to_string(),
    }
}

/// A GPU as the ROCm compute driver (KFD) describes it in
/// `class/kfd/kfd/topology/nodes/N/properties`: the only place sysfs gives the shader ISA and
/// the compute-unit count. CPU nodes have no SIMDs and are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfdNode {
    /// PCI domain of the GPU.
    pub domain: u32,
    /// PCI bus, device and function packed as `bus << 8 | device << 3 | function`.
    pub location_id: u32,
    /// The shader ISA, e.g. `gfx1100`, `gfx90a`.
    pub architecture: String,
    /// Compute units (`simd_count / simd_per_cu`).
    pub compute_units: Option<u32>,
}

/// Parses a KFD node's `properties` (`key value` lines); `None` for a CPU node.
pub fn parse_kfd_node(text: &str) -> Option<KfdNode> {
    let value = |key: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let gfx = value("gfx_target_version").filter(|&v| v > 0)?;
    let simds = value("simd_count").filter(|&n| n > 0)?;
    Some(KfdNode {
        domain: u32::try_from(value("domain").unwrap_or(0)).ok()?,
        location_id: u32::try_from(value("location_id")?).ok()?,
        // major·10000 + minor·100 + stepping, written as LLVM names targets (stepping in hex).
        architecture: format!("gfx{}{}{:x}", gfx / 10_000, gfx / 100 % 100, gfx % 100),
        compute_units: value("simd_per_cu")
            .filter(|&n| n > 0)
            .and_then(|per_cu| u32::try_from(simds / per_cu).ok()),
    })
}

/// The KFD location of a PCI address `DDDD:BB:DD.F`: (domain, `bus << 8 | device << 3 | fn`).
fn kfd_location(pci_bus_id: &str) -> Option<(u32, u32)> {
    let mut parts = pci_bus_id.split([':', '.']);
    let mut hex = || u32::from_str_radix(parts.next()?, 16).ok();
    let (domain, bus, device, function) = (hex()?, hex()?, hex()?, hex()?);
    Some((domain, bus << 8 | device << 3 | function))
}

/// ECC error counts of one RAS block file (`ras/umc_err_count`: `ue: 0` and `ce: 3` lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EccCounts {
    /// Corrected (`ce`).
    pub corrected: u64,
    /// Uncorrected (`ue`).
    pub uncorrected: u64,
}

/// Parses a RAS `*_err_count` file.
pub fn parse_ras_count(text: &str) -> Option<EccCounts> {
    let count = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
    };
    Some(EccCounts {
        corrected: count("ce:")?,
        uncorrected: count("ue:")?,
    })
}

/// What one scan reads once for every card.
#[derive(Debug, Default)]
struct HostFacts {
    /// The amdgpu module version (out-of-tree builds only).
    driver_version: Option<String>,
    /// The GPUs of the KFD topology.
    kfd_nodes: Vec<KfdNode>,
}

/// A file's trimmed contents, `None` when absent, unreadable or empty (amdgpu creates
/// `product_name` on every board but leaves it empty where the board has no FRU EEPROM).
fn read_text(path: PathBuf) -> Option<String> {
    read_optional(path).filter(|s| !s.is_empty())
}

/// Which temperature input of the amdgpu hwmon chip means what. amdgpu labels its inputs
/// (`edge`, `junction`, `mem`); boards without an edge sensor (MI200/MI300) start at junction,
/// so the labels are read rather than the positions assumed.
#[derive(Debug, Clone, Default)]
struct TemperatureInputs {
    /// `edge`, else `junction`: the GPU temperature rocm-smi shows first.
    gpu: Option<PathBuf>,
    /// `mem` (HBM/VRAM).
    memory: Option<PathBuf>,
}

impl TemperatureInputs {
    fn find(hwmon: &Path) -> Self {
        let (mut edge, mut junction, mut memory) = (None, None, None);
        for n in 1..=3 {
            let input = hwmon.join(format!("temp{n}_input"));
            if !input.exists() {
                continue;
            }
            // Unlabelled inputs follow amdgpu's order: temp1 edge, temp2 junction, temp3 mem.
            let label = read_optional(hwmon.join(format!("temp{n}_label")))
                .unwrap_or_else(|| ["edge", "junction", "mem"][n - 1].to_string());
            match label.as_str() {
                "edge" => edge = Some(input),
                "junction" => junction = Some(input),
                "mem" => memory = Some(input),
                _ => {}
            }
        }
        Self {
            gpu: edge.or(junction),
            memory,
        }
    }
}

/// One AMD card: where its files are, and what was read once.
#[derive(Debug, Clone)]
struct Card {
    /// The card's PCI device directory (`class/drm/cardN/device`).
    device: PathBuf,
    /// Its amdgpu hwmon chip, where the driver registered one.
    hwmon: Option<PathBuf>,
    /// Temperature inputs found in `hwmon`.
    temperatures: TemperatureInputs,
    /// `power1_average` (older SMUs) or `power1_input` (RDNA3, MI300), µW.
    power: Option<PathBuf>,
    /// The RAS error-count files (`ras/*_err_count`, one per hardware block); only boards with
    /// ECC (Instinct, some Radeon Pro) have them.
    ras_counts: Vec<PathBuf>,
    /// The accelerator with its identity and static facts; values are filled in each sample.
    model: Accelerator,
}

impl Card {
    /// Reads the card `cardN` if its device is an AMD GPU.
    fn open(index: u32, card: &Path, host: &HostFacts) -> Option<Card> {
        let device = card.join("device");
        if sysfs::read_pci_id(&device, "vendor") != Some(AMD_VENDOR) {
            return None;
        }
        let hwmon = numbered_dirs(&device.join("hwmon"), "hwmon")
            .into_iter()
            .next()
            .map(|(_, dir)| dir);
        let temperatures = hwmon
            .as_deref()
            .map(TemperatureInputs::find)
            .unwrap_or_default();
        let power = hwmon.as_ref().and_then(|h| {
            ["power1_average", "power1_input"]
                .into_iter()
                .map(|f| h.join(f))
                .find(|p| p.exists())
        });
        let sclk = read_optional(device.join("pp_dpm_sclk")).map(|t| parse_dpm(&t));
        let mclk = read_optional(device.join("pp_dpm_mclk")).map(|t| parse_dpm(&t));
        let max_power_watts = hwmon
            .as_ref()
            .and_then(|h| read_number::<f64>(h.join("power1_cap_max")))
            .map(microwatts);
        let pci_bus_id = sysfs::pci_bus_id(&device);
        let kfd = pci_bus_id
            .as_deref()
            .and_then(kfd_location)
            .and_then(|(domain, location)| {
                host.kfd_nodes
                    .iter()
                    .find(|n| n.domain == domain && n.location_id == location)
            });
        let ras_counts = sysfs::entries(&device.join("ras"))
            .into_iter()
            .filter(|p| p.to_str().is_some_and(|n| n.ends_with("_err_count")))
            .collect();
        let model = Accelerator {
            id: format!("amd{index}"),
            index,
            kind: AcceleratorKind::Gpu,
            vendor: Vendor::Amd,
            name: read_text(device.join("product_name"))
                .unwrap_or_else(|| fallback_name(sysfs::read_pci_id(&device, "device"))),
            uuid: read_text(device.join("unique_id")),
            pci_bus_id,
            info: AcceleratorInfo {
                driver_version: host.driver_version.clone(),
                architecture: kfd.map(|n| n.architecture.clone()),
                cores: kfd.and_then(|n| n.compute_units),
                vbios_version: read_text(device.join("vbios_version")),
                performance_level: read_text(device.join("power_dpm_force_performance_level")),
                sku: read_text(device.join("product_number")),
                sclk_range: sclk.and_then(|c| c.range()),
                mclk_range: mclk.and_then(|c| c.range()),
                max_power_watts,
                ..AcceleratorInfo::default()
            },
            ..Accelerator::default()
        };
        Some(Card {
            device,
            hwmon,
            temperatures,
            power,
            ras_counts,
            model,
        })
    }

    /// The card at this sample. A value the driver does not give (a runtime-suspended dGPU
    /// answers EPERM/EBUSY) is `None`.
    fn read(&self) -> Accelerator {
        let device = &self.device;
        let hwmon = |file: &str| -> Option<f64> { read_number(self.hwmon.as_ref()?.join(file)) };
        let celsius = |path: &Option<PathBuf>| -> Option<f64> {
            read_number::<f64>(path.as_ref()?).map(|m| m / 1000.0)
        };
        // The hwmon frequency inputs are in Hz; older kernels have none, and the active DPM
        // level is the next best reading.
        let clock = |hwmon_file: &str, dpm_file: &str| -> Option<f64> {
            hwmon(hwmon_file)
                .map(|hz| hz / 1e6)
                .or_else(|| parse_dpm(&read_optional(device.join(dpm_file))?).current_mhz)
        };
        let sclk = clock("freq1_input", "pp_dpm_sclk");
        let ecc: Option<EccCounts> = (!self.ras_counts.is_empty()).then(|| {
            let blocks = self
                .ras_counts
                .iter()
                .filter_map(|p| read_optional(p).as_deref().and_then(parse_ras_count));
            blocks.fold(EccCounts::default(), |sum, c| EccCounts {
                corrected: sum.corrected + c.corrected,
                uncorrected: sum.uncorrected + c.uncorrected,
            })
        });
        Accelerator {
            utilization_percent: read_number(device.join("gpu_busy_percent")),
            memory_utilization_percent: read_number(device.join("mem_busy_percent")),
            memory_used_bytes: read_number(device.join("mem_info_vram_used")),
            memory_total_bytes: read_number(device.join("mem_info_vram_total")),
            temperature_celsius: celsius(&self.temperatures.gpu),
            memory_temperature_celsius: celsius(&self.temperatures.memory),
            power_watts: self
                .power
                .as_ref()
                .and_then(read_number::<f64>)
                .map(microwatts),
            power_limit_watts: hwmon("power1_cap").map(microwatts),
            // amdgpu's pwm1 is 0–255 whatever the fan's RPM range (fan1_input is RPM).
            fan_speed_percent: hwmon("pwm1").map(|pwm| (pwm / 255.0 * 100.0).clamp(0.0, 100.0)),
            // sclk drives both the shader engines and the graphics pipeline.
            sm_clock_mhz: sclk,
            graphics_clock_mhz: sclk,
            memory_clock_mhz: clock("freq2_input", "pp_dpm_mclk"),
            pcie_link_gen: read_optional(device.join("current_link_speed"))
                .as_deref()
                .and_then(sysfs::parse_link_gen),
            pcie_link_width: read_number(device.join("current_link_width")),
            // Summed over the RAS blocks (memory, GFX, SDMA, …), like NVML's volatile totals.
            ecc_errors_corrected: ecc.map(|e| e.corrected),
            ecc_errors_uncorrected: ecc.map(|e| e.uncorrected),
            ..self.model.clone()
        }
    }
}

/// sysfs power values are microwatts.
fn microwatts(uw: f64) -> f64 {
    uw / 1e6
}

/// Reads every AMD card each sample; the card list and static facts every minute (`RESCAN_EVERY`).
pub struct AmdCollector {
    /// Where /sys is.
    paths: HostPaths,
    /// The AMD cards found by the last scan, by card number.
    cards: Vec<Card>,
    /// When the last scan ran.
    scanned_at: Instant,
}

impl AmdCollector {
    /// Scans `paths`' sysfs for AMD cards.
    pub fn new(paths: HostPaths) -> Self {
        let mut collector = Self {
            paths,
            cards: Vec::new(),
            scanned_at: Instant::now(),
        };
        collector.scan();
        collector
    }

    fn scan(&mut self) {
        let host = HostFacts {
            // Set only by out-of-tree (DKMS) amdgpu builds; the in-tree driver has no version.
            driver_version: read_text(self.paths.sys("module/amdgpu/version")),
            kfd_nodes: sysfs::entries(&self.paths.sys("class/kfd/kfd/topology/nodes"))
                .iter()
                .filter_map(|node| parse_kfd_node(&read_optional(node.join("properties"))?))
                .collect(),
        };
        self.cards = numbered_dirs(&self.paths.sys("class/drm"), "card")
            .into_iter()
            .filter_map(|(n, card)| Card::open(n, &card, &host))
            .collect();
        self.scanned_at = Instant::now();
    }
}

impl Collector for AmdCollector {
    fn name(&self) -> &'static str {
        "amd"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let vanished = self.cards.iter().any(|c| !c.device.exists());
        if vanished || self.scanned_at.elapsed() >= RESCAN_EVERY {
            self.scan();
        }
        snapshot
            .accelerators
            .extend(self.cards.iter().map(Card::read));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpm_table_with_current_level() {
        let clocks = parse_dpm("0: 500Mhz \n1: 1200Mhz *\n2: 2500Mhz \n");
        assert_eq!(clocks.current_mhz, Some(1200.0));
        assert_eq!(clocks.min_mhz, Some(500.0));
        assert_eq!(clocks.max_mhz, Some(2500.0));
        assert_eq!(clocks.range().as_deref(), Some("500Mhz - 2500Mhz"));
    }

    #[test]
    fn dpm_deep_sleep_level_is_current_but_not_in_range() {
        // RDNA3 with the GPU idle: the deep-sleep level is active.
        let clocks = parse_dpm("S: 19Mhz *\n0: 500Mhz \n1: 2371Mhz \n2: 2526Mhz \n");
        assert_eq!(clocks.current_mhz, Some(19.0));
        assert_eq!(clocks.range().as_deref(), Some("500Mhz - 2526Mhz"));
    }

    #[test]
    fn dpm_without_marker_or_levels() {
        let clocks = parse_dpm("0: 96Mhz\n1: 456Mhz\n");
        assert_eq!(clocks.current_mhz, None);
        assert_eq!(clocks.range().as_deref(), Some("96Mhz - 456Mhz"));
        let empty = parse_dpm("");
        assert_eq!(empty.range(), None);
        assert_eq!(parse_dpm("garbage\n0: Mhz *\n").current_mhz, None);
    }

    #[test]
    fn kfd_nodes_give_the_isa_and_compute_units() {
        let mi210 = "simd_count 416\nsimd_per_cu 4\ngfx_target_version 90010\n\
                     vendor_id 4098\ndevice_id 29711\nlocation_id 16640\ndomain 0\n";
        assert_eq!(
            parse_kfd_node(mi210),
            Some(KfdNode {
                domain: 0,
                location_id: 0x4100,
                architecture: "gfx90a".into(),
                compute_units: Some(104),
            })
        );
        let navi = "simd_count 192\nsimd_per_cu 2\ngfx_target_version 110000\nlocation_id 768\n";
        let navi = parse_kfd_node(navi).unwrap();
        assert_eq!(navi.architecture, "gfx1100");
        assert_eq!(navi.compute_units, Some(96));
        assert_eq!(
            parse_kfd_node("simd_count 64\ngfx_target_version 90402\nlocation_id 1\n")
                .map(|n| (n.architecture, n.compute_units)),
            Some(("gfx942".to_string(), None))
        );
        // The CPU node.
        let cpu = "cpu_cores_count 16\nsimd_count 0\ngfx_target_version 0\nlocation_id 0\n";
        assert_eq!(parse_kfd_node(cpu), None);
        assert_eq!(kfd_location("0000:41:00.0"), Some((0, 0x4100)));
        assert_eq!(kfd_location("0001:c1:00.1"), Some((1, 0xc101)));
        assert_eq!(kfd_location("card1"), None);
    }

    #[test]
    fn ras_error_counts() {
        assert_eq!(
            parse_ras_count("ue: 1\nce: 2\n"),
            Some(EccCounts {
                corrected: 2,
                uncorrected: 1
            })
        );
        assert_eq!(parse_ras_count("ue: 0\n"), None);
        assert_eq!(parse_ras_count(""), None);
    }

    #[test]
    fn name_falls_back_to_the_device_id() {
        assert_eq!(fallback_name(Some(0x744c)), "AMD GPU 0x744c");
        assert_eq!(fallback_name(Some(0x73bf)), "AMD GPU 0x73bf");
        assert_eq!(fallback_name(None), "AMD GPU");
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::collect::accel::sysfs::workstation;

    fn collect(collector: &mut AmdCollector) -> Vec<Accelerator> {
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        snapshot.accelerators
    }

    #[test]
    fn reads_both_amd_cards_of_the_workstation() {
        let cards = collect(&mut AmdCollector::new(workstation()));
        // card0 is the Intel iGPU and card1-DP-1 a connector: neither is read.
        let ids: Vec<&str> = cards.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["amd1", "amd2"]);

        let navi = &cards[0];
        assert_eq!(navi.kind, AcceleratorKind::Gpu);
        assert_eq!(navi.vendor, Vendor::Amd);
        assert_eq!(navi.index, 1);
        assert_eq!(navi.name, "AMD GPU 0x744c");
        assert_eq!(navi.uuid, None);
        assert_eq!(navi.pci_bus_id.as_deref(), Some("0000:03:00.0"));
        assert_eq!(navi.utilization_percent, Some(37.0));
        assert_eq!(navi.memory_utilization_percent, Some(12.0));
        assert_eq!(navi.memory_used_bytes, Some(3_422_552_064));
        assert_eq!(navi.memory_total_bytes, Some(25_753_026_560));
        assert_eq!(navi.temperature_celsius, Some(54.0));
        assert_eq!(navi.memory_temperature_celsius, Some(62.0));
        // power1_input (no power1_average on this board), µW.
        assert_eq!(navi.power_watts, Some(212.0));
        assert_eq!(navi.power_limit_watts, Some(355.0));
        assert_eq!(navi.fan_speed_percent, Some(87.0 / 255.0 * 100.0));
        // From the hwmon frequency inputs (Hz).
        assert_eq!(navi.sm_clock_mhz, Some(2210.0));
        assert_eq!(navi.graphics_clock_mhz, Some(2210.0));
        assert_eq!(navi.memory_clock_mhz, Some(1249.0));
        assert_eq!(navi.pcie_link_gen, Some(4));
        assert_eq!(navi.pcie_link_width, Some(16));
        assert_eq!(navi.info.vbios_version.as_deref(), Some("113-D7020100-102"));
        assert_eq!(navi.info.performance_level.as_deref(), Some("auto"));
        assert_eq!(navi.info.sclk_range.as_deref(), Some("500Mhz - 2526Mhz"));
        assert_eq!(navi.info.mclk_range.as_deref(), Some("96Mhz - 1249Mhz"));
        assert_eq!(navi.info.max_power_watts, Some(402.0));
        assert_eq!(navi.info.sku, None);
        assert_eq!(navi.info.architecture.as_deref(), Some("gfx1100"));
        assert_eq!(navi.info.cores, Some(96));
        assert_eq!(navi.ecc_errors_corrected, None, "no RAS on this board");
        assert_eq!(navi.error, None);

        let mi210 = &cards[1];
        assert_eq!(mi210.name, "Instinct MI210");
        assert_eq!(mi210.uuid.as_deref(), Some("9d3f2a17c4e5b068"));
        assert_eq!(mi210.pci_bus_id.as_deref(), Some("0000:41:00.0"));
        assert_eq!(mi210.info.sku.as_deref(), Some("102-D67302-00"));
        assert_eq!(
            mi210.info.performance_level.as_deref(),
            Some("perf_determinism")
        );
        assert_eq!(mi210.utilization_percent, Some(100.0));
        assert_eq!(mi210.info.architecture.as_deref(), Some("gfx90a"));
        assert_eq!(mi210.info.cores, Some(104));
        // umc 1 ue + 2 ce, gfx 1 ce, sdma 0.
        assert_eq!(mi210.ecc_errors_corrected, Some(3));
        assert_eq!(mi210.ecc_errors_uncorrected, Some(1));
        assert_eq!(mi210.power_watts, Some(287.0), "power1_average");
        assert_eq!(mi210.power_limit_watts, Some(300.0));
        assert_eq!(mi210.fan_speed_percent, None, "passively cooled");
        // No hwmon frequency inputs: the active DPM levels.
        assert_eq!(mi210.sm_clock_mhz, Some(1700.0));
        assert_eq!(mi210.memory_clock_mhz, Some(1600.0));
        assert_eq!(mi210.pcie_link_gen, Some(3));
        assert_eq!(mi210.pcie_link_width, Some(8));
        assert_eq!(mi210.temperature_celsius, Some(48.0));
        assert_eq!(mi210.memory_temperature_celsius, Some(58.0));
    }

    #[test]
    fn no_collector_without_an_amd_card() {
        let empty = tempfile::tempdir().unwrap();
        let config = CollectConfig {
            paths: HostPaths::fixture(empty.path()),
            ..CollectConfig::default()
        };
        assert!(collector(&config).is_none());
        let config = CollectConfig {
            paths: workstation(),
            ..CollectConfig::default()
        };
        assert!(collector(&config).is_some());
    }

    #[test]
    fn junction_stands_in_for_a_missing_edge_sensor() {
        // MI300-style hwmon: no edge input, labelled junction and mem.
        let hwmon = tempfile::tempdir().unwrap();
        for (file, value) in [
            ("temp2_input", "61000"),
            ("temp2_label", "junction"),
            ("temp3_input", "57000"),
            ("temp3_label", "mem"),
        ] {
            std::fs::write(hwmon.path().join(file), value).unwrap();
        }
        let inputs = TemperatureInputs::find(hwmon.path());
        assert_eq!(inputs.gpu, Some(hwmon.path().join("temp2_input")));
        assert_eq!(inputs.memory, Some(hwmon.path().join("temp3_input")));
    }

    #[cfg(unix)]
    #[test]
    fn values_are_read_each_sample_and_a_removed_card_goes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        crate::collect::accel::sysfs::copy_tree(&workstation().sysfs, &dir.path().join("sys"))
            .unwrap();
        let paths = HostPaths::fixture(dir.path());
        let mut collector = AmdCollector::new(paths.clone());
        assert_eq!(collect(&mut collector).len(), 2);

        let navi = paths.sys("class/drm/card1/device");
        std::fs::write(navi.join("gpu_busy_percent"), "81\n").unwrap();
        std::fs::write(navi.join("hwmon/hwmon3/power1_input"), "298500000\n").unwrap();
        std::fs::write(navi.join("hwmon/hwmon3/pwm1"), "255\n").unwrap();
        std::fs::remove_dir_all(paths.sys("devices/pci0000:40")).unwrap();
        let cards = collect(&mut collector);
        assert_eq!(cards.len(), 1, "the MI210 is gone: {cards:?}");
        assert_eq!(cards[0].utilization_percent, Some(81.0));
        assert_eq!(cards[0].power_watts, Some(298.5));
        assert_eq!(cards[0].fan_speed_percent, Some(100.0));
    }
}
