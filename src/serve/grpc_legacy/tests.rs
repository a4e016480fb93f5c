use super::*;
use crate::model::{
    AcceleratorProcess, CoreStats, CpuStats, DiskStats, DisksStats, FilesystemStats,
    FilesystemsStats, InterfaceStats, MemoryStats, NetworkStats,
};

fn value(items: &[StatsItem], key: &str) -> Option<f64> {
    items
        .iter()
        .find(|i| i.key == key)
        .map(|i| i.value_json.parse().unwrap())
}

fn keys(items: &[StatsItem]) -> Vec<&str> {
    items.iter().map(|i| i.key.as_str()).collect()
}

fn interface(name: &str, rx: u64, tx: u64, counted: bool) -> InterfaceStats {
    InterfaceStats {
        name: name.into(),
        receive_bytes_total: rx,
        transmit_bytes_total: tx,
        counted_in_total: counted,
        ..InterfaceStats::default()
    }
}

fn disk(name: &str, read: u64, written: u64, counted: bool) -> DiskStats {
    DiskStats {
        name: name.into(),
        read_bytes_total: read,
        written_bytes_total: written,
        counted_in_total: counted,
        ..DiskStats::default()
    }
}

fn host(network: Vec<InterfaceStats>, disks: Vec<DiskStats>) -> Snapshot {
    Snapshot {
        node_id: "n1".into(),
        cpu: Some(CpuStats {
            usage_percent: 37.5,
            cores: (0..2)
                .map(|id| CoreStats {
                    id,
                    usage_percent: 10.0 * f64::from(id + 1),
                    ..CoreStats::default()
                })
                .collect(),
            ..CpuStats::default()
        }),
        memory: Some(MemoryStats {
            total_bytes: 8 << 30,
            available_bytes: 6 << 30,
            used_bytes: 2 << 30,
            usage_percent: 25.0,
            ..MemoryStats::default()
        }),
        network: Some(NetworkStats {
            interfaces: network,
            ..NetworkStats::default()
        }),
        disks: Some(DisksStats {
            devices: disks,
            ..DisksStats::default()
        }),
        filesystems: Some(FilesystemsStats {
            mounts: vec![
                FilesystemStats {
                    mountpoint: "/".into(),
                    size_bytes: 100 << 30,
                    free_bytes: 75 << 30,
                    usage_percent: 25.0,
                    counted_in_total: true,
                    ..FilesystemStats::default()
                },
                FilesystemStats {
                    mountpoint: "/boot/efi".into(),
                    size_bytes: 1 << 30,
                    counted_in_total: false,
                    ..FilesystemStats::default()
                },
                FilesystemStats {
                    mountpoint: "/mnt/nfs".into(),
                    counted_in_total: true,
                    state: FilesystemState::TimedOut,
                    ..FilesystemStats::default()
                },
            ],
            ..FilesystemsStats::default()
        }),
        ..Snapshot::default()
    }
}

fn tree(pids: Vec<u32>) -> TreeStats {
    TreeStats {
        usage: TreeUsage {
            root: pids[0],
            pids,
            cpu_seconds: 12.0,
            rss_bytes: 512 << 20,
            threads: Some(7),
            root_age_seconds: Some(60.0),
            root_start: 1,
        },
        cpu_percent: 12.5,
    }
}

