//! Runtime configuration: the one place that holds every default, built from the CLI.

use regex_lite::Regex;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::NodeId;

/// Where the host's procfs, sysfs and root filesystem are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's /proc.
    pub procfs: PathBuf,
    /// The host's /sys.
    pub sysfs: PathBuf,
    /// The host's /, prefixed to mount points for statvfs.
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self::new("/proc", "/sys", "/")
    }
}

impl HostPaths {
    pub fn new(
        procfs: impl Into<PathBuf>,
        sysfs: impl Into<PathBuf>,
        rootfs: impl Into<PathBuf>,
    ) -> Self {
        Self {
            procfs: procfs.into(),
            sysfs: sysfs.into(),
            rootfs: rootfs.into(),
        }
    }

    /// The three roots of a fixture tree: `<dir>/proc`, `<dir>/sys`, `<dir>/root`.
    pub fn fixture(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self::new(dir.join("proc"), dir.join("sys"), dir.join("root"))
    }

    /// `relative` under procfs, e.g. `proc("stat")`.
    pub fn proc(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.procfs.join(relative)
    }

    /// `relative` under sysfs, e.g. `sys("class/net")`.
    pub fn sys(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.sysfs.join(relative)
    }

    /// A host path (absolute, as the host's mount table writes it) under rootfs.
    pub fn root(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let host_path = host_path.as_ref();
        self.rootfs
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
    }
}

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions and virtual devices.
pub const DEFAULT_DISK_DEVICE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_FS_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";
/// node_exporter's default `--collector.vmstat.fields`: paging, swapping, page faults, OOM kills.
pub const DEFAULT_VMSTAT_FIELDS: &str = r"^(oom_kill|pgpg|pswp|pg.*fault).*";
/// Interfaces left out of the REST network aggregate: loopback and virtual NICs of container
/// runtimes, CNI plugins, hypervisors and tunnels. They stay on `/metrics`.
pub const DEFAULT_NETDEV_AGGREGATE_EXCLUDE: &str = r"^(lo|veth.*|docker.*|br-.*|cni.*|flannel.*|cali.*|cilium.*|lxc.*|vxlan.*|genev.*|tun.*|tap.*|virbr.*|vnet.*|kube-.*|weave.*|tailscale.*|wg.*|dummy.*|ifb.*|nlmon.*|sit\d*|gre.*|gretap.*|erspan.*|ip6tnl.*|ip6gre.*|ipip.*)$";

/// node_exporter's default `--collector.netstat.fields`: the `<Protocol>_<Field>` keys of
/// /proc/net/{netstat,snmp,snmp6} it reports.
pub const DEFAULT_NETSTAT_FIELDS: &str = r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// Which backend reads the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// /proc and /sys through the `--path.*` roots (Linux only).
    Linux,
    /// The sysinfo crate (macOS, Windows; also runs on Linux, without the container paths).
    Portable,
}

impl Default for Backend {
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            Self::Linux
        } else {
            Self::Portable
        }
    }
}

/// What the collectors read and which devices they keep.
#[derive(Debug, Clone)]
pub struct CollectConfig {
    /// Which backend reads the host.
    pub backend: Backend,
    /// Roots of the host's /proc, /sys and / (a container sees the host under /host).
    pub paths: HostPaths,
    /// Block devices to leave out entirely (partitions and virtual devices by default).
    pub disk_device_exclude: Regex,
    /// Mount points to leave out.
    pub fs_mount_points_exclude: Regex,
    /// Filesystem types to leave out (pseudo filesystems by default).
    pub fs_types_exclude: Regex,
    /// How long statvfs may take before a mount is reported as timed out and skipped.
    pub fs_mount_timeout: Duration,
    /// Interfaces kept on `/metrics` but left out of the REST aggregate.
    pub netdev_aggregate_exclude: Regex,
    /// How often the TCP tables are scanned for the exact count of ESTABLISHED sockets (each
    /// read walks the kernel's whole connection hash table: 1–8 ms per address family on a
    /// 24 GiB host, warm to cold, whatever the number of sockets);
    /// `None`: connections are the kernel's `CurrEstab` counter, read each sample.
    pub tcp_scan_interval: Option<Duration>,
    /// /proc/vmstat fields kept by the vmstat collector.
    pub vmstat_fields: Regex,
    /// Where the textfile collector reads `*.prom` files; `None`: nowhere.
    pub textfile_directory: Option<PathBuf>,
    /// How often the UDP tables are scanned for queued bytes (each read walks the kernel's whole
    /// UDP hash table, as for TCP).
    pub udp_queues_scan_interval: Duration,
    /// The netstat counters reported on `/metrics`, as `<Protocol>_<Field>` (node_exporter's
    /// `--collector.netstat.fields`).
    pub netstat_fields: Regex,
    /// Time between samples (collectors that set up their own sampling, like DCGM's field
    /// watches, follow it).
    pub interval: Duration,
    /// Query DCGM profiling fields (takes effect with the accelerator collectors).
    pub enable_dcgm_profiling: bool,
    /// Accelerator libraries and services.
    pub accel: AccelConfig,
    /// `--kubelet-pod-resources-socket`: the kubelet's PodResources socket, to label accelerators
    /// with the pods they are allocated to (`collect::pods`); `None`: no pod attribution.
    pub kubelet_pod_resources_socket: Option<PathBuf>,
    /// `--plugin.exec` commands and how often and how long they run (agent and local mode).
    pub plugins: PluginConfig,
}

