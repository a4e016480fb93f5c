//! Agent mode: registers this agent with its coordinator (`--coordinator`) and re-registers every
//! `--register-interval` as a heartbeat, so that a restarted coordinator relearns it within one
//! interval. Reads the agent's [`Config`]; talks to `POST /api/cluster/register` with the
//! cluster token (`--cluster-token-file`), the registration secret.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::{Token, TokenKind};
use crate::config::{Config, RegisterConfig};
use crate::http_client::{self, ClientOptions};
use crate::model::wire::{RegisterAnswer, RegisterRequest, REGISTER_PATH};
use crate::tls::TrustRoots;

/// How long one registration request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest heartbeat a coordinator may ask for (a bound on a misconfigured one).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The largest registration answer read.
const ANSWER_LIMIT: usize = 16 * 1024;

/// Why registration cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("--coordinator needs the REST API: the coordinator polls agents over REST")]
    NoRest,
    #[error("invalid --coordinator URL {url:?}: {reason}")]
    Coordinator { url: String, reason: String },
    #[error("cannot verify the https coordinator: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "--coordinator needs the cluster token, which coordinators require of registrations: \
         give it with {} PATH or {}",
        TokenKind::Cluster.flag(),
        TokenKind::Cluster.env()
    )]
    NoClusterToken,
}

/// Where the advertised URL comes from.
#[derive(Debug, Clone)]
enum Advertise {
    /// `--advertise-url`, as given.
    Given(String),
    /// `<scheme>://<bind address>:<rest port>`; with an unspecified bind (0.0.0.0, ::), the
    /// source address of the route to the coordinator, found for each attempt.
    Bound {
        scheme: &'static str,
        bind: IpAddr,
        port: u16,
    },
}

/// The agent's registration loop, ready to [`run`](Registration::run).
#[derive(Debug)]
pub struct Registration {
    /// `<coordinator>/api/cluster/register`.
    endpoint: reqwest::Url,
    /// This agent's node id.
    node_id: String,
    /// How the advertised URL is made.
    advertise: Advertise,
    /// `--node-label`s.
    labels: BTreeMap<String, String>,
    /// `--register-interval`, shortened when the coordinator asks for more frequent heartbeats.
    interval: Duration,
    /// The cluster token, sent as `Authorization: Bearer` (the coordinator refuses
    /// registrations without it).
    token: Token,
    /// The agent's bind address: registrations leave from it, so that the coordinator sees the
    /// peer address it is asked to poll.
    bind: IpAddr,
    /// What an https coordinator is verified against: `--tls-ca`, else the system's roots, read
    /// here at start so that a host without them fails now rather than at every heartbeat.
    roots: Option<TrustRoots>,
}

impl Registration {
    /// Prepares registration for an agent configured by `config`, serving REST on `rest_port`,
    /// registering with `cluster_token` (without one no coordinator would take it: an error).
    pub fn new(
        register: &RegisterConfig,
        config: &Config,
        rest_port: Option<u16>,
        cluster_token: Option<Token>,
    ) -> Result<Registration, RegisterError> {
        let port = rest_port.ok_or(RegisterError::NoRest)?;
        let invalid = |reason: String| RegisterError::Coordinator {
            url: register.coordinator.clone(),
            reason,
        };
        let endpoint = reqwest::Url::parse(&register.coordinator)
            .and_then(|base| base.join(REGISTER_PATH))
            .map_err(|e| invalid(e.to_string()))?;
        let roots = if config.tls.ca.is_some() || endpoint.scheme() == "https" {
            Some(TrustRoots::load(config.tls.ca.as_deref())?)
        } else {
            None
        };
        let token = cluster_token.ok_or(RegisterError::NoClusterToken)?;
        let advertise = match &register.advertise_url {
            Some(url) => Advertise::Given(url.clone()),
            None => Advertise::Bound {
                scheme: advertise_scheme(config),
                bind: config.bind,
                port,
            },
        };
        Ok(Registration {
            endpoint,
            node_id: config.node_id.to_string(),
            advertise,
            labels: register.labels.iter().cloned().collect(),
            interval: config.register_interval,
            token,
            bind: config.bind,
            roots,
        })
    }

