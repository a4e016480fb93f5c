//! The pod UID in a process's `/proc/<pid>/cgroup`, from the kubelet's cgroup naming.
//!
//! The kubelet puts each pod in a cgroup named after its UID, under `kubepods`:
//!
//! - systemd driver (cgroup v1 or v2): `/kubepods.slice/kubepods-burstable.slice/`
//!   `kubepods-burstable-pod<uid with _ for ->.slice/cri-containerd-<id>.scope` (Guaranteed pods
//!   have no QoS level: `kubepods-pod<uid>.slice`);
//! - cgroupfs driver: `/kubepods/burstable/pod<uid>/<container id>`;
//! - nested (kind, a kubelet in a slice of its own): `kubelet-kubepods-…-pod<uid>.slice`.
//!
//! Read from inside a container with a cgroup namespace of its own, the path is relative to the
//! reader's root (`/../../kubepods-…`), which the same search finds. UIDs are RFC 4122 UUIDs,
//! except static pods', which are 32 hex digits (a hash of the manifest).

/// The UID of the pod whose cgroup `text` (the content of `/proc/<pid>/cgroup`) places the process
/// in, or `None` for a process outside any pod.
pub fn pod_uid(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        // `hierarchy-id:controllers:path`; the path may itself hold ':' (never in kubepods').
        let path = line.splitn(3, ':').nth(2)?;
        let components: Vec<&str> = path.split('/').collect();
        // Only from a kubepods component on: a `pod…` directory elsewhere is not a pod's.
        let start = components.iter().position(|c| c.contains("kubepods"))?;
        components[start..].iter().find_map(|c| uid_of_component(c))
    })
}

/// The UID in one cgroup path component (`pod<uid>`, `kubepods-besteffort-pod<uid>.slice`).
fn uid_of_component(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let at = name.rfind("pod")?;
    // `pod` starts the component or follows a `-` (systemd's nesting separator).
    if at > 0 && !name[..at].ends_with('-') {
        return None;
    }
    let uid = name[at + 3..].replace('_', "-");
    is_uid(&uid).then(|| uid.to_ascii_lowercase())
}

/// An RFC 4122 UUID (8-4-4-4-12 hex digits), or the 32 hex digits of a static pod's UID.
fn is_uid(text: &str) -> bool {
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    let parts: Vec<&str> = text.split('-').collect();
    match parts.as_slice() {
        [whole] => hex(whole, 32),
        [a, b, c, d, e] => hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::pod_uid;

    const UID: &str = "3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    #[test]
    fn systemd_driver_cgroup_v2() {
        let text = "0::/kubepods.slice/kubepods-burstable.slice/\
kubepods-burstable-pod3f0b1c2d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/\
cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n";
        assert_eq!(pod_uid(text).as_deref(), Some(UID));
    }

    #[test]
    fn guaranteed_pod_and_cgroup_namespace_relative_path() {
        let text =
            "0::/../../kubepods-pod3f0b1c2d_4e5f_4a6b_8c7d_9e0f1a2b3c4d.slice/crio-ab12.scope\n";
        assert_eq!(pod_uid(text).as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver_cgroup_v1() {
        let text =
            "12:memory:/kubepods/besteffort/pod3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/0123abcd\n\
11:cpu,cpuacct:/kubepods/besteffort/pod3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/0123abcd\n\
1:name=systemd:/kubepods/besteffort/pod3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/0123abcd\n";
        assert_eq!(pod_uid(text).as_deref(), Some(UID));
    }

    #[test]
    fn nested_kubelet_and_static_pod_uids() {
        let text = "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/\
kubelet-kubepods-besteffort-pod0123456789abcdef0123456789abcdef.slice/cri-containerd-1.scope\n";
        assert_eq!(
            pod_uid(text).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn processes_outside_pods_have_none() {
        for text in [
            "0::/system.slice/containerd.service\n",
            "0::/user.slice/user-1000.slice/session-2.scope\n",
            // A `pod…` directory that is not under kubepods.
            "0::/machine.slice/pod3f0b1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\n",
            // kubepods itself, or a QoS level, is not a pod.
            "0::/kubepods.slice/kubepods-burstable.slice\n",
            // Not a UID.
            "0::/kubepods/burstable/podnotauid/0123\n",
            "",
            "garbage",
        ] {
            assert_eq!(pod_uid(text), None, "{text:?}");
        }
    }
}
