//! Connection abuse against the real binary: an idle-connection flood past a low open-file limit
//! leaves the sampler its files, `/api/health` true and new clients served once the idle ones
//! are reaped; slowloris clients (REST headers, the gRPC preface, a byte at a time) and idle
//! connections (kept-alive REST, HTTP/2 after its preface) are closed within the timeouts.
#![cfg(target_os = "linux")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::cluster::{eventually, DEADLINE};
use common::{fixture_args, port_of, read_stderr, wait_for_portfile, HttpReply, BIN};

/// The open-file limit (soft and hard: the agent cannot raise it) the flood test runs under.
const NOFILE: usize = 256;
/// More idle connections than the limit has descriptors.
const FLOOD: usize = 300;
/// `--http.header-read-timeout` in these tests.
const HEADER_READ: Duration = Duration::from_secs(2);
/// `--http.idle-timeout` in these tests.
const IDLE: Duration = Duration::from_secs(3);
/// How early a close may come against its timeout (timer and scheduling slack).
const SLACK: Duration = Duration::from_millis(300);
/// How long an abusive client keeps going before the test calls the server's timeout missing.
const CUT_WITHIN: Duration = Duration::from_secs(20);
/// Time between a slowloris client's bytes.
const DRIP: Duration = Duration::from_millis(500);

/// The agent on the `server` fixture, with the test timeouts, optionally under `ulimit -n`.
struct Agent {
    child: Child,
    rest_port: u16,
    grpc_port: u16,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start(nofile: Option<usize>) -> Agent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let portfile = dir.path().join("ports");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("{limit}exec \"$0\" \"$@\""))
            .arg(BIN)
            .args(fixture_args("server"))
            .args(["--rest-api-port", "0", "-v"])
            .arg("--http.header-read-timeout")
            .arg(format!("{}ms", HEADER_READ.as_millis()))
            .arg("--http.idle-timeout")
            .arg(format!("{}ms", IDLE.as_millis()))
            .arg("--portfile")
            .arg(&portfile)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let text = match wait_for_portfile(&portfile, &mut child, Duration::from_secs(30)) {
            Ok(text) => text,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{why}\nstderr:\n{}", read_stderr(dir.path()));
            }
        };
        Agent {
            child,
            rest_port: port_of(&text, "rest"),
            grpc_port: port_of(&text, "sock"),
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.rest_port)
    }

    fn stderr(&self) -> String {
        read_stderr(self.dir.path())
    }

    /// The soft open-file limit the agent runs under, from `/proc/<pid>/limits`.
    fn open_file_limit(&self) -> String {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id()))
            .expect("the agent's limits");
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or_default()
            .to_string()
    }

    /// GET `path` on a new connection (so that it waits its turn behind any flood).
    async fn get(&self, path: &str) -> Result<HttpReply, String> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(HttpReply::read(response).await)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Waits until the server closes `stream` (EOF or an error), reading and dropping whatever it
/// sends first; `Err` when it stays open past `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
            Err(_) => return Err(format!("still open after {within:?}")),
        }
    }
}

/// Writes `first`, then `drip` one piece every [`DRIP`], until the server closes the connection;
/// returns how long after connecting it did.
async fn slowloris(port: u16, first: &[u8], drip: &[u8]) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(first).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let mut buf = [0u8; 4096];
    let mut ticker = tokio::time::interval(DRIP);
    let mut pieces = drip.iter().cycle();
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            },
            _ = ticker.tick() => {
                let piece = [*pieces.next().unwrap_or(&b'x')];
                if writer.write_all(&piece).await.is_err() {
                    return started.elapsed();
                }
            }
        }
        assert!(
            started.elapsed() < CUT_WITHIN,
            "a slowloris client on port {port} is still served after {CUT_WITHIN:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_past_the_open_file_limit_leaves_the_sampler_its_files() {
    let agent = Agent::start(Some(NOFILE));
    assert_eq!(agent.open_file_limit(), NOFILE.to_string());

    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        // Past the cap the kernel completes the handshake and queues the connection: connecting
        // succeeds either way, as it does for an attacker.
        flood.push(
            TcpStream::connect(("127.0.0.1", agent.rest_port))
                .await
                .unwrap(),
        );
    }
    let flooded_at = unix_ms_now();

    // A new client waits its turn behind the flood, then gets a sample taken during it, whole.
    let metrics = eventually("metrics served after the flood", DEADLINE, || async {
        let reply = agent.get("/api/system/metrics").await?;
        let element = reply
            .json()
            .get(0)
            .cloned()
            .ok_or_else(|| reply.body.clone())?;
        let timestamp = element["timestamp"].as_i64().unwrap_or(0);
        if timestamp <= flooded_at {
            return Err(format!("sample from before the flood: {timestamp}"));
        }
        Ok(element)
    })
    .await;
    assert!(
        metrics["memory"]["total"].as_u64().unwrap_or(0) > 0,
        "memory.total: {}",
        metrics["memory"]
    );
    let cores = metrics["cpu"]["cores"].as_array().map_or(0, Vec::len);
    assert!(cores > 0, "no cores: {}", metrics["cpu"]);
    let health = agent.get("/api/health").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json()["status"], "healthy", "{}", health.body);

    // Every flood connection is closed by the server: none sent a request.
    let mut open = 0;
    for stream in &mut flood {
        if closed_by_server(stream, DEADLINE).await.is_err() {
            open += 1;
        }
    }
    assert_eq!(open, 0, "flood connections still open");
    let stderr = agent.stderr();
    assert!(
        !stderr.contains("Too many open files"),
        "the agent ran out of descriptors:\n{stderr}"
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_at_the_header_read_timeout() {
    let agent = Agent::start(None);
    let took = slowloris(
        agent.rest_port,
        b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n",
        b"X-Slow: 1\r\n",
    )
    .await;
    assert!(took >= HEADER_READ - SLACK, "cut too early: {took:?}");
}

#[tokio::test]
async fn a_slow_grpc_preface_is_cut_at_the_header_read_timeout() {
    let agent = Agent::start(None);
    let took = slowloris(agent.grpc_port, b"PRI", b" * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(took >= HEADER_READ - SLACK, "cut too early: {took:?}");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let agent = Agent::start(None);

    // REST, kept alive after an answer: closed when no next request comes in time.
    let mut rest = TcpStream::connect(("127.0.0.1", agent.rest_port))
        .await
        .unwrap();
    rest.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = rest.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
    let answered = Instant::now();
    closed_by_server(&mut rest, CUT_WITHIN).await.unwrap();
    assert!(answered.elapsed() >= HEADER_READ - SLACK);

    // gRPC after the HTTP/2 preface and an empty SETTINGS frame: closed at the idle timeout.
    let mut grpc = TcpStream::connect(("127.0.0.1", agent.grpc_port))
        .await
        .unwrap();
    grpc.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let quiet_from = Instant::now();
    closed_by_server(&mut grpc, CUT_WITHIN).await.unwrap();
    assert!(
        quiet_from.elapsed() >= IDLE - SLACK,
        "{:?}",
        quiet_from.elapsed()
    );

    // The server is none the worse.
    let health = agent.get("/api/health").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.body);
}
