//! udev's database entry of a block device (`<root>/run/udev/data/b<major>:<minor>`), and the
//! families node_exporter 1.5's diskstats collector builds from it: `node_disk_info` (model,
//! serial, revision, path and WWN as labels), `node_disk_filesystem_info`,
//! `node_disk_device_mapper_info` and the `node_disk_ata_*` gauges. A host (or container)
//! without udev's database has every label empty, as node_exporter prints it then.

use std::collections::HashMap;

use crate::model::{KernelFamily, KernelMetricKind};

/// A device's udev properties (`E:KEY=value` lines; the others are links and tags).
pub type Properties = HashMap<String, String>;

/// The properties of one udev database file.
pub fn parse(text: &str) -> Properties {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.strip_prefix("E:")?.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// The `node_disk_*` families of udev's facts, built one device at a time.
pub struct Families {
    info: KernelFamily,
    filesystem: KernelFamily,
    device_mapper: KernelFamily,
    /// ID_ATA_WRITE_CACHE, ID_ATA_WRITE_CACHE_ENABLED, ID_ATA_ROTATION_RATE_RPM.
    ata: [(&'static str, KernelFamily); 3],
}

impl Default for Families {
    fn default() -> Self {
        let gauge = |name: &'static str, help: &'static str| {
            KernelFamily::new(name, help, KernelMetricKind::Gauge)
        };
        Self {
            info: gauge("node_disk_info", "Info of /sys/block/<block_device>."),
            filesystem: gauge("node_disk_filesystem_info", "Info about disk filesystem."),
            device_mapper: gauge(
                "node_disk_device_mapper_info",
                "Info about disk device mapper.",
            ),
            ata: [
                (
                    "ID_ATA_WRITE_CACHE",
                    gauge("node_disk_ata_write_cache", "ATA disk has a write cache."),
                ),
                (
                    "ID_ATA_WRITE_CACHE_ENABLED",
                    gauge(
                        "node_disk_ata_write_cache_enabled",
                        "ATA disk has its write cache enabled.",
                    ),
                ),
                (
                    "ID_ATA_ROTATION_RATE_RPM",
                    gauge(
                        "node_disk_ata_rotation_rate_rpm",
                        "ATA disk rotation rate in RPMs (0 for SSDs).",
                    ),
                ),
            ],
        }
    }
}

impl Families {
    /// Adds `device`'s samples (labels in node_exporter's output order).
    pub fn push(&mut self, device: &str, major: u32, minor: u32, udev: &Properties) {
        let get = |key: &str| udev.get(key).map_or("", String::as_str);
        // The serial printed on the disk's label, else the short one (node_exporter's choice).
        let serial = match get("SCSI_IDENT_SERIAL") {
            "" => get("ID_SERIAL_SHORT"),
            serial => serial,
        };
        self.info.push(
            &[
                ("device", device),
                ("major", &major.to_string()),
                ("minor", &minor.to_string()),
                ("model", get("ID_MODEL")),
                ("path", get("ID_PATH")),
                ("revision", get("ID_REVISION")),
                ("serial", serial),
                ("wwn", get("ID_WWN")),
            ],
            1.0,
        );
        if !get("ID_FS_TYPE").is_empty() {
            self.filesystem.push(
                &[
                    ("device", device),
                    ("type", get("ID_FS_TYPE")),
                    ("usage", get("ID_FS_USAGE")),
                    ("uuid", get("ID_FS_UUID")),
                    ("version", get("ID_FS_VERSION")),
                ],
                1.0,
            );
        }
        if !get("DM_NAME").is_empty() {
            self.device_mapper.push(
                &[
                    ("device", device),
                    ("lv_layer", get("DM_LV_LAYER")),
                    ("lv_name", get("DM_LV_NAME")),
                    ("name", get("DM_NAME")),
                    ("uuid", get("DM_UUID")),
                    ("vg_name", get("DM_VG_NAME")),
                ],
                1.0,
            );
        }
        if !get("ID_ATA").is_empty() {
            for (key, family) in &mut self.ata {
                if let Some(value) = udev.get(*key).and_then(|v| v.parse::<f64>().ok()) {
                    family.push(&[("device", device)], value);
                }
            }
        }
    }

    /// The families with samples.
    pub fn finish(self) -> impl Iterator<Item = KernelFamily> {
        [self.info, self.filesystem, self.device_mapper]
            .into_iter()
            .chain(self.ata.into_iter().map(|(_, f)| f))
            .filter(|f| !f.samples.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sata_disk_with_a_filesystem() {
        let udev = parse(
            "S:disk/by-id/ata-ST4000NM0035\nL:0\nE:ID_ATA=1\nE:ID_MODEL=ST4000NM0035-1V4107\n\
             E:ID_SERIAL_SHORT=ZC18JN7M\nE:ID_REVISION=TNC3\nE:ID_PATH=pci-0000:00:17.0-ata-1\n\
             E:ID_WWN=0x5000c500a1b2c3d4\nE:ID_ATA_WRITE_CACHE=1\nE:ID_ATA_WRITE_CACHE_ENABLED=0\n\
             E:ID_ATA_ROTATION_RATE_RPM=7200\nE:ID_FS_TYPE=linux_raid_member\nE:ID_FS_USAGE=raid\n\
             E:ID_FS_UUID=5d5c8b1e\nE:ID_FS_VERSION=1.2\nG:systemd\n",
        );
        let mut families = Families::default();
        families.push("sda", 8, 0, &udev);
        let families: Vec<KernelFamily> = families.finish().collect();
        let names: Vec<&str> = families.iter().map(|f| &*f.name).collect();
        assert_eq!(
            names,
            [
                "node_disk_info",
                "node_disk_filesystem_info",
                "node_disk_ata_write_cache",
                "node_disk_ata_write_cache_enabled",
                "node_disk_ata_rotation_rate_rpm",
            ]
        );
        let info: Vec<(&str, &str)> = families[0].samples[0]
            .labels
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        assert_eq!(
            info,
            [
                ("device", "sda"),
                ("major", "8"),
                ("minor", "0"),
                ("model", "ST4000NM0035-1V4107"),
                ("path", "pci-0000:00:17.0-ata-1"),
                ("revision", "TNC3"),
                ("serial", "ZC18JN7M"),
                ("wwn", "0x5000c500a1b2c3d4"),
            ]
        );
        assert_eq!(families[4].samples[0].value, 7200.0);
    }

    #[test]
    fn without_udev_data_only_the_info_with_empty_labels() {
        let mut families = Families::default();
        families.push("vda", 254, 0, &Properties::new());
        let families: Vec<KernelFamily> = families.finish().collect();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].samples[0].labels[3], ("model", String::new()));
    }

    #[test]
    fn a_scsi_serial_wins_and_ata_figures_need_id_ata() {
        let udev = parse(
            "E:SCSI_IDENT_SERIAL=label\nE:ID_SERIAL_SHORT=short\nE:ID_ATA_ROTATION_RATE_RPM=0\n\
             E:DM_NAME=vg0-scratch\nE:DM_VG_NAME=vg0\nE:DM_LV_NAME=scratch\n",
        );
        let mut families = Families::default();
        families.push("dm-0", 253, 0, &udev);
        let families: Vec<KernelFamily> = families.finish().collect();
        assert_eq!(families[0].samples[0].labels[6], ("serial", "label".into()));
        let names: Vec<&str> = families.iter().map(|f| &*f.name).collect();
        assert_eq!(names, ["node_disk_info", "node_disk_device_mapper_info"]);
    }
}
