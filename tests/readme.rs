//! The README's quick start and cluster example, run as written: the shell blocks marked for this
//! file are read from README.md and run with `sh`, with `target/release/system_monitor` standing
//! for the binary under test and the ports and the portfile given free ones (a test must not take
//! 8080 or 9000 from whatever else runs here). The `cargo` lines are the build this test is part
//! of, so they are checked, not run.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::{eventually, free_port, get, DEADLINE};
use common::{port_of, wait_for_portfile, BIN};
use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::GetMetricsRequest;

const MARKER: &str = "<!-- tests/readme.rs runs this block as written";
const RELEASE_BIN: &str = "target/release/system_monitor";

/// The shell blocks of README.md that follow the marker, in order.
fn marked_blocks() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(common::repo_dir().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(MARKER) {
            continue;
        }
        assert_eq!(lines.next(), Some("```sh"), "a marked block is a sh block");
        blocks.push(
            lines
                .by_ref()
                .take_while(|l| *l != "```")
                .map(str::to_string)
                .collect(),
        );
    }
    blocks
}

/// The README's commands, kept alive for the test and stopped at its end.
struct Commands(Vec<Child>);

impl Commands {
    /// Runs each line of `block` (a trailing `&` runs in the background, as in a shell; the others
    /// run in the background too, since they are servers) after `substitutions`, and checks the
    /// `cargo` lines instead of running them.
    fn start(block: &[String], substitutions: &[(&str, String)]) -> Commands {
        let mut children = Vec::new();
        for line in block.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            if line.starts_with("cargo ") {
                assert!(
                    [
                        "cargo build --release --locked",
                        "cargo install --locked --path ."
                    ]
                    .contains(&line),
                    "an unexpected build line: {line}"
                );
                continue;
            }
            assert!(line.contains(RELEASE_BIN), "runs the built binary: {line}");
            let mut command = line.trim_end_matches('&').trim().replace(RELEASE_BIN, BIN);
            for (from, to) in substitutions {
                command = command.replace(from, to);
            }
            let child = Command::new("sh")
                .arg("-c")
                // `env` takes the line's leading `NAME=value` words, as the shell would.
                .arg(format!("exec env {command}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            children.push(child);
        }
        Commands(children)
    }
}

impl Drop for Commands {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn the_quick_start_serves_rest_and_grpc_and_writes_the_portfile_the_grpc_example_reads() {
    let blocks = marked_blocks();
    let quick_start = &blocks[0];
    let readme = std::fs::read_to_string(common::repo_dir().join("README.md")).unwrap();
    let portfile_path = "/tmp/system_monitor.ports";
    assert!(
        quick_start.iter().any(|l| l.contains(portfile_path)),
        "{quick_start:?}"
    );
    assert!(
        readme
            .lines()
            .any(|l| l.contains("sed -n 's/^sock=//p'") && l.contains(portfile_path)),
        "the grpcurl example reads the quick start's portfile"
    );

    let dir = tempfile::tempdir().unwrap();
    let portfile = dir.path().join("ports");
    let rest = free_port(&[std::net::Ipv4Addr::LOCALHOST]);
    let mut commands = Commands::start(
        quick_start,
        &[
            (portfile_path, portfile.display().to_string()),
            // The quick start runs on the default port; the test gives it a free one.
            ("--portfile", format!("--rest-api-port {rest} --portfile")),
        ],
    );
    let text = wait_for_portfile(&portfile, &mut commands.0[0], Duration::from_secs(30)).unwrap();
    assert_eq!(port_of(&text, "rest"), rest);

    let metrics = get(&format!("http://127.0.0.1:{rest}/api/system/metrics"), None).await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(metrics.json()[0]["memory"]["total"].as_u64() > Some(0));

    let grpc = format!("http://127.0.0.1:{}", port_of(&text, "sock"));
    let mut client = MonitorServiceClient::connect(grpc).await.unwrap();
    let answer = client
        .get_metrics(GetMetricsRequest::default())
        .await
        .unwrap();
    assert_eq!(answer.into_inner().nodes.len(), 1);
}

#[tokio::test]
async fn the_cluster_example_registers_its_agent_beside_the_quick_start() {
    let blocks = marked_blocks();
    let cluster = &blocks[1];
    let text = cluster.join("\n");
    for port in ["9000", "8081"] {
        assert!(text.contains(port), "{text}");
    }
    assert!(
        !text.contains("8080"),
        "the cluster example leaves the quick start's port alone: {text}"
    );

    let localhost = [std::net::Ipv4Addr::LOCALHOST];
    let coordinator = free_port(&localhost);
    let agent = free_port(&localhost);
    let _commands = Commands::start(
        cluster,
        &[
            ("9000", coordinator.to_string()),
            ("8081", agent.to_string()),
        ],
    );
    let info = format!("http://127.0.0.1:{coordinator}/api/cluster/info");
    eventually("the agent online at the coordinator", DEADLINE, || async {
        // The coordinator may not listen yet: a refused connection is a retry, not a failure.
        // No token: the cluster token is for registering; reads are open without a read token.
        let reply = reqwest::Client::new()
            .get(&info)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body = reply.text().await.map_err(|e| e.to_string())?;
        let nodes =
            serde_json::from_str::<serde_json::Value>(&body).map_err(|e| format!("{e}: {body}"))?;
        let online = nodes["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.iter().any(|n| n["status"] == "online"));
        online.then_some(()).ok_or(body)
    })
    .await;
}
