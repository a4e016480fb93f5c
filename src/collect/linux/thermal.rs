//! Thermal collector: temperature inputs of /sys/class/hwmon chips and /sys/class/thermal zones,
//! named as node_exporter's hwmon and thermal_zone collectors name them.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::collect::{numbered_dirs, read_optional, CollectError, Collector, HostPaths};
use crate::model::{Snapshot, TemperatureSensor};

/// Samples between two rescans of the chip and zone lists; a sensor file that vanished (module
/// unloaded, device removed) triggers a rescan at the next sample.
const RESCAN_EVERY: u64 = 60;

/// A sysfs temperature value (millidegrees Celsius, may be negative) in °C.
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    text.trim().parse::<i64>().ok().map(|m| m as f64 / 1000.0)
}

/// node_exporter's `cleanMetricName`: lower case, every character outside `[a-z0-9:_]` becomes
/// `_`, and leading/trailing `_` are trimmed.
pub fn clean_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_matches('_').to_string()
}

/// The `chip` label of the hwmon directory `dir`, by node_exporter's `hwmonName` precedence:
/// 1. the resolved `device` link's parent and own names (`/sys/devices/platform/coretemp.0` →
///    `platform_coretemp_0`), stable across reboots unlike hwmonN numbering;
/// 2. the `name` file;
/// 3. the hwmonN directory name.
pub fn hwmon_chip(dir: &Path) -> String {
    if let Ok(device) = std::fs::canonicalize(dir.join("device")) {
        let component = |p: Option<&Path>| {
            p.and_then(Path::file_name)
                .map(|n| clean_name(&n.to_string_lossy()))
                .unwrap_or_default()
        };
        let name = component(Some(&device));
        let kind = component(device.parent());
        if !kind.is_empty() && !name.is_empty() {
            return format!("{kind}_{name}");
        }
        if !name.is_empty() {
            return name;
        }
    }
    if let Some(name) = read_optional(dir.join("name")).map(|n| clean_name(&n)) {
        if !name.is_empty() {
            return name;
        }
    }
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    real.file_name()
        .map(|n| clean_name(&n.to_string_lossy()))
        .unwrap_or_default()
}

/// The N of `tempN_input`.
fn temp_input_index(file_name: &str) -> Option<u32> {
    file_name
        .strip_prefix("temp")?
        .strip_suffix("_input")?
        .parse()
        .ok()
}

/// One temperature input found by a scan: where to read it, and everything about it that does
/// not change between samples.
#[derive(Debug, Clone)]
struct Input {
    /// The file holding the reading (millidegrees).
    path: PathBuf,
    /// The sensor as reported, `celsius` filled in each sample.
    sensor: TemperatureSensor,
}

/// Every `tempN_input` of one hwmon chip. Drivers written before the hwmon device class keep
/// their attributes on the parent device, so `device/` is looked at too (as node_exporter does);
/// a sensor in both places is read from the hwmon directory.
fn hwmon_inputs(dir: &Path) -> Vec<Input> {
    let chip = hwmon_chip(dir);
    let chip_name = read_optional(dir.join("name")).unwrap_or_default();
    let mut files: BTreeMap<u32, PathBuf> = BTreeMap::new();
    for place in [dir.to_path_buf(), dir.join("device")] {
        let Ok(entries) = std::fs::read_dir(&place) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if let Some(n) = entry.file_name().to_str().and_then(temp_input_index) {
                files.entry(n).or_insert_with(|| entry.path());
            }
        }
    }
    files
        .into_iter()
        .map(|(n, path)| {
            let sibling = |suffix: &str| path.with_file_name(format!("temp{n}_{suffix}"));
            let threshold = |suffix| {
                read_optional(sibling(suffix))
                    .as_deref()
                    .and_then(parse_millidegrees)
            };
            let sensor = TemperatureSensor {
                chip: chip.clone(),
                chip_name: chip_name.clone(),
                sensor: format!("temp{n}"),
                label: read_optional(sibling("label")).filter(|l| !l.is_empty()),
                celsius: 0.0,
                critical_celsius: threshold("crit"),
                max_celsius: threshold("max"),
                thermal_zone: false,
            };
            Input { path, sensor }
        })
        .collect()
}

/// Reads hwmon and thermal-zone temperatures every sample; the list of inputs and their labels
/// and thresholds are rescanned every [`RESCAN_EVERY`] samples.
pub struct ThermalCollector {
    /// Where /sys is.
    paths: HostPaths,
    /// Inputs found by the last scan, hwmon chips (by hwmonN) then thermal zones (by N).
    inputs: Vec<Input>,
    /// Samples since the last scan; `None` before the first.
    since_scan: Option<u64>,
}

impl ThermalCollector {
    pub fn new(paths: HostPaths) -> Self {
        Self {
            paths,
            inputs: Vec::new(),
            since_scan: None,
        }
    }

    fn scan(&mut self) {
        let mut inputs: Vec<Input> = numbered_dirs(&self.paths.sys("class/hwmon"), "hwmon")
            .iter()
            .flat_map(|(_, dir)| hwmon_inputs(dir))
            .collect();
        for (n, dir) in numbered_dirs(&self.paths.sys("class/thermal"), "thermal_zone") {
            inputs.push(Input {
                path: dir.join("temp"),
                sensor: TemperatureSensor {
                    chip: format!("thermal_zone{n}"),
                    chip_name: read_optional(dir.join("type")).unwrap_or_default(),
                    sensor: "temp".into(),
                    thermal_zone: true,
                    ..TemperatureSensor::default()
                },
            });
        }
        self.inputs = inputs;
        self.since_scan = Some(0);
    }
}

impl Collector for ThermalCollector {
    fn name(&self) -> &'static str {
        "thermal"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        if self.since_scan.is_none_or(|n| n >= RESCAN_EVERY) {
            self.scan();
        }
        let mut vanished = false;
        let mut sensors = Vec::with_capacity(self.inputs.len());
        for input in &self.inputs {
            // A sensor that fails to read (EIO, ENODATA from a sleeping device, ENXIO) is
            // skipped for this sample only; it is common and not worth failing the collector.
            match std::fs::read_to_string(&input.path) {
                Ok(text) => {
                    if let Some(celsius) = parse_millidegrees(&text) {
                        sensors.push(TemperatureSensor {
                            celsius,
                            ..input.sensor.clone()
                        });
                    }
                }
                Err(e) => vanished |= e.kind() == ErrorKind::NotFound,
            }
        }
        self.since_scan = if vanished {
            None
        } else {
            self.since_scan.map(|n| n + 1)
        };
        snapshot.temperatures = Some(sensors);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
