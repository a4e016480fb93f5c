//! Tests of `prometheus`.

use super::*;
use crate::model::{
    Accelerator, AcceleratorKind, CoreStats, CpuTimes, DiskStats, FilesystemStats, InterfaceStats,
    PressureLine, PressureResource,
};

/// A small snapshot: one CPU, a bit of meminfo, a filesystem that answered and one that hung,
/// one failed collector.
fn small() -> Snapshot {
    Snapshot {
        node_id: "n1".into(),
        hostname: "host-1".into(),
        timestamp_ms: 1_700_000_000_500,
        sequence: 2,
        cpu: Some(CpuStats {
            cores: vec![CoreStats {
                id: 0,
                frequency_mhz: Some(2400.5),
                times: CpuTimes {
                    user: 10.5,
                    idle: 100.0,
                    guest: 1.0,
                    ..CpuTimes::default()
                },
                ..CoreStats::default()
            }],
            load_average: [0.5, 0.25, 0.125],
            processes: 120,
            threads: 300,
            procs_running: 2,
            procs_blocked: 0,
            context_switches_total: 123_456,
            interrupts_total: 7890,
            forks_total: 4242,
            boot_time_seconds: 1_699_990_000,
            ..CpuStats::default()
        }),
        memory: Some(MemoryStats {
            raw: vec![
                ("MemTotal_bytes".into(), 16 * 1024 * 1024 * 1024),
                ("Active_anon_bytes".into(), 1024),
                ("HugePages_Total".into(), 4),
            ],
            ..MemoryStats::default()
        }),
        filesystems: Some(FilesystemsStats {
            mounts: vec![
                FilesystemStats {
                    device: "/dev/sda1".into(),
                    mountpoint: "/".into(),
                    fstype: "ext4".into(),
                    size_bytes: 1000,
                    free_bytes: 400,
                    avail_bytes: 300,
                    files: 50,
                    files_free: 20,
                    ..FilesystemStats::default()
                },
                FilesystemStats {
                    device: "nas:/export".into(),
                    mountpoint: "/mnt/\"nas\"".into(),
                    fstype: "nfs4".into(),
                    readonly: true,
                    state: FilesystemState::TimedOut,
                    ..FilesystemStats::default()
                },
            ],
            ..FilesystemsStats::default()
        }),
        collectors: vec![
            CollectorStatus {
                name: "cpu".into(),
                ok: true,
                error: None,
                no_data: false,
                duration_seconds: 0.00025,
            },
            CollectorStatus {
                name: "disk".into(),
                ok: false,
                error: Some("reading /proc/diskstats: gone".into()),
                no_data: false,
                duration_seconds: 0.0,
            },
        ],
        ..Snapshot::default()
    }
}

