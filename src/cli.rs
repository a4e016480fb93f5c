//! Command-line flags → [`Config`]. Flag names are contracts: TrackLab's launcher passes the legacy
//! ones, and the `--path.*` / `--collector.*` ones mean what node_exporter's mean.
//!
//! Every flag can also come from a `SYSTEM_MONITOR_*` environment variable and from a TOML
//! `--config` file ([`parse`]: flag > variable > file > default); `completions` and `man` are
//! generated from the same definitions ([`generate`]).

use clap::{Args, Parser, Subcommand};
use regex_lite::Regex;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    self, AccelConfig, Backend, BrowserConfig, CollectConfig, Config, ConnectionConfig,
    CoordinatorConfig, HistoryConfig, HostPaths, NodeIdOrigin, RegisterConfig, TlsConfig,
    TlsIdentityFiles,
};
use crate::model::NodeId;

mod config_file;
mod flags;
pub mod generate;
mod parse;

pub use config_file::ConfigFileError;
pub use parse::{command, env_name, parse, try_parse_from, ParseError};

/// TrackLab System Monitor: samples CPU, memory, disks, filesystems, network and accelerators and
/// serves them over REST, gRPC and Prometheus.
#[derive(Debug, Parser)]
#[command(name = "system_monitor", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub collect: CollectArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub history: HistoryArgs,

    /// More logging: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// How the process is configured and logs (every mode).
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Read flags from this TOML file: keys are the long flag names without `--`
    /// (`rest-api-port = 9100`, `"path.procfs" = "/host/proc"`, `agents = ["http://a:8080"]`).
    /// A flag or its environment variable overrides the file.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Log line format on stderr: `text` (for people) or `json` (one object per line, for log
    /// pipelines).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take one sample (two, one interval apart, so rates are real), print it and exit: by
    /// default as `/api/system/metrics` serves it.
    Snapshot(SnapshotArgs),
    /// Know the agents (registration, DNS, a static list), poll them, and serve the same REST,
    /// gRPC and Prometheus surface for the whole cluster.
    Coordinator(Box<CoordinatorArgs>),
    /// A terminal view of an agent (CPU per core, memory, disks, network, accelerators) or of a
    /// coordinator (one row per node, sortable, with a drill-down into a node). `?` for keys.
    Top(TopArgs),
    /// Print a shell completion script, e.g. `system_monitor completions bash >
    /// /etc/bash_completion.d/system_monitor`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `system_monitor man | man -l -`; with a subcommand's
    /// name, that subcommand's page.
    Man(ManArgs),
}

/// `system_monitor completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `system_monitor man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (e.g. `coordinator`); default: the main page.
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// `system_monitor top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The agent or coordinator to show (its REST base URL). Default: the local agent,
    /// `http://127.0.0.1:<--rest-api-port>`. The read token is --auth-token-file's (or
    /// SYSTEM_MONITOR_AUTH_TOKEN), https peers are verified against --tls-ca.
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    pub url: Option<String>,

    /// Time between two fetches.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = config::parse_duration)]
    pub refresh: Duration,
}

/// `system_monitor snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// What to print: `json` (the `/api/system/metrics` array), `model` (every field the
    /// collectors produced, raw counters included) or `prometheus` (the `/metrics` text).
    #[arg(long, value_enum, default_value_t = SnapshotFormat::Json)]
    pub format: SnapshotFormat,
}

/// The output of `system_monitor snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotFormat {
    /// The `/api/system/metrics` array (one element), as the REST API serves it.
    Json,
    /// The internal model, every field the collectors produced.
    Model,
    /// Prometheus text, as `/metrics` serves it.
    Prometheus,
}

