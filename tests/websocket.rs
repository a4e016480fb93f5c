//! `/api/system/ws` on the agent: frames are `/api/system/metrics` byte for byte, the node id
//! rule answers before any upgrade, the read token is asked (header or subprotocol), pings are
//! answered, a client that never reads is skipped ahead (never queued for) and one that never
//! answers pings is dropped. On the coordinator: frames are its `/api/system/metrics` for the
//! same filter, refusals come before the upgrade, the read token is asked. `?view=headline` on
//! both: each node's headline, the summary of its element of the same sample; bad views are 400.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::cluster::{agent, coordinator, eventually, get, token_file, Process, DEADLINE};
use common::Monitor;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url(monitor: &Monitor, path: &str) -> String {
    monitor.url(path).replacen("http://", "ws://", 1)
}

async fn connect(
    monitor: &Monitor,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, WsError> {
    connect_url(&ws_url(monitor, path), headers).await
}

async fn connect_url(url: &str, headers: &[(&str, &str)]) -> Result<Socket, WsError> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// The next text frame, at most 10 s away.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket open")
            .expect("a good frame");
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

#[tokio::test]
async fn frames_are_the_metrics_json_of_each_sample() {
    let monitor = Monitor::on_fixture("server", &["--interval", "300ms"]);
    let mut socket = connect(&monitor, "/api/system/ws?node_id=asked-as", &[])
        .await
        .expect("upgrade");
    let mut matched = 0;
    for _ in 0..20 {
        let frame = next_text(&mut socket).await;
        let rest = monitor
            .get("/api/system/metrics?node_id=asked-as")
            .await
            .body;
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(parsed[0]["node_id"], "asked-as");
        let rest_parsed: serde_json::Value = serde_json::from_str(&rest).unwrap();
        if parsed[0]["timestamp"] == rest_parsed[0]["timestamp"] {
            assert_eq!(frame, rest, "same sample, same bytes");
            matched += 1;
            if matched == 2 {
                return;
            }
        }
    }
    panic!("no frame matched /api/system/metrics of the same sample");
}

#[tokio::test]
async fn bad_node_ids_are_refused_before_the_upgrade_and_pings_are_answered() {
    let monitor = Monitor::on_fixture("server", &["--node-id", "named", "--interval", "300ms"]);
    for (path, status) in [
        ("/api/system/ws?node_id=other", 404),
        ("/api/system/ws?node_id=bad%20id", 400),
    ] {
        match connect(&monitor, path, &[]).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{path}");
                let body = response.body().clone().unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert!(body["error"].is_string(), "{path}: {body}");
            }
            other => panic!("{path}: {:?}", other.map(|_| ())),
        }
    }
    let plain = monitor.get("/api/system/ws").await;
    assert_eq!(plain.status / 100, 4, "{}", plain.body);
    assert!(plain.json()["error"].is_string());

    let mut socket = connect(&monitor, "/api/system/ws?node_id=named", &[])
        .await
        .expect("upgrade");
    next_text(&mut socket).await;
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping sent");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer within 10 s")
            .expect("open")
            .expect("good");
        if let Message::Pong(payload) = message {
            assert_eq!(&payload[..], b"are you there");
            break;
        }
    }
}

#[tokio::test]
async fn the_read_token_is_asked_in_a_header_or_a_subprotocol() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret/with=odd+chars\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let file = token_file.display().to_string();
    let monitor = Monitor::on_fixture(
        "server",
        &["--auth-token-file", &file, "--interval", "300ms"],
    );
    match connect(&monitor, "/api/system/ws", &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("without a token: {:?}", other.map(|_| ())),
    }
    let wrong = "tracklab.metrics.v1, bearer.d3Jvbmc"; // "wrong"
    match connect(
        &monitor,
        "/api/system/ws",
        &[("sec-websocket-protocol", wrong)],
    )
    .await
    {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("with a wrong token: {:?}", other.map(|_| ())),
    }
    let mut by_header = connect(
        &monitor,
        "/api/system/ws",
        &[("authorization", "Bearer s3cret/with=odd+chars")],
    )
    .await
    .expect("the header is taken");
    next_text(&mut by_header).await;
    // base64url("s3cret/with=odd+chars"), no padding.
    let protocols = "tracklab.metrics.v1, bearer.czNjcmV0L3dpdGg9b2RkK2NoYXJz";
    let mut by_protocol = connect(
        &monitor,
        "/api/system/ws",
        &[("sec-websocket-protocol", protocols)],
    )
    .await
    .expect("the subprotocol is taken");
    next_text(&mut by_protocol).await;
}

