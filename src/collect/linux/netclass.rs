//! node_exporter's `netclass` collector: each network interface's state and properties from
//! `/sys/class/net/<iface>/` (`node_network_up`, `_info`, `_carrier*`, `_mtu_bytes`,
//! `_speed_bytes` and the rest).
//!
//! Reading every attribute of every interface each second would cost about 22 file reads per
//! interface. Only `operstate` and `carrier_changes` are read each sample (their files kept
//! open); the rest is read again when either of them moves (a link that went down or came back
//! may have a new speed, duplex, carrier, dormant state and flags), when the interface appears,
//! and otherwise every [`REFRESH`] (an MTU, an alias, an address set by hand).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::collect::linux::KEPT_INTERFACES;
use crate::collect::{CollectError, Collector, HostPaths, KeptDir, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// How often an interface's attributes are read again when nothing said they changed.
pub(crate) const REFRESH: Duration = Duration::from_secs(60);

/// The numeric attributes, in [`Attributes::numbers`] order: sysfs file, metric (after
/// `node_network_`), and whether it is a counter.
const NUMERIC: [(&str, &str, bool); 17] = [
    ("addr_assign_type", "address_assign_type", false),
    ("carrier", "carrier", false),
    ("carrier_changes", "carrier_changes_total", true),
    ("carrier_up_count", "carrier_up_changes_total", true),
    ("carrier_down_count", "carrier_down_changes_total", true),
    ("dev_id", "device_id", false),
    ("dormant", "dormant", false),
    ("flags", "flags", false),
    ("ifindex", "iface_id", false),
    ("iflink", "iface_link", false),
    ("link_mode", "iface_link_mode", false),
    ("mtu", "mtu_bytes", false),
    ("name_assign_type", "name_assign_type", false),
    ("netdev_group", "net_dev_group", false),
    ("speed", "speed_bytes", false),
    ("tx_queue_len", "transmit_queue_length", false),
    ("type", "protocol_type", false),
];

/// Index of `speed` in [`NUMERIC`] (Mbit/s in sysfs, bytes per second on `/metrics`).
const SPEED: usize = 14;
/// Index of `carrier_changes` in [`NUMERIC`].
const CARRIER_CHANGES: usize = 2;

/// The text attributes, in [`Attributes::texts`] order; each is also an `_info` label.
const TEXT: [&str; 5] = ["address", "broadcast", "duplex", "ifalias", "operstate"];

/// Index of `operstate` in [`TEXT`].
const OPERSTATE: usize = 4;

/// One interface's attributes as last read; `None` (or an empty text) for one the device does not
/// show (`carrier` of a down interface, `speed` of a virtual one).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Attributes {
    /// In [`NUMERIC`] order, as sysfs writes them (`speed` in Mbit/s).
    pub numbers: [Option<i64>; NUMERIC.len()],
    /// In [`TEXT`] order, trimmed.
    pub texts: [String; TEXT.len()],
}

/// A sysfs number as node_exporter parses it: Go's `ParseInt(s, 0, 64)`, so `0x1003` (`flags`)
/// is hexadecimal and a leading `0` means octal.
pub(crate) fn parse_number(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let prefixed = |lower: &str, upper: &str| {
        unsigned
            .strip_prefix(lower)
            .or_else(|| unsigned.strip_prefix(upper))
    };
    let (radix, digits) = if let Some(hex) = prefixed("0x", "0X") {
        (16, hex)
    } else if let Some(binary) = prefixed("0b", "0B") {
        (2, binary)
    } else if let Some(octal) = prefixed("0o", "0O") {
        (8, octal)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (8, &unsigned[1..])
    } else {
        (10, unsigned)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Whether a failed attribute read means "not shown for this device", which node_exporter skips
/// silently: absent, not permitted, or refused by the driver (`EINVAL`: `carrier` or `speed` of
/// a down interface; `EOPNOTSUPP`: `phys_port_id`).
fn not_shown(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::InvalidInput
    ) || matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::OPNOTSUPP.raw_os_error()
    )
}

