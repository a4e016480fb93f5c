//! Block device I/O.

use serde::Serialize;

/// All block devices that passed the exclude pattern, plus the aggregate rates.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct DisksStats {
    /// One entry per device, in /proc/diskstats order.
    pub devices: Vec<DiskStats>,
    /// Sum of `read_bytes_per_sec` over devices with `counted_in_total`.
    pub read_bytes_per_sec: f64,
    /// Sum of `write_bytes_per_sec` over devices with `counted_in_total`.
    pub write_bytes_per_sec: f64,
    /// Completed reads plus writes per second over devices with `counted_in_total`.
    pub iops: f64,
}

/// One block device: raw /proc/diskstats counters and the rates derived from them.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct DiskStats {
    /// Kernel name, e.g. `nvme0n1`, `sda`, `md0`.
    pub name: String,
    pub major: u32,
    pub minor: u32,
    pub reads_completed_total: u64,
    pub reads_merged_total: u64,
    /// Sectors read × 512 (the kernel always counts 512-byte sectors here).
    pub read_bytes_total: u64,
    pub read_time_seconds_total: f64,
    pub writes_completed_total: u64,
    pub writes_merged_total: u64,
    pub written_bytes_total: u64,
    pub write_time_seconds_total: f64,
    pub io_now: u64,
    pub io_time_seconds_total: f64,
    pub io_time_weighted_seconds_total: f64,
    /// Discard and flush counters (kernel 4.18+ and 5.5+), absent on older kernels.
    pub discards_completed_total: Option<u64>,
    pub discards_merged_total: Option<u64>,
    pub discarded_bytes_total: Option<u64>,
    pub discard_time_seconds_total: Option<f64>,
    pub flush_requests_total: Option<u64>,
    pub flush_requests_time_seconds_total: Option<f64>,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    /// Share of the interval the device was busy (io_time delta), 0–100.
    pub utilization_percent: f64,
    /// Whether this is a whole physical device (not a partition, not virtual such as md, dm,
    /// loop), so it counts once in the aggregate I/O rates.
    pub counted_in_total: bool,
}
