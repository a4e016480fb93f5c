//! Pure conversions from NVML's units, codes and lists to the model's: milliwatts, millijoules,
//! KB/s, the CUDA version integer, clock event (throttle) reason bits, MIG profile names, process
//! lists. No NVML calls.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;

use crate::model::AcceleratorProcess;

/// NVML's `KB/s` for PCIe throughput are kibibytes (as its memory figures and nvidia-smi's
/// reading of them).
const PCIE_KB: f64 = 1024.0;

/// Milliwatts (power draw, limits) to watts.
pub fn milliwatts_to_watts(milliwatts: u32) -> f64 {
    f64::from(milliwatts) / 1000.0
}

/// Millijoules (total energy since the driver loaded) to joules.
pub fn millijoules_to_joules(millijoules: u64) -> f64 {
    millijoules as f64 / 1000.0
}

/// PCIe throughput as NVML reports it (KB/s) to bytes per second.
pub fn pcie_kb_to_bytes_per_sec(kilobytes_per_sec: u32) -> f64 {
    f64::from(kilobytes_per_sec) * PCIE_KB
}

/// `nvmlSystemGetCudaDriverVersion_v2`'s integer (`1000 * major + 10 * minor`) as `major.minor`,
/// e.g. 12040 → `12.4`. `None` for a value that cannot be a version.
pub fn cuda_version(version: i32) -> Option<String> {
    (version > 0).then(|| format!("{}.{}", version / 1000, (version % 1000) / 10))
}

/// NVML's clock event reasons (`nvmlClocksEventReason*`, formerly `nvmlClocksThrottleReason*`)
/// by bit, with the names the model uses.
pub const THROTTLE_REASONS: [(u64, &str); 9] = [
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

/// The names of the reasons set in `bits`, in bit order. Bits NVML may add later are left out of
/// the names (they stay in the bitmask).
pub fn throttle_reason_names(bits: u64) -> Vec<&'static str> {
    THROTTLE_REASONS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// The MIG profile name of an instance, as nvidia-smi and dcgm-exporter print it: the GPU
/// instance profile's name without NVML's `MIG ` prefix (`1g.10gb`), prefixed with the compute
/// slices (`1c.3g.40gb`) when the compute instance takes only part of its GPU instance.
pub fn mig_profile_name(
    gpu_instance_profile: &str,
    gpu_instance_slices: Option<u32>,
    compute_instance_slices: Option<u32>,
) -> String {
    let base = gpu_instance_profile
        .strip_prefix("MIG ")
        .unwrap_or(gpu_instance_profile)
        .trim();
    match (gpu_instance_slices, compute_instance_slices) {
        (Some(gi), Some(ci)) if ci > 0 && ci < gi => format!("{ci}c.{base}"),
        _ => base.to_string(),
    }
}

/// A performance state number (0–15) from NVML's, `None` for NVML's "unknown" (32).
pub fn performance_state(pstate: u32) -> Option<u32> {
    (pstate <= 15).then_some(pstate)
}

/// Processes as the model lists them: one entry per pid (a process using the GPU for compute and
/// graphics appears in both NVML lists; the first entry is kept).
pub fn merge_processes(list: impl IntoIterator<Item = ProcessInfo>) -> Vec<AcceleratorProcess> {
    let mut out: Vec<AcceleratorProcess> = Vec::new();
    for p in list {
        if out.iter().any(|o| o.pid == p.pid) {
            continue;
        }
        out.push(AcceleratorProcess {
            pid: p.pid,
            memory_used_bytes: match p.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => Some(bytes),
                UsedGpuMemory::Unavailable => None,
            },
            pod: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(milliwatts_to_watts(150_250), 150.25);
        assert_eq!(millijoules_to_joules(1_000_000_123), 1_000_000.123);
        assert_eq!(pcie_kb_to_bytes_per_sec(2000), 2_048_000.0);
    }

    #[test]
    fn cuda_versions() {
        assert_eq!(cuda_version(12040).as_deref(), Some("12.4"));
        assert_eq!(cuda_version(11080).as_deref(), Some("11.8"));
        assert_eq!(cuda_version(12000).as_deref(), Some("12.0"));
        assert_eq!(cuda_version(13010).as_deref(), Some("13.1"));
        assert_eq!(cuda_version(0), None);
        assert_eq!(cuda_version(-1), None);
    }

    #[test]
    fn throttle_names_follow_the_bits() {
        assert!(throttle_reason_names(0).is_empty());
        assert_eq!(throttle_reason_names(0x4), ["sw_power_cap"]);
        assert_eq!(
            throttle_reason_names(0x1 | 0x8 | 0x40 | 0x100),
            [
                "gpu_idle",
                "hw_slowdown",
                "hw_thermal_slowdown",
                "display_clock_setting"
            ]
        );
        // An unknown bit has no name but does not hide the known ones.
        assert_eq!(
            throttle_reason_names(0x8000 | 0x80),
            ["hw_power_brake_slowdown"]
        );
        // Each bit appears once in the table.
        let all: u64 = THROTTLE_REASONS.iter().map(|(b, _)| b).sum();
        assert_eq!(all, 0x1FF);
    }

    #[test]
    fn mig_profiles() {
        assert_eq!(mig_profile_name("MIG 1g.10gb", Some(1), Some(1)), "1g.10gb");
        assert_eq!(
            mig_profile_name("MIG 3g.40gb", Some(3), Some(1)),
            "1c.3g.40gb"
        );
        assert_eq!(mig_profile_name("MIG 7g.80gb", None, None), "7g.80gb");
        assert_eq!(mig_profile_name("2g.20gb", Some(2), Some(2)), "2g.20gb");
    }

    #[test]
    fn pstates() {
        assert_eq!(performance_state(0), Some(0));
        assert_eq!(performance_state(15), Some(15));
        assert_eq!(performance_state(32), None);
    }

    #[test]
    fn processes_are_listed_once_per_pid() {
        let p = |pid, used| ProcessInfo {
            pid,
            used_gpu_memory: used,
            gpu_instance_id: None,
            compute_instance_id: None,
        };
        let merged = merge_processes([
            p(10, UsedGpuMemory::Used(64)),
            p(11, UsedGpuMemory::Unavailable),
            p(10, UsedGpuMemory::Used(32)),
        ]);
        assert_eq!(
            merged,
            [
                AcceleratorProcess {
                    pid: 10,
                    memory_used_bytes: Some(64),
                    pod: None,
                },
                AcceleratorProcess {
                    pid: 11,
                    memory_used_bytes: None,
                    pod: None,
                },
            ]
        );
    }
}
