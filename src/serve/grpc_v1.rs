//! The agent's typed `tracklab.monitor.v1.MonitorService`: GetInfo, GetMetrics and the
//! WatchMetrics stream, from the latest snapshot through the wire model's one v1 mapping
//! ([`wire::v1`]), the same the coordinator applies to the elements it polls; GetHistory,
//! REST's `/api/system/history` question and answer ([`history_query`], [`node_history`]).

use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::history_query::{self, HistoryParams};
use super::{select_nodes, AppState, Selected};
use crate::config::NodeIdOrigin;
use crate::history::flatten::Number;
use crate::history::Answer;
use crate::model::{unix_ms, wire, NodeId, Snapshot};
use crate::pb::v1::monitor_service_server::{MonitorService, MonitorServiceServer};
use crate::pb::v1::{
    GetHistoryRequest, GetHistoryResponse, GetInfoRequest, GetMetricsRequest, GetMetricsResponse,
    HistorySeries, NodeHistory, NodeMetrics, SystemInfo, WatchMetricsRequest,
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

/// One node's metrics in the v1 shape, from a snapshot: its wire element through the one v1
/// mapping, with each accelerator's static facts. Pure.
pub fn node_metrics(snapshot: &Snapshot) -> NodeMetrics {
    wire::v1::node_metrics(
        &wire::NodeMetrics::of(snapshot),
        Some(&wire::Info::of(snapshot)),
    )
}

/// A node's static facts in the v1 shape: the snapshot's info object through the one v1
/// mapping. Pure.
pub fn system_info(snapshot: &Snapshot) -> SystemInfo {
    wire::v1::system_info(&wire::Info::of(snapshot))
}

/// The node id rule ([`select_nodes`]) for a request's `node_id`: empty or this node's own is
/// this node (`None`); on a node not named with `--node-id`, any other well-formed id too, to be
/// answered under it (`Some(id)`); on a named node another id is NOT_FOUND. A malformed one is
/// INVALID_ARGUMENT. The agent takes one id (a comma list is the coordinator's).
fn check_node<'q>(
    requested: &'q str,
    snapshot: &Snapshot,
    origin: NodeIdOrigin,
) -> Result<Option<&'q str>, Status> {
    if requested.is_empty() {
        return Ok(None);
    }
    if let Err(why) = NodeId::check(requested) {
        return Err(Status::invalid_argument(format!("invalid node_id: {why}")));
    }
    match select_nodes(origin, &snapshot.node_id, &[requested]) {
        Ok(Selected::Own) => Ok(None),
        Ok(Selected::As(_)) => Ok(Some(requested)),
        Err(_) => Err(Status::not_found(format!(
            "unknown node_id {requested:?}: this monitor serves node {:?}",
            snapshot.node_id
        ))),
    }
}

/// One node's history answer in the v1 shape: every value as a double (NaN where there is
/// none) and the presence bitmap, empty when every point has a value. Pure; the coordinator
/// maps the answers it reads from agents with it too.
pub fn node_history(answer: &Answer) -> NodeHistory {
    let series = answer
        .series
        .iter()
        .map(|(field, points)| {
            let mut values = Vec::with_capacity(points.len());
            let mut present = vec![0u8; points.len().div_ceil(8)];
            let mut gaps = false;
            for (i, point) in points.iter().enumerate() {
                let value = match point {
                    Some(Number::Unsigned(v)) => Some(*v as f64),
                    Some(Number::Signed(v)) => Some(*v as f64),
                    // JSON writes a non-finite float as null: so does this.
                    Some(Number::Float(v)) if v.is_finite() => Some(*v),
                    Some(Number::Float(_)) | None => None,
                };
                match value {
                    Some(v) => {
                        values.push(v);
                        present[i / 8] |= 1 << (i % 8);
                    }
                    None => {
                        values.push(f64::NAN);
                        gaps = true;
                    }
                }
            }
            if !gaps {
                present.clear();
            }
            HistorySeries {
                field: field.clone(),
                values,
                present,
            }
        })
        .collect();
    NodeHistory {
        node_id: answer.node_id.clone(),
        from_unix_ms: answer.from,
        to_unix_ms: answer.to,
        step_ms: answer.step_ms,
        timestamps_unix_ms: answer.timestamps.clone(),
        series,
    }
}