/// The exec plugins: commands whose standard output (Prometheus text) is added to each sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The plugins, in the order given.
    pub exec: Vec<PluginSpec>,
    /// Time between the starts of two runs of one plugin (`--plugin.interval`).
    pub interval: Duration,
    /// How long one run may take before its process group is killed (`--plugin.timeout`).
    pub timeout: Duration,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            exec: Vec::new(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One `--plugin.exec NAME=COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// `[a-zA-Z_][a-zA-Z0-9_]*`: the `plugin` label value and the `plugin:<NAME>` status.
    pub name: String,
    /// Run by the system shell (`sh -c` on Unix, `cmd /C` on Windows), so pipes and quoting
    /// work as they do in a terminal.
    pub command: String,
}

/// Why a `--plugin.exec` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginSpecError {
    #[error("expected NAME=COMMAND (e.g. queue=/usr/local/bin/queue-metrics.sh), got {0:?}")]
    NoEquals(String),
    #[error(
        "plugin name {0:?} must be letters, digits and underscores, not starting with a digit \
         ([a-zA-Z_][a-zA-Z0-9_]*)"
    )]
    Name(String),
    #[error("plugin {0:?} has an empty command")]
    EmptyCommand(String),
}

impl std::str::FromStr for PluginSpec {
    type Err = PluginSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, command) = text
            .split_once('=')
            .ok_or_else(|| PluginSpecError::NoEquals(text.to_string()))?;
        let name = name.trim();
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PluginSpecError::Name(name.to_string()));
        }
        if command.trim().is_empty() {
            return Err(PluginSpecError::EmptyCommand(name.to_string()));
        }
        Ok(Self {
            name: name.to_string(),
            command: command.to_string(),
        })
    }
}

/// Where the accelerator collectors find their vendor libraries and services. All optional: a
/// library or service that is not there means no device of that kind, silently.
#[derive(Debug, Clone)]
pub struct AccelConfig {
    /// NVML shared library; default: the system's (`libnvidia-ml.so.1`, `nvml.dll`).
    pub nvml_library: Option<PathBuf>,
    /// DCGM shared library; default: the system's (`libdcgm.so.4`, then `.so.3`).
    pub dcgm_library: Option<PathBuf>,
    /// DCGM host engine `HOST:PORT` (or a unix socket path); `None` runs DCGM embedded.
    pub dcgm_address: Option<String>,
    /// The TPU runtime's local metrics service (gRPC), `HOST:PORT`.
    pub tpu_metrics_address: String,
}

/// Where libtpu serves its runtime metrics (what `tpu-info` reads).
pub const DEFAULT_TPU_METRICS_ADDRESS: &str = "127.0.0.1:8431";

impl Default for AccelConfig {
    fn default() -> Self {
        Self {
            nvml_library: None,
            dcgm_library: None,
            dcgm_address: None,
            tpu_metrics_address: DEFAULT_TPU_METRICS_ADDRESS.to_string(),
        }
    }
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            paths: HostPaths::default(),
            disk_device_exclude: default_regex(DEFAULT_DISK_DEVICE_EXCLUDE),
            fs_mount_points_exclude: default_regex(DEFAULT_FS_MOUNT_POINTS_EXCLUDE),
            fs_types_exclude: default_regex(DEFAULT_FS_TYPES_EXCLUDE),
            fs_mount_timeout: Duration::from_secs(5),
            netdev_aggregate_exclude: default_regex(DEFAULT_NETDEV_AGGREGATE_EXCLUDE),
            tcp_scan_interval: None,
            vmstat_fields: default_regex(DEFAULT_VMSTAT_FIELDS),
            textfile_directory: None,
            udp_queues_scan_interval: Duration::from_secs(30),
            netstat_fields: default_regex(DEFAULT_NETSTAT_FIELDS),
            interval: Duration::from_secs(1),
            enable_dcgm_profiling: false,
            accel: AccelConfig::default(),
            kubelet_pod_resources_socket: None,
            plugins: PluginConfig::default(),
        }
    }
}

fn default_regex(pattern: &str) -> Regex {
    // The defaults are constants checked by `defaults_compile` below; failing here is a bug.
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern:?} is invalid: {e}"))
}

/// Where the node id came from, which decides what an agent answers to a `node_id` that is not
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeIdOrigin {
    /// `--node-id`: the node is named, and another id is unknown (404, gRPC NOT_FOUND).
    Flag,
    /// The hostname, by default: the node was not named, so any well-formed id is taken to name
    /// it and is answered with its sample under that id (TrackLab's own monitor does this, and
    /// its integration test asks `?node_id=test-node` of a monitor started without one).
    #[default]
    Hostname,
}

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id in every API (default: the hostname).
    pub node_id: NodeId,
    /// Whether `node_id` was given (`--node-id`) or is the hostname: the node id rule of the
    /// agent's APIs.
    pub node_id_origin: NodeIdOrigin,
    /// Address both servers listen on (loopback unless `--bind`).
    pub bind: IpAddr,
    /// REST port (0 = any free port, written to the portfile).
    pub rest_port: u16,
    /// Whether to serve REST at all.
    pub rest_enabled: bool,
    /// gRPC port (0 = any free port, written to the portfile).
    pub grpc_port: u16,
    /// Where to write `sock=`/`rest=` once both servers listen.
    pub portfile: Option<PathBuf>,
    /// Exit when this process is gone.
    pub parent_pid: Option<u32>,
    /// Collector settings.
    pub collect: CollectConfig,
    /// `--auth-token-file`, the read token; without it the token comes from
    /// `SYSTEM_MONITOR_AUTH_TOKEN`, if set.
    pub auth_token_file: Option<PathBuf>,
    /// `--cluster-token-file`, the registration secret (required by the coordinator to take
    /// registrations, sent by agents that register); without it the token comes from
    /// `SYSTEM_MONITOR_CLUSTER_TOKEN`, if set.
    pub cluster_token_file: Option<PathBuf>,
    /// Registration with a coordinator (`--coordinator`), agent mode only.
    pub register: Option<RegisterConfig>,
    /// Time between registrations (heartbeats); the coordinator announces it to its agents.
    pub register_interval: Duration,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`: TLS for the servers and the clients.
    pub tls: TlsConfig,
    /// How many client connections the servers hold and how long each may wait.
    pub connections: ConnectionConfig,
    /// `--cors-allow-origin`, `--allowed-host`: what web pages may reach of the REST server.
    pub browser: BrowserConfig,
    /// `--history.raw`, `--history.retention`, `--history.path`: the short-term history.
    pub history: HistoryConfig,
}

