//! The typed `tracklab.monitor.v1.MonitorService`: GetInfo, GetMetrics and the WatchMetrics stream,
//! mapped from the latest snapshot by pure functions ([`node_metrics`], [`system_info`]) that the
//! coordinator reuses for the nodes it polls.

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::AppState;
use crate::model::{self, AcceleratorKind, Snapshot};
use crate::pb::v1::monitor_service_server::{MonitorService, MonitorServiceServer};
use crate::pb::v1::{
    Accelerator, AcceleratorType, CollectorStatus, Cpu, CpuCore, Disk, GetInfoRequest,
    GetMetricsRequest, GetMetricsResponse, Memory, Network, NodeMetrics, SystemInfo,
    WatchMetricsRequest,
};

/// Snapshots a WatchMetrics stream may hold for a slow client. Small on purpose: a client that
/// falls behind gets the latest snapshot when it catches up, not a backlog.
const WATCH_BUFFER: usize = 2;

/// The v1 service over `state`.
pub fn service(state: AppState) -> MonitorServiceServer<V1Service> {
    MonitorServiceServer::new(V1Service { state })
}

/// `MonitorService` over the shared state.
pub struct V1Service {
    /// The latest snapshot (and its change notifications) and the shutdown token.
    state: AppState,
}

type MetricsStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<NodeMetrics, Status>> + Send>>;

/// One node's metrics in the v1 shape, from a snapshot. Pure.
pub fn node_metrics(snapshot: &Snapshot) -> NodeMetrics {
    NodeMetrics {
        node_id: snapshot.node_id.clone(),
        hostname: snapshot.hostname.clone(),
        timestamp_unix_ms: snapshot.timestamp_ms,
        cpu: snapshot.cpu.as_ref().map(|cpu| Cpu {
            overall_percent: cpu.usage_percent,
            cores: cpu
                .cores
                .iter()
                .map(|core| CpuCore {
                    id: core.id,
                    usage_percent: core.usage_percent,
                    frequency_mhz: core.frequency_mhz,
                    temperature_celsius: core.temperature_celsius,
                })
                .collect(),
            load_average: cpu.load_average.to_vec(),
            processes: cpu.processes,
            threads: cpu.threads,
        }),
        memory: snapshot.memory.as_ref().map(|m| Memory {
            usage_percent: m.usage_percent,
            used_bytes: m.used_bytes,
            total_bytes: m.total_bytes,
            available_bytes: m.available_bytes,
            swap_used_bytes: m.swap_used_bytes,
            swap_total_bytes: m.swap_total_bytes,
            swap_percent: m.swap_percent,
        }),
        disk: disk(snapshot),
        network: snapshot.network.as_ref().map(|n| Network {
            receive_bytes_per_sec: n.receive_bytes_per_sec,
            transmit_bytes_per_sec: n.transmit_bytes_per_sec,
            receive_packets_per_sec: n.receive_packets_per_sec,
            transmit_packets_per_sec: n.transmit_packets_per_sec,
            tcp_connections: n.tcp_established.unwrap_or(0),
        }),
        accelerators: snapshot.accelerators.iter().map(accelerator).collect(),
        collectors: snapshot
            .collectors
            .iter()
            .map(|c| CollectorStatus {
                name: c.name.clone(),
                ok: c.ok,
                error: c.error.clone().unwrap_or_default(),
                duration_seconds: c.duration_seconds,
            })
            .collect(),
    }
}

/// The REST `disk` object: space over the counted filesystems, I/O over the counted block devices.
/// Absent only when neither collector produced anything.
fn disk(snapshot: &Snapshot) -> Option<Disk> {
    let (filesystems, disks) = (snapshot.filesystems.as_ref(), snapshot.disks.as_ref());
    if filesystems.is_none() && disks.is_none() {
        return None;
    }
    Some(Disk {
        usage_percent: filesystems.map_or(0.0, |f| f.usage_percent),
        used_bytes: filesystems.map_or(0, |f| f.used_bytes),
        total_bytes: filesystems.map_or(0, |f| f.total_bytes),
        read_bytes_per_sec: disks.map_or(0.0, |d| d.read_bytes_per_sec),
        write_bytes_per_sec: disks.map_or(0.0, |d| d.write_bytes_per_sec),
        iops: disks.map_or(0.0, |d| d.iops),
    })
}

fn accelerator(a: &model::Accelerator) -> Accelerator {
    let kind = match a.kind {
        AcceleratorKind::Gpu => AcceleratorType::Gpu,
        AcceleratorKind::Npu => AcceleratorType::Npu,
        AcceleratorKind::Tpu => AcceleratorType::Tpu,
        AcceleratorKind::Other => AcceleratorType::Other,
    };
    Accelerator {
        id: a.id.clone(),
        r#type: kind.into(),
        name: a.name.clone(),
        utilization_percent: a.utilization_percent,
        memory_used_bytes: a.memory_used_bytes,
        memory_total_bytes: a.memory_total_bytes,
        temperature_celsius: a.temperature_celsius,
        power_watts: a.power_watts,
        fan_speed_percent: a.fan_speed_percent,
        error: a.error.clone().unwrap_or_default(),
    }
}