/// Security (agent and coordinator) and the agent's registration with a coordinator.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Read token file: required on every API but /api/health (the coordinator polls its
    /// agents with it). Without it, the SYSTEM_MONITOR_AUTH_TOKEN environment variable, if set.
    #[arg(long, value_name = "PATH", global = true)]
    pub auth_token_file: Option<PathBuf>,

    /// Registration token file: the coordinator takes registrations only with it, and agents
    /// send it when they register. Without it, the SYSTEM_MONITOR_CLUSTER_TOKEN environment
    /// variable (the token itself), if set.
    #[arg(long, value_name = "PATH", global = true)]
    pub cluster_token_file: Option<PathBuf>,

    /// Register with this coordinator (its base URL) and re-register as a heartbeat.
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    pub coordinator: Option<String>,

    /// The URL the coordinator should poll this agent at. Default: `http://<bind>:<rest port>`
    /// (https with --tls-cert).
    #[arg(long, value_name = "URL", requires = "coordinator", value_parser = parse_advertise_url)]
    pub advertise_url: Option<String>,

    /// A label sent with the registration (repeatable).
    #[arg(long = "node-label", value_name = "KEY=VALUE", requires = "coordinator", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,

    /// Time between registrations (the heartbeat). On the coordinator: the interval it
    /// announces to agents.
    #[arg(long, value_name = "DURATION", default_value = "10s", global = true, value_parser = config::parse_duration)]
    pub register_interval: Duration,

    /// Serve REST (with /metrics) and gRPC over TLS with this PEM certificate chain (leaf
    /// first). Needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert. Needs --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle that peers' certificates are verified against (the coordinator verifies
    /// agents, agents the coordinator). Default: the system's roots. On the coordinator, agents
    /// found by --discover-dns are polled over https when it is given.
    #[arg(long, value_name = "PATH", global = true)]
    pub tls_ca: Option<PathBuf>,
}

/// `system_monitor coordinator`: discovery and polling.
#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// Static agents: base URLs, comma-separated (repeatable).
    #[arg(long, value_name = "URL,URL,...", value_delimiter = ',', value_parser = parse_http_url)]
    pub agents: Vec<String>,

    /// Static agents, one base URL per line (`#` starts a comment).
    #[arg(long, value_name = "PATH")]
    pub agents_file: Option<PathBuf>,

    /// Resolve NAME periodically and poll every address on PORT (repeatable).
    #[arg(long, value_name = "NAME:PORT", value_parser = parse_dns_target)]
    pub discover_dns: Vec<(String, u16)>,

    /// How often --discover-dns names are resolved.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = config::parse_duration)]
    pub dns_interval: Duration,

    /// DNS server (IP:PORT) for --discover-dns. Default: the system resolver.
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,

    /// Time between poll rounds.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = config::parse_duration)]
    pub poll_interval: Duration,

    /// Per-agent poll timeout (connect to last byte).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = config::parse_duration)]
    pub poll_timeout: Duration,

    /// Polls in flight at once.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub poll_concurrency: u32,

    /// Most agents known at once.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_nodes: u32,

    /// A node without a good answer for this long is offline. Default: 3 poll intervals.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub offline_after: Option<Duration>,

    /// Accept registrations whose URL host is in this network even if it is not the peer's
    /// own address (repeatable), e.g. 10.0.0.0/8.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_register_cidr: Vec<ipnet::IpNet>,

    /// Also sample this host, listed as the `master` node.
    #[arg(long)]
    pub sample_self: bool,
}

