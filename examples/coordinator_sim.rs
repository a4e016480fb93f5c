//! Scale simulator for the coordinator: N fake agents in one process on loopback, each answering
//! `GET /api/system/metrics`, `/api/system/info` and `/api/health` like a real agent, with its own
//! node id and a fresh timestamp per request. Reads an agent element (default: the golden capture
//! in tests/golden/server/), writes the agents' URLs to `--agents-file`, prints `ready`, then serves
//! until SIGINT/SIGTERM, printing request counts every `--stats-interval`.
//!
//! ```text
//! cargo run --release --example coordinator_sim -- --agents 10000 --agents-file /tmp/agents.txt
//! ```
//!
//! Agents are spread over 127.0.0.1, 127.0.0.2, … (`--per-address` each, ephemeral ports), so no
//! single address runs out of ports and connections look like many hosts. Used by
//! bench/coordinator_scale.sh.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use axum::Router;
use clap::Parser;
use serde_json::Value;
use tokio::net::TcpListener;

/// Flags.
#[derive(Debug, Parser)]
#[command(about = "Fake agents on loopback for the coordinator scale bench")]
struct Args {
    /// How many fake agents to start.
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Where to write the agents' URLs, one per line (the coordinator's `--agents-file`).
    #[arg(long)]
    agents_file: PathBuf,
    /// Index of the first agent: several simulators (one per few thousand agents, where the
    /// open-files limit is tight) each take their own range of ids and addresses.
    #[arg(long, default_value_t = 0)]
    first: u32,
    /// Agents per loopback address: agent i listens on 127.0.0.(1 + i / per_address).
    #[arg(long, default_value_t = 1000)]
    per_address: u32,
    /// The agent element to serve: a `/api/system/metrics` array (its first element is used) or one
    /// element. `"<masked>"` values of the golden capture are replaced by plausible numbers.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/server/metrics.json"))]
    element: PathBuf,
    /// The `/api/system/info` document to serve, node id substituted.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/server/info.json"))]
    info: PathBuf,
    /// Grow (or shrink) the element's `cpu.cores` to this many cores, copying the captured ones:
    /// the capture is an 8-core VM, a cluster node has far more.
    #[arg(long)]
    cores: Option<usize>,
    /// Put this many GPUs in the element, encoded by the agent's own REST encoder from model
    /// values typical of an H100 under load (the capture has none).
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// Prefix of the fake node ids: agent i is `<prefix>-<i, 5 digits>`.
    #[arg(long, default_value = "sim")]
    node_prefix: String,
    /// How often to print request counts (0 = never).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    stats_interval: Duration,
    /// Worker threads of the runtime (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Accepted and ignored: `cargo bench` passes it to `harness = false` targets.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Marks where the per-request values go in the encoded templates.
const NODE_MARK: &str = "\u{1}NODE\u{1}";
/// Marks where the per-request values go in the encoded templates.
const TIME_MARK: &str = "\u{1}TIME\u{1}";

/// One piece of an encoded response.
#[derive(Debug)]
enum Piece {
    /// Bytes copied as they are.
    Literal(Vec<u8>),
    /// The agent's node id, as a JSON string.
    NodeId,
    /// Now, in Unix milliseconds (a JSON number).
    TimestampMs,
}

/// A JSON document encoded once, with holes for the values that change per agent and request.
#[derive(Debug)]
struct Template {
    /// The pieces, in order.
    pieces: Vec<Piece>,
    /// The encoded size with empty holes, to size each response's buffer.
    size: usize,
}

