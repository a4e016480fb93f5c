//! Decoding of the Apple Silicon collector's readings, pure so that it is compiled and tested on
//! every platform (the collector itself is macOS arm64 only): IOReport state residencies → GPU
//! utilization and average clock, energy counters and their unit labels → watts, Energy Model
//! channel names → power sources, pmgr DVFS tables → MHz, SMC key codes and value encodings, and
//! one interval's channels → the snapshot's devices and power readings. Reads nothing.
//!
//! The channel and key names come from what tools that read the same interfaces observed across
//! chips (macmon, asitop, powermetrics): they are undocumented and vary by chip, so every rule
//! here degrades to "no figure" rather than guessing.

use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, PowerReading, Snapshot, Vendor};

/// A GPU performance state that is not running: its residency counts as idle time. `OFF` is the
/// GPU's, `IDLE`/`DOWN` appear in the CPU clusters' tables and on some chips' GPU table.
pub fn is_idle_state(name: &str) -> bool {
    matches!(name.trim(), "OFF" | "IDLE" | "DOWN")
}

/// Time spent in one performance state over an interval, as IOReport reports it (`name` is e.g.
/// `OFF`, `P1`…`P15`; `residency` is in IOReport's time unit, only ratios matter here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateResidency {
    /// State name as IOReport spells it.
    pub name: String,
    /// Time in the state over the interval (a delta), in IOReport ticks.
    pub residency: i64,
}

/// What one interval of the GPU's performance-state residencies says.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GpuActivity {
    /// Share of the interval the GPU spent in an active state (not `OFF`), 0–100; `None` when the
    /// interval held no residency at all.
    pub utilization_percent: Option<f64>,
    /// Average clock over the active time, MHz: each active state's frequency weighted by its
    /// residency. 0 when the GPU was off the whole interval; `None` when the states cannot be
    /// matched with the frequency table (more active states than frequencies) or there was no
    /// residency at all.
    pub frequency_mhz: Option<f64>,
}

/// Utilization and residency-weighted clock of the GPU over one interval. `frequencies_mhz` are
/// the active states' clocks in state order (the pmgr table without its 0 Hz `OFF` entry, see
/// [`dvfs_frequencies_mhz`]): the n-th active state runs at the n-th frequency.
pub fn gpu_activity(states: &[StateResidency], frequencies_mhz: &[f64]) -> GpuActivity {
    let total: f64 = states.iter().map(|s| s.residency.max(0) as f64).sum();
    if total <= 0.0 {
        return GpuActivity::default();
    }
    let active: Vec<f64> = states
        .iter()
        .filter(|s| !is_idle_state(&s.name))
        .map(|s| s.residency.max(0) as f64)
        .collect();
    let active_total: f64 = active.iter().sum();
    let utilization = crate::model::percent(active_total, total);
    let frequency = if active.len() > frequencies_mhz.len() {
        None
    } else if active_total <= 0.0 {
        Some(0.0)
    } else {
        let weighted: f64 = active
            .iter()
            .zip(frequencies_mhz)
            .map(|(residency, mhz)| residency * mhz)
            .sum();
        Some(weighted / active_total)
    };
    GpuActivity {
        utilization_percent: Some(utilization),
        frequency_mhz: frequency,
    }
}

/// Adds `more` to `into` state by state, for chips that report one residency channel per GPU die
/// (Ultra). Returns false, leaving `into` alone, when the two tables name different states.
pub fn merge_residencies(into: &mut Vec<StateResidency>, more: &[StateResidency]) -> bool {
    if into.is_empty() {
        into.extend_from_slice(more);
        return true;
    }
    let same_states =
        into.len() == more.len() && into.iter().zip(more).all(|(a, b)| a.name == b.name);
    if !same_states {
        return false;
    }
    for (a, b) in into.iter_mut().zip(more) {
        a.residency = a.residency.saturating_add(b.residency);
    }
    true
}

