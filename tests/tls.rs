//! TLS end to end, in process: a throwaway CA and server certificate made at test time (rcgen),
//! REST served by `system_monitor::serve::tls_listener::serve` and called with reqwest, gRPC (the v1 service)
//! served by tonic with the same files — trusted clients get answers, others fail the handshake,
//! and shutdown lets in-flight requests finish.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::GetInfoRequest;
use system_monitor::serve::{grpc_v1, AppState};
use system_monitor::tls::{Identity, TrustRoots};

/// How long any one step may take before the test fails rather than hangs.
const STEP: Duration = Duration::from_secs(10);

/// A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA, as PEM
/// files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        let ca = new_ca("system_monitor test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        write("ca.pem", ca.pem());
        write("cert.pem", cert.pem());
        write("key.pem", key.serialize_pem());
        write("other-ca.pem", new_ca("unrelated test CA").pem());
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn identity(&self) -> Identity {
        Identity::load(&self.path("cert.pem"), &self.path("key.pem")).unwrap()
    }

    fn roots(&self, ca: &str) -> TrustRoots {
        TrustRoots::load(Some(&self.path(ca))).unwrap()
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

/// A REST server over TLS on an ephemeral loopback port, stopped by `shutdown`.
struct RestServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve_rest(identity: &Identity, app: Router) -> RestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(system_monitor::serve::tls_listener::serve(
        listener,
        identity.rest_server_config(),
        app,
        shutdown.clone(),
    ));
    RestServer {
        addr,
        shutdown,
        served,
    }
}

fn client(roots: &TrustRoots) -> reqwest::Client {
    roots
        .http_client_builder()
        .unwrap()
        .timeout(STEP)
        .build()
        .unwrap()
}

fn hello() -> Router {
    Router::new().route("/hello", get(|| async { "hello over tls" }))
}