/// [`node_metrics`] of `snapshot`, under `answered_as` when the rule says so.
fn node_metrics_as(snapshot: &Snapshot, answered_as: Option<&str>) -> NodeMetrics {
    let mut metrics = node_metrics(snapshot);
    if let Some(id) = answered_as {
        metrics.node_id = id.to_string();
    }
    metrics
}

#[tonic::async_trait]
impl MonitorService for V1Service {
    type WatchMetricsStream = MetricsStream;

    async fn get_info(
        &self,
        request: Request<GetInfoRequest>,
    ) -> Result<Response<SystemInfo>, Status> {
        let snapshot = self.state.latest();
        let origin = self.state.node_id_origin;
        let answered_as = check_node(&request.get_ref().node_id, &snapshot, origin)?;
        let mut info = system_info(&snapshot);
        if let Some(id) = answered_as {
            info.node_id = id.to_string();
        }
        Ok(Response::new(info))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let snapshot = self.state.latest();
        let origin = self.state.node_id_origin;
        let answered_as = check_node(&request.get_ref().node_id, &snapshot, origin)?;
        Ok(Response::new(GetMetricsResponse {
            nodes: vec![node_metrics_as(&snapshot, answered_as)],
        }))
    }

    /// REST's `/api/system/history` answer: the same question read by the same code.
    async fn get_history(
        &self,
        request: Request<GetHistoryRequest>,
    ) -> Result<Response<GetHistoryResponse>, Status> {
        let params = HistoryParams::from_grpc(request.get_ref());
        let now_ms = unix_ms(std::time::SystemTime::now());
        let answers = history_query::answer(&self.state, &params, now_ms)
            .map_err(|refusal| refusal.status())?;
        Ok(Response::new(GetHistoryResponse {
            nodes: answers.iter().map(node_history).collect(),
        }))
    }

