//! The accelerator part of `/metrics`, from `Snapshot::accelerators` and `Snapshot::power`: NVIDIA
//! devices under dcgm-exporter's metric names, types, help texts and labels (so its Grafana
//! dashboard and alert rules work unchanged), every other vendor, and what DCGM has no name for,
//! under `system_monitor_accelerator_*`, and power outside any device as
//! `system_monitor_power_watts`.
//!
//! A device whose `error` is set this sample gets no value series at all (a partial reading next
//! to fresh ones would look like a real drop); `system_monitor_accelerator_up` says 0 for it.
//!
//! With pod attribution (`--kubelet-pod-resources-socket`), the value series of a device (or MIG
//! instance) allocated to exactly one container end with dcgm-exporter's `container`,
//! `namespace` and `pod` labels. A device shared by several containers (time-slicing) gets none:
//! one series per sharer, as dcgm-exporter's `--kubernetes-virtual-gpus` writes, would count the
//! device's power and memory once per pod in every sum over devices; REST and gRPC list them all.
//! `system_monitor_accelerator_up` never carries them, so that a device keeps one `up` series
//! whoever holds it.

use std::collections::HashSet;

use super::Writer;
use crate::model::{Accelerator, MigDevice, PodRef, PowerReading, ProfilingStats, Vendor};

const MIB: f64 = 1024.0 * 1024.0;
const HZ_PER_MHZ: f64 = 1e6;

/// How a family is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Gauge,
    /// dcgm-exporter's counters, named without `_total`.
    ForeignCounter,
    /// Our own counters, named with `_total`.
    Counter,
}

/// One metric family read from each device.
struct Field {
    /// Metric name.
    name: &'static str,
    /// HELP text (dcgm-exporter's own where it has one).
    help: &'static str,
    /// Gauge or counter.
    kind: Type,
    /// The device's value; `None` when it did not report one (no sample then).
    value: fn(&Accelerator) -> Option<f64>,
    /// The value of one MIG instance, for the families dcgm-exporter also reports per GPU
    /// instance (framebuffer used and free).
    mig: Option<fn(&MigDevice) -> Option<f64>>,
}

/// A field of the whole device only.
const fn device(
    name: &'static str,
    help: &'static str,
    kind: Type,
    value: fn(&Accelerator) -> Option<f64>,
) -> Field {
    Field {
        name,
        help,
        kind,
        value,
        mig: None,
    }
}

/// A DCGM profiling field: a gauge read from [`Accelerator::profiling`].
const fn prof(
    name: &'static str,
    help: &'static str,
    value: fn(&ProfilingStats) -> Option<f64>,
) -> ProfField {
    ProfField { name, help, value }
}

/// One DCGM profiling gauge.
struct ProfField {
    /// Metric name.
    name: &'static str,
    /// dcgm-exporter's HELP text.
    help: &'static str,
    /// The value in the device's profiling stats.
    value: fn(&ProfilingStats) -> Option<f64>,
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB).floor()
}

fn count(v: Option<u32>) -> Option<f64> {
    v.map(f64::from)
}

/// Framebuffer free as DCGM reports it: total less used less reserved (NVML v2 memory info).
fn fb_free(a: &Accelerator) -> Option<f64> {
    let (used, total) = (a.memory_used_bytes?, a.memory_total_bytes?);
    let reserved = a.memory_reserved_bytes.unwrap_or(0);
    Some(mib(total.saturating_sub(used).saturating_sub(reserved)))
}

