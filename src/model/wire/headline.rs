//! The headline view of a node (`?view=headline` on `/api/system/metrics` and
//! `/api/system/ws`): what a list of many nodes shows of each — CPU, memory, disk and network
//! under the element's own paths, and the accelerators summarised in one object — about 0.5 KB
//! where the full element is 9–18 KB. Built from the coordinator's [`Summary`] of each element,
//! so that both modes derive it the one way ([`Headline::of`], [`headline_array_json`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::element::{Summary, Text};

/// One node in the headline view. The paths it shares with the element
/// ([`super::NodeMetrics`]) mean the same there (and are the names `/api/system/history`
/// takes); `cpu.coreCount` and `acceleratorSummary` are its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Headline<'a> {
    #[serde(rename = "node_id", borrow)]
    pub node_id: Text<'a>,
    /// Unix milliseconds.
    pub timestamp: i64,
    #[serde(borrow)]
    pub hostname: Text<'a>,
    pub cpu: HeadlineCpu,
    pub memory: HeadlineMemory,
    pub disk: HeadlineDisk,
    pub network: HeadlineNetwork,
    #[serde(borrow)]
    pub accelerator_summary: AcceleratorHeadline<'a>,
}

/// `cpu.overall` (percent) and the number of logical CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeadlineCpu {
    pub overall: f64,
    /// The number of `cpu.cores` in the element.
    pub core_count: u64,
}

/// `memory.usage` (percent), `used` and `total` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadlineMemory {
    pub usage: f64,
    pub used: u64,
    pub total: u64,
}

/// `disk.usage` (percent of the counted filesystems) and `ioRead`, `ioWrite` (bytes/s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeadlineDisk {
    pub usage: f64,
    pub io_read: f64,
    pub io_write: f64,
}

/// `network.bytesIn` and `bytesOut` (bytes/s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeadlineNetwork {
    pub bytes_in: f64,
    pub bytes_out: f64,
}

/// The element's `accelerators` summarised. Each figure is over the devices that report it, and
/// `null` where none does (no accelerator, or none with the reading).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AcceleratorHeadline<'a> {
    /// Devices listed.
    pub count: u64,
    /// Their distinct names, sorted (for a list's text filter).
    #[serde(borrow)]
    pub names: Vec<Text<'a>>,
    /// Mean utilization, percent.
    pub utilization: Option<f64>,
    /// The busiest device's utilization, percent.
    pub utilization_max: Option<f64>,
    /// Device memory used, bytes, summed.
    pub memory_used: Option<u64>,
    /// Device memory, bytes, summed.
    pub memory_total: Option<u64>,
    /// W, summed.
    pub power: Option<f64>,
    /// °C, the hottest device.
    pub temperature_max: Option<f64>,
}

impl<'a> Headline<'a> {
    /// The headline of the element `summary` was read from.
    pub fn of(summary: &Summary<'a>) -> Self {
        let (cpu, memory, disk, network) = (
            &summary.cpu,
            &summary.memory,
            &summary.disk,
            &summary.network,
        );
        Headline {
            node_id: summary.node_id.clone(),
            timestamp: summary.timestamp,
            hostname: summary.hostname.clone(),
            cpu: HeadlineCpu {
                overall: cpu.overall,
                core_count: cpu.cores.len() as u64,
            },
            memory: HeadlineMemory {
                usage: memory.usage,
                used: memory.used,
                total: memory.total,
            },
            disk: HeadlineDisk {
                usage: disk.usage,
                io_read: disk.io_read,
                io_write: disk.io_write,
            },
            network: HeadlineNetwork {
                bytes_in: network.bytes_in,
                bytes_out: network.bytes_out,
            },
            accelerator_summary: AcceleratorHeadline::of(summary),
        }
    }
}

impl<'a> AcceleratorHeadline<'a> {
    fn of(summary: &Summary<'a>) -> Self {
        let devices = &summary.accelerators;
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        let utilizations: Vec<f64> = devices
            .iter()
            .filter_map(|a| finite(a.utilization))
            .collect();
        let names: BTreeSet<&Text<'a>> = devices
            .iter()
            .map(|a| &a.name)
            .filter(|n| !n.is_empty())
            .collect();
        AcceleratorHeadline {
            count: devices.len() as u64,
            names: names.into_iter().cloned().collect(),
            utilization: mean(&utilizations),
            utilization_max: utilizations.iter().copied().reduce(f64::max),
            memory_used: sum_u64(devices.iter().map(|a| a.memory.used)),
            memory_total: sum_u64(devices.iter().map(|a| a.memory.total)),
            power: devices
                .iter()
                .filter_map(|a| finite(a.power))
                .reduce(|a, b| a + b)
                .map(round2),
            temperature_max: devices
                .iter()
                .filter_map(|a| finite(a.temperature))
                .reduce(f64::max),
        }
    }
}

/// The mean of `values`, to 0.01; `None` for none.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| round2(values.iter().sum::<f64>() / values.len() as f64))
}

/// The sum of the values present (saturating: the figures come from agents); `None` for none.
fn sum_u64(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.flatten().reduce(u64::saturating_add)
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The headline array of a `/api/system/metrics` array (JSON bytes in, JSON bytes out), one
/// headline per element, in order.
pub fn headline_array_json(metrics: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let elements: Vec<Summary<'_>> = serde_json::from_slice(metrics)?;
    let headlines: Vec<Headline<'_>> = elements.iter().map(Headline::of).collect();
    serde_json::to_vec(&headlines)
}
