use super::*;

fn states(list: &[(&str, i64)]) -> Vec<StateResidency> {
    list.iter()
        .map(|&(name, residency)| StateResidency {
            name: name.to_string(),
            residency,
        })
        .collect()
}

#[test]
fn gpu_activity_weights_frequency_by_active_residency() {
    // 50% off, then 30 units at 400 MHz and 20 at 1,000 MHz.
    let s = states(&[("OFF", 50), ("P1", 30), ("P2", 20), ("P3", 0)]);
    let a = gpu_activity(&s, &[400.0, 1000.0, 1300.0]);
    assert_eq!(a.utilization_percent, Some(50.0));
    let mhz = a.frequency_mhz.unwrap();
    assert!(
        (mhz - (30.0 * 400.0 + 20.0 * 1000.0) / 50.0).abs() < 1e-9,
        "{mhz}"
    );
}

#[test]
fn gpu_activity_idle_and_empty_intervals() {
    let off = gpu_activity(&states(&[("OFF", 100), ("P1", 0)]), &[400.0]);
    assert_eq!(off.utilization_percent, Some(0.0));
    assert_eq!(off.frequency_mhz, Some(0.0));
    let empty = gpu_activity(&states(&[("OFF", 0), ("P1", 0)]), &[400.0]);
    assert_eq!(empty, GpuActivity::default());
    assert_eq!(gpu_activity(&[], &[400.0]), GpuActivity::default());
}

