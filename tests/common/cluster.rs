//! Cluster test helpers: monitor processes started with explicit ports and addresses (a
//! coordinator restarted on its own port, agents sharing one port on several loopback
//! addresses), misbehaving fake agents (hung, garbage), a tiny DNS server, and polling for a
//! condition with a generous deadline instead of sleeping.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::closed_port::ClosedPort;
use super::{fixture_args, port_of, read_stderr, wait_for_portfile, HttpReply, BIN};

/// How long a cluster condition may take on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(40);

/// A running `system_monitor` (agent or coordinator). Killed when dropped.
pub struct Process {
    child: Option<Child>,
    /// The address it listens on.
    pub host: Ipv4Addr,
    /// Its REST port.
    pub rest_port: u16,
    /// Its gRPC port.
    pub grpc_port: u16,
    /// Holds the portfile and stderr.
    dir: tempfile::TempDir,
    /// Its REST port, kept refusing after [`Process::kill_holding_port`].
    held: Option<ClosedPort>,
}

impl Process {
    /// Starts the binary with `args` (which must choose `--rest-api-port`) plus `--portfile`,
    /// listening on `host`, and waits for the portfile.
    pub fn start(host: Ipv4Addr, args: &[String]) -> Process {
        Self::start_with_env(host, args, &[])
    }