#[test]
fn system_and_tree_figures() {
    let baseline = host(
        vec![
            interface("eth0", 1000, 100, true),
            interface("lo", 5, 5, false),
        ],
        vec![disk("sda", 1 << 20, 0, true)],
    );
    let now = host(
        vec![
            interface("eth0", 3000, 400, true),
            interface("lo", 9000, 9000, false),
            interface("wlan0", 50, 60, true),
        ],
        vec![
            disk("sda", 5 << 20, 3 << 20, true),
            disk("md0", 99 << 20, 99 << 20, false),
        ],
    );
    let items = stats_items(&now, &baseline, Some(&tree(vec![42, 43])), &[]);
    assert_eq!(value(&items, "cpu"), Some(12.5));
    assert_eq!(value(&items, "cpu.0.cpu_percent"), Some(10.0));
    assert_eq!(value(&items, "cpu.1.cpu_percent"), Some(20.0));
    assert_eq!(value(&items, "memory_percent"), Some(25.0));
    assert_eq!(value(&items, "proc.memory.rssMB"), Some(512.0));
    assert_eq!(value(&items, "proc.memory.percent"), Some(6.25));
    assert_eq!(value(&items, "proc.memory.availableMB"), Some(6144.0));
    assert_eq!(value(&items, "proc.cpu.threads"), Some(7.0));
    // eth0 grew by 2000/300, wlan0 appeared (counts from 0), lo is not counted.
    assert_eq!(value(&items, "network.recv"), Some(2050.0));
    assert_eq!(value(&items, "network.sent"), Some(360.0));
    // sda: 4 MiB read, 3 MiB written; md0 is not counted.
    assert_eq!(value(&items, "disk.in"), Some(4.0));
    assert_eq!(value(&items, "disk.out"), Some(3.0));
    assert_eq!(value(&items, "disk./.usagePercent"), Some(25.0));
    assert_eq!(value(&items, "disk./.usageGB"), Some(25.0));
    // Not counted, or no current figures.
    assert_eq!(value(&items, "disk./boot/efi.usageGB"), None);
    assert_eq!(value(&items, "disk./mnt/nfs.usageGB"), None);
    assert!(!keys(&items).iter().any(|k| k.starts_with("gpu")));
}

#[test]
fn pid_zero_reports_the_system() {
    let snapshot = host(vec![], vec![]);
    let items = stats_items(&snapshot, &snapshot, None, &[]);
    assert_eq!(value(&items, "cpu"), Some(37.5));
    assert_eq!(value(&items, "network.sent"), Some(0.0));
    assert!(value(&items, "proc.memory.availableMB").is_some());
    for key in [
        "proc.memory.rssMB",
        "proc.memory.percent",
        "proc.cpu.threads",
    ] {
        assert_eq!(value(&items, key), None, "{key}");
    }
}

#[test]
fn values_are_json_numbers() {
    let mut items = Items::default();
    items.number("a", 1.5);
    items.number("nan", f64::NAN);
    items.number("inf", f64::INFINITY);
    items.integer("b", u64::MAX);
    assert_eq!(keys(&items.0), ["a", "b"]);
    for item in &items.0 {
        let parsed: serde_json::Value = serde_json::from_str(&item.value_json).unwrap();
        assert!(parsed.is_number(), "{}", item.value_json);
    }
}

fn gpu(index: u32, pids: &[u32]) -> Accelerator {
    Accelerator {
        id: format!("nvidia{index}"),
        index,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Nvidia,
        name: "NVIDIA A100-SXM4-80GB".into(),
        uuid: Some(format!("GPU-{index}")),
        utilization_percent: Some(87.0),
        memory_utilization_percent: Some(30.0),
        memory_used_bytes: Some(20 << 30),
        memory_total_bytes: Some(80 << 30),
        temperature_celsius: Some(64.0),
        power_watts: Some(300.0),
        power_limit_watts: Some(400.0),
        fan_speed_percent: None,
        sm_clock_mhz: Some(1410.0),
        memory_clock_mhz: Some(1593.0),
        processes: pids
            .iter()
            .map(|&pid| AcceleratorProcess {
                pid,
                memory_used_bytes: Some(1 << 30),
                pod: None,
            })
            .collect(),
        ..Accelerator::default()
    }
}

