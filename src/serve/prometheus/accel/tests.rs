use super::super::{encode, Format};
use crate::model::{
    Accelerator, AcceleratorInfo, AcceleratorKind, MigDevice, PowerReading, ProfilingStats,
    Snapshot, Vendor,
};

const GIB: u64 = 1 << 30;

/// An A100 in MIG mode: two compute instances of one 3g instance, one 1g instance, one
/// instance without a profile name; DCGM profiling on.
fn a100() -> Accelerator {
    let mig = |index, gi, ci, profile: Option<&str>, used_gib, total_gib| MigDevice {
        index,
        uuid: Some(format!("MIG-{index}")),
        gpu_instance_id: Some(gi),
        compute_instance_id: Some(ci),
        profile: profile.map(String::from),
        memory_used_bytes: Some(used_gib * GIB),
        memory_total_bytes: Some(total_gib * GIB),
        ..MigDevice::default()
    };
    Accelerator {
        id: "nvidia1".into(),
        index: 1,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Nvidia,
        name: "NVIDIA A100-SXM4-80GB".into(),
        uuid: Some("GPU-a1".into()),
        pci_bus_id: Some("00000000:07:00.0".into()),
        info: AcceleratorInfo {
            driver_version: Some("550.54.15".into()),
            mig_enabled: Some(true),
            ..AcceleratorInfo::default()
        },
        utilization_percent: Some(87.0),
        memory_utilization_percent: Some(40.0),
        memory_used_bytes: Some(10 * GIB),
        memory_total_bytes: Some(80 * GIB),
        memory_reserved_bytes: Some(512 << 20),
        temperature_celsius: Some(61.0),
        power_watts: Some(312.25),
        power_limit_watts: Some(400.0),
        energy_joules: Some(123_456.789),
        sm_clock_mhz: Some(1410.0),
        graphics_clock_mhz: Some(1410.0),
        performance_state: Some(0),
        throttle_reasons: Some(0x4),
        ecc_errors_corrected: Some(3),
        ecc_errors_uncorrected: Some(0),
        mig_devices: vec![
            mig(0, 1, 0, Some("3g.40gb"), 6, 40),
            mig(1, 1, 1, Some("3g.40gb"), 6, 40),
            mig(2, 9, 0, Some("1g.10gb"), 1, 10),
            mig(3, 13, 0, None, 1, 10),
        ],
        profiling: Some(ProfilingStats {
            graphics_engine_active: Some(0.5),
            tensor_active: Some(0.25),
            ..ProfilingStats::default()
        }),
        ..Accelerator::default()
    }
}

fn snapshot(accelerators: Vec<Accelerator>) -> Snapshot {
    Snapshot {
        node_id: "n1".into(),
        hostname: "gpu-host".into(),
        accelerators,
        ..Snapshot::default()
    }
}

/// The lines of `family` (HELP, TYPE and samples) in `text`.
fn family<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            let metric = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            metric.split(['{', ' ']).next() == Some(name)
        })
        .collect()
}

const GPU1: &str = r#"gpu="1",UUID="GPU-a1",pci_bus_id="00000000:07:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB""#;
const HOST: &str = r#"Hostname="gpu-host",DCGM_FI_DRIVER_VERSION="550.54.15""#;