/// How long the history keeps each tier, and where (if anywhere) on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `--history.raw`: every sample is kept this long (default 1 h).
    pub raw: Duration,
    /// `--history.retention`: per-minute min, max and mean are kept this long (default 7 d).
    pub retention: Duration,
    /// `--history.path`: a directory keeping the history across restarts; `None`: memory only.
    pub path: Option<PathBuf>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            raw: Duration::from_secs(3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            path: None,
        }
    }
}

/// Bounds on the servers' client connections (REST and gRPC alike), so that idle, slow or
/// half-open clients can neither hold sockets for ever nor take the file descriptors the
/// sampler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// `--max-connections`: client connections open at once, REST and gRPC together; `None`
    /// derives it from the open-file limit (see `serve::limits`).
    pub max_connections: Option<usize>,
    /// `--http.header-read-timeout`: how long a client has to send a request head once the
    /// server waits for one (a new connection, or a kept-alive one between requests), and a
    /// new gRPC connection its HTTP/2 preface.
    pub header_read_timeout: Duration,
    /// `--http.idle-timeout`: a connection that moves no byte either way for this long is
    /// closed (a client that stopped reading, an idle gRPC channel, a peer that is gone).
    pub idle_timeout: Duration,
}

/// Default `--http.header-read-timeout` (hyper's own default, made explicit).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--http.idle-timeout`: longer than SSE's 15 s keep-alive comments and a few poll or
/// scrape intervals.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_connections: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What web pages may reach of the REST server (agent and coordinator). By default: nothing
/// cross-origin (no CORS headers), and, unless the server listens on every address, only
/// requests naming it by a loopback name or address or its bind address (against DNS
/// rebinding).
#[derive(Debug, Clone, Default)]
pub struct BrowserConfig {
    /// `--cors-allow-origin`: origins (`scheme://host[:port]`, as browsers send `Origin`) that
    /// get CORS headers; empty: none does.
    pub cors_allow_origins: Vec<String>,
    /// `--allowed-host`: names or addresses accepted in `Host` beside the loopback ones and
    /// the bind address; with an unspecified bind (0.0.0.0, ::), giving any turns the check on.
    pub allowed_hosts: Vec<String>,
}

