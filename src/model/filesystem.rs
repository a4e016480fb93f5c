//! Mounted filesystems.

use serde::Serialize;

/// All mounts that passed the excludes, plus the totals the REST `disk` object reports.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct FilesystemsStats {
    /// One entry per mount, in mount-table order.
    pub mounts: Vec<FilesystemStats>,
    /// Size over mounts with `counted_in_total`.
    pub total_bytes: u64,
    /// Used (size − free) over mounts with `counted_in_total`.
    pub used_bytes: u64,
    /// used / total · 100.
    pub usage_percent: f64,
}

/// One mount and its statvfs figures.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct FilesystemStats {
    /// Mount source, e.g. `/dev/nvme0n1p2`, `server:/export`, `tmpfs`.
    pub device: String,
    /// Where it is mounted, as the host sees it (without the rootfs prefix).
    pub mountpoint: String,
    /// Filesystem type, e.g. `ext4`, `nfs4`.
    pub fstype: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Whether statvfs answered this sample, or why not.
    pub state: FilesystemState,
    /// f_blocks × f_frsize.
    pub size_bytes: u64,
    /// f_bfree × f_frsize (free including the root reserve).
    pub free_bytes: u64,
    /// f_bavail × f_frsize (free to unprivileged users).
    pub avail_bytes: u64,
    /// Inodes.
    pub files: u64,
    pub files_free: u64,
    /// (size − free) / size · 100.
    pub usage_percent: f64,
    /// Whether this mount counts in the REST `disk` totals: backed by a block device or a network
    /// filesystem that answered, and the first mount of its device.
    pub counted_in_total: bool,
}

/// The statvfs outcome for one mount in one sample.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum FilesystemState {
    /// statvfs answered; the figures are current.
    #[default]
    Ok,
    /// statvfs did not answer within the mount timeout; skipped until it answers again.
    TimedOut,
    /// statvfs failed (e.g. permission, stale NFS handle).
    Error(String),
}