/// The status of a refused upgrade, and its JSON body.
fn refused(result: Result<Socket, WsError>, what: &str) -> (u16, serde_json::Value) {
    match result {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            (response.status().as_u16(), body)
        }
        other => panic!("{what}: {:?}", other.map(|_| ())),
    }
}

/// Reads what the server had sent before it dropped the client: the text frames up to the end
/// of the stream. Panics if the stream is still open after 15 s (the server did not drop it).
async fn drain_until_dropped(socket: &mut Socket) -> Vec<String> {
    let mut frames = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!(
                "still open after 15 s of reading ({} frames): the server did not drop it",
                frames.len()
            ),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return frames,
            Ok(Some(Ok(Message::Text(text)))) => frames.push(text.to_string()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

fn timestamp_ms(frame: &str) -> i64 {
    let parsed: serde_json::Value = serde_json::from_str(frame).expect("a JSON frame");
    parsed[0]["timestamp"].as_i64().expect("a timestamp")
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What is pending for a client that stopped reading is the latest sample, not every sample
/// since: the kernel's buffers fill (up to 4 MiB on the server's side: the frames are made
/// large, 32 copies of the element, so that this takes seconds, not minutes), the server's
/// send blocks and the samples meanwhile are skipped (or the client is dropped as too slow).
/// Every frame it then finds waiting was sent before it started reading again; were the
/// server to queue them, there would be one per sample, 250 of them.
#[tokio::test]
async fn a_client_that_never_reads_is_skipped_ahead_not_queued_for() {
    let monitor = Monitor::on_fixture("server", &["--interval", "100ms"]);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(([127, 0, 0, 1], monitor.rest_port).into())
        .await
        .expect("connect");
    let ids: Vec<String> = (0..32).map(|i| format!("copy-{i}")).collect();
    let path = format!("/api/system/ws?node_id={}", ids.join(","));
    let request = ws_url(&monitor, &path).into_client_request().unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    let first = next_text(&mut socket).await;
    assert!(first.len() > 32 * 1024, "{} bytes a frame", first.len());
    let from = timestamp_ms(&first);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let resumed = unix_ms_now();
    let elapsed_samples = (resumed - from) / 100;
    assert!(elapsed_samples >= 200, "{elapsed_samples}");

    // The frames already waiting: until the stream ends or a sample newer than the resumption.
    let mut waiting = 0;
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if timestamp_ms(&text) > resumed {
                    break;
                }
                waiting += 1;
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) | Err(_) => break,
        }
    }
    assert!(
        waiting < elapsed_samples / 2,
        "{waiting} frames were waiting for {elapsed_samples} samples: queued, not skipped"
    );
}

/// With `--http.idle-timeout 1s` the server pings every 0.5 s and drops a client that has not
/// answered by the next ping; a client that reads (and so answers) stays.
#[tokio::test]
async fn a_client_that_never_answers_pings_is_dropped() {
    let monitor = Monitor::on_fixture(
        "server",
        &["--interval", "100ms", "--http.idle-timeout", "1s"],
    );
    let mut silent = connect(&monitor, "/api/system/ws", &[])
        .await
        .expect("upgrade");
    let mut reading = connect(&monitor, "/api/system/ws", &[])
        .await
        .expect("upgrade");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        next_text(&mut reading).await;
    }
    let frames = drain_until_dropped(&mut silent).await;
    // 40 samples passed; the server gave up about 1 s in.
    assert!(frames.len() < 30, "{} frames before the drop", frames.len());
    next_text(&mut reading).await;
}