/// How the agent (or the coordinator) serves. Global, so that `coordinator` takes them too.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Write `sock=<grpc port>` and `rest=<rest port>` here once both servers listen.
    #[arg(long, value_name = "PATH", global = true)]
    pub portfile: Option<PathBuf>,

    /// Serve the REST API (on by default; accepted for TrackLab's launcher).
    #[arg(long, global = true)]
    pub enable_rest_api: bool,

    /// Do not serve the REST API (nor /metrics).
    #[arg(long, conflicts_with = "enable_rest_api", global = true)]
    pub disable_rest_api: bool,

    /// REST (and /metrics) port; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 8080, global = true)]
    pub rest_api_port: u16,

    /// gRPC port; 0 (the default) picks a free one, written to the portfile.
    #[arg(long, value_name = "PORT", default_value_t = 0, global = true)]
    pub grpc_port: u16,

    /// Listen on 127.0.0.1 only (the default unless --bind is given).
    #[arg(long, conflicts_with = "bind", global = true)]
    pub listen_on_localhost: bool,

    /// Address to listen on, e.g. 0.0.0.0 for a cluster agent. Default 127.0.0.1.
    #[arg(long, value_name = "ADDR", global = true)]
    pub bind: Option<IpAddr>,

    /// Exit when this process is gone (checked every 2 s).
    #[arg(long, value_name = "PID", global = true)]
    pub parent_pid: Option<u32>,

    /// Most client connections open at once, REST and gRPC together; past it, new ones wait.
    /// Default: what the open-file limit leaves after a reserve for the sampler (at most 1024
    /// on an agent).
    #[arg(long, value_name = "N", global = true, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: Option<u32>,

    /// How long a client has to send a request head (and a kept-alive connection may wait for
    /// its next request); on gRPC, the HTTP/2 preface.
    #[arg(long = "http.header-read-timeout", value_name = "DURATION", default_value = "30s",
          value_parser = config::parse_duration, global = true)]
    pub header_read_timeout: Duration,

    /// A connection that moves no byte either way for this long is closed.
    #[arg(long = "http.idle-timeout", value_name = "DURATION", default_value = "120s",
          value_parser = config::parse_duration, global = true)]
    pub idle_timeout: Duration,

    /// Let web pages from this origin read the REST API (CORS), e.g. http://localhost:3000
    /// (repeatable). Default: no CORS headers.
    #[arg(long, value_name = "ORIGIN", global = true, value_parser = parse_origin)]
    pub cors_allow_origin: Vec<String>,

    /// Also answer requests whose Host is this name or address (repeatable), e.g. the node's
    /// DNS name. Loopback names and the --bind address are always answered; with --bind
    /// 0.0.0.0 (or ::) every Host is, unless this is given.
    #[arg(long, value_name = "NAME", global = true, value_parser = parse_allowed_host)]
    pub allowed_host: Vec<String>,
}

/// The short-term history (`/api/system/history`).
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How long every sample is kept at full resolution (e.g. 30m, 1h, 2h).
    #[arg(long = "history.raw", value_name = "DURATION", default_value = "1h", value_parser = parse_history_duration)]
    pub history_raw: Duration,

    /// How long the per-minute min, max and mean are kept (e.g. 1d, 7d).
    #[arg(long = "history.retention", value_name = "DURATION", default_value = "7d", value_parser = parse_history_duration)]
    pub history_retention: Duration,

    /// Keep the history in this directory across restarts (created if missing). Without it,
    /// history is in memory only.
    #[arg(long = "history.path", value_name = "DIR")]
    pub history_path: Option<PathBuf>,
}

/// A history duration: humantime (`90m`, `1h`, `7d`), at least a minute, at most a year.
fn parse_history_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is not a duration (try 30m, 1h or 7d)"))?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(366 * 86_400) {
        return Err(format!("{text:?} must be at least 1m and at most a year"));
    }
    Ok(d)
}

