//! Registration: what an agent posts to `POST /api/cluster/register` and what the coordinator
//! answers (the contract in docs/design-notes.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The coordinator's registration endpoint, below its base URL.
pub const REGISTER_PATH: &str = "/api/cluster/register";

/// The registration request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterRequest {
    /// The agent's node id.
    pub node_id: String,
    /// Where the coordinator polls the agent (base URL).
    pub url: String,
    /// Free-form labels (`--node-label`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The agent's version.
    #[serde(default)]
    pub version: String,
}

/// The coordinator's answer to an accepted registration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisterAnswer {
    /// Always true in an answer with status 200.
    #[serde(default)]
    pub registered: bool,
    /// The node id registered.
    #[serde(default)]
    pub node_id: String,
    /// How often the coordinator expects a heartbeat (absent from older coordinators).
    pub heartbeat_interval_seconds: Option<f64>,
}