/// The frequencies of a pmgr `voltage-states*` table: packed 8-byte records, a little-endian u32
/// frequency then a u32 voltage. Returns the raw frequencies (unit undecided, see
/// [`dvfs_frequencies_mhz`]); a trailing partial record is ignored.
pub fn dvfs_raw_frequencies(table: &[u8]) -> Vec<u32> {
    table
        .chunks_exact(8)
        .map(|record| u32::from_le_bytes([record[0], record[1], record[2], record[3]]))
        .collect()
}

/// The active GPU states' clocks in MHz from a pmgr table's raw frequencies: the 0 Hz entries
/// (the `OFF` state at index 0) dropped, the rest scaled by magnitude. M1–M3 store Hz and M4 was
/// seen storing kHz for the CPU tables; a GPU clock lies between ~300 and ~2,000 MHz, so the
/// largest entry tells the unit without a chip list (≥10⁷: Hz, ≥10⁴: kHz, else MHz).
pub fn dvfs_frequencies_mhz(raw: &[u32]) -> Vec<f64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    let divisor = if max >= 10_000_000 {
        1e6
    } else if max >= 10_000 {
        1e3
    } else {
        1.0
    };
    raw.iter()
        .filter(|&&f| f > 0)
        .map(|&f| f64::from(f) / divisor)
        .collect()
}

/// Joules in one unit of an IOReport energy channel, from its unit label (`mJ`, `uJ`/`µJ`, `nJ`,
/// `J`; trailing spaces are common). `None` for a label that is not an energy unit.
pub fn joules_per_unit(label: &str) -> Option<f64> {
    match label.trim() {
        "J" => Some(1.0),
        "mJ" => Some(1e-3),
        // IOReport spells micro as `u`, but the micro sign and the Greek mu have both been seen.
        "uJ" | "\u{b5}J" | "\u{3bc}J" => Some(1e-6),
        "nJ" => Some(1e-9),
        _ => None,
    }
}

/// Average power over an interval from an energy counter's delta. `None` when the unit is not an
/// energy unit, the interval is not a positive finite number, or the delta is negative (a counter
/// reset).
pub fn energy_watts(delta: i64, unit_label: &str, seconds: f64) -> Option<f64> {
    let joules_per_unit = joules_per_unit(unit_label)?;
    if delta < 0 || !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    Some(delta as f64 * joules_per_unit / seconds)
}

/// A CPU cluster tier, by the letter Apple puts first in the cluster's channel names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuTier {
    /// `E`: efficiency cores.
    Efficiency,
    /// `P`: performance cores.
    Performance,
    /// `M`: the middle tier of M5-generation chips (named `MCPU`/`MACC` in IOReport).
    Mid,
}

impl CpuTier {
    fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'E' => Some(Self::Efficiency),
            b'P' => Some(Self::Performance),
            b'M' => Some(Self::Mid),
            _ => None,
        }
    }

    /// The [`crate::model::PowerReading::source`] of this tier's cluster power.
    pub fn source(self) -> &'static str {
        match self {
            Self::Efficiency => "cpu_ecluster",
            Self::Performance => "cpu_pcluster",
            Self::Mid => "cpu_mcluster",
        }
    }
}

/// What an Energy Model channel measures, for the channels the collector reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnergyChannel {
    /// `CPU Energy`: all CPU clusters.
    Cpu,
    /// `GPU Energy`: the GPU.
    Gpu,
    /// `GPU`, `GPU0`: GPU parts, used only where there is no `GPU Energy`.
    GpuPart,
    /// `ANE`, `ANE0`, `ANE0_1`: the Neural Engine.
    Ane,
    /// `DRAM`, `DRAM0`: memory.
    Dram,
    /// A CPU cluster total. `EACC_CPU`/`PACC0_CPU`/`PACC1_CPU` are preferred (`aggregate`);
    /// `ECPU`/`PCPU1` are used only for a tier that has no aggregate channel, since on chips that
    /// have both they may overlap.
    Cluster {
        /// Which cores.
        tier: CpuTier,
        /// Whether this is the `?ACC*_CPU` cluster aggregate.
        aggregate: bool,
    },
}