    /// [`Process::start`] with extra environment variables for the child.
    pub fn start_with_env(host: Ipv4Addr, args: &[String], env: &[(&str, &str)]) -> Process {
        let dir = tempfile::tempdir().expect("temporary directory");
        let portfile = dir.path().join("ports");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--portfile")
            .arg(&portfile)
            .env_remove("SYSTEM_MONITOR_AUTH_TOKEN")
            .env_remove("SYSTEM_MONITOR_CLUSTER_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let text = match wait_for_portfile(&portfile, &mut child, DEADLINE) {
            Ok(text) => text,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?}: {why}\nstderr:\n{}", read_stderr(dir.path()));
            }
        };
        Process {
            child: Some(child),
            host,
            rest_port: port_of(&text, "rest"),
            grpc_port: port_of(&text, "sock"),
            dir,
            held: None,
        }
    }

    /// `http://host:rest` — what a coordinator is told.
    pub fn base(&self) -> String {
        format!("http://{}:{}", self.host, self.rest_port)
    }

    /// `http://host:rest<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `http://host:grpc` for a tonic client.
    pub fn grpc_url(&self) -> String {
        format!("http://{}:{}", self.host, self.grpc_port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        read_stderr(self.dir.path())
    }

    /// Its portfile.
    pub fn portfile(&self) -> std::path::PathBuf {
        self.dir.path().join("ports")
    }

    /// Stops it with SIGTERM (a clean exit) and returns its exit status; kills it and fails
    /// after [`DEADLINE`].
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit within {DEADLINE:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it now (SIGKILL: no goodbye to anyone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it now and keeps its REST port refusing until this is dropped: what pollers see
    /// stays a dead agent, not another test's server given the released port.
    pub fn kill_holding_port(&mut self) {
        self.kill();
        self.held = Some(ClosedPort::hold((self.host, self.rest_port).into()));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An agent on fixture `fixture`, node id `node_id`, listening on `host` (REST port 0 unless
/// `extra` sets it).
pub fn agent(fixture: &str, node_id: &str, host: Ipv4Addr, extra: &[&str]) -> Process {
    let mut args = fixture_args(fixture);
    args.extend(
        ["--node-id", node_id, "--bind", &host.to_string()]
            .iter()
            .map(|s| s.to_string()),
    );
    if !extra.contains(&"--rest-api-port") {
        args.extend(["--rest-api-port".to_string(), "0".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Process::start(host, &args)
}

/// A coordinator on 127.0.0.1 (REST port 0 unless `extra` sets it).
pub fn coordinator(extra: &[&str]) -> Process {
    let mut args = vec!["coordinator".to_string()];
    if !extra.contains(&"--rest-api-port") {
        args.extend(["--rest-api-port".to_string(), "0".to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Process::start(Ipv4Addr::LOCALHOST, &args)
}

/// CPU seconds (user + system) process `pid` has used (`/proc/<pid>/stat`, Linux).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux ABI.
    (ticks(11) + ticks(12)) / 100.0
}

/// A TCP port free on every one of `hosts` right now.
pub fn free_port(hosts: &[Ipv4Addr]) -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind((hosts[0], 0)).expect("bind a free port");
        let port = first.local_addr().expect("local address").port();
        let others: Vec<_> = hosts[1..]
            .iter()
            .map(|h| TcpListener::bind((*h, port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on all of {hosts:?}");
}

/// Calls `check` until it returns `Some`, for up to `deadline`; fails the test with `what` and
/// the last value seen otherwise.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() > until {
                    panic!("{what}: not within {deadline:?}; last: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `url`, with a bearer token if given.
pub async fn get(url: &str, token: Option<&str>) -> HttpReply {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    HttpReply::read(response).await
}

/// POST `body` as JSON to `url`, from `source` (a loopback address), with a token if given.
pub async fn post(url: &str, body: Vec<u8>, token: Option<&str>, source: Ipv4Addr) -> HttpReply {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(source))
        .build()
        .expect("client");
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    HttpReply::read(response).await
}

/// A token file in `dir`, readable by its owner only (as the README asks).
pub fn token_file(dir: &Path, token: &str) -> String {
    named_token_file(dir, "token", token)
}

/// A token file `name` in `dir`, readable by its owner only: for a second token beside
/// [`token_file`]'s (the cluster token beside the read token).
pub fn named_token_file(dir: &Path, name: &str, token: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).expect("write token file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600 the token file");
    }
    path.to_string_lossy().into_owned()
}

/// A background thread serving `listener` until dropped.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn spawn(run: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || run(flag));
        Background {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections on `listener` (non-blocking) and hands each to `serve` until stopped.
fn accept_loop(listener: TcpListener, stop: &AtomicBool, mut serve: impl FnMut(TcpStream)) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => serve(stream),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// An "agent" that accepts connections and never answers.
pub struct HungAgent {
    /// Its address.
    pub addr: SocketAddr,
    _server: Background,
}

impl HungAgent {
    pub fn start() -> HungAgent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = Background::spawn(move |stop| {
            let mut held = Vec::new();
            accept_loop(listener, &stop, |stream| held.push(stream));
        });
        HungAgent {
            addr,
            _server: server,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// An "agent" that answers every request with 200 and a body that is not JSON.
pub struct GarbageAgent {
    /// Its address.
    pub addr: SocketAddr,
    _server: Background,
}

impl GarbageAgent {
    pub fn start() -> GarbageAgent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = Background::spawn(move |stop| {
            accept_loop(listener, &stop, |mut stream| {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let body = "<html><body>not an agent</body></html>";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        });
        GarbageAgent {
            addr,
            _server: server,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A DNS server on 127.0.0.1 that answers A queries for one name with a settable list of
/// addresses, AAAA queries for it with no records, and any other name with NXDOMAIN.
pub struct DnsServer {
    /// Its address (for `--dns-server`).
    pub addr: SocketAddr,
    /// The A records it returns.
    pub answers: Arc<Mutex<Vec<Ipv4Addr>>>,
    _server: Background,
}

impl DnsServer {
    pub fn start(name: &str, answers: Vec<Ipv4Addr>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS");
        let addr = socket.local_addr().expect("address");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let answers = Arc::new(Mutex::new(answers));
        let records = Arc::clone(&answers);
        let name = Name::from_ascii(name).expect("DNS name");
        let server = Background::spawn(move |stop| {
            let mut buffer = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let ips = records.lock().expect("records").clone();
                if let Some(reply) = dns_reply(&buffer[..n], &name, &ips) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        DnsServer {
            addr,
            answers,
            _server: server,
        }
    }
}

/// The answer to `query` (none to what is not a one-question query), built with hickory-proto's
/// message types.
fn dns_reply(query: &[u8], name: &Name, ips: &[Ipv4Addr]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let [question] = query.queries.as_slice() else {
        return None;
    };
    let ours = question.name().eq_ignore_root(name);
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.response_code = if ours {
        ResponseCode::NoError
    } else {
        ResponseCode::NXDomain
    };
    reply.add_query(question.clone());
    if ours && question.query_type() == RecordType::A {
        for ip in ips {
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                1,
                RData::A(A(*ip)),
            ));
        }
    }
    reply.to_vec().ok()
}
