//! The series `system_monitor top` draws as sparklines: dotted paths into the
//! `/api/system/metrics` element (the names `/api/system/history` takes) and their values.

use crate::model::wire::NodeMetrics;

/// The series drawn as sparklines, dotted paths into the metrics element (the names
/// `/api/system/history` takes), with their value in `element`.
pub fn values(element: &NodeMetrics<'_>) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if let Some(cpu) = &element.cpu {
        out.push(("cpu.overall".to_string(), cpu.overall));
        for (i, core) in cpu.cores.iter().enumerate() {
            out.push((format!("cpu.cores.{i}.usage"), core.usage));
        }
    }
    if let Some(memory) = &element.memory {
        out.push(("memory.usage".to_string(), memory.usage));
    }
    if let Some(disk) = &element.disk {
        out.push(("disk.ioRead".to_string(), disk.io_read));
        out.push(("disk.ioWrite".to_string(), disk.io_write));
    }
    if let Some(network) = &element.network {
        out.push(("network.bytesIn".to_string(), network.bytes_in));
        out.push(("network.bytesOut".to_string(), network.bytes_out));
    }
    for (i, a) in element.accelerators.iter().enumerate() {
        if let Some(u) = a.utilization {
            out.push((format!("accelerators.{i}.utilization"), u));
        }
        if let Some(p) = a.memory.percentage {
            out.push((format!("accelerators.{i}.memory.percentage"), p));
        }
    }
    out
}

/// The element of `node` in a metrics array (the first one for `None`).
pub fn element_in<'a>(metrics: &'a [u8], node: Option<&str>) -> Option<NodeMetrics<'a>> {
    let elements: Vec<NodeMetrics<'a>> = serde_json::from_slice(metrics).ok()?;
    match node {
        None => elements.into_iter().next(),
        Some(node) => elements.into_iter().find(|e| e.node_id == node),
    }
}