/// Two agents of these (fixture, node id) and a coordinator polling them every 300 ms, once it
/// serves both.
async fn two_node_cluster(
    (fixture1, id1): (&str, &str),
    (fixture2, id2): (&str, &str),
) -> (Process, Process, Process) {
    let a1 = agent(fixture1, id1, Ipv4Addr::LOCALHOST, &[]);
    let a2 = agent(fixture2, id2, Ipv4Addr::LOCALHOST, &[]);
    let agents = format!("{},{}", a1.base(), a2.base());
    let coord = coordinator(&["--agents", &agents, "--poll-interval", "300ms"]);
    eventually("both nodes served", DEADLINE, || async {
        let reply = get(&coord.url("/api/system/metrics"), None).await;
        let n = reply.json().as_array().map_or(0, Vec::len);
        if n == 2 {
            Ok(())
        } else {
            Err(reply.body)
        }
    })
    .await;
    (a1, a2, coord)
}

/// The coordinator's WebSocket: refusals before the upgrade as on `/api/system/metrics`, then
/// after each poll round that filter's array (the same elements; only `dataAgeSeconds` moves
/// with the moment it is asked).
#[tokio::test]
async fn coordinator_frames_are_its_metrics_for_the_same_filter() {
    let (_a1, _a2, coord) = two_node_cluster(("server", "ws-1"), ("captured-vm", "ws-2")).await;
    let ws = |path: &str| coord.url(path).replacen("http://", "ws://", 1);

    for (path, status) in [
        ("/api/system/ws?node_id=nobody", 404),
        ("/api/system/ws?node_id=bad%20id", 400),
        ("/api/system/ws?node_id=ws-1,nobody", 404),
    ] {
        let (got, body) = refused(connect_url(&ws(path), &[]).await, path);
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let plain = get(&coord.url("/api/system/ws"), None).await;
    assert_eq!(plain.status / 100, 4, "{}", plain.body);
    assert!(plain.json()["error"].is_string());

    for filter in ["", "?node_id=ws-2", "?node_id=ws-2,ws-1"] {
        let mut socket = connect_url(&ws(&format!("/api/system/ws{filter}")), &[])
            .await
            .expect("upgrade");
        let mut matched = 0;
        for _ in 0..30 {
            let frame: serde_json::Value =
                serde_json::from_str(&next_text(&mut socket).await).unwrap();
            let rest = get(&coord.url(&format!("/api/system/metrics{filter}")), None)
                .await
                .json();
            let without_age = |v: &serde_json::Value| {
                let mut v = v.clone();
                for element in v.as_array_mut().unwrap() {
                    assert!(element["dataAgeSeconds"].is_number(), "{element}");
                    element.as_object_mut().unwrap().remove("dataAgeSeconds");
                }
                v
            };
            let (frame, rest) = (without_age(&frame), without_age(&rest));
            let ids = |v: &serde_json::Value| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["node_id"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(ids(&frame), ids(&rest), "{filter}");
            if frame == rest {
                matched += 1;
                if matched == 2 {
                    break;
                }
            }
        }
        assert_eq!(
            matched, 2,
            "{filter}: no two frames matched /api/system/metrics"
        );
    }
}

#[tokio::test]
async fn the_coordinator_asks_the_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(dir.path(), "s3cret/with=odd+chars");
    let coord = coordinator(&["--auth-token-file", &file, "--poll-interval", "300ms"]);
    let url = coord.url("/api/system/ws").replacen("http://", "ws://", 1);
    let (status, _) = refused(connect_url(&url, &[]).await, "without a token");
    assert_eq!(status, 401);
    let protocols = "tracklab.metrics.v1, bearer.czNjcmV0L3dpdGg9b2RkK2NoYXJz";
    let mut socket = connect_url(&url, &[("sec-websocket-protocol", protocols)])
        .await
        .expect("the subprotocol is taken");
    assert_eq!(
        next_text(&mut socket).await,
        "[]",
        "no agents, an empty array"
    );
}

/// Checks a headline (`?view=headline`) against the `/api/system/metrics` element of the same
/// sample: the paths they share hold the same values, and the accelerators are summarised.
fn assert_headline_of(headline: &serde_json::Value, element: &serde_json::Value) {
    let mut keys: Vec<&str> = headline
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .filter(|k| !["status", "dataAgeSeconds"].contains(k))
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "acceleratorSummary",
            "cpu",
            "disk",
            "hostname",
            "memory",
            "network",
            "node_id",
            "timestamp"
        ],
        "{headline}"
    );
    for path in [
        "/node_id",
        "/timestamp",
        "/hostname",
        "/status",
        "/cpu/overall",
        "/memory/usage",
        "/memory/used",
        "/memory/total",
        "/disk/usage",
        "/disk/ioRead",
        "/disk/ioWrite",
        "/network/bytesIn",
        "/network/bytesOut",
    ] {
        assert_eq!(headline.pointer(path), element.pointer(path), "{path}");
    }
    let cores = element["cpu"]["cores"].as_array().expect("cores").len();
    assert_eq!(headline["cpu"]["coreCount"], cores);
    let devices = element["accelerators"].as_array().expect("accelerators");
    let summary = &headline["acceleratorSummary"];
    assert_eq!(summary["count"], devices.len(), "{summary}");
    let floats = |path: &str| -> Vec<f64> {
        devices
            .iter()
            .filter_map(|d| d.pointer(path).and_then(serde_json::Value::as_f64))
            .collect()
    };
    let close = |field: &str, expected: Option<f64>| {
        let got = summary[field].as_f64();
        match (got, expected) {
            (Some(got), Some(expected)) => {
                assert!(
                    (got - expected).abs() < 0.006,
                    "{field}: {got} ≠ {expected}"
                )
            }
            _ => assert_eq!(got, expected, "{field}: {summary}"),
        }
    };
    let utilization = floats("/utilization");
    let mean = (!utilization.is_empty())
        .then(|| utilization.iter().sum::<f64>() / utilization.len() as f64);
    close("utilization", mean);
    close(
        "utilizationMax",
        utilization.iter().copied().reduce(f64::max),
    );
    close("power", floats("/power").into_iter().reduce(|a, b| a + b));
    close(
        "temperatureMax",
        floats("/temperature").into_iter().reduce(f64::max),
    );
    for (field, path) in [
        ("memoryUsed", "/memory/used"),
        ("memoryTotal", "/memory/total"),
    ] {
        let values: Vec<u64> = devices
            .iter()
            .filter_map(|d| d.pointer(path).and_then(serde_json::Value::as_u64))
            .collect();
        let sum = (!values.is_empty()).then(|| values.iter().sum::<u64>());
        assert_eq!(summary[field].as_u64(), sum, "{field}: {summary}");
    }
    let mut names: Vec<&str> = devices
        .iter()
        .filter_map(|d| d["name"].as_str())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(summary["names"], serde_json::json!(names));
}

