//! The real peers our compatibility claims are measured against, run beside the binary under test:
//! Debian's node_exporter (`prometheus-node-exporter`) and Prometheus (`prometheus`), both
//! installed by the README's test command. Plus a reader of the Prometheus text format, for
//! comparing two expositions family by family.
//!
//! A peer listens on a port picked free just before it starts; if another process took it in
//! between (the peer exits with "address already in use"), a new port is picked. Nothing waits a
//! fixed time: a peer is ready when its readiness URL answers 200.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a peer may take to answer its readiness URL on a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// node_exporter's flags that put upstream 1.5's defaults back where Debian's package changed
/// them at build time: its filesystem collector also skips `/run`, `/mnt` and `/media`, and its
/// netdev collector skips `lo`.
pub const NODE_EXPORTER_UPSTREAM_DEFAULTS: &[&str] = &[
    "--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
    "--collector.netdev.device-exclude=",
];

/// A running peer, killed when dropped.
pub struct Peer {
    child: Child,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Holds its stderr (and whatever files it was given).
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// node_exporter with its default collectors (how people run it), on 127.0.0.1.
    pub fn node_exporter(extra: &[&str]) -> Peer {
        let bin = installed("prometheus-node-exporter", "prometheus-node-exporter");
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        Self::start("node_exporter", "/metrics", tempdir(), move |port, _dir| {
            let mut command = Command::new(&bin);
            command
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(&extra);
            command
        })
    }

    /// Prometheus with `config` (YAML) as its configuration, its TSDB in a temporary directory.
    pub fn prometheus(config: &str) -> Peer {
        let bin = installed("prometheus", "prometheus");
        let dir = tempdir();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        Self::start("prometheus", "/-/ready", dir, move |port, dir| {
            let mut command = Command::new(&bin);
            command
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn");
            command
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// What the peer logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Starts `what` (built by `command` for a port and the peer's directory) until it holds a
    /// port and `ready_path` answers 200.
    fn start(
        what: &str,
        ready_path: &str,
        dir: tempfile::TempDir,
        command: impl Fn(u16, &Path) -> Command,
    ) -> Peer {
        for _ in 0..10 {
            let port = free_port();
            let stderr =
                std::fs::File::create(dir.path().join("stderr")).expect("peer stderr file");
            let mut child = command(port, dir.path())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
            let url = format!("http://127.0.0.1:{port}{ready_path}");
            let until = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log =
                        std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                    if log.contains("address already in use") {
                        break; // another process took the port: pick a new one
                    }
                    panic!("{what} exited ({status}) before it was ready:\n{log}");
                }
                if http_status(&url) == Some(200) {
                    return Peer { child, port, dir };
                }
                if Instant::now() > until {
                    let _ = child.kill();
                    let log =
                        std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                    panic!("{what} not ready at {url} within {READY_TIMEOUT:?}:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("{what}: every port tried was taken");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `binary`, or a failure that says how to install it.
fn installed(binary: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(binary);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{binary} is not installed. Run the test command from the README (./scripts/test.sh), \
         which installs the Debian package `{package}`."
    );
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// The status of a plain HTTP/1.0 GET of `url` (`http://127.0.0.1:PORT/path`), or None when
/// nothing answers. Plain std I/O: peers are started from sync and async tests alike.
fn http_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.x NNN"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// One metric family of a text exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    /// `counter`, `gauge`, `untyped`, `histogram`, `summary`.
    pub kind: String,
    /// Its samples: labels (without `le`/`quantile` folded in: histogram lines keep them) and value.
    pub samples: Vec<(BTreeMap<String, String>, f64)>,
}

impl Family {
    /// The label names its samples use, `without` the given ones.
    pub fn label_names(&self, without: &[&str]) -> BTreeSet<String> {
        self.samples
            .iter()
            .flat_map(|(labels, _)| labels.keys())
            .filter(|k| !without.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// The value of the sample whose labels, `without` the given ones, are `labels`.
    pub fn value(&self, labels: &BTreeMap<String, String>, without: &[&str]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(l, _)| &strip(l, without) == labels)
            .map(|(_, v)| *v)
    }
}

/// `labels` without the given names.
pub fn strip(labels: &BTreeMap<String, String>, without: &[&str]) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !without.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The families of a Prometheus text exposition (0.0.4), by name. Histogram and summary lines
/// (`_bucket`, `_sum`, `_count`) belong to their declared family. Panics on a line it cannot read:
/// the expositions compared here come from well-behaved exporters.
pub fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line: name and type");
            families.entry(name.to_string()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels, value) = parse_sample(line);
        let family = [
            name.as_str(),
            name.strip_suffix("_bucket").unwrap_or(""),
            name.strip_suffix("_sum").unwrap_or(""),
            name.strip_suffix("_count").unwrap_or(""),
        ]
        .into_iter()
        .find(|n| !n.is_empty() && families.get(*n).is_some_and(|f| !f.kind.is_empty()))
        .unwrap_or(name.as_str())
        .to_string();
        families
            .entry(family)
            .or_default()
            .samples
            .push((labels, value));
    }
    families
}

/// `name{k="v",…} value [timestamp]`.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let mut labels = BTreeMap::new();
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("sample line without a value: {line}"),
    };
    let mut rest = rest;
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut key = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '}' => {
                    end = Some(i);
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '\\' => match chars.next().map(|(_, c)| c) {
                                Some('n') => value.push('\n'),
                                Some(other) => value.push(other),
                                None => panic!("{line}"),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unclosed labels: {line}"));
        rest = &body[end + 1..];
    }
    let value = rest
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other
            .parse()
            .unwrap_or_else(|e| panic!("value {other:?} in {line}: {e}")),
    };
    (name.to_string(), labels, value)
}
