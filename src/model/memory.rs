//! Memory, swap and pressure stall information.

use std::sync::Arc;

use serde::Serialize;

/// Memory and swap at one sample.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct MemoryStats {
    /// MemTotal.
    pub total_bytes: u64,
    /// MemAvailable (estimated by the kernel; MemFree + reclaimable where the kernel lacks it).
    pub available_bytes: u64,
    /// MemTotal − MemAvailable, what `free` calls used.
    pub used_bytes: u64,
    /// MemFree.
    pub free_bytes: u64,
    /// Page cache the kernel can drop: Cached + SReclaimable (what `free -w` and psutil call
    /// cache). `None` where the backend does not say.
    pub cached_bytes: Option<u64>,
    /// used / total · 100.
    pub usage_percent: f64,
    /// SwapTotal.
    pub swap_total_bytes: u64,
    /// SwapTotal − SwapFree.
    pub swap_used_bytes: u64,
    /// swap used / swap total · 100 (0 without swap).
    pub swap_percent: f64,
    /// Every /proc/meminfo field in file order, in bytes where the file says kB (node_exporter's
    /// `node_memory_<Name>_bytes`; `(anon)` becomes `_anon`). Empty on non-Linux backends.
    /// The name is the whole metric suffix: `MemTotal_bytes`, `Active_anon_bytes`, but
    /// `HugePages_Total` (a count, no unit) — `/metrics` writes `node_memory_` + name.
    pub raw: Vec<(Arc<str>, u64)>,
}

/// Pressure stall information for cpu, memory and io.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PressureStats {
    pub cpu: Option<PressureResource>,
    pub memory: Option<PressureResource>,
    pub io: Option<PressureResource>,
}

/// The `some` and `full` lines of one /proc/pressure file.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PressureResource {
    /// Share of time at least one task was stalled.
    pub some: PressureLine,
    /// Share of time all non-idle tasks were stalled (absent for cpu on older kernels).
    pub full: Option<PressureLine>,
}

/// One PSI line.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
pub struct PressureLine {
    /// Percent of the last 10 s, 60 s and 300 s.
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Total stall time since boot, seconds (the file counts microseconds).
    pub total_seconds: f64,
}
