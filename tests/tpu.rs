//! The TPU collector against a fake TPU runtime (a tonic server for libtpu's
//! `RuntimeMetricService` on 127.0.0.1 in this process): devices and values, a runtime that is
//! absent, one that answers errors or garbage or nothing, one that starts late; and the real
//! binary reading the fake runtime through `--tpu-metrics-address`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

use system_monitor::collect::accel::tpu::pb::runtime_metric_service_server::{
    RuntimeMetricService, RuntimeMetricServiceServer,
};
use system_monitor::collect::accel::tpu::{self, pb};
use system_monitor::collect::{Collector, HostPaths};
use system_monitor::config::{AccelConfig, CollectConfig};
use system_monitor::model::{Accelerator, AcceleratorKind, Snapshot};

use common::closed_port::ClosedPort;

/// One device as the fake runtime reports it.
#[derive(Debug, Clone, Copy)]
struct Device {
    id: i64,
    used_bytes: i64,
    total_bytes: i64,
    duty_percent: f64,
}

/// What the fake runtime answers.
#[derive(Debug, Clone)]
enum Mode {
    /// The three metrics for these devices.
    Devices(Vec<Device>),
    /// This status for every call.
    Fail(Code),
    /// Data points without a device id.
    Garbage,
    /// An answer after a second (past the collector's deadline).
    Slow,
}

/// libtpu's metrics service, answering from `mode`.
struct FakeRuntime {
    mode: Arc<Mutex<Mode>>,
}

fn gauge_point(id: Option<i64>, value: pb::gauge::Value) -> pb::Metric {
    pb::Metric {
        attribute: Some(pb::Attribute {
            key: "device-id".into(),
            value: id.map(|id| pb::AttrValue {
                attr: Some(pb::attr_value::Attr::IntAttr(id)),
            }),
        }),
        measure: Some(pb::metric::Measure::Gauge(pb::Gauge { value: Some(value) })),
    }
}

#[tonic::async_trait]
impl RuntimeMetricService for FakeRuntime {
    async fn get_runtime_metric(
        &self,
        request: Request<pb::MetricRequest>,
    ) -> Result<Response<pb::MetricResponse>, Status> {
        use pb::gauge::Value;
        let name = request.into_inner().metric_name;
        let mode = self.mode.lock().unwrap().clone();
        let points = match mode {
            Mode::Fail(code) => return Err(Status::new(code, "runtime is sad")),
            Mode::Slow => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Vec::new()
            }
            Mode::Garbage => vec![gauge_point(None, Value::AsInt(7))],
            Mode::Devices(devices) => devices
                .iter()
                .map(|d| {
                    let value = match name.as_str() {
                        tpu::MEMORY_USAGE => Value::AsInt(d.used_bytes),
                        tpu::MEMORY_TOTAL => Value::AsInt(d.total_bytes),
                        tpu::DUTY_CYCLE => Value::AsDouble(d.duty_percent),
                        _ => return Err(Status::not_found(format!("no metric {name}"))),
                    };
                    Ok(gauge_point(Some(d.id), value))
                })
                .collect::<Result<_, Status>>()?,
        };
        Ok(Response::new(pb::MetricResponse {
            metric: Some(pb::TpuMetric {
                name,
                description: String::new(),
                metrics: points,
            }),
        }))
    }
}

