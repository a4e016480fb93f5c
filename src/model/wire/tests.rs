//! The wire model's own tests: what the element and the info object look like, and that what
//! an agent encodes the coordinator decodes to the same value.

use serde_json::{json, Value};

use super::*;
use crate::model::{self, AcceleratorProcess, Snapshot};

fn a100() -> model::Accelerator {
    use crate::model::{AcceleratorInfo, AcceleratorKind, MigDevice, ProfilingStats};
    model::Accelerator {
        id: "nvidia0".into(),
        index: 0,
        kind: AcceleratorKind::Gpu,
        vendor: "nvidia".into(),
        name: "NVIDIA A100-SXM4-80GB".into(),
        uuid: Some("GPU-1".into()),
        pci_bus_id: Some("00000000:07:00.0".into()),
        info: AcceleratorInfo {
            driver_version: Some("550.54.15".into()),
            cuda_version: Some("12.4".into()),
            architecture: Some("Ampere".into()),
            cores: Some(6912),
            vbios_version: Some("92.00.36.00.01".into()),
            max_power_watts: Some(f64::NAN),
            mig_enabled: Some(true),
            ..AcceleratorInfo::default()
        },
        utilization_percent: Some(87.0),
        memory_utilization_percent: Some(40.0),
        encoder_utilization_percent: Some(0.0),
        decoder_utilization_percent: Some(1.0),
        memory_used_bytes: Some(20),
        memory_total_bytes: Some(80),
        memory_reserved_bytes: Some(2),
        temperature_celsius: Some(61.0),
        memory_temperature_celsius: Some(70.0),
        power_watts: Some(300.0),
        power_limit_watts: Some(400.0),
        energy_joules: Some(f64::INFINITY),
        sm_clock_mhz: Some(1410.0),
        memory_clock_mhz: Some(1593.0),
        graphics_clock_mhz: Some(1400.0),
        pcie_link_gen: Some(4),
        performance_state: Some(0),
        throttle_reasons: Some(1),
        throttle_reason_names: vec!["gpu_idle"],
        ecc_errors_uncorrected: Some(0),
        mig_devices: vec![MigDevice {
            index: 0,
            uuid: Some("MIG-0".into()),
            gpu_instance_id: Some(1),
            compute_instance_id: Some(0),
            profile: Some("3g.40gb".into()),
            memory_used_bytes: Some(10),
            memory_total_bytes: Some(40),
            multiprocessors: Some(42),
            processes: vec![AcceleratorProcess {
                pid: 7,
                memory_used_bytes: None,
                pod: None,
            }],
            pods: Vec::new(),
        }],
        profiling: Some(ProfilingStats {
            sm_active: Some(0.5),
            nvlink_rx_bytes_per_sec: Some(f64::NAN),
            ..ProfilingStats::default()
        }),
        processes: vec![AcceleratorProcess {
            pid: 42,
            memory_used_bytes: Some(1 << 20),
            pod: None,
        }],
        ..model::Accelerator::default()
    }
}