/// dcgm-exporter's fields, with its names, types and help texts. The first ones are in its
/// `default-counters.csv`; the rest (power limit, fan, P-state, throttle reasons, PCIe link,
/// ECC) are DCGM fields users add to that file, with the help text of `dcgm_fields.h`.
const DCGM_FIELDS: [Field; 21] = [
    device(
        "DCGM_FI_DEV_SM_CLOCK",
        "SM clock frequency (in MHz).",
        Type::Gauge,
        |a| a.sm_clock_mhz,
    ),
    device(
        "DCGM_FI_DEV_MEM_CLOCK",
        "Memory clock frequency (in MHz).",
        Type::Gauge,
        |a| a.memory_clock_mhz,
    ),
    device(
        "DCGM_FI_DEV_MEMORY_TEMP",
        "Memory temperature (in C).",
        Type::Gauge,
        |a| a.memory_temperature_celsius,
    ),
    device(
        "DCGM_FI_DEV_GPU_TEMP",
        "GPU temperature (in C).",
        Type::Gauge,
        |a| a.temperature_celsius,
    ),
    device(
        "DCGM_FI_DEV_POWER_USAGE",
        "Power draw (in W).",
        Type::Gauge,
        |a| a.power_watts,
    ),
    device(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "Total energy consumption since boot (in mJ).",
        Type::ForeignCounter,
        // NVML counts whole millijoules; rounding undoes the float error of J → mJ.
        |a| a.energy_joules.map(|j| (j * 1000.0).round()),
    ),
    device(
        "DCGM_FI_DEV_GPU_UTIL",
        "GPU utilization (in %).",
        Type::Gauge,
        |a| a.utilization_percent,
    ),
    device(
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "Memory utilization (in %).",
        Type::Gauge,
        |a| a.memory_utilization_percent,
    ),
    device(
        "DCGM_FI_DEV_ENC_UTIL",
        "Encoder utilization (in %).",
        Type::Gauge,
        |a| a.encoder_utilization_percent,
    ),
    device(
        "DCGM_FI_DEV_DEC_UTIL",
        "Decoder utilization (in %).",
        Type::Gauge,
        |a| a.decoder_utilization_percent,
    ),
    Field {
        name: "DCGM_FI_DEV_FB_FREE",
        help: "Framebuffer memory free (in MiB).",
        kind: Type::Gauge,
        value: fb_free,
        mig: Some(|m| {
            let (used, total) = (m.memory_used_bytes?, m.memory_total_bytes?);
            Some(mib(total.saturating_sub(used)))
        }),
    },
    Field {
        name: "DCGM_FI_DEV_FB_USED",
        help: "Framebuffer memory used (in MiB).",
        kind: Type::Gauge,
        value: |a| a.memory_used_bytes.map(mib),
        mig: Some(|m| m.memory_used_bytes.map(mib)),
    },
    device(
        "DCGM_FI_DEV_FB_RESERVED",
        "Framebuffer memory reserved (in MiB).",
        Type::Gauge,
        |a| a.memory_reserved_bytes.map(mib),
    ),
    device(
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "Total number of single-bit volatile ECC errors.",
        Type::ForeignCounter,
        |a| a.ecc_errors_corrected.map(|n| n as f64),
    ),
    device(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "Total number of double-bit volatile ECC errors.",
        Type::ForeignCounter,
        |a| a.ecc_errors_uncorrected.map(|n| n as f64),
    ),
    device(
        "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
        "Effective power limit that the driver enforces after taking into account all limiters (in W).",
        Type::Gauge,
        |a| a.power_limit_watts,
    ),
    device(
        "DCGM_FI_DEV_FAN_SPEED",
        "Fan speed for the device in percent 0-100.",
        Type::Gauge,
        |a| a.fan_speed_percent,
    ),
    device(
        "DCGM_FI_DEV_PSTATE",
        "Performance state (P-State) 0-15. 0=highest.",
        Type::Gauge,
        |a| count(a.performance_state),
    ),
    device(
        "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
        "Current clock throttle reasons (bitmask of DCGM_CLOCKS_THROTTLE_REASON_*)",
        Type::Gauge,
        // The bitmask uses a dozen low bits: exact as a float.
        |a| a.throttle_reasons.map(|bits| bits as f64),
    ),
    device(
        "DCGM_FI_DEV_PCIE_LINK_GEN",
        "PCIe Current Link Generation.",
        Type::Gauge,
        |a| count(a.pcie_link_gen),
    ),
    device(
        "DCGM_FI_DEV_PCIE_LINK_WIDTH",
        "PCIe Current Link Width.",
        Type::Gauge,
        |a| count(a.pcie_link_width),
    ),
];