#[test]
fn small_snapshot_exact_text() {
    let text = encode(&small(), Format::Text);
    let expected = format!(
        r#"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{{node="n1",cpu="0",mode="user"}} 10.5
node_cpu_seconds_total{{node="n1",cpu="0",mode="nice"}} 0
node_cpu_seconds_total{{node="n1",cpu="0",mode="system"}} 0
node_cpu_seconds_total{{node="n1",cpu="0",mode="idle"}} 100
node_cpu_seconds_total{{node="n1",cpu="0",mode="iowait"}} 0
node_cpu_seconds_total{{node="n1",cpu="0",mode="irq"}} 0
node_cpu_seconds_total{{node="n1",cpu="0",mode="softirq"}} 0
node_cpu_seconds_total{{node="n1",cpu="0",mode="steal"}} 0
# HELP node_cpu_guest_seconds_total Seconds the CPUs spent in guests (VMs) for each mode.
# TYPE node_cpu_guest_seconds_total counter
node_cpu_guest_seconds_total{{node="n1",cpu="0",mode="user"}} 1
node_cpu_guest_seconds_total{{node="n1",cpu="0",mode="nice"}} 0
# HELP node_cpu_scaling_frequency_hertz Current scaled CPU thread frequency in hertz.
# TYPE node_cpu_scaling_frequency_hertz gauge
node_cpu_scaling_frequency_hertz{{node="n1",cpu="0"}} 2400500000
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1{{node="n1"}} 0.5
# HELP node_load5 5m load average.
# TYPE node_load5 gauge
node_load5{{node="n1"}} 0.25
# HELP node_load15 15m load average.
# TYPE node_load15 gauge
node_load15{{node="n1"}} 0.125
# HELP node_procs_running Number of processes in runnable state.
# TYPE node_procs_running gauge
node_procs_running{{node="n1"}} 2
# HELP node_procs_blocked Number of processes blocked waiting for I/O to complete.
# TYPE node_procs_blocked gauge
node_procs_blocked{{node="n1"}} 0
# HELP node_context_switches_total Total number of context switches.
# TYPE node_context_switches_total counter
node_context_switches_total{{node="n1"}} 123456
# HELP node_intr_total Total number of interrupts serviced.
# TYPE node_intr_total counter
node_intr_total{{node="n1"}} 7890
# HELP node_forks_total Total number of forks.
# TYPE node_forks_total counter
node_forks_total{{node="n1"}} 4242
# HELP node_boot_time_seconds Node boot time, in unixtime.
# TYPE node_boot_time_seconds gauge
node_boot_time_seconds{{node="n1"}} 1699990000
# HELP node_processes_pids Number of PIDs
# TYPE node_processes_pids gauge
node_processes_pids{{node="n1"}} 120
# HELP node_processes_threads Allocated threads in system
# TYPE node_processes_threads gauge
node_processes_threads{{node="n1"}} 300
# HELP node_memory_MemTotal_bytes Memory information field MemTotal_bytes.
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes{{node="n1"}} 17179869184
# HELP node_memory_Active_anon_bytes Memory information field Active_anon_bytes.
# TYPE node_memory_Active_anon_bytes gauge
node_memory_Active_anon_bytes{{node="n1"}} 1024
# HELP node_memory_HugePages_Total Memory information field HugePages_Total.
# TYPE node_memory_HugePages_Total gauge
node_memory_HugePages_Total{{node="n1"}} 4
# HELP node_filesystem_device_error Whether an error occurred while getting statistics for the given device.
# TYPE node_filesystem_device_error gauge
node_filesystem_device_error{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 0
node_filesystem_device_error{{node="n1",device="nas:/export",mountpoint="/mnt/\"nas\"",fstype="nfs4"}} 1
# HELP node_filesystem_readonly Filesystem read-only status.
# TYPE node_filesystem_readonly gauge
node_filesystem_readonly{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 0
node_filesystem_readonly{{node="n1",device="nas:/export",mountpoint="/mnt/\"nas\"",fstype="nfs4"}} 1
# HELP node_filesystem_size_bytes Filesystem size in bytes.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 1000
# HELP node_filesystem_free_bytes Filesystem free space in bytes.
# TYPE node_filesystem_free_bytes gauge
node_filesystem_free_bytes{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 400
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 300
# HELP node_filesystem_files Filesystem total file nodes.
# TYPE node_filesystem_files gauge
node_filesystem_files{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 50
# HELP node_filesystem_files_free Filesystem total free file nodes.
# TYPE node_filesystem_files_free gauge
node_filesystem_files_free{{node="n1",device="/dev/sda1",mountpoint="/",fstype="ext4"}} 20
# HELP system_monitor_collector_duration_seconds Time the collector took in the last sample.
# TYPE system_monitor_collector_duration_seconds gauge
system_monitor_collector_duration_seconds{{node="n1",collector="cpu"}} 0.00025
system_monitor_collector_duration_seconds{{node="n1",collector="disk"}} 0
# HELP system_monitor_collector_success Whether the collector produced its section in the last sample.
# TYPE system_monitor_collector_success gauge
system_monitor_collector_success{{node="n1",collector="cpu"}} 1
system_monitor_collector_success{{node="n1",collector="disk"}} 0
# HELP node_scrape_collector_duration_seconds node_exporter: Duration of a collector scrape.
# TYPE node_scrape_collector_duration_seconds gauge
node_scrape_collector_duration_seconds{{node="n1",collector="cpu"}} 0.00025
node_scrape_collector_duration_seconds{{node="n1",collector="disk"}} 0
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{{node="n1",collector="cpu"}} 1
node_scrape_collector_success{{node="n1",collector="disk"}} 0
# HELP system_monitor_sample_timestamp_seconds When the sample behind these metrics was taken, in unixtime.
# TYPE system_monitor_sample_timestamp_seconds gauge
system_monitor_sample_timestamp_seconds{{node="n1"}} 1700000000.5
# HELP system_monitor_build_info A metric with a constant '1' value labeled by the system_monitor version.
# TYPE system_monitor_build_info gauge
system_monitor_build_info{{node="n1",version="{version}"}} 1
"#,
        version = crate::VERSION
    );
    if text != expected {
        for (i, (got, want)) in text.lines().zip(expected.lines()).enumerate() {
            assert_eq!(got, want, "line {}", i + 1);
        }
        assert_eq!(text, expected);
    }
}

#[test]
fn openmetrics_declares_counters_without_total_and_ends_with_eof() {
    let text = encode(&small(), Format::OpenMetrics);
    assert!(text.contains("# TYPE node_cpu_seconds counter\n"), "{text}");
    assert!(text.contains("# HELP node_cpu_seconds Seconds the CPUs"));
    assert!(text.contains("\nnode_cpu_seconds_total{node=\"n1\",cpu=\"0\",mode=\"user\"} 10.5\n"));
    assert!(text.contains("# TYPE node_context_switches counter\n"));
    assert!(text.contains("# TYPE node_load1 gauge\n"));
    let build_info = format!(
        "system_monitor_build_info{{node=\"n1\",version=\"{}\"}} 1\n# EOF\n",
        crate::VERSION
    );
    assert!(text.ends_with(&build_info), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    assert!(!encode(&small(), Format::Text).contains("# EOF"));
}

#[test]
fn every_sample_carries_the_node_label_once_and_families_are_declared_once() {
    let mut snapshot = full();
    snapshot.node_id = "we\"ird\\node".into();
    for format in [Format::Text, Format::OpenMetrics] {
        let text = encode(&snapshot, format);
        let mut declared = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let family = rest.split(' ').next().unwrap();
                assert!(
                    declared.insert(family.to_string()),
                    "{family} declared twice"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            assert_eq!(line.matches(r#"node="we\"ird\\node""#).count(), 1, "{line}");
            assert_eq!(line.matches("node=").count(), 1, "{line}");
        }
    }
}

/// Every section filled, with one device each.
fn full() -> Snapshot {
    let mut s = small();
    s.temperatures = Some(vec![
        TemperatureSensor {
            chip: "platform_coretemp_0".into(),
            chip_name: "coretemp".into(),
            sensor: "temp1".into(),
            label: Some("Package id 0".into()),
            celsius: 45.0,
            critical_celsius: Some(100.0),
            max_celsius: Some(80.0),
            thermal_zone: false,
        },
        TemperatureSensor {
            chip: "thermal_zone3".into(),
            chip_name: "x86_pkg_temp".into(),
            sensor: "temp".into(),
            celsius: 46.5,
            thermal_zone: true,
            ..TemperatureSensor::default()
        },
    ]);
    let line = |total_seconds| PressureLine {
        total_seconds,
        ..PressureLine::default()
    };
    s.pressure = Some(PressureStats {
        cpu: Some(PressureResource {
            some: line(1.5),
            full: None,
        }),
        memory: Some(PressureResource {
            some: line(2.0),
            full: Some(line(1.0)),
        }),
        io: None,
    });
    s.disks = Some(DisksStats {
        devices: vec![DiskStats {
            name: "nvme0n1".into(),
            read_bytes_total: 1 << 40,
            discarded_bytes_total: Some(5120),
            io_now: 3,
            ..DiskStats::default()
        }],
        ..DisksStats::default()
    });
    s.network = Some(NetworkStats {
        interfaces: vec![InterfaceStats {
            name: "eth0".into(),
            receive_bytes_total: u64::MAX - 1,
            transmit_colls_total: 2,
            ..InterfaceStats::default()
        }],
        tcp_established: Some(12),
        ..NetworkStats::default()
    });
    s.accelerators = vec![
        Accelerator {
            id: "nvidia0".into(),
            index: 0,
            kind: AcceleratorKind::Gpu,
            vendor: "nvidia".into(),
            name: "NVIDIA A100-SXM4-80GB".into(),
            uuid: Some("GPU-1234".into()),
            pci_bus_id: Some("00000000:07:00.0".into()),
            utilization_percent: Some(87.0),
            memory_used_bytes: Some(1024 * 1024 * 1024),
            memory_total_bytes: Some(80 * 1024 * 1024 * 1024),
            temperature_celsius: Some(61.0),
            power_watts: Some(312.25),
            sm_clock_mhz: Some(1410.0),
            memory_clock_mhz: Some(1593.0),
            ..Accelerator::default()
        },
        Accelerator {
            id: "npu0".into(),
            kind: AcceleratorKind::Npu,
            vendor: "intel".into(),
            name: "Intel NPU".into(),
            utilization_percent: Some(12.5),
            ..Accelerator::default()
        },
    ];
    s
}

#[test]
fn node_exporter_names_for_every_section() {
    let text = encode(&full(), Format::Text);
    for expected in [
        r#"node_hwmon_chip_names{node="n1",chip="platform_coretemp_0",chip_name="coretemp"} 1"#,
        r#"node_hwmon_sensor_label{node="n1",chip="platform_coretemp_0",sensor="temp1",label="Package id 0"} 1"#,
        r#"node_hwmon_temp_celsius{node="n1",chip="platform_coretemp_0",sensor="temp1"} 45"#,
        r#"node_hwmon_temp_crit_celsius{node="n1",chip="platform_coretemp_0",sensor="temp1"} 100"#,
        r#"node_hwmon_temp_max_celsius{node="n1",chip="platform_coretemp_0",sensor="temp1"} 80"#,
        r#"node_thermal_zone_temp{node="n1",zone="3",type="x86_pkg_temp"} 46.5"#,
        r#"node_pressure_cpu_waiting_seconds_total{node="n1"} 1.5"#,
        r#"node_pressure_memory_waiting_seconds_total{node="n1"} 2"#,
        r#"node_pressure_memory_stalled_seconds_total{node="n1"} 1"#,
        r#"node_disk_read_bytes_total{node="n1",device="nvme0n1"} 1099511627776"#,
        r#"node_disk_discarded_sectors_total{node="n1",device="nvme0n1"} 10"#,
        "# TYPE node_disk_io_now gauge",
        r#"node_disk_io_now{node="n1",device="nvme0n1"} 3"#,
        r#"node_network_receive_bytes_total{node="n1",device="eth0"} 18446744073709551614"#,
        r#"node_network_transmit_colls_total{node="n1",device="eth0"} 2"#,
        r#"node_tcp_connection_states{node="n1",state="established"} 12"#,
        r#"DCGM_FI_DEV_GPU_UTIL{node="n1",gpu="0",UUID="GPU-1234",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="host-1"} 87"#,
        r#"DCGM_FI_DEV_FB_USED{node="n1",gpu="0",UUID="GPU-1234",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="host-1"} 1024"#,
        r#"DCGM_FI_DEV_FB_FREE{node="n1",gpu="0",UUID="GPU-1234",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="host-1"} 80896"#,
        r#"DCGM_FI_DEV_POWER_USAGE{node="n1",gpu="0",UUID="GPU-1234",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="host-1"} 312.25"#,
        r#"system_monitor_accelerator_utilization_percent{node="n1",accelerator="npu0",vendor="intel",type="npu",name="Intel NPU"} 12.5"#,
    ] {
        assert!(
            text.contains(&format!("{expected}\n")),
            "missing {expected}\n{text}"
        );
    }
    // Nothing was reported for these, so their families are absent, not zero.
    for absent in [
        "node_pressure_cpu_stalled",
        "node_pressure_io_",
        "node_disk_flush_requests_total",
        "DCGM_FI_DEV_FAN",
        "system_monitor_accelerator_power_watts",
        "node_cpu_scaling_frequency_min_hertz",
    ] {
        assert!(!text.contains(absent), "{absent} should be absent");
    }
}

/// tcpstat's family is the scanned ESTABLISHED count only: the kernel's CurrEstab counter (the
/// default source) also counts CLOSE-WAIT, and is on /metrics as node_netstat_Tcp_CurrEstab.
#[test]
fn connection_states_only_from_the_table_scan() {
    let mut s = full();
    s.network = Some(NetworkStats {
        tcp_current_established: Some(5),
        ..NetworkStats::default()
    });
    let text = encode(&s, Format::Text);
    assert!(!text.contains("node_tcp_connection_states"), "{text}");
}

#[test]
fn failed_sections_emit_nothing_but_their_status() {
    let mut s = full();
    s.cpu = None;
    s.disks = None;
    s.network = None;
    let text = encode(&s, Format::Text);
    for absent in [
        "node_cpu_",
        "node_load1",
        "node_disk_",
        "node_network_",
        "node_tcp_",
    ] {
        assert!(!text.contains(absent), "{absent} should be absent");
    }
    assert!(text.contains("system_monitor_collector_success{node=\"n1\",collector=\"disk\"} 0\n"));
    assert!(text.contains("node_memory_MemTotal_bytes"));
}

#[test]
fn portable_memory_uses_meminfo_names() {
    let s = Snapshot {
        node_id: "n".into(),
        memory: Some(MemoryStats {
            total_bytes: 100,
            available_bytes: 60,
            free_bytes: 50,
            swap_total_bytes: 10,
            swap_used_bytes: 4,
            ..MemoryStats::default()
        }),
        ..Snapshot::default()
    };
    let text = encode(&s, Format::Text);
    assert!(text.contains("node_memory_MemAvailable_bytes{node=\"n\"} 60\n"));
    assert!(text.contains("node_memory_SwapFree_bytes{node=\"n\"} 6\n"));
}

#[test]
fn meminfo_names_are_sanitised() {
    assert_eq!(metric_name_part("Active_anon_bytes"), "Active_anon_bytes");
    assert_eq!(metric_name_part("Odd field-x"), "Odd_field_x");
    assert_eq!(metric_name_part("Active(anon)"), "Active_anon");
    assert_eq!(metric_name_part("DirectMap4k"), "DirectMap4k");
}

#[test]
fn kernel_families_are_written_as_their_collectors_named_them() {
    use crate::model::{KernelFamily, KernelMetricKind};
    let snapshot = Snapshot {
        node_id: "n1".into(),
        kernel_families: vec![
            KernelFamily::single(
                "node_netstat_Tcp_InSegs",
                "Statistic TcpInSegs.",
                KernelMetricKind::Untyped,
                42.0,
            ),
            KernelFamily::new(
                "node_softnet_processed_total",
                "Number of processed packets",
                KernelMetricKind::Counter,
            )
            .with(&[("cpu", "0")], 7.0)
            .with(&[("cpu", "1")], 8.0),
            KernelFamily::single(
                "node_timex_pps_calls",
                "A counter without _total.",
                KernelMetricKind::Counter,
                3.0,
            ),
            KernelFamily::new("node_empty", "No samples.", KernelMetricKind::Gauge),
        ],
        ..Snapshot::default()
    };
    let text = encode(&snapshot, Format::Text);
    for expected in [
        "# TYPE node_netstat_Tcp_InSegs untyped\nnode_netstat_Tcp_InSegs{node=\"n1\"} 42\n",
        "# TYPE node_softnet_processed_total counter\n\
         node_softnet_processed_total{node=\"n1\",cpu=\"0\"} 7\n\
         node_softnet_processed_total{node=\"n1\",cpu=\"1\"} 8\n",
        "# TYPE node_timex_pps_calls counter\n",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(!text.contains("node_empty"), "{text}");

    let open = encode(&snapshot, Format::OpenMetrics);
    for expected in [
        "# TYPE node_netstat_Tcp_InSegs unknown\n",
        "# TYPE node_softnet_processed counter\n",
        "# TYPE node_timex_pps_calls unknown\n",
    ] {
        assert!(
            open.contains(expected),
            "{expected:?} missing from:\n{open}"
        );
    }
}

#[test]
fn collector_status_also_under_node_exporter_names() {
    let text = encode(&small(), Format::Text);
    for name in [
        "node_scrape_collector_duration_seconds",
        "node_scrape_collector_success",
    ] {
        let ours = name.replace("node_scrape_", "system_monitor_");
        let lines = |n: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{n}{{")))
                .map(|l| l.replacen(n, "", 1))
                .collect()
        };
        assert!(!lines(name).is_empty(), "{name} missing:\n{text}");
        assert_eq!(lines(name), lines(&ours), "{name} differs from {ours}");
    }
}

#[test]
fn foreign_families_are_written_as_read_unless_they_shadow_ours() {
    use crate::model::exposition::{parse, ForeignFamily};
    use crate::model::{KernelFamily, KernelMetricKind};
    let text = "# HELP backup_age_seconds Since the last backup.\n\
                # TYPE backup_age_seconds gauge\n\
                backup_age_seconds{job=\"db\"} 60\n\
                # TYPE jobs_total counter\njobs_total 3\n\
                # TYPE legacy counter\nlegacy 4\n\
                # TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.2\nrpc_sum 1\nrpc_count 5\n\
                # TYPE node_load1 gauge\nnode_load1 99\n\
                # TYPE node_textfile_scrape_error gauge\nnode_textfile_scrape_error 0\n\
                # TYPE system_monitor_collector_success untyped\nsystem_monitor_collector_success 1\n";
    let foreign: Vec<_> = parse(text)
        .unwrap()
        .into_iter()
        .map(|family| {
            Arc::new(ForeignFamily {
                family,
                source: "/t/a.prom".into(),
            })
        })
        .collect();
    let mut snapshot = small();
    snapshot.kernel_families.push(KernelFamily::single(
        "node_textfile_scrape_error",
        "1 if there was an error opening or reading a file, 0 otherwise",
        KernelMetricKind::Gauge,
        0.0,
    ));
    snapshot.foreign_families = foreign;
    let (text, shadowed) = encode_reporting(&snapshot, Format::Text);
    for expected in [
        "# HELP backup_age_seconds Since the last backup.\n# TYPE backup_age_seconds gauge\n\
         backup_age_seconds{node=\"n1\",job=\"db\"} 60\n",
        "# TYPE jobs_total counter\njobs_total{node=\"n1\"} 3\n",
        "# TYPE legacy counter\nlegacy{node=\"n1\"} 4\n",
        "# TYPE rpc summary\nrpc{node=\"n1\",quantile=\"0.5\"} 0.2\nrpc_sum{node=\"n1\"} 1\n\
         rpc_count{node=\"n1\"} 5\n",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let left_out: Vec<&str> = shadowed.iter().map(|s| s.family.as_str()).collect();
    assert_eq!(
        left_out,
        [
            "node_load1",
            "node_textfile_scrape_error",
            "system_monitor_collector_success"
        ]
    );
    assert_eq!(shadowed[0].source, "/t/a.prom");
    assert!(!text.contains("node_load1{node=\"n1\"} 99"), "{text}");
    assert_eq!(text.matches("# TYPE node_textfile_scrape_error").count(), 1);

    let open = encode(&snapshot, Format::OpenMetrics);
    for expected in [
        "# TYPE jobs counter\njobs_total{node=\"n1\"} 3\n",
        "# TYPE legacy unknown\nlegacy{node=\"n1\"} 4\n",
        "# TYPE rpc summary\n",
    ] {
        assert!(
            open.contains(expected),
            "{expected:?} missing from:\n{open}"
        );
    }
    assert!(open.ends_with("# EOF\n"));
}