#[test]
fn gpus_map_to_established_keys() {
    let mut snapshot = host(vec![], vec![]);
    snapshot.accelerators = vec![
        gpu(0, &[43]),
        gpu(1, &[999]),
        Accelerator {
            kind: AcceleratorKind::Npu,
            index: 0,
            utilization_percent: Some(5.0),
            ..Accelerator::default()
        },
    ];
    let items = stats_items(&snapshot, &snapshot, Some(&tree(vec![42, 43])), &[]);
    assert_eq!(value(&items, "gpu.0.gpu"), Some(87.0));
    assert_eq!(value(&items, "gpu.0.memory"), Some(30.0));
    assert_eq!(value(&items, "gpu.0.memoryAllocated"), Some(25.0));
    assert_eq!(
        value(&items, "gpu.0.memoryAllocatedBytes"),
        Some((20u64 << 30) as f64)
    );
    assert_eq!(value(&items, "gpu.0.temp"), Some(64.0));
    assert_eq!(value(&items, "gpu.0.powerWatts"), Some(300.0));
    assert_eq!(value(&items, "gpu.0.enforcedPowerLimitWatts"), Some(400.0));
    assert_eq!(value(&items, "gpu.0.powerPercent"), Some(75.0));
    assert_eq!(value(&items, "gpu.0.smClock"), Some(1410.0));
    assert_eq!(value(&items, "gpu.0.memoryClock"), Some(1593.0));
    // Not reported by the device: left out, not 0.
    assert_eq!(value(&items, "gpu.0.fanSpeed"), None);
    assert_eq!(value(&items, "gpu.1.gpu"), Some(87.0));
    // GPU 0 runs pid 43 of the tree; GPU 1 runs someone else's process.
    assert_eq!(value(&items, "gpu.process.0.gpu"), Some(87.0));
    assert_eq!(value(&items, "gpu.process.0.powerPercent"), Some(75.0));
    assert!(!keys(&items).iter().any(|k| k.starts_with("gpu.process.1.")));
    // The NPU is not a GPU.
    assert_eq!(
        keys(&items).iter().filter(|k| k.ends_with(".gpu")).count(),
        3
    );

    let only_one = stats_items(&snapshot, &snapshot, None, &[1]);
    assert_eq!(value(&only_one, "gpu.0.gpu"), None);
    assert_eq!(value(&only_one, "gpu.1.gpu"), Some(87.0));
    // pid 0 has no tree, so no GPU is "its".
    assert!(!keys(&only_one).iter().any(|k| k.starts_with("gpu.process")));
}

#[test]
fn gpu_extras_use_wandbs_keys() {
    let mut snapshot = host(vec![], vec![]);
    let mut a100 = gpu(0, &[]);
    a100.graphics_clock_mhz = Some(1400.0);
    a100.encoder_utilization_percent = Some(3.0);
    a100.decoder_utilization_percent = Some(4.0);
    a100.pcie_link_gen = Some(4);
    a100.pcie_link_width = Some(16);
    a100.ecc_errors_corrected = Some(5);
    a100.ecc_errors_uncorrected = Some(0);
    let mut bare = gpu(1, &[]);
    bare.memory_utilization_percent = None;
    snapshot.accelerators = vec![a100, bare];
    let items = stats_items(&snapshot, &snapshot, None, &[]);
    for (key, expected) in [
        ("gpu.0.graphicsClock", 1400.0),
        ("gpu.0.encoderUtilization", 3.0),
        ("gpu.0.decoderUtilization", 4.0),
        ("gpu.0.pcieLinkGen", 4.0),
        ("gpu.0.pcieLinkWidth", 16.0),
        ("gpu.0.correctedMemoryErrors", 5.0),
        ("gpu.0.uncorrectedMemoryErrors", 0.0),
    ] {
        assert_eq!(value(&items, key), Some(expected), "{key}");
    }
    // No memory-controller reading: `memory` is left out, not replaced by the allocation.
    assert_eq!(value(&items, "gpu.1.memory"), None);
    assert_eq!(value(&items, "gpu.1.memoryAllocated"), Some(25.0));
    assert_eq!(value(&items, "gpu.1.graphicsClock"), None);
    // Vendor-specific keys stay with their vendor.
    assert!(!keys(&items)
        .iter()
        .any(|k| k.ends_with(".memoryReadWriteActivity") || k.ends_with(".freq")));
}

#[test]
fn a_process_in_a_mig_instance_counts_for_its_gpu_and_lost_gpus_are_left_out() {
    let mut snapshot = host(vec![], vec![]);
    let mut mig = gpu(0, &[]);
    mig.mig_devices = vec![crate::model::MigDevice {
        index: 0,
        processes: vec![AcceleratorProcess {
            pid: 43,
            memory_used_bytes: None,
            pod: None,
        }],
        ..crate::model::MigDevice::default()
    }];
    let mut lost = gpu(1, &[43]);
    lost.error = Some("GPU is lost".into());
    snapshot.accelerators = vec![mig, lost];
    let items = stats_items(&snapshot, &snapshot, Some(&tree(vec![42, 43])), &[]);
    assert_eq!(value(&items, "gpu.process.0.gpu"), Some(87.0));
    assert!(
        !keys(&items)
            .iter()
            .any(|k| k.starts_with("gpu.1.") || k.starts_with("gpu.process.1.")),
        "{items:?}"
    );
    assert_eq!(value(&items, "gpu.0.gpu"), Some(87.0));
}

