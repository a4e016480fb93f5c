//! Pod attribution on Kubernetes GPU nodes (`--kubelet-pod-resources-socket`): which container
//! each accelerator (or MIG instance) is allocated to, from the kubelet's PodResources API, as
//! dcgm-exporter does; and which pod each accelerator process runs in, from its cgroup
//! (`/proc/<pid>/cgroup` through `--path.procfs`).
//!
//! The kubelet is asked on a thread of its own, every [`REFRESH`]: allocations change only when
//! pods start or end, and a slow or hung kubelet must never delay a sample. The collector runs
//! after the accelerator collectors and annotates what they found with the latest list. A socket
//! that does not exist (not a Kubernetes node, or the kubelet not started yet) is normal: no
//! labels, no error, one debug line; it is looked for again every [`SOCKET_POLL`]. A socket that
//! exists but does not answer is the collector's error (its `collectors` status says why).

mod cgroup;
pub mod kubelet;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::collect::{CollectError, Collector, HostPaths};
use crate::config::CollectConfig;
use crate::model::{Accelerator, PodRef, ProcessPod, Snapshot, Vendor};
pub use cgroup::pod_uid;
use kubelet::{Allocation, Kubelet};

/// How often the kubelet is asked while its socket exists: a pod starting or ending shows within
/// this (dcgm-exporter asks at every scrape; the list changes only with pods).
pub const REFRESH: Duration = Duration::from_secs(10);
/// How often a missing socket is looked for (a `stat`), so that a kubelet starting after the
/// agent is found within seconds.
pub const SOCKET_POLL: Duration = Duration::from_secs(1);
/// How long after a failed call the kubelet is asked again.
const RETRY: Duration = Duration::from_secs(5);
/// How long the first sample waits for the first answer, so that a fresh agent's first snapshot
/// carries its labels (the kubelet answers in about a millisecond).
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// The collector, when `--kubelet-pod-resources-socket` is given.
pub fn collector(config: &CollectConfig) -> Option<Box<dyn Collector>> {
    let socket = config.kubelet_pod_resources_socket.as_deref()?;
    match PodCollector::start(socket, config.paths.clone()) {
        Ok(collector) => Some(Box::new(collector)),
        Err(error) => {
            tracing::warn!(%error, "pod attribution off");
            None
        }
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error(transparent)]
    Kubelet(#[from] kubelet::KubeletError),
    /// The refresher thread or its runtime could not be started.
    #[error("cannot start the kubelet client thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// What the refresher thread last learned.
#[derive(Debug, Default)]
struct Published {
    /// The allocations of the last good answer; empty while the socket is missing or failing.
    allocations: Arc<Vec<Allocation>>,
    /// Why the last attempt failed (`None`: answered, or no socket).
    error: Option<String>,
    /// Attempts made so far (the first sample waits for one).
    attempts: u64,
}

/// [`Published`] and the signal of a new attempt.
#[derive(Debug, Default)]
struct Shared {
    published: Mutex<Published>,
    attempted: Condvar,
}

/// Annotates accelerators and their processes with pods.
pub struct PodCollector {
    /// What the refresher thread publishes.
    shared: Arc<Shared>,
    /// Dropped with the collector, which stops the refresher thread.
    _stop: mpsc::Sender<()>,
    /// Where `/proc/<pid>/cgroup` is read.
    paths: HostPaths,
    /// Pod UID (or none) per process seen in the last sample: a process does not change pods, so
    /// its cgroup is read once while it stays on a device.
    uids: HashMap<u32, Option<String>>,
    /// Whether the first sample has waited for the first answer.
    waited: bool,
}

impl PodCollector {
    /// Starts asking the kubelet at `socket` on a thread of its own.
    pub fn start(socket: &Path, paths: HostPaths) -> Result<Self, PodsError> {
        let kubelet = Kubelet::new(socket)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = mpsc::channel();
        let publish = Arc::clone(&shared);
        let socket = socket.to_path_buf();
        std::thread::Builder::new()
            .name("kubelet".into())
            .spawn(move || refresh(runtime, kubelet, &socket, &publish, &stopped))?;
        Ok(Self {
            shared,
            _stop: stop,
            paths,
            uids: HashMap::new(),
            waited: false,
        })
    }

    /// The latest allocations and error, after waiting (once) for the first attempt.
    fn latest(&mut self) -> (Arc<Vec<Allocation>>, Option<String>) {
        let mut published = self
            .shared
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.waited {
            self.waited = true;
            published = self
                .shared
                .attempted
                .wait_timeout_while(published, FIRST_WAIT, |p| p.attempts == 0)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        (Arc::clone(&published.allocations), published.error.clone())
    }

    /// The pod UID of `pid`, from the cache or its cgroup file.
    fn uid(&mut self, pid: u32, seen: &mut HashMap<u32, Option<String>>) -> Option<String> {
        let uid = match self.uids.get(&pid) {
            Some(uid) => uid.clone(),
            None => std::fs::read_to_string(self.paths.proc(format!("{pid}/cgroup")))
                .ok()
                .and_then(|text| pod_uid(&text)),
        };
        seen.insert(pid, uid.clone());
        uid
    }
}

/// The refresher thread: asks the kubelet while its socket exists, publishes each outcome, and
/// ends when `stop` is dropped.
fn refresh(
    runtime: tokio::runtime::Runtime,
    mut kubelet: Kubelet,
    socket: &Path,
    shared: &Shared,
    stop: &mpsc::Receiver<()>,
) {
    let mut absent_logged = false;
    loop {
        // Only a socket that is not there is silent: one the agent may not even look at (a
        // directory it cannot search) is a misconfiguration to report.
        let (allocations, error, wait) = match std::fs::metadata(socket) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !absent_logged {
                    tracing::debug!(socket = %socket.display(), "no kubelet PodResources socket; no pod labels until it appears");
                    absent_logged = true;
                }
                (Vec::new(), None, SOCKET_POLL)
            }
            Err(e) => {
                let error = format!("kubelet PodResources socket {}: {e}", socket.display());
                (Vec::new(), Some(error), RETRY)
            }
            Ok(_) => {
                absent_logged = false;
                match runtime.block_on(kubelet.list()) {
                    Ok(allocations) => {
                        tracing::debug!(
                            devices = allocations.len(),
                            "kubelet PodResources answered"
                        );
                        (allocations, None, REFRESH)
                    }
                    Err(error) => (Vec::new(), Some(error.to_string()), RETRY),
                }
            }
        };
        {
            let mut published = shared
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            published.allocations = Arc::new(allocations);
            published.error = error;
            published.attempts += 1;
        }
        shared.attempted.notify_all();
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Collector for PodCollector {
    fn name(&self) -> &'static str {
        "pods"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let (allocations, error) = self.latest();
        annotate_devices(&mut snapshot.accelerators, &allocations);
        let mut seen = HashMap::new();
        for accelerator in &mut snapshot.accelerators {
            for mig in &mut accelerator.mig_devices {
                for process in &mut mig.processes {
                    process.pod = process_pod(self.uid(process.pid, &mut seen), &mig.pods);
                }
            }
            let devices: Vec<Vec<PodRef>> = accelerator
                .processes
                .iter()
                .map(|p| device_of_process(accelerator, p.pid))
                .collect();
            for (process, pods) in accelerator.processes.iter_mut().zip(devices) {
                process.pod = process_pod(self.uid(process.pid, &mut seen), &pods);
            }
        }
        // Forget the processes that left every device (their pids may be reused).
        self.uids = seen;
        match error {
            Some(error) => Err(CollectError::Other(error)),
            None => Ok(()),
        }
    }
}

/// The allocations of the device a process of `accelerator` runs on: its MIG instance's when it
/// is listed in one (a MIG GPU lists its instances' processes too), else the whole GPU's.
fn device_of_process(accelerator: &Accelerator, pid: u32) -> Vec<PodRef> {
    accelerator
        .mig_devices
        .iter()
        .find(|m| m.processes.iter().any(|p| p.pid == pid))
        .map_or_else(|| accelerator.pods.clone(), |m| m.pods.clone())
}

/// A process's pod: its UID from the cgroup, and the names of the one container holding its
/// device. With no or several holders (a shared GPU) the names stay unknown: the PodResources API
/// gives no UIDs to tell which pod is the process's.
fn process_pod(uid: Option<String>, device_pods: &[PodRef]) -> Option<ProcessPod> {
    let uid = uid?;
    let holder = match device_pods {
        [one] => Some(one),
        _ => None,
    };
    Some(ProcessPod {
        uid,
        namespace: holder.map(|p| p.namespace.clone()),
        name: holder.map(|p| p.name.clone()),
        container: holder.map(|p| p.container.clone()),
    })
}

/// Sets `pods` of every accelerator and MIG instance from `allocations` (sorted, each container
/// once: time-slicing may give one container several replicas of a GPU).
pub fn annotate_devices(accelerators: &mut [Accelerator], allocations: &[Allocation]) {
    for accelerator in accelerators {
        let keys: Vec<(Target, &PodRef)> = allocations
            .iter()
            .filter_map(|a| Some((Target::of(&a.resource, &a.device_id)?, &a.pod)))
            .collect();
        accelerator.pods = holders(&keys, |target| target.is_device(accelerator));
        for m in 0..accelerator.mig_devices.len() {
            let pods = holders(&keys, |target| target.is_mig(accelerator, m));
            accelerator.mig_devices[m].pods = pods;
        }
    }
}

/// The distinct holders of the targets `matches` accepts, sorted.
fn holders(keys: &[(Target, &PodRef)], matches: impl Fn(&Target) -> bool) -> Vec<PodRef> {
    let mut pods: Vec<PodRef> = keys
        .iter()
        .filter(|(target, _)| matches(target))
        .map(|(_, pod)| (*pod).clone())
        .collect();
    pods.sort();
    pods.dedup();
    pods
}

/// What a device plugin id designates.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A device or MIG instance by UUID (NVIDIA's plugin: `GPU-…`, `MIG-…`).
    Uuid(String),
    /// A device by PCI address (AMD's plugin).
    Pci(PciAddress),
    /// An NVIDIA GPU by index (GKE's plugin: `nvidia0`).
    NvidiaIndex(u32),
    /// A MIG GPU instance of an NVIDIA GPU by index (GKE's plugin: `nvidia0/gi2`).
    NvidiaInstance { gpu: u32, instance: u32 },
}

impl Target {
    /// The target of `device_id` of `resource`, its sharing suffix removed (NVIDIA's
    /// time-slicing replicas `GPU-…::1`, GKE's shared GPUs `nvidia0/vgpu1`).
    fn of(resource: &str, device_id: &str) -> Option<Target> {
        let id = device_id.split("::").next().unwrap_or(device_id);
        let id = id.split("/vgpu").next().unwrap_or(id);
        if let Some(address) = PciAddress::parse(id) {
            return Some(Target::Pci(address));
        }
        // Names by index only from NVIDIA's resources: another plugin's `nvidia0` is not ours.
        if resource.starts_with("nvidia.com/") {
            if let Some(rest) = id.strip_prefix("nvidia") {
                let (gpu, instance) = match rest.split_once("/gi") {
                    Some((gpu, instance)) => (gpu, Some(instance)),
                    None => (rest, None),
                };
                if let Ok(gpu) = gpu.parse() {
                    return match instance.map(str::parse) {
                        None => Some(Target::NvidiaIndex(gpu)),
                        Some(Ok(instance)) => Some(Target::NvidiaInstance { gpu, instance }),
                        Some(Err(_)) => None,
                    };
                }
            }
        }
        (!id.is_empty()).then(|| Target::Uuid(id.to_ascii_lowercase()))
    }

    /// Whether this designates the whole of `a`.
    fn is_device(&self, a: &Accelerator) -> bool {
        match self {
            Target::Uuid(uuid) => a
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid)),
            Target::Pci(address) => a
                .pci_bus_id
                .as_deref()
                .and_then(PciAddress::parse)
                .is_some_and(|own| own == *address),
            Target::NvidiaIndex(index) => a.vendor == Vendor::Nvidia && a.index == *index,
            Target::NvidiaInstance { .. } => false,
        }
    }

    /// Whether this designates MIG instance `m` of `a`.
    fn is_mig(&self, a: &Accelerator, m: usize) -> bool {
        let Some(mig) = a.mig_devices.get(m) else {
            return false;
        };
        match self {
            Target::Uuid(uuid) => mig
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid)),
            Target::NvidiaInstance { gpu, instance } => {
                a.vendor == Vendor::Nvidia
                    && a.index == *gpu
                    && mig.gpu_instance_id == Some(*instance)
            }
            Target::Pci(_) | Target::NvidiaIndex(_) => false,
        }
    }
}

/// A PCI address, `domain:bus:device.function`, compared by value: NVML writes the domain with 8
/// digits (`00000000:17:00.0`), sysfs and device plugins with 4 (`0000:17:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    fn parse(text: &str) -> Option<PciAddress> {
        let (domain, rest) = text.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (device, function) = rest.split_once('.')?;
        let hex = |part: &str, max_len: usize| {
            (!part.is_empty()
                && part.len() <= max_len
                && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(part, 16).ok())
            .flatten()
        };
        Some(PciAddress {
            domain: hex(domain, 8)?,
            bus: u8::try_from(hex(bus, 2)?).ok()?,
            device: u8::try_from(hex(device, 2)?).ok()?,
            function: u8::try_from(hex(function, 1)?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests;