impl Template {
    /// Encodes `value`, whose node id and timestamp hold [`NODE_MARK`] and [`TIME_MARK`].
    fn new(value: &Value) -> anyhow::Result<Self> {
        let text = serde_json::to_string(value)?;
        let node = format!("\"{}\"", NODE_MARK.replace('\u{1}', "\\u0001"));
        let time = format!("\"{}\"", TIME_MARK.replace('\u{1}', "\\u0001"));
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        loop {
            let next = [(&node, Piece::NodeId), (&time, Piece::TimestampMs)]
                .into_iter()
                .filter_map(|(mark, piece)| rest.find(mark.as_str()).map(|at| (at, mark, piece)))
                .min_by_key(|(at, _, _)| *at);
            let Some((at, mark, piece)) = next else {
                pieces.push(Piece::Literal(rest.as_bytes().to_vec()));
                break;
            };
            pieces.push(Piece::Literal(rest.as_bytes()[..at].to_vec()));
            pieces.push(piece);
            rest = &rest[at + mark.len()..];
        }
        let size = pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(bytes) => bytes.len(),
                _ => 0,
            })
            .sum();
        Ok(Self { pieces, size })
    }

    /// The document for `node_id` at `now_ms`.
    fn render(&self, node_id: &str, now_ms: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size + node_id.len() + 24);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::NodeId => {
                    out.push(b'"');
                    out.extend_from_slice(node_id.as_bytes());
                    out.push(b'"');
                }
                Piece::TimestampMs => out.extend_from_slice(now_ms.to_string().as_bytes()),
            }
        }
        out
    }
}

/// What every fake agent shares.
struct Sim {
    /// Node id of the agent listening on each local address.
    nodes: HashMap<SocketAddr, String>,
    /// `[element]` of `/api/system/metrics`.
    metrics: Template,
    /// `/api/system/info`.
    info: Template,
    /// When the simulator started, for `uptime_seconds`.
    started: Instant,
    /// Requests answered, per path, for the stats line.
    served_metrics: AtomicU64,
    /// Requests answered, per path, for the stats line.
    served_health: AtomicU64,
    /// Requests answered, per path, for the stats line.
    served_other: AtomicU64,
}

/// The local address a connection came in on: tells which fake agent it is for.
#[derive(Clone, Copy, Debug)]
struct LocalAddr(Option<SocketAddr>);

impl Connected<IncomingStream<'_, TcpListener>> for LocalAddr {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Self(stream.io().local_addr().ok())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Bytes::from(body),
    )
        .into_response()
}

impl Sim {
    fn node(&self, local: LocalAddr) -> Option<&str> {
        local.0.and_then(|a| self.nodes.get(&a)).map(String::as_str)
    }
}

async fn serve_metrics(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(local): ConnectInfo<LocalAddr>,
) -> Response {
    sim.served_metrics.fetch_add(1, Ordering::Relaxed);
    let Some(node) = sim.node(local) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut body = Vec::with_capacity(sim.metrics.size + 64);
    body.push(b'[');
    body.extend_from_slice(&sim.metrics.render(node, now_ms()));
    body.push(b']');
    json(StatusCode::OK, body)
}

async fn serve_info(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(local): ConnectInfo<LocalAddr>,
) -> Response {
    sim.served_other.fetch_add(1, Ordering::Relaxed);
    match sim.node(local) {
        Some(node) => json(StatusCode::OK, sim.info.render(node, now_ms())),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn serve_health(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(local): ConnectInfo<LocalAddr>,
) -> Response {
    sim.served_health.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::json!({
        "status": "healthy",
        "service": "system_monitor",
        "timestamp": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "node_id": sim.node(local),
        "version": system_monitor::VERSION,
        "uptime_seconds": sim.started.elapsed().as_secs_f64(),
        "last_sample_age_seconds": 0.2,
        "interval_seconds": 1.0,
    });
    json(StatusCode::OK, body.to_string().into_bytes())
}

/// Replaces the golden capture's `"<masked>"` values by plausible ones, so the element decodes
/// like a real agent's (numbers where the agent sends numbers).
fn unmask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if v.as_str() == Some("<masked>") {
                    *v = match key.as_str() {
                        "durationSeconds" => Value::from(0.000_4),
                        "size" | "total" => Value::from(1_000_204_886_016_u64),
                        "used" => Value::from(412_316_860_416_u64),
                        "avail" => Value::from(587_888_025_600_u64),
                        "usage" => Value::from(41.2),
                        "ip_address" => Value::from("10.0.0.7"),
                        "architecture" => Value::from(std::env::consts::ARCH),
                        "version" => Value::from(system_monitor::VERSION),
                        "disk_total" => Value::from(1_000_204_886_016_u64),
                        _ => Value::from(0),
                    };
                } else {
                    unmask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unmask),
        _ => {}
    }
}

