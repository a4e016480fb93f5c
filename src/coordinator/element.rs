//! Agents' JSON as the coordinator reads it: the one `/api/system/metrics` element split off the
//! agent's array as raw bytes (served again without re-serialising), the few [`Figures`] the
//! cluster view needs, and — for gRPC only — the full element and `/api/system/info` object read
//! into v1 messages. Pure functions over bytes.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::pb::v1;

/// What the coordinator keeps parsed from an element, beside its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The node the element describes (checked like `--node-id`).
    pub node_id: Arc<str>,
    /// The agent's sample time, unix ms: an unchanged timestamp means no new sample.
    pub timestamp_ms: i64,
    /// The host's name, for `/api/cluster/info`.
    pub hostname: Arc<str>,
    /// Logical CPUs (the number of `cpu.cores`).
    pub cpus: u64,
    /// CPU in use, in cores: `cpu.overall` / 100 × logical CPUs.
    pub cpu_busy_cores: f64,
    /// `memory.total`, bytes.
    pub memory_total_bytes: u64,
    /// `memory.used`, bytes.
    pub memory_used_bytes: u64,
    /// Accelerators listed.
    pub accelerators: u64,
    /// Accelerators whose utilisation is above 0 %.
    pub accelerators_busy: u64,
}

/// The subset of an element [`Figures`] are read from.
#[derive(Deserialize)]
struct FiguresDoc {
    node_id: String,
    timestamp: i64,
    #[serde(default)]
    hostname: String,
    cpu: FiguresCpu,
    memory: FiguresMemory,
    #[serde(default)]
    accelerators: Vec<FiguresAccelerator>,
}