/// Reads every attribute of the interface at `dir`. An attribute that fails otherwise is left
/// out and named in `problems`.
pub(crate) fn read_attributes(dir: &Path, problems: &mut Vec<String>) -> Attributes {
    let mut read = |name: &str| -> Option<String> {
        let mut file = KeptFile::transient(dir.join(name));
        match file.read_value() {
            Ok(text) => Some(text.to_string()),
            Err(e) if not_shown(&e) => None,
            Err(e) => {
                problems.push(format!("{}: {e}", file.path().display()));
                None
            }
        }
    };
    let mut attributes = Attributes::default();
    for (slot, (file, _, _)) in attributes.numbers.iter_mut().zip(NUMERIC) {
        *slot = read(file).as_deref().and_then(parse_number);
    }
    for (slot, file) in attributes.texts.iter_mut().zip(TEXT) {
        *slot = read(file).unwrap_or_default();
    }
    attributes
}

/// The names and helps of the [`NUMERIC`] families, built once.
pub(crate) struct Names([(Arc<str>, Arc<str>); NUMERIC.len()]);

impl Names {
    pub(crate) fn new() -> Self {
        Self(NUMERIC.map(|(_, metric, _)| {
            (
                format!("node_network_{metric}").into(),
                format!("Network device property: {metric}").into(),
            )
        }))
    }
}

/// The families of `interfaces` (name and attributes), sorted by name; an attribute no interface
/// shows gives no family.
pub(crate) fn families<'a>(
    names: &Names,
    interfaces: impl Iterator<Item = (&'a str, &'a Attributes)> + Clone,
) -> Vec<KernelFamily> {
    let mut up = KernelFamily::new(
        "node_network_up",
        "Value is 1 if operstate is 'up', 0 otherwise.",
        KernelMetricKind::Gauge,
    );
    let mut info = KernelFamily::new(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        KernelMetricKind::Gauge,
    );
    for (name, a) in interfaces.clone() {
        let up_value = if a.texts[OPERSTATE] == "up" { 1.0 } else { 0.0 };
        up.push(&[("device", name)], up_value);
        let [address, broadcast, duplex, ifalias, operstate] = &a.texts;
        info.push(
            &[
                ("device", name),
                ("address", address),
                ("broadcast", broadcast),
                ("duplex", duplex),
                ("operstate", operstate),
                ("ifalias", ifalias),
            ],
            1.0,
        );
    }
    let mut families = vec![up, info];
    for (index, ((_, _, counter), (name, help))) in NUMERIC.into_iter().zip(&names.0).enumerate() {
        let kind = if counter {
            KernelMetricKind::Counter
        } else {
            KernelMetricKind::Gauge
        };
        let mut family = KernelFamily::new(Arc::clone(name), Arc::clone(help), kind);
        for (name, a) in interfaces.clone() {
            let Some(value) = a.numbers[index] else {
                continue;
            };
            // Integer arithmetic, as node_exporter's: an unknown speed (-1) is -125000.
            let value = if index == SPEED {
                value.wrapping_mul(1_000_000) / 8
            } else {
                value
            };
            family.push(&[("device", name)], value as f64);
        }
        if !family.samples.is_empty() {
            families.push(family);
        }
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));
    families
}

/// One interface being followed.
struct Interface {
    /// Its name (the directory under /sys/class/net).
    name: String,
    /// Its directory.
    dir: PathBuf,
    /// Its attributes as last read.
    attributes: Attributes,
    /// When they were read.
    read_at: Instant,
    /// `operstate`, read each sample.
    operstate: KeptFile,
    /// `carrier_changes`, read each sample.
    carrier_changes: KeptFile,
}

impl Interface {
    fn new(name: String, class_net: &Path, keep: bool, problems: &mut Vec<String>) -> Self {
        let dir = class_net.join(&name);
        let file = |attribute: &str| {
            let path = dir.join(attribute);
            if keep {
                KeptFile::new(path)
            } else {
                KeptFile::transient(path)
            }
        };
        Self {
            operstate: file("operstate"),
            carrier_changes: file("carrier_changes"),
            attributes: read_attributes(&dir, problems),
            read_at: Instant::now(),
            name,
            dir,
        }
    }