/// `count` GPUs as the agent's REST encoder writes them.
fn gpus(count: u32) -> anyhow::Result<Value> {
    use system_monitor::model::{Accelerator, Snapshot};
    let accelerators = (0..count)
        .map(|i| Accelerator {
            id: format!("nvidia{i}"),
            index: i,
            vendor: "nvidia".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: Some(format!("GPU-5a1c0f2e-7b7d-4c1e-9a55-00000000{i:04x}")),
            pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + i)),
            utilization_percent: Some(87.0),
            memory_utilization_percent: Some(41.0),
            memory_used_bytes: Some(61_203_267_584),
            memory_total_bytes: Some(85_520_809_984),
            temperature_celsius: Some(63.0),
            power_watts: Some(512.4),
            power_limit_watts: Some(700.0),
            energy_joules: Some(91_822_310.5),
            sm_clock_mhz: Some(1980.0),
            memory_clock_mhz: Some(2619.0),
            ..Default::default()
        })
        .collect();
    let snapshot = Snapshot {
        accelerators,
        ..Default::default()
    };
    let view = serde_json::to_value(system_monitor::model::wire::NodeMetrics::of(&snapshot))?;
    Ok(view
        .get("accelerators")
        .cloned()
        .unwrap_or(Value::Array(Vec::new())))
}

/// Grows or shrinks `cpu.cores` to `count`, cycling through the captured cores.
fn resize_cores(element: &mut Value, count: usize) -> anyhow::Result<()> {
    let Some(Value::Array(cores)) = element.pointer_mut("/cpu/cores") else {
        bail!("the element has no cpu.cores array to resize");
    };
    if cores.is_empty() {
        bail!("the element's cpu.cores is empty: nothing to copy");
    }
    let captured = cores.clone();
    *cores = (0..count)
        .map(|i| {
            let mut core = captured[i % captured.len()].clone();
            core["id"] = Value::from(i);
            core
        })
        .collect();
    Ok(())
}

/// Reads a JSON document (the first element when it is an array), applies `shape` to it, and marks
/// its node id and timestamp (when present) for per-request substitution.
fn load_shaped_template(
    path: &Path,
    shape: impl FnOnce(&mut Value) -> anyhow::Result<()>,
) -> anyhow::Result<Template> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if let Value::Array(items) = &mut value {
        if items.is_empty() {
            bail!("{} is an empty array", path.display());
        }
        value = items.swap_remove(0);
    }
    unmask(&mut value);
    shape(&mut value)?;
    let Value::Object(map) = &mut value else {
        bail!(
            "{} is not a JSON object (or an array of one)",
            path.display()
        );
    };
    map.insert("node_id".into(), Value::from(NODE_MARK));
    if map.contains_key("timestamp") {
        map.insert("timestamp".into(), Value::from(TIME_MARK));
    }
    Template::new(&value)
}

