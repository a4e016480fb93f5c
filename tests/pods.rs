//! Pod attribution end to end: the real binary on the fake NVML (`fakes/nvml`) asks a fake kubelet
//! (a tonic `v1.PodResourcesLister` on a unix socket in this process) which container holds which
//! GPU or MIG instance, and reads GPU processes' cgroups from a procfs tree of the test's own. The
//! labels must appear on `/metrics` (dcgm-exporter's `container`, `namespace`, `pod`), in REST and
//! in gRPC v1; a missing socket must give no labels and no error, and a socket that appears later
//! must bring them.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use common::fakes::fake_library;
use common::{fixture_args, fixture_dir, Monitor};
use system_monitor::collect::pods::kubelet::pb;
use system_monitor::collect::pods::kubelet::pb::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;

/// The pod UID the cgroup of the training process names.
const TRAIN_UID: &str = "3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

/// The fake's GPU `i` UUID and MIG instance `j` of GPU `i` (see `fakes/nvml/src/lib.rs`).
fn gpu_uuid(i: u32) -> String {
    format!("GPU-{i:08x}-fake-4000-8000-{i:012x}")
}
fn mig_uuid(i: u32, j: u32) -> String {
    format!("MIG-{i:08x}-fake-4000-8000-{j:012x}")
}

/// A kubelet that lists: `ml/train-0` (container `trainer`) holding GPU 0 as NVIDIA's plugin
/// names it, `ml/infer-0` (`server`) holding MIG instance 0 of GPU 1, and a pod with a resource
/// that is no GPU.
struct FakeKubelet;

#[tonic::async_trait]
impl PodResourcesLister for FakeKubelet {
    async fn list(
        &self,
        _: Request<pb::ListPodResourcesRequest>,
    ) -> Result<Response<pb::ListPodResourcesResponse>, Status> {
        let pod = |name: &str, container: &str, resource: &str, id: String| pb::PodResources {
            name: name.into(),
            namespace: "ml".into(),
            containers: vec![pb::ContainerResources {
                name: container.into(),
                devices: vec![pb::ContainerDevices {
                    resource_name: resource.into(),
                    device_ids: vec![id],
                }],
            }],
        };
        Ok(Response::new(pb::ListPodResourcesResponse {
            pod_resources: vec![
                pod("train-0", "trainer", "nvidia.com/gpu", gpu_uuid(0)),
                pod(
                    "infer-0",
                    "server",
                    "nvidia.com/mig-1g.10gb",
                    mig_uuid(1, 0),
                ),
                pod("web", "nginx", "example.com/nic", "0000:3b:02.1".into()),
            ],
        }))
    }
}

/// Serves the fake kubelet on a unix socket at `path` until the test's runtime ends.
fn serve_kubelet(path: &Path) {
    let listener = tokio::net::UnixListener::bind(path).expect("binding the kubelet socket");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(FakeKubelet))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
}

/// Copies the `captured-vm` fixture's procfs to `to`, and adds the cgroup files of the fake's GPU
/// processes: GPU 0's compute process (pid 10000) in the training pod, MIG instance 0 of GPU 1's
/// (30100) in a pod whose UID the kubelet does not give (names from the allocation), MIG instance
/// 1's (30101) outside any pod.
fn procfs(to: &Path) {
    copy_tree(&fixture_dir("captured-vm").join("proc"), to);
    let cgroup = |pid: u32, text: &str| {
        let dir = to.join(pid.to_string());
        std::fs::create_dir_all(&dir).expect("pid directory");
        std::fs::write(dir.join("cgroup"), text).expect("cgroup file");
    };
    cgroup(
        10_000,
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-0a1b.scope\n",
            TRAIN_UID.replace('-', "_")
        ),
    );
    cgroup(
        30_100,
        "0::/kubepods/besteffort/pod0f0e0d0c-0b0a-4909-8807-060504030201/0a1b\n",
    );
    cgroup(30_101, "0::/system.slice/nvidia-persistenced.service\n");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy");
    for entry in std::fs::read_dir(from).expect("reading the fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a fixture file");
        }
    }
}

/// The fake NVML with two GPUs, GPU 1 in MIG mode with two instances, one compute process each;
/// the monitor on the test's procfs, asking the kubelet at `socket`.
struct Setup {
    dir: tempfile::TempDir,
    library: PathBuf,
    socket: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(
            dir.path().join("config"),
            "devices=2\nmig=1\nmig_instances=2\nprocesses=1\n",
        )
        .expect("the fake's config");
        procfs(&dir.path().join("proc"));
        let socket = dir.path().join("kubelet.sock");
        Setup {
            library: fake_library("fake_nvml"),
            socket,
            dir,
        }
    }

    fn start(&self) -> Monitor {
        let mut args = fixture_args("captured-vm");
        args[1] = self.dir.path().join("proc").to_string_lossy().into_owned();
        args.extend([
            "--interval".into(),
            "0.2".into(),
            "--nvml-library".into(),
            self.library.to_string_lossy().into_owned(),
            "--kubelet-pod-resources-socket".into(),
            self.socket.to_string_lossy().into_owned(),
        ]);
        let config = self.dir.path().join("config");
        Monitor::start_with_env(&args, &[("FAKE_NVML_CONFIG", config.as_path())])
    }
}

/// The first element of `/api/system/metrics`.
async fn element(monitor: &Monitor) -> Value {
    let reply = monitor.get("/api/system/metrics").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0].clone()
}

