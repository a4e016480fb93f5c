//! The binary's process contract: flags, exit codes, portfile, signals, parent death, `snapshot`.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_system_monitor");

/// Waits for `child` to exit, up to `limit`; kills it and fails the test otherwise.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the portfile exists and returns its text.
fn wait_portfile(path: &Path, child: &mut Child) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("monitor exited early: {status}");
        }
        assert!(Instant::now() < until, "no portfile after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn port_of(portfile: &str, key: &str) -> u16 {
    portfile
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {portfile:?}"))
}

fn start(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A monitor started as TrackLab's launcher starts it (`--portfile`, REST on a free port, plus
/// `extra`), once its portfile is written. The directory holds the portfile.
fn start_child(extra: &[&str]) -> (tempfile::TempDir, Child, String) {
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("ports");
    let mut args = vec![
        "--portfile",
        portfile.to_str().unwrap(),
        "--rest-api-port",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut child = start(&args);
    let text = wait_portfile(&portfile, &mut child);
    (dir, child, text)
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for args in [
        &["--no-such-flag"][..],
        &["--rest-api-port", "eighty"],
        &["--interval", "0s"],
        &["--node-id", "bad id"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn port_in_use_is_one_line_naming_the_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN)
        .args(["--rest-api-port", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(2), "not a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&port) && lines[0].contains("in use"),
        "{stderr}"
    );
}

#[test]
fn portfile_names_both_listening_ports_and_sigterm_exits_cleanly() {
    let (_dir, mut child, text) = start_child(&[]);
    assert!(text.starts_with("sock="), "first line is sock=: {text:?}");
    assert_eq!(text.lines().count(), 2, "{text:?}");
    for key in ["sock", "rest"] {
        let port = port_of(&text, key);
        std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("{key} port {port} not listening: {e}"));
    }
    send_signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panic"), "{stderr}");
}

#[test]
fn exits_when_parent_pid_dies() {
    let mut parent = Command::new("sleep").arg("1").spawn().unwrap();
    let parent_pid = parent.id().to_string();
    let (_dir, mut child, _) = start_child(&["--parent-pid", &parent_pid]);
    parent.wait().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn snapshot_prints_what_the_metrics_endpoint_serves() {
    let run = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["snapshot", "--interval", "200ms", "--node-id", "snap-1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Default: the `/api/system/metrics` array.
    let array: serde_json::Value = serde_json::from_slice(&run(&[])).unwrap();
    let element = &array.as_array().unwrap()[0];
    assert_eq!(array.as_array().unwrap().len(), 1);
    assert_eq!(element["node_id"], "snap-1");
    assert!(element["cpu"]["overall"].is_number(), "{element}");
    assert!(element["memory"]["total"].as_u64().unwrap() > 0);
    assert!(element["accelerators"].as_array().unwrap().is_empty());
    // The internal model.
    let snap: serde_json::Value = serde_json::from_slice(&run(&["--format", "model"])).unwrap();
    assert_eq!(snap["node_id"], "snap-1");
    assert_eq!(snap["sequence"], 2);
    assert!(snap["interval_seconds"].as_f64().unwrap() >= 0.2);
    assert!(snap["collectors"].as_array().unwrap().len() >= 5);
    assert!(snap["accelerators"].as_array().unwrap().is_empty());
    // Prometheus text.
    let text = String::from_utf8(run(&["--format", "prometheus"])).unwrap();
    assert!(
        text.contains("# TYPE node_cpu_seconds_total counter"),
        "{text}"
    );
    assert!(text.contains("node=\"snap-1\""), "{text}");
}

#[test]
fn sigint_exits_cleanly() {
    let (_dir, mut child, _) = start_child(&[]);
    send_signal(&child, "-INT");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

/// Reads `stderr` line by line on a thread; the receiver gets each line as it comes.
fn stderr_lines(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

/// The lines from `lines` up to and including the first containing `last`, within 30 s.
fn lines_until(lines: &std::sync::mpsc::Receiver<String>, last: &str) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(last);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {last:?} ({e}); so far:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn a_plain_start_says_where_it_serves_and_what_it_found_without_colour_on_a_pipe() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/server");
    let path = |sub: &str| fixture.join(sub).to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("ports");
    let mut child = Command::new(BIN)
        .args(["--node-id", "first-run", "--rest-api-port", "0"])
        .args(["--path.procfs", &path("proc"), "--path.sysfs", &path("sys")])
        .args(["--path.rootfs", &path("root")])
        .arg("--portfile")
        .arg(&portfile)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(child.stderr.take().unwrap());
    let text = wait_portfile(&portfile, &mut child);
    let (rest, grpc) = (port_of(&text, "rest"), port_of(&text, "sock"));
    let seen = lines_until(&lines, "gRPC at ");
    let _ = child.kill();
    let _ = child.wait();

    let all = seen.join("\n");
    let messages: Vec<&str> = seen
        .iter()
        .filter(|l| l.contains(" INFO "))
        .filter_map(|l| l.split_once(": ").map(|(_, message)| message))
        .collect();
    assert_eq!(
        messages,
        [
            format!(
                "system_monitor {} serving node first-run: found 8 CPUs, 251.6 GiB memory, \
                 no accelerators",
                env!("CARGO_PKG_VERSION")
            ),
            format!("REST API at http://127.0.0.1:{rest}/api/system/metrics (health: /api/health)"),
            format!("Prometheus metrics at http://127.0.0.1:{rest}/metrics"),
            format!("gRPC at 127.0.0.1:{grpc} (plaintext)"),
        ],
        "{all}"
    );
    assert!(!all.contains('\u{1b}'), "ANSI codes on a pipe:\n{all}");
    assert!(!all.contains("Some("), "{all}");
}

/// GET `path` from `127.0.0.1:port` with `Host: host` (and `extra` header lines), over raw TCP;
/// the whole answer.
fn get_raw(port: u16, path: &str, host: &str, extra: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// SIGTERM, SIGINT and the parent's death are clean exits: each removes the portfile.
#[test]
fn the_portfile_is_removed_on_a_clean_exit() {
    for signal in ["-TERM", "-INT"] {
        let (dir, mut child, _) = start_child(&[]);
        send_signal(&child, signal);
        assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
        assert!(!dir.path().join("ports").exists(), "{signal}");
    }
    let mut parent = Command::new("sleep").arg("1").spawn().unwrap();
    let parent_pid = parent.id().to_string();
    let (dir, mut child, _) = start_child(&["--parent-pid", &parent_pid]);
    parent.wait().unwrap();
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert!(!dir.path().join("ports").exists(), "parent gone");

    // A file another monitor wrote over ours since is not ours to remove.
    let (dir, mut child, _) = start_child(&[]);
    let portfile = dir.path().join("ports");
    std::fs::write(&portfile, "sock=1\nrest=2\n").unwrap();
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert_eq!(
        std::fs::read_to_string(&portfile).unwrap(),
        "sock=1\nrest=2\n"
    );

    // The coordinator too.
    let (dir, mut child, _) = start_child(&["coordinator"]);
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert!(!dir.path().join("ports").exists(), "coordinator");
}

#[cfg(unix)]
#[test]
fn token_files_others_may_write_are_refused_and_readable_ones_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let path = token.to_str().unwrap();

    for mode in [0o666, 0o620] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).unwrap();
        for mode_args in [&[][..], &["coordinator"]] {
            let out = Command::new(BIN)
                .args(mode_args)
                .args(["--rest-api-port", "0", "--auth-token-file", path])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{mode:o} {mode_args:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<_> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{stderr}");
            assert!(lines[0].contains(path), "{stderr}");
            assert!(lines[0].contains("chmod 600"), "{stderr}");
        }
    }

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_dir, mut child, _) = start_child(&["--auth-token-file", path]);
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(path) && stderr.contains("readable by other users"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("chmod 600 {path}")), "{stderr}");

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_dir, mut child, _) = start_child(&["--auth-token-file", path]);
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("readable by other users"), "{stderr}");
}

/// The Host check and CORS of the real binary, as the flags set them.
#[test]
fn hosts_and_origins_follow_the_flags() {
    let (_dir, mut child, text) = start_child(&[]);
    let port = port_of(&text, "rest");
    let ok = get_raw(port, "/api/health", &format!("localhost:{port}"), "");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let refused = get_raw(port, "/api/health", "rebound.example", "");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains(r#""host":"rebound.example""#), "{refused}");
    let origin = "Origin: http://localhost:3000\r\n";
    let no_cors = get_raw(port, "/api/health", "127.0.0.1", origin);
    assert!(no_cors.starts_with("HTTP/1.1 200"), "{no_cors}");
    assert!(
        !no_cors
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{no_cors}"
    );
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());

    let (_dir, mut child, text) = start_child(&[
        "--allowed-host",
        "monitor.lab",
        "--cors-allow-origin",
        "http://localhost:3000",
    ]);
    let port = port_of(&text, "rest");
    let ok = get_raw(port, "/api/system/info", "MONITOR.lab:443", origin);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("access-control-allow-origin: http://localhost:3000"),
        "{ok}"
    );
    let refused = get_raw(port, "/api/health", "other.lab", "");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());

    // A cluster agent on every address answers every Host unless --allowed-host is given.
    let (_dir, mut child, text) = start_child(&["--bind", "0.0.0.0"]);
    let port = port_of(&text, "rest");
    let ok = get_raw(port, "/api/health", "agent.anywhere", "");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    let (_dir, mut child, text) = start_child(&["--bind", "0.0.0.0", "--allowed-host", "n1"]);
    let port = port_of(&text, "rest");
    assert!(get_raw(port, "/api/health", "n1:1", "").starts_with("HTTP/1.1 200"));
    assert!(get_raw(port, "/api/health", "10.9.8.7", "").starts_with("HTTP/1.1 200"));
    assert!(get_raw(port, "/api/health", "n2", "").starts_with("HTTP/1.1 403"));
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[test]
fn registration_urls_with_port_0_are_refused_at_start() {
    for args in [
        &["--coordinator", "http://127.0.0.1:0"][..],
        &[
            "--coordinator",
            "http://127.0.0.1:9000",
            "--advertise-url",
            "http://127.0.0.1:0",
        ],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("port 0"), "{args:?}: {stderr}");
    }
}

