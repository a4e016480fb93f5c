//! Small sysfs readers shared by the accelerator collectors that find their devices in sysfs
//! (`amd`, `npu`, `tpu`): PCI ids, bus addresses and link speeds.

use std::path::{Path, PathBuf};

use crate::collect::read_optional;

/// Every entry of `dir` (e.g. the PCI functions of `bus/pci/devices`), by name. Absent `dir` →
/// empty.
pub(super) fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    found.sort_unstable();
    found
}

/// A PCI id file (`vendor`, `device`, `subsystem_device`: `0x1002`) as a number.
pub(super) fn parse_pci_id(text: &str) -> Option<u16> {
    u16::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

/// The PCI id in `dir/<file>`; `None` when absent or malformed.
pub(super) fn read_pci_id(dir: &Path, file: &str) -> Option<u16> {
    parse_pci_id(&read_optional(dir.join(file))?)
}

/// The PCI address (`0000:03:00.0`) of a device directory: the name its `device` link (or the
/// directory itself, after links are resolved) ends in. `None` where that name is not a PCI
/// address (a platform device, a fixture copied without links).
pub(super) fn pci_bus_id(device_dir: &Path) -> Option<String> {
    let real = std::fs::canonicalize(device_dir).ok()?;
    let name = real.file_name()?.to_str()?;
    is_pci_address(name).then(|| name.to_string())
}

/// `DDDD:BB:DD.F`, the form sysfs names PCI functions.
fn is_pci_address(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() == 12
        && bytes[4] == b':'
        && bytes[7] == b':'
        && bytes[10] == b'.'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| matches!(i, 4 | 7 | 10) || b.is_ascii_hexdigit())
}

/// The name of the driver bound to a device (the target of its `driver` link), e.g. `amdgpu`.
pub(super) fn driver_name(device_dir: &Path) -> Option<String> {
    let target = std::fs::read_link(device_dir.join("driver")).ok()?;
    Some(target.file_name()?.to_str()?.to_string())
}

/// The PCIe generation of a `current_link_speed` value. Kernels since 4.17 write
/// `16.0 GT/s PCIe`, older ones `8 GT/s` or `2.5 GT/s`; `Unknown` when the link is down.
pub(super) fn parse_link_gen(text: &str) -> Option<u32> {
    let rate: f64 = text.split_whitespace().next()?.parse().ok()?;
    // Transfer rate per lane of each generation (drivers/pci/pci.h, PCIE_SPEED2STR).
    const GENERATIONS: [(f64, u32); 6] = [
        (2.5, 1),
        (5.0, 2),
        (8.0, 3),
        (16.0, 4),
        (32.0, 5),
        (64.0, 6),
    ];
    GENERATIONS
        .iter()
        .find(|(gts, _)| (rate - gts).abs() < 0.01)
        .map(|(_, generation)| *generation)
}

/// The accelerator fixture tree (`tests/fixtures/accel/workstation`, see the fixtures README).
#[cfg(test)]
pub(super) fn workstation() -> crate::collect::HostPaths {
    crate::collect::HostPaths::fixture(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/accel/workstation"),
    )
}

/// Copies the tree `from` to `to`, recreating symlinks as links (their relative targets keep
/// pointing inside the copy), for tests that change or remove files.
#[cfg(test)]
pub(super) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_speed_forms_of_old_and_new_kernels() {
        assert_eq!(parse_link_gen("16.0 GT/s PCIe\n"), Some(4));
        assert_eq!(parse_link_gen("2.5 GT/s PCIe"), Some(1));
        assert_eq!(parse_link_gen("8 GT/s"), Some(3));
        assert_eq!(parse_link_gen("32.0 GT/s PCIe"), Some(5));
        assert_eq!(parse_link_gen("64.0 GT/s PCIe"), Some(6));
        assert_eq!(parse_link_gen("Unknown"), None);
        assert_eq!(parse_link_gen("12.0 GT/s"), None);
        assert_eq!(parse_link_gen(""), None);
    }

    #[test]
    fn pci_ids_and_addresses() {
        assert_eq!(parse_pci_id("0x1002\n"), Some(0x1002));
        assert_eq!(parse_pci_id("0x744c"), Some(0x744c));
        assert_eq!(parse_pci_id("1002"), None);
        assert_eq!(parse_pci_id("0xzz"), None);
        assert!(is_pci_address("0000:03:00.0"));
        assert!(is_pci_address("0000:c1:00.1"));
        assert!(!is_pci_address("device"));
        assert!(!is_pci_address("0000:03:00"));
        assert!(!is_pci_address("coretemp.0"));
    }
}