#[test]
fn accelerators_carry_the_whole_model_beside_the_contract() {
    let snapshot = Snapshot {
        accelerators: vec![a100(), model::Accelerator::default()],
        power: vec![crate::model::PowerReading {
            source: "dram".into(),
            watts: 1.5,
        }],
        ..Snapshot::default()
    };
    let json = serde_json::to_value(NodeMetrics::of(&snapshot)).unwrap();
    let gpu = &json["accelerators"][0];
    assert_eq!(
        gpu["memory"],
        json!({"used": 20, "total": 80, "percentage": 25.0, "reserved": 2})
    );
    for (field, expected) in [
        ("powerLimit", json!(400.0)),
        ("energy", json!(null)),
        ("memoryUtilization", json!(40.0)),
        ("encoderUtilization", json!(0.0)),
        ("decoderUtilization", json!(1.0)),
        ("memoryTemperature", json!(70.0)),
        ("smClock", json!(1410.0)),
        ("graphicsClock", json!(1400.0)),
        (
            "pcie",
            json!({"txBytesPerSec": null, "rxBytesPerSec": null, "linkGen": 4, "linkWidth": null}),
        ),
        ("performanceState", json!(0)),
        ("throttleReasons", json!(["gpu_idle"])),
        ("ecc", json!({"corrected": null, "uncorrected": 0})),
        ("processes", json!([{"pid": 42, "memoryUsed": 1_048_576}])),
        ("pciBusId", json!("00000000:07:00.0")),
    ] {
        assert_eq!(gpu[field], expected, "{field}");
    }
    assert_eq!(
        gpu["migDevices"],
        json!([{
            "index": 0, "uuid": "MIG-0", "gpuInstanceId": 1, "computeInstanceId": 0,
            "profile": "3g.40gb", "multiprocessors": 42,
            "memory": {"used": 10, "total": 40, "percentage": 25.0},
            "processes": [{"pid": 7, "memoryUsed": null}],
        }])
    );
    assert_eq!(gpu["profiling"]["smActive"], 0.5);
    assert_eq!(gpu["profiling"]["nvlinkRxBytesPerSec"], Value::Null);
    assert_eq!(gpu["profiling"].as_object().unwrap().len(), 12);
    // A device that reports nothing: null objects, empty lists, never absent.
    let bare = &json["accelerators"][1];
    for field in ["pcie", "ecc", "profiling", "throttleReasons", "energy"] {
        assert_eq!(bare[field], Value::Null, "{field}");
    }
    assert_eq!(bare["migDevices"], json!([]));
    assert_eq!(json["power"], json!([{"source": "dram", "watts": 1.5}]));
    let without = serde_json::to_value(NodeMetrics::of(&Snapshot::default())).unwrap();
    assert!(without.get("power").is_none(), "{without}");
    let text = String::from_utf8(metrics_array_json([&snapshot]).unwrap()).unwrap();
    assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
}

#[test]
fn info_lists_static_accelerator_facts_and_counts_gpus_only() {
    let npu = model::Accelerator {
        id: "npu0".into(),
        kind: crate::model::AcceleratorKind::Npu,
        name: "Intel NPU".into(),
        ..model::Accelerator::default()
    };
    let snapshot = Snapshot {
        accelerators: vec![a100(), npu],
        ..Snapshot::default()
    };
    let json = serde_json::to_value(Info::of(&snapshot)).unwrap();
    assert_eq!(json["gpu_count"], 1);
    assert_eq!(json["gpu_info"], json!(["NVIDIA A100-SXM4-80GB"]));
    let gpu = &json["gpus"][0];
    assert_eq!(gpu["driver_version"], "550.54.15");
    assert_eq!(gpu["cuda_version"], "12.4");
    assert_eq!(gpu["architecture"], "Ampere");
    assert_eq!(gpu["cores"], 6912);
    assert_eq!(gpu["vbios_version"], "92.00.36.00.01");
    assert_eq!(gpu["max_power"], Value::Null, "NaN becomes null");
    assert_eq!(gpu["mig_enabled"], true);
    assert_eq!(gpu["mig_devices"][0]["profile"], "3g.40gb");
    assert_eq!(gpu["mig_devices"][0]["memory_total"], 40);
    assert_eq!(json["accelerators"][1]["type"], "npu");
    assert_eq!(json["accelerators"][1]["mig_enabled"], Value::Null);
}