/// The TLS files, read at start by [`crate::tls`]. Everything off by default: plain HTTP and gRPC.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// `--tls-cert` and `--tls-key`: serve REST (with `/metrics`) and gRPC over TLS.
    pub identity: Option<TlsIdentityFiles>,
    /// `--tls-ca`: the only roots peers are verified against (the coordinator verifies agents,
    /// agents the coordinator); `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

/// A server's certificate and key files (given together or not at all).
#[derive(Debug, Clone)]
pub struct TlsIdentityFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
}

/// An agent's registration with its coordinator.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// The coordinator's base URL (`--coordinator`).
    pub coordinator: String,
    /// The URL the coordinator polls us at (`--advertise-url`); default: our bind address and
    /// REST port (with an unspecified bind, the source address of the route to the coordinator).
    pub advertise_url: Option<String>,
    /// `--node-label KEY=VALUE` pairs, passed on to the coordinator.
    pub labels: Vec<(String, String)>,
}

/// Default `--register-interval`.
pub const DEFAULT_REGISTER_INTERVAL: Duration = Duration::from_secs(10);

/// Everything `system_monitor coordinator` needs beside [`Config`] (which gives it its ports,
/// bind address, node id, token and, with `--sample-self`, its collectors).
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Static agents (`--agents`, `--agents-file`), as given.
    pub agents: Vec<String>,
    /// `--agents-file`, read at start.
    pub agents_file: Option<PathBuf>,
    /// `--discover-dns NAME:PORT` targets.
    pub dns_names: Vec<(String, u16)>,
    /// How often DNS names are resolved again.
    pub dns_interval: Duration,
    /// The DNS server to ask instead of the system resolver.
    pub dns_server: Option<SocketAddr>,
    /// Time between poll rounds.
    pub poll_interval: Duration,
    /// How long one agent's poll may take, connect to last byte.
    pub poll_timeout: Duration,
    /// Polls in flight at once.
    pub poll_concurrency: usize,
    /// Most agents known at once (registration beyond it is refused).
    pub max_nodes: usize,
    /// Without a good answer for this long, a node is offline.
    pub offline_after: Duration,
    /// Networks whose addresses may be registered by any peer.
    pub allow_register_cidrs: Vec<ipnet::IpNet>,
    /// Also sample this host and list it as the `master` node.
    pub sample_self: bool,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            agents: Vec::new(),
            agents_file: None,
            dns_names: Vec::new(),
            dns_interval: Duration::from_secs(30),
            dns_server: None,
            poll_interval: Duration::from_secs(1),
            poll_timeout: Duration::from_secs(2),
            poll_concurrency: 512,
            max_nodes: 20_000,
            offline_after: Duration::from_secs(3),
            allow_register_cidrs: Vec::new(),
            sample_self: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: NodeId::from_hostname("localhost"),
            node_id_origin: NodeIdOrigin::default(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rest_port: 8080,
            rest_enabled: true,
            grpc_port: 0,
            portfile: None,
            parent_pid: None,
            collect: CollectConfig::default(),
            history: HistoryConfig::default(),
            auth_token_file: None,
            cluster_token_file: None,
            register: None,
            register_interval: DEFAULT_REGISTER_INTERVAL,
            tls: TlsConfig::default(),
            connections: ConnectionConfig::default(),
            browser: BrowserConfig::default(),
        }
    }
}