/// Writes the URLs (a temporary file, then a rename: a reader never sees half a list).
fn write_agents_file(path: &Path, urls: &[String]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    writeln!(file, "# {} fake agents from coordinator_sim", urls.len())?;
    for url in urls {
        writeln!(file, "{url}")?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.agents == 0 || args.per_address == 0 {
        bail!("--agents and --per-address must be at least 1");
    }
    let Some(end) = args.first.checked_add(args.agents) else {
        bail!("--first + --agents is out of range");
    };
    let addresses = end.div_ceil(args.per_address);
    if addresses > 254 * 256 {
        bail!(
            "{} agents need {addresses} loopback addresses; raise --per-address",
            args.agents
        );
    }
    // A listener and an accepted connection per agent, plus slack for the runtime and stdio.
    platform::raise_nofile(u64::from(args.agents) * 2 + 256)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let metrics = load_shaped_template(&args.element, |element| {
        if let Some(count) = args.cores {
            resize_cores(element, count)?;
        }
        if args.gpus > 0 {
            element["accelerators"] = gpus(args.gpus)?;
        }
        Ok(())
    })?;
    let info = load_shaped_template(&args.info, |info| {
        if args.gpus > 0 {
            info["gpu_count"] = Value::from(args.gpus);
        }
        Ok(())
    })?;

    let mut listeners = Vec::with_capacity(args.agents as usize);
    let mut nodes = HashMap::with_capacity(args.agents as usize);
    let mut urls = Vec::with_capacity(args.agents as usize);
    for i in args.first..args.first + args.agents {
        let a = i / args.per_address;
        // 127.0.0.1 … 127.0.0.254, then 127.0.1.1 …: skip .0 and .255 in the last octet.
        let ip = Ipv4Addr::new(127, 0, (a / 254) as u8, (a % 254 + 1) as u8);
        let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .await
            .with_context(|| format!("binding agent {i} on {ip}"))?;
        let addr = listener.local_addr()?;
        let node = format!("{}-{i:05}", args.node_prefix);
        urls.push(format!("http://{addr}"));
        nodes.insert(addr, node);
        listeners.push(listener);
    }
    let sim = Arc::new(Sim {
        nodes,
        metrics,
        info,
        started,
        served_metrics: AtomicU64::new(0),
        served_health: AtomicU64::new(0),
        served_other: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/api/system/metrics", get(serve_metrics))
        .route("/api/system/info", get(serve_info))
        .route("/api/health", get(serve_health))
        .with_state(Arc::clone(&sim));
    for listener in listeners {
        let service = app
            .clone()
            .into_make_service_with_connect_info::<LocalAddr>();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, service).await {
                eprintln!("coordinator_sim: a fake agent stopped: {e}");
            }
        });
    }
    write_agents_file(&args.agents_file, &urls)?;
    println!(
        "ready: {} agents on {} loopback addresses in {:.2} s, element {} bytes, URLs in {}",
        args.agents,
        (args.first + args.agents).div_ceil(args.per_address) - args.first / args.per_address,
        started.elapsed().as_secs_f64(),
        sim.metrics.size + 2,
        args.agents_file.display()
    );
    std::io::stdout().flush()?;

    let stats = {
        let sim = Arc::clone(&sim);
        let every = args.stats_interval;
        async move {
            if every.is_zero() {
                return std::future::pending().await;
            }
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            let mut last = (0, 0);
            loop {
                ticker.tick().await;
                let now = (
                    sim.served_metrics.load(Ordering::Relaxed),
                    sim.served_health.load(Ordering::Relaxed),
                );
                println!(
                    "served: metrics {} (+{:.0}/s) health {} (+{:.0}/s) other {}",
                    now.0,
                    (now.0 - last.0) as f64 / every.as_secs_f64(),
                    now.1,
                    (now.1 - last.1) as f64 / every.as_secs_f64(),
                    sim.served_other.load(Ordering::Relaxed),
                );
                last = now;
            }
        }
    };
    tokio::select! {
        () = stats => {}
        () = platform::stop_signal() => {}
    }
    let _ = std::fs::remove_file(&args.agents_file);
    Ok(())
}

#[cfg(unix)]
mod platform {
    use anyhow::{bail, Context};
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    /// Raises the open-files limit to at least `needed` (each agent holds a listener and a
    /// connection): the soft limit up to the hard one, and the hard one too where allowed (root).
    pub fn raise_nofile(needed: u64) -> anyhow::Result<()> {
        let limit = getrlimit(Resource::Nofile);
        let hard = limit.maximum.unwrap_or(u64::MAX);
        let wanted = Rlimit {
            current: Some(hard.max(needed)),
            maximum: Some(hard.max(needed)),
        };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            return Ok(());
        }
        if hard < needed {
            bail!(
                "the open-files hard limit is {hard} but {needed} are needed: raise it \
                 (ulimit -Hn as root, or LimitNOFILE= / limits.conf), or start fewer agents"
            );
        }
        let soft = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, soft).context("raising the open-files limit")
    }

    /// SIGINT or SIGTERM.
    pub async fn stop_signal() {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
mod platform {
    /// No per-process descriptor limit to raise here.
    pub fn raise_nofile(_needed: u64) -> anyhow::Result<()> {
        Ok(())
    }

    /// Ctrl-C.
    pub async fn stop_signal() {
        let _ = tokio::signal::ctrl_c().await;
    }
}
