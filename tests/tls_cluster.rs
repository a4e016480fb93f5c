//! TLS with the real binary: an agent serving REST, `/metrics` and gRPC (v1 and legacy) over
//! TLS; a coordinator polling https agents against its `--tls-ca` (a foreign certificate is that
//! agent's `tls` error, nobody else's); agents registering with an https coordinator; the
//! system roots read on demand (`SSL_CERT_FILE` stands in for the host's store); and bad files
//! refused at start with exit code 1. Certificates are made at test time with rcgen, their
//! names covering 127.0.0.1–127.0.0.3 as IP addresses.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tonic::metadata::MetadataValue;

use common::cluster::{eventually, named_token_file, token_file, Process, DEADLINE};
use common::{fixture_args, HttpReply, BIN};
use system_monitor::pb::legacy::system_monitor_service_client::SystemMonitorServiceClient;
use system_monitor::pb::legacy::GetMetadataRequest;
use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::{GetInfoRequest, GetMetricsRequest};
use system_monitor::tls::TrustRoots;

const HOST_1: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const HOST_2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const HOST_3: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// How long one request may take before the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(10);

/// A CA with a server certificate (`cert.pem`/`key.pem`) for localhost and 127.0.0.1–3, and an
/// unrelated CA with a certificate for the same names (`rogue-cert.pem`/`rogue-key.pem`), as
/// PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let names: Vec<String> = ["localhost", "127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .map(String::from)
            .into();
        for (prefix, ca_name) in [("", "cluster test CA"), ("rogue-", "unrelated test CA")] {
            let ca = new_ca(ca_name);
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(names.clone()).unwrap();
            assert!(
                params
                    .subject_alt_names
                    .contains(&rcgen::SanType::IpAddress(HOST_1.into())),
                "127.0.0.1 must be an IP SAN: {:?}",
                params.subject_alt_names
            );
            let cert = params.signed_by(&key, &ca).unwrap();
            write(&format!("{prefix}ca.pem"), ca.pem());
            write(&format!("{prefix}cert.pem"), cert.pem());
            write(&format!("{prefix}key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn roots(&self, ca: &str) -> TrustRoots {
        TrustRoots::load(Some(&PathBuf::from(self.path(ca)))).unwrap()
    }

    /// `--tls-cert … --tls-key …` with the pair whose file names start with `prefix`.
    fn serve_args(&self, prefix: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path(&format!("{prefix}cert.pem")),
            "--tls-key".into(),
            self.path(&format!("{prefix}key.pem")),
        ]
    }
}

fn new_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// The environment of every child here: the system store is whatever `ssl_cert_file` says, so
/// the host's own store never decides an outcome.
fn store_env(ssl_cert_file: &str) -> [(&str, &str); 2] {
    [("SSL_CERT_FILE", ssl_cert_file), ("SSL_CERT_DIR", "")]
}

/// An agent on fixture `fixture` listening on `host`, with `extra` flags.
fn agent(fixture: &str, node_id: &str, host: Ipv4Addr, extra: &[String]) -> Process {
    let mut args = fixture_args(fixture);
    for flag in ["--node-id", node_id, "--bind", &host.to_string()] {
        args.push(flag.into());
    }
    args.extend(["--rest-api-port".into(), "0".into()]);
    args.extend(extra.iter().cloned());
    Process::start_with_env(host, &args, &store_env("/nonexistent/store.pem"))
}

/// A coordinator on 127.0.0.1 with `extra` flags and the system store at `ssl_cert_file`.
fn coordinator(extra: &[String], ssl_cert_file: &str) -> Process {
    let mut args = vec!["coordinator".into(), "--rest-api-port".into(), "0".into()];
    args.extend(extra.iter().cloned());
    Process::start_with_env(HOST_1, &args, &store_env(ssl_cert_file))
}

/// `https://host:rest`.
fn https(process: &Process) -> String {
    format!("https://{}:{}", process.host, process.rest_port)
}

/// A client trusting `roots` only.
fn client(roots: &TrustRoots) -> reqwest::Client {
    roots
        .http_client_builder()
        .unwrap()
        .timeout(STEP)
        .build()
        .unwrap()
}