/// What and how the collectors sample. Global so that `snapshot` takes them too.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// This node's id in every API. Default: the hostname, and then any well-formed node_id
    /// asked for is answered with this node's sample under that id (TrackLab's rule).
    #[arg(long, value_name = "ID", global = true, value_parser = NodeId::parse)]
    pub node_id: Option<NodeId>,

    /// Time between samples: seconds (1, 0.5) or with a unit (500ms, 2s).
    #[arg(long, value_name = "DURATION", default_value = "1s", global = true, value_parser = config::parse_duration)]
    pub interval: Duration,

    /// Query DCGM profiling fields on NVIDIA GPUs (needs DCGM).
    #[arg(long, global = true)]
    pub enable_dcgm_profiling: bool,

    /// DCGM host engine to query (HOST:PORT, or a unix socket path). Default: DCGM embedded in
    /// this process.
    #[arg(long, value_name = "ADDR", global = true, value_parser = parse_dcgm_address)]
    pub dcgm_address: Option<String>,

    /// NVML library to load instead of the system's libnvidia-ml.so.1 / nvml.dll.
    #[arg(long, value_name = "PATH", global = true)]
    pub nvml_library: Option<PathBuf>,

    /// DCGM library to load instead of the system's libdcgm.so.4 (or .3).
    #[arg(long, value_name = "PATH", global = true)]
    pub dcgm_library: Option<PathBuf>,

    /// The TPU runtime's local metrics service (gRPC) to read TPU figures from.
    #[arg(long, value_name = "HOST:PORT", default_value = config::DEFAULT_TPU_METRICS_ADDRESS, global = true)]
    pub tpu_metrics_address: String,

    /// Which backend reads the host.
    #[arg(long, value_enum, default_value_t = Backend::default(), global = true)]
    pub backend: Backend,

    /// procfs mount point (the host's /proc; /host/proc in a container).
    #[arg(
        long = "path.procfs",
        value_name = "PATH",
        default_value = "/proc",
        global = true
    )]
    pub procfs: PathBuf,

    /// sysfs mount point.
    #[arg(
        long = "path.sysfs",
        value_name = "PATH",
        default_value = "/sys",
        global = true
    )]
    pub sysfs: PathBuf,

    /// Root of the host's filesystem, prefixed to mount points for statvfs.
    #[arg(
        long = "path.rootfs",
        value_name = "PATH",
        default_value = "/",
        global = true
    )]
    pub rootfs: PathBuf,

    /// Block devices to ignore (regex).
    #[arg(long = "collector.diskstats.device-exclude", value_name = "REGEX",
          default_value = config::DEFAULT_DISK_DEVICE_EXCLUDE, value_parser = parse_regex, global = true)]
    pub disk_device_exclude: Regex,

    /// Mount points to ignore (regex).
    #[arg(long = "collector.filesystem.mount-points-exclude", value_name = "REGEX",
          default_value = config::DEFAULT_FS_MOUNT_POINTS_EXCLUDE, value_parser = parse_regex, global = true)]
    pub fs_mount_points_exclude: Regex,

    /// Filesystem types to ignore (regex).
    #[arg(long = "collector.filesystem.fs-types-exclude", value_name = "REGEX",
          default_value = config::DEFAULT_FS_TYPES_EXCLUDE, value_parser = parse_regex, global = true)]
    pub fs_types_exclude: Regex,

    /// How long statvfs may take before a mount is reported as timed out and skipped.
    #[arg(long = "collector.filesystem.mount-timeout", value_name = "DURATION", default_value = "5s",
          value_parser = config::parse_duration, global = true)]
    pub fs_mount_timeout: Duration,

    /// Interfaces left out of the REST network aggregate (still on /metrics) (regex).
    #[arg(long = "collector.netdev.aggregate-exclude", value_name = "REGEX",
          default_value = config::DEFAULT_NETDEV_AGGREGATE_EXCLUDE, value_parser = parse_regex, global = true)]
    pub netdev_aggregate_exclude: Regex,

    /// Count ESTABLISHED TCP sockets exactly, walking the kernel's socket tables this often
    /// (costly on a large host); unset, connections are the kernel's CurrEstab counter.
    #[arg(long = "collector.tcp.scan-interval", value_name = "DURATION",
          value_parser = config::parse_duration, global = true)]
    pub tcp_scan_interval: Option<Duration>,

    /// /proc/vmstat fields to export as node_vmstat_* (regex).
    #[arg(long = "collector.vmstat.fields", value_name = "REGEX",
          default_value = config::DEFAULT_VMSTAT_FIELDS, value_parser = parse_regex, global = true)]
    pub vmstat_fields: Regex,

    /// Directory whose *.prom files (Prometheus text format) are added to /metrics, read each
    /// sample (node_exporter's textfile collector). Default: none.
    #[arg(
        long = "collector.textfile.directory",
        value_name = "DIR",
        global = true
    )]
    pub textfile_directory: Option<PathBuf>,

    /// The kubelet's PodResources socket (usually
    /// /var/lib/kubelet/pod-resources/kubelet.sock): label each GPU with the pod, namespace and
    /// container it is allocated to, and GPU processes with their pod. A missing socket is
    /// silent (no labels until it appears).
    #[arg(long, value_name = "PATH", global = true)]
    pub kubelet_pod_resources_socket: Option<PathBuf>,

    /// An exec plugin, NAME=COMMAND (repeatable): COMMAND runs through the shell (`sh -c`;
    /// `cmd /C` on Windows) every --plugin.interval; its output, Prometheus text, is added to
    /// /metrics and to the `custom` map of /api/system/metrics. Agent and local mode only.
    #[arg(long = "plugin.exec", value_name = "NAME=COMMAND", global = true)]
    pub plugin_exec: Vec<config::PluginSpec>,

    /// Time between two runs of each exec plugin.
    #[arg(long = "plugin.interval", value_name = "DURATION", default_value = "10s",
          value_parser = config::parse_duration, global = true)]
    pub plugin_interval: Duration,

    /// How long an exec plugin may run before it is killed with its process group.
    #[arg(long = "plugin.timeout", value_name = "DURATION", default_value = "5s",
          value_parser = config::parse_duration, global = true)]
    pub plugin_timeout: Duration,

    /// How often the UDP tables are scanned for queued bytes (the kernel's table walk is costly).
    #[arg(long = "collector.udp_queues.scan-interval", value_name = "DURATION", default_value = "30s",
          value_parser = config::parse_duration, global = true)]
    pub udp_queues_scan_interval: Duration,

    /// The netstat counters reported, as `<Protocol>_<Field>` (regex).
    #[arg(long = "collector.netstat.fields", value_name = "REGEX",
          default_value = config::DEFAULT_NETSTAT_FIELDS, value_parser = parse_regex, global = true)]
    pub netstat_fields: Regex,
}

