//! History through the coordinator, end to end: real agents on fixture trees and a real
//! coordinator on loopback. A node's `/api/system/history` through the coordinator is the
//! agent's own answer (several nodes in one array), gRPC `GetHistory` on the coordinator is
//! its REST answer, the agent's refusals are relayed, an offline agent's history is a 409
//! naming it (FAILED_PRECONDITION over gRPC), the coordinator's own host (`--sample-self`)
//! answers from its own history, and `/api/cluster/history` keeps the cluster's resources.

mod common;

use std::net::Ipv4Addr;

use serde_json::Value;

use common::cluster::{agent, coordinator, eventually, get, Process, DEADLINE};
use common::history::{grpc_history, same_answers};
use system_monitor::pb::v1::{GetHistoryRequest, HistoryAgg};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Waits until the coordinator reports every node of `ids` online.
async fn online(coordinator: &Process, ids: &[&str]) {
    eventually(&format!("{ids:?} online"), DEADLINE, || async {
        let reply = get(&coordinator.url("/api/system/metrics"), None).await;
        let nodes = reply.json();
        let online: Vec<&str> = nodes
            .as_array()
            .ok_or("not an array")?
            .iter()
            .filter(|e| e["status"] == "online")
            .filter_map(|e| e["node_id"].as_str())
            .collect();
        if ids.iter().all(|id| online.contains(id)) {
            Ok(())
        } else {
            Err(format!("{online:?}"))
        }
    })
    .await;
}

