//! Google TPUs from the TPU runtime's metrics service: libtpu serves
//! `tpu.monitoring.runtime.RuntimeMetricService` over gRPC on localhost (`--tpu-metrics-address`,
//! default 127.0.0.1:8431) while a TPU program runs. The chip type comes from sysfs (Google's PCI
//! functions under `/sys/bus/pci/devices`), as `tpu-info` does.

use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

use super::{sysfs, Backoff};
use crate::collect::{CollectError, Collector, HostPaths};
use crate::config::{CollectConfig, DEFAULT_TPU_METRICS_ADDRESS};
use crate::model::{Accelerator, AcceleratorInfo, AcceleratorKind, Snapshot, Vendor};

/// Code generated from `proto/tpu/tpu_metric_service.proto` (client and, for tests, server).
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("tpu.monitoring.runtime");
}

use pb::runtime_metric_service_client::RuntimeMetricServiceClient;

/// HBM in use per device, bytes.
pub const MEMORY_USAGE: &str = "tpu.runtime.hbm.memory.usage.bytes";
/// HBM size per device, bytes.
pub const MEMORY_TOTAL: &str = "tpu.runtime.hbm.memory.total.bytes";
/// Share of time the TensorCores were busy, percent, per chip.
pub const DUTY_CYCLE: &str = "tpu.runtime.tensorcore.dutycycle.percent";
/// The attribute that names the device of a data point.
const DEVICE_ID: &str = "device-id";

/// Google's PCI vendor id. Every GCE VM has one Google function, the gVNIC NIC (0x0042), so the
/// device id must be checked too.
const GOOGLE_VENDOR: u16 = 0x1ae0;

/// How long one sample may wait for the runtime: connecting, then the three calls together.
/// The runtime answers from memory in about a millisecond; a runtime stuck in a long
/// compilation must not hold up the rest of the sample.
const DEADLINE: Duration = Duration::from_millis(200);
/// First and longest wait before trying again to reach a runtime that was not there: a training
/// job that starts after the monitor shows up within seconds, and a host whose runtime never
/// starts costs one refused connection every 30 s.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A TPU chip generation, from its PCI ids (tpu-info's `TpuChip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChipType {
    /// Generation as Google names it: `v4`, `v5e`, `v5p`, `v6e`, `7x`.
    pub name: &'static str,
    /// Devices (TensorCores the runtime reports separately) per chip: 2 on v2, v3 and 7x.
    pub devices_per_chip: usize,
}

impl ChipType {
    /// The chip type of a Google PCI function, `None` for anything that is not a TPU.
    pub fn from_pci(device: u16, subsystem_device: Option<u16>) -> Option<ChipType> {
        let (name, devices_per_chip) = match (device, subsystem_device) {
            // v2 and v3 share a device id; the subsystem tells them apart.
            (0x0027, Some(0x004e)) => ("v2", 2),
            (0x0027, Some(0x004f)) => ("v3", 2),
            (0x005e, _) => ("v4", 1),
            (0x0063, _) => ("v5e", 1),
            (0x0062, _) => ("v5p", 1),
            (0x006f, _) => ("v6e", 1),
            (0x0076, _) => ("7x", 2),
            _ => return None,
        };
        Some(ChipType {
            name,
            devices_per_chip,
        })
    }

    /// The product name: `TPU v5e`, `TPU7x` (Google's spelling from v7 on).
    pub fn product_name(self) -> String {
        if self.name.starts_with('v') {
            format!("TPU {}", self.name)
        } else {
            format!("TPU{}", self.name)
        }
    }
}

/// The TPU chips this host has: Google PCI functions with a TPU device id. The runtime is
/// asked only where there are some (or where the user named its address): that keeps every
/// non-TPU host from opening a socket each sample, and a `/dev/accel*` or `/dev/vfio` check
/// would not say which of many possible devices is a TPU.
pub fn find_chips(paths: &HostPaths) -> Vec<ChipType> {
    sysfs::entries(&paths.sys("bus/pci/devices"))
        .iter()
        .filter(|dir| sysfs::read_pci_id(dir, "vendor") == Some(GOOGLE_VENDOR))
        .filter_map(|dir| {
            ChipType::from_pci(
                sysfs::read_pci_id(dir, "device")?,
                sysfs::read_pci_id(dir, "subsystem_device"),
            )
        })
        .collect()
}

/// The collector, or `None` where the host has no TPU and no runtime address was given.
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let address = &config.accel.tpu_metrics_address;
    let chips = find_chips(&config.paths);
    if chips.is_empty() && address == DEFAULT_TPU_METRICS_ADDRESS {
        tracing::debug!("no TPU chip under bus/pci/devices; TPU collector off");
        return None;
    }
    match TpuCollector::new(address, chips.first().copied()) {
        Ok(collector) => Some(Box::new(collector)),
        Err(error) => {
            tracing::warn!(%error, "TPU collector off");
            None
        }
    }
}