impl Config {
    /// A monitor launched as a child of a TrackLab process (portfile or parent pid given): the only
    /// kind that honours the legacy `TearDown` call.
    pub fn is_child(&self) -> bool {
        self.portfile.is_some() || self.parent_pid.is_some()
    }
}

/// Parses a duration: plain seconds (`1`, `0.5`), a number with one unit (`500ms`, `2s`, `1.5m`),
/// or a sum of whole units as humantime writes them (`1h30m`, `2h 15m`, `1min 30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let seconds = match decimal_seconds(text) {
        Some(seconds) => seconds,
        // humantime takes integers only: the decimal forms above stay ours.
        None => humantime::parse_duration(text)
            .map_err(|_| format!("{text:?} is not a duration (try 1s, 500ms, 1h30m or 0.5)"))?
            .as_secs_f64(),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!("{text:?} must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Seconds in a plain decimal number (`0.5`) or one with a single unit `ms`, `s` or `m`
/// (`1.5s`); `None` for anything else.
fn decimal_seconds(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let number = number.trim();
    // f64's parser also takes `inf` and `NaN`: only digits, a point and a sign are a number.
    if number.is_empty()
        || !number
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    number.parse::<f64>().ok().map(|value| value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_joins_absolute_mountpoints() {
        let p = HostPaths::new("/host/proc", "/host/sys", "/host/root");
        assert_eq!(p.root("/var/lib"), PathBuf::from("/host/root/var/lib"));
        assert_eq!(p.root("/"), PathBuf::from("/host/root/"));
        assert_eq!(p.proc("stat"), PathBuf::from("/host/proc/stat"));
        assert_eq!(HostPaths::default().root("/home"), PathBuf::from("/home"));
    }

    #[test]
    fn defaults_compile() {
        let c = CollectConfig::default();
        assert!(c.vmstat_fields.is_match("pgmajfault"));
        assert!(!c.vmstat_fields.is_match("nr_free_pages"));
        assert!(c.disk_device_exclude.is_match("nvme0n1p1"));
        assert!(c.disk_device_exclude.is_match("loop0"));
        assert!(!c.disk_device_exclude.is_match("nvme0n1"));
        assert!(!c.disk_device_exclude.is_match("sda"));
        assert!(c.fs_types_exclude.is_match("overlay"));
        assert!(!c.fs_types_exclude.is_match("ext4"));
        assert!(c.fs_mount_points_exclude.is_match("/proc/sys"));
        assert!(!c.fs_mount_points_exclude.is_match("/home"));
        assert!(c.netdev_aggregate_exclude.is_match("lo"));
        assert!(c.netdev_aggregate_exclude.is_match("veth12ab"));
        assert!(c.netdev_aggregate_exclude.is_match("docker0"));
        assert!(c.netdev_aggregate_exclude.is_match("ifb0"));
        assert!(c.netdev_aggregate_exclude.is_match("sit0"));
        assert!(!c.netdev_aggregate_exclude.is_match("eth0"));
        assert!(!c.netdev_aggregate_exclude.is_match("enp3s0"));
        assert!(c.netstat_fields.is_match("TcpExt_ListenDrops"));
        assert!(c.netstat_fields.is_match("UdpLite6_InErrors"));
        assert!(!c.netstat_fields.is_match("Tcp_MaxConn"));
        assert!(!c.netstat_fields.is_match("Ip_InReceives"));
    }

    #[test]
    fn plugin_specs_are_checked() {
        let spec: PluginSpec = "queue_1=echo a=b | wc -l".parse().unwrap();
        assert_eq!(
            spec,
            PluginSpec {
                name: "queue_1".into(),
                command: "echo a=b | wc -l".into()
            }
        );
        assert_eq!(
            "queue".parse::<PluginSpec>(),
            Err(PluginSpecError::NoEquals("queue".into()))
        );
        for bad in ["1q=x", "a-b=x", "=x", "é=x"] {
            let err = bad.parse::<PluginSpec>().unwrap_err();
            assert!(matches!(err, PluginSpecError::Name(_)), "{bad}: {err}");
        }
        assert_eq!(
            "q= ".parse::<PluginSpec>(),
            Err(PluginSpecError::EmptyCommand("q".into()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("inf").is_err());
        // humantime's sums of units.
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h 15m").unwrap(), Duration::from_secs(8100));
        assert_eq!(parse_duration("1min 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("25h").is_err(), "over a day");
        assert!(parse_duration("1h30").is_err());
        let message = parse_duration("soon").unwrap_err();
        assert!(message.contains("1h30m"), "{message}");
    }
}
