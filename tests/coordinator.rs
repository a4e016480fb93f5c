//! Coordinator mode end to end: real agents (the binary, on fixture trees) and a real
//! coordinator on loopback. Each discovery mode (static list and file, registration, DNS), each
//! fault (dead, hung, garbage agent; killed agent; restarted coordinator), the read token on
//! REST and gRPC, the cluster token for registration (and the two not interchangeable),
//! registration validation, and the exact JSON shapes of the cluster API.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tonic::metadata::MetadataValue;

use common::closed_port::ClosedPort;
use common::cluster::{
    agent, coordinator, eventually, free_port, get, named_token_file, post, token_file, DnsServer,
    GarbageAgent, HungAgent, Process, DEADLINE,
};
use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::{GetInfoRequest, GetMetricsRequest, WatchMetricsRequest};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The coordinator's `/api/system/metrics` array, keyed by node id.
async fn nodes(
    coordinator: &Process,
    token: Option<&str>,
) -> Result<BTreeMap<String, Value>, String> {
    let reply = get(&coordinator.url("/api/system/metrics"), token).await;
    if reply.status != 200 {
        return Err(format!("{}: {}", reply.status, reply.body));
    }
    let array = reply.json();
    let array = array.as_array().ok_or("not an array")?;
    Ok(array
        .iter()
        .map(|e| (e["node_id"].as_str().unwrap_or("").to_string(), e.clone()))
        .collect())
}