/// Why the TPU collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum TpuError {
    /// `--tpu-metrics-address` is not `HOST:PORT`.
    #[error("invalid TPU metrics address {address:?}: {source}")]
    Address {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The collector's own runtime could not be built.
    #[error("cannot start the TPU client runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The three metrics of one sample, each as (device id, value) pairs.
#[derive(Debug, Default)]
struct Readings {
    /// HBM in use per device.
    used: Vec<(i64, f64)>,
    /// HBM size per device.
    total: Vec<(i64, f64)>,
    /// Duty cycle per chip (or per device where they are the same).
    duty: Vec<(i64, f64)>,
}

/// The device id and gauge value of each data point of `metric`. A data point without either is
/// a runtime answering something this collector does not understand: an error, not a zero.
fn data_points(name: &str, response: pb::MetricResponse) -> Result<Vec<(i64, f64)>, String> {
    use pb::attr_value::Attr;
    use pb::gauge::Value;
    use pb::metric::Measure;
    let metric = response.metric.unwrap_or_default();
    metric
        .metrics
        .into_iter()
        .map(|point| {
            let device = point
                .attribute
                .filter(|a| a.key == DEVICE_ID)
                .and_then(|a| match a.value?.attr? {
                    Attr::IntAttr(id) => Some(id),
                    Attr::StringAttr(id) => id.parse().ok(),
                    _ => None,
                })
                .ok_or_else(|| format!("{name}: a data point without a numeric {DEVICE_ID}"))?;
            let value = match point.measure {
                Some(Measure::Gauge(pb::Gauge {
                    value: Some(Value::AsInt(v)),
                })) => v as f64,
                Some(Measure::Gauge(pb::Gauge {
                    value: Some(Value::AsDouble(v)),
                })) if v.is_finite() => v,
                _ => return Err(format!("{name}: device {device} has no numeric gauge")),
            };
            Ok((device, value))
        })
        .collect()
}

/// The accelerators of one sample. Memory is reported per device and the duty cycle per chip;
/// on chips with two devices (v2, v3, 7x) each chip's duty cycle stands for both, in device
/// order (as tpu-info pairs them).
fn devices(readings: &Readings, chip: Option<ChipType>) -> Vec<Accelerator> {
    let mut ids: Vec<i64> = readings
        .used
        .iter()
        .chain(&readings.total)
        .map(|(id, _)| *id)
        .collect();
    if ids.is_empty() {
        ids = readings.duty.iter().map(|(id, _)| *id).collect();
    }
    ids.sort_unstable();
    ids.dedup();
    let per_chip = chip.map_or(1, |c| c.devices_per_chip);
    let mut duty = readings.duty.clone();
    duty.sort_unstable_by_key(|(id, _)| *id);
    let duty_by_position = per_chip > 1 && duty.len() * per_chip == ids.len();
    let find = |list: &[(i64, f64)], id: i64| list.iter().find(|(d, _)| *d == id).map(|p| p.1);
    ids.iter()
        .enumerate()
        .filter_map(|(position, &id)| {
            let index = u32::try_from(id).ok()?;
            let utilization = if duty_by_position {
                duty.get(position / per_chip).map(|p| p.1)
            } else {
                find(&duty, id)
            };
            Some(Accelerator {
                id: format!("tpu{index}"),
                index,
                kind: AcceleratorKind::Tpu,
                vendor: Vendor::Google,
                name: chip.map_or_else(|| "TPU".to_string(), ChipType::product_name),
                info: AcceleratorInfo {
                    architecture: chip.map(|c| c.name.to_string()),
                    ..AcceleratorInfo::default()
                },
                utilization_percent: utilization.map(|u| u.clamp(0.0, 100.0)),
                memory_used_bytes: find(&readings.used, id).map(|b| b as u64),
                memory_total_bytes: find(&readings.total, id).map(|b| b as u64),
                ..Accelerator::default()
            })
        })
        .collect()
}

/// Whether a failed call means the runtime is not there (the connection was refused, or closed
/// under the call because the runtime's process ended) rather than a runtime that answered
/// badly. tonic turns transport failures into `Unavailable` (refused) or `Unknown` (connection
/// closed) with the transport error as source, which a server's own status never has; a reply
/// it cannot decode is `Internal` and stays an error.
fn runtime_gone(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown
    ) && std::error::Error::source(status).is_some()
}