#[tokio::test]
async fn trusted_client_gets_answers_untrusted_one_fails_the_handshake() {
    let pki = Pki::new();
    let server = serve_rest(&pki.identity(), hello()).await;
    let port = server.addr.port();

    for host in ["127.0.0.1", "localhost"] {
        let response = client(&pki.roots("ca.pem"))
            .get(format!("https://{host}:{port}/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "hello over tls");
    }

    let err = client(&pki.roots("other-ca.pem"))
        .get(format!("https://127.0.0.1:{port}/hello"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let chain = format!("{err:?}");
    assert!(
        chain.contains("InvalidCertificate(UnknownIssuer)"),
        "not a certificate error: {chain}"
    );
    assert!(
        system_monitor::http_client::is_tls(&err),
        "not told as a TLS failure: {chain}"
    );

    // Plain HTTP on the TLS port gets no answer, and neither failure disturbs the server.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/hello"))
        .timeout(STEP)
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    let again = client(&pki.roots("ca.pem"))
        .get(format!("https://127.0.0.1:{port}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    server.shutdown.cancel();
    tokio::time::timeout(STEP, server.served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn handlers_see_the_peer_address_over_tls() {
    let pki = Pki::new();
    let app = Router::new().route(
        "/peer",
        get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
                peer.to_string()
            },
        ),
    );
    let server = serve_rest(&pki.identity(), app).await;
    let source = std::net::IpAddr::from([127, 0, 0, 2]);
    let answer = pki
        .roots("ca.pem")
        .http_client_builder()
        .unwrap()
        .local_address(source)
        .timeout(STEP)
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{}/peer", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let peer: SocketAddr = answer.text().await.unwrap().parse().unwrap();
    assert_eq!(peer.ip(), source);
    assert_ne!(peer.port(), 0);
    server.shutdown.cancel();
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_others() {
    let pki = Pki::new();
    let server = serve_rest(&pki.identity(), hello()).await;
    // Connects and says nothing: its handshake waits (up to the handshake timeout) on its own.
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let response = tokio::time::timeout(
        STEP,
        client(&pki.roots("ca.pem"))
            .get(format!("https://127.0.0.1:{}/hello", server.addr.port()))
            .send(),
    )
    .await
    .expect("a silent client held up the handshake of another")
    .unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let pki = Pki::new();
    let entered = Arc::new(Notify::new());
    let app = {
        let entered = Arc::clone(&entered);
        Router::new().route(
            "/slow",
            get(move || {
                let entered = Arc::clone(&entered);
                async move {
                    entered.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "finished"
                }
            }),
        )
    };
    let server = serve_rest(&pki.identity(), app).await;
    let url = format!("https://127.0.0.1:{}/slow", server.addr.port());
    let trusted = client(&pki.roots("ca.pem"));
    let request = tokio::spawn({
        let trusted = trusted.clone();
        let url = url.clone();
        async move { trusted.get(url).send().await?.text().await }
    });
    tokio::time::timeout(STEP, entered.notified())
        .await
        .unwrap();
    server.shutdown.cancel();
    // The server waits for the request (the process would exit, and cut it, once serve returns).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.served.is_finished(),
        "serve returned with a request in flight"
    );

    let body = tokio::time::timeout(STEP, request)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(body, "finished");
    tokio::time::timeout(STEP, server.served)
        .await
        .expect("the server did not stop after draining")
        .unwrap()
        .unwrap();
    // Stopped: no new connection is accepted.
    assert!(trusted.get(url).send().await.is_err());
}

/// An [`AppState`] around a fixed snapshot, for the gRPC service.
fn state(node_id: &str, shutdown: CancellationToken) -> AppState {
    let snapshot = Arc::new(system_monitor::model::Snapshot {
        node_id: node_id.into(),
        timestamp_ms: i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
        ..Default::default()
    });
    let (_publish, snapshots) = watch::channel(Arc::clone(&snapshot));
    AppState {
        snapshots,
        baseline: snapshot,
        interval: Duration::from_secs(1),
        shutdown,
        teardown_allowed: false,
        collect: Arc::new(Default::default()),
        started_at: SystemTime::now(),
        node_id_origin: Default::default(),
        history: Arc::new(system_monitor::history::History::new(
            &Default::default(),
            Duration::from_secs(1),
        )),
        websocket: Default::default(),
    }
}

async fn grpc_info(
    addr: SocketAddr,
    roots: &TrustRoots,
) -> Result<String, Box<dyn std::error::Error>> {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", addr.port()))?
            .tls_config(roots.grpc_client_config())?
            .connect_timeout(STEP)
            .timeout(STEP)
            .connect()
            .await?;
    let info = MonitorServiceClient::new(channel)
        .get_info(GetInfoRequest::default())
        .await?;
    Ok(info.into_inner().node_id)
}

#[tokio::test]
async fn grpc_over_tls_with_the_same_files() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(
        tonic::transport::Server::builder()
            .tls_config(pki.identity().grpc_server_config())
            .unwrap()
            .add_service(grpc_v1::service(state("tls-node", shutdown.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );

    let node = grpc_info(addr, &pki.roots("ca.pem")).await.unwrap();
    assert_eq!(node, "tls-node");
    let err = grpc_info(addr, &pki.roots("other-ca.pem"))
        .await
        .unwrap_err();
    let chain = format!("{err:?}");
    assert!(
        chain.contains("InvalidCertificate(UnknownIssuer)"),
        "not a certificate error: {chain}"
    );

    shutdown.cancel();
    tokio::time::timeout(STEP, served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The error a user sees for a key that is not the certificate's names both files.
#[test]
fn mismatched_pair_is_refused_at_load() {
    let pki = Pki::new();
    let other = Pki::new();
    let err = Identity::load(&pki.path("cert.pem"), &other.path("key.pem")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("does not match") && text.contains(&path_text(&pki.path("cert.pem"))),
        "{text}"
    );
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