/// Polls REST until GPU 0 has pods, or fails after `limit`.
async fn wait_for_pods(monitor: &Monitor, limit: Duration) -> Value {
    let until = Instant::now() + limit;
    loop {
        let element = element(monitor).await;
        if element["accelerators"][0].get("pods").is_some() {
            return element;
        }
        assert!(
            Instant::now() < until,
            "no pods after {limit:?}: {element}\nstderr:\n{}",
            monitor.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `pods` collector's status in an element.
fn pods_status(element: &Value) -> Value {
    element["collectors"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == "pods"))
        .cloned()
        .unwrap_or_else(|| panic!("no pods collector: {element}"))
}

#[tokio::test]
async fn gpus_mig_instances_and_processes_are_labelled_with_their_pods() {
    let setup = Setup::new();
    serve_kubelet(&setup.socket);
    let monitor = setup.start();
    let element = wait_for_pods(&monitor, Duration::from_secs(10)).await;
    let gpus = element["accelerators"].as_array().expect("accelerators");

    // REST: the holder beside the device, the process's pod with its UID and names.
    let train = json!({"namespace": "ml", "name": "train-0", "container": "trainer"});
    assert_eq!(gpus[0]["pods"], json!([train]));
    assert_eq!(
        gpus[0]["processes"][0],
        json!({"pid": 10000, "memoryUsed": 64 << 20, "pod": {
            "uid": TRAIN_UID, "namespace": "ml", "name": "train-0", "container": "trainer"}})
    );
    assert!(gpus[1].get("pods").is_none(), "a MIG GPU: its instances");
    let infer = json!({"namespace": "ml", "name": "infer-0", "container": "server"});
    let instances = gpus[1]["migDevices"].as_array().expect("MIG devices");
    assert_eq!(instances[0]["pods"], json!([infer]));
    assert!(instances[1].get("pods").is_none());
    assert_eq!(
        instances[0]["processes"][0]["pod"],
        json!({"uid": "0f0e0d0c-0b0a-4909-8807-060504030201",
               "namespace": "ml", "name": "infer-0", "container": "server"})
    );
    assert!(instances[1]["processes"][0].get("pod").is_none());
    assert_eq!(pods_status(&element)["ok"], true);

    // /metrics: dcgm-exporter's labels, last.
    let text = monitor.get("/metrics").await.body;
    let util = text
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_GPU_UTIL{") && l.contains(r#"gpu="0""#))
        .unwrap_or_else(|| panic!("no GPU_UTIL for GPU 0:\n{text}"));
    assert!(
        util.contains(r#",container="trainer",namespace="ml",pod="train-0"} "#),
        "{util}"
    );
    let instance = text
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_FB_USED{") && l.contains(r#"pod="infer-0""#))
        .unwrap_or_else(|| panic!("no FB_USED of the held instance:\n{text}"));
    assert!(instance.contains(r#"gpu="1""#), "{instance}");
    let gpu1_temp = text
        .lines()
        .find(|l| l.starts_with("DCGM_FI_DEV_GPU_TEMP{") && l.contains(r#"gpu="1""#))
        .expect("GPU 1 temperature");
    assert!(!gpu1_temp.contains("pod="), "{gpu1_temp}");

    // gRPC v1: the same, typed.
    let mut client =
        MonitorServiceClient::connect(format!("http://127.0.0.1:{}", monitor.grpc_port))
            .await
            .expect("connecting to gRPC v1");
    let metrics = client
        .get_metrics(system_monitor::pb::v1::GetMetricsRequest::default())
        .await
        .expect("GetMetrics")
        .into_inner();
    let node = &metrics.nodes[0];
    let gpu0 = &node.accelerators[0];
    assert_eq!(gpu0.pods.len(), 1);
    assert_eq!(
        (
            gpu0.pods[0].namespace.as_str(),
            gpu0.pods[0].name.as_str(),
            gpu0.pods[0].container.as_str()
        ),
        ("ml", "train-0", "trainer")
    );
    let process = gpu0.processes[0].pod.as_ref().expect("the process's pod");
    assert_eq!(process.uid, TRAIN_UID);
    assert_eq!(process.name.as_deref(), Some("train-0"));
    assert_eq!(node.accelerators[1].mig_devices[0].pods[0].name, "infer-0");
}

#[tokio::test]
async fn a_missing_socket_is_silent_and_one_that_appears_later_brings_the_labels() {
    let setup = Setup::new();
    let monitor = setup.start();
    // A few samples without the socket: no labels, no error, health untouched by it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let element = element(&monitor).await;
    let gpus = element["accelerators"].as_array().expect("accelerators");
    assert_eq!(gpus.len(), 2);
    assert!(gpus.iter().all(|g| g.get("pods").is_none()), "{element}");
    assert!(
        gpus[0]["processes"][0].get("pod").is_some(),
        "the cgroup alone names the UID"
    );
    assert!(gpus[0]["processes"][0]["pod"]["name"].is_null());
    let status = pods_status(&element);
    assert_eq!(
        (status["ok"].clone(), status["error"].clone()),
        (json!(true), Value::Null)
    );
    let health = monitor.get("/api/health").await.json();
    assert_eq!(health["degraded"], json!([]), "{health}");
    let text = monitor.get("/metrics").await.body;
    assert!(!text.contains("pod=\""), "no pod label without the kubelet");
    assert!(
        !monitor.stderr().contains("WARN"),
        "a missing socket is not a warning:\n{}",
        monitor.stderr()
    );

    // The kubelet starts: within a socket poll and a sample, the labels are there.
    serve_kubelet(&setup.socket);
    let element = wait_for_pods(&monitor, Duration::from_secs(10)).await;
    assert_eq!(element["accelerators"][0]["pods"][0]["name"], "train-0");
}