#[test]
fn amd_tpu_and_apple_keys() {
    let mut snapshot = host(vec![], vec![]);
    let amd = Accelerator {
        id: "amd0".into(),
        index: 2,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Amd,
        utilization_percent: Some(10.0),
        memory_utilization_percent: Some(7.0),
        power_watts: Some(89.0),
        info: crate::model::AcceleratorInfo {
            max_power_watts: Some(560.0),
            ..crate::model::AcceleratorInfo::default()
        },
        ..Accelerator::default()
    };
    let tpu = |index| Accelerator {
        id: format!("tpu{index}"),
        index,
        kind: AcceleratorKind::Tpu,
        vendor: Vendor::Google,
        utilization_percent: Some(55.5),
        memory_used_bytes: Some(4 << 30),
        memory_total_bytes: Some(16 << 30),
        ..Accelerator::default()
    };
    let apple = Accelerator {
        id: "apple0".into(),
        index: 0,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Apple,
        utilization_percent: Some(12.0),
        sm_clock_mhz: Some(1398.0),
        power_watts: Some(2.5),
        ..Accelerator::default()
    };
    snapshot.accelerators = vec![amd, tpu(0), tpu(1), apple];
    let power = |source: &str, watts| PowerReading {
        source: source.into(),
        watts,
    };
    snapshot.power = vec![
        power("cpu_ecluster", 0.5),
        power("cpu_pcluster", 3.0),
        power("ane", 0.25),
        power("dram", 1.0),
    ];
    let items = stats_items(&snapshot, &snapshot, None, &[]);
    for (key, expected) in [
        ("gpu.2.gpu", 10.0),
        ("gpu.2.memoryReadWriteActivity", 7.0),
        ("gpu.2.powerPercent", 89.0 / 560.0 * 100.0),
        ("tpu.0.dutyCycle", 55.5),
        ("tpu.1.memoryUsage", 25.0),
        ("tpu.1.memoryUsageBytes", (4u64 << 30) as f64),
        ("gpu.0.gpu", 12.0),
        ("gpu.0.freq", 1398.0),
        ("gpu.0.powerWatts", 2.5),
        ("cpu.powerWatts", 3.5),
        ("ane.power", 0.25),
    ] {
        assert_eq!(value(&items, key), Some(expected), "{key}");
    }
    assert_eq!(value(&items, "system.powerWatts"), None);
    // The TPUs are not GPUs.
    assert_eq!(value(&items, "gpu.1.gpu"), None);
}

#[test]
fn environment_from_info_and_accelerators() {
    let mut snapshot = host(vec![], vec![]);
    snapshot.info = Arc::new(SystemInfo {
        platform: "linux".into(),
        kernel: "6.1.0-18-amd64".into(),
        architecture: "x86_64".into(),
        hostname: "box".into(),
        cpu_cores: 8,
        cpu_threads: 16,
        ..SystemInfo::default()
    });
    let empty = environment(&snapshot);
    assert_eq!(empty.os, "Linux-6.1.0-18-amd64-x86_64");
    assert_eq!(empty.host, "box");
    assert_eq!((empty.cpu_count, empty.cpu_count_logical), (8, 16));
    assert_eq!((empty.gpu_count, empty.gpu_type.as_str()), (0, ""));
    assert!(empty.gpu_nvidia.is_empty() && empty.apple.is_none() && empty.tpu.is_none());

    let mut a100 = gpu(1, &[]);
    a100.info.cores = Some(6912);
    a100.info.architecture = Some("Ampere".into());
    a100.info.cuda_version = Some("12.4".into());
    snapshot.accelerators = vec![gpu(0, &[]), a100];
    let env = environment(&snapshot);
    assert_eq!(env.gpu_count, 2);
    assert_eq!(env.gpu_type, "NVIDIA A100-SXM4-80GB");
    assert_eq!(env.gpu_nvidia.len(), 2);
    assert_eq!(env.gpu_nvidia[1].uuid, "GPU-1");
    assert_eq!(env.gpu_nvidia[0].memory_total, 80 << 30);
    assert_eq!(
        (
            env.gpu_nvidia[1].cuda_cores,
            env.gpu_nvidia[1].architecture.as_str()
        ),
        (6912, "Ampere")
    );
    assert_eq!(env.gpu_nvidia[0].cuda_cores, 0);
    // The first NVIDIA device that knows it.
    assert_eq!(env.cuda_version, "12.4");
}