/// A node's static facts in the v1 shape: the snapshot's [`model::SystemInfo`] plus the totals that
/// live in the samples (memory, swap, disk) and the accelerators. Pure.
pub fn system_info(snapshot: &Snapshot) -> SystemInfo {
    let info = &snapshot.info;
    // As REST's `gpu_count`/`gpu_info`: GPUs only (NPUs and TPUs are in the metrics' accelerators).
    let gpus: Vec<&model::Accelerator> = snapshot
        .accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Gpu)
        .collect();
    SystemInfo {
        node_id: snapshot.node_id.clone(),
        hostname: if info.hostname.is_empty() {
            snapshot.hostname.clone()
        } else {
            info.hostname.clone()
        },
        platform: info.platform.clone(),
        architecture: info.architecture.clone(),
        cpu_model: info.cpu_model.clone(),
        cpu_cores: info.cpu_cores,
        cpu_threads: info.cpu_threads,
        memory_total_bytes: snapshot.memory.as_ref().map_or(0, |m| m.total_bytes),
        swap_total_bytes: snapshot.memory.as_ref().map_or(0, |m| m.swap_total_bytes),
        disk_total_bytes: snapshot.filesystems.as_ref().map_or(0, |f| f.total_bytes),
        gpu_count: u32::try_from(gpus.len()).unwrap_or(u32::MAX),
        gpu_info: gpus.iter().map(|g| g.name.clone()).collect(),
        ip_address: info.ip_address.clone(),
        kernel: info.kernel.clone(),
        os_version: info.os_version.clone(),
        boot_time_unix_seconds: match info.boot_time_seconds {
            0 => snapshot.cpu.as_ref().map_or(0, |c| c.boot_time_seconds),
            known => known,
        },
        version: crate::VERSION.to_string(),
    }
}

/// Checks a request's `node_id` against the node this server serves: empty or equal is fine, a
/// well-formed other id is NOT_FOUND, a malformed one INVALID_ARGUMENT.
fn check_node(requested: &str, snapshot: &Snapshot) -> Result<(), Status> {
    if requested.is_empty() || requested == snapshot.node_id {
        return Ok(());
    }
    if let Err(why) = crate::cli::parse_node_id(requested) {
        return Err(Status::invalid_argument(format!("invalid node_id: {why}")));
    }
    Err(Status::not_found(format!(
        "unknown node_id {requested:?}: this monitor serves node {:?}",
        snapshot.node_id
    )))
}

#[tonic::async_trait]
impl MonitorService for V1Service {
    type WatchMetricsStream = MetricsStream;

    async fn get_info(
        &self,
        request: Request<GetInfoRequest>,
    ) -> Result<Response<SystemInfo>, Status> {
        let snapshot = self.state.latest();
        check_node(&request.get_ref().node_id, &snapshot)?;
        Ok(Response::new(system_info(&snapshot)))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let snapshot = self.state.latest();
        check_node(&request.get_ref().node_id, &snapshot)?;
        Ok(Response::new(GetMetricsResponse {
            nodes: vec![node_metrics(&snapshot)],
        }))
    }

