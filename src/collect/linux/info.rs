//! Static system facts on Linux: OS from os-release, kernel and hostname from /proc/sys/kernel,
//! CPU model and counts from /proc/cpuinfo and sysfs topology, boot time from /proc/stat, and the
//! host's first IPv4 address from its interfaces.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::cpu::{cpuinfo_fields, parse_cpu_list, parse_stat, read_topology};
use super::os::{os_release_fields, OS_RELEASE_FILES};
use crate::collect::{read_optional, HostPaths};
use crate::config::DEFAULT_NETDEV_AGGREGATE_EXCLUDE;
use crate::model::SystemInfo;

/// Static facts about the host behind `paths`. Never fails: an unreadable source leaves its
/// field empty (or 0).
pub fn system_info(paths: &HostPaths) -> SystemInfo {
    let cpuinfo = read_optional(paths.proc("cpuinfo")).unwrap_or_default();
    let threads = logical_cpus(paths, &cpuinfo);
    let cores = physical_cores(paths, &threads, &cpuinfo);
    SystemInfo {
        platform: "linux".into(),
        os_version: os_version(paths),
        kernel: read_optional(paths.proc("sys/kernel/osrelease")).unwrap_or_default(),
        architecture: std::env::consts::ARCH.into(),
        cpu_model: parse_cpu_model(&cpuinfo).unwrap_or_default(),
        cpu_cores: count_u32(cores),
        cpu_threads: count_u32(threads.len()),
        hostname: read_optional(paths.proc("sys/kernel/hostname")).unwrap_or_default(),
        ip_address: primary_ipv4(&local_ipv4_addresses()).unwrap_or_default(),
        boot_time_seconds: read_optional(paths.proc("stat"))
            .and_then(|stat| parse_stat(&stat).ok())
            .map_or(0, |stat| stat.boot_time),
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `PRETTY_NAME` of an os-release file, unquoted; `NAME VERSION` when it has none.
pub fn parse_os_release(text: &str) -> Option<String> {
    let fields = os_release_fields(text);
    let field = |key: &str| fields.get(key).filter(|v| !v.is_empty()).cloned();
    field("PRETTY_NAME").or_else(|| {
        let name = field("NAME")?;
        Some(match field("VERSION") {
            Some(version) => format!("{name} {version}"),
            None => name,
        })
    })
}

/// os-release(5): /etc/os-release, else /usr/lib/os-release.
fn os_version(paths: &HostPaths) -> String {
    OS_RELEASE_FILES
        .iter()
        .find_map(|p| parse_os_release(&read_optional(paths.root(p))?))
        .unwrap_or_default()
}

/// The CPU model from /proc/cpuinfo: x86's `model name`, else the keys other architectures use
/// (`Hardware` on 32-bit ARM boards, `Processor` on old ARM kernels, `cpu model` on MIPS, `cpu`
/// on POWER). 64-bit ARM kernels print none of them; then it is `None`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Hardware", "Processor", "cpu model", "cpu"]
        .iter()
        .find_map(|want| {
            cpuinfo_fields(cpuinfo)
                .find(|(key, value)| key == want && !value.is_empty())
                .map(|(_, value)| value.to_string())
        })
}

/// Logical CPU ids: sysfs `online`, else the `processor` entries of cpuinfo.
fn logical_cpus(paths: &HostPaths, cpuinfo: &str) -> Vec<u32> {
    read_optional(paths.sys("devices/system/cpu/online"))
        .and_then(|list| parse_cpu_list(&list).ok())
        .filter(|cpus| !cpus.is_empty())
        .unwrap_or_else(|| {
            cpuinfo_fields(cpuinfo)
                .filter(|(key, _)| *key == "processor")
                .filter_map(|(_, value)| value.parse().ok())
                .collect()
        })
}

/// Physical cores: distinct (package, core) pairs of sysfs topology; else of cpuinfo's
/// `physical id`/`core id`; else one core per logical CPU (what a VM without topology means).
fn physical_cores(paths: &HostPaths, cpus: &[u32], cpuinfo: &str) -> usize {
    let sysfs: Option<BTreeSet<(u32, u32)>> = cpus
        .iter()
        .map(|&id| match read_topology(paths, id) {
            (Some(core), Some(package)) => Some((package, core)),
            _ => None,
        })
        .collect();
    if let Some(pairs) = sysfs.filter(|p| !p.is_empty()) {
        return pairs.len();
    }
    let from_cpuinfo = cpuinfo_core_pairs(cpuinfo);
    if from_cpuinfo > 0 {
        return from_cpuinfo;
    }
    cpus.len()
}

/// Distinct (`physical id`, `core id`) pairs of cpuinfo's processor blocks.
pub fn cpuinfo_core_pairs(cpuinfo: &str) -> usize {
    let mut pairs = BTreeSet::new();
    let (mut package, mut core) = (None, None);
    for (key, value) in cpuinfo_fields(cpuinfo) {
        match key {
            "processor" => (package, core) = (None, None),
            "physical id" => package = value.parse::<u32>().ok(),
            "core id" => core = value.parse::<u32>().ok(),
            _ => continue,
        }
        if let (Some(p), Some(c)) = (package, core) {
            pairs.insert((p, c));
        }
    }
    pairs.len()
}

/// Non-loopback IPv4 addresses of this host's interfaces as (interface, address), sorted by
/// interface name so the choice is stable across restarts. Read from the monitor's own network
/// namespace (an agent runs with the host's network); never contacts anything.
fn local_ipv4_addresses() -> Vec<(String, IpAddr)> {
    let networks = match sysinfo::Networks::new_with_refreshed_list() {
        Ok(networks) => networks,
        Err(e) => {
            tracing::debug!("listing network interfaces: {e}");
            return Vec::new();
        }
    };
    let mut found: Vec<(String, IpAddr)> = networks
        .iter()
        .flat_map(|(name, data)| {
            let name = name.to_string_lossy();
            data.ip_networks()
                .iter()
                .filter(|net| net.addr.is_ipv4() && !net.addr.is_loopback())
                .map(move |net| (name.to_string(), net.addr))
        })
        .collect();
    found.sort();
    found
}

/// The address to report: the first on an interface outside the default netdev aggregate
/// exclude (so a physical NIC wins over docker0 or a CNI bridge), else the first of any.
pub fn primary_ipv4(addresses: &[(String, IpAddr)]) -> Option<String> {
    let virtual_nic = regex_lite::Regex::new(DEFAULT_NETDEV_AGGREGATE_EXCLUDE).ok();
    let is_virtual = |name: &str| virtual_nic.as_ref().is_some_and(|re| re.is_match(name));
    addresses
        .iter()
        .find(|(name, _)| !is_virtual(name))
        .or_else(|| addresses.first())
        .map(|(_, addr)| addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::collect::linux::fixture;

    #[test]
    fn server_fixture() {
        let info = system_info(&HostPaths::fixture(fixture("server")));
        assert_eq!(info.platform, "linux");
        assert_eq!(info.os_version, "Ubuntu 22.04.4 LTS");
        assert_eq!(info.kernel, "5.15.0-105-generic");
        assert_eq!(info.hostname, "gpu-node-07");
        assert_eq!(info.cpu_model, "Intel(R) Xeon(R) Silver 4110 CPU @ 2.10GHz");
        // 2 packages × 2 cores × 2 threads.
        assert_eq!((info.cpu_cores, info.cpu_threads), (4, 8));
        assert_eq!(info.boot_time_seconds, 1_714_560_000);
        assert_eq!(info.architecture, std::env::consts::ARCH);
    }

    #[test]
    fn captured_vm_fixture_matches_its_files() {
        let dir = fixture("captured-vm");
        let info = system_info(&HostPaths::fixture(&dir));
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
        assert_eq!(info.kernel, read("proc/sys/kernel/osrelease").trim());
        assert_eq!(info.hostname, read("proc/sys/kernel/hostname").trim());
        let cpuinfo = read("proc/cpuinfo");
        let processors = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        assert_eq!(info.cpu_threads as usize, processors);
        assert_eq!(info.cpu_cores as usize, cpuinfo_core_pairs(&cpuinfo));
        assert!(info.os_version.contains("Linux"), "{}", info.os_version);
        assert!(cpuinfo.contains(&info.cpu_model) && !info.cpu_model.is_empty());
        assert!(info.boot_time_seconds > 1_000_000_000);
    }

    #[test]
    fn falls_back_to_cpuinfo_and_usr_lib_os_release() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        let lib = tmp.path().join("root/usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(
            lib.join("os-release"),
            "NAME=Fedora\nVERSION='39 (Server)'\n",
        )
        .unwrap();
        std::fs::write(
            proc.join("cpuinfo"),
            "processor : 0\nphysical id : 0\ncore id : 0\n\n\
             processor : 1\nphysical id : 0\ncore id : 0\n\n\
             processor : 2\nphysical id : 0\ncore id : 1\n",
        )
        .unwrap();
        let info = system_info(&HostPaths::fixture(tmp.path()));
        assert_eq!(info.os_version, "Fedora 39 (Server)");
        assert_eq!((info.cpu_cores, info.cpu_threads), (2, 3));
        assert_eq!((info.cpu_model.as_str(), info.boot_time_seconds), ("", 0));
        // Nothing readable at all: zeros, no panic.
        let empty = tempfile::tempdir().unwrap();
        let info = system_info(&HostPaths::fixture(empty.path()));
        assert_eq!((info.cpu_cores, info.cpu_threads), (0, 0));
        assert!(info.os_version.is_empty() && info.hostname.is_empty());
    }

    #[test]
    fn os_release_and_cpu_model_parsing() {
        assert_eq!(
            parse_os_release("NAME=x\nPRETTY_NAME=\"Debian \\\"GNU\\\"/Linux 12\"\n").as_deref(),
            Some("Debian \"GNU\"/Linux 12")
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=Alpine\n").as_deref(),
            Some("Alpine")
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=\"\"\nNAME=Arch\n").as_deref(),
            Some("Arch")
        );
        assert_eq!(parse_os_release("ID=x\n"), None);
        assert_eq!(parse_os_release(""), None);

        let arm32 = "processor\t: 0\nmodel name\t: \nBogoMIPS\t: 38.40\n\nHardware\t: BCM2835\n";
        assert_eq!(parse_cpu_model(arm32).as_deref(), Some("BCM2835"));
        let old_arm = "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\n";
        assert_eq!(
            parse_cpu_model(old_arm).as_deref(),
            Some("ARMv7 Processor rev 4 (v7l)")
        );
        let mips = "system type\t: MT7621\nprocessor\t: 0\ncpu model\t: MIPS 1004Kc V2.15\n";
        assert_eq!(parse_cpu_model(mips).as_deref(), Some("MIPS 1004Kc V2.15"));
        let power = "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\n";
        assert_eq!(
            parse_cpu_model(power).as_deref(),
            Some("POWER9 (raw), altivec supported")
        );
        assert_eq!(parse_cpu_model("processor : 0\nBogoMIPS : 50.00\n"), None);
    }

    #[test]
    fn prefers_a_physical_interface() {
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        let list = vec![
            ("cni0".to_string(), addr("10.244.0.1")),
            ("docker0".to_string(), addr("172.17.0.1")),
            ("ens5".to_string(), addr("10.0.3.17")),
        ];
        assert_eq!(primary_ipv4(&list).as_deref(), Some("10.0.3.17"));
        assert_eq!(primary_ipv4(&list[..2]).as_deref(), Some("10.244.0.1"));
        assert_eq!(primary_ipv4(&[]), None);
    }

    #[test]
    fn live_host_invariants() {
        let info = system_info(&HostPaths::default());
        let threads = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
        // available_parallelism honours affinity and cgroup quotas, so it can only be lower.
        assert!(info.cpu_threads >= threads && threads > 0);
        assert!(info.cpu_cores >= 1 && info.cpu_cores <= info.cpu_threads);
        assert_eq!(
            info.kernel,
            rustix::system::uname().release().to_string_lossy()
        );
        assert!(!info.hostname.is_empty());
        if !info.ip_address.is_empty() {
            let ip: IpAddr = info.ip_address.parse().unwrap();
            assert!(ip.is_ipv4() && !ip.is_loopback());
        }
    }
}
