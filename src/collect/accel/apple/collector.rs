//! The Apple Silicon collector itself (macOS arm64): one IOReport subscription sampled each
//! interval (a delta per sample), the chip's facts read once from the IORegistry and sysctl, the
//! GPU die temperatures from the SMC; the figures are worked out by [`super::decode`].

use std::collections::HashSet;
use std::fmt::Display;
use std::time::Instant;

use super::decode::{
    classify_energy_channel, fill_snapshot, interval_figures, is_gpu_states, ChipFacts,
    EnergyChannel, ENERGY_GROUP, GPU_GROUP, GPU_STATES_CHANNEL, GPU_STATES_SUBGROUP,
};
use super::iokit;
use super::ioreport::{self, Format, GroupSpec, Sample, Subscription};
use super::smc::{GpuTemperatures, Smc};
use crate::collect::{CollectError, Collector};
use crate::config::CollectConfig;
use crate::model::Snapshot;

/// The collector, or `None` where IOReport has no GPU channels (not Apple Silicon, a VM).
pub fn collector(_config: &CollectConfig) -> Option<Box<dyn Collector>> {
    match AppleCollector::open() {
        Ok(collector) => Some(Box::new(collector)),
        Err(reason) => {
            tracing::debug!(%reason, "no Apple Silicon accelerator collector");
            None
        }
    }
}

/// Why there is no collector.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// The IOReport subscription failed.
    #[error(transparent)]
    IoReport(#[from] ioreport::IoReportError),
    /// IOReport answered, but without the GPU's residency channel.
    #[error("IOReport has no {GPU_GROUP}/{GPU_STATES_SUBGROUP} {GPU_STATES_CHANNEL} channel")]
    NoGpuChannel,
}

/// Problems already logged, so that each kind is logged once (at debug), not every sample.
#[derive(Default)]
struct LogOnce(
    /// The kinds of problem logged so far.
    HashSet<&'static str>,
);

impl LogOnce {
    fn debug(&mut self, what: &'static str, detail: impl Display) {
        if self.0.insert(what) {
            tracing::debug!(collector = "apple", %detail, "{what}");
        }
    }
}

/// The Apple Silicon collector: long-lived handles and the previous IOReport sample.
pub struct AppleCollector {
    /// Chip name, GPU core count, whether there is a Neural Engine.
    facts: ChipFacts,
    /// The active GPU states' clocks, MHz, in state order; empty when the DVFS table was not
    /// found (then there is no clock figure).
    gpu_frequencies_mhz: Vec<f64>,
    /// The IOReport subscription (Energy Model + GPU performance states).
    report: Subscription,
    /// The previous sample and when it was taken: the counters are cumulative, so each sample's
    /// figures are the delta from this one over the time between.
    previous: Option<(Sample, Instant)>,
    /// The SMC and its GPU temperature keys; `None` where the SMC could not be opened or has no
    /// such key.
    temperatures: Option<GpuTemperatures>,
    /// Problems already logged.
    logged: LogOnce,
}

impl AppleCollector {
    /// Subscribes to IOReport and reads the chip's static facts. Only a missing GPU channel is
    /// fatal; every other missing piece leaves its figure `None`.
    fn open() -> Result<Self, OpenError> {
        let report = Subscription::open(&[
            GroupSpec {
                group: ENERGY_GROUP,
                subgroup: None,
                format: Format::Simple,
            },
            GroupSpec {
                group: GPU_GROUP,
                subgroup: Some(GPU_STATES_SUBGROUP),
                format: Format::State,
            },
        ])?;
        let channels = report.channel_ids();
        if !channels
            .iter()
            .any(|c| is_gpu_states(&c.group, &c.subgroup, &c.name))
        {
            return Err(OpenError::NoGpuChannel);
        }
        let has_ane = channels.iter().any(|c| {
            c.group == ENERGY_GROUP && classify_energy_channel(&c.name) == Some(EnergyChannel::Ane)
        });
        let chip = iokit::chip_name().unwrap_or_else(|| {
            tracing::debug!(
                "sysctl machdep.cpu.brand_string unreadable; naming the GPU generically"
            );
            "Apple Silicon GPU".to_string()
        });
        let gpu_cores = iokit::gpu_core_count();
        if gpu_cores.is_none() {
            tracing::debug!("no AGXAccelerator gpu-core-count; GPU core count unknown");
        }
        let gpu_frequencies_mhz = iokit::gpu_frequencies_mhz().unwrap_or_else(|| {
            tracing::debug!("no pmgr voltage-states9 table; no GPU clock figure");
            Vec::new()
        });
        let temperatures = match Smc::open().and_then(GpuTemperatures::discover) {
            Ok(t) if t.sensor_count() > 0 => Some(t),
            Ok(_) => {
                tracing::debug!("the SMC has no GPU temperature (Tg..) keys; no GPU temperature");
                None
            }
            Err(error) => {
                tracing::debug!(%error, "SMC unavailable; no GPU temperature");
                None
            }
        };
        tracing::debug!(
            chip,
            ?gpu_cores,
            gpu_states = gpu_frequencies_mhz.len(),
            has_ane,
            temperature_sensors = temperatures
                .as_ref()
                .map_or(0, GpuTemperatures::sensor_count),
            "Apple Silicon collector ready"
        );
        Ok(Self {
            facts: ChipFacts {
                chip,
                gpu_cores,
                has_ane,
            },
            gpu_frequencies_mhz,
            report,
            previous: None,
            temperatures,
            logged: LogOnce::default(),
        })
    }
}

impl Collector for AppleCollector {
    fn name(&self) -> &'static str {
        "apple"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let now = Instant::now();
        let current = self.report.sample();
        if current.is_none() {
            self.logged.debug(
                "IOReport returned no sample",
                "no power or GPU activity figures",
            );
        }
        let previous = self.previous.take();
        let figures = match (&current, &previous) {
            (Some(current), Some((previous, at))) => {
                let seconds = now.duration_since(*at).as_secs_f64();
                let channels = self.report.delta(previous, current);
                if channels.is_none() {
                    self.logged
                        .debug("IOReport delta failed", "no figures this sample");
                }
                channels.map(|c| interval_figures(&c, seconds, &self.gpu_frequencies_mhz))
            }
            // First sample (or the last one failed): no interval yet.
            _ => None,
        };
        // Keep the older sample when this one failed, so the next delta spans both intervals.
        self.previous = current.map(|s| (s, now)).or(previous);
        for problem in figures.iter().flat_map(|f| &f.problems) {
            self.logged.debug(problem.kind(), problem);
        }

        let temperature = self.temperatures.as_ref().and_then(|t| {
            let (celsius, error) = t.read();
            if let Some(error) = error {
                self.logged.debug("SMC temperature read failed", error);
            }
            celsius
        });
        fill_snapshot(snapshot, &self.facts, figures.as_ref(), temperature);
        Ok(())
    }
}