/// A `GET` over raw TCP, split into its status code and its JSON body.
fn get_json(port: u16, path: &str) -> (u16, serde_json::Value) {
    let answer = get_raw(port, path, "127.0.0.1", "");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    (status, json)
}

/// TrackLab's own integration test, as it starts the monitor (`--portfile F --rest-api-port
/// PORT --verbose`, no `--node-id`): `?node_id=test-node` is 200 with the sample under that id,
/// on `/api/system/metrics` and `/api/system/info`. Started with `--node-id`, the same question
/// is a 404 JSON error; malformed ids are 400 either way.
#[test]
fn without_node_id_any_node_id_names_the_monitor_and_with_it_only_its_own() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("ports");
    let portfile = portfile.to_str().unwrap();
    let mut child = start(&[
        "--portfile",
        portfile,
        "--rest-api-port",
        &port,
        "--verbose",
    ]);
    let text = wait_portfile(Path::new(portfile), &mut child);
    let rest = port_of(&text, "rest");
    assert_eq!(rest.to_string(), port);
    let metrics = get_json(rest, "/api/system/metrics?node_id=test-node");
    let info = get_json(rest, "/api/system/info?node_id=test-node");
    let bad = get_json(rest, "/api/system/metrics?node_id=a%2Fb");
    let (_, own) = get_json(rest, "/api/system/metrics");
    let grpc = v1_node_ids(port_of(&text, "sock"), "test-node");
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());

    assert_eq!(metrics.0, 200, "{}", metrics.1);
    assert_eq!(metrics.1[0]["node_id"], "test-node", "{}", metrics.1);
    assert_eq!(metrics.1.as_array().map(Vec::len), Some(1));
    assert_ne!(
        own[0]["node_id"], "test-node",
        "its own id is still the hostname"
    );
    assert_eq!(info.0, 200, "{}", info.1);
    assert_eq!(info.1["node_id"], "test-node");
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert_eq!(bad.1["error"], "invalid node_id");
    // gRPC v1, where node_id is a parameter: the same rule.
    assert_eq!(grpc, Ok(["test-node"; 3].map(String::from).to_vec()));

    let (_dir, mut child, text) = start_child(&["--node-id", "worker-01"]);
    let rest = port_of(&text, "rest");
    let unknown = get_json(rest, "/api/system/metrics?node_id=test-node");
    let unknown_info = get_json(rest, "/api/system/info?node_id=test-node");
    let own = get_json(rest, "/api/system/metrics?node_id=worker-01");
    let grpc = v1_node_ids(port_of(&text, "sock"), "test-node");
    send_signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    for (status, body) in [unknown, unknown_info] {
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"error": "unknown node_id", "node_id": "test-node"})
        );
    }
    assert_eq!(own.0, 200);
    assert_eq!(own.1[0]["node_id"], "worker-01");
    assert_eq!(grpc, Err(tonic::Code::NotFound));
}

