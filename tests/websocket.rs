//! `/api/system/ws` on the agent: frames are `/api/system/metrics` byte for byte, the node id
//! rule answers before any upgrade, the read token is asked (header or subprotocol), and pings
//! are answered.

mod common;

use std::time::Duration;

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
    let mut request = ws_url(monitor, path).into_client_request()?;
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
