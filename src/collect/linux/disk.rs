//! Block device I/O from /proc/diskstats, with each device classified (whole disk, partition,
//! virtual) through /sys/block so the aggregate counts every physical disk once.

use std::collections::HashMap;
use std::path::Path;

use regex_lite::Regex;

use crate::collect::linux::NameFilter;
use crate::collect::{read_into, CollectError, Collector, HostPaths};
use crate::config::DEFAULT_DISK_DEVICE_EXCLUDE;
use crate::model::{DiskStats, DisksStats, Snapshot};

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
    /// The file's text, kept to reuse its allocation.
    buffer: String,
}

impl DiskCollector {
    pub fn new(paths: HostPaths, exclude: Regex) -> Self {
        Self {
            paths,
            exclude: NameFilter::new(exclude),
            fallback_exclude: Regex::new(DEFAULT_DISK_DEVICE_EXCLUDE).ok(),
            counted: HashMap::new(),
            buffer: String::new(),
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
        !(by_default || name.starts_with("md") || name.starts_with("dm-"))
    }
}

impl Collector for DiskCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let path = self.paths.proc("diskstats");
        let mut text = std::mem::take(&mut self.buffer);
        let result = read_into(&path, &mut text).and_then(|()| self.devices(&text, &path));
        self.buffer = text;
        snapshot.disks = Some(DisksStats {
            devices: result?,
            ..DisksStats::default()
        });
        Ok(())
    }
}

