//! `/api/system/history` end to end on the real binary sampling this machine: a point at native
//! resolution is exactly the sample `/api/system/metrics` served (same timestamp, every number
//! the same), steps aggregate, and bad questions are 400 JSON errors.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use common::cluster::{eventually, get, Process, DEADLINE};

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