/// The fake runtime, served on its own tokio runtime until dropped.
struct FakeServer {
    address: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Runs the server; dropping it stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl FakeServer {
    fn start(listener: TcpListener, mode: Mode) -> FakeServer {
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let service = RuntimeMetricServiceServer::new(FakeRuntime {
            mode: Arc::clone(&mode),
        });
        runtime.spawn(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // As gRPC C++ (libtpu's server) does; without it, Nagle's algorithm and delayed
            // ACKs add 40 ms to each call.
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        FakeServer {
            address,
            mode,
            _runtime: runtime,
        }
    }

    fn on_free_port(mode: Mode) -> FakeServer {
        Self::start(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

/// A v5e host (4 chips in its sysfs) whose runtime is at `address`.
fn config(address: SocketAddr) -> CollectConfig {
    CollectConfig {
        paths: HostPaths::fixture(common::fixture_dir("accel/tpu-v5e")),
        accel: AccelConfig {
            tpu_metrics_address: address.to_string(),
            ..AccelConfig::default()
        },
        ..CollectConfig::default()
    }
}

/// Four v5e devices with distinct figures.
fn four_devices() -> Vec<Device> {
    (0..4)
        .map(|id| Device {
            id,
            used_bytes: (id + 1) * 1_073_741_824,
            total_bytes: 17_179_869_184,
            duty_percent: 12.5 * (id + 1) as f64,
        })
        .collect()
}

/// An accelerator another collector put in the snapshot before the TPU collector ran.
fn other_gpu() -> Accelerator {
    Accelerator {
        id: "amd1".into(),
        vendor: "amd".into(),
        ..Accelerator::default()
    }
}

fn collect(collector: &mut Box<dyn Collector>) -> (Result<(), String>, Vec<Accelerator>) {
    let mut snapshot = Snapshot {
        accelerators: vec![other_gpu()],
        ..Snapshot::default()
    };
    let result = collector.collect(&mut snapshot).map_err(|e| e.to_string());
    (result, snapshot.accelerators)
}

fn tpus(accelerators: &[Accelerator]) -> Vec<&Accelerator> {
    accelerators
        .iter()
        .filter(|a| a.kind == AcceleratorKind::Tpu)
        .collect()
}

#[test]
fn devices_and_values_come_from_the_runtime() {
    let server = FakeServer::on_free_port(Mode::Devices(four_devices()));
    let mut collector = tpu::collector(&config(server.address)).expect("a collector");
    let (result, accelerators) = collect(&mut collector);
    assert_eq!(result, Ok(()));
    assert_eq!(accelerators[0], other_gpu());
    let found = tpus(&accelerators);
    assert_eq!(found.len(), 4);
    for (device, tpu) in four_devices().iter().zip(&found) {
        assert_eq!(tpu.id, format!("tpu{}", device.id));
        assert_eq!(tpu.index, device.id as u32);
        assert_eq!(tpu.vendor, "google");
        assert_eq!(tpu.name, "TPU v5e");
        assert_eq!(tpu.info.architecture.as_deref(), Some("v5e"));
        assert_eq!(tpu.memory_used_bytes, Some(device.used_bytes as u64));
        assert_eq!(tpu.memory_total_bytes, Some(device.total_bytes as u64));
        assert_eq!(tpu.utilization_percent, Some(device.duty_percent));
    }
    // Values are asked for each sample.
    let mut changed = four_devices();
    changed[2].duty_percent = 99.0;
    server.set(Mode::Devices(changed));
    let (_, accelerators) = collect(&mut collector);
    assert_eq!(tpus(&accelerators)[2].utilization_percent, Some(99.0));
}

#[test]
fn an_absent_runtime_means_no_devices_and_no_error() {
    let closed = ClosedPort::new(Ipv4Addr::LOCALHOST);
    let mut collector = tpu::collector(&config(closed.address())).expect("a collector");
    for _ in 0..3 {
        let (result, accelerators) = collect(&mut collector);
        assert_eq!(result, Ok(()));
        assert_eq!(accelerators, [other_gpu()]);
    }
}

#[test]
fn errors_and_garbage_are_reported_and_leave_the_rest_alone() {
    let server = FakeServer::on_free_port(Mode::Fail(Code::Internal));
    let mut collector = tpu::collector(&config(server.address)).expect("a collector");
    let (result, accelerators) = collect(&mut collector);
    let error = result.expect_err("a runtime error is an error");
    assert!(
        error.contains("Internal") && error.contains("runtime is sad"),
        "{error}"
    );
    assert!(error.contains(&server.address.to_string()), "{error}");
    assert_eq!(accelerators, [other_gpu()]);

    server.set(Mode::Fail(Code::Unavailable));
    let (result, _) = collect(&mut collector);
    assert!(
        result.is_err(),
        "a server's own Unavailable is an answer, not an absent runtime"
    );

    server.set(Mode::Garbage);
    let (result, accelerators) = collect(&mut collector);
    let error = result.expect_err("garbage is an error");
    assert!(error.contains("device-id"), "{error}");
    assert_eq!(accelerators, [other_gpu()]);

    // It recovers as soon as the runtime answers properly.
    server.set(Mode::Devices(four_devices()));
    let (result, accelerators) = collect(&mut collector);
    assert_eq!(result, Ok(()));
    assert_eq!(tpus(&accelerators).len(), 4);
}

#[test]
fn a_slow_runtime_does_not_hold_up_the_sample() {
    let server = FakeServer::on_free_port(Mode::Slow);
    let mut collector = tpu::collector(&config(server.address)).expect("a collector");
    let started = Instant::now();
    let (result, accelerators) = collect(&mut collector);
    let took = started.elapsed();
    let error = result.expect_err("a timeout is an error");
    assert!(error.contains("no answer"), "{error}");
    assert!(took < Duration::from_millis(800), "took {took:?}");
    assert_eq!(accelerators, [other_gpu()]);
}

#[test]
fn a_runtime_that_starts_later_brings_its_devices() {
    let closed = ClosedPort::new(Ipv4Addr::LOCALHOST);
    let mut collector = tpu::collector(&config(closed.address())).expect("a collector");
    let (result, accelerators) = collect(&mut collector);
    assert_eq!((result, accelerators), (Ok(()), vec![other_gpu()]));

    let server = FakeServer::start(closed.listen(), Mode::Devices(four_devices()));
    // The first retry comes a second after the failure.
    let until = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let (result, accelerators) = collect(&mut collector);
        assert_eq!(result, Ok(()));
        if !tpus(&accelerators).is_empty() || Instant::now() > until {
            break accelerators;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(tpus(&found).len(), 4, "{found:?}");

    // The runtime stops (the training job ended): the devices go, silently.
    drop(server);
    let (result, accelerators) = collect(&mut collector);
    assert_eq!((result, accelerators), (Ok(()), vec![other_gpu()]));
}

#[test]
fn the_binary_reports_the_runtime_devices() {
    let server = FakeServer::on_free_port(Mode::Devices(four_devices()));
    let address = server.address.to_string();
    let monitor =
        common::Monitor::on_fixture("accel/tpu-v5e", &["--tpu-metrics-address", &address]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let metrics = runtime.block_on(monitor.get("/api/system/metrics")).json();
    let accelerators = metrics[0]["accelerators"].as_array().expect("accelerators");
    let tpus: Vec<&serde_json::Value> =
        accelerators.iter().filter(|a| a["type"] == "tpu").collect();
    assert_eq!(tpus.len(), 4, "{accelerators:?}\n{}", monitor.stderr());
    assert_eq!(tpus[1]["id"], "tpu1");
    assert_eq!(tpus[1]["name"], "TPU v5e");
    assert_eq!(tpus[1]["utilization"], 25.0);
    assert_eq!(tpus[1]["memory"]["used"], 2_147_483_648u64);
    assert_eq!(tpus[1]["memory"]["total"], 17_179_869_184u64);
    assert_eq!(tpus[1]["memory"]["percentage"], 12.5);
}

#[test]
fn a_port_that_speaks_something_else_is_an_error() {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    // An HTTP/1.1 server: it reads what the client sends, answers in its own protocol and keeps
    // the connection open. (Closing at once would race the answer against the close: a client
    // whose request meets the closed socket first cannot tell it from a runtime that exited,
    // which is reported as absent, not as an error.)
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut preface = [0u8; 24];
            if stream.read_exact(&mut preface).is_ok() {
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            }
            open.push(stream);
        }
    });
    let mut collector = tpu::collector(&config(address)).expect("a collector");
    for _ in 0..2 {
        let (result, accelerators) = collect(&mut collector);
        let error = result.expect_err("something listens there");
        assert!(error.contains("transport error"), "{error}");
        // It answered: the error is what it said, not the deadline running out.
        assert!(!error.contains("no answer within"), "{error}");
        assert_eq!(accelerators, [other_gpu()]);
    }
}