/// GET `url` with `client` (and a token, if given).
async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> HttpReply {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    HttpReply::read(response).await
}

/// The nodes of a coordinator's `/api/cluster/info`, keyed by node id (or URL before the first
/// answer).
async fn info_nodes(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
) -> Result<BTreeMap<String, Value>, String> {
    let reply = get(client, &format!("{base}/api/cluster/info"), token).await;
    if reply.status != 200 {
        return Err(format!("{}: {}", reply.status, reply.body));
    }
    let info = reply.json();
    let nodes = info["nodes"].as_array().ok_or("no nodes array")?;
    Ok(nodes
        .iter()
        .map(|n| (n["name"].as_str().unwrap_or("").to_string(), n.clone()))
        .collect())
}

/// Waits until `name` is listed with `status` and returns its entry.
async fn wait_for_node(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    name: &str,
    status: &str,
) -> Value {
    eventually(&format!("{name} {status}"), DEADLINE, || async {
        let nodes = info_nodes(client, base, token).await?;
        match nodes.get(name) {
            Some(node) if node["status"] == status => Ok(node.clone()),
            _ => Err(format!("{nodes:?}")),
        }
    })
    .await
}

/// The value of the `/metrics` sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A gRPC channel to `host:port` over TLS verified against `roots`.
async fn grpc_channel(
    host: Ipv4Addr,
    port: u16,
    roots: &TrustRoots,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("https://{host}:{port}"))?
        .tls_config(roots.grpc_client_config())?
        .connect_timeout(STEP)
        .timeout(STEP)
        .connect()
        .await
}

