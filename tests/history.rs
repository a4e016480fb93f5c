//! `/api/system/history` end to end on the real binary sampling this machine: a point at native
//! resolution is exactly the sample `/api/system/metrics` served (same timestamp, every number
//! the same), steps aggregate, and bad questions are 400 JSON errors; gRPC v1 `GetHistory`
//! answers the same question with the same answer, and refuses what REST refuses with the same
//! message. With `--history.path` (on a fixture): a clean stop keeps every sample, a SIGKILL
//! loses at most the last 10 s, and a directory that cannot be written fails the start with a
//! clear error.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::cluster::{eventually, get, Process, DEADLINE};
use common::history::{grpc_history, same_answers};
use common::{fixture_args, BIN};
use system_monitor::pb::v1::{GetHistoryRequest, HistoryAgg};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn agent(extra: &[&str]) -> Process {
    let mut args: Vec<String> = ["--rest-api-port", "0", "--node-id", "hist-node"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Process::start(LOCAL, &args)
}

/// Every number of a JSON value by dotted path (objects by key, arrays by position).
fn numbers(value: &Value, path: &mut String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Number(_) => {
            out.insert(path.clone(), value.clone());
        }
        Value::Object(map) => {
            for (k, v) in map {
                let before = path.len();
                if before > 0 {
                    path.push('.');
                }
                path.push_str(k);
                numbers(v, path, out);
                path.truncate(before);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let before = path.len();
                if before > 0 {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                numbers(v, path, out);
                path.truncate(before);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_native_point_is_exactly_the_sample_served() {
    let agent = agent(&[]);
    // Four distinct samples as /api/system/metrics served them.
    let collected = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<i64, Value>::new()));
    eventually("four samples served", DEADLINE, || {
        let url = agent.url("/api/system/metrics");
        let collected = std::sync::Arc::clone(&collected);
        async move {
            let reply = get(&url, None).await;
            let element = reply.json()[0].clone();
            let ts = element["timestamp"].as_i64().ok_or("no timestamp")?;
            let mut served = collected.lock().unwrap();
            served.insert(ts, element);
            if served.len() >= 4 {
                Ok(())
            } else {
                Err(format!("{} so far", served.len()))
            }
        }
    })
    .await;
    let served = collected.lock().unwrap().clone();
    let (&from, _) = served.first_key_value().unwrap();
    let (&to, _) = served.last_key_value().unwrap();
    let reply = get(
        &agent.url(&format!("/api/system/history?from={from}&to={to}&fields=*")),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answers = reply.json();
    let answer = &answers[0];
    assert_eq!(answer["node_id"], "hist-node");
    assert_eq!(answer["from"], from);
    assert_eq!(answer["to"], to);
    let timestamps: Vec<i64> = answer["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let series = answer["series"].as_object().unwrap();
    for (ts, element) in &served {
        let row = timestamps
            .iter()
            .position(|t| t == ts)
            .unwrap_or_else(|| panic!("sample {ts} missing from {timestamps:?}"));
        let mut expected = BTreeMap::new();
        numbers(element, &mut String::new(), &mut expected);
        expected.remove("timestamp");
        assert!(expected.len() > 20, "{expected:?}");
        for (path, value) in &expected {
            let got = series
                .get(path)
                .unwrap_or_else(|| panic!("no series {path}"));
            assert_eq!(&got[row], value, "{path} at {ts}");
        }
        // And nothing the sample did not have.
        for (path, values) in series {
            if !values[row].is_null() {
                assert!(
                    expected.contains_key(path),
                    "{path} at {ts} not in the sample"
                );
            }
        }
    }

    // A step aggregates: one point per 2 s bucket, means as floats.
    let reply = get(
        &agent.url(&format!(
            "/api/system/history?from={from}&to={to}&step=2s&fields=cpu.overall,memory.used&agg=max"
        )),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = &reply.json()[0];
    assert_eq!(answer["step_ms"], 2000);
    let points = answer["timestamps"].as_array().unwrap();
    assert!(points.iter().all(|t| t.as_i64().unwrap() % 2000 == 0));
    let max_used = served
        .values()
        .map(|e| e["memory"]["used"].as_u64().unwrap())
        .max()
        .unwrap();
    let got_max = answer["series"]["memory.used"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .max()
        .unwrap();
    assert_eq!(got_max, max_used);

    // The default question: the last 15 minutes of the headline fields.
    let reply = get(&agent.url("/api/system/history"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = &reply.json()[0];
    for field in [
        "cpu.overall",
        "memory.used",
        "network.bytesIn",
        "disk.ioWrite",
    ] {
        assert!(answer["series"][field].is_array(), "{field}: {answer}");
    }
}

#[tokio::test]
async fn bad_questions_are_400_json_and_unknown_nodes_404() {
    let agent = agent(&[]);
    for query in [
        "from=10&to=5",
        "step=soon",
        "step=0",
        "agg=median",
        "fields=cpu..overall",
        "fields=",
        "from=yesterday",
        "from=0&to=86400000000&step=1s",
    ] {
        let reply = get(&agent.url(&format!("/api/system/history?{query}")), None).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(reply.json()["error"].is_string(), "{query}: {}", reply.body);
    }
    let reply = get(&agent.url("/api/system/history?node_id=other"), None).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.json()["node_id"], "other");
    let reply = get(&agent.url("/api/system/history?node_id=bad/id"), None).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
}

/// The timestamps of the node's samples so far (REST, the last 15 minutes).
async fn sample_times(agent: &Process) -> Vec<i64> {
    let reply = get(&agent.url("/api/system/history?fields=cpu.overall"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()[0]["timestamps"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn grpc_get_history_is_the_rest_answer() {
    let agent = agent(&["--interval", "250ms"]);
    let times = eventually("six samples kept", DEADLINE, || async {
        let times = sample_times(&agent).await;
        if times.len() >= 6 {
            Ok(times)
        } else {
            Err(format!("{times:?}"))
        }
    })
    .await;
    // A window wholly in the past: both protocols see the same samples.
    let (from, to) = (times[0], times[4]);
    let cases: [(&str, GetHistoryRequest); 4] = [
        (
            "fields=*",
            GetHistoryRequest {
                fields: vec!["*".into()],
                ..GetHistoryRequest::default()
            },
        ),
        (
            "fields=memory.used,cpu.*,never.seen&step=500ms&agg=max",
            GetHistoryRequest {
                fields: vec!["memory.used".into(), "cpu.*,never.seen".into()],
                step: "500ms".into(),
                agg: HistoryAgg::Max as i32,
                ..GetHistoryRequest::default()
            },
        ),
        (
            "step=1s&agg=min&node_id=hist-node",
            GetHistoryRequest {
                node_id: "hist-node".into(),
                step: "1s".into(),
                agg: HistoryAgg::Min as i32,
                ..GetHistoryRequest::default()
            },
        ),
        (
            "step=0.75",
            GetHistoryRequest {
                step: "0.75".into(),
                ..GetHistoryRequest::default()
            },
        ),
    ];
    for (query, mut request) in cases {
        let reply = get(
            &agent.url(&format!("/api/system/history?from={from}&to={to}&{query}")),
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        request.from_unix_ms = Some(from);
        request.to_unix_ms = Some(to);
        let nodes = grpc_history(&agent.grpc_url(), request).await.unwrap();
        let rest = reply.json();
        assert!(
            rest[0]["series"].as_object().unwrap().len() >= 3,
            "{query}: {rest}"
        );
        if let Err(why) = same_answers(&rest, &reply.body, &nodes) {
            panic!("{query}: {why}");
        }
    }
    // A gap is a point without a value: a field never seen is all gaps.
    let nodes = grpc_history(
        &agent.grpc_url(),
        GetHistoryRequest {
            from_unix_ms: Some(from),
            to_unix_ms: Some(to),
            fields: vec!["never.seen".into()],
            ..GetHistoryRequest::default()
        },
    )
    .await
    .unwrap();
    let series = &nodes[0].series[0];
    assert_eq!(series.values.len(), 5);
    assert_eq!(series.present, [0]);
    assert!(series.values.iter().all(|v| v.is_nan()));
}

#[tokio::test]
async fn grpc_refuses_what_rest_refuses_with_the_same_message() {
    let agent = agent(&[]);
    let request = |from: Option<i64>, to: Option<i64>, step: &str, fields: &[&str], agg: i32| {
        GetHistoryRequest {
            node_id: String::new(),
            from_unix_ms: from,
            to_unix_ms: to,
            step: step.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            agg,
        }
    };
    let cases = [
        ("from=10&to=5", request(Some(10), Some(5), "", &[], 0)),
        ("step=soon", request(None, None, "soon", &[], 0)),
        ("step=0", request(None, None, "0", &[], 0)),
        ("agg=9", request(None, None, "", &[], 9)),
        (
            "fields=cpu..overall",
            request(None, None, "", &["cpu..overall"], 0),
        ),
        ("fields=", request(None, None, "", &[""], 0)),
        ("from=-1", request(Some(-1), None, "", &[], 0)),
        (
            "from=0&to=86400000000&step=1s",
            request(Some(0), Some(86_400_000_000), "1s", &[], 0),
        ),
    ];
    for (query, request) in cases {
        let reply = get(&agent.url(&format!("/api/system/history?{query}")), None).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let body = reply.json();
        let rest = format!(
            "{}: {}",
            body["error"].as_str().unwrap(),
            body["detail"].as_str().unwrap()
        );
        let status = grpc_history(&agent.grpc_url(), request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{query}");
        assert_eq!(status.message(), rest, "{query}");
    }
    let unknown = GetHistoryRequest {
        node_id: "other".into(),
        ..GetHistoryRequest::default()
    };
    let status = grpc_history(&agent.grpc_url(), unknown).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("other"), "{status:?}");
    for bad in ["bad/id", "a,,b"] {
        let malformed = GetHistoryRequest {
            node_id: bad.into(),
            ..GetHistoryRequest::default()
        };
        let status = grpc_history(&agent.grpc_url(), malformed)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{bad}: {status:?}"
        );
    }
}

/// An agent on the `server` fixture sampling every 500 ms, keeping its history in `dir`.
fn kept_agent(dir: &Path) -> Process {
    let dir = dir.to_string_lossy();
    common::cluster::agent(
        "server",
        "kept-node",
        LOCAL,
        &["--interval", "500ms", "--history.path", &dir],
    )
}

/// Every field of every sample in `[from, to]`, at native resolution.
async fn everything(agent: &Process, from: i64, to: i64) -> Value {
    let reply = get(
        &agent.url(&format!("/api/system/history?from={from}&to={to}&fields=*")),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json()[0].clone();
    assert_eq!(answer["step_ms"], 500, "{}", answer["timestamps"]);
    answer
}

/// Waits until `agent`'s history spans `span` (from its first sample), and returns that
/// first sample's time.
async fn history_spanning(agent: &Process, span: Duration) -> i64 {
    let span = span.as_millis() as i64;
    eventually("history long enough", DEADLINE, || {
        // Within the raw tier's reach: native points, one per sample.
        let url = agent.url(&format!(
            "/api/system/history?from={}&fields=cpu.overall",
            now_ms() - 600_000
        ));
        async move {
            let reply = get(&url, None).await;
            let answer = reply.json()[0].clone();
            let ts = answer["timestamps"].as_array().cloned().unwrap_or_default();
            let first = ts.first().and_then(Value::as_i64).ok_or("no samples")?;
            let last = ts.last().and_then(Value::as_i64).ok_or("no samples")?;
            if last - first >= span {
                Ok(first)
            } else {
                Err(format!("{} ms so far", last - first))
            }
        }
    })
    .await
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn timestamps(answer: &Value) -> Vec<i64> {
    answer["timestamps"]
        .as_array()
        .expect("timestamps")
        .iter()
        .map(|t| t.as_i64().expect("a timestamp"))
        .collect()
}

#[tokio::test]
async fn a_clean_stop_keeps_every_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = kept_agent(dir.path());
    let first = history_spanning(&agent, Duration::from_secs(3)).await;
    let before = everything(&agent, first, now_ms()).await;
    let kept = timestamps(&before);
    assert!(kept.len() >= 6, "{kept:?}");
    let status = agent.terminate();
    assert!(status.success(), "{status:?}: {}", agent.stderr());

    let again = kept_agent(dir.path());
    let after = everything(&again, first, before["to"].as_i64().expect("to")).await;
    assert_eq!(timestamps(&after), kept);
    assert_eq!(after["series"], before["series"]);
    assert!(!again.stderr().contains("damaged"), "{}", again.stderr());
}

#[tokio::test]
async fn a_sigkill_loses_at_most_the_last_ten_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agent = kept_agent(dir.path());
    // Long enough that rows older than the 10 s flush period exist.
    let first = history_spanning(&agent, Duration::from_secs(17)).await;
    let before = everything(&agent, first, now_ms()).await;
    let killed_at = now_ms();
    agent.kill();

    let again = kept_agent(dir.path());
    let after = everything(&again, first, before["to"].as_i64().expect("to")).await;
    let kept = timestamps(&after);
    // 10 s of flush period, and 2 s for a late worker on a loaded machine.
    let must_keep: Vec<i64> = timestamps(&before)
        .into_iter()
        .filter(|&t| t <= killed_at - 12_000)
        .collect();
    assert!(must_keep.len() >= 6, "{}", before["timestamps"]);
    for (row, t) in must_keep.iter().enumerate() {
        assert_eq!(kept.get(row), Some(t), "sample {t} lost: kept {kept:?}");
    }
    // What was kept is exactly what was served.
    let series = before["series"].as_object().expect("series");
    for (field, values) in series {
        let restored = &after["series"][field];
        for row in 0..must_keep.len() {
            assert_eq!(restored[row], values[row], "{field} at {}", must_keep[row]);
        }
    }
}

#[test]
fn an_unwritable_history_directory_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A path under a regular file cannot be a directory, whoever runs the test (root too).
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write");
    let bad = file.join("history");
    let mut child = Command::new(BIN)
        .args(fixture_args("server"))
        .args(["--rest-api-port", "0", "--history.path"])
        .arg(&bad)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("still running with an unwritable --history.path");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    assert!(!status.success());
    assert!(
        stderr.contains("history directory") && stderr.contains(&*bad.to_string_lossy()),
        "{stderr}"
    );
}
