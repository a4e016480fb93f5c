//! Apple Silicon: the GPU (`apple0`) and the Neural Engine (`ane0`) as accelerators, and the CPU
//! clusters', DRAM's and package's power as host power readings. Reads IOReport's `Energy Model`
//! and `GPU Stats` channels, the GPU's DVFS table and core count from the IORegistry, the GPU die
//! temperatures from the SMC and the chip name from sysctl.
//!
//! - [`decode`]: what the readings mean (residencies → utilization and clock, energy → watts,
//!   channel names → power sources, SMC encodings → °C). Pure, so compiled and tested on every
//!   platform.
//! - `collector`, `ioreport`, `iokit`, `smc`: the collector and its FFI to the system's
//!   frameworks, compiled on macOS arm64 only.
//!
//! Unified memory: the GPU has no memory of its own, so `memory_used_bytes`/`memory_total_bytes`
//! stay `None`; system RAM is already in the snapshot's memory section, and repeating it as GPU
//! memory would count it twice wherever accelerator memory is summed.

#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
mod collector;
pub mod decode;
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
mod iokit;
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
mod ioreport;
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
mod smc;

#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
pub use collector::{collector, AppleCollector};