#[test]
fn environment_of_amd_tpu_and_apple() {
    use crate::model::AcceleratorInfo;
    let mut snapshot = host(vec![], vec![]);
    let amd = Accelerator {
        id: "amd0".into(),
        index: 0,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Amd,
        name: "AMD Instinct MI250X".into(),
        uuid: Some("0x719d230578348e8c".into()),
        info: AcceleratorInfo {
            vbios_version: Some("113-D65209-073".into()),
            performance_level: Some("auto".into()),
            sku: Some("D65209".into()),
            sclk_range: Some("500Mhz - 1700Mhz".into()),
            mclk_range: Some("400Mhz - 1600Mhz".into()),
            max_power_watts: Some(560.0),
            ..AcceleratorInfo::default()
        },
        ..Accelerator::default()
    };
    let tpu = |index| Accelerator {
        id: format!("tpu{index}"),
        index,
        kind: AcceleratorKind::Tpu,
        vendor: Vendor::Google,
        name: "TPU v5 lite".into(),
        memory_total_bytes: Some(16 << 30),
        info: AcceleratorInfo {
            architecture: Some("v5e".into()),
            ..AcceleratorInfo::default()
        },
        ..Accelerator::default()
    };
    let apple = Accelerator {
        id: "apple0".into(),
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Apple,
        name: "Apple M3 Max".into(),
        info: AcceleratorInfo {
            cores: Some(40),
            ..AcceleratorInfo::default()
        },
        ..Accelerator::default()
    };
    snapshot.accelerators = vec![amd, tpu(0), tpu(1), apple];
    let env = environment(&snapshot);
    let amd = &env.gpu_amd[0];
    assert_eq!(
        (
            amd.id.as_str(),
            amd.unique_id.as_str(),
            amd.vbios_version.as_str()
        ),
        ("0", "0x719d230578348e8c", "113-D65209-073")
    );
    assert_eq!(
        (
            amd.performance_level.as_str(),
            amd.max_power.as_str(),
            amd.sku.as_str()
        ),
        ("auto", "560.0", "D65209")
    );
    assert_eq!(amd.series, "AMD Instinct MI250X");
    assert_eq!(
        (amd.sclk_range.as_str(), amd.mclk_range.as_str()),
        ("500Mhz - 1700Mhz", "400Mhz - 1600Mhz")
    );
    let tpu = env.tpu.unwrap();
    assert_eq!((tpu.name.as_str(), tpu.hbm_gib, tpu.count), ("v5e", 16, 2));
    let apple = env.apple.unwrap();
    assert_eq!((apple.name.as_str(), apple.gpu_cores), ("Apple M3 Max", 40));
    assert_eq!((apple.memory_gb, apple.ram_total_bytes), (8, 8 << 30));
    // AMD and Apple GPUs are GPUs; the TPUs are not.
    assert_eq!(env.gpu_count, 2);
    assert_eq!(env.cuda_version, "");
}

#[test]
fn platform_strings() {
    let info = |platform: &str, kernel: &str, os: &str, arch: &str| SystemInfo {
        platform: platform.into(),
        kernel: kernel.into(),
        os_version: os.into(),
        architecture: arch.into(),
        ..SystemInfo::default()
    };
    assert_eq!(
        platform_string(&info("macos", "23.4.0", "macOS 14.4", "arm64")),
        "macOS-14.4-arm64"
    );
    assert_eq!(
        platform_string(&info("windows", "10.0.19045", "", "x86_64")),
        "Windows-10.0.19045"
    );
    assert_eq!(
        platform_string(&info("freebsd", "14.0", "", "x86_64")),
        "Freebsd-14.0-x86_64"
    );
}