#[tokio::test]
async fn an_agent_serves_rest_metrics_and_grpc_over_tls() {
    let pki = Pki::new();
    let agent = agent("server", "tls-agent", HOST_1, &pki.serve_args(""));
    let trusted = client(&pki.roots("ca.pem"));

    let reply = get(
        &trusted,
        &format!("{}/api/system/metrics", https(&agent)),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()[0]["node_id"], "tls-agent");
    let reply = get(&trusted, &format!("{}/metrics", https(&agent)), None).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains(r#"node="tls-agent""#),
        "{}",
        &reply.body[..reply.body.len().min(500)]
    );

    // A client trusting another CA fails the handshake; plain HTTP gets no answer.
    let err = client(&pki.roots("rogue-ca.pem"))
        .get(format!("{}/api/health", https(&agent)))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("InvalidCertificate(UnknownIssuer)"),
        "{err:?}"
    );
    let plain = reqwest::Client::new()
        .get(format!(
            "http://{}:{}/api/health",
            agent.host, agent.rest_port
        ))
        .timeout(STEP)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // gRPC, both services, on the same files; a client with another CA is refused.
    let channel = grpc_channel(agent.host, agent.grpc_port, &pki.roots("ca.pem"))
        .await
        .unwrap();
    let info = MonitorServiceClient::new(channel.clone())
        .get_info(GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "tls-agent");
    let metadata = SystemMonitorServiceClient::new(channel)
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(metadata.record.is_some());
    let refused = grpc_channel(agent.host, agent.grpc_port, &pki.roots("rogue-ca.pem")).await;
    assert!(refused.is_err(), "connected with an untrusted CA");

    // Still serving after the failed handshakes.
    let reply = get(&trusted, &format!("{}/api/health", https(&agent)), None).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn the_coordinator_verifies_agents_against_its_ca() {
    let pki = Pki::new();
    let good = agent("server", "good", HOST_1, &pki.serve_args(""));
    let rogue = agent("captured-vm", "rogue", HOST_2, &pki.serve_args("rogue-"));
    let plain = agent("server", "plain", HOST_3, &[]);
    let agents = [
        https(&good),
        https(&rogue),
        format!("http://{}:{}", plain.host, plain.rest_port),
    ]
    .join(",");
    let coord = coordinator(
        &[
            "--agents".into(),
            agents,
            "--tls-ca".into(),
            pki.path("ca.pem"),
            "--poll-interval".into(),
            "500ms".into(),
            "--node-id".into(),
            "coord".into(),
        ],
        "/nonexistent/store.pem",
    );
    let base = coord.base();
    let http = reqwest::Client::new();

    wait_for_node(&http, &base, None, "good", "online").await;
    wait_for_node(&http, &base, None, "plain", "online").await;
    // The agent whose certificate another CA signed is never heard from, and says why.
    let rogue_node = eventually("rogue's error", DEADLINE, || async {
        let nodes = info_nodes(&http, &base, None).await?;
        let node = nodes.get(&https(&rogue)).ok_or(format!("{nodes:?}"))?;
        match node["error"].as_str() {
            Some(_) => Ok(node.clone()),
            None => Err(node.to_string()),
        }
    })
    .await;
    assert_eq!(rogue_node["status"], "offline", "{rogue_node}");
    assert_eq!(rogue_node["id"], Value::Null, "{rogue_node}");
    let error = rogue_node["error"].as_str().unwrap_or_default();
    assert!(error.contains("invalid peer certificate"), "{error}");

    let text = get(&http, &coord.url("/metrics"), None).await.body;
    let errors = |kind: &str| {
        sample(
            &text,
            &format!(
                r#"system_monitor_coordinator_poll_errors_total{{kind="{kind}",node="coord"}}"#
            ),
        )
    };
    assert!(errors("tls").unwrap_or(0.0) >= 1.0, "{text}");
    assert_eq!(errors("connect"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"system_monitor_coordinator_agents{node="coord",status="online"}"#
        ),
        Some(2.0),
        "{text}"
    );

    // The good agent's data comes through whole.
    let reply = get(&http, &coord.url("/api/system/metrics?node_id=good"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()[0]["node_id"], "good");
}

#[tokio::test]
async fn agents_register_with_a_tls_coordinator_and_are_polled_over_tls() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "tls-secret");
    let cluster_token = named_token_file(dir.path(), "cluster-token", "tls-join");
    let ca = pki.path("ca.pem");
    let mut coordinator_args = pki.serve_args("");
    coordinator_args.extend(
        [
            "--tls-ca",
            &ca,
            "--auth-token-file",
            &token,
            "--cluster-token-file",
            &cluster_token,
            "--poll-interval",
            "500ms",
            "--register-interval",
            "1s",
        ]
        .map(String::from),
    );
    let coord = coordinator(&coordinator_args, "/nonexistent/store.pem");

    let mut agent_args = pki.serve_args("");
    agent_args.extend(
        [
            "--coordinator",
            &https(&coord),
            "--tls-ca",
            &ca,
            "--auth-token-file",
            &token,
            "--cluster-token-file",
            &cluster_token,
            "--register-interval",
            "1s",
        ]
        .map(String::from),
    );
    let worker = agent("server", "tls-worker", HOST_2, &agent_args);

    let trusted = client(&pki.roots("ca.pem"));
    let node = wait_for_node(
        &trusted,
        &https(&coord),
        Some("tls-secret"),
        "tls-worker",
        "online",
    )
    .await;
    // Registered at its default advertised URL, which follows --tls-cert.
    assert_eq!(
        node["url"],
        format!("https://{}:{}", worker.host, worker.rest_port),
        "{node}"
    );

    // The coordinator's gRPC is on TLS too.
    let channel = grpc_channel(coord.host, coord.grpc_port, &pki.roots("ca.pem"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetMetricsRequest {
        node_id: "tls-worker".into(),
    });
    let bearer: MetadataValue<_> = "Bearer tls-secret".parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let nodes = MonitorServiceClient::new(channel)
        .get_metrics(request)
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node_id, "tls-worker");
}

