//! The one mapping from the wire model to the typed `tracklab.monitor.v1` messages: the agent
//! maps its own element, the coordinator the elements it decoded from agents.

use super::element::{self, NodeMetrics};
use super::info::{DeviceInfo, Info};
use crate::model::AcceleratorKind;
use crate::pb::v1;

/// One node's metrics as v1. `info`, when given, adds each accelerator's static facts (matched by
/// id): the agent has them for its own devices; the coordinator serves them through GetInfo.
pub fn node_metrics(element: &NodeMetrics<'_>, info: Option<&Info<'_>>) -> v1::NodeMetrics {
    let facts = |id: &str| {
        info.and_then(|info| info.accelerators.iter().find(|d| d.id == id))
            .map(accelerator_info)
    };
    v1::NodeMetrics {
        node_id: element.node_id.to_string(),
        hostname: element.hostname.to_string(),
        timestamp_unix_ms: element.timestamp,
        cpu: element.cpu.as_ref().map(|c| v1::Cpu {
            overall_percent: c.overall,
            cores: c
                .cores
                .iter()
                .map(|core| v1::CpuCore {
                    id: core.id,
                    usage_percent: core.usage,
                    frequency_mhz: core.frequency,
                    temperature_celsius: core.temperature,
                })
                .collect(),
            load_average: c.load_average.to_vec(),
            processes: c.processes,
            threads: c.threads,
        }),
        memory: element.memory.as_ref().map(|m| v1::Memory {
            usage_percent: m.usage,
            used_bytes: m.used,
            total_bytes: m.total,
            available_bytes: m.available,
            swap_used_bytes: m.swap.used,
            swap_total_bytes: m.swap.total,
            swap_percent: m.swap.percentage,
            cached_bytes: m.cached,
        }),
        disk: element.disk.as_ref().map(|d| v1::Disk {
            usage_percent: d.usage,
            used_bytes: d.used,
            total_bytes: d.total,
            read_bytes_per_sec: d.io_read,
            write_bytes_per_sec: d.io_write,
            iops: d.iops,
        }),
        network: element.network.as_ref().map(|n| v1::Network {
            receive_bytes_per_sec: n.bytes_in,
            transmit_bytes_per_sec: n.bytes_out,
            receive_packets_per_sec: n.packets_in,
            transmit_packets_per_sec: n.packets_out,
            tcp_connections: n.connections.unwrap_or(0),
        }),
        accelerators: element
            .accelerators
            .iter()
            .map(|a| accelerator(a, facts(&a.id)))
            .collect(),
        power: element
            .power
            .iter()
            .map(|p| v1::PowerReading {
                source: p.source.to_string(),
                watts: p.watts,
            })
            .collect(),
        collectors: element
            .collectors
            .iter()
            .map(|c| v1::CollectorStatus {
                name: c.name.to_string(),
                ok: c.ok,
                error: c.error.as_deref().unwrap_or_default().to_string(),
                duration_seconds: c.duration_seconds,
            })
            .collect(),
    }
}

fn accelerator(a: &element::Accelerator<'_>, info: Option<v1::AcceleratorInfo>) -> v1::Accelerator {
    let pcie = a.pcie.clone().unwrap_or_default();
    let ecc = a.ecc.clone().unwrap_or_default();
    v1::Accelerator {
        id: a.id.to_string(),
        r#type: accelerator_type(a.kind).into(),
        name: a.name.to_string(),
        utilization_percent: a.utilization,
        memory_used_bytes: a.memory.used,
        memory_total_bytes: a.memory.total,
        temperature_celsius: a.temperature,
        power_watts: a.power,
        fan_speed_percent: a.fan_speed,
        error: a.error.as_deref().unwrap_or_default().to_string(),
        vendor: a.vendor.to_string(),
        index: a.index,
        uuid: text(&a.uuid),
        pci_bus_id: text(&a.pci_bus_id),
        info,
        memory_utilization_percent: a.memory_utilization,
        encoder_utilization_percent: a.encoder_utilization,
        decoder_utilization_percent: a.decoder_utilization,
        memory_reserved_bytes: a.memory.reserved,
        memory_temperature_celsius: a.memory_temperature,
        power_limit_watts: a.power_limit,
        energy_joules: a.energy,
        sm_clock_mhz: a.sm_clock,
        memory_clock_mhz: a.memory_clock,
        graphics_clock_mhz: a.graphics_clock,
        pcie_tx_bytes_per_sec: pcie.tx_bytes_per_sec,
        pcie_rx_bytes_per_sec: pcie.rx_bytes_per_sec,
        pcie_link_gen: pcie.link_gen,
        pcie_link_width: pcie.link_width,
        performance_state: a.performance_state,
        throttle_reasons: a.throttle_reasons_mask,
        throttle_reason_names: a
            .throttle_reasons
            .iter()
            .flatten()
            .map(|n| n.to_string())
            .collect(),
        ecc_errors_corrected: ecc.corrected,
        ecc_errors_uncorrected: ecc.uncorrected,
        mig_devices: a
            .mig_devices
            .iter()
            .map(|m| v1::MigDevice {
                index: m.index,
                uuid: text(&m.uuid),
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: text(&m.profile),
                memory_used_bytes: m.memory.used,
                memory_total_bytes: m.memory.total,
                multiprocessors: m.multiprocessors,
                processes: processes(&m.processes),
                pods: pods(&m.pods),
            })
            .collect(),
        profiling: a.profiling.as_ref().map(|p| v1::ProfilingStats {
            graphics_engine_active: p.graphics_engine_active,
            sm_active: p.sm_active,
            sm_occupancy: p.sm_occupancy,
            tensor_active: p.tensor_active,
            dram_active: p.dram_active,
            fp64_active: p.fp64_active,
            fp32_active: p.fp32_active,
            fp16_active: p.fp16_active,
            pcie_tx_bytes_per_sec: p.pcie_tx_bytes_per_sec,
            pcie_rx_bytes_per_sec: p.pcie_rx_bytes_per_sec,
            nvlink_tx_bytes_per_sec: p.nvlink_tx_bytes_per_sec,
            nvlink_rx_bytes_per_sec: p.nvlink_rx_bytes_per_sec,
        }),
        processes: processes(&a.processes),
        pods: pods(&a.pods),
    }
}