/// Drops the `DIE_<n>_` prefix that multi-die (Ultra) chips put on channel names.
pub fn strip_die_prefix(name: &str) -> &str {
    let Some(rest) = name.strip_prefix("DIE_") else {
        return name;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[digits..].strip_prefix('_') {
        Some(tail) if digits > 0 => tail,
        _ => name,
    }
}

/// Whether `rest` is empty or only digits and underscores (an instance suffix like `0`, `0_1`).
fn is_instance_suffix(rest: &str) -> bool {
    rest.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// `unit`, `unit<instance>` or `unit Energy`.
fn is_unit_channel(name: &str, unit: &str) -> bool {
    name.strip_prefix(unit)
        .is_some_and(|rest| rest == " Energy" || is_instance_suffix(rest))
}

/// Classifies an Energy Model channel by name; `None` for channels the collector does not report
/// (per-core and SRAM channels, DTL leaves, ISP, AVE, fabric, PCIe…), which would otherwise count
/// the same energy twice.
pub fn classify_energy_channel(name: &str) -> Option<EnergyChannel> {
    let name = strip_die_prefix(name.trim());
    match name {
        "CPU Energy" => return Some(EnergyChannel::Cpu),
        "GPU Energy" => return Some(EnergyChannel::Gpu),
        _ => {}
    }
    if name
        .strip_prefix("GPU")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(EnergyChannel::GpuPart);
    }
    if is_unit_channel(name, "ANE") {
        return Some(EnergyChannel::Ane);
    }
    if is_unit_channel(name, "DRAM") {
        return Some(EnergyChannel::Dram);
    }
    let bytes = name.as_bytes();
    let tier = CpuTier::from_letter(*bytes.first()?)?;
    let rest = &name[1..];
    // `EACC_CPU`, `PACC0_CPU`: the cluster aggregate; `EACC_CPU0` (a core) does not match.
    if let Some(index) = rest
        .strip_prefix("ACC")
        .and_then(|r| r.strip_suffix("_CPU"))
    {
        if index.bytes().all(|b| b.is_ascii_digit()) {
            return Some(EnergyChannel::Cluster {
                tier,
                aggregate: true,
            });
        }
    }
    // `ECPU`, `PCPU1`; not `ECPUDTL00` or `ECPM`.
    if let Some(index) = rest.strip_prefix("CPU") {
        if index.bytes().all(|b| b.is_ascii_digit()) {
            return Some(EnergyChannel::Cluster {
                tier,
                aggregate: false,
            });
        }
    }
    None
}

/// Adds `watts` to an optional total.
fn accumulate(total: &mut Option<f64>, watts: f64) {
    *total = Some(total.unwrap_or(0.0) + watts);
}

/// Power per source over one interval, summed from the Energy Model channels with
/// [`PowerFigures::add`]. Each figure is `None` when no channel of its kind was seen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerFigures {
    /// All CPU clusters (`CPU Energy`, summed over dies).
    pub cpu_watts: Option<f64>,
    /// The GPU (`GPU Energy`).
    gpu_total_watts: Option<f64>,
    /// GPU parts (`GPU0`…), the fallback for `gpu_watts`.
    gpu_parts_watts: Option<f64>,
    /// The Neural Engine.
    pub ane_watts: Option<f64>,
    /// Memory.
    pub dram_watts: Option<f64>,
    /// Cluster aggregates (`?ACC*_CPU`) per tier: efficiency, performance, mid.
    cluster_aggregate_watts: [Option<f64>; 3],
    /// Cluster channels of the other naming (`?CPU*`) per tier, the fallback.
    cluster_other_watts: [Option<f64>; 3],
}

impl PowerFigures {
    /// Counts one channel's power; channels [`classify_energy_channel`] does not know are skipped.
    pub fn add(&mut self, channel_name: &str, watts: f64) {
        let Some(kind) = classify_energy_channel(channel_name) else {
            return;
        };
        let slot = match kind {
            EnergyChannel::Cpu => &mut self.cpu_watts,
            EnergyChannel::Gpu => &mut self.gpu_total_watts,
            EnergyChannel::GpuPart => &mut self.gpu_parts_watts,
            EnergyChannel::Ane => &mut self.ane_watts,
            EnergyChannel::Dram => &mut self.dram_watts,
            EnergyChannel::Cluster { tier, aggregate } => {
                let slots = if aggregate {
                    &mut self.cluster_aggregate_watts
                } else {
                    &mut self.cluster_other_watts
                };
                &mut slots[tier_index(tier)]
            }
        };
        accumulate(slot, watts);
    }