    /// Registers now and every interval until `shutdown`. Failures are logged (once per change
    /// of outcome) and retried at the next heartbeat; they never stop the agent.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut client: Option<(Option<IpAddr>, reqwest::Client)> = None;
        let mut last_outcome: Option<String> = None;
        loop {
            let outcome = match self.attempt(&mut client).await {
                Ok(interval) => {
                    if let Some(asked) = interval.filter(|i| *i < self.interval) {
                        self.interval = asked.max(MIN_INTERVAL);
                    }
                    "registered".to_string()
                }
                Err(why) => why,
            };
            if last_outcome.as_deref() != Some(outcome.as_str()) {
                if outcome == "registered" {
                    tracing::info!(coordinator = %self.endpoint, "registered with the coordinator");
                } else {
                    tracing::warn!(coordinator = %self.endpoint, "registration failed: {outcome}");
                }
                last_outcome = Some(outcome);
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One registration. Returns the heartbeat interval the coordinator asks for, if any.
    async fn attempt(
        &self,
        client: &mut Option<(Option<IpAddr>, reqwest::Client)>,
    ) -> Result<Option<Duration>, String> {
        let (url, source) = self.advertised().await?;
        let client = match client {
            Some((address, client)) if *address == source => client.clone(),
            _ => {
                let options = ClientOptions {
                    local_address: source,
                    roots: self.roots.clone(),
                    ..ClientOptions::default()
                };
                let built = http_client::build(&options).map_err(|e| e.to_string())?;
                *client = Some((source, built.clone()));
                built
            }
        };
        let body = RegisterRequest {
            node_id: self.node_id.clone(),
            url,
            labels: self.labels.clone(),
            version: crate::VERSION.to_string(),
        };
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let request = client
            .post(self.endpoint.clone())
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::AUTHORIZATION, self.token.header_value())
            .body(body);
        let response = request
            .send()
            .await
            .map_err(|e| http_client::describe(&e))?;
        let status = response.status();
        let answer = http_client::read_body(response, ANSWER_LIMIT)
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer);
            return Err(format!("the coordinator answered {status}: {text}"));
        }
        let answer: RegisterAnswer =
            serde_json::from_slice(&answer).map_err(|e| format!("unreadable answer: {e}"))?;
        Ok(answer
            .heartbeat_interval_seconds
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
            .map(Duration::from_secs_f64))
    }

    /// The URL to advertise and the source address to register from.
    async fn advertised(&self) -> Result<(String, Option<IpAddr>), String> {
        let bound = (!self.bind.is_unspecified()).then_some(self.bind);
        match &self.advertise {
            Advertise::Given(url) => Ok((url.clone(), bound)),
            Advertise::Bound { scheme, bind, port } => {
                let host = match bound {
                    Some(_) => *bind,
                    None => self.route_source().await?,
                };
                let url = format!("{scheme}://{}", SocketAddr::new(host, *port));
                Ok((url, Some(host)))
            }
        }
    }

    /// The address the kernel would send from to reach the coordinator (a connected UDP socket
    /// sends nothing, but has its source address chosen).
    async fn route_source(&self) -> Result<IpAddr, String> {
        let host = self
            .endpoint
            .host_str()
            .ok_or("the coordinator URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = self.endpoint.port_or_known_default().unwrap_or(80);
        let target = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        let local: SocketAddr = if target.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| format!("cannot find a route to {target}: {e}"))?;
        socket
            .connect(target)
            .await
            .map_err(|e| format!("no route to {target}: {e}"))?;
        socket
            .local_addr()
            .map(|a| a.ip())
            .map_err(|e| format!("no route to {target}: {e}"))
    }
}

/// The scheme of the default advertised URL: `https` when the agent serves TLS (`--tls-cert`).
fn advertise_scheme(config: &Config) -> &'static str {
    if config.tls.identity.is_some() {
        "https"
    } else {
        "http"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn setup(bind: IpAddr, advertise_url: Option<&str>) -> (RegisterConfig, Config) {
        let register = RegisterConfig {
            coordinator: "http://127.0.0.1:9".into(),
            advertise_url: advertise_url.map(String::from),
            labels: vec![("rack".into(), "r1".into())],
        };
        let config = Config {
            node_id: crate::model::NodeId::parse("n1").unwrap(),
            bind,
            ..Config::default()
        };
        (register, config)
    }

    /// A cluster token for the tests.
    fn secret() -> Option<Token> {
        Token::new(TokenKind::Cluster, "cluster-secret", "test").ok()
    }

    #[tokio::test]
    async fn the_advertised_url_follows_the_bind_address() {
        let (register, config) = setup(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), None);
        let r = Registration::new(&register, &config, Some(8080), secret()).unwrap();
        assert_eq!(
            r.endpoint.as_str(),
            "http://127.0.0.1:9/api/cluster/register"
        );
        let (url, source) = r.advertised().await.unwrap();
        assert_eq!(url, "http://127.0.0.3:8080");
        assert_eq!(source, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
    }

    #[tokio::test]
    async fn an_unspecified_bind_advertises_the_route_to_the_coordinator() {
        let (register, config) = setup(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None);
        let r = Registration::new(&register, &config, Some(8080), secret()).unwrap();
        let (url, source) = r.advertised().await.unwrap();
        assert_eq!(url, "http://127.0.0.1:8080");
        assert_eq!(source, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }

    #[tokio::test]
    async fn a_given_url_is_advertised_as_is() {
        let (register, config) = setup(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some("https://10.0.0.5:8443"),
        );
        let r = Registration::new(&register, &config, Some(8080), secret()).unwrap();
        assert_eq!(
            r.advertised().await.unwrap(),
            ("https://10.0.0.5:8443".to_string(), None)
        );
    }

    #[tokio::test]
    async fn an_agent_serving_tls_advertises_https() {
        let (register, mut config) = setup(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), None);
        config.tls.identity = Some(crate::config::TlsIdentityFiles {
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        });
        let r = Registration::new(&register, &config, Some(8443), secret()).unwrap();
        assert_eq!(r.advertised().await.unwrap().0, "https://127.0.0.3:8443");
        assert!(r.roots.is_none(), "a plain-http coordinator needs no roots");
    }

    #[test]
    fn the_ca_of_an_https_coordinator_is_read_at_start() {
        let (mut register, mut config) = setup(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        register.coordinator = "https://127.0.0.1:9".into();
        config.tls.ca = Some("/nonexistent/ca.pem".into());
        let err = Registration::new(&register, &config, Some(8080), secret()).unwrap_err();
        assert!(matches!(err, RegisterError::Tls(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn registration_needs_rest() {
        let (register, config) = setup(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        assert!(matches!(
            Registration::new(&register, &config, None, secret()),
            Err(RegisterError::NoRest)
        ));
    }

    #[test]
    fn registration_needs_the_cluster_token() {
        let (register, config) = setup(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        let err = Registration::new(&register, &config, Some(8080), None).unwrap_err();
        assert!(matches!(err, RegisterError::NoClusterToken), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("--cluster-token-file") && text.contains("SYSTEM_MONITOR_CLUSTER_TOKEN"),
            "{text}"
        );
    }
}