/// Waits until the coordinator reports exactly `ids` and they are all `online`.
async fn all_online(
    coordinator: &Process,
    ids: &[&str],
    token: Option<&str>,
) -> BTreeMap<String, Value> {
    let want: BTreeSet<&str> = ids.iter().copied().collect();
    eventually(&format!("{ids:?} online"), DEADLINE, || async {
        let nodes = nodes(coordinator, token).await?;
        let online: BTreeSet<&str> = nodes
            .iter()
            .filter(|(_, e)| e["status"] == "online")
            .map(|(id, _)| id.as_str())
            .collect();
        if online == want && nodes.len() == want.len() {
            Ok(nodes)
        } else {
            Err(format!(
                "{:?}",
                nodes
                    .iter()
                    .map(|(id, e)| (id, e["status"].clone()))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await
}

/// The coordinator's `/api/cluster/info`.
async fn cluster_info(coordinator: &Process, token: Option<&str>) -> Value {
    let reply = get(&coordinator.url("/api/cluster/info"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The nodes of `/api/cluster/info`, keyed by id (or URL before the first answer).
fn info_nodes(info: &Value) -> BTreeMap<String, Value> {
    info["nodes"]
        .as_array()
        .expect("nodes array")
        .iter()
        .map(|n| (n["name"].as_str().unwrap_or("").to_string(), n.clone()))
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// The agent's own single element.
async fn own_element(agent: &Process, token: Option<&str>) -> Value {
    let reply = get(&agent.url("/api/system/metrics"), token).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0].clone()
}

/// The value of a `/metrics` sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn static_agents_are_served_in_the_agent_shape() {
    let a1 = agent("server", "static-1", LOCAL, &[]);
    let a2 = agent("captured-vm", "static-2", LOCAL, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents");
    std::fs::write(
        &file,
        format!("# the second agent\n{}/  # trailing slash\n", a2.base()),
    )
    .unwrap();
    let coord = coordinator(&[
        "--agents",
        &a1.base(),
        "--agents-file",
        file.to_str().unwrap(),
        "--poll-interval",
        "500ms",
        "--node-id",
        "coord",
    ]);
    let nodes = all_online(&coord, &["static-1", "static-2"], None).await;

    // Each element is the agent's own element plus status and dataAgeSeconds.
    for (id, agent) in [("static-1", &a1), ("static-2", &a2)] {
        let element = &nodes[id];
        let own = own_element(agent, None).await;
        let mut expected = keys(&own);
        expected.extend(["status".to_string(), "dataAgeSeconds".to_string()]);
        assert_eq!(keys(element), expected, "{id}");
        assert_eq!(keys(&element["cpu"]), keys(&own["cpu"]));
        assert_eq!(
            element["cpu"]["cores"].as_array().unwrap().len(),
            own["cpu"]["cores"].as_array().unwrap().len()
        );
        assert_eq!(element["memory"]["total"], own["memory"]["total"]);
        assert_eq!(element["hostname"], own["hostname"]);
        let age = element["dataAgeSeconds"]
            .as_f64()
            .expect("dataAgeSeconds is a number");
        assert!((0.0..3.0).contains(&age), "{age}");
    }

    // ?node_id= one, several, unknown, malformed.
    let one = get(&coord.url("/api/system/metrics?node_id=static-1"), None).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["node_id"], "static-1");
    let two = get(
        &coord.url("/api/system/metrics?node_id=static-2,static-1"),
        None,
    )
    .await
    .json();
    let ids: Vec<&str> = two
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["static-2", "static-1"]);
    let unknown = get(
        &coord.url("/api/system/metrics?node_id=static-1,nope"),
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        json!({"error": "unknown node_id", "node_id": "nope"})
    );
    let bad = get(&coord.url("/api/system/metrics?node_id=a/b"), None).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid node_id");

    // /api/cluster/info: exact keys, and totals that add up the agents' own figures.
    let info = cluster_info(&coord, None).await;
    assert_eq!(
        keys(&info),
        ["nodes", "totalResources", "usedResources"]
            .map(String::from)
            .into()
    );
    for resources in ["totalResources", "usedResources"] {
        assert_eq!(
            keys(&info[resources]),
            ["accelerators", "cpu", "memory"].map(String::from).into()
        );
    }
    let listed = info_nodes(&info);
    assert_eq!(listed.len(), 2);
    let mut total_cpus = 0;
    let mut total_memory = 0;
    let mut used_memory = 0;
    let mut accelerators = 0;
    for (id, agent) in [("static-1", &a1), ("static-2", &a2)] {
        let node = &listed[id];
        assert_eq!(
            keys(node),
            [
                "id",
                "name",
                "hostname",
                "ip",
                "role",
                "status",
                "lastHeartbeat",
                "url",
                "dataAgeSeconds",
                "labels",
                "version",
                "error"
            ]
            .map(String::from)
            .into()
        );
        let own = own_element(agent, None).await;
        assert_eq!(node["id"], id);
        assert_eq!(node["hostname"], own["hostname"]);
        assert_eq!(node["ip"], "127.0.0.1");
        assert_eq!(node["role"], "worker");
        assert_eq!(node["status"], "online");
        assert_eq!(node["url"], agent.base());
        let heartbeat = node["lastHeartbeat"]
            .as_i64()
            .expect("lastHeartbeat is unix ms");
        assert!((unix_ms_now() - heartbeat).abs() < 60_000, "{heartbeat}");
        total_cpus += own["cpu"]["cores"].as_array().unwrap().len() as u64;
        total_memory += own["memory"]["total"].as_u64().unwrap();
        used_memory += own["memory"]["used"].as_u64().unwrap();
        accelerators += own["accelerators"].as_array().unwrap().len() as u64;
    }
    assert_eq!(
        info["totalResources"]["cpu"].as_f64(),
        Some(total_cpus as f64)
    );
    assert!(total_cpus > 0);
    assert_eq!(
        info["totalResources"]["memory"].as_u64(),
        Some(total_memory)
    );
    assert_eq!(
        info["totalResources"]["accelerators"].as_u64(),
        Some(accelerators)
    );
    // Fixture trees are captures: their memory figures do not move between samples.
    assert_eq!(info["usedResources"]["memory"].as_u64(), Some(used_memory));
    let used_cpu = info["usedResources"]["cpu"].as_f64().unwrap();
    assert!((0.0..=total_cpus as f64).contains(&used_cpu), "{used_cpu}");

    // Info is the agent's own, through the coordinator.
    let via = get(&coord.url("/api/system/info?node_id=static-1"), None).await;
    assert_eq!(via.status, 200, "{}", via.body);
    let own = get(&a1.url("/api/system/info"), None).await.json();
    assert_eq!(via.json(), own);
    let missing = get(&coord.url("/api/system/info"), None).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"], "node_id required");
    assert_eq!(
        get(&coord.url("/api/system/info?node_id=nope"), None)
            .await
            .status,
        404
    );

    // Health counts, and the coordinator's own metrics.
    let health = get(&coord.url("/api/health"), None).await;
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["role"], "coordinator");
    assert_eq!(
        health["agents"],
        json!({"total": 2, "online": 2, "degraded": 0, "offline": 0})
    );
    let text = get(&coord.url("/metrics"), None).await.body;
    assert_eq!(
        sample(
            &text,
            r#"system_monitor_coordinator_agents{node="coord",status="online"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // Its own process, read at the request (nothing samples a coordinator without --sample-self).
    assert!(
        sample(&text, r#"process_resident_memory_bytes{node="coord"}"#).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            r#"system_monitor_coordinator_rounds_total{node="coord"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &text,
            r#"system_monitor_coordinator_poll_duration_seconds_count{node="coord"}"#
        )
        .unwrap()
            >= 2.0
    );
}

#[tokio::test]
async fn faults_affect_only_their_own_entry() {
    let good = agent("server", "good", LOCAL, &[]);
    let mut victim = agent("captured-vm", "victim", LOCAL, &[]);
    let hung = HungAgent::start();
    let garbage = GarbageAgent::start();
    let dead_port = ClosedPort::new(LOCAL);
    let dead = dead_port.base();
    let agents = [
        good.base(),
        victim.base(),
        hung.base(),
        garbage.base(),
        dead.clone(),
    ]
    .join(",");
    let coord = coordinator(&[
        "--agents",
        &agents,
        "--poll-interval",
        "500ms",
        "--poll-timeout",
        "1s",
        "--offline-after",
        "3s",
        "--node-id",
        "coord",
    ]);
    all_online(&coord, &["good", "victim"], None).await;

    // The misbehaving three are listed as offline, with why, and have no element.
    let errors = eventually("every fault recorded", DEADLINE, || async {
        let info = cluster_info(&coord, None).await;
        let listed = info_nodes(&info);
        let mut errors = BTreeMap::new();
        for (name, url) in [
            ("hung", hung.base()),
            ("garbage", garbage.base()),
            ("dead", dead.clone()),
        ] {
            let node = listed
                .get(&url)
                .ok_or(format!("{url} not listed: {info}"))?;
            if node["status"] != "offline" || node["id"] != Value::Null {
                return Err(format!("{name}: {node}"));
            }
            let error = node["error"]
                .as_str()
                .ok_or(format!("{name}: no error yet"))?;
            errors.insert(name, error.to_string());
        }
        Ok(errors)
    })
    .await;
    assert!(errors["garbage"].contains("not a JSON array"), "{errors:?}");
    let text = eventually("poll errors of each kind", DEADLINE, || async {
        let text = get(&coord.url("/metrics"), None).await.body;
        let kinds = ["timeout", "decode", "connect"].map(|kind| {
            sample(
                &text,
                &format!(
                    r#"system_monitor_coordinator_poll_errors_total{{kind="{kind}",node="coord"}}"#
                ),
            )
            .unwrap_or(0.0)
        });
        if kinds.iter().all(|n| *n >= 1.0) {
            Ok(text)
        } else {
            Err(format!("{kinds:?}"))
        }
    })
    .await;
    assert_eq!(
        sample(
            &text,
            r#"system_monitor_coordinator_poll_errors_total{kind="unauthorized",node="coord"}"#
        ),
        Some(0.0)
    );

    // Kill one agent: it goes offline (keeping its last data); the other stays online and fresh.
    victim.kill_holding_port();
    let after = eventually("victim offline", DEADLINE, || async {
        let nodes = nodes(&coord, None).await?;
        match nodes.get("victim").map(|e| e["status"].clone()) {
            Some(status) if status == "offline" => Ok(nodes),
            other => Err(format!("victim: {other:?}")),
        }
    })
    .await;
    assert_eq!(after.len(), 2, "{:?}", after.keys());
    assert!(after["victim"]["dataAgeSeconds"].as_f64().unwrap() >= 3.0);
    // Fresh data again within a poll or two, whatever the others do.
    let good_status = eventually("good online", DEADLINE, || async {
        let nodes = nodes(&coord, None).await?;
        let good = &nodes["good"];
        if good["status"] == "online" && good["dataAgeSeconds"].as_f64().unwrap_or(9.0) < 3.0 {
            Ok(good["status"].clone())
        } else {
            Err(good.to_string())
        }
    })
    .await;
    assert_eq!(good_status, "online");
    let health = get(&coord.url("/api/health"), None).await.json();
    assert_eq!(health["agents"]["online"], 1);
    assert_eq!(health["agents"]["offline"], 4);
}

#[tokio::test]
async fn registered_agents_heal_a_coordinator_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_token = named_token_file(dir.path(), "cluster-token", "cluster-secret");
    let port = free_port(&[LOCAL]).to_string();
    let start_coordinator = || {
        coordinator(&[
            "--rest-api-port",
            &port,
            "--cluster-token-file",
            &cluster_token,
            "--register-interval",
            "2s",
            "--poll-interval",
            "500ms",
        ])
    };
    let mut coord = start_coordinator();
    let register = |fixture, id, host: Ipv4Addr, label: &str| {
        agent(
            fixture,
            id,
            host,
            &[
                "--coordinator",
                &coord.base(),
                "--cluster-token-file",
                &cluster_token,
                "--register-interval",
                "2s",
                "--node-label",
                label,
            ],
        )
    };
    let _r1 = register("server", "reg-1", LOCAL, "rack=r1");
    // From another loopback address: the registration must leave from the agent's bind address.
    let _r2 = register(
        "captured-vm",
        "reg-2",
        Ipv4Addr::new(127, 0, 0, 2),
        "rack=r2",
    );
    // The cluster token is for registering only: reads are open without a read token.
    all_online(&coord, &["reg-1", "reg-2"], None).await;
    let info = cluster_info(&coord, None).await;
    let listed = info_nodes(&info);
    assert_eq!(listed["reg-1"]["labels"], json!({"rack": "r1"}));
    assert_eq!(listed["reg-2"]["labels"], json!({"rack": "r2"}));
    assert_eq!(listed["reg-2"]["ip"], "127.0.0.2");
    assert_eq!(listed["reg-1"]["version"], env!("CARGO_PKG_VERSION"));

    // Restart the coordinator: it knows nobody, until the next heartbeat.
    coord.kill();
    coord = start_coordinator();
    let restarted = Instant::now();
    all_online(&coord, &["reg-1", "reg-2"], None).await;
    let healed = restarted.elapsed();
    // One heartbeat is 2 s; the rest is the first poll and a loaded machine's slack.
    assert!(healed < Duration::from_secs(12), "healed after {healed:?}");
    eprintln!("registered agents healed a coordinator restart in {healed:?}");
}

#[tokio::test]
async fn registration_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let token = named_token_file(dir.path(), "cluster-token", "s3cret");
    let coord = coordinator(&[
        "--cluster-token-file",
        &token,
        "--max-nodes",
        "3",
        "--offline-after",
        "30s",
        "--poll-interval",
        "10s",
    ]);
    let url = coord.url("/api/cluster/register");
    let body = |id: &str, agent_url: &str| {
        serde_json::to_vec(
            &json!({"node_id": id, "url": agent_url, "labels": {"zone": "a"}, "version": "9.9"}),
        )
        .unwrap()
    };
    let secret = Some("s3cret");
    let other = Ipv4Addr::new(127, 0, 0, 2);

    let ok = post(&url, body("v1", "http://127.0.0.1:1"), secret, LOCAL).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.json(),
        json!({"registered": true, "node_id": "v1", "heartbeat_interval_seconds": 10.0})
    );

    // Tokens: missing or wrong is 401 and says nothing else.
    for token in [None, Some("wrong"), Some("s3cret2")] {
        let reply = post(&url, body("v9", "http://127.0.0.1:9"), token, LOCAL).await;
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
    }

    // Each invalid field: 400 naming it.
    let large_labels: BTreeMap<String, String> =
        (0..100).map(|i| (format!("k{i}"), "v".into())).collect();
    for (field, body) in [
        ("node_id", body("a/b", "http://127.0.0.1:1")),
        ("node_id", body("", "http://127.0.0.1:1")),
        ("url", body("v2", "ftp://127.0.0.1:1")),
        ("url", body("v2", "http://127.0.0.9:1")),
        ("url", body("v2", "http://localhost:1")),
        ("url", body("v2", "http://127.0.0.1:1/api")),
        ("url", body("v2", "not a url")),
        ("url", body("v2", "http://127.0.0.1:0")),
        ("url", body("v2", "http://0.0.0.0:1")),
        ("url", body("v2", "http://u:p@127.0.0.1:1")),
        ("url", body("v2", "http://127.0.0.1:1/?x=1")),
        ("url", body("v2", "http://127.0.0.1:1/#top")),
        (
            "labels",
            serde_json::to_vec(
                &json!({"node_id": "v2", "url": "http://127.0.0.1:1", "labels": {"a b": "c"}}),
            )
            .unwrap(),
        ),
        (
            "labels",
            serde_json::to_vec(
                &json!({"node_id": "v2", "url": "http://127.0.0.1:1", "labels": large_labels}),
            )
            .unwrap(),
        ),
        (
            "version",
            serde_json::to_vec(
                &json!({"node_id": "v2", "url": "http://127.0.0.1:1", "version": "x".repeat(100)}),
            )
            .unwrap(),
        ),
    ] {
        let reply = post(&url, body, secret, LOCAL).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.body);
        let error = reply.json();
        assert_eq!(error["field"], field, "{error}");
        assert_eq!(error["error"], "invalid registration");
    }
    let zero = post(&url, body("v2", "http://127.0.0.1:0"), secret, LOCAL).await;
    let detail = zero.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("port 0"), "{detail}");
    // A body that is not a registration: serde's message quotes it, cut short.
    let long = format!(
        r#"{{"node_id":"v2","url":"http://127.0.0.1:1","labels":"{}"}}"#,
        "x".repeat(10_000)
    );
    let reply = post(&url, long.into_bytes(), secret, LOCAL).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.len() < 300, "{}", reply.body);
    for broken in [&b"{not json"[..], b"{\"node_id\":\"v2\"}", b"[]"] {
        let reply = post(&url, broken.to_vec(), secret, LOCAL).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid registration");
    }
    let huge = format!(
        r#"{{"node_id":"v2","url":"http://127.0.0.1:1","version":"{}"}}"#,
        "x".repeat(20_000)
    );
    let reply = post(&url, huge.into_bytes(), secret, LOCAL).await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json(),
        json!({"error": "request body too large", "limit_bytes": 16384})
    );

    // Another live host claiming v1: 409, without a word about the holder.
    let conflict = post(&url, body("v1", "http://127.0.0.2:1"), secret, other).await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert_eq!(conflict.json()["field"], "node_id");
    assert!(!conflict.body.contains("127.0.0.1"), "{}", conflict.body);
    // The same host on another port (a restarted agent) replaces itself.
    let moved = post(&url, body("v1", "http://127.0.0.1:2"), secret, LOCAL).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let info = cluster_info(&coord, secret).await;
    let listed = info_nodes(&info);
    assert_eq!(listed.len(), 1, "{info}");
    assert_eq!(listed["v1"]["url"], "http://127.0.0.1:2");
    assert_eq!(listed["v1"]["labels"], json!({"zone": "a"}));
    assert_eq!(listed["v1"]["version"], "9.9");

    // The node cap.
    assert_eq!(
        post(&url, body("v2", "http://127.0.0.1:3"), secret, LOCAL)
            .await
            .status,
        200
    );
    assert_eq!(
        post(&url, body("v3", "http://127.0.0.2:4"), secret, other)
            .await
            .status,
        200
    );
    let full = post(&url, body("v4", "http://127.0.0.1:5"), secret, LOCAL).await;
    assert_eq!(full.status, 507);
    assert_eq!(
        full.json(),
        json!({"error": "node limit reached", "max_nodes": 3})
    );

    // A coordinator without a cluster token takes no registrations, whatever they carry (the
    // read token included), and says how to enable them.
    let read_dir = tempfile::tempdir().unwrap();
    let read_token = token_file(read_dir.path(), "r3ad");
    let open = coordinator(&[]);
    let read_only = coordinator(&["--auth-token-file", &read_token]);
    for (coord, token) in [
        (&open, None),
        (&open, Some("s3cret")),
        (&read_only, None),
        (&read_only, Some("r3ad")),
    ] {
        let refused = post(
            &coord.url("/api/cluster/register"),
            body("v1", "http://127.0.0.1:1"),
            token,
            LOCAL,
        )
        .await;
        assert_eq!(refused.status, 403, "{token:?}: {}", refused.body);
        let refused = refused.json();
        assert_eq!(refused["error"], "registration is disabled");
        let hint = refused["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("--cluster-token-file") && hint.contains("SYSTEM_MONITOR_CLUSTER_TOKEN"),
            "{refused}"
        );
    }
}