/// `?view=` answers a bad value with a JSON 400, on the socket and on REST alike.
async fn assert_bad_views_refused(ws: impl Fn(&str) -> String, http: impl Fn(&str) -> String) {
    for query in [
        "?view=nope",
        "?view=",
        "?view=Headline",
        "?view=headline&node_id=bad%20id",
    ] {
        let path = format!("/api/system/ws{query}");
        let (status, body) = refused(connect_url(&ws(&path), &[]).await, &path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
        let path = format!("/api/system/metrics{query}");
        let reply = get(&http(&path), None).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        assert_eq!(reply.json()["error"], body["error"], "{path}");
    }
    let (_, body) = refused(
        connect_url(&ws("/api/system/ws?view=nope"), &[]).await,
        "view=nope",
    );
    assert_eq!(body["error"], "invalid view");
    assert_eq!(body["view"], "nope");
}

#[tokio::test]
async fn headline_frames_summarise_the_metrics_of_each_sample() {
    // Two AMD GPUs and an NPU: accelerators to summarise.
    let monitor = Monitor::on_fixture("accel/workstation", &["--interval", "300ms"]);
    assert_bad_views_refused(|p| ws_url(&monitor, p), |p| monitor.url(p)).await;
    let full = monitor.get("/api/system/metrics?view=full").await;
    assert_eq!(full.status, 200, "view=full is the default: {}", full.body);

    let mut socket = connect(&monitor, "/api/system/ws?view=headline", &[])
        .await
        .expect("upgrade");
    let mut matched = 0;
    for _ in 0..30 {
        let frame = next_text(&mut socket).await;
        let rest = monitor.get("/api/system/metrics?view=headline").await.body;
        let element = monitor.get("/api/system/metrics").await.body;
        let (headline, element): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&frame).unwrap(),
            serde_json::from_str(&element).unwrap(),
        );
        let same = |v: &serde_json::Value| v[0]["timestamp"] == headline[0]["timestamp"];
        if same(&serde_json::from_str(&rest).unwrap()) && same(&element) {
            assert_eq!(frame, rest, "same sample, same bytes");
            assert_headline_of(&headline[0], &element[0]);
            assert!(
                frame.len() * 5 < serde_json::to_string(&element).unwrap().len(),
                "a fifth of the element at most: {} bytes",
                frame.len()
            );
            matched += 1;
            if matched == 2 {
                return;
            }
        }
    }
    panic!("no headline frame matched /api/system/metrics of the same sample");
}

