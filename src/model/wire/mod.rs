//! The wire model: the JSON that agents serve and the coordinator reads back — the
//! `/api/system/metrics` element ([`NodeMetrics`]), the `/api/system/info` object ([`Info`]), the
//! coordinator's `/api/cluster/info` ([`ClusterInfo`]), the headline view of an element
//! ([`Headline`]) and the registration messages — defined once, with the one mapping to the typed v1 messages
//! ([`v1`]). The agent encodes these from its [`Snapshot`](crate::model::Snapshot); the
//! coordinator decodes the same types from agents' bytes.
//!
//! A new per-sample field goes in the model section it belongs to, in [`NodeMetrics::of`] here
//! (and its struct), and in [`v1::node_metrics`] when the v1 proto carries it.

mod cluster;
mod element;
mod headline;
mod info;
mod register;
pub mod v1;

pub use cluster::{ClusterInfo, ClusterNode, Resources};
pub use element::{
    metrics_array_json, metrics_array_json_as, Accelerator, AcceleratorMemory, Collector, Core,
    Cpu, Disk, DiskDevice, Ecc, Filesystem, Interface, Memory, MigDevice, MigMemory, Network,
    NodeMetrics, Pcie, Power, Pressure, PressureLine, PressureResource, Process, Profiling, Sensor,
    Summary, Swap, Text,
};
pub use headline::{
    headline_array_json, AcceleratorHeadline, Headline, HeadlineCpu, HeadlineDisk, HeadlineMemory,
    HeadlineNetwork,
};
pub use info::{DeviceInfo, Info, MigInfo};
pub use register::{RegisterAnswer, RegisterRequest, REGISTER_PATH};

#[cfg(test)]
mod tests;