/// DCGM's profiling (DCP) fields, gauges with dcgm-exporter's help texts.
const DCGM_PROF_FIELDS: [ProfField; 12] = [
    prof(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "Ratio of time the graphics engine is active.",
        |p| p.graphics_engine_active,
    ),
    prof(
        "DCGM_FI_PROF_SM_ACTIVE",
        "The ratio of cycles an SM has at least 1 warp assigned.",
        |p| p.sm_active,
    ),
    prof(
        "DCGM_FI_PROF_SM_OCCUPANCY",
        "The ratio of number of warps resident on an SM.",
        |p| p.sm_occupancy,
    ),
    prof(
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        |p| p.tensor_active,
    ),
    prof(
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        |p| p.dram_active,
    ),
    prof(
        "DCGM_FI_PROF_PIPE_FP64_ACTIVE",
        "Ratio of cycles the fp64 pipes are active.",
        |p| p.fp64_active,
    ),
    prof(
        "DCGM_FI_PROF_PIPE_FP32_ACTIVE",
        "Ratio of cycles the fp32 pipes are active.",
        |p| p.fp32_active,
    ),
    prof(
        "DCGM_FI_PROF_PIPE_FP16_ACTIVE",
        "Ratio of cycles the fp16 pipes are active.",
        |p| p.fp16_active,
    ),
    prof(
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        |p| p.pcie_tx_bytes_per_sec,
    ),
    prof(
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.",
        |p| p.pcie_rx_bytes_per_sec,
    ),
    prof(
        "DCGM_FI_PROF_NVLINK_TX_BYTES",
        "The rate of data transmitted over NVLink not including protocol headers in bytes per second",
        |p| p.nvlink_tx_bytes_per_sec,
    ),
    prof(
        "DCGM_FI_PROF_NVLINK_RX_BYTES",
        "The rate of data received over NVLink not including protocol headers in bytes per second",
        |p| p.nvlink_rx_bytes_per_sec,
    ),
];

/// Our own per-device families, for the vendors dcgm-exporter does not cover.
const OWN_FIELDS: [Field; 20] = [
    device(
        "system_monitor_accelerator_utilization_percent",
        "Accelerator busy share, 0-100.",
        Type::Gauge,
        |a| a.utilization_percent,
    ),
    device(
        "system_monitor_accelerator_memory_utilization_percent",
        "Share of time the accelerator memory was busy reading or writing, 0-100.",
        Type::Gauge,
        |a| a.memory_utilization_percent,
    ),
    device(
        "system_monitor_accelerator_encoder_utilization_percent",
        "Accelerator video encoder busy share, 0-100.",
        Type::Gauge,
        |a| a.encoder_utilization_percent,
    ),
    device(
        "system_monitor_accelerator_decoder_utilization_percent",
        "Accelerator video decoder busy share, 0-100.",
        Type::Gauge,
        |a| a.decoder_utilization_percent,
    ),
    device(
        "system_monitor_accelerator_memory_used_bytes",
        "Accelerator memory in use.",
        Type::Gauge,
        |a| a.memory_used_bytes.map(|b| b as f64),
    ),
    device(
        "system_monitor_accelerator_memory_total_bytes",
        "Accelerator memory size.",
        Type::Gauge,
        |a| a.memory_total_bytes.map(|b| b as f64),
    ),
    device(
        "system_monitor_accelerator_memory_reserved_bytes",
        "Accelerator memory the driver reserves, usable by no process.",
        Type::Gauge,
        |a| a.memory_reserved_bytes.map(|b| b as f64),
    ),
    device(
        "system_monitor_accelerator_temperature_celsius",
        "Accelerator temperature.",
        Type::Gauge,
        |a| a.temperature_celsius,
    ),
    device(
        "system_monitor_accelerator_memory_temperature_celsius",
        "Accelerator memory (HBM) temperature.",
        Type::Gauge,
        |a| a.memory_temperature_celsius,
    ),
    device(
        "system_monitor_accelerator_power_watts",
        "Accelerator power draw.",
        Type::Gauge,
        |a| a.power_watts,
    ),
    device(
        "system_monitor_accelerator_power_limit_watts",
        "Accelerator power limit the driver enforces.",
        Type::Gauge,
        |a| a.power_limit_watts,
    ),
    device(
        "system_monitor_accelerator_energy_joules_total",
        "Energy the accelerator used since its driver was loaded.",
        Type::Counter,
        |a| a.energy_joules,
    ),
    device(
        "system_monitor_accelerator_fan_speed_percent",
        "Accelerator fan speed, 0-100.",
        Type::Gauge,
        |a| a.fan_speed_percent,
    ),
    device(
        "system_monitor_accelerator_sm_clock_hertz",
        "Accelerator compute clock: the GPU clock on AMD and Apple, the NPU clock on Intel.",
        Type::Gauge,
        |a| a.sm_clock_mhz.map(|mhz| mhz * HZ_PER_MHZ),
    ),
    device(
        "system_monitor_accelerator_memory_clock_hertz",
        "Accelerator memory clock.",
        Type::Gauge,
        |a| a.memory_clock_mhz.map(|mhz| mhz * HZ_PER_MHZ),
    ),
    device(
        "system_monitor_accelerator_pcie_link_generation",
        "Current PCIe link generation of the accelerator.",
        Type::Gauge,
        |a| count(a.pcie_link_gen),
    ),
    device(
        "system_monitor_accelerator_pcie_link_width",
        "Current PCIe link width (lanes) of the accelerator.",
        Type::Gauge,
        |a| count(a.pcie_link_width),
    ),
    device(
        "system_monitor_accelerator_performance_state",
        "Accelerator performance state, 0 (most performance) to 15.",
        Type::Gauge,
        |a| count(a.performance_state),
    ),
    device(
        "system_monitor_accelerator_ecc_corrected_errors_total",
        "Corrected (single-bit) memory ECC errors since the driver was loaded.",
        Type::Counter,
        |a| a.ecc_errors_corrected.map(|n| n as f64),
    ),
    device(
        "system_monitor_accelerator_ecc_uncorrected_errors_total",
        "Uncorrected (double-bit) memory ECC errors since the driver was loaded.",
        Type::Counter,
        |a| a.ecc_errors_uncorrected.map(|n| n as f64),
    ),
];