    /// The current snapshot first, then each new one, until the client goes away, the sampler
    /// stops or the monitor shuts down.
    async fn watch_metrics(
        &self,
        request: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        let mut snapshots = self.state.snapshots.clone();
        check_node(&request.get_ref().node_id, &snapshots.borrow())?;
        let shutdown = self.state.shutdown.clone();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            loop {
                let metrics = node_metrics(&snapshots.borrow_and_update());
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    sent = sender.send(Ok(metrics)) => if sent.is_err() { return },
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = sender.closed() => return,
                    changed = snapshots.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CollectorStatus as Status_, CoreStats, CpuStats, DisksStats, MemoryStats, NetworkStats,
    };
    use std::sync::Arc;

    fn snapshot() -> Snapshot {
        Snapshot {
            node_id: "worker-01".into(),
            hostname: "worker-01.example".into(),
            timestamp_ms: 1_700_000_000_123,
            cpu: Some(CpuStats {
                usage_percent: 42.0,
                cores: vec![CoreStats {
                    id: 3,
                    usage_percent: 55.0,
                    frequency_mhz: Some(2400.0),
                    temperature_celsius: None,
                    ..CoreStats::default()
                }],
                load_average: [1.0, 0.5, 0.25],
                processes: 300,
                threads: 900,
                ..CpuStats::default()
            }),
            memory: Some(MemoryStats {
                total_bytes: 100,
                used_bytes: 40,
                available_bytes: 60,
                usage_percent: 40.0,
                swap_total_bytes: 10,
                swap_used_bytes: 1,
                swap_percent: 10.0,
                ..MemoryStats::default()
            }),
            disks: Some(DisksStats {
                read_bytes_per_sec: 1024.0,
                write_bytes_per_sec: 2048.0,
                iops: 3.0,
                ..DisksStats::default()
            }),
            network: Some(NetworkStats {
                receive_bytes_per_sec: 10.0,
                transmit_bytes_per_sec: 20.0,
                receive_packets_per_sec: 1.0,
                transmit_packets_per_sec: 2.0,
                tcp_established: None,
                ..NetworkStats::default()
            }),
            accelerators: vec![model::Accelerator {
                id: "npu0".into(),
                kind: AcceleratorKind::Npu,
                name: "Ascend 910B".into(),
                utilization_percent: Some(12.0),
                error: Some("device lost".into()),
                ..model::Accelerator::default()
            }],
            collectors: vec![Status_ {
                name: "filesystem".into(),
                ok: false,
                error: Some("statvfs /mnt/nfs timed out".into()),
                duration_seconds: 5.0,
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn node_metrics_mirrors_the_snapshot() {
        let m = node_metrics(&snapshot());
        assert_eq!(m.node_id, "worker-01");
        assert_eq!(m.hostname, "worker-01.example");
        assert_eq!(m.timestamp_unix_ms, 1_700_000_000_123);
        let cpu = m.cpu.unwrap();
        assert_eq!(cpu.overall_percent, 42.0);
        assert_eq!(cpu.load_average, [1.0, 0.5, 0.25]);
        assert_eq!((cpu.processes, cpu.threads), (300, 900));
        assert_eq!(
            cpu.cores,
            [CpuCore {
                id: 3,
                usage_percent: 55.0,
                frequency_mhz: Some(2400.0),
                temperature_celsius: None,
            }]
        );
        let memory = m.memory.unwrap();
        assert_eq!(
            (
                memory.used_bytes,
                memory.total_bytes,
                memory.available_bytes
            ),
            (40, 100, 60)
        );
        assert_eq!((memory.swap_used_bytes, memory.swap_percent), (1, 10.0));
        // No filesystem section: space is 0, I/O rates still there.
        let disk = m.disk.unwrap();
        assert_eq!(
            (disk.total_bytes, disk.read_bytes_per_sec, disk.iops),
            (0, 1024.0, 3.0)
        );
        let network = m.network.unwrap();
        assert_eq!(network.transmit_bytes_per_sec, 20.0);
        assert_eq!(network.tcp_connections, 0);
        let npu = &m.accelerators[0];
        assert_eq!(npu.r#type(), AcceleratorType::Npu);
        assert_eq!(npu.utilization_percent, Some(12.0));
        assert_eq!(npu.memory_used_bytes, None);
        assert_eq!(npu.error, "device lost");
        assert_eq!(m.collectors[0].error, "statvfs /mnt/nfs timed out");
        assert!(!m.collectors[0].ok);
    }

    #[test]
    fn missing_sections_stay_absent() {
        let m = node_metrics(&Snapshot::default());
        assert!(m.cpu.is_none() && m.memory.is_none() && m.disk.is_none() && m.network.is_none());
    }

    #[test]
    fn system_info_adds_sample_totals() {
        let mut s = snapshot();
        s.info = Arc::new(model::SystemInfo {
            platform: "linux".into(),
            cpu_cores: 4,
            cpu_threads: 8,
            ..model::SystemInfo::default()
        });
        s.accelerators.push(model::Accelerator {
            id: "nvidia0".into(),
            kind: AcceleratorKind::Gpu,
            name: "NVIDIA L4".into(),
            ..model::Accelerator::default()
        });
        let info = system_info(&s);
        assert_eq!(info.node_id, "worker-01");
        assert_eq!(info.hostname, "worker-01.example");
        assert_eq!((info.cpu_cores, info.cpu_threads), (4, 8));
        assert_eq!((info.memory_total_bytes, info.swap_total_bytes), (100, 10));
        // The NPU is an accelerator but not a GPU.
        assert_eq!(info.gpu_info, ["NVIDIA L4"]);
        assert_eq!(info.gpu_count, 1);
        assert_eq!(info.version, crate::VERSION);
    }

    #[test]
    fn node_ids_are_checked() {
        let s = snapshot();
        assert!(check_node("", &s).is_ok());
        assert!(check_node("worker-01", &s).is_ok());
        assert_eq!(
            check_node("worker-02", &s).unwrap_err().code(),
            tonic::Code::NotFound
        );
        for bad in ["a/b", "x y", &"a".repeat(300)] {
            assert_eq!(
                check_node(bad, &s).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{bad}"
            );
        }
    }
}
