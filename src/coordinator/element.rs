//! Agents' answers as the coordinator keeps them: the one `/api/system/metrics` element split off
//! the agent's array as raw bytes (served again without re-serialising) and the few [`Figures`]
//! the cluster view needs, read through the wire model ([`wire::NodeMetrics`]), with its headline
//! view ([`wire::Headline`]) encoded once per answer. Pure functions over bytes.

use std::sync::Arc;

use axum::body::Bytes;
use serde_json::value::RawValue;

use crate::model::{wire, InvalidNodeId, NodeId};

/// Why an agent's answer is not a metrics element.
#[derive(Debug, thiserror::Error)]
pub enum ElementError {
    #[error("not a JSON array: {0}")]
    NotArray(#[source] serde_json::Error),
    #[error("expected one element, got {0}")]
    Count(usize),
    #[error("the element is not a JSON object")]
    NotObject,
    #[error("not a metrics element: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("node_id: {0}")]
    NodeId(#[source] InvalidNodeId),
    #[error("encoding its headline: {0}")]
    Headline(#[source] serde_json::Error),
}

/// What the coordinator keeps parsed from an element, beside its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The node the element describes (checked like `--node-id`).
    pub node_id: Arc<str>,
    /// The agent's sample time, unix ms: an unchanged timestamp means no new sample.
    pub timestamp_ms: i64,
    /// The host's name, for `/api/cluster/info`.
    pub hostname: Arc<str>,
    /// Logical CPUs (the number of `cpu.cores`).
    pub cpus: u64,
    /// CPU in use, in cores: `cpu.overall` / 100 × logical CPUs.
    pub cpu_busy_cores: f64,
    /// `memory.total`, bytes.
    pub memory_total_bytes: u64,
    /// `memory.used`, bytes.
    pub memory_used_bytes: u64,
    /// Accelerators listed.
    pub accelerators: u64,
    /// Accelerators whose utilisation is above 0 %.
    pub accelerators_busy: u64,
    /// The element's headline view ([`wire::Headline`]) as a JSON object, for
    /// `?view=headline`.
    pub headline: Bytes,
}

/// Splits an agent's `/api/system/metrics` answer (an array with one element) into the
/// element's exact bytes and its figures. Anything else is an error saying what was wrong.
pub fn split_agent_answer(body: &[u8]) -> Result<(Vec<u8>, Figures), ElementError> {
    let array: Vec<&RawValue> = serde_json::from_slice(body).map_err(ElementError::NotArray)?;
    let [element] = array.as_slice() else {
        return Err(ElementError::Count(array.len()));
    };
    let text = element.get();
    if !text.starts_with('{') {
        return Err(ElementError::NotObject);
    }
    let figures = figures(text)?;
    Ok((text.as_bytes().to_vec(), figures))
}

/// The figures of one element (a JSON object).
pub fn figures(element: &str) -> Result<Figures, ElementError> {
    let element: wire::Summary<'_> = serde_json::from_str(element).map_err(ElementError::Decode)?;
    let node_id = NodeId::parse(&element.node_id).map_err(ElementError::NodeId)?;
    let headline =
        serde_json::to_vec(&wire::Headline::of(&element)).map_err(ElementError::Headline)?;
    let (cpu, memory) = (element.cpu, element.memory);
    let overall = if cpu.overall.is_finite() {
        cpu.overall.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let cpus = cpu.cores.len() as u64;
    Ok(Figures {
        node_id: node_id.into(),
        timestamp_ms: element.timestamp,
        hostname: element.hostname.into(),
        cpus,
        cpu_busy_cores: overall / 100.0 * cpus as f64,
        memory_total_bytes: memory.total,
        memory_used_bytes: memory.used.min(memory.total),
        accelerators: element.accelerators.len() as u64,
        accelerators_busy: element
            .accelerators
            .iter()
            .filter(|a| a.utilization.is_some_and(|u| u > 0.0))
            .count() as u64,
        headline: Bytes::from(headline),
    })
}

/// An element's bytes as v1, through the wire model's one mapping. Static facts are not in the
/// metrics element: the coordinator serves them through `GetInfo(node_id)`.
pub fn node_metrics(element: &[u8]) -> Result<crate::pb::v1::NodeMetrics, serde_json::Error> {
    let element: wire::NodeMetrics<'_> = serde_json::from_slice(element)?;
    Ok(wire::v1::node_metrics(&element, None))
}

/// An agent's `/api/system/info` bytes as v1.
pub fn system_info(info: &[u8]) -> Result<crate::pb::v1::SystemInfo, serde_json::Error> {
    let info: wire::Info<'_> = serde_json::from_slice(info)?;
    Ok(wire::v1::system_info(&info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Accelerator, AcceleratorKind, CoreStats, CpuStats, MemoryStats, Snapshot};

    fn snapshot() -> Snapshot {
        Snapshot {
            node_id: "worker-01".into(),
            hostname: "w1".into(),
            timestamp_ms: 1_700_000_000_000,
            cpu: Some(CpuStats {
                usage_percent: 50.0,
                cores: (0..4)
                    .map(|id| CoreStats {
                        id,
                        usage_percent: 50.0,
                        ..CoreStats::default()
                    })
                    .collect(),
                load_average: [1.0, 2.0, 3.0],
                ..CpuStats::default()
            }),
            memory: Some(MemoryStats {
                total_bytes: 1000,
                used_bytes: 250,
                ..MemoryStats::default()
            }),
            accelerators: vec![
                Accelerator {
                    id: "nvidia0".into(),
                    kind: AcceleratorKind::Gpu,
                    utilization_percent: Some(30.0),
                    memory_used_bytes: Some(5),
                    ..Accelerator::default()
                },
                Accelerator {
                    id: "nvidia1".into(),
                    kind: AcceleratorKind::Gpu,
                    utilization_percent: Some(0.0),
                    ..Accelerator::default()
                },
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn agent_answer_is_split_without_reencoding() {
        let snapshot = snapshot();
        let body = crate::model::wire::metrics_array_json([&snapshot]).unwrap();
        let (element, figures) = split_agent_answer(&body).unwrap();
        assert_eq!(&body[1..body.len() - 1], &element[..]);
        assert_eq!(&*figures.node_id, "worker-01");
        assert_eq!(figures.timestamp_ms, 1_700_000_000_000);
        assert_eq!(figures.cpus, 4);
        assert_eq!(figures.cpu_busy_cores, 2.0);
        assert_eq!(
            (figures.memory_used_bytes, figures.memory_total_bytes),
            (250, 1000)
        );
        assert_eq!((figures.accelerators, figures.accelerators_busy), (2, 1));
    }

    #[test]
    fn garbage_is_an_error() {
        for body in [
            &b"<html>"[..],
            b"[]",
            b"[1]",
            b"[{}]",
            b"[{\"node_id\":\"a/b\",\"timestamp\":1,\"cpu\":{\"overall\":1},\"memory\":{\"used\":1,\"total\":1}}]",
            b"[{},{}]",
            b"{\"node_id\":\"a\"}",
        ] {
            assert!(
                split_agent_answer(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn element_maps_to_v1_like_the_agent() {
        let mut snapshot = snapshot();
        // Every accelerator field of the model set, and power readings beside the devices.
        snapshot
            .accelerators
            .push(crate::serve::grpc_v1::tests::h100());
        snapshot.power = vec![crate::model::PowerReading {
            source: "cpu_pcluster".into(),
            watts: 4.5,
        }];
        let body = crate::model::wire::metrics_array_json([&snapshot]).unwrap();
        let (element, _) = split_agent_answer(&body).unwrap();
        let from_json = node_metrics(&element).unwrap();
        let mut direct = crate::serve::grpc_v1::node_metrics(&snapshot);
        // Static facts are not in the metrics element: the coordinator serves them through
        // GetInfo (checked below), not in each sample.
        for a in &mut direct.accelerators {
            a.info = None;
        }
        assert_eq!(from_json.node_id, direct.node_id);
        assert_eq!(from_json.cpu, direct.cpu);
        assert_eq!(from_json.memory, direct.memory);
        assert_eq!(from_json.accelerators, direct.accelerators);
        assert_eq!(from_json.power, direct.power);
        assert_eq!(from_json.collectors, direct.collectors);
        assert_eq!(from_json.timestamp_unix_ms, direct.timestamp_unix_ms);
    }

    #[test]
    fn info_maps_to_v1_like_the_agent() {
        let mut snapshot = snapshot();
        snapshot
            .accelerators
            .push(crate::serve::grpc_v1::tests::h100());
        let json = serde_json::to_vec(&crate::model::wire::Info::of(&snapshot)).unwrap();
        assert_eq!(
            system_info(&json).unwrap(),
            crate::serve::grpc_v1::system_info(&snapshot)
        );
    }
}