/// The agent's sample times so far.
async fn sample_times(agent: &Process, node_id: &str) -> Vec<i64> {
    let reply = get(
        &agent.url(&format!(
            "/api/system/history?node_id={node_id}&fields=cpu.overall"
        )),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0]["timestamps"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// Waits for `n` samples on the agent; returns their times.
async fn samples(agent: &Process, node_id: &str, n: usize) -> Vec<i64> {
    eventually(&format!("{n} samples of {node_id}"), DEADLINE, || async {
        let times = sample_times(agent, node_id).await;
        if times.len() >= n {
            Ok(times)
        } else {
            Err(format!("{times:?}"))
        }
    })
    .await
}

fn request(node_id: &str, from: i64, to: i64) -> GetHistoryRequest {
    GetHistoryRequest {
        node_id: node_id.into(),
        from_unix_ms: Some(from),
        to_unix_ms: Some(to),
        ..GetHistoryRequest::default()
    }
}

/// gRPC `GetHistory` refuses `request` with InvalidArgument and the message REST gave in `body`
/// (`"<error>: <detail>"`).
async fn assert_grpc_refused_as(
    coord: &Process,
    request: GetHistoryRequest,
    body: &serde_json::Value,
) {
    let status = grpc_history(&coord.grpc_url(), request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        format!(
            "{}: {}",
            body["error"].as_str().unwrap(),
            body["detail"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn a_nodes_history_through_the_coordinator_is_its_agents() {
    let a1 = agent("server", "a1", LOCAL, &["--interval", "250ms"]);
    let a2 = agent("captured-vm", "a2", LOCAL, &["--interval", "250ms"]);
    let agents = format!("{},{}", a1.base(), a2.base());
    let coord = coordinator(&["--agents", &agents, "--poll-interval", "250ms"]);
    online(&coord, &["a1", "a2"]).await;
    let t1 = samples(&a1, "a1", 6).await;
    let t2 = samples(&a2, "a2", 6).await;
    // A window wholly in the past of both agents.
    let (from, to) = (t1[0].min(t2[0]), t1[4].min(t2[4]));

    for query in [
        "fields=*".to_string(),
        "fields=memory.used,cpu.*&step=500ms&agg=max".to_string(),
        String::new(),
    ] {
        let window = format!("from={from}&to={to}&{query}");
        let direct = |agent: &Process, id: &str| {
            agent.url(&format!("/api/system/history?node_id={id}&{window}"))
        };
        let d1 = get(&direct(&a1, "a1"), None).await;
        let d2 = get(&direct(&a2, "a2"), None).await;
        assert_eq!((d1.status, d2.status), (200, 200), "{}{}", d1.body, d2.body);
        let through = get(
            &coord.url(&format!("/api/system/history?node_id=a2,a1,a2&{window}")),
            None,
        )
        .await;
        assert_eq!(through.status, 200, "{query}: {}", through.body);
        // The agents' answers as they wrote them, in the order asked, each node once.
        assert_eq!(
            through.body,
            format!(
                "[{},{}]",
                d2.body.trim_start_matches('[').trim_end_matches(']'),
                d1.body.trim_start_matches('[').trim_end_matches(']')
            ),
            "{query}"
        );
        // gRPC on the coordinator: the same answer.
        let mut grpc = request("a2,a1", from, to);
        match query.as_str() {
            "fields=*" => grpc.fields = vec!["*".into()],
            "" => {}
            _ => {
                grpc.fields = vec!["memory.used".into(), "cpu.*".into()];
                grpc.step = "500ms".into();
                grpc.agg = HistoryAgg::Max as i32;
            }
        }
        let nodes = grpc_history(&coord.grpc_url(), grpc).await.unwrap();
        if let Err(why) = same_answers(&through.json(), &through.body, &nodes) {
            panic!("{query}: {why}");
        }
    }

    // Without from and to, the coordinator fixes the window: every node answers the same one.
    let reply = get(&coord.url("/api/system/history?node_id=a1,a2"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answers = reply.json();
    assert_eq!(answers[0]["from"], answers[1]["from"]);
    assert_eq!(answers[0]["to"], answers[1]["to"]);
    assert_eq!(
        answers[0]["to"].as_i64().unwrap() - answers[0]["from"].as_i64().unwrap(),
        15 * 60 * 1000
    );

    // Refusals: the coordinator's own, and the agent's relayed (its 400, word for word).
    let too_many_points = "from=0&to=86400000000&step=1s";
    let agent_says = get(
        &a1.url(&format!("/api/system/history?{too_many_points}")),
        None,
    )
    .await;
    assert_eq!(agent_says.status, 400);
    let relayed = get(
        &coord.url(&format!("/api/system/history?node_id=a1&{too_many_points}")),
        None,
    )
    .await;
    assert_eq!(relayed.status, 400);
    assert_eq!(relayed.json(), agent_says.json());
    let request_too_many = GetHistoryRequest {
        step: "1s".into(),
        ..request("a1", 0, 86_400_000_000)
    };
    assert_grpc_refused_as(&coord, request_too_many, &agent_says.json()).await;
    for (query, want) in [
        ("node_id=a1&from=10&to=5", 400),
        ("node_id=a1&step=soon", 400),
        ("node_id=a1,bad/id", 400),
        ("", 400),
        ("node_id=nobody", 404),
        ("node_id=a1,nobody", 404),
    ] {
        let reply = get(&coord.url(&format!("/api/system/history?{query}")), None).await;
        assert_eq!(reply.status, want, "{query}: {}", reply.body);
        assert!(reply.json()["error"].is_string(), "{query}: {}", reply.body);
    }
    let reply = get(&coord.url("/api/system/history?node_id=a1&step=soon"), None).await;
    let bad_step = GetHistoryRequest {
        step: "soon".into(),
        ..request("a1", 0, 1)
    };
    assert_grpc_refused_as(&coord, bad_step, &reply.json()).await;
    let status = grpc_history(&coord.grpc_url(), GetHistoryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = grpc_history(&coord.grpc_url(), request("nobody", 0, 1))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn an_offline_agents_history_is_a_409_naming_it() {
    let a1 = agent("server", "a1", LOCAL, &["--interval", "250ms"]);
    let mut a2 = agent("captured-vm", "a2", LOCAL, &["--interval", "250ms"]);
    let agents = format!("{},{}", a1.base(), a2.base());
    // One coordinator gives up on a silent agent quickly, the other only after ten minutes:
    // the first knows a2 is offline and does not ask it; the second asks, and gets no answer.
    let quick = coordinator(&[
        "--agents",
        &agents,
        "--poll-interval",
        "250ms",
        "--offline-after",
        "1s",
    ]);
    let patient = coordinator(&[
        "--agents",
        &agents,
        "--poll-interval",
        "250ms",
        "--offline-after",
        "10m",
    ]);
    online(&quick, &["a1", "a2"]).await;
    online(&patient, &["a1", "a2"]).await;
    samples(&a2, "a2", 2).await;
    a2.kill_holding_port();

    eventually("a2 offline", DEADLINE, || async {
        let reply = get(&quick.url("/api/system/metrics?node_id=a2"), None).await;
        match reply.json()[0]["status"].as_str() {
            Some("offline") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    for coord in [&quick, &patient] {
        for ids in ["a2", "a1,a2"] {
            let reply = get(
                &coord.url(&format!("/api/system/history?node_id={ids}")),
                None,
            )
            .await;
            assert_eq!(reply.status, 409, "{ids}: {}", reply.body);
            let body = reply.json();
            assert_eq!(body["error"], "node offline", "{body}");
            assert_eq!(body["node_id"], "a2", "{body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
            let status = grpc_history(
                &coord.grpc_url(),
                GetHistoryRequest {
                    node_id: ids.into(),
                    ..GetHistoryRequest::default()
                },
            )
            .await
            .unwrap_err();
            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
            assert!(status.message().contains("\"a2\""), "{status:?}");
        }
    }
    // The quick one knew without asking: it says how long a2 has been silent.
    let body = get(&quick.url("/api/system/history?node_id=a2"), None)
        .await
        .json();
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("no good answer for")),
        "{body}"
    );
    // The other nodes still answer.
    let reply = get(&patient.url("/api/system/history?node_id=a1"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn the_coordinator_keeps_its_own_hosts_and_the_clusters_history() {
    let a1 = agent("server", "a1", LOCAL, &["--interval", "250ms"]);
    let coord = coordinator(&[
        "--agents",
        &a1.base(),
        "--poll-interval",
        "250ms",
        "--sample-self",
        "--interval",
        "250ms",
        "--node-id",
        "coord",
    ]);
    online(&coord, &["a1", "coord"]).await;

    // Its own host: from its own history, without node_id as with it.
    let own = eventually("three samples of its own host", DEADLINE, || async {
        let reply = get(&coord.url("/api/system/history?fields=cpu.overall"), None).await;
        let answer = reply.json()[0].clone();
        match answer["timestamps"].as_array() {
            Some(t) if t.len() >= 3 => Ok(answer),
            _ => Err(reply.body),
        }
    })
    .await;
    assert_eq!(own["node_id"], "coord");
    let (from, to) = (own["from"].as_i64().unwrap(), own["to"].as_i64().unwrap());
    let window = format!("from={from}&to={to}&fields=cpu.overall,memory.used");
    let named = get(
        &coord.url(&format!("/api/system/history?node_id=coord&{window}")),
        None,
    )
    .await;
    let unnamed = get(&coord.url(&format!("/api/system/history?{window}")), None).await;
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(named.body, unnamed.body);
    let mut grpc = request("", from, to);
    grpc.fields = vec!["cpu.overall".into(), "memory.used".into()];
    let nodes = grpc_history(&coord.grpc_url(), grpc).await.unwrap();
    same_answers(&named.json(), &named.body, &nodes).unwrap();

    // The cluster: every field after every round, the latest as /api/cluster/info says.
    let fields = [
        "totalResources.cpu",
        "totalResources.memory",
        "totalResources.accelerators",
        "usedResources.cpu",
        "usedResources.memory",
        "usedResources.accelerators",
        "agents.online",
        "agents.degraded",
        "agents.offline",
    ];
    let (answer, info) = eventually("the cluster history's latest point", DEADLINE, || async {
        let info = get(&coord.url("/api/cluster/info"), None).await.json();
        let reply = get(&coord.url("/api/cluster/history"), None).await;
        if reply.status != 200 {
            return Err(reply.body);
        }
        let answer = reply.json()[0].clone();
        let last = |field: &str| {
            answer["series"][field]
                .as_array()
                .and_then(|v| v.iter().rev().find(|v| !v.is_null()).cloned())
        };
        // Two nodes online, the totals of /api/cluster/info (fixture totals do not move; the
        // coordinator's own host's may, so compare once they agree).
        let same = last("agents.online") == Some(2.into())
            && last("totalResources.cpu").and_then(|v| v.as_f64())
                == info["totalResources"]["cpu"].as_f64()
            && last("totalResources.memory") == Some(info["totalResources"]["memory"].clone());
        if same {
            Ok((answer, info))
        } else {
            Err(format!("{answer} vs {info}"))
        }
    })
    .await;
    assert_eq!(answer["node_id"], "cluster");
    let series = answer["series"].as_object().unwrap();
    let mut keys: Vec<&str> = series.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = fields.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(info["totalResources"]["cpu"].as_f64().unwrap() > 0.0);
    // A step and an agg, as on a node's history.
    let reply = get(
        &coord.url("/api/cluster/history?step=1m&agg=max&fields=totalResources.*"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = &reply.json()[0];
    assert_eq!(answer["step_ms"], 60_000);
    assert_eq!(answer["series"].as_object().unwrap().len(), 3);
    for (query, want) in [("node_id=a1", 400), ("step=soon", 400), ("agg=median", 400)] {
        let reply = get(&coord.url(&format!("/api/cluster/history?{query}")), None).await;
        assert_eq!(reply.status, want, "{query}: {}", reply.body);
    }
}
