//! `/api/cluster/info`: the coordinator's list of nodes (status, data age, last error) and the
//! cluster's resources, as the coordinator encodes it and `system_monitor top` decodes it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Text;

/// `/api/cluster/info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterInfo<'a> {
    #[serde(borrow)]
    pub nodes: Vec<ClusterNode<'a>>,
    pub total_resources: Resources,
    pub used_resources: Resources,
}

/// One node of `/api/cluster/info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterNode<'a> {
    /// Node id; null for an agent not heard from yet.
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    /// Display name: the node id, or the URL before the first answer.
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(borrow)]
    pub hostname: Option<Text<'a>>,
    /// The address the coordinator polls.
    #[serde(borrow)]
    pub ip: Text<'a>,
    /// `agent`, or `master` for the coordinator's own host (`--sample-self`).
    #[serde(borrow)]
    pub role: Text<'a>,
    /// `online`, `degraded` or `offline`.
    #[serde(borrow)]
    pub status: Text<'a>,
    /// Unix ms of the last fresh data or registration.
    pub last_heartbeat: Option<i64>,
    // Added beside the contract.
    /// The agent's base URL.
    #[serde(borrow)]
    pub url: Text<'a>,
    /// Seconds since the node's data was fetched; null before the first answer.
    pub data_age_seconds: Option<f64>,
    /// The labels it registered with.
    pub labels: BTreeMap<String, String>,
    /// The version it registered with.
    pub version: Option<String>,
    /// Why the last poll failed, while it does.
    pub error: Option<String>,
}

/// Cluster resources. `cpu`: logical CPUs (total) / cores busy (used); `memory`: bytes;
/// `accelerators`: devices (total) / devices with utilisation above 0 (used).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub cpu: f64,
    pub memory: u64,
    pub accelerators: u64,
}