#[test]
fn metrics_view_has_no_non_finite_numbers() {
    let snapshot = Snapshot {
        node_id: "n".into(),
        cpu: Some(crate::model::CpuStats {
            usage_percent: f64::NAN,
            ..Default::default()
        }),
        ..Snapshot::default()
    };
    let json = metrics_array_json([&snapshot]).unwrap();
    let text = String::from_utf8(json).unwrap();
    assert!(
        text.starts_with(r#"[{"node_id":"n","timestamp":0,"cpu":{"overall":0.0,"#),
        "{text}"
    );
}

/// A snapshot with every section and an accelerator with every field set.
fn full_snapshot() -> Snapshot {
    use crate::model::*;
    Snapshot {
        node_id: "worker-01".into(),
        hostname: "w1 \"quoted\"".into(),
        timestamp_ms: 1_700_000_000_000,
        cpu: Some(CpuStats {
            usage_percent: 50.0,
            cores: (0..4)
                .map(|id| CoreStats {
                    id,
                    usage_percent: 50.0,
                    frequency_mhz: Some(2400.0),
                    ..CoreStats::default()
                })
                .collect(),
            load_average: [1.0, 2.0, 3.0],
            processes: 10,
            threads: 20,
            ..CpuStats::default()
        }),
        temperatures: Some(vec![TemperatureSensor {
            chip: "platform_coretemp_0".into(),
            chip_name: "coretemp".into(),
            sensor: "temp1".into(),
            label: Some("Package id 0".into()),
            celsius: 45.0,
            ..TemperatureSensor::default()
        }]),
        memory: Some(MemoryStats {
            total_bytes: 1000,
            used_bytes: 250,
            available_bytes: 750,
            cached_bytes: Some(300),
            usage_percent: 25.0,
            ..MemoryStats::default()
        }),
        pressure: Some(PressureStats {
            cpu: Some(PressureResource::default()),
            ..PressureStats::default()
        }),
        disks: Some(DisksStats {
            devices: vec![DiskStats {
                name: "nvme0n1".into(),
                read_bytes_per_sec: 5.0,
                counted_in_total: true,
                ..DiskStats::default()
            }],
            read_bytes_per_sec: 5.0,
            ..DisksStats::default()
        }),
        filesystems: Some(FilesystemsStats {
            mounts: vec![FilesystemStats {
                device: "/dev/nvme0n1p2".into(),
                mountpoint: "/".into(),
                fstype: "ext4".into(),
                state: FilesystemState::Error("stale NFS handle".into()),
                size_bytes: 100,
                ..FilesystemStats::default()
            }],
            total_bytes: 100,
            ..FilesystemsStats::default()
        }),
        network: Some(NetworkStats {
            interfaces: vec![InterfaceStats {
                name: "eth0".into(),
                receive_bytes_per_sec: 7.0,
                ..InterfaceStats::default()
            }],
            tcp_established: Some(3),
            ..NetworkStats::default()
        }),
        accelerators: vec![a100()],
        power: vec![PowerReading {
            source: "dram".into(),
            watts: 1.5,
        }],
        collectors: vec![CollectorStatus {
            name: "filesystem".into(),
            ok: false,
            error: Some("statvfs /mnt timed out".into()),
            no_data: false,
            duration_seconds: 5.0,
        }],
        ..Snapshot::default()
    }
}

#[test]
fn what_the_agent_encodes_the_coordinator_decodes_to_the_same_element() {
    let snapshot = full_snapshot();
    let encoded = NodeMetrics::of(&snapshot);
    let bytes = serde_json::to_vec(&encoded).unwrap();
    let decoded: NodeMetrics<'_> = serde_json::from_slice(&bytes).unwrap();
    // The one difference a float round trip may make is none here (finite values only).
    assert_eq!(decoded, encoded);
    assert_eq!(decoded.memory.as_ref().and_then(|m| m.cached), Some(300));
    // And through the one v1 mapping, both sides give the same message.
    let mapped = v1::node_metrics(&decoded, None);
    assert_eq!(mapped.memory.and_then(|m| m.cached_bytes), Some(300));
    assert_eq!(
        v1::node_metrics(&decoded, None),
        v1::node_metrics(&encoded, None)
    );
}

#[test]
fn an_element_answered_under_other_ids_differs_in_node_id_only() {
    let snapshot = full_snapshot();
    let own: Value = serde_json::from_slice(&metrics_array_json([&snapshot]).unwrap()).unwrap();
    let answered = metrics_array_json_as(&snapshot, &["test-node", "b"]).unwrap();
    let answered: Value = serde_json::from_slice(&answered).unwrap();
    let answered = answered.as_array().unwrap();
    assert_eq!(answered.len(), 2);
    for (element, id) in answered.iter().zip(["test-node", "b"]) {
        let mut expected = own[0].clone();
        expected["node_id"] = json!(id);
        assert_eq!(element, &expected);
    }
    assert_eq!(metrics_array_json_as(&snapshot, &[]).unwrap(), b"[]");
}

#[test]
fn a_missing_section_is_zeros_on_the_wire_and_absent_in_v1_only_where_it_was_missing() {
    let snapshot = Snapshot::default();
    let encoded = NodeMetrics::of(&snapshot);
    let json = serde_json::to_value(&encoded).unwrap();
    assert_eq!(json["cpu"]["overall"], 0.0);
    assert_eq!(json["memory"]["swap"]["total"], 0);
    assert_eq!(json["disk"]["iops"], 0.0);
    assert_eq!(json["network"]["connections"], Value::Null);
    let mapped = v1::node_metrics(&encoded, None);
    assert!(mapped.cpu.is_none() && mapped.memory.is_none() && mapped.disk.is_none());
    // Decoded, the zeros are data: the coordinator serves what the agent wrote.
    let text = json.to_string();
    let decoded: NodeMetrics<'_> = serde_json::from_str(&text).unwrap();
    assert_eq!(decoded.cpu, Some(Cpu::default()));
}

#[test]
fn info_round_trips_and_maps_to_v1_with_static_facts() {
    let snapshot = full_snapshot();
    let encoded = Info::of(&snapshot);
    let bytes = serde_json::to_vec(&encoded).unwrap();
    let decoded: Info<'_> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(decoded, encoded);
    let info = v1::system_info(&decoded);
    assert_eq!(info.gpu_count, 1);
    let gpu = &info.accelerators[0];
    assert_eq!(
        gpu.info.as_ref().and_then(|i| i.architecture.as_deref()),
        Some("Ampere")
    );
    assert_eq!(
        gpu.mig_devices[0].memory_used_bytes, None,
        "a sample, not a fact"
    );
    // GetMetrics on the agent adds the same facts to each device, matched by id.
    let metrics = v1::node_metrics(&NodeMetrics::of(&snapshot), Some(&encoded));
    assert_eq!(metrics.accelerators[0].info, gpu.info);
}

#[test]
fn the_summary_reads_what_the_element_says() {
    let snapshot = full_snapshot();
    let element = NodeMetrics::of(&snapshot);
    let bytes = serde_json::to_vec(&element).unwrap();
    let summary: Summary<'_> = serde_json::from_slice(&bytes).unwrap();
    let cpu = element.cpu.as_ref().unwrap();
    assert_eq!(summary.node_id, element.node_id);
    assert_eq!(summary.timestamp, element.timestamp);
    assert_eq!(summary.hostname, element.hostname);
    assert_eq!(summary.cpu.overall, cpu.overall);
    assert_eq!(summary.cpu.cores.len(), cpu.cores.len());
    assert_eq!(Some(&summary.memory), element.memory.as_ref());
    let utilizations: Vec<_> = element.accelerators.iter().map(|a| a.utilization).collect();
    let summarised: Vec<_> = summary.accelerators.iter().map(|a| a.utilization).collect();
    assert_eq!(summarised, utilizations);
    // Sections the summary needs are required: a bare object is not an element.
    assert!(serde_json::from_str::<Summary<'_>>(r#"{"node_id":"a","timestamp":1}"#).is_err());
}

#[test]
fn unknown_accelerator_types_read_as_other() {
    let decoded: Accelerator<'_> = serde_json::from_str(r#"{"id":"x","type":"fpga"}"#).unwrap();
    assert_eq!(decoded.kind, crate::model::AcceleratorKind::Other);
}

#[test]
fn the_headline_summarises_the_element() {
    let mut snapshot = full_snapshot();
    let mut second = a100();
    second.id = "nvidia1".into();
    second.index = 1;
    second.utilization_percent = Some(20.0);
    second.power_watts = Some(100.5);
    snapshot.accelerators.push(second);
    let element = NodeMetrics::of(&snapshot);
    let array = metrics_array_json([&snapshot]).unwrap();
    let encoded = headline_array_json(&array).unwrap();
    let headlines: Vec<Headline<'_>> = serde_json::from_slice(&encoded).unwrap();
    let [headline] = headlines.as_slice() else {
        panic!("one headline per element: {headlines:?}");
    };
    let (cpu, memory) = (
        element.cpu.as_ref().unwrap(),
        element.memory.as_ref().unwrap(),
    );
    let (disk, network) = (
        element.disk.clone().unwrap_or_default(),
        element.network.clone().unwrap_or_default(),
    );
    assert_eq!(headline.node_id, element.node_id);
    assert_eq!(headline.timestamp, element.timestamp);
    assert_eq!(headline.hostname, element.hostname);
    assert_eq!(headline.cpu.overall, cpu.overall);
    assert_eq!(headline.cpu.core_count, cpu.cores.len() as u64);
    assert_eq!(
        (
            headline.memory.usage,
            headline.memory.used,
            headline.memory.total
        ),
        (memory.usage, memory.used, memory.total)
    );
    assert_eq!(
        (
            headline.disk.usage,
            headline.disk.io_read,
            headline.disk.io_write
        ),
        (disk.usage, disk.io_read, disk.io_write)
    );
    assert_eq!(
        (headline.network.bytes_in, headline.network.bytes_out),
        (network.bytes_in, network.bytes_out)
    );
    let devices = &element.accelerators;
    let gpus = &headline.accelerator_summary;
    assert_eq!(gpus.count, 2);
    assert_eq!(gpus.names, vec![devices[0].name.clone()], "distinct names");
    let utilization: Vec<f64> = devices.iter().filter_map(|a| a.utilization).collect();
    assert_eq!(utilization.len(), 2);
    assert_eq!(
        gpus.utilization,
        Some((utilization[0] + utilization[1]) / 2.0)
    );
    assert_eq!(
        gpus.utilization_max,
        Some(utilization[0].max(utilization[1]))
    );
    let used: u64 = devices.iter().filter_map(|a| a.memory.used).sum();
    assert_eq!(gpus.memory_used, Some(used));
    let power: f64 = devices.iter().filter_map(|a| a.power).sum();
    assert_eq!(gpus.power, Some(power));
    // Where no device reports a figure it is null, not 0.
    let bare = json!([{"node_id": "n", "timestamp": 1, "cpu": {"overall": 1}, "memory": {},
        "accelerators": [{"name": "x"}]}]);
    let bare = headline_array_json(bare.to_string().as_bytes()).unwrap();
    let bare: Value = serde_json::from_slice(&bare).unwrap();
    assert_eq!(bare[0]["acceleratorSummary"]["count"], 1);
    assert_eq!(bare[0]["acceleratorSummary"]["utilization"], Value::Null);
    assert_eq!(bare[0]["acceleratorSummary"]["memoryTotal"], Value::Null);
    assert_eq!(bare[0]["cpu"]["coreCount"], 0);
    // Only the headline's paths: no per-core or per-device detail.
    let mut keys: Vec<&str> = bare[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "acceleratorSummary",
            "cpu",
            "disk",
            "hostname",
            "memory",
            "network",
            "node_id",
            "timestamp"
        ]
    );
}