/// The node ids gRPC v1 answers `node_id` with, from `GetMetrics`, `GetInfo` and the first
/// `WatchMetrics` message, or the first call's error code.
fn v1_node_ids(port: u16, node_id: &str) -> Result<Vec<String>, tonic::Code> {
    use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
    use system_monitor::pb::v1::{GetInfoRequest, GetMetricsRequest, WatchMetricsRequest};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = MonitorServiceClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let node_id = node_id.to_string();
        let metrics = client
            .get_metrics(GetMetricsRequest {
                node_id: node_id.clone(),
            })
            .await
            .map_err(|e| e.code())?
            .into_inner();
        let info = client
            .get_info(GetInfoRequest {
                node_id: node_id.clone(),
            })
            .await
            .map_err(|e| e.code())?
            .into_inner();
        let mut watch = client
            .watch_metrics(WatchMetricsRequest { node_id })
            .await
            .map_err(|e| e.code())?
            .into_inner();
        let first = watch.message().await.map_err(|e| e.code())?;
        let mut ids: Vec<String> = metrics.nodes.into_iter().map(|n| n.node_id).collect();
        ids.push(info.node_id);
        ids.extend(first.map(|n| n.node_id));
        Ok(ids)
    })
}

/// Registration needs the cluster token: an agent given `--coordinator` without one, and a
/// coordinator whose read and cluster tokens are one secret, stop at start with one line
/// saying so (exit 1).
#[test]
fn registration_without_the_cluster_token_or_with_the_read_token_is_refused_at_start() {
    let out = Command::new(BIN)
        .args([
            "--rest-api-port",
            "0",
            "--coordinator",
            "http://127.0.0.1:9",
        ])
        .env_remove("SYSTEM_MONITOR_CLUSTER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--cluster-token-file")
            && lines[0].contains("SYSTEM_MONITOR_CLUSTER_TOKEN"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "one-secret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = token.to_str().unwrap();
    for cluster in [&["--cluster-token-file", path][..], &[]] {
        let out = Command::new(BIN)
            .args([
                "coordinator",
                "--rest-api-port",
                "0",
                "--auth-token-file",
                path,
            ])
            .args(cluster)
            .env("SYSTEM_MONITOR_CLUSTER_TOKEN", "one-secret")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{cluster:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains("the same secret"), "{stderr}");
    }
}

/// The binary links no libm.so (src/main.rs, `math`): the four libm functions it calls are its
/// own, and a call to another one would map glibc's whole libm into every agent again.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_does_not_link_libm() {
    let out = Command::new("readelf")
        .args(["--dynamic", "--wide", BIN])
        .output()
        .expect("readelf (binutils, which the linker comes with) runs");
    assert!(out.status.success(), "readelf failed: {out:?}");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(needed.iter().any(|l| l.contains("libc.so")), "{dynamic}");
    assert!(
        !needed.iter().any(|l| l.contains("libm.so")),
        "libm.so is linked: a libm function other than pow, exp, log2 and log10 is called; \
         define it in src/main.rs `math` too: {needed:?}"
    );
}
