//! Starts the real `system_monitor` binary for integration tests: ephemeral ports read back from
//! its portfile, stderr kept for the failure message, the process killed on drop.

// Each test crate uses a different part of this helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_system_monitor");

/// How long the first sample and the servers may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The root of this repository.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>`, the captured host tree of one machine.
pub fn fixture_dir(name: &str) -> PathBuf {
    repo_dir().join("tests/fixtures").join(name)
}

/// The `--path.*` flags that point the collectors at fixture `name`.
pub fn fixture_args(name: &str) -> Vec<String> {
    let dir = fixture_dir(name);
    let path = |sub: &str| dir.join(sub).to_string_lossy().into_owned();
    vec![
        "--path.procfs".into(),
        path("proc"),
        "--path.sysfs".into(),
        path("sys"),
        "--path.rootfs".into(),
        path("root"),
    ]
}

/// A running monitor. Killed when dropped.
pub struct Monitor {
    child: Child,
    /// Port of the REST server (and `/metrics`).
    pub rest_port: u16,
    /// Port of the gRPC server.
    pub grpc_port: u16,
    /// Holds the portfile and the captured stderr.
    dir: tempfile::TempDir,
}

impl Monitor {
    /// Starts the binary with `args` plus `--rest-api-port 0 --portfile <tmp>`, and waits until
    /// the portfile says where it listens.
    pub fn start<S: AsRef<str>>(args: &[S]) -> Monitor {
        Self::start_with_env(args, &[])
    }

    /// [`Monitor::start`] with extra environment variables for the child (e.g. a fake vendor
    /// library's configuration).
    pub fn start_with_env<S: AsRef<str>>(args: &[S], env: &[(&str, &Path)]) -> Monitor {
        let dir = tempfile::tempdir().expect("temporary directory");
        let portfile = dir.path().join("ports");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = Command::new(BIN)
            .args(args.iter().map(AsRef::as_ref))
            .arg("--rest-api-port")
            .arg("0")
            .arg("--portfile")
            .arg(&portfile)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let text = match wait_for_portfile(&portfile, &mut child, START_TIMEOUT) {
            Ok(text) => text,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{why}\nstderr:\n{}", read_stderr(dir.path()));
            }
        };
        let rest_port = port_of(&text, "rest");
        let grpc_port = port_of(&text, "sock");
        Monitor {
            child,
            rest_port,
            grpc_port,
            dir,
        }
    }

    /// Starts the binary on fixture `name` (`--path.*` into `tests/fixtures/<name>`) plus `args`.
    pub fn on_fixture(name: &str, args: &[&str]) -> Monitor {
        let mut all = fixture_args(name);
        all.extend(args.iter().map(|a| a.to_string()));
        Self::start(&all)
    }

    /// `http://127.0.0.1:<rest>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.rest_port, path)
    }

    /// GET `path`, with extra request headers; returns status, content type and body.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpReply {
        let client = reqwest::Client::new();
        let mut request = client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nstderr:\n{}", self.stderr()));
        HttpReply::read(response).await
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> HttpReply {
        self.get_with(path, &[]).await
    }

    /// What the monitor logged so far.
    pub fn stderr(&self) -> String {
        read_stderr(self.dir.path())
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpReply {
    pub async fn read(response: reqwest::Response) -> HttpReply {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.text().await.expect("response body");
        HttpReply {
            status,
            content_type,
            body,
        }
    }

    /// The body as JSON; fails the test with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Waits up to `timeout` for the portfile `child` writes once it listens; an error says why not
/// (the child exited, or the time ran out).
pub fn wait_for_portfile(
    path: &Path,
    child: &mut Child,
    timeout: Duration,
) -> Result<String, String> {
    let until = Instant::now() + timeout;
    loop {
        // Written atomically (temp file + rename): once it exists it is complete.
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text);
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(format!("the monitor exited early: {status}")),
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for the monitor: {e}")),
        }
        if Instant::now() > until {
            return Err(format!("no portfile after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The port after `key=` in a portfile's text.
pub fn port_of(portfile: &str, key: &str) -> u16 {
    portfile
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}=<port> in portfile {portfile:?}"))
}

/// The `stderr` file a started binary writes into `dir`.
pub fn read_stderr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
}
pub mod closed_port;
pub mod cluster;
pub mod fakes;
pub mod history;
pub mod peers;