    /// GPU power: `GPU Energy`, or the sum of the GPU parts where that channel is missing.
    pub fn gpu_watts(&self) -> Option<f64> {
        self.gpu_total_watts.or(self.gpu_parts_watts)
    }

    /// One CPU cluster tier's power, `None` where the chip has no such tier.
    pub fn cluster_watts(&self, tier: CpuTier) -> Option<f64> {
        let i = tier_index(tier);
        self.cluster_aggregate_watts[i].or(self.cluster_other_watts[i])
    }

    /// CPU + GPU + Neural Engine, the figure powermetrics calls "Combined Power"; DRAM is not in
    /// it. `None` unless both the CPU and the GPU were measured.
    pub fn package_watts(&self) -> Option<f64> {
        Some(self.cpu_watts? + self.gpu_watts()? + self.ane_watts.unwrap_or(0.0))
    }

    /// The readings that belong to no accelerator device, as `(source, watts)` in a fixed order:
    /// the clusters, `cpu`, `dram`, `package`.
    pub fn host_readings(&self) -> Vec<(&'static str, f64)> {
        let mut readings = Vec::new();
        for tier in [CpuTier::Efficiency, CpuTier::Mid, CpuTier::Performance] {
            if let Some(w) = self.cluster_watts(tier) {
                readings.push((tier.source(), w));
            }
        }
        let rest = [
            ("cpu", self.cpu_watts),
            ("dram", self.dram_watts),
            ("package", self.package_watts()),
        ];
        readings.extend(rest.into_iter().filter_map(|(s, w)| Some((s, w?))));
        readings
    }
}

fn tier_index(tier: CpuTier) -> usize {
    match tier {
        CpuTier::Efficiency => 0,
        CpuTier::Performance => 1,
        CpuTier::Mid => 2,
    }
}

/// IOReport group of the energy counters (CPU, GPU, ANE, DRAM…).
pub const ENERGY_GROUP: &str = "Energy Model";
/// IOReport group of the GPU's performance-state residencies.
pub const GPU_GROUP: &str = "GPU Stats";
/// Subgroup of [`GPU_GROUP`] with the residencies.
pub const GPU_STATES_SUBGROUP: &str = "GPU Performance States";
/// The GPU residency channel (one per die on Ultra chips, possibly prefixed).
pub const GPU_STATES_CHANNEL: &str = "GPUPH";

/// Whether a channel is the GPU's performance-state residency channel.
pub fn is_gpu_states(group: &str, subgroup: &str, name: &str) -> bool {
    group == GPU_GROUP && subgroup == GPU_STATES_SUBGROUP && name.ends_with(GPU_STATES_CHANNEL)
}

/// One channel's value over an interval.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelValue {
    /// A counter delta, in the channel's unit.
    Integer {
        /// The delta.
        delta: i64,
        /// The unit label (`mJ`, `nJ`, …).
        unit: String,
    },
    /// Time per performance state.
    States(Vec<StateResidency>),
}

/// One IOReport channel of an interval (the delta of two samples), as plain data.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalChannel {
    /// e.g. `Energy Model`, `GPU Stats`.
    pub group: String,
    /// e.g. `GPU Performance States`; empty where there is none.
    pub subgroup: String,
    /// e.g. `GPU Energy`, `GPUPH`.
    pub name: String,
    /// Its value over the interval.
    pub value: ChannelValue,
}