/// The coordinator's headline stream: every node's headline (or those asked for) after each
/// round, as its `/api/system/metrics?view=headline`, each one the summary of the node's element.
#[tokio::test]
async fn coordinator_headline_frames_summarise_its_metrics() {
    let (_a1, _a2, coord) =
        two_node_cluster(("server", "hl-1"), ("accel/workstation", "hl-2")).await;
    let ws = |path: &str| coord.url(path).replacen("http://", "ws://", 1);
    assert_bad_views_refused(ws, |p| coord.url(p)).await;
    let (status, _) = refused(
        connect_url(&ws("/api/system/ws?view=headline&node_id=nobody"), &[]).await,
        "an unknown node",
    );
    assert_eq!(status, 404);

    let without_age = |v: &serde_json::Value| {
        let mut v = v.clone();
        for element in v.as_array_mut().unwrap() {
            assert!(element["dataAgeSeconds"].is_number(), "{element}");
            element.as_object_mut().unwrap().remove("dataAgeSeconds");
        }
        v
    };
    for filter in ["", "&node_id=hl-2", "&node_id=hl-2,hl-1"] {
        let query = format!("?view=headline{filter}");
        let mut socket = connect_url(&ws(&format!("/api/system/ws{query}")), &[])
            .await
            .expect("upgrade");
        let mut matched = 0;
        for _ in 0..30 {
            let frame: serde_json::Value =
                serde_json::from_str(&next_text(&mut socket).await).unwrap();
            let rest = get(&coord.url(&format!("/api/system/metrics{query}")), None).await;
            let full = get(&coord.url(&format!("/api/system/metrics?{filter}")), None).await;
            let (frame, rest, full) = (
                without_age(&frame),
                without_age(&rest.json()),
                without_age(&full.json()),
            );
            // The same samples, and the same statuses (a node may go offline in between).
            let stamps = |v: &serde_json::Value| -> Vec<(String, i64, String)> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        let timestamp = e["timestamp"].as_i64().unwrap();
                        (e["node_id"].to_string(), timestamp, e["status"].to_string())
                    })
                    .collect()
            };
            if stamps(&frame) == stamps(&rest) && stamps(&rest) == stamps(&full) {
                assert_eq!(frame, rest, "{query}");
                let (frame, full) = (frame.as_array().unwrap(), full.as_array().unwrap());
                for (headline, element) in frame.iter().zip(full) {
                    assert_headline_of(headline, element);
                }
                let gpus = frame.iter().find(|h| h["node_id"] == "hl-2").unwrap();
                assert!(gpus["acceleratorSummary"]["count"].as_u64() > Some(0));
                matched += 1;
                if matched == 2 {
                    break;
                }
            }
        }
        assert_eq!(
            matched, 2,
            "{query}: no two frames matched the REST answers"
        );
    }
}