/// Our own per-device families for every vendor, NVIDIA included: what DCGM has no field for.
const OWN_FIELDS_ALL_VENDORS: [Field; 3] = [
    device(
        "system_monitor_accelerator_graphics_clock_hertz",
        "Accelerator graphics clock.",
        Type::Gauge,
        |a| a.graphics_clock_mhz.map(|mhz| mhz * HZ_PER_MHZ),
    ),
    device(
        "system_monitor_accelerator_pcie_transmit_bytes_per_second",
        "PCIe transmit throughput as the device samples it (NVML: over about 20 ms).",
        Type::Gauge,
        |a| a.pcie_tx_bytes_per_sec,
    ),
    device(
        "system_monitor_accelerator_pcie_receive_bytes_per_second",
        "PCIe receive throughput as the device samples it (NVML: over about 20 ms).",
        Type::Gauge,
        |a| a.pcie_rx_bytes_per_sec,
    ),
];

/// A label set, owned, in exposition order.
type Labels = Vec<(&'static str, String)>;

/// The same label set borrowed, as [`super::Family::sample`] takes it.
fn borrowed(labels: &Labels) -> Vec<(&str, &str)> {
    labels.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// dcgm-exporter's labels for a GPU, or for one of its GPU instances: `gpu`, `UUID`,
/// `pci_bus_id`, `device`, `modelName`, then `GPU_I_PROFILE` and `GPU_I_ID` for a MIG instance,
/// `Hostname` (left out when empty, as dcgm-exporter does), the driver version label of its
/// default counters, and the pod labels of `pods`. A MIG instance carries its parent's `gpu`,
/// `UUID` and `modelName`.
fn dcgm_labels(
    a: &Accelerator,
    mig: Option<(&str, u32)>,
    hostname: &str,
    pods: &[PodRef],
) -> Labels {
    let mut labels = vec![
        ("gpu", a.index.to_string()),
        ("UUID", a.uuid.clone().unwrap_or_default()),
        ("pci_bus_id", a.pci_bus_id.clone().unwrap_or_default()),
        ("device", format!("nvidia{}", a.index)),
        ("modelName", a.name.clone()),
    ];
    if let Some((profile, instance)) = mig {
        labels.push(("GPU_I_PROFILE", profile.to_string()));
        labels.push(("GPU_I_ID", instance.to_string()));
    }
    if !hostname.is_empty() {
        labels.push(("Hostname", hostname.to_string()));
    }
    if let Some(driver) = &a.info.driver_version {
        labels.push(("DCGM_FI_DRIVER_VERSION", driver.clone()));
    }
    with_pod(labels, pods)
}

/// `labels` followed by dcgm-exporter's pod labels, in its order (`container`, `namespace`,
/// `pod`), when exactly one container holds the device; unchanged otherwise.
fn with_pod(mut labels: Labels, pods: &[PodRef]) -> Labels {
    if let [pod] = pods {
        labels.push(("container", pod.container.clone()));
        labels.push(("namespace", pod.namespace.clone()));
        labels.push(("pod", pod.name.clone()));
    }
    labels
}

/// The GPU instances of a MIG GPU that dcgm-exporter would list: one per GPU instance (compute
/// instances of one GPU instance share its memory), each with a profile name, as its MIG labels
/// need one. The GPU instance id is the NVML one; the MIG index stands in where it is unknown.
fn gpu_instances(a: &Accelerator) -> Vec<(&MigDevice, &str, u32)> {
    let mut seen = HashSet::new();
    a.mig_devices
        .iter()
        .filter_map(|m| {
            let profile = m.profile.as_deref().filter(|p| !p.is_empty())?;
            let id = m.gpu_instance_id.unwrap_or(m.index);
            seen.insert(id).then_some((m, profile, id))
        })
        .collect()
}

/// Our labels for any accelerator: `accelerator` (the node-unique id), `vendor`, `type`, `name`.
fn own_labels(a: &Accelerator) -> Labels {
    vec![
        ("accelerator", a.id.clone()),
        ("vendor", a.vendor.to_string()),
        ("type", a.kind.as_str().to_string()),
        ("name", a.name.clone()),
    ]
}

/// A device to write, with its labels worked out once for all its families.
struct Device<'a> {
    /// The device.
    accel: &'a Accelerator,
    /// Its label set.
    labels: Labels,
    /// Its MIG GPU instances with theirs (only in dcgm-exporter's families).
    instances: Vec<(&'a MigDevice, Labels)>,
}

/// Writes one family over `devices`, with MIG instances where the field has a per-instance value.
fn write_field(w: &mut Writer, field: &Field, devices: &[Device<'_>]) {
    let mut f = match field.kind {
        Type::Gauge => w.gauge(field.name, field.help),
        Type::ForeignCounter => w.foreign_counter(field.name, field.help),
        Type::Counter => w.counter(field.name, field.help),
    };
    for device in devices {
        if let Some(v) = (field.value)(device.accel) {
            f.sample(&borrowed(&device.labels), v);
        }
        let Some(mig_value) = field.mig else { continue };
        for (m, labels) in &device.instances {
            if let Some(v) = mig_value(m) {
                f.sample(&borrowed(labels), v);
            }
        }
    }
}

/// Every accelerator's families. `hostname` is dcgm-exporter's `Hostname` label.
pub(super) fn accelerator_metrics(w: &mut Writer, accelerators: &[Accelerator], hostname: &str) {
    let readable = || accelerators.iter().filter(|a| a.error.is_none());

    let nvidia: Vec<_> = readable()
        .filter(|a| a.vendor == Vendor::Nvidia)
        .map(|a| {
            let instances = gpu_instances(a)
                .into_iter()
                .map(|(m, profile, id)| (m, dcgm_labels(a, Some((profile, id)), hostname, &m.pods)))
                .collect();
            Device {
                accel: a,
                labels: dcgm_labels(a, None, hostname, &a.pods),
                instances,
            }
        })
        .collect();
    for field in &DCGM_FIELDS {
        write_field(w, field, &nvidia);
    }
    for field in &DCGM_PROF_FIELDS {
        let mut f = w.gauge(field.name, field.help);
        for device in &nvidia {
            if let Some(v) = device.accel.profiling.as_ref().and_then(field.value) {
                f.sample(&borrowed(&device.labels), v);
            }
        }
    }

    let own = |vendors: fn(&Accelerator) -> bool| -> Vec<_> {
        readable()
            .filter(|a| vendors(a))
            .map(|a| Device {
                accel: a,
                labels: with_pod(own_labels(a), &a.pods),
                instances: Vec::new(),
            })
            .collect()
    };
    let others = own(|a| a.vendor != Vendor::Nvidia);
    for field in &OWN_FIELDS {
        write_field(w, field, &others);
    }
    let everyone = own(|_| true);
    for field in &OWN_FIELDS_ALL_VENDORS {
        write_field(w, field, &everyone);
    }

    let mut f = w.gauge(
        "system_monitor_accelerator_up",
        "Whether the accelerator could be read in the last sample (0: no other series for it; the REST API says why).",
    );
    for a in accelerators {
        f.sample(&borrowed(&own_labels(a)), a.error.is_none());
    }
}

/// Power readings that belong to no accelerator (Apple's CPU clusters, DRAM, package).
pub(super) fn power_metrics(w: &mut Writer, readings: &[PowerReading]) {
    let mut f = w.gauge(
        "system_monitor_power_watts",
        "Power drawn by a part of the machine outside any accelerator device, by source.",
    );
    for r in readings {
        f.sample(&[("source", r.source.as_str())], r.watts);
    }
}

#[cfg(test)]
mod tests;