/// Something in an interval's channels that cost a figure; the collector logs each kind once.
#[derive(Debug, Clone, PartialEq)]
pub enum IntervalProblem {
    /// A reported energy channel had a unit that is not an energy unit, or went backwards.
    EnergySkipped {
        /// The channel.
        name: String,
        /// Its delta.
        delta: i64,
        /// Its unit label.
        unit: String,
    },
    /// A second GPU residency channel named other states than the first; it was ignored.
    ResidencyMismatch {
        /// The channel ignored.
        name: String,
    },
    /// More active GPU states than DVFS frequencies: no clock figure.
    TooFewFrequencies {
        /// Residency states seen.
        states: usize,
        /// Frequencies known.
        frequencies: usize,
    },
}

impl IntervalProblem {
    /// What kind of problem this is, the key for logging it once.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EnergySkipped { .. } => "energy channel skipped (unknown unit or counter reset)",
            Self::ResidencyMismatch { .. } => "GPU residency channel with other states ignored",
            Self::TooFewFrequencies { .. } => "more GPU states than DVFS frequencies; no GPU clock",
        }
    }
}

impl std::fmt::Display for IntervalProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EnergySkipped { name, delta, unit } => write!(f, "{name}: {delta} {unit:?}"),
            Self::ResidencyMismatch { name } => write!(f, "{name}"),
            Self::TooFewFrequencies {
                states,
                frequencies,
            } => write!(f, "{states} states, {frequencies} frequencies"),
        }
    }
}

/// What one interval's channels say: power per source, the GPU's activity, and what was lost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntervalFigures {
    /// Power per source.
    pub power: PowerFigures,
    /// GPU utilization and clock.
    pub gpu: GpuActivity,
    /// Channels that could not be used.
    pub problems: Vec<IntervalProblem>,
}