/// Asks the TPU runtime for its metrics each sample. The sampler is a plain thread, so the
/// collector owns a small current-thread tokio runtime for its gRPC client; the connection is
/// made on the first sample and kept, and made again (with backoff) when the runtime restarts.
pub struct TpuCollector {
    /// Runs the gRPC client; driven only inside `collect`.
    runtime: tokio::runtime::Runtime,
    /// The runtime's address, for messages.
    address: String,
    /// Where the runtime listens, with the connect deadline.
    endpoint: Endpoint,
    /// The client while connected.
    client: Option<RuntimeMetricServiceClient<Channel>>,
    /// The chip generation from sysfs, for names and for pairing per-chip duty cycles.
    chip: Option<ChipType>,
    /// When to try connecting again.
    backoff: Backoff,
    /// Whether "not running" was logged since the last time the runtime answered.
    absence_logged: bool,
}

impl TpuCollector {
    /// A collector for the runtime at `address` (`HOST:PORT`); nothing is contacted yet.
    pub fn new(address: &str, chip: Option<ChipType>) -> Result<Self, TpuError> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|source| TpuError::Address {
                address: address.to_string(),
                source,
            })?
            .connect_timeout(DEADLINE)
            .tcp_nodelay(true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            runtime,
            address: address.to_string(),
            endpoint,
            client: None,
            chip,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            absence_logged: false,
        })
    }

    /// The runtime is not there (not started yet, or its program ended): no devices, no error.
    fn absent(&mut self, why: &dyn std::fmt::Display) {
        self.client = None;
        self.backoff.failed(Instant::now());
        if !self.absence_logged {
            tracing::debug!(address = %self.address, %why, "TPU runtime not answering; will retry");
            self.absence_logged = true;
        }
    }

    /// The three metrics, asked for together on one connection, within [`DEADLINE`].
    fn fetch(&self, client: &RuntimeMetricServiceClient<Channel>) -> Result<Readings, Failure> {
        let ask = |name: &'static str| {
            let mut client = client.clone();
            async move {
                let request = pb::MetricRequest {
                    metric_name: name.to_string(),
                    skip_node_aggregation: false,
                };
                let response = client.get_runtime_metric(request).await?;
                data_points(name, response.into_inner()).map_err(Failure::Garbage)
            }
        };
        self.runtime.block_on(async {
            let calls =
                async { tokio::try_join!(ask(MEMORY_USAGE), ask(MEMORY_TOTAL), ask(DUTY_CYCLE)) };
            match tokio::time::timeout(DEADLINE, calls).await {
                Ok(result) => result.map(|(used, total, duty)| Readings { used, total, duty }),
                Err(_) => Err(Failure::Timeout),
            }
        })
    }
}