/// The TrackLab backend's case: a coordinator with the cluster token only, three agents
/// registered with it, read by a client that sends no token (REST and gRPC). Registrations
/// without the cluster token, or with another, are refused; the agent that has a wrong one is
/// never listed, and says why.
#[tokio::test]
async fn agents_registered_with_the_cluster_token_are_read_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_token = named_token_file(dir.path(), "cluster-token", "join-us");
    let wrong_token = named_token_file(dir.path(), "wrong-token", "join-me");
    let coord = coordinator(&[
        "--cluster-token-file",
        &cluster_token,
        "--register-interval",
        "1s",
        "--poll-interval",
        "500ms",
    ]);
    let register = |id, host, token: &str| {
        agent(
            "server",
            id,
            host,
            &[
                "--coordinator",
                &coord.base(),
                "--cluster-token-file",
                token,
                "--register-interval",
                "1s",
            ],
        )
    };
    let _agents = [
        register("tl-1", LOCAL, &cluster_token),
        register("tl-2", Ipv4Addr::new(127, 0, 0, 2), &cluster_token),
        register("tl-3", Ipv4Addr::new(127, 0, 0, 3), &cluster_token),
    ];
    let intruder = register("intruder", Ipv4Addr::new(127, 0, 0, 4), &wrong_token);

    let ids = ["tl-1", "tl-2", "tl-3"];
    all_online(&coord, &ids, None).await;
    let listed = nodes(&coord, None).await.unwrap();
    assert_eq!(listed.keys().map(String::as_str).collect::<Vec<_>>(), ids);
    let info = cluster_info(&coord, None).await;
    assert_eq!(info_nodes(&info).len(), 3, "{info}");
    assert_eq!(info["totalResources"]["cpu"], 24.0, "{info}");
    let one = get(&coord.url("/api/system/metrics?node_id=tl-2"), None).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.json()[0]["node_id"], "tl-2");
    assert_eq!(
        get(&coord.url("/api/system/info?node_id=tl-3"), None)
            .await
            .json()["node_id"],
        "tl-3"
    );
    assert_eq!(v1_metrics(coord.grpc_url(), None, "").await.unwrap(), ids);
    // An unknown id stays a 404 on the coordinator, whatever the agents do.
    let unknown = get(&coord.url("/api/system/metrics?node_id=test-node"), None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(
        unknown.json(),
        json!({"error": "unknown node_id", "node_id": "test-node"})
    );

    // The agent with another cluster token is refused, and logs the coordinator's answer.
    let refused = eventually("the intruder's refusal logged", DEADLINE, || async {
        let stderr = intruder.stderr();
        match stderr.contains("registration failed") {
            true => Ok(stderr),
            false => Err(stderr),
        }
    })
    .await;
    assert!(refused.contains("401"), "{refused}");
    assert!(!nodes(&coord, None).await.unwrap().contains_key("intruder"));

    // Missing or wrong cluster tokens: 401, naming nothing.
    let body =
        serde_json::to_vec(&json!({"node_id": "tl-9", "url": "http://127.0.0.1:9"})).unwrap();
    let url = coord.url("/api/cluster/register");
    for token in [None, Some("join-me"), Some("join-us2"), Some("")] {
        let reply = post(&url, body.clone(), token, LOCAL).await;
        assert_eq!(reply.status, 401, "{token:?}: {}", reply.body);
        assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
    }
    let accepted = post(&url, body, Some("join-us"), LOCAL).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

/// With both tokens, reads need the read token and registration the cluster token, and
/// neither stands in for the other (REST and gRPC). The coordinator polls its agents with the
/// read token.
#[tokio::test]
async fn the_read_and_cluster_tokens_are_not_interchangeable() {
    let dir = tempfile::tempdir().unwrap();
    let read_token = token_file(dir.path(), "r3ad");
    let cluster_token = named_token_file(dir.path(), "cluster-token", "j0in");
    let both = [
        "--auth-token-file",
        read_token.as_str(),
        "--cluster-token-file",
        cluster_token.as_str(),
    ];
    let mut coordinator_args = both.to_vec();
    coordinator_args.extend(["--register-interval", "1s", "--poll-interval", "500ms"]);
    let coord = coordinator(&coordinator_args);
    let coordinator_url = coord.base();
    let mut agent_args = both.to_vec();
    agent_args.extend([
        "--coordinator",
        coordinator_url.as_str(),
        "--register-interval",
        "1s",
    ]);
    let guarded = agent("server", "both-1", LOCAL, &agent_args);

    let (read, register) = (Some("r3ad"), Some("j0in"));
    all_online(&coord, &["both-1"], read).await;
    // The agent's own reads are guarded by the read token, as the coordinator's.
    assert_eq!(own_element(&guarded, read).await["node_id"], "both-1");
    assert_eq!(
        get(&guarded.url("/api/system/metrics"), register)
            .await
            .status,
        401
    );

    // Reading with the cluster token, or nothing: 401 / UNAUTHENTICATED.
    for token in [None, register] {
        for path in ["/api/system/metrics", "/api/cluster/info", "/metrics"] {
            let reply = get(&coord.url(path), token).await;
            assert_eq!(reply.status, 401, "{path} {token:?}");
            assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
        }
        let denied = v1_metrics(coord.grpc_url(), token, "").await.unwrap_err();
        assert_eq!(denied.code(), tonic::Code::Unauthenticated, "{token:?}");
    }
    assert_eq!(
        v1_metrics(coord.grpc_url(), read, "").await.unwrap(),
        ["both-1"]
    );
    assert_eq!(get(&coord.url("/api/health"), None).await.status, 200);

    // Registering with the read token, or nothing: 401. With the cluster token: 200.
    let body =
        serde_json::to_vec(&json!({"node_id": "both-9", "url": "http://127.0.0.1:9"})).unwrap();
    let url = coord.url("/api/cluster/register");
    for token in [None, read] {
        let reply = post(&url, body.clone(), token, LOCAL).await;
        assert_eq!(reply.status, 401, "{token:?}: {}", reply.body);
        assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
    }
    let accepted = post(&url, body, register, LOCAL).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

/// A v1 client with an optional bearer token.
async fn v1_metrics(
    url: String,
    token: Option<&str>,
    node_id: &str,
) -> Result<Vec<String>, tonic::Status> {
    let mut client = MonitorServiceClient::connect(url)
        .await
        .expect("connect gRPC");
    let mut request = tonic::Request::new(GetMetricsRequest {
        node_id: node_id.into(),
    });
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let reply = client.get_metrics(request).await?;
    Ok(reply
        .into_inner()
        .nodes
        .into_iter()
        .map(|n| n.node_id)
        .collect())
}

#[tokio::test]
async fn the_token_guards_every_api_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), "t0ken");
    let secret = Some("t0ken");
    let guarded = agent("server", "guarded", LOCAL, &["--auth-token-file", &token]);

    // The agent: REST.
    assert_eq!(get(&guarded.url("/api/health"), None).await.status, 200);
    for path in [
        "/api/system/metrics",
        "/api/system/info",
        "/metrics",
        "/api/system/stream",
        "/no/such/path",
        // The coordinator's registration path is the coordinator's only.
        "/api/cluster/register",
    ] {
        for wrong in [None, Some("t0ke"), Some("t0ken2")] {
            let reply = get(&guarded.url(path), wrong).await;
            assert_eq!(reply.status, 401, "{path} {wrong:?}");
            assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
        }
    }
    assert_eq!(
        get(&guarded.url("/api/system/info"), secret).await.status,
        200
    );
    // The agent: gRPC.
    let denied = v1_metrics(guarded.grpc_url(), None, "").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let denied = v1_metrics(guarded.grpc_url(), Some("nope"), "")
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        v1_metrics(guarded.grpc_url(), secret, "").await.unwrap(),
        ["guarded"]
    );

    // The coordinator polls with the token, and guards its own APIs with it.
    let coord = coordinator(&[
        "--auth-token-file",
        &token,
        "--agents",
        &guarded.base(),
        "--poll-interval",
        "500ms",
    ]);
    all_online(&coord, &["guarded"], secret).await;
    assert_eq!(get(&coord.url("/api/health"), None).await.status, 200);
    for path in [
        "/api/system/metrics",
        "/api/cluster/info",
        "/api/system/info?node_id=guarded",
        "/metrics",
    ] {
        let reply = get(&coord.url(path), None).await;
        assert_eq!(reply.status, 401, "{path}");
        assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
    }
    let denied = v1_metrics(coord.grpc_url(), None, "").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        v1_metrics(coord.grpc_url(), secret, "").await.unwrap(),
        ["guarded"]
    );

    // A coordinator with another token is refused by the agent: counted as unauthorized.
    let other_dir = tempfile::tempdir().unwrap();
    let other_token = token_file(other_dir.path(), "other");
    let outsider = coordinator(&[
        "--auth-token-file",
        &other_token,
        "--agents",
        &guarded.base(),
        "--poll-interval",
        "500ms",
        "--node-id",
        "outsider",
    ]);
    eventually("unauthorized polls counted", DEADLINE, || async {
        let text = get(&outsider.url("/metrics"), Some("other")).await.body;
        let n = sample(
            &text,
            r#"system_monitor_coordinator_poll_errors_total{kind="unauthorized",node="outsider"}"#,
        )
        .unwrap_or(0.0);
        if n >= 1.0 {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    assert!(nodes(&outsider, Some("other")).await.unwrap().is_empty());
}

#[tokio::test]
async fn dns_discovery_finds_every_address_of_a_name() {
    let hosts = [2, 3, 4].map(|last| Ipv4Addr::new(127, 0, 0, last));
    let port = free_port(&hosts).to_string();
    let _agents: Vec<Process> = hosts
        .iter()
        .zip(["server", "captured-vm", "server"])
        .map(|(host, fixture)| {
            agent(
                fixture,
                &format!("dns-{}", host.octets()[3]),
                *host,
                &["--rest-api-port", &port],
            )
        })
        .collect();
    let dns = DnsServer::start("agents.cluster.test", hosts.to_vec());
    let coord = coordinator(&[
        "--discover-dns",
        &format!("agents.cluster.test:{port}"),
        "--dns-server",
        &dns.addr.to_string(),
        "--dns-interval",
        "1s",
        "--poll-interval",
        "500ms",
    ]);
    all_online(&coord, &["dns-2", "dns-3", "dns-4"], None).await;
    let listed = info_nodes(&cluster_info(&coord, None).await);
    for last in [2, 3, 4] {
        let node = &listed[&format!("dns-{last}")];
        assert_eq!(node["ip"], format!("127.0.0.{last}"));
        assert_eq!(node["url"], format!("http://127.0.0.{last}:{port}"));
    }

    // A name that no longer lists an address drops that agent.
    dns.answers.lock().unwrap().retain(|ip| ip.octets()[3] != 4);
    eventually("dns-4 dropped", DEADLINE, || async {
        let listed = info_nodes(&cluster_info(&coord, None).await);
        let names: Vec<&String> = listed.keys().collect();
        if names == ["dns-2", "dns-3"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn sample_self_and_grpc_serve_the_cluster() {
    let worker = agent("captured-vm", "grpc-1", LOCAL, &[]);
    let mut args = vec![
        "--sample-self",
        "--node-id",
        "coord-self",
        "--agents",
        &worker.base(),
        "--poll-interval",
        "500ms",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(common::fixture_args("server"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let coord = coordinator(&args);
    let rest = all_online(&coord, &["coord-self", "grpc-1"], None).await;

    let listed = info_nodes(&cluster_info(&coord, None).await);
    assert_eq!(listed["coord-self"]["role"], "master");
    assert_eq!(listed["grpc-1"]["role"], "worker");
    let own_info = get(&coord.url("/api/system/info"), None).await.json();
    assert_eq!(own_info["node_id"], "coord-self");
    let text = get(&coord.url("/metrics"), None).await.body;
    assert!(
        text.contains(r#"system_monitor_coordinator_rounds_total{node="coord-self"}"#),
        "{text}"
    );
    assert!(text.contains(r#"node_cpu_seconds_total{"#) && text.contains(r#"node="coord-self""#));
    // Its own process once, from its sampler's snapshot.
    assert_eq!(
        text.matches("# TYPE process_start_time_seconds ").count(),
        1,
        "{text}"
    );

    // gRPC v1: the same nodes, the same figures.
    let mut client = MonitorServiceClient::connect(coord.grpc_url())
        .await
        .unwrap();
    let all = client
        .get_metrics(GetMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = all.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(ids, ["coord-self", "grpc-1"]);
    let one = client
        .get_metrics(GetMetricsRequest {
            node_id: "grpc-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.nodes.len(), 1);
    let node = &one.nodes[0];
    let cpu = node.cpu.as_ref().unwrap();
    assert_eq!(
        cpu.cores.len(),
        rest["grpc-1"]["cpu"]["cores"].as_array().unwrap().len()
    );
    assert_eq!(
        node.memory.as_ref().unwrap().total_bytes,
        rest["grpc-1"]["memory"]["total"].as_u64().unwrap()
    );
    let unknown = client
        .get_metrics(GetMetricsRequest {
            node_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let bad = client
        .get_metrics(GetMetricsRequest {
            node_id: "a/b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let info = client
        .get_info(GetInfoRequest {
            node_id: "grpc-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "grpc-1");
    assert!(info.cpu_threads > 0);

    // WatchMetrics: every node, then each node's new data.
    let mut stream = client
        .watch_metrics(WatchMetricsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let until = Instant::now() + DEADLINE;
    while seen.values().filter(|n| **n >= 2).count() < 2 {
        assert!(Instant::now() < until, "watch saw only {seen:?}");
        let message = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .expect("a message within the deadline")
            .expect("stream open")
            .expect("a message");
        *seen.entry(message.node_id).or_default() += 1;
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["coord-self", "grpc-1"]);
}

/// Poll or subscribe? The client-side (coordinator) and agent-side CPU cost of keeping `N`
/// copies of one agent's element fresh for 10 s, by polling `/api/system/metrics` each second
/// over kept-alive connections versus reading the agent's SSE stream, with the coordinator's own
/// parsing (`split_agent_answer`) in both. The agent binds 0.0.0.0 and is reached at `N`
/// distinct loopback addresses, so that each "agent" has its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a measurement, not a check: cargo test --test coordinator measure -- --ignored --nocapture"]
async fn measure_poll_versus_stream() {
    use common::cluster::cpu_seconds;
    use system_monitor::coordinator::element::split_agent_answer;
    const N: u8 = 200;
    const WINDOW: Duration = Duration::from_secs(10);
    let port = free_port(&[Ipv4Addr::UNSPECIFIED]).to_string();
    let measured = agent(
        "server",
        "measured",
        Ipv4Addr::UNSPECIFIED,
        &["--rest-api-port", &port],
    );
    let agent_pid = measured.pid().unwrap().to_string();
    let bases: Vec<String> = (1..=N)
        .map(|i| format!("http://127.0.1.{i}:{port}"))
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();

    // Polling.
    let (own, theirs) = (cpu_seconds("self"), cpu_seconds(&agent_pid));
    let until = Instant::now() + WINDOW;
    let mut polls = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        ticker.tick().await;
        let mut set = tokio::task::JoinSet::new();
        for base in &bases {
            let request = client.get(format!("{base}/api/system/metrics"));
            set.spawn(async move {
                let body = request.send().await.unwrap().bytes().await.unwrap();
                split_agent_answer(&body).unwrap();
            });
        }
        while set.join_next().await.is_some() {
            polls += 1;
        }
    }
    let poll = (
        cpu_seconds("self") - own,
        cpu_seconds(&agent_pid) - theirs,
        polls,
    );

    // Streaming.
    let (own, theirs) = (cpu_seconds("self"), cpu_seconds(&agent_pid));
    let mut set = tokio::task::JoinSet::new();
    for base in &bases {
        let request = client.get(format!("{base}/api/system/stream"));
        set.spawn(async move {
            let mut response = request.send().await.unwrap();
            let mut buffer: Vec<u8> = Vec::new();
            let mut events = 0u32;
            let until = Instant::now() + WINDOW;
            while Instant::now() < until {
                let Ok(Ok(Some(chunk))) =
                    tokio::time::timeout(until - Instant::now(), response.chunk()).await
                else {
                    break;
                };
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buffer.drain(..end + 2).collect();
                    for line in event.split(|b| *b == b'\n') {
                        if let Some(data) = line.strip_prefix(b"data:") {
                            split_agent_answer(data.trim_ascii()).unwrap();
                            events += 1;
                        }
                    }
                }
            }
            events
        });
    }
    let mut events = 0;
    while let Some(n) = set.join_next().await {
        events += n.unwrap();
    }
    let stream = (
        cpu_seconds("self") - own,
        cpu_seconds(&agent_pid) - theirs,
        events,
    );
    eprintln!(
        "{N} connections, {WINDOW:?}: poll: coordinator {:.2} s CPU, agent {:.2} s, {} answers; \
         stream: coordinator {:.2} s, agent {:.2} s, {} events",
        poll.0, poll.1, poll.2, stream.0, stream.1, stream.2
    );
}

#[tokio::test]
async fn metrics_negotiate_openmetrics_as_the_agent_does() {
    let coord = coordinator(&["--node-id", "coord-om", "--poll-interval", "500ms"]);
    let scrape = |accept: Option<&'static str>| {
        let mut request = reqwest::Client::new().get(coord.url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        async move {
            let response = request.send().await.expect("GET /metrics");
            common::HttpReply::read(response).await
        }
    };

    let text = scrape(None).await;
    assert_eq!(text.status, 200, "{}", text.body);
    assert!(
        text.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        text.content_type
    );
    assert!(text
        .body
        .contains("# TYPE system_monitor_coordinator_rounds_total counter\n"));
    assert!(!text.body.contains("# EOF"), "{}", text.body);

    let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let open = scrape(Some(prometheus)).await;
    assert_eq!(open.status, 200, "{}", open.body);
    assert!(
        open.content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        open.content_type
    );
    assert!(open
        .body
        .contains("# TYPE system_monitor_coordinator_rounds counter\n"));
    assert!(open.body.contains(
        "# TYPE system_monitor_coordinator_poll_duration_seconds histogram\n\
         system_monitor_coordinator_poll_duration_seconds_bucket{node=\"coord-om\",le=\"0.001\"} "
    ));
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    assert_eq!(open.body.matches("# EOF").count(), 1);
}

/// Waits until the coordinator's log has a line containing `text`; returns that line.
async fn logged(coordinator: &Process, text: &str) -> String {
    eventually(&format!("a log line with {text:?}"), DEADLINE, || async {
        let stderr = coordinator.stderr();
        stderr
            .lines()
            .find(|l| l.contains(text))
            .map(str::to_string)
            .ok_or(stderr)
    })
    .await
}

#[tokio::test]
async fn an_agent_going_offline_and_back_is_logged_once_each_with_the_cause() {
    let port = free_port(&[LOCAL]).to_string();
    let start_agent = || agent("server", "flappy", LOCAL, &["--rest-api-port", &port]);
    let mut flappy = start_agent();
    let coord = coordinator(&[
        "--agents",
        &flappy.base(),
        "--poll-interval",
        "200ms",
        "--poll-timeout",
        "1s",
        "--offline-after",
        "1s",
    ]);
    let who = format!("agent flappy (http://127.0.0.1:{port})");
    let online = logged(&coord, &format!("{who} online")).await;
    assert!(online.contains(" INFO "), "{online}");

    flappy.kill_holding_port();
    let offline = logged(&coord, &format!("{who} offline: ")).await;
    assert!(offline.contains(" WARN "), "{offline}");
    assert!(
        offline.to_ascii_lowercase().contains("connection refused"),
        "the cause is the last poll's error: {offline}"
    );

    drop(flappy);
    let _flappy = start_agent();
    let back = logged(&coord, &format!("{who} back online")).await;
    assert!(back.contains(" INFO "), "{back}");

    // Some rounds later, still one line per change: nothing is logged per poll.
    let rounds = |body: Value| body["rounds"].as_u64().unwrap_or(0);
    let now = rounds(get(&coord.url("/api/health"), None).await.json());
    eventually("three more poll rounds", DEADLINE, || async {
        let seen = rounds(get(&coord.url("/api/health"), None).await.json());
        if seen >= now + 3 {
            Ok(())
        } else {
            Err(seen.to_string())
        }
    })
    .await;
    let stderr = coord.stderr();
    for change in ["online", "offline: ", "back online"] {
        let text = format!("{who} {change}");
        let count = stderr.lines().filter(|l| l.contains(&text)).count();
        assert_eq!(count, 1, "{text}:\n{stderr}");
    }
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in a log file:\n{stderr}"
    );
}

/// The coordinator's REST server has the agent's guard: on loopback, a request naming another
/// host is refused (DNS rebinding), no CORS headers unless an origin is allowed, and its
/// `/api/system/info?node_id=` quotes a bad id cut short. Its portfile goes at a clean exit.
#[tokio::test]
async fn the_coordinator_refuses_other_hosts_and_removes_its_portfile() {
    use std::io::{Read, Write};
    let mut coord = coordinator(&["--cors-allow-origin", "http://localhost:3000"]);
    let raw = |host: &str, origin: &str| {
        let mut stream = std::net::TcpStream::connect((LOCAL, coord.rest_port)).unwrap();
        let request = format!(
            "GET /api/cluster/info HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let port = coord.rest_port;
    let answer = raw(&format!("127.0.0.1:{port}"), "http://localhost:3000");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("access-control-allow-origin: http://localhost:3000"),
        "{answer}"
    );
    let answer = raw(&format!("localhost:{port}"), "http://evil.example");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "{answer}"
    );
    let answer = raw(&format!("evil.example:{port}"), "http://evil.example");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains(r#""error":"host not allowed""#), "{answer}");

    let long = "a%2F".repeat(1_000);
    let reply = get(
        &coord.url(&format!("/api/system/info?node_id={long}")),
        None,
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.len() < 300, "{}", reply.body);

    let portfile = coord.portfile();
    assert!(portfile.exists());
    let status = coord.terminate();
    assert!(status.success(), "{status}");
    assert!(
        !portfile.exists(),
        "the portfile is removed at a clean exit"
    );
}