impl DiskCollector {
    /// The devices of one reading of `path`, classified through the cache.
    fn devices(&mut self, text: &str, path: &Path) -> Result<Vec<DiskStats>, CollectError> {
        let mut devices = Vec::with_capacity(self.counted.len());
        let mut unseen = Vec::new();
        for (index, row) in parse(text).enumerate() {
            let row =
                row.map_err(|m| CollectError::parse(path, format!("row {}: {m}", index + 1)))?;
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
mod tests {
    use super::*;
    use crate::config::CollectConfig;

    use crate::collect::linux::fixture;

    fn no_exclude() -> Regex {
        Regex::new("^$").unwrap()
    }

    fn collect(paths: HostPaths, exclude: Regex) -> DisksStats {
        let mut collector = DiskCollector::new(paths, exclude);
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        snapshot.disks.unwrap()
    }

    fn counted(disks: &DisksStats) -> Vec<&str> {
        disks
            .devices
            .iter()
            .filter(|d| d.counted_in_total)
            .map(|d| d.name.as_str())
            .collect()
    }

    #[test]
    fn parses_kernel_5_5_rows_with_discard_and_flush_fields() {
        let row = parse_line(
            " 259       0 nvme0n1 1843201 40122 98113544 312455 5122876 2811340 401229856 4102231 \
             0 2210345 4455120 10231 0 812340224 1540 410223 80122",
        )
        .unwrap();
        assert_eq!(
            (row.major, row.minor, row.name, row.fields),
            (259, 0, "nvme0n1", 17)
        );
        let d = row.to_stats(true);
        assert_eq!(d.reads_completed_total, 1_843_201);
        assert_eq!(d.read_bytes_total, 98_113_544 * 512);
        assert_eq!(d.written_bytes_total, 401_229_856 * 512);
        assert_eq!(d.read_time_seconds_total, 312.455);
        assert_eq!(d.io_time_seconds_total, 2210.345);
        assert_eq!(d.io_time_weighted_seconds_total, 4455.12);
        assert_eq!(d.discards_completed_total, Some(10_231));
        assert_eq!(d.discarded_bytes_total, Some(812_340_224 * 512));
        assert_eq!(d.discard_time_seconds_total, Some(1.54));
        assert_eq!(d.flush_requests_total, Some(410_223));
        assert_eq!(d.flush_requests_time_seconds_total, Some(80.122));
        assert!(d.counted_in_total);
    }

    #[test]
    fn parses_old_14_and_18_field_rows() {
        let old = parse_line("   8       0 sda 100 2 800 40 50 3 400 20 1 60 70").unwrap();
        let d = old.to_stats(false);
        assert_eq!(old.fields, 11);
        assert_eq!((d.read_bytes_total, d.io_now), (800 * 512, 1));
        assert_eq!(d.discards_completed_total, None);
        assert_eq!(d.flush_requests_total, None);

        let discards =
            parse_line("   8       0 sda 100 2 800 40 50 3 400 20 1 60 70 5 6 7 8").unwrap();
        let d = discards.to_stats(false);
        assert_eq!(d.discards_merged_total, Some(6));
        assert_eq!(d.discarded_bytes_total, Some(7 * 512));
        assert_eq!(d.flush_requests_total, None);

        // A future kernel's extra fields are ignored rather than refused.
        let future = parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19").unwrap();
        assert_eq!(future.fields, 19);
        assert_eq!(
            future.to_stats(true).flush_requests_time_seconds_total,
            Some(0.017)
        );
    }

    #[test]
    fn malformed_rows_are_errors_not_panics() {
        assert!(parse_line("8 0 sda 1 2 3")
            .unwrap_err()
            .contains("expected at least 11"));
        assert!(parse_line("8 0 sda 1 2 x 4 5 6 7 8 9 10 11")
            .unwrap_err()
            .contains("\"x\""));
        assert!(parse_line("eight 0 sda 1 2 3 4 5 6 7 8 9 10 11").is_err());
        assert!(parse_line("8").is_err());
        assert!(parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 99999999999999999999999").is_err());

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("diskstats"),
            "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 1 bad\n",
        )
        .unwrap();
        let paths = HostPaths::new(dir.path(), dir.path().join("sys"), "/");
        let mut collector = DiskCollector::new(paths, no_exclude());
        let mut snapshot = Snapshot::default();
        let err = collector.collect(&mut snapshot).unwrap_err().to_string();
        assert!(err.contains("diskstats") && err.contains("row 2"), "{err}");
        assert!(snapshot.disks.is_none());
    }

    #[test]
    fn captured_vm_counts_only_the_virtio_disk() {
        let all = collect(HostPaths::fixture(fixture("captured-vm")), no_exclude());
        assert_eq!(all.devices.len(), 10);
        assert_eq!(counted(&all), ["vda"]);
        let vda = all.devices.iter().find(|d| d.name == "vda").unwrap();
        assert_eq!((vda.major, vda.minor), (254, 0));
        assert!(vda.flush_requests_total.is_some());

        let default = CollectConfig::default().disk_device_exclude;
        let kept = collect(HostPaths::fixture(fixture("captured-vm")), default);
        let names: Vec<_> = kept.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["vda"],
            "loop and zram devices are excluded by default"
        );
    }

    #[test]
    fn server_counts_whole_disks_once_not_partitions_or_md_members() {
        let all = collect(HostPaths::fixture(fixture("server")), no_exclude());
        let names: Vec<_> = all.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "nvme0n1",
                "nvme0n1p1",
                "nvme0n1p2",
                "sda",
                "sda1",
                "sdb",
                "sdb1",
                "md0",
                "loop0",
                "zram0",
                "dm-0"
            ]
        );
        // sda has a plain `device` directory, nvme0n1 and sdb a relative link: both count.
        assert_eq!(counted(&all), ["nvme0n1", "sda", "sdb"]);

        let default = CollectConfig::default().disk_device_exclude;
        let kept = collect(HostPaths::fixture(fixture("server")), default);
        let names: Vec<_> = kept.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "sdb", "md0", "dm-0"]);
        assert_eq!(counted(&kept), ["nvme0n1", "sda", "sdb"]);
    }

    #[test]
    fn without_sysfs_block_falls_back_to_names() {
        let server = fixture("server");
        let paths = HostPaths::new(server.join("proc"), server.join("no-such-sys"), "/");
        let all = collect(paths, no_exclude());
        assert_eq!(counted(&all), ["nvme0n1", "sda", "sdb"]);
    }

    #[test]
    fn classification_is_cached_and_refreshed_when_devices_appear() {
        let dir = tempfile::tempdir().unwrap();
        let (proc, sys) = (dir.path().join("proc"), dir.path().join("sys"));
        std::fs::create_dir_all(sys.join("block/sda/device")).unwrap();
        std::fs::create_dir_all(&proc).unwrap();
        let row = |name: &str| format!("8 0 {name} 1 2 3 4 5 6 7 8 9 10 11\n");
        std::fs::write(proc.join("diskstats"), row("sda")).unwrap();
        let mut collector = DiskCollector::new(HostPaths::new(&proc, &sys, "/"), no_exclude());
        let mut snapshot = Snapshot::default();
        collector.collect(&mut snapshot).unwrap();
        assert_eq!(counted(snapshot.disks.as_ref().unwrap()), ["sda"]);

        // sysfs changes under a known name are not re-read (the cache answers)…
        std::fs::remove_dir(sys.join("block/sda/device")).unwrap();
        collector.collect(&mut snapshot).unwrap();
        assert_eq!(counted(snapshot.disks.as_ref().unwrap()), ["sda"]);

        // …but a new device is classified, and the cache forgets devices that are gone.
        std::fs::create_dir_all(sys.join("block/sdb/device")).unwrap();
        std::fs::write(proc.join("diskstats"), row("sdb")).unwrap();
        collector.collect(&mut snapshot).unwrap();
        assert_eq!(counted(snapshot.disks.as_ref().unwrap()), ["sdb"]);
        assert_eq!(collector.counted.len(), 1);
    }

    #[test]
    fn live_counters_do_not_decrease() {
        let paths = HostPaths::default();
        if !paths.proc("diskstats").exists() {
            return; // Not Linux with procfs: nothing to compare.
        }
        let first = collect(paths.clone(), no_exclude());
        let second = collect(paths, no_exclude());
        for now in &second.devices {
            let Some(before) = first.devices.iter().find(|d| d.name == now.name) else {
                continue;
            };
            assert!(
                now.reads_completed_total >= before.reads_completed_total,
                "{}",
                now.name
            );
            assert!(
                now.written_bytes_total >= before.written_bytes_total,
                "{}",
                now.name
            );
            assert!(
                now.io_time_seconds_total >= before.io_time_seconds_total,
                "{}",
                now.name
            );
        }
        // An independent reading of the same source agrees on the device list.
        let text = std::fs::read_to_string("/proc/diskstats").unwrap();
        assert_eq!(
            text.lines().filter(|l| !l.trim().is_empty()).count(),
            second.devices.len()
        );
    }
}