/// Why one sample's calls failed.
#[derive(Debug)]
enum Failure {
    /// The call itself failed (transport or server status).
    Status(tonic::Status),
    /// The runtime answered with data points this collector cannot read.
    Garbage(String),
    /// No answer within [`DEADLINE`].
    Timeout,
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

impl Collector for TpuCollector {
    fn name(&self) -> &'static str {
        "tpu"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                if !self.backoff.is_due(Instant::now()) {
                    return Ok(());
                }
                let endpoint = self.endpoint.clone();
                let connected = self
                    .runtime
                    .block_on(async { tokio::time::timeout(DEADLINE, endpoint.connect()).await });
                match connected {
                    Ok(Ok(channel)) => {
                        let client = RuntimeMetricServiceClient::new(channel);
                        self.client = Some(client.clone());
                        client
                    }
                    Ok(Err(error)) => {
                        self.absent(&error);
                        return Ok(());
                    }
                    Err(_) => {
                        self.absent(&"connect timed out");
                        return Ok(());
                    }
                }
            }
        };
        let failure = match self.fetch(&client) {
            Ok(readings) => {
                if self.absence_logged {
                    tracing::debug!(address = %self.address, "TPU runtime answering");
                    self.absence_logged = false;
                }
                self.backoff.reset();
                snapshot.accelerators.extend(devices(&readings, self.chip));
                return Ok(());
            }
            Err(Failure::Status(status)) if runtime_gone(&status) => {
                self.absent(&status);
                return Ok(());
            }
            Err(Failure::Status(status)) => match std::error::Error::source(&status) {
                Some(cause) => format!("{:?}: {} ({cause})", status.code(), status.message()),
                None => format!("{:?}: {}", status.code(), status.message()),
            },
            Err(Failure::Garbage(why)) => why,
            Err(Failure::Timeout) => {
                format!("no answer within {}", humantime::format_duration(DEADLINE))
            }
        };
        Err(CollectError::Other(format!(
            "TPU runtime metrics at {}: {failure}",
            self.address
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(points: Vec<pb::Metric>) -> pb::MetricResponse {
        pb::MetricResponse {
            metric: Some(pb::TpuMetric {
                name: "m".into(),
                description: String::new(),
                metrics: points,
            }),
        }
    }

    fn point(device: Option<pb::attr_value::Attr>, value: Option<pb::gauge::Value>) -> pb::Metric {
        pb::Metric {
            attribute: Some(pb::Attribute {
                key: DEVICE_ID.into(),
                value: device.map(|attr| pb::AttrValue { attr: Some(attr) }),
            }),
            measure: Some(pb::metric::Measure::Gauge(pb::Gauge { value })),
        }
    }

    #[test]
    fn data_points_take_int_or_string_ids_and_int_or_double_values() {
        use pb::attr_value::Attr;
        use pb::gauge::Value;
        let response = metric(vec![
            point(Some(Attr::IntAttr(1)), Some(Value::AsInt(17_179_869_184))),
            point(
                Some(Attr::StringAttr("0".into())),
                Some(Value::AsDouble(42.5)),
            ),
        ]);
        assert_eq!(
            data_points("m", response).unwrap(),
            [(1, 17_179_869_184.0), (0, 42.5)]
        );
        assert_eq!(data_points("m", pb::MetricResponse::default()).unwrap(), []);
    }

    #[test]
    fn data_points_without_id_or_number_are_errors() {
        use pb::attr_value::Attr;
        use pb::gauge::Value;
        let no_id = metric(vec![point(None, Some(Value::AsInt(1)))]);
        assert!(data_points("m", no_id).unwrap_err().contains("device-id"));
        let text = metric(vec![point(
            Some(Attr::IntAttr(0)),
            Some(Value::AsString("x".into())),
        )]);
        assert!(data_points("m", text).unwrap_err().contains("device 0"));
        let nan = metric(vec![point(
            Some(Attr::IntAttr(0)),
            Some(Value::AsDouble(f64::NAN)),
        )]);
        assert!(data_points("m", nan).is_err());
    }

    #[test]
    fn chip_types_from_pci_ids() {
        let v5e = ChipType::from_pci(0x0063, None).unwrap();
        assert_eq!(v5e.product_name(), "TPU v5e");
        assert_eq!(ChipType::from_pci(0x0027, Some(0x004f)).unwrap().name, "v3");
        assert_eq!(ChipType::from_pci(0x0027, None), None);
        assert_eq!(
            ChipType::from_pci(0x0076, None).unwrap().product_name(),
            "TPU7x"
        );
        // gVNIC, on every GCE VM.
        assert_eq!(ChipType::from_pci(0x0042, None), None);
    }

    #[test]
    fn per_chip_duty_cycle_covers_both_devices_of_a_v3_chip() {
        let v3 = ChipType::from_pci(0x0027, Some(0x004f));
        let readings = Readings {
            used: (0..4).map(|d| (d, 1e9)).collect(),
            total: (0..4).map(|d| (d, 16e9)).collect(),
            duty: vec![(1, 80.0), (0, 20.0)],
        };
        let found = devices(&readings, v3);
        let utilization: Vec<Option<f64>> = found.iter().map(|a| a.utilization_percent).collect();
        assert_eq!(
            utilization,
            [Some(20.0), Some(20.0), Some(80.0), Some(80.0)]
        );
        assert_eq!(found[3].id, "tpu3");
        assert_eq!(found[3].name, "TPU v3");
        assert_eq!(found[3].memory_total_bytes, Some(16_000_000_000));
    }

    #[test]
    fn one_device_per_chip_pairs_by_id() {
        let readings = Readings {
            used: vec![(1, 2.0), (0, 1.0)],
            total: vec![(0, 10.0), (1, 10.0)],
            duty: vec![(1, 150.0)],
        };
        let found = devices(&readings, None);
        assert_eq!(found[0].name, "TPU");
        assert_eq!(found[0].utilization_percent, None);
        assert_eq!(found[1].utilization_percent, Some(100.0), "clamped");
        assert_eq!(found[1].memory_used_bytes, Some(2));
    }

    #[test]
    fn chips_from_sysfs_skip_the_gvnic() {
        use std::path::Path;
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/accel/tpu-v5e");
        let paths = HostPaths::fixture(&tree);
        // The fixture's gVNIC is there to be skipped.
        let gvnic = paths.sys("bus/pci/devices/0000:00:04.0");
        assert_eq!(sysfs::read_pci_id(&gvnic, "vendor"), Some(GOOGLE_VENDOR));
        let chips = find_chips(&paths);
        assert_eq!(chips.len(), 4);
        assert!(chips.iter().all(|c| c.name == "v5e"));
        let config = CollectConfig {
            paths,
            ..CollectConfig::default()
        };
        assert!(collector(&config).is_some(), "TPU chips: asked by default");
        let workstation = super::sysfs::workstation();
        assert!(find_chips(&workstation).is_empty());
        let config = CollectConfig {
            paths: workstation,
            ..CollectConfig::default()
        };
        assert!(collector(&config).is_none(), "no chip, default address");
    }
}
