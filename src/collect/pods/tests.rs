//! Tests of `collect::pods`: device ids matched to devices, processes to pods.

use super::*;
use crate::model::{AcceleratorProcess, MigDevice};

fn pod(namespace: &str, name: &str, container: &str) -> PodRef {
    PodRef {
        namespace: namespace.into(),
        name: name.into(),
        container: container.into(),
    }
}

fn allocation(resource: &str, device_id: &str, holder: &PodRef) -> Allocation {
    Allocation {
        resource: resource.into(),
        device_id: device_id.into(),
        pod: holder.clone(),
    }
}

fn gpu(index: u32, mig: &[(&str, u32)]) -> Accelerator {
    Accelerator {
        id: format!("nvidia{index}"),
        index,
        vendor: Vendor::Nvidia,
        uuid: Some(format!("GPU-{index:08x}-aaaa")),
        pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x17 + index)),
        mig_devices: mig
            .iter()
            .enumerate()
            .map(|(i, (uuid, gi))| MigDevice {
                index: i as u32,
                uuid: Some((*uuid).into()),
                gpu_instance_id: Some(*gi),
                ..MigDevice::default()
            })
            .collect(),
        ..Accelerator::default()
    }
}

#[test]
fn device_ids_of_each_plugin_name_their_device() {
    let train = pod("ml", "train-0", "trainer");
    let infer = pod("ml", "infer-0", "server");
    let other = pod("web", "nginx", "nginx");
    let mut accelerators = vec![
        gpu(0, &[]),
        gpu(1, &[("MIG-aaaa", 3), ("MIG-bbbb", 5)]),
        gpu(2, &[]),
        Accelerator {
            id: "amd0".into(),
            vendor: Vendor::Amd,
            pci_bus_id: Some("0000:c1:00.0".into()),
            ..Accelerator::default()
        },
    ];
    let allocations = [
        // NVIDIA's plugin, by UUID (case aside), and a time-slicing replica of the same GPU.
        allocation("nvidia.com/gpu", "gpu-00000000-AAAA", &train),
        allocation("nvidia.com/gpu", "GPU-00000000-aaaa::1", &train),
        // A MIG instance by its UUID (mixed strategy).
        allocation("nvidia.com/mig-1g.10gb", "MIG-bbbb", &infer),
        // GKE's plugin: a MIG GPU instance by GPU index and instance id, and a GPU by index.
        allocation("nvidia.com/gpu", "nvidia1/gi3", &other),
        allocation("nvidia.com/gpu", "nvidia2/vgpu0", &infer),
        allocation("nvidia.com/gpu", "nvidia2/vgpu1", &other),
        // AMD's plugin, by PCI address (4-digit domain).
        allocation("amd.com/gpu", "0000:C1:00.0", &other),
        // Not ours: another vendor's `nvidia0`, an unknown UUID, a CPU-like resource.
        allocation("example.com/thing", "nvidia0", &other),
        allocation("nvidia.com/gpu", "GPU-ffffffff", &other),
        allocation("intel.com/sriov", "0000:3b:02.1", &other),
    ];
    annotate_devices(&mut accelerators, &allocations);
    assert_eq!(accelerators[0].pods, [train], "each container once");
    assert!(accelerators[1].pods.is_empty(), "a MIG GPU: its instances");
    assert_eq!(
        accelerators[1].mig_devices[0].pods,
        std::slice::from_ref(&other)
    );
    assert_eq!(
        accelerators[1].mig_devices[1].pods,
        std::slice::from_ref(&infer)
    );
    assert_eq!(
        accelerators[2].pods,
        [infer, other.clone()],
        "shared, sorted"
    );
    assert_eq!(accelerators[3].pods, [other]);
    // A new list replaces the old one: a pod that ended leaves.
    annotate_devices(&mut accelerators, &[]);
    assert!(accelerators.iter().all(|a| a.pods.is_empty()));
    assert!(accelerators[1]
        .mig_devices
        .iter()
        .all(|m| m.pods.is_empty()));
}

#[test]
fn malformed_ids_designate_nothing() {
    assert_eq!(Target::of("nvidia.com/gpu", ""), None);
    assert_eq!(Target::of("nvidia.com/gpu", "nvidia1/gix"), None);
    assert_eq!(
        Target::of("nvidia.com/gpu", "nvidiafoo"),
        Some(Target::Uuid("nvidiafoo".into()))
    );
    assert_eq!(PciAddress::parse("0000:1:00"), None);
    assert_eq!(PciAddress::parse("0000:100:00.0"), None);
    assert_eq!(
        PciAddress::parse("00000000:17:00.0"),
        PciAddress::parse("0000:17:00.0")
    );
}

#[test]
fn a_process_gets_its_uid_and_the_names_of_its_devices_one_holder() {
    let train = pod("ml", "train-0", "trainer");
    let named = process_pod(Some("u1".into()), std::slice::from_ref(&train)).unwrap();
    assert_eq!(named.uid, "u1");
    assert_eq!(named.name.as_deref(), Some("train-0"));
    assert_eq!(named.namespace.as_deref(), Some("ml"));
    assert_eq!(named.container.as_deref(), Some("trainer"));
    // Shared: which of the two is unknown.
    let shared = process_pod(Some("u1".into()), &[train.clone(), pod("a", "b", "c")]).unwrap();
    assert_eq!((shared.uid.as_str(), shared.name), ("u1", None));
    // Outside any pod: no pod, whoever holds the device.
    assert_eq!(process_pod(None, &[train]), None);
}

#[test]
fn a_mig_gpus_process_takes_its_instances_holders() {
    let infer = pod("ml", "infer-0", "server");
    let mut a = gpu(1, &[("MIG-aaaa", 3)]);
    a.mig_devices[0].pods = vec![infer.clone()];
    a.mig_devices[0].processes = vec![AcceleratorProcess {
        pid: 30,
        ..AcceleratorProcess::default()
    }];
    assert_eq!(device_of_process(&a, 30), [infer]);
    assert!(device_of_process(&a, 31).is_empty());
}

#[test]
fn the_collector_reads_cgroups_under_procfs_and_a_missing_socket_is_no_error() {
    let root = tempfile::tempdir().unwrap();
    let cgroup = |pid: u32, text: &str| {
        let dir = root.path().join(format!("proc/{pid}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup"), text).unwrap();
    };
    cgroup(
        10,
        "0::/kubepods.slice/kubepods-pod3f0b1c2d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/x.scope\n",
    );
    cgroup(11, "0::/system.slice/sshd.service\n");
    let paths = HostPaths::fixture(root.path());
    let socket = root.path().join("absent.sock");
    let mut collector = PodCollector::start(&socket, paths).unwrap();
    let mut snapshot = Snapshot::default();
    let mut a = gpu(0, &[]);
    a.processes = [10, 11, 12]
        .map(|pid| AcceleratorProcess {
            pid,
            ..AcceleratorProcess::default()
        })
        .to_vec();
    snapshot.accelerators.push(a);
    collector
        .collect(&mut snapshot)
        .expect("no socket: no error");
    let pods: Vec<Option<&str>> = snapshot.accelerators[0]
        .processes
        .iter()
        .map(|p| p.pod.as_ref().map(|p| p.uid.as_str()))
        .collect();
    assert_eq!(
        pods,
        [Some("3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"), None, None]
    );
    assert!(snapshot.accelerators[0].pods.is_empty());
    assert_eq!(collector.uids.len(), 3, "cached while on a device");
}