#[derive(Deserialize)]
struct FiguresCpu {
    overall: f64,
    #[serde(default)]
    cores: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct FiguresMemory {
    used: u64,
    total: u64,
}

#[derive(Deserialize)]
struct FiguresAccelerator {
    utilization: Option<f64>,
}

/// Splits an agent's `/api/system/metrics` answer (an array with one element) into the
/// element's exact bytes and its figures. Anything else is an error saying what was wrong.
pub fn split_agent_answer(body: &[u8]) -> Result<(Vec<u8>, Figures), String> {
    let array: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON array: {e}"))?;
    let [element] = array.as_slice() else {
        return Err(format!("expected one element, got {}", array.len()));
    };
    let text = element.get();
    if !text.starts_with('{') {
        return Err("the element is not a JSON object".into());
    }
    let figures = figures(text)?;
    Ok((text.as_bytes().to_vec(), figures))
}

/// The figures of one element (a JSON object).
pub fn figures(element: &str) -> Result<Figures, String> {
    let doc: FiguresDoc =
        serde_json::from_str(element).map_err(|e| format!("not a metrics element: {e}"))?;
    crate::cli::parse_node_id(&doc.node_id).map_err(|e| format!("node_id: {e}"))?;
    let overall = if doc.cpu.overall.is_finite() {
        doc.cpu.overall.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let cpus = doc.cpu.cores.len() as u64;
    Ok(Figures {
        node_id: doc.node_id.into(),
        timestamp_ms: doc.timestamp,
        hostname: doc.hostname.into(),
        cpus,
        cpu_busy_cores: overall / 100.0 * cpus as f64,
        memory_total_bytes: doc.memory.total,
        memory_used_bytes: doc.memory.used.min(doc.memory.total),
        accelerators: doc.accelerators.len() as u64,
        accelerators_busy: doc
            .accelerators
            .iter()
            .filter(|a| a.utilization.is_some_and(|u| u > 0.0))
            .count() as u64,
    })
}

// ---------------------------------------------------------------------------------------------
// The whole element, for gRPC v1 (REST field names; missing fields default).

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ElementDoc {
    #[serde(rename = "node_id")]
    node_id: String,
    timestamp: i64,
    hostname: String,
    cpu: Option<CpuDoc>,
    memory: Option<MemoryDoc>,
    disk: Option<DiskDoc>,
    network: Option<NetworkDoc>,
    accelerators: Vec<AcceleratorDoc>,
    collectors: Vec<CollectorDoc>,
    power: Vec<PowerDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CpuDoc {
    overall: f64,
    cores: Vec<CoreDoc>,
    load_average: Vec<f64>,
    processes: u64,
    threads: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CoreDoc {
    id: u32,
    usage: f64,
    frequency: Option<f64>,
    temperature: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MemoryDoc {
    usage: f64,
    used: u64,
    total: u64,
    available: u64,
    swap: SwapDoc,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SwapDoc {
    used: u64,
    total: u64,
    percentage: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DiskDoc {
    usage: f64,
    used: u64,
    total: u64,
    io_read: f64,
    io_write: f64,
    iops: f64,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct NetworkDoc {
    bytes_in: f64,
    bytes_out: f64,
    packets_in: f64,
    packets_out: f64,
    connections: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct AcceleratorDoc {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    utilization: Option<f64>,
    memory: AcceleratorMemoryDoc,
    temperature: Option<f64>,
    power: Option<f64>,
    fan_speed: Option<f64>,
    error: Option<String>,
    vendor: String,
    index: u32,
    uuid: Option<String>,
    pci_bus_id: Option<String>,
    power_limit: Option<f64>,
    energy: Option<f64>,
    memory_utilization: Option<f64>,
    encoder_utilization: Option<f64>,
    decoder_utilization: Option<f64>,
    memory_temperature: Option<f64>,
    sm_clock: Option<f64>,
    memory_clock: Option<f64>,
    graphics_clock: Option<f64>,
    pcie: Option<PcieDoc>,
    performance_state: Option<u32>,
    throttle_reasons: Option<Vec<String>>,
    throttle_reasons_mask: Option<u64>,
    ecc: Option<EccDoc>,
    mig_devices: Vec<MigDeviceDoc>,
    profiling: Option<ProfilingDoc>,
    processes: Vec<ProcessDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PcieDoc {
    tx_bytes_per_sec: Option<f64>,
    rx_bytes_per_sec: Option<f64>,
    link_gen: Option<u32>,
    link_width: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EccDoc {
    corrected: Option<u64>,
    uncorrected: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct MigDeviceDoc {
    index: u32,
    uuid: Option<String>,
    gpu_instance_id: Option<u32>,
    compute_instance_id: Option<u32>,
    profile: Option<String>,
    multiprocessors: Option<u32>,
    memory: AcceleratorMemoryDoc,
    processes: Vec<ProcessDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ProfilingDoc {
    graphics_engine_active: Option<f64>,
    sm_active: Option<f64>,
    sm_occupancy: Option<f64>,
    tensor_active: Option<f64>,
    dram_active: Option<f64>,
    fp64_active: Option<f64>,
    fp32_active: Option<f64>,
    fp16_active: Option<f64>,
    pcie_tx_bytes_per_sec: Option<f64>,
    pcie_rx_bytes_per_sec: Option<f64>,
    nvlink_tx_bytes_per_sec: Option<f64>,
    nvlink_rx_bytes_per_sec: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ProcessDoc {
    pid: u32,
    memory_used: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PowerDoc {
    source: String,
    watts: f64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AcceleratorMemoryDoc {
    used: Option<u64>,
    total: Option<u64>,
    reserved: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct CollectorDoc {
    name: String,
    ok: bool,
    error: Option<String>,
    duration_seconds: f64,
}

/// An element (REST JSON) as a v1 `NodeMetrics`: the same mapping the agent's own gRPC makes
/// from its snapshot, read back from the REST names and units.
pub fn node_metrics(element: &[u8]) -> Result<v1::NodeMetrics, serde_json::Error> {
    let doc: ElementDoc = serde_json::from_slice(element)?;
    Ok(v1::NodeMetrics {
        node_id: doc.node_id,
        hostname: doc.hostname,
        timestamp_unix_ms: doc.timestamp,
        cpu: doc.cpu.map(|c| v1::Cpu {
            overall_percent: c.overall,
            cores: c
                .cores
                .into_iter()
                .map(|core| v1::CpuCore {
                    id: core.id,
                    usage_percent: core.usage,
                    frequency_mhz: core.frequency,
                    temperature_celsius: core.temperature,
                })
                .collect(),
            load_average: c.load_average,
            processes: c.processes,
            threads: c.threads,
        }),
        memory: doc.memory.map(|m| v1::Memory {
            usage_percent: m.usage,
            used_bytes: m.used,
            total_bytes: m.total,
            available_bytes: m.available,
            swap_used_bytes: m.swap.used,
            swap_total_bytes: m.swap.total,
            swap_percent: m.swap.percentage,
        }),
        disk: doc.disk.map(|d| v1::Disk {
            usage_percent: d.usage,
            used_bytes: d.used,
            total_bytes: d.total,
            read_bytes_per_sec: d.io_read,
            write_bytes_per_sec: d.io_write,
            iops: d.iops,
        }),
        network: doc.network.map(|n| v1::Network {
            receive_bytes_per_sec: n.bytes_in,
            transmit_bytes_per_sec: n.bytes_out,
            receive_packets_per_sec: n.packets_in,
            transmit_packets_per_sec: n.packets_out,
            tcp_connections: n.connections.unwrap_or(0),
        }),
        accelerators: doc.accelerators.into_iter().map(accelerator).collect(),
        collectors: doc
            .collectors
            .into_iter()
            .map(|c| v1::CollectorStatus {
                name: c.name,
                ok: c.ok,
                error: c.error.unwrap_or_default(),
                duration_seconds: c.duration_seconds,
            })
            .collect(),
        power: doc
            .power
            .into_iter()
            .map(|p| v1::PowerReading {
                source: p.source,
                watts: p.watts,
            })
            .collect(),
    })
}

/// One accelerator of an element. Every per-sample figure travels; the static facts (`info`)
/// are not in the metrics element, so they come from `GetInfo(node_id)` instead.
fn accelerator(a: AcceleratorDoc) -> v1::Accelerator {
    let pcie = a.pcie.unwrap_or_default();
    let ecc = a.ecc.unwrap_or_default();
    v1::Accelerator {
        id: a.id,
        r#type: accelerator_type(&a.kind).into(),
        name: a.name,
        utilization_percent: a.utilization,
        memory_used_bytes: a.memory.used,
        memory_total_bytes: a.memory.total,
        temperature_celsius: a.temperature,
        power_watts: a.power,
        fan_speed_percent: a.fan_speed,
        error: a.error.unwrap_or_default(),
        vendor: a.vendor,
        index: a.index,
        uuid: a.uuid,
        pci_bus_id: a.pci_bus_id,
        info: None,
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
        throttle_reason_names: a.throttle_reasons.unwrap_or_default(),
        ecc_errors_corrected: ecc.corrected,
        ecc_errors_uncorrected: ecc.uncorrected,
        mig_devices: a
            .mig_devices
            .into_iter()
            .map(|m| v1::MigDevice {
                index: m.index,
                uuid: m.uuid,
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: m.profile,
                memory_used_bytes: m.memory.used,
                memory_total_bytes: m.memory.total,
                multiprocessors: m.multiprocessors,
                processes: processes(m.processes),
            })
            .collect(),
        profiling: a.profiling.map(|p| v1::ProfilingStats {
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
        processes: processes(a.processes),
    }
}

fn processes(processes: Vec<ProcessDoc>) -> Vec<v1::AcceleratorProcess> {
    processes
        .into_iter()
        .map(|p| v1::AcceleratorProcess {
            pid: p.pid,
            memory_used_bytes: p.memory_used,
        })
        .collect()
}

fn accelerator_type(kind: &str) -> v1::AcceleratorType {
    match kind {
        "gpu" => v1::AcceleratorType::Gpu,
        "npu" => v1::AcceleratorType::Npu,
        "tpu" => v1::AcceleratorType::Tpu,
        "other" => v1::AcceleratorType::Other,
        _ => v1::AcceleratorType::Unspecified,
    }
}

/// The agent's `/api/system/info` object (REST names) as far as v1 `SystemInfo` carries it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct InfoDoc {
    node_id: String,
    hostname: String,
    platform: String,
    architecture: String,
    cpu_model: String,
    cpu_cores: u32,
    cpu_threads: u32,
    memory_total: u64,
    swap_total: u64,
    disk_total: u64,
    gpu_count: u32,
    gpu_info: Vec<String>,
    ip_address: String,
    kernel: String,
    os_version: String,
    boot_time: i64,
    version: String,
    accelerators: Vec<DeviceInfoDoc>,
}

/// One accelerator's static facts in `/api/system/info` (snake_case, as that object is).
#[derive(Deserialize, Default)]
#[serde(default)]
struct DeviceInfoDoc {
    id: String,
    index: u32,
    #[serde(rename = "type")]
    kind: String,
    vendor: String,
    name: String,
    uuid: Option<String>,
    pci_bus_id: Option<String>,
    memory_total: Option<u64>,
    driver_version: Option<String>,
    cuda_version: Option<String>,
    architecture: Option<String>,
    cores: Option<u32>,
    vbios_version: Option<String>,
    performance_level: Option<String>,
    sku: Option<String>,
    sclk_range: Option<String>,
    mclk_range: Option<String>,
    max_power: Option<f64>,
    mig_enabled: Option<bool>,
    mig_devices: Vec<MigInfoDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MigInfoDoc {
    index: u32,
    uuid: Option<String>,
    gpu_instance_id: Option<u32>,
    compute_instance_id: Option<u32>,
    profile: Option<String>,
    memory_total: Option<u64>,
    multiprocessors: Option<u32>,
}

/// An agent's `/api/system/info` JSON as a v1 `SystemInfo`.
pub fn system_info(info: &[u8]) -> Result<v1::SystemInfo, serde_json::Error> {
    let doc: InfoDoc = serde_json::from_slice(info)?;
    Ok(v1::SystemInfo {
        node_id: doc.node_id,
        hostname: doc.hostname,
        platform: doc.platform,
        architecture: doc.architecture,
        cpu_model: doc.cpu_model,
        cpu_cores: doc.cpu_cores,
        cpu_threads: doc.cpu_threads,
        memory_total_bytes: doc.memory_total,
        swap_total_bytes: doc.swap_total,
        disk_total_bytes: doc.disk_total,
        gpu_count: doc.gpu_count,
        gpu_info: doc.gpu_info,
        ip_address: doc.ip_address,
        kernel: doc.kernel,
        os_version: doc.os_version,
        boot_time_unix_seconds: doc.boot_time,
        version: doc.version,
        accelerators: doc.accelerators.into_iter().map(description).collect(),
    })
}

/// An accelerator's identity and static facts from the agent's `/api/system/info`.
fn description(d: DeviceInfoDoc) -> v1::AcceleratorDescription {
    v1::AcceleratorDescription {
        id: d.id,
        r#type: accelerator_type(&d.kind).into(),
        name: d.name,
        vendor: d.vendor,
        index: d.index,
        uuid: d.uuid,
        pci_bus_id: d.pci_bus_id,
        memory_total_bytes: d.memory_total,
        info: Some(v1::AcceleratorInfo {
            driver_version: d.driver_version,
            cuda_version: d.cuda_version,
            architecture: d.architecture,
            cores: d.cores,
            vbios_version: d.vbios_version,
            performance_level: d.performance_level,
            sku: d.sku,
            sclk_range: d.sclk_range,
            mclk_range: d.mclk_range,
            max_power_watts: d.max_power,
            mig_enabled: d.mig_enabled,
        }),
        mig_devices: d
            .mig_devices
            .into_iter()
            .map(|m| v1::MigDevice {
                index: m.index,
                uuid: m.uuid,
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
                profile: m.profile,
                memory_used_bytes: None,
                memory_total_bytes: m.memory_total,
                multiprocessors: m.multiprocessors,
                processes: Vec::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Accelerator, AcceleratorKind, CoreStats, CpuStats, MemoryStats, Snapshot};

    fn snapshot() -> Snapshot {
        Snapshot {
            node_id: "worker-01".into(),
            hostname: "w1".into(),
            timestamp_ms: 1_700_000_000_000,
            cpu: Some(CpuStats {
                usage_percent: 50.0,
                cores: (0..4)
                    .map(|id| CoreStats {
                        id,
                        usage_percent: 50.0,
                        ..CoreStats::default()
                    })
                    .collect(),
                load_average: [1.0, 2.0, 3.0],
                ..CpuStats::default()
            }),
            memory: Some(MemoryStats {
                total_bytes: 1000,
                used_bytes: 250,
                ..MemoryStats::default()
            }),
            accelerators: vec![
                Accelerator {
                    id: "nvidia0".into(),
                    kind: AcceleratorKind::Gpu,
                    utilization_percent: Some(30.0),
                    memory_used_bytes: Some(5),
                    ..Accelerator::default()
                },
                Accelerator {
                    id: "nvidia1".into(),
                    kind: AcceleratorKind::Gpu,
                    utilization_percent: Some(0.0),
                    ..Accelerator::default()
                },
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn agent_answer_is_split_without_reencoding() {
        let snapshot = snapshot();
        let body = crate::serve::rest::metrics_array_json([&snapshot]).unwrap();
        let (element, figures) = split_agent_answer(&body).unwrap();
        assert_eq!(&body[1..body.len() - 1], &element[..]);
        assert_eq!(&*figures.node_id, "worker-01");
        assert_eq!(figures.timestamp_ms, 1_700_000_000_000);
        assert_eq!(figures.cpus, 4);
        assert_eq!(figures.cpu_busy_cores, 2.0);
        assert_eq!(
            (figures.memory_used_bytes, figures.memory_total_bytes),
            (250, 1000)
        );
        assert_eq!((figures.accelerators, figures.accelerators_busy), (2, 1));
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            &b"<html>"[..],
            b"[]",
            b"[1]",
            b"[{}]",
            b"[{\"node_id\":\"a/b\",\"timestamp\":1,\"cpu\":{\"overall\":1},\"memory\":{\"used\":1,\"total\":1}}]",
            b"[{},{}]",
            b"{\"node_id\":\"a\"}",
        ] {
            assert!(
                split_agent_answer(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn element_maps_to_v1_like_the_agent() {
        let mut snapshot = snapshot();
        // Every accelerator field of the model set, and power readings beside the devices.
        snapshot
            .accelerators
            .push(crate::serve::grpc_v1::tests::h100());
        snapshot.power = vec![crate::model::PowerReading {
            source: "cpu_pcluster".into(),
            watts: 4.5,
        }];
        let body = crate::serve::rest::metrics_array_json([&snapshot]).unwrap();
        let (element, _) = split_agent_answer(&body).unwrap();
        let from_json = node_metrics(&element).unwrap();
        let mut direct = crate::serve::grpc_v1::node_metrics(&snapshot);
        // Static facts are not in the metrics element: the coordinator serves them through
        // GetInfo (checked below), not in each sample.
        for a in &mut direct.accelerators {
            a.info = None;
        }
        assert_eq!(from_json.node_id, direct.node_id);
        assert_eq!(from_json.cpu, direct.cpu);
        assert_eq!(from_json.memory, direct.memory);
        assert_eq!(from_json.accelerators, direct.accelerators);
        assert_eq!(from_json.power, direct.power);
        assert_eq!(from_json.collectors, direct.collectors);
        assert_eq!(from_json.timestamp_unix_ms, direct.timestamp_unix_ms);
    }

    #[test]
    fn info_maps_to_v1_like_the_agent() {
        let mut snapshot = snapshot();
        snapshot
            .accelerators
            .push(crate::serve::grpc_v1::tests::h100());
        let json = serde_json::to_vec(&crate::serve::rest::info_view(&snapshot)).unwrap();
        assert_eq!(
            system_info(&json).unwrap(),
            crate::serve::grpc_v1::system_info(&snapshot)
        );
    }
}