    /// Reads `operstate` and `carrier_changes`, and everything again when either moved or the
    /// last full read is older than [`REFRESH`]. False when the interface is gone.
    fn update(&mut self, now: Instant, problems: &mut Vec<String>) -> bool {
        let operstate = match self.operstate.read_value() {
            Ok(text) => text,
            // The device was unregistered since the listing (ENODEV on a kept file).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) =>
            {
                return false
            }
            Err(_) => "",
        };
        let moved = operstate != self.attributes.texts[OPERSTATE] || {
            let changes = self
                .carrier_changes
                .read_value()
                .ok()
                .and_then(parse_number);
            changes != self.attributes.numbers[CARRIER_CHANGES]
        };
        if moved || now.duration_since(self.read_at) >= REFRESH {
            self.attributes = read_attributes(&self.dir, problems);
            self.read_at = now;
        }
        true
    }
}

/// Lists /sys/class/net each sample and reads each interface as described above.
pub struct NetClassCollector {
    /// <sysfs>/class/net.
    class_net: KeptDir,
    /// The interfaces, sorted by name.
    interfaces: Vec<Interface>,
    /// The listing's names, reused.
    names: Vec<String>,
    /// The families' names.
    family_names: Names,
}

impl NetClassCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            class_net: KeptDir::new(paths.sys("class/net")),
            interfaces: Vec::new(),
            names: Vec::new(),
            family_names: Names::new(),
        }
    }

    /// The interface names under /sys/class/net, sorted: every entry but regular files
    /// (`bonding_masters`), as node_exporter lists them.
    fn list(&mut self) -> Result<(), CollectError> {
        self.names.clear();
        let names = &mut self.names;
        let listed = self.class_net.list(|name, is_file| {
            if is_file {
                return;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                names.push(name.to_string());
            }
        });
        if let Err(source) = listed {
            use std::io::ErrorKind;
            let path = self.class_net.path().to_path_buf();
            return Err(
                if matches!(
                    source.kind(),
                    ErrorKind::NotFound | ErrorKind::PermissionDenied
                ) {
                    CollectError::NoData(format!("cannot list {}: {source}", path.display()))
                } else {
                    CollectError::Io { path, source }
                },
            );
        }
        self.names.sort_unstable();
        Ok(())
    }

    /// Follows the listed names: keeps the interfaces still there, adds the new ones.
    fn follow(&mut self, problems: &mut Vec<String>) {
        let unchanged = self.names.len() == self.interfaces.len()
            && self
                .names
                .iter()
                .zip(&self.interfaces)
                .all(|(name, i)| *name == i.name);
        if unchanged {
            return;
        }
        let listed = |i: &Interface| self.names.binary_search(&i.name).is_ok();
        let mut kept = self
            .interfaces
            .iter()
            .filter(|i| i.operstate.is_kept() && listed(i))
            .count();
        let mut old = std::mem::take(&mut self.interfaces).into_iter().peekable();
        for name in &self.names {
            while old.next_if(|i| i.name < *name).is_some() {}
            let interface = match old.next_if(|i| i.name == *name) {
                Some(interface) => interface,
                None => {
                    let keep = kept < KEPT_INTERFACES;
                    kept += usize::from(keep);
                    Interface::new(name.clone(), self.class_net.path(), keep, problems)
                }
            };
            self.interfaces.push(interface);
        }
    }
}

impl Collector for NetClassCollector {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        self.list()?;
        let mut problems = Vec::new();
        self.follow(&mut problems);
        let now = Instant::now();
        self.interfaces.retain_mut(|i| i.update(now, &mut problems));
        snapshot.kernel_families.extend(families(
            &self.family_names,
            self.interfaces
                .iter()
                .map(|i| (i.name.as_str(), &i.attributes)),
        ));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CollectError::Partial(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests;