#[test]
fn gpu_activity_refuses_a_short_frequency_table() {
    let s = states(&[("OFF", 10), ("P1", 10), ("P2", 10)]);
    let a = gpu_activity(&s, &[400.0]);
    assert!((a.utilization_percent.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(a.frequency_mhz, None);
}

#[test]
fn gpu_activity_ignores_negative_residency_and_all_idle_names() {
    let s = states(&[("IDLE", 10), ("DOWN", 10), ("OFF", -5), ("P1", 20)]);
    let a = gpu_activity(&s, &[500.0]);
    assert_eq!(a.utilization_percent, Some(50.0));
    assert_eq!(a.frequency_mhz, Some(500.0));
}

#[test]
fn residencies_merge_only_matching_tables() {
    let mut total = Vec::new();
    assert!(merge_residencies(
        &mut total,
        &states(&[("OFF", 1), ("P1", 2)])
    ));
    assert!(merge_residencies(
        &mut total,
        &states(&[("OFF", 10), ("P1", 20)])
    ));
    assert_eq!(total, states(&[("OFF", 11), ("P1", 22)]));
    assert!(!merge_residencies(
        &mut total,
        &states(&[("OFF", 1), ("P2", 2)])
    ));
    assert!(!merge_residencies(&mut total, &states(&[("OFF", 1)])));
    assert_eq!(total, states(&[("OFF", 11), ("P1", 22)]));
}

/// The M1-family GPU table as the device tree carries it: `OFF` (0 Hz) then six states from
/// 396 to 1,278 MHz, in Hz, each followed by a voltage in mV.
fn m1_gpu_table() -> Vec<u8> {
    let mut table = Vec::new();
    for (hz, mv) in [
        (0u32, 400u32),
        (396_000_000, 575),
        (528_000_000, 634),
        (720_000_000, 656),
        (924_000_000, 712),
        (1_128_000_000, 790),
        (1_278_000_000, 918),
    ] {
        table.extend_from_slice(&hz.to_le_bytes());
        table.extend_from_slice(&mv.to_le_bytes());
    }
    table
}

#[test]
fn dvfs_table_in_hz_becomes_active_mhz() {
    let raw = dvfs_raw_frequencies(&m1_gpu_table());
    assert_eq!(raw.len(), 7);
    assert_eq!(
        dvfs_frequencies_mhz(&raw),
        vec![396.0, 528.0, 720.0, 924.0, 1128.0, 1278.0]
    );
}

#[test]
fn dvfs_table_units_are_told_by_magnitude() {
    assert_eq!(
        dvfs_frequencies_mhz(&[0, 338_000, 1_578_000]),
        vec![338.0, 1578.0]
    );
    assert_eq!(dvfs_frequencies_mhz(&[0, 338, 1578]), vec![338.0, 1578.0]);
    assert!(dvfs_frequencies_mhz(&[0, 0]).is_empty());
    assert!(dvfs_frequencies_mhz(&[]).is_empty());
}

#[test]
fn dvfs_table_ignores_a_partial_record() {
    let mut table = m1_gpu_table();
    table.extend_from_slice(&[1, 2, 3]);
    assert_eq!(dvfs_raw_frequencies(&table).len(), 7);
    assert!(dvfs_raw_frequencies(&[1, 2, 3]).is_empty());
}

#[test]
fn energy_units_convert_to_watts() {
    // 1.5 J over 0.5 s in each unit spelling.
    for (delta, unit) in [
        (1_500, "mJ"),
        (1_500_000, "uJ"),
        (1_500_000, "\u{b5}J"),
        (1_500_000, "\u{3bc}J"),
        (1_500_000_000, "nJ"),
        (1_500_000_000, "nJ  "),
    ] {
        let w = energy_watts(delta, unit, 0.5).unwrap();
        assert!((w - 3.0).abs() < 1e-9, "{unit}: {w}");
    }
}

#[test]
fn energy_without_a_valid_unit_interval_or_delta_is_none() {
    assert_eq!(energy_watts(10, "ns", 1.0), None);
    assert_eq!(energy_watts(10, "", 1.0), None);
    assert_eq!(energy_watts(10, "mJ", 0.0), None);
    assert_eq!(energy_watts(10, "mJ", f64::NAN), None);
    assert_eq!(energy_watts(10, "mJ", f64::INFINITY), None);
    assert_eq!(energy_watts(10, "mJ", -1.0), None);
    assert_eq!(energy_watts(-10, "mJ", 1.0), None);
    assert_eq!(energy_watts(0, "mJ", 1.0), Some(0.0));
}

#[test]
fn die_prefixes_are_stripped() {
    assert_eq!(strip_die_prefix("DIE_1_CPU Energy"), "CPU Energy");
    assert_eq!(strip_die_prefix("DIE_12_ANE0"), "ANE0");
    assert_eq!(strip_die_prefix("DIE__ANE0"), "DIE__ANE0");
    assert_eq!(strip_die_prefix("DIE_1ANE"), "DIE_1ANE");
    assert_eq!(strip_die_prefix("GPU Energy"), "GPU Energy");
}

#[test]
fn energy_channels_are_classified() {
    use EnergyChannel::*;
    let cluster = |tier, aggregate| Some(Cluster { tier, aggregate });
    let cases = [
        ("CPU Energy", Some(Cpu)),
        ("DIE_0_CPU Energy", Some(Cpu)),
        ("GPU Energy", Some(Gpu)),
        ("GPU", Some(GpuPart)),
        ("GPU0", Some(GpuPart)),
        ("ANE", Some(Ane)),
        ("ANE0", Some(Ane)),
        ("ANE0_1", Some(Ane)),
        ("DIE_1_ANE0", Some(Ane)),
        ("DRAM0", Some(Dram)),
        ("DRAM", Some(Dram)),
        ("EACC_CPU", cluster(CpuTier::Efficiency, true)),
        ("PACC_CPU", cluster(CpuTier::Performance, true)),
        ("PACC1_CPU", cluster(CpuTier::Performance, true)),
        ("MACC_CPU", cluster(CpuTier::Mid, true)),
        ("ECPU", cluster(CpuTier::Efficiency, false)),
        ("PCPU1", cluster(CpuTier::Performance, false)),
    ];
    for (name, want) in cases {
        assert_eq!(classify_energy_channel(name), want, "{name}");
    }
}

#[test]
fn energy_parts_that_would_double_count_are_skipped() {
    for name in [
        "GPU SRAM0",
        "ANE SRAM",
        "EACC_CPU0",
        "PACC0_CPU3",
        "PACC1_CPU5_SRAM",
        "EACC_CPM",
        "PACC0_CPM",
        "ECPUDTL00",
        "PCPU1DTL3e",
        "ECPM",
        "ISP0",
        "AVE0",
        "AMCC0",
        "DCS0",
        "MSR0",
        "PCIe Port 0 Energy",
        "apciec0 Energy",
        "",
        "XACC_CPU",
    ] {
        assert_eq!(classify_energy_channel(name), None, "{name}");
    }
}

/// The Energy Model channels of an M1 Max (names and units as a channel dump lists them),
/// with made-up deltas: the figures must count each rail once.
#[test]
fn m1_max_energy_model_counts_each_rail_once() {
    let channels: &[(&str, &str, i64)] = &[
        ("EACC_CPU0", "mJ", 50),
        ("EACC_CPU1", "mJ", 50),
        ("PACC0_CPU0", "mJ", 400),
        ("PACC0_CPM", "mJ", 70),
        ("EACC_CPU", "mJ", 120),
        ("PACC0_CPU", "mJ", 900),
        ("PACC1_CPU", "mJ", 600),
        ("CPU Energy", "mJ", 1620),
        ("ECPUDTL00", "mJ", 5),
        ("PCPUDTL00", "mJ", 5),
        ("GPU0", "mJ", 3000),
        ("GPU SRAM0", "mJ", 200),
        ("ANE0", "mJ", 100),
        ("ISP0", "mJ", 10),
        ("DRAM0", "mJ", 400),
        ("GPU Energy", "nJ", 3_200_000_000),
        ("PCIe Port 0 Energy", "\u{b5}J", 1000),
    ];
    let mut figures = PowerFigures::default();
    for &(name, unit, delta) in channels {
        // A 2-second interval.
        figures.add(name, energy_watts(delta, unit, 2.0).unwrap());
    }
    let close = |got: Option<f64>, want: f64| {
        let got = got.unwrap();
        assert!((got - want).abs() < 1e-9, "{got} != {want}");
    };
    close(figures.cpu_watts, 0.81);
    close(figures.gpu_watts(), 1.6);
    close(figures.ane_watts, 0.05);
    close(figures.dram_watts, 0.2);
    close(figures.cluster_watts(CpuTier::Efficiency), 0.06);
    close(figures.cluster_watts(CpuTier::Performance), 0.75);
    assert_eq!(figures.cluster_watts(CpuTier::Mid), None);
    close(figures.package_watts(), 0.81 + 1.6 + 0.05);
    let sources: Vec<_> = figures.host_readings().iter().map(|r| r.0).collect();
    assert_eq!(
        sources,
        ["cpu_ecluster", "cpu_pcluster", "cpu", "dram", "package"]
    );
}

#[test]
fn cluster_fallback_names_are_used_only_without_aggregates() {
    let mut figures = PowerFigures::default();
    figures.add("ECPU", 1.0);
    figures.add("PCPU", 2.0);
    figures.add("PCPU1", 3.0);
    figures.add("PACC_CPU", 4.0);
    assert_eq!(figures.cluster_watts(CpuTier::Efficiency), Some(1.0));
    assert_eq!(figures.cluster_watts(CpuTier::Performance), Some(4.0));
}

#[test]
fn ultra_dies_are_summed_and_gpu_parts_are_a_fallback() {
    let mut figures = PowerFigures::default();
    figures.add("DIE_0_CPU Energy", 1.0);
    figures.add("DIE_1_CPU Energy", 2.0);
    figures.add("DIE_0_GPU0", 0.5);
    figures.add("DIE_1_GPU0", 0.25);
    assert_eq!(figures.cpu_watts, Some(3.0));
    assert_eq!(figures.gpu_watts(), Some(0.75));
    assert_eq!(figures.package_watts(), Some(3.75));
    figures.add("GPU Energy", 5.0);
    assert_eq!(figures.gpu_watts(), Some(5.0));
}

#[test]
fn no_channels_no_readings() {
    let figures = PowerFigures::default();
    assert!(figures.host_readings().is_empty());
    assert_eq!(figures.package_watts(), None);
    assert_eq!(figures.gpu_watts(), None);
}

#[test]
fn four_char_codes_round_trip() {
    assert_eq!(four_char_code("#KEY"), Some(0x234B_4559));
    assert_eq!(four_char_code("flt "), Some(0x666C_7420));
    assert_eq!(four_char_text(0x666C_7420), "flt ");
    assert_eq!(four_char_text(four_char_code("Tg0f").unwrap()), "Tg0f");
    assert_eq!(four_char_code("Tg0"), None);
    assert_eq!(four_char_code("Tg0fx"), None);
    assert_eq!(four_char_code("Tgé"), None);
    assert_eq!(four_char_text(0xFF41_4243), "?ABC");
}

#[test]
fn smc_values_decode_by_type() {
    let t = |s| four_char_code(s).unwrap();
    assert_eq!(
        decode_smc_value(t("flt "), &47.5f32.to_le_bytes()),
        Some(47.5)
    );
    // 0x2F80 = 47.5 in 8.8 fixed point; 0x00BE / 4 = 47.5 in 14.2.
    assert_eq!(decode_smc_value(t("sp78"), &[0x2F, 0x80]), Some(47.5));
    assert_eq!(decode_smc_value(t("sp78"), &[0xFF, 0x00]), Some(-1.0));
    assert_eq!(decode_smc_value(t("fpe2"), &[0x00, 0xBE]), Some(47.5));
    assert_eq!(decode_smc_value(t("ui8 "), &[7]), Some(7.0));
    assert_eq!(decode_smc_value(t("ui16"), &[0x01, 0x02]), Some(258.0));
    assert_eq!(decode_smc_value(t("ui32"), &[0, 1, 0, 0]), Some(65536.0));
    // Extra bytes (the SMC hands back a 32-byte buffer) are ignored.
    assert_eq!(
        decode_smc_value(t("ui16"), &[0x01, 0x02, 9, 9]),
        Some(258.0)
    );
}

#[test]
fn smc_values_that_cannot_decode_are_none() {
    let t = |s| four_char_code(s).unwrap();
    assert_eq!(decode_smc_value(t("flt "), &[1, 2, 3]), None);
    assert_eq!(decode_smc_value(t("sp78"), &[1]), None);
    assert_eq!(decode_smc_value(t("ui8 "), &[]), None);
    assert_eq!(decode_smc_value(t("ch8*"), b"abcd"), None);
    assert_eq!(decode_smc_value(t("flt "), &f32::NAN.to_le_bytes()), None);
}

#[test]
fn gpu_temperature_keys_and_mean() {
    assert!(is_gpu_temperature_key("Tg0f"));
    assert!(is_gpu_temperature_key("Tg05"));
    assert!(!is_gpu_temperature_key("Tp01"));
    assert!(!is_gpu_temperature_key("Tg0"));
    assert_eq!(mean_celsius([40.0, 50.0, 0.0, -3.0, 300.0]), Some(45.0));
    assert_eq!(mean_celsius([0.0, f64::NAN]), None);
    assert_eq!(mean_celsius(std::iter::empty()), None);
}
fn energy(name: &str, delta: i64, unit: &str) -> IntervalChannel {
    IntervalChannel {
        group: ENERGY_GROUP.to_string(),
        subgroup: String::new(),
        name: name.to_string(),
        value: ChannelValue::Integer {
            delta,
            unit: unit.to_string(),
        },
    }
}

fn gpu_states(name: &str, list: &[(&str, i64)]) -> IntervalChannel {
    IntervalChannel {
        group: GPU_GROUP.to_string(),
        subgroup: GPU_STATES_SUBGROUP.to_string(),
        name: name.to_string(),
        value: ChannelValue::States(states(list)),
    }
}

/// One second of an M-series chip: both GPU die channels, energy in mixed units.
fn interval() -> Vec<IntervalChannel> {
    vec![
        energy("EACC_CPU", 300, "mJ"),
        energy("PACC0_CPU", 2_000, "mJ"),
        energy("EACC_CPU0", 100, "mJ"),
        energy("CPU Energy", 2_300, "mJ"),
        energy("GPU Energy", 4_500_000_000, "nJ"),
        energy("GPU SRAM0", 300, "mJ"),
        energy("ANE0", 250_000, "uJ"),
        energy("DRAM0", 700, "mJ "),
        energy("ISP0", 5, "mJ"),
        gpu_states("GPUPH", &[("OFF", 600), ("P1", 300), ("P2", 100)]),
        gpu_states("DIE_1_GPUPH", &[("OFF", 400), ("P1", 500), ("P2", 100)]),
        // Channels of other subgroups or of the wrong shape are not read.
        IntervalChannel {
            group: GPU_GROUP.to_string(),
            subgroup: "GPU Frequency".to_string(),
            name: "GPUPH".to_string(),
            value: ChannelValue::States(states(&[("OFF", 0), ("P1", 1_000_000)])),
        },
        IntervalChannel {
            group: ENERGY_GROUP.to_string(),
            subgroup: String::new(),
            name: "GPU Energy".to_string(),
            value: ChannelValue::States(states(&[("OFF", 1)])),
        },
    ]
}

#[test]
fn an_interval_becomes_devices_and_power_readings() {
    let figures = interval_figures(&interval(), 1.0, &[400.0, 1000.0]);
    assert!(figures.problems.is_empty(), "{:?}", figures.problems);
    let facts = ChipFacts {
        chip: "Apple M2 Ultra".to_string(),
        gpu_cores: Some(76),
        has_ane: true,
    };
    let mut snapshot = Snapshot::default();
    fill_snapshot(&mut snapshot, &facts, Some(&figures), Some(51.5));

    let [gpu, ane] = &snapshot.accelerators[..] else {
        panic!("{:?}", snapshot.accelerators);
    };
    assert_eq!((gpu.id.as_str(), gpu.vendor), ("apple0", Vendor::Apple));
    assert_eq!(gpu.kind, AcceleratorKind::Gpu);
    assert_eq!(gpu.name, "Apple M2 Ultra");
    assert_eq!(gpu.info.cores, Some(76));
    // Off 1,000 of 2,000: 50% busy; active 800 at 400 MHz and 200 at 1,000 MHz.
    assert_eq!(gpu.utilization_percent, Some(50.0));
    assert_eq!(
        gpu.sm_clock_mhz,
        Some((800.0 * 400.0 + 200.0 * 1000.0) / 1000.0)
    );
    assert_eq!(gpu.power_watts, Some(4.5));
    assert_eq!(gpu.temperature_celsius, Some(51.5));
    assert_eq!(gpu.memory_used_bytes, None);
    assert_eq!(gpu.memory_total_bytes, None);
    assert_eq!((ane.id.as_str(), ane.kind), ("ane0", AcceleratorKind::Npu));
    assert_eq!(ane.name, "Apple Neural Engine");
    assert_eq!(ane.power_watts, Some(0.25));

    let want = [
        ("cpu_ecluster", 0.3),
        ("cpu_pcluster", 2.0),
        ("cpu", 2.3),
        ("dram", 0.7),
        ("package", 2.3 + 4.5 + 0.25),
    ];
    assert_eq!(snapshot.power.len(), want.len(), "{:?}", snapshot.power);
    for (reading, (source, watts)) in snapshot.power.iter().zip(want) {
        assert_eq!(reading.source, source);
        assert!((reading.watts - watts).abs() < 1e-9, "{reading:?}");
    }
}

#[test]
fn the_interval_length_divides_energy() {
    let figures = interval_figures(&[energy("CPU Energy", 3_000, "mJ")], 2.0, &[]);
    assert_eq!(figures.power.cpu_watts, Some(1.5));
}

#[test]
fn the_first_sample_lists_the_devices_without_figures() {
    let facts = ChipFacts {
        chip: "Apple M1".to_string(),
        gpu_cores: None,
        has_ane: false,
    };
    let mut snapshot = Snapshot::default();
    fill_snapshot(&mut snapshot, &facts, None, None);
    let [gpu] = &snapshot.accelerators[..] else {
        panic!("{:?}", snapshot.accelerators);
    };
    assert_eq!(gpu.id, "apple0");
    assert_eq!(gpu.name, "Apple M1");
    assert_eq!(
        (gpu.utilization_percent, gpu.power_watts, gpu.sm_clock_mhz),
        (None, None, None)
    );
    assert!(snapshot.power.is_empty());
}

#[test]
fn interval_problems_are_reported() {
    let channels = [
        energy("GPU Energy", 10, "Ws"),
        energy("CPU Energy", -5, "mJ"),
        // Not a reported channel: its odd unit costs nothing.
        energy("ISP0", 10, "furlongs"),
        gpu_states("GPUPH", &[("OFF", 1), ("P1", 1), ("P2", 1)]),
        gpu_states("DIE_1_GPUPH", &[("OFF", 1), ("P1", 1)]),
    ];
    let figures = interval_figures(&channels, 1.0, &[400.0]);
    let kinds: Vec<&str> = figures.problems.iter().map(IntervalProblem::kind).collect();
    assert_eq!(kinds.len(), 4, "{:?}", figures.problems);
    assert_eq!(
        figures.problems[0],
        IntervalProblem::EnergySkipped {
            name: "GPU Energy".to_string(),
            delta: 10,
            unit: "Ws".to_string()
        }
    );
    assert!(matches!(
        figures.problems[1],
        IntervalProblem::EnergySkipped { delta: -5, .. }
    ));
    assert_eq!(
        figures.problems[2],
        IntervalProblem::ResidencyMismatch {
            name: "DIE_1_GPUPH".to_string()
        }
    );
    assert_eq!(
        figures.problems[3],
        IntervalProblem::TooFewFrequencies {
            states: 3,
            frequencies: 1
        }
    );
    assert_eq!(figures.problems[3].to_string(), "3 states, 1 frequencies");
    assert_eq!(figures.power.gpu_watts(), None);
    assert_eq!(figures.power.cpu_watts, None);
    assert!((figures.gpu.utilization_percent.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(figures.gpu.frequency_mhz, None);
}

#[test]
fn without_a_frequency_table_there_is_no_clock_and_no_complaint() {
    let channels = [gpu_states("GPUPH", &[("OFF", 1), ("P1", 3)])];
    let figures = interval_figures(&channels, 1.0, &[]);
    assert_eq!(figures.gpu.utilization_percent, Some(75.0));
    assert_eq!(figures.gpu.frequency_mhz, None);
    assert!(figures.problems.is_empty());
}