#[tokio::test]
async fn without_a_ca_the_system_roots_are_read_when_an_https_agent_comes() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "tls-secret");
    let cluster_token = named_token_file(dir.path(), "cluster-token", "tls-join");
    let agent_flags = [
        "--auth-token-file",
        &token,
        "--cluster-token-file",
        &cluster_token,
        "--register-interval",
        "1s",
    ]
    .map(String::from);
    let mut coordinator_flags = vec!["--poll-interval".to_string(), "500ms".to_string()];
    coordinator_flags.extend(agent_flags.iter().cloned());
    // Plain-http coordinators without --tls-ca: one whose "system store" holds the cluster CA,
    // one on a host without any.
    let with_store = coordinator(&coordinator_flags, &pki.path("ca.pem"));
    let without_store = coordinator(&coordinator_flags, "/nonexistent/store.pem");

    let register_with = |coord: &Process, node_id: &str, host: Ipv4Addr| {
        let mut args = pki.serve_args("");
        args.extend(["--coordinator".into(), coord.base()]);
        args.extend(agent_flags.iter().cloned());
        agent("server", node_id, host, &args)
    };
    let _a = register_with(&with_store, "via-store", HOST_2);
    let b = register_with(&without_store, "no-store", HOST_3);

    let http = reqwest::Client::new();
    wait_for_node(
        &http,
        &with_store.base(),
        Some("tls-secret"),
        "via-store",
        "online",
    )
    .await;

    // Registered agents are listed by node id from the start.
    let node = eventually("no-store's error", DEADLINE, || async {
        let nodes = info_nodes(&http, &without_store.base(), Some("tls-secret")).await?;
        let node = nodes.get("no-store").ok_or(format!("{nodes:?}"))?;
        match node["error"].as_str() {
            Some(_) => Ok(node.clone()),
            None => Err(node.to_string()),
        }
    })
    .await;
    assert_eq!(node["url"], https(&b), "{node}");
    let error = node["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("no usable system root certificate") && error.contains("--tls-ca"),
        "{error}"
    );
    let text = get(&http, &without_store.url("/metrics"), Some("tls-secret"))
        .await
        .body;
    let tls_errors = sample(
        &text,
        r#"system_monitor_coordinator_poll_errors_total{kind="tls""#,
    );
    assert!(tls_errors.unwrap_or(0.0) >= 1.0, "{text}");
}

/// Runs the binary with `args` (on a fixture host, the system store at a path that does not
/// exist) until it exits; returns its exit code and its stderr.
fn run_to_exit(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(fixture_args("server"))
        .env_remove("SYSTEM_MONITOR_AUTH_TOKEN")
        .env_remove("SYSTEM_MONITOR_CLUSTER_TOKEN")
        .envs(store_env("/nonexistent/store.pem"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unusable_tls_files_stop_the_start_with_one_line_and_exit_1() {
    let pki = Pki::new();
    let missing = pki.path("missing.pem");
    let port = ["--rest-api-port".to_string(), "0".to_string()];
    let cases: Vec<(Vec<String>, String)> = vec![
        // A missing certificate.
        (
            vec![
                "--tls-cert".into(),
                missing.clone(),
                "--tls-key".into(),
                pki.path("key.pem"),
            ],
            missing.clone(),
        ),
        // A key that is not the certificate's.
        (
            vec![
                "--tls-cert".into(),
                pki.path("cert.pem"),
                "--tls-key".into(),
                pki.path("rogue-key.pem"),
            ],
            pki.path("rogue-key.pem"),
        ),
        // A certificate given as the key.
        (
            vec![
                "coordinator".into(),
                "--tls-cert".into(),
                pki.path("cert.pem"),
                "--tls-key".into(),
                pki.path("cert.pem"),
            ],
            pki.path("cert.pem"),
        ),
        // A CA bundle that is not there, for the coordinator.
        (
            vec!["coordinator".into(), "--tls-ca".into(), missing.clone()],
            missing.clone(),
        ),
        // An https coordinator to register with, and a CA bundle that is not there.
        (
            vec![
                "--coordinator".into(),
                "https://127.0.0.1:9".into(),
                "--tls-ca".into(),
                missing.clone(),
            ],
            missing.clone(),
        ),
        // An https agent and no store to verify it with.
        (
            vec![
                "coordinator".into(),
                "--agents".into(),
                "https://127.0.0.1:9".into(),
            ],
            "--tls-ca".into(),
        ),
    ];
    for (mut args, named) in cases {
        args.extend(port.iter().cloned());
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].contains(&named), "{args:?}: {stderr}");
    }

    // Half a pair is a usage error.
    for args in [
        vec!["--tls-cert".to_string(), pki.path("cert.pem")],
        vec![
            "coordinator".into(),
            "--tls-key".into(),
            pki.path("key.pem"),
        ],
    ] {
        let (code, stderr) = run_to_exit(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--tls-"), "{stderr}");
    }
}
