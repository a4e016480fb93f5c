//! Tests of `disk`.

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

    let discards = parse_line("   8       0 sda 100 2 800 40 50 3 400 20 1 60 70 5 6 7 8").unwrap();
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
        ["vda", "zram0"],
        "loop devices are excluded by default; zram is kept, as node_exporter keeps it"
    );
    assert_eq!(counted(&kept), ["vda"], "zram is swap, not disk I/O");
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
    assert_eq!(names, ["nvme0n1", "sda", "sdb", "md0", "zram0", "dm-0"]);
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

#[test]
fn udev_facts_of_the_kept_devices() {
    let default = CollectConfig::default().disk_device_exclude;
    let mut collector = DiskCollector::new(HostPaths::fixture(fixture("server")), default);
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    let family = |name: &str| {
        snapshot
            .kernel_families
            .iter()
            .find(|f| &*f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let info = family("node_disk_info");
    let devices: Vec<(&str, &str, &str)> = info
        .samples
        .iter()
        .map(|s| {
            (
                s.labels[0].1.as_str(),
                s.labels[3].1.as_str(),
                s.labels[6].1.as_str(),
            )
        })
        .collect();
    // (device, model, serial): udev's database has the disks; md0, zram0 and dm-0 have no model.
    assert_eq!(
        devices,
        [
            ("nvme0n1", "SAMSUNG MZQL21T9HCJR-00A07", "S64GNE0R812345"),
            ("sda", "ST4000NM0035-1V4107", "ZC18JN7M"),
            ("sdb", "ST4000NM0035-1V4107", "ZC18KQ2P"),
            ("md0", "", ""),
            ("zram0", "", ""),
            ("dm-0", "", ""),
        ]
    );
    let filesystems: Vec<&str> = family("node_disk_filesystem_info")
        .samples
        .iter()
        .map(|s| s.labels[1].1.as_str())
        .collect();
    assert_eq!(filesystems, ["xfs", "ext4"]);
    assert_eq!(family("node_disk_device_mapper_info").samples.len(), 1);
    let enabled: Vec<f64> = family("node_disk_ata_write_cache_enabled")
        .samples
        .iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(enabled, [1.0, 0.0]);

    // The captured VM has no udev database: the info only, its labels empty.
    let mut collector = DiskCollector::new(
        HostPaths::fixture(fixture("captured-vm")),
        CollectConfig::default().disk_device_exclude,
    );
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    let names: Vec<&str> = snapshot.kernel_families.iter().map(|f| &*f.name).collect();
    assert_eq!(names, ["node_disk_info"]);
}
