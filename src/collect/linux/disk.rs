//! Block device I/O from /proc/diskstats, with each device classified (whole disk, partition,
//! virtual) through /sys/block so the aggregate counts every physical disk once; and each
//! device's udev facts (`node_disk_info` and the like, see [`udev`]).

mod udev;

use std::collections::HashMap;
use std::path::Path;

use regex_lite::Regex;

use crate::collect::linux::NameFilter;
use crate::collect::{read_optional, CollectError, Collector, HostPaths, KeptFile};
use crate::config::DEFAULT_DISK_DEVICE_EXCLUDE;
use crate::model::{DiskStats, DisksStats, KernelFamily, Snapshot};

/// Samples between two readings of udev's database of the devices (it changes when a disk is
/// formatted or relabelled; a new device is read at once).
const UDEV_REREAD_EVERY: u64 = 60;

/// /proc/diskstats counts in 512-byte sectors whatever the device's own sector size.
const SECTOR_BYTES: u64 = 512;

/// Fields after `major minor name`: 11 before kernel 4.18, 15 with discards, 17 with flushes.
const MIN_STATS: usize = 11;
const MAX_STATS: usize = 17;

/// One /proc/diskstats row, borrowed from the file's text so that rows of excluded devices cost
/// no allocation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskRow<'a> {
    pub major: u32,
    pub minor: u32,
    pub name: &'a str,
    /// The counters in kernel order; only the first `fields` are meaningful.
    pub stats: [u64; MAX_STATS],
    /// How many counters the row had (11, 15 or 17; newer kernels may add more, ignored).
    pub fields: usize,
}

impl DiskRow<'_> {
    /// The model entry for this row.
    fn to_stats(&self, counted_in_total: bool) -> DiskStats {
        let s = &self.stats;
        let ms = |v: u64| v as f64 / 1000.0;
        let has_discards = self.fields >= 15;
        let has_flushes = self.fields >= 17;
        DiskStats {
            name: self.name.to_string(),
            major: self.major,
            minor: self.minor,
            reads_completed_total: s[0],
            reads_merged_total: s[1],
            read_bytes_total: s[2].saturating_mul(SECTOR_BYTES),
            read_time_seconds_total: ms(s[3]),
            writes_completed_total: s[4],
            writes_merged_total: s[5],
            written_bytes_total: s[6].saturating_mul(SECTOR_BYTES),
            write_time_seconds_total: ms(s[7]),
            io_now: s[8],
            io_time_seconds_total: ms(s[9]),
            io_time_weighted_seconds_total: ms(s[10]),
            discards_completed_total: has_discards.then_some(s[11]),
            discards_merged_total: has_discards.then_some(s[12]),
            discarded_bytes_total: has_discards.then(|| s[13].saturating_mul(SECTOR_BYTES)),
            discard_time_seconds_total: has_discards.then(|| ms(s[14])),
            flush_requests_total: has_flushes.then_some(s[15]),
            flush_requests_time_seconds_total: has_flushes.then(|| ms(s[16])),
            counted_in_total,
            ..DiskStats::default()
        }
    }
}

/// Parses one /proc/diskstats line: `major minor name` and 11, 15 or 17 counters.
pub(crate) fn parse_line(line: &str) -> Result<DiskRow<'_>, String> {
    let mut words = line.split_ascii_whitespace();
    let mut next = |what: &str| words.next().ok_or_else(|| format!("no {what} in {line:?}"));
    let major = next("major number")?;
    let minor = next("minor number")?;
    let name = next("device name")?;
    let number = |text: &str| {
        text.parse::<u32>()
            .map_err(|_| format!("{text:?} is not a device number in {line:?}"))
    };
    let mut row = DiskRow {
        major: number(major)?,
        minor: number(minor)?,
        name,
        stats: [0; MAX_STATS],
        fields: 0,
    };
    for word in words {
        let value = word
            .parse::<u64>()
            .map_err(|_| format!("{word:?} is not a counter in {line:?}"))?;
        if let Some(slot) = row.stats.get_mut(row.fields) {
            *slot = value;
        }
        row.fields += 1;
    }
    if row.fields < MIN_STATS {
        return Err(format!(
            "{} has {} counters, expected at least {MIN_STATS}",
            row.name, row.fields
        ));
    }
    Ok(row)
}

/// Parses the whole of /proc/diskstats (blank lines skipped).
pub(crate) fn parse(text: &str) -> impl Iterator<Item = Result<DiskRow<'_>, String>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_line)
}

/// What sysfs says a block device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceKind {
    /// A whole disk backed by hardware (`device` link present): counted in the aggregate.
    Physical,
    /// A partition of a disk: its I/O is already in the disk's counters.
    Partition,
    /// md, dm, loop, zram, ram…: I/O that also shows on the disks beneath, or on none.
    Virtual,
}

/// Classifies `name` from sysfs. Partitions live under their parent (`sys/block/sda/sda1`), so a
/// name missing from `sys/block` is one; a disk without a `device` entry has no hardware behind it.
fn classify(block_dir: &Path, name: &str) -> DeviceKind {
    // Names with a slash (cciss/c0d0) appear in sysfs with `!` instead.
    let dir = block_dir.join(name.replace('/', "!"));
    // symlink_metadata: a fixture's (or a container's) `device` link may point outside the tree.
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if !exists(&dir) || exists(&dir.join("partition")) {
        DeviceKind::Partition
    } else if exists(&dir.join("device")) {
        DeviceKind::Physical
    } else {
        DeviceKind::Virtual
    }
}