fn parse_regex(text: &str) -> Result<Regex, String> {
    Regex::new(text).map_err(|e| format!("invalid regular expression: {e}"))
}

/// `--dcgm-address`, checked when the flags are read (a typo is a usage error, not a warning later).
fn parse_dcgm_address(text: &str) -> Result<String, String> {
    crate::collect::accel::dcgm::HostEngineAddress::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// An http(s) URL with a host and a port other than 0; kept as given (the coordinator
/// normalises it).
pub fn parse_http_url(text: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?}: only http and https URLs"));
    }
    if url.host().is_none() {
        return Err(format!("{text:?}: no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("{text:?}: port 0 cannot be connected to"));
    }
    Ok(text.trim().to_string())
}

/// `--advertise-url`: what the coordinator will poll, held to the rules it checks registrations
/// by, so that an agent it would refuse fails at start rather than at every heartbeat.
fn parse_advertise_url(text: &str) -> Result<String, String> {
    crate::coordinator::registry::AgentUrl::parse(text)
        .map(|_| text.trim().to_string())
        .map_err(|reason| format!("{text:?}: {reason}"))
}

/// `--cors-allow-origin`: an http(s) origin, `scheme://host[:port]` and nothing more, kept as
/// browsers send it in `Origin` (lowercase host, no default port), since it is matched exactly.
fn parse_origin(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !text.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(format!(
            "{text:?} is not an origin: expected scheme://host[:port], e.g. http://localhost:3000"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// `--allowed-host`: a DNS name or an IP address (IPv6 with or without brackets), no port.
fn parse_allowed_host(text: &str) -> Result<String, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = text.strip_suffix('.').unwrap_or(text);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        });
    if !valid {
        return Err(format!(
            "{text:?}: expected a host name or an IP address, without a port"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// `KEY=VALUE`, each 1-253 characters; keys as node ids.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    NodeId::check(key).map_err(|e| format!("label key {key:?}: {e}"))?;
    if value.len() > 253 || value.chars().any(char::is_control) {
        return Err(format!(
            "label value {value:?}: at most 253 printable characters"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `NAME:PORT` for --discover-dns.
fn parse_dns_target(text: &str) -> Result<(String, u16), String> {
    let (name, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not NAME:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid || port == 0 {
        return Err(format!("{text:?}: expected a DNS name and a non-zero port"));
    }
    Ok((name.trim_end_matches('.').to_string(), port))
}

fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR network (e.g. 10.0.0.0/8)"))
}

impl Cli {
    /// The configuration these flags describe. `hostname` is the default node id.
    pub fn config(&self, hostname: &str) -> Config {
        let c = &self.collect;
        Config {
            node_id: c
                .node_id
                .clone()
                .unwrap_or_else(|| NodeId::from_hostname(hostname)),
            node_id_origin: match c.node_id {
                Some(_) => NodeIdOrigin::Flag,
                None => NodeIdOrigin::Hostname,
            },
            bind: self
                .serve
                .bind
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
            rest_port: self.serve.rest_api_port,
            rest_enabled: !self.serve.disable_rest_api,
            grpc_port: self.serve.grpc_port,
            portfile: self.serve.portfile.clone(),
            parent_pid: self.serve.parent_pid,
            collect: CollectConfig {
                backend: c.backend,
                paths: HostPaths::new(&c.procfs, &c.sysfs, &c.rootfs),
                disk_device_exclude: c.disk_device_exclude.clone(),
                fs_mount_points_exclude: c.fs_mount_points_exclude.clone(),
                fs_types_exclude: c.fs_types_exclude.clone(),
                fs_mount_timeout: c.fs_mount_timeout,
                netdev_aggregate_exclude: c.netdev_aggregate_exclude.clone(),
                tcp_scan_interval: c.tcp_scan_interval,
                vmstat_fields: c.vmstat_fields.clone(),
                textfile_directory: c.textfile_directory.clone(),
                udp_queues_scan_interval: c.udp_queues_scan_interval,
                netstat_fields: c.netstat_fields.clone(),
                interval: c.interval,
                enable_dcgm_profiling: c.enable_dcgm_profiling,
                accel: AccelConfig {
                    nvml_library: c.nvml_library.clone(),
                    dcgm_library: c.dcgm_library.clone(),
                    dcgm_address: c.dcgm_address.clone(),
                    tpu_metrics_address: c.tpu_metrics_address.clone(),
                },
                kubelet_pod_resources_socket: c.kubelet_pod_resources_socket.clone(),

                plugins: config::PluginConfig {
                    exec: c.plugin_exec.clone(),
                    interval: c.plugin_interval,
                    timeout: c.plugin_timeout,
                },
            },
            auth_token_file: self.cluster.auth_token_file.clone(),
            cluster_token_file: self.cluster.cluster_token_file.clone(),
            register: self
                .cluster
                .coordinator
                .clone()
                .map(|coordinator| RegisterConfig {
                    coordinator,
                    advertise_url: self.cluster.advertise_url.clone(),
                    labels: self.cluster.node_labels.clone(),
                }),
            register_interval: self.cluster.register_interval,
            tls: TlsConfig {
                identity: self
                    .cluster
                    .tls_cert
                    .clone()
                    .zip(self.cluster.tls_key.clone())
                    .map(|(cert, key)| TlsIdentityFiles { cert, key }),
                ca: self.cluster.tls_ca.clone(),
            },
            connections: ConnectionConfig {
                max_connections: self.serve.max_connections.map(|n| n as usize),
                header_read_timeout: self.serve.header_read_timeout,
                idle_timeout: self.serve.idle_timeout,
            },
            browser: BrowserConfig {
                cors_allow_origins: self.serve.cors_allow_origin.clone(),
                allowed_hosts: self.serve.allowed_host.clone(),
            },
            history: HistoryConfig {
                raw: self.history.history_raw,
                retention: self.history.history_retention.max(self.history.history_raw),
                path: self.history.history_path.clone(),
            },
        }
    }
}

impl TopArgs {
    /// What `system_monitor top` is to show, and how to reach it; `rest_port` is the default
    /// URL's port (`--rest-api-port`).
    pub fn options(&self, rest_port: u16, cluster: &ClusterArgs) -> crate::top::Options {
        crate::top::Options {
            url: self
                .url
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{rest_port}")),
            refresh: self.refresh,
            auth_token_file: cluster.auth_token_file.clone(),
            tls_ca: cluster.tls_ca.clone(),
        }
    }
}

impl CoordinatorArgs {
    /// The coordinator settings these flags describe.
    pub fn config(&self) -> CoordinatorConfig {
        CoordinatorConfig {
            agents: self.agents.clone(),
            agents_file: self.agents_file.clone(),
            dns_names: self.discover_dns.clone(),
            dns_interval: self.dns_interval,
            dns_server: self.dns_server,
            poll_interval: self.poll_interval,
            poll_timeout: self.poll_timeout,
            poll_concurrency: self.poll_concurrency as usize,
            max_nodes: self.max_nodes as usize,
            offline_after: self
                .offline_after
                .unwrap_or(self.poll_interval * OFFLINE_AFTER_INTERVALS),
            allow_register_cidrs: self.allow_register_cidr.clone(),
            sample_self: self.sample_self,
        }
    }
}

/// Default `--offline-after`, in poll intervals.
const OFFLINE_AFTER_INTERVALS: u32 = 3;

#[cfg(test)]
mod tests;