fn processes(processes: &[element::Process<'_>]) -> Vec<v1::AcceleratorProcess> {
    processes
        .iter()
        .map(|p| v1::AcceleratorProcess {
            pid: p.pid,
            memory_used_bytes: p.memory_used,
            pod: p.pod.as_ref().map(|pod| v1::ProcessPod {
                uid: pod.uid.to_string(),
                namespace: text(&pod.namespace),
                name: text(&pod.name),
                container: text(&pod.container),
            }),
        })
        .collect()
}

fn pods(pods: &[element::Pod<'_>]) -> Vec<v1::PodAllocation> {
    pods.iter()
        .map(|p| v1::PodAllocation {
            namespace: p.namespace.to_string(),
            name: p.name.to_string(),
            container: p.container.to_string(),
        })
        .collect()
}

fn text(t: &Option<element::Text<'_>>) -> Option<String> {
    t.as_deref().map(str::to_string)
}

fn accelerator_type(kind: AcceleratorKind) -> v1::AcceleratorType {
    match kind {
        AcceleratorKind::Gpu => v1::AcceleratorType::Gpu,
        AcceleratorKind::Npu => v1::AcceleratorType::Npu,
        AcceleratorKind::Tpu => v1::AcceleratorType::Tpu,
        AcceleratorKind::Other => v1::AcceleratorType::Other,
    }
}

/// A node's static facts as v1.
pub fn system_info(info: &Info<'_>) -> v1::SystemInfo {
    v1::SystemInfo {
        node_id: info.node_id.to_string(),
        hostname: info.hostname.to_string(),
        platform: info.platform.to_string(),
        architecture: info.architecture.to_string(),
        cpu_model: info.cpu_model.to_string(),
        cpu_cores: info.cpu_cores,
        cpu_threads: info.cpu_threads,
        memory_total_bytes: info.memory_total,
        swap_total_bytes: info.swap_total,
        disk_total_bytes: info.disk_total,
        gpu_count: info.gpu_count,
        gpu_info: info.gpu_info.iter().map(|g| g.to_string()).collect(),
        ip_address: info.ip_address.to_string(),
        kernel: info.kernel.to_string(),
        os_version: info.os_version.to_string(),
        boot_time_unix_seconds: info.boot_time,
        version: info.version.to_string(),
        accelerators: info.accelerators.iter().map(description).collect(),
    }
}

fn accelerator_info(d: &DeviceInfo<'_>) -> v1::AcceleratorInfo {
    v1::AcceleratorInfo {
        driver_version: text(&d.driver_version),
        cuda_version: text(&d.cuda_version),
        architecture: text(&d.architecture),
        cores: d.cores,
        vbios_version: text(&d.vbios_version),
        performance_level: text(&d.performance_level),
        sku: text(&d.sku),
        sclk_range: text(&d.sclk_range),
        mclk_range: text(&d.mclk_range),
        max_power_watts: d.max_power,
        mig_enabled: d.mig_enabled,
    }
}

/// An accelerator's identity and static facts, for GetInfo: the MIG instances' sizes, not what
/// is in use in them.
fn description(d: &DeviceInfo<'_>) -> v1::AcceleratorDescription {
    v1::AcceleratorDescription {
        id: d.id.to_string(),
        r#type: accelerator_type(d.kind).into(),
        name: d.name.to_string(),
        vendor: d.vendor.to_string(),
        index: d.index,
        uuid: text(&d.uuid),
        pci_bus_id: text(&d.pci_bus_id),
        memory_total_bytes: d.memory_total,
        info: Some(accelerator_info(d)),
        mig_devices: d
            .mig_devices
            .iter()
            .map(|m| v1::MigDevice {
                index: m.index,
                uuid: text(&m.uuid),
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: text(&m.profile),
                memory_used_bytes: None,
                memory_total_bytes: m.memory_total,
                multiprocessors: m.multiprocessors,
                processes: Vec::new(),
                pods: Vec::new(),
            })
            .collect(),
    }
}