/// Reads /proc/diskstats each sample; classifies devices once per name.
pub struct DiskCollector {
    /// Where /proc and /sys are.
    paths: HostPaths,
    /// Devices left out entirely (node_exporter's `device-exclude`).
    exclude: NameFilter,
    /// Used when the host's sysfs has no `block` directory (some containers): node_exporter's
    /// default exclude, which names partitions and virtual devices.
    fallback_exclude: Option<Regex>,
    /// Whether each device seen counts in the aggregate; sysfs is only consulted for new names.
    counted: HashMap<String, bool>,
    /// Each device's udev properties by (major, minor), read when first seen and every
    /// [`UDEV_REREAD_EVERY`] samples.
    udev: HashMap<(u32, u32), udev::Properties>,
    /// Samples since udev's database was last read.
    since_udev: u64,
    /// <procfs>/diskstats, kept open.
    diskstats: KeptFile,
}

impl DiskCollector {
    pub fn new(paths: HostPaths, exclude: Regex) -> Self {
        Self {
            diskstats: KeptFile::new(paths.proc("diskstats")),
            paths,
            exclude: NameFilter::new(exclude),
            fallback_exclude: Regex::new(DEFAULT_DISK_DEVICE_EXCLUDE).ok(),
            counted: HashMap::new(),
            udev: HashMap::new(),
            since_udev: 0,
        }
    }

    /// Whether `name` counts in the aggregate, by sysfs when it has block devices, else by name.
    fn is_counted(&self, block_dir: &Path, has_sysfs: bool, name: &str) -> bool {
        if has_sysfs {
            return classify(block_dir, name) == DeviceKind::Physical;
        }
        let by_default = self
            .fallback_exclude
            .as_ref()
            .is_some_and(|re| re.is_match(name));
        // node_exporter's default keeps zram (swap in memory) and md/dm (I/O also counted at
        // their member disks): shown, not counted.
        let virtual_device = ["md", "dm-", "zram"].iter().any(|p| name.starts_with(p));
        !(by_default || virtual_device)
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        // Taken out while its text is read, for `devices` to borrow the rest of the collector.
        let mut file = std::mem::take(&mut self.diskstats);
        let result = match file.read() {
            Ok(text) => self
                .devices(text)
                .map_err(|m| CollectError::parse(file.path(), m)),
            Err(e) => Err(e),
        };
        self.diskstats = file;
        let devices = result?;
        snapshot
            .kernel_families
            .extend(self.udev_families(&devices));
        snapshot.disks = Some(DisksStats {
            devices,
            ..DisksStats::default()
        });
        Ok(())
    }
}

impl DiskCollector {
    /// The udev families of `devices`, from the cache (udev's database read for new devices,
    /// and for all every [`UDEV_REREAD_EVERY`] samples; gone devices forgotten).
    fn udev_families(&mut self, devices: &[DiskStats]) -> impl Iterator<Item = KernelFamily> {
        self.since_udev += 1;
        if self.since_udev >= UDEV_REREAD_EVERY {
            self.since_udev = 0;
            self.udev.clear();
        }
        let mut families = udev::Families::default();
        for d in devices {
            let properties = self.udev.entry((d.major, d.minor)).or_insert_with(|| {
                let file = format!("/run/udev/data/b{}:{}", d.major, d.minor);
                let text = read_optional(self.paths.root(file)).unwrap_or_default();
                udev::parse(&text)
            });
            families.push(&d.name, d.major, d.minor, properties);
        }
        if self.udev.len() > devices.len() {
            self.udev
                .retain(|key, _| devices.iter().any(|d| (d.major, d.minor) == *key));
        }
        families.finish()
    }

    /// The devices of one reading of /proc/diskstats, classified through the cache.
    fn devices(&mut self, text: &str) -> Result<Vec<DiskStats>, String> {
        let mut devices = Vec::with_capacity(self.counted.len());
        let mut unseen = Vec::new();
        for (index, row) in parse(text).enumerate() {
            let row = row.map_err(|m| format!("row {}: {m}", index + 1))?;
            if self.exclude.is_match(row.name) {
                continue;
            }
            let counted = self.counted.get(row.name).copied();
            if counted.is_none() {
                unseen.push(devices.len());
            }
            devices.push(row.to_stats(counted.unwrap_or(false)));
        }
        if !unseen.is_empty() {
            // A device appeared (or this is the first sample): classify the new names and forget
            // the ones that are gone, so the cache tracks the host's devices.
            let block_dir = self.paths.sys("block");
            let has_sysfs = block_dir.is_dir();
            for &i in &unseen {
                let counted = self.is_counted(&block_dir, has_sysfs, &devices[i].name);
                devices[i].counted_in_total = counted;
                self.counted.insert(devices[i].name.clone(), counted);
            }
            self.counted
                .retain(|name, _| devices.iter().any(|d| &d.name == name));
        }
        Ok(devices)
    }
}

#[cfg(test)]
mod tests;
