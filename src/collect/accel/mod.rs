//! Accelerator collectors, one per vendor, each of which may be absent: a missing library, driver
//! or runtime means no collector (logged once at debug level), never an error.
//!
//! - [`nvidia`]: NVML, loaded at run time through nvml-wrapper (MIG, processes, fault recovery).
//! - [`dcgm`]: DCGM profiling fields for the NVIDIA devices (`--enable-dcgm-profiling`); runs
//!   after `nvidia` and fills [`crate::model::Accelerator::profiling`].
//! - [`amd`]: AMD GPUs from `/sys/class/drm/card*/device` (Linux).
//! - [`npu`]: Intel NPUs from `/sys/class/accel` (Linux).
//! - [`tpu`]: Google TPUs from the TPU runtime's local gRPC metrics service.
//! - [`apple`]: Apple Silicon GPU, ANE and CPU cluster power via IOReport/SMC (the collector on
//!   macOS arm64 only; the decoding of its readings everywhere).

pub mod amd;
pub mod apple;
mod backoff;
pub mod dcgm;
pub mod npu;
pub mod nvidia;
mod sysfs;
pub mod tpu;

use crate::collect::Collector;
use crate::config::{Backend, CollectConfig};
use backoff::Backoff;

/// The accelerator collectors that apply to this host, in the order they run (DCGM after NVML,
/// since it annotates the NVIDIA devices).
pub fn collectors(config: &CollectConfig) -> Vec<Box<dyn Collector>> {
    let mut list: Vec<Box<dyn Collector>> = Vec::new();
    list.extend(nvidia::collector(config));
    if config.enable_dcgm_profiling {
        list.extend(dcgm::collector(config));
    }
    if config.backend == Backend::Linux {
        list.extend(amd::collector(config));
        list.extend(npu::collector(config));
    }
    list.extend(tpu::collector(config));
    #[cfg(all(target_os = "macos", target_arch = "aarch64"))]
    list.extend(apple::collector(config));
    list
}