    /// The current snapshot first, then each new one, until the client goes away, the sampler
    /// stops or the monitor shuts down.
    async fn watch_metrics(
        &self,
        request: Request<WatchMetricsRequest>,
    ) -> Result<Response<Self::WatchMetricsStream>, Status> {
        let mut snapshots = self.state.snapshots.clone();
        let origin = self.state.node_id_origin;
        let requested = &request.get_ref().node_id;
        let answered_as = check_node(requested, &snapshots.borrow(), origin)?.map(str::to_string);
        let shutdown = self.state.shutdown.clone();
        let (sender, receiver) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            loop {
                let metrics =
                    node_metrics_as(&snapshots.borrow_and_update(), answered_as.as_deref());
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
pub(crate) mod tests {
    use super::*;
    use crate::model::{self, AcceleratorKind};
    use crate::model::{
        CollectorStatus as Status_, CoreStats, CpuStats, DisksStats, MemoryStats, NetworkStats,
    };
    use crate::pb::v1::{
        AcceleratorProcess, AcceleratorType, CpuCore, MigDevice, PodAllocation, PowerReading,
        ProcessPod,
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
                no_data: false,
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

    /// A device with every field of the model set, each to a distinct value.
    pub(crate) fn h100() -> model::Accelerator {
        let process = |pid, memory, pod| model::AcceleratorProcess {
            pid,
            memory_used_bytes: memory,
            pod,
        };
        let holder = |name: &str| model::PodRef {
            namespace: "ml".into(),
            name: name.into(),
            container: "main".into(),
        };
        model::Accelerator {
            id: "nvidia3".into(),
            index: 3,
            kind: AcceleratorKind::Gpu,
            vendor: "nvidia".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: Some("GPU-3".into()),
            pci_bus_id: Some("00000000:1B:00.0".into()),
            info: model::AcceleratorInfo {
                driver_version: Some("550.54.15".into()),
                cuda_version: Some("12.4".into()),
                architecture: Some("Hopper".into()),
                cores: Some(16896),
                vbios_version: Some("96.00.74.00.0D".into()),
                performance_level: Some("auto".into()),
                sku: Some("sku".into()),
                sclk_range: Some("s".into()),
                mclk_range: Some("m".into()),
                max_power_watts: Some(700.0),
                mig_enabled: Some(true),
            },
            utilization_percent: Some(1.0),
            memory_utilization_percent: Some(2.0),
            encoder_utilization_percent: Some(3.0),
            decoder_utilization_percent: Some(4.0),
            memory_used_bytes: Some(5),
            memory_total_bytes: Some(6),
            memory_reserved_bytes: Some(7),
            temperature_celsius: Some(8.0),
            memory_temperature_celsius: Some(9.0),
            power_watts: Some(10.0),
            power_limit_watts: Some(11.0),
            energy_joules: Some(12.0),
            fan_speed_percent: Some(13.0),
            sm_clock_mhz: Some(14.0),
            memory_clock_mhz: Some(15.0),
            graphics_clock_mhz: Some(16.0),
            pcie_tx_bytes_per_sec: Some(17.0),
            pcie_rx_bytes_per_sec: Some(18.0),
            pcie_link_gen: Some(5),
            pcie_link_width: Some(16),
            performance_state: Some(2),
            throttle_reasons: Some(0x24),
            throttle_reason_names: vec!["sw_power_cap", "hw_slowdown"],
            ecc_errors_corrected: Some(19),
            ecc_errors_uncorrected: Some(20),
            mig_devices: vec![model::MigDevice {
                index: 0,
                uuid: Some("MIG-0".into()),
                gpu_instance_id: Some(1),
                compute_instance_id: Some(0),
                profile: Some("1g.10gb".into()),
                memory_used_bytes: Some(21),
                memory_total_bytes: Some(22),
                multiprocessors: Some(16),
                processes: vec![process(7, None, None)],
                pods: vec![holder("infer-0")],
            }],
            profiling: Some(model::ProfilingStats {
                graphics_engine_active: Some(0.1),
                sm_active: Some(0.2),
                sm_occupancy: Some(0.3),
                tensor_active: Some(0.4),
                dram_active: Some(0.5),
                fp64_active: Some(0.6),
                fp32_active: Some(0.7),
                fp16_active: Some(0.8),
                pcie_tx_bytes_per_sec: Some(23.0),
                pcie_rx_bytes_per_sec: Some(24.0),
                nvlink_tx_bytes_per_sec: Some(25.0),
                nvlink_rx_bytes_per_sec: None,
            }),
            processes: vec![process(
                42,
                Some(26),
                Some(model::ProcessPod {
                    uid: "3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
                    namespace: Some("ml".into()),
                    name: Some("train-0".into()),
                    container: Some("main".into()),
                }),
            )],
            pods: vec![holder("train-0")],
            error: None,
        }
    }

    #[test]
    fn accelerators_map_every_field_of_the_model() {
        let mut s = snapshot();
        s.accelerators = vec![h100()];
        s.power = vec![model::PowerReading {
            source: "dram".into(),
            watts: 1.5,
        }];
        let m = node_metrics(&s);
        assert_eq!(
            m.power,
            [PowerReading {
                source: "dram".into(),
                watts: 1.5
            }]
        );
        let a = &m.accelerators[0];
        assert_eq!(a.r#type(), AcceleratorType::Gpu);
        assert_eq!(
            (
                a.vendor.as_str(),
                a.index,
                a.uuid.as_deref(),
                a.pci_bus_id.as_deref()
            ),
            ("nvidia", 3, Some("GPU-3"), Some("00000000:1B:00.0"))
        );
        assert_eq!(a.error, "");
        let numbers = [
            a.utilization_percent,
            a.memory_utilization_percent,
            a.encoder_utilization_percent,
            a.decoder_utilization_percent,
            a.memory_used_bytes.map(|v| v as f64),
            a.memory_total_bytes.map(|v| v as f64),
            a.memory_reserved_bytes.map(|v| v as f64),
            a.temperature_celsius,
            a.memory_temperature_celsius,
            a.power_watts,
            a.power_limit_watts,
            a.energy_joules,
            a.fan_speed_percent,
            a.sm_clock_mhz,
            a.memory_clock_mhz,
            a.graphics_clock_mhz,
            a.pcie_tx_bytes_per_sec,
            a.pcie_rx_bytes_per_sec,
            a.ecc_errors_corrected.map(|v| v as f64),
            a.ecc_errors_uncorrected.map(|v| v as f64),
        ];
        let expected = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0,
            17.0, 18.0, 19.0, 20.0,
        ];
        assert_eq!(numbers, expected.map(Some));
        assert_eq!(
            (a.pcie_link_gen, a.pcie_link_width, a.performance_state),
            (Some(5), Some(16), Some(2))
        );
        assert_eq!(a.throttle_reasons, Some(0x24));
        assert_eq!(a.throttle_reason_names, ["sw_power_cap", "hw_slowdown"]);
        let info = a.info.as_ref().unwrap();
        assert_eq!(info.cuda_version.as_deref(), Some("12.4"));
        assert_eq!(info.cores, Some(16896));
        assert_eq!(info.max_power_watts, Some(700.0));
        assert_eq!(info.mig_enabled, Some(true));
        assert_eq!(info.mclk_range.as_deref(), Some("m"));
        assert_eq!(
            a.mig_devices,
            [MigDevice {
                index: 0,
                uuid: Some("MIG-0".into()),
                gpu_instance_id: Some(1),
                compute_instance_id: Some(0),
                profile: Some("1g.10gb".into()),
                memory_used_bytes: Some(21),
                memory_total_bytes: Some(22),
                multiprocessors: Some(16),
                processes: vec![AcceleratorProcess {
                    pid: 7,
                    memory_used_bytes: None,
                    pod: None,
                }],
                pods: vec![PodAllocation {
                    namespace: "ml".into(),
                    name: "infer-0".into(),
                    container: "main".into(),
                }],
            }]
        );
        let p = a.profiling.as_ref().unwrap();
        assert_eq!(
            [
                p.graphics_engine_active,
                p.sm_active,
                p.sm_occupancy,
                p.tensor_active,
                p.dram_active,
                p.fp64_active,
                p.fp32_active,
                p.fp16_active,
                p.pcie_tx_bytes_per_sec,
                p.pcie_rx_bytes_per_sec,
                p.nvlink_tx_bytes_per_sec,
                p.nvlink_rx_bytes_per_sec,
            ],
            [
                Some(0.1),
                Some(0.2),
                Some(0.3),
                Some(0.4),
                Some(0.5),
                Some(0.6),
                Some(0.7),
                Some(0.8),
                Some(23.0),
                Some(24.0),
                Some(25.0),
                None
            ]
        );
        assert_eq!(
            a.processes,
            [AcceleratorProcess {
                pid: 42,
                memory_used_bytes: Some(26),
                pod: Some(ProcessPod {
                    uid: "3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
                    namespace: Some("ml".into()),
                    name: Some("train-0".into()),
                    container: Some("main".into()),
                }),
            }]
        );
        assert_eq!(
            a.pods,
            [PodAllocation {
                namespace: "ml".into(),
                name: "train-0".into(),
                container: "main".into(),
            }]
        );
        // A device without profiling or MIG: absent, empty.
        let npu = &node_metrics(&snapshot()).accelerators[0];
        assert!(npu.profiling.is_none() && npu.mig_devices.is_empty());
        assert_eq!(npu.info.as_ref().unwrap().mig_enabled, None);
    }

    #[test]
    fn system_info_describes_every_accelerator() {
        let mut s = snapshot();
        s.accelerators.push(h100());
        let info = system_info(&s);
        assert_eq!(info.gpu_count, 1, "the NPU is not a GPU");
        assert_eq!(info.accelerators.len(), 2);
        let gpu = &info.accelerators[1];
        assert_eq!((gpu.id.as_str(), gpu.index), ("nvidia3", 3));
        assert_eq!(gpu.r#type(), AcceleratorType::Gpu);
        assert_eq!(gpu.memory_total_bytes, Some(6));
        assert_eq!(
            gpu.info.as_ref().unwrap().architecture.as_deref(),
            Some("Hopper")
        );
        // Static facts only: the instance's size, not what is in use.
        let mig = &gpu.mig_devices[0];
        assert_eq!(
            (mig.memory_total_bytes, mig.memory_used_bytes),
            (Some(22), None)
        );
        assert!(mig.processes.is_empty());
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
        let named = NodeIdOrigin::Flag;
        assert_eq!(check_node("", &s, named).unwrap(), None);
        assert_eq!(check_node("worker-01", &s, named).unwrap(), None);
        assert_eq!(
            check_node("worker-02", &s, named).unwrap_err().code(),
            tonic::Code::NotFound
        );
        // Not named with --node-id: any id names it, and is answered under that id.
        let unnamed = NodeIdOrigin::Hostname;
        assert_eq!(check_node("worker-01", &s, unnamed).unwrap(), None);
        assert_eq!(
            check_node("test-node", &s, unnamed).unwrap(),
            Some("test-node")
        );
        assert_eq!(
            node_metrics_as(&s, Some("test-node")),
            NodeMetrics {
                node_id: "test-node".into(),
                ..node_metrics(&s)
            }
        );
        for origin in [named, unnamed] {
            for bad in ["a/b", "x y", "a,b", &"a".repeat(300)] {
                assert_eq!(
                    check_node(bad, &s, origin).unwrap_err().code(),
                    tonic::Code::InvalidArgument,
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn history_values_are_doubles_with_a_bitmap_for_gaps() {
        let answer = Answer {
            node_id: "n".into(),
            from: 0,
            to: 9_000,
            step_ms: 1_000,
            native: true,
            timestamps: (0..10).map(|i| i * 1_000).collect(),
            series: vec![
                (
                    "memory.used".into(),
                    (0..10).map(|i| Some(Number::Unsigned(i))).collect(),
                ),
                (
                    "cpu.overall".into(),
                    (0..10)
                        .map(|i| match i {
                            2 => None,
                            9 => Some(Number::Float(f64::INFINITY)),
                            i => Some(Number::Float(f64::from(i as u8) / 2.0)),
                        })
                        .collect(),
                ),
                ("gone".into(), vec![None; 10]),
                ("signed".into(), vec![Some(Number::Signed(-4)); 10]),
            ],
        };
        let h = node_history(&answer);
        assert_eq!(
            (h.node_id.as_str(), h.from_unix_ms, h.to_unix_ms),
            ("n", 0, 9_000)
        );
        assert_eq!(h.step_ms, 1_000);
        assert_eq!(h.timestamps_unix_ms, answer.timestamps);
        let fields: Vec<&str> = h.series.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(fields, ["memory.used", "cpu.overall", "gone", "signed"]);
        // Every value there: no bitmap.
        assert_eq!(
            h.series[0].values,
            (0..10).map(f64::from).collect::<Vec<_>>()
        );
        assert!(h.series[0].present.is_empty());
        // Gaps at 2 and 9 (a non-finite float is null, as in JSON): bits 0-1, 3-7 and 8.
        assert_eq!(h.series[1].present, [0b1111_1011, 0b0000_0001]);
        assert!(h.series[1].values[2].is_nan() && h.series[1].values[9].is_nan());
        assert_eq!(h.series[1].values[3], 1.5);
        assert_eq!(h.series[2].present, [0, 0]);
        assert!(h.series[2].values.iter().all(|v| v.is_nan()));
        assert_eq!(h.series[3].values, [-4.0; 10]);
    }
}