#[test]
fn framebuffer_per_gpu_and_per_gpu_instance_as_dcgm_exporter() {
    let text = encode(&snapshot(vec![a100()]), Format::Text);
    assert_eq!(
        family(&text, "DCGM_FI_DEV_FB_USED"),
        [
            "# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).",
            "# TYPE DCGM_FI_DEV_FB_USED gauge",
            &format!(r#"DCGM_FI_DEV_FB_USED{{node="n1",{GPU1},{HOST}}} 10240"#),
            // Compute instances 0 and 1 share GPU instance 1; the profile-less one is left out.
            &format!(
                r#"DCGM_FI_DEV_FB_USED{{node="n1",{GPU1},GPU_I_PROFILE="3g.40gb",GPU_I_ID="1",{HOST}}} 6144"#
            ),
            &format!(
                r#"DCGM_FI_DEV_FB_USED{{node="n1",{GPU1},GPU_I_PROFILE="1g.10gb",GPU_I_ID="9",{HOST}}} 1024"#
            ),
        ]
    );
    // Free is total less used less reserved, in whole MiB.
    let free = family(&text, "DCGM_FI_DEV_FB_FREE");
    assert_eq!(
        free[2],
        format!(r#"DCGM_FI_DEV_FB_FREE{{node="n1",{GPU1},{HOST}}} 71168"#)
    );
    assert!(free[3].ends_with("} 34816"), "{}", free[3]);
    assert_eq!(
        family(&text, "DCGM_FI_DEV_FB_RESERVED")[2],
        format!(r#"DCGM_FI_DEV_FB_RESERVED{{node="n1",{GPU1},{HOST}}} 512"#)
    );
}

#[test]
fn dcgm_counters_keep_their_names_and_types() {
    let text = encode(&snapshot(vec![a100()]), Format::Text);
    assert_eq!(
        family(&text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
        [
            "# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).",
            "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
            &format!(
                r#"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{node="n1",{GPU1},{HOST}}} 123456789"#
            ),
        ]
    );
    assert_eq!(
        family(&text, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL")[1],
        "# TYPE DCGM_FI_DEV_ECC_SBE_VOL_TOTAL counter"
    );
    for (name, value) in [
        ("DCGM_FI_DEV_GPU_UTIL", "87"),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "40"),
        ("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "400"),
        ("DCGM_FI_DEV_PSTATE", "0"),
        ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "4"),
        ("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "0"),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.5"),
        ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "0.25"),
    ] {
        let lines = family(&text, name);
        assert_eq!(
            lines.get(2).copied(),
            Some(format!(r#"{name}{{node="n1",{GPU1},{HOST}}} {value}"#).as_str()),
            "{name}"
        );
        assert_eq!(lines.len(), 3, "{name}: one GPU, no instances: {lines:?}");
    }
    // What DCGM has no field for goes under our name, also for NVIDIA.
    assert!(text.contains(
        "system_monitor_accelerator_graphics_clock_hertz{node=\"n1\",accelerator=\"nvidia1\",vendor=\"nvidia\",type=\"gpu\",name=\"NVIDIA A100-SXM4-80GB\"} 1410000000\n"
    ));
    // Not reported: no family at all.
    for absent in [
        "DCGM_FI_DEV_FAN_SPEED",
        "DCGM_FI_PROF_SM_ACTIVE",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "system_monitor_accelerator_utilization_percent",
    ] {
        assert!(!text.contains(absent), "{absent}");
    }
}

#[test]
fn openmetrics_declares_dcgm_counters_unknown() {
    let text = encode(&snapshot(vec![a100()]), Format::OpenMetrics);
    assert!(text.contains("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION unknown\n"));
    assert!(text.contains("# TYPE DCGM_FI_DEV_ECC_SBE_VOL_TOTAL unknown\n"));
    assert!(text.contains("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"));
}

#[test]
fn a_device_in_error_has_no_values_only_up_zero() {
    let mut lost = a100();
    lost.error = Some("GPU is lost".into());
    let mut amd = Accelerator {
        id: "amd0".into(),
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Amd,
        name: "AMD Instinct MI300X".into(),
        utilization_percent: Some(5.0),
        ..Accelerator::default()
    };
    let text = encode(&snapshot(vec![lost.clone(), amd.clone()]), Format::Text);
    assert!(!text.contains("DCGM_FI_"), "{text}");
    assert!(text.contains(
        r#"system_monitor_accelerator_up{node="n1",accelerator="nvidia1",vendor="nvidia",type="gpu",name="NVIDIA A100-SXM4-80GB"} 0"#
    ));
    assert!(text.contains(
        r#"system_monitor_accelerator_up{node="n1",accelerator="amd0",vendor="amd",type="gpu",name="AMD Instinct MI300X"} 1"#
    ));
    amd.error = Some("reading gpu_busy_percent: gone".into());
    let text = encode(&snapshot(vec![amd]), Format::Text);
    assert!(!text.contains("utilization"), "{text}");
}

#[test]
fn other_vendors_under_our_names_and_power_by_source() {
    let amd = Accelerator {
        id: "amd0".into(),
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Amd,
        name: "AMD Instinct MI300X".into(),
        utilization_percent: Some(5.0),
        energy_joules: Some(1234.5),
        sm_clock_mhz: Some(2100.0),
        ecc_errors_corrected: Some(2),
        ..Accelerator::default()
    };
    let mut s = snapshot(vec![amd]);
    s.power = vec![
        PowerReading {
            source: "cpu_ecluster".into(),
            watts: 0.25,
        },
        PowerReading {
            source: "dram".into(),
            watts: 1.5,
        },
    ];
    let text = encode(&s, Format::Text);
    let labels =
        r#"node="n1",accelerator="amd0",vendor="amd",type="gpu",name="AMD Instinct MI300X""#;
    assert_eq!(
        family(&text, "system_monitor_accelerator_energy_joules_total"),
        [
            "# HELP system_monitor_accelerator_energy_joules_total Energy the accelerator used since its driver was loaded.",
            "# TYPE system_monitor_accelerator_energy_joules_total counter",
            &format!("system_monitor_accelerator_energy_joules_total{{{labels}}} 1234.5"),
        ]
    );
    assert!(text.contains(&format!(
        "system_monitor_accelerator_sm_clock_hertz{{{labels}}} 2100000000\n"
    )));
    assert!(text.contains(&format!(
        "system_monitor_accelerator_ecc_corrected_errors_total{{{labels}}} 2\n"
    )));
    assert_eq!(
        family(&text, "system_monitor_power_watts"),
        [
            "# HELP system_monitor_power_watts Power drawn by a part of the machine outside any accelerator device, by source.",
            "# TYPE system_monitor_power_watts gauge",
            r#"system_monitor_power_watts{node="n1",source="cpu_ecluster"} 0.25"#,
            r#"system_monitor_power_watts{node="n1",source="dram"} 1.5"#,
        ]
    );
    let openmetrics = encode(&s, Format::OpenMetrics);
    assert!(openmetrics.contains("# TYPE system_monitor_accelerator_energy_joules counter\n"));
}

#[test]
fn pod_labels_follow_dcgm_exporters_on_devices_held_by_one_container() {
    use crate::model::PodRef;
    let holder = |name: &str| PodRef {
        namespace: "ml".into(),
        name: name.into(),
        container: "main".into(),
    };
    let mut gpu = a100();
    gpu.mig_devices[2].pods = vec![holder("infer-0")];
    let mut shared = a100();
    shared.id = "nvidia2".into();
    shared.index = 2;
    shared.mig_devices.clear();
    shared.pods = vec![holder("a"), holder("b")];
    let mut amd = Accelerator {
        id: "amd0".into(),
        vendor: Vendor::Amd,
        name: "MI300X".into(),
        utilization_percent: Some(5.0),
        ..Accelerator::default()
    };
    amd.pods = vec![holder("train-0")];
    let text = encode(&snapshot(vec![gpu, shared, amd]), Format::Text);
    let pod = r#"container="main",namespace="ml""#;
    // The instance held by one container; the GPU itself (its instances' holders aside) has none.
    assert!(text.contains(&format!(
        r#"DCGM_FI_DEV_FB_USED{{node="n1",{GPU1},GPU_I_PROFILE="1g.10gb",GPU_I_ID="9",{HOST},{pod},pod="infer-0"}} 1024"#
    )));
    assert!(text.contains(&format!(
        r#"DCGM_FI_DEV_FB_USED{{node="n1",{GPU1},{HOST}}} 10240"#
    )));
    // Shared by two: no pod labels rather than one series per sharer.
    let shared_util: Vec<&str> = family(&text, "DCGM_FI_DEV_GPU_UTIL")
        .into_iter()
        .filter(|l| l.contains(r#"gpu="2""#))
        .collect();
    assert_eq!(shared_util.len(), 1);
    assert!(!shared_util[0].contains("pod="), "{}", shared_util[0]);
    // Other vendors under our names, the same labels last; `up` never has them.
    assert!(text.contains(&format!(
        r#"system_monitor_accelerator_utilization_percent{{node="n1",accelerator="amd0",vendor="amd",type="gpu",name="MI300X",{pod},pod="train-0"}} 5"#
    )));
    assert!(text.contains(
        r#"system_monitor_accelerator_up{node="n1",accelerator="amd0",vendor="amd",type="gpu",name="MI300X"} 1"#
    ));
}