/// Reads one interval's channels (`seconds` long): energy channels of the kinds
/// [`classify_energy_channel`] knows become power, the GPU residency channels (summed over dies)
/// become utilization and a clock against `gpu_frequencies_mhz` (empty: no clock figure).
pub fn interval_figures(
    channels: &[IntervalChannel],
    seconds: f64,
    gpu_frequencies_mhz: &[f64],
) -> IntervalFigures {
    let mut figures = IntervalFigures::default();
    let mut residencies: Vec<StateResidency> = Vec::new();
    for channel in channels {
        match &channel.value {
            ChannelValue::Integer { delta, unit } if channel.group == ENERGY_GROUP => {
                if classify_energy_channel(&channel.name).is_none() {
                    continue;
                }
                match energy_watts(*delta, unit, seconds) {
                    Some(watts) => figures.power.add(&channel.name, watts),
                    None => figures.problems.push(IntervalProblem::EnergySkipped {
                        name: channel.name.clone(),
                        delta: *delta,
                        unit: unit.clone(),
                    }),
                }
            }
            ChannelValue::States(states)
                if is_gpu_states(&channel.group, &channel.subgroup, &channel.name) =>
            {
                let merged = merge_residencies(&mut residencies, states);
                if !merged {
                    figures.problems.push(IntervalProblem::ResidencyMismatch {
                        name: channel.name.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    figures.gpu = gpu_activity(&residencies, gpu_frequencies_mhz);
    if figures.gpu.utilization_percent.is_some()
        && figures.gpu.frequency_mhz.is_none()
        && !gpu_frequencies_mhz.is_empty()
    {
        figures.problems.push(IntervalProblem::TooFewFrequencies {
            states: residencies.len(),
            frequencies: gpu_frequencies_mhz.len(),
        });
    }
    figures
}

/// Facts about the chip that do not change while the monitor runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChipFacts {
    /// The chip's name (`Apple M2 Pro`), the GPU's product name.
    pub chip: String,
    /// GPU cores, `None` where the driver did not say.
    pub gpu_cores: Option<u32>,
    /// Whether the chip reports a Neural Engine energy channel: decides whether `ane0` is listed,
    /// once, so the device list does not change from sample to sample.
    pub has_ane: bool,
}

/// Adds the chip's devices (`apple0`, and `ane0` where there is one) and the host power readings
/// of one sample to `snapshot`. `figures` is `None` for the first sample (no interval yet) or
/// when IOReport gave nothing; the devices are listed all the same, without figures.
pub fn fill_snapshot(
    snapshot: &mut Snapshot,
    facts: &ChipFacts,
    figures: Option<&IntervalFigures>,
    gpu_temperature_celsius: Option<f64>,
) {
    let empty = IntervalFigures::default();
    let figures = figures.unwrap_or(&empty);
    snapshot.accelerators.push(Accelerator {
        id: "apple0".to_string(),
        index: 0,
        kind: AcceleratorKind::Gpu,
        vendor: Vendor::Apple,
        name: facts.chip.clone(),
        info: AcceleratorInfo {
            cores: facts.gpu_cores,
            ..AcceleratorInfo::default()
        },
        utilization_percent: figures.gpu.utilization_percent,
        temperature_celsius: gpu_temperature_celsius,
        power_watts: figures.power.gpu_watts(),
        sm_clock_mhz: figures.gpu.frequency_mhz,
        ..Accelerator::default()
    });
    if facts.has_ane {
        snapshot.accelerators.push(Accelerator {
            id: "ane0".to_string(),
            index: 0,
            kind: AcceleratorKind::Npu,
            vendor: Vendor::Apple,
            name: "Apple Neural Engine".to_string(),
            power_watts: figures.power.ane_watts,
            ..Accelerator::default()
        });
    }
    let readings = figures.power.host_readings().into_iter();
    snapshot
        .power
        .extend(readings.map(|(source, watts)| PowerReading {
            source: source.to_string(),
            watts,
        }));
}

/// The 32-bit code of a four-character SMC key or type (`Tg0f`, `flt `): its ASCII bytes read
/// big-endian. `None` unless `text` is exactly four ASCII bytes.
pub fn four_char_code(text: &str) -> Option<u32> {
    let bytes: [u8; 4] = text.as_bytes().try_into().ok()?;
    bytes.is_ascii().then(|| u32::from_be_bytes(bytes))
}

/// The four characters of an SMC key or type code (non-ASCII bytes become `?`).
pub fn four_char_text(code: u32) -> String {
    code.to_be_bytes()
        .iter()
        .map(|&b| if b.is_ascii() { char::from(b) } else { '?' })
        .collect()
}

/// Decodes an SMC value of type `data_type` (a [`four_char_code`]) from its bytes. `flt ` is a
/// little-endian f32 on Apple Silicon; the fixed-point and integer types are big-endian (`sp78`:
/// signed 8.8, `fpe2`: unsigned 14.2). `None` for other types or too few bytes.
pub fn decode_smc_value(data_type: u32, bytes: &[u8]) -> Option<f64> {
    let array = |n: usize| bytes.get(..n);
    let value = match &four_char_text(data_type)[..] {
        "flt " => f64::from(f32::from_le_bytes(array(4)?.try_into().ok()?)),
        "sp78" => f64::from(i16::from_be_bytes(array(2)?.try_into().ok()?)) / 256.0,
        "fpe2" => f64::from(u16::from_be_bytes(array(2)?.try_into().ok()?)) / 4.0,
        "ui8 " => f64::from(*bytes.first()?),
        "ui16" => f64::from(u16::from_be_bytes(array(2)?.try_into().ok()?)),
        "ui32" => f64::from(u32::from_be_bytes(array(4)?.try_into().ok()?)),
        _ => return None,
    };
    value.is_finite().then_some(value)
}

/// Whether an SMC key is a GPU temperature sensor: the `Tg` family (`Tg05`, `Tg0f`, …), which
/// macmon and others found to track the GPU die on M-series chips.
pub fn is_gpu_temperature_key(key: &str) -> bool {
    key.len() == 4 && key.starts_with("Tg")
}

/// Whether a temperature reading is a real one: unpopulated sensors read 0 or nonsense.
pub fn is_plausible_celsius(value: f64) -> bool {
    value > 0.0 && value <= 150.0
}

/// Mean of the plausible temperatures in `readings`, `None` when there are none.
pub fn mean_celsius(readings: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, count) = readings
        .into_iter()
        .filter(|&v| is_plausible_celsius(v))
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (count > 0).then(|| sum / f64::from(count))
}

#[cfg(test)]
mod tests;
