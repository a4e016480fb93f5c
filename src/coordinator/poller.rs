//! Keeps every agent's latest element fresh: a round every `--poll-interval` GETs each agent's
//! `/api/system/metrics` over a pooled keep-alive connection, at most `--poll-concurrency` at
//! once (a `Semaphore`), each bounded by `--poll-timeout`. An agent still in flight from an
//! earlier round is skipped, so a hung agent costs its own slot and nothing else.
//!
//! The poller runs on a thread and runtime of its own ([`spawn_thread`]): a round's answers
//! arrive in bursts of hundreds of ready tasks, and on the serving runtime a query would wait
//! behind the whole burst. On its own thread the OS scheduler shares the CPU between the two, so
//! a `?node_id=` query costs its own microseconds whatever the fan-out is doing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::element;
use super::metrics::{CoordinatorMetrics, ErrorKind};
use super::registry::{Agent, Registry};
use crate::auth::Token;
use crate::http_client;

/// The largest answer read from an agent. A 256-core host with a hundred filesystems and
/// interfaces encodes to well under 1 MiB.
pub const ANSWER_LIMIT: usize = 4 * 1024 * 1024;

/// The agents' metrics path.
const METRICS_PATH: &str = "api/system/metrics";

/// What every poll shares.
#[derive(Clone)]
pub struct Poller {
    /// Where results go.
    pub registry: Arc<Registry>,
    /// The pooled client (one connection kept per agent).
    pub client: reqwest::Client,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<Token>,
    /// Per-poll deadline.
    pub timeout: Duration,
    /// Latency and error counters.
    pub metrics: Arc<CoordinatorMetrics>,
}

/// Runs `poller` on a dedicated thread with a single-threaded runtime until `shutdown`.
pub fn spawn_thread(
    poller: Poller,
    interval: Duration,
    concurrency: usize,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("poller".into())
        .spawn(move || runtime.block_on(poller.run(interval, concurrency, shutdown)))
}

impl Poller {
    /// Starts a round every `interval` until `shutdown`, with at most `concurrency` polls in
    /// flight across rounds.
    pub async fn run(self, interval: Duration, concurrency: usize, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let round = self.clone().round(Arc::clone(&permits), shutdown.clone());
            tokio::spawn(round);
        }
    }

    /// Polls every agent not already in flight; records the round's duration when all are done.
    async fn round(self, permits: Arc<Semaphore>, shutdown: CancellationToken) {
        let started = Instant::now();
        let mut polls = tokio::task::JoinSet::new();
        for agent in self.registry.workers() {
            if agent.in_flight.swap(true, Ordering::AcqRel) {
                continue;
            }
            let permit = tokio::select! {
                () = shutdown.cancelled() => {
                    agent.in_flight.store(false, Ordering::Release);
                    return;
                }
                permit = Arc::clone(&permits).acquire_owned() => permit,
            };
            let Ok(permit) = permit else {
                agent.in_flight.store(false, Ordering::Release);
                return;
            };
            let poller = self.clone();
            polls.spawn(async move {
                poller.poll(&agent).await;
                agent.in_flight.store(false, Ordering::Release);
                drop(permit);
            });
        }
        while polls.join_next().await.is_some() {}
        self.metrics.round(started.elapsed());
        self.registry.round_finished();
    }

    /// Polls one agent and records the outcome.
    pub async fn poll(&self, agent: &Arc<Agent>) {
        let started = Instant::now();
        let outcome = self.fetch(agent).await;
        self.metrics.observe_poll(started.elapsed());
        let failure = match outcome {
            Ok((element, figures)) => self
                .registry
                .record_data(agent, element, figures, Instant::now())
                .err()
                .map(|why| (ErrorKind::Decode, why)),
            Err(failure) => Some(failure),
        };
        if let Some((kind, why)) = failure {
            self.metrics.error(kind);
            tracing::debug!(agent = %agent.url.key, kind = kind.as_str(), "poll failed: {why}");
            self.registry.record_failure(agent, why);
        }
        if let Some(change) = self.registry.reachability(agent, Instant::now()) {
            if change.is_offline() {
                tracing::warn!("{change}");
            } else {
                tracing::info!("{change}");
            }
        }
    }

    async fn fetch(&self, agent: &Agent) -> Result<(Bytes, element::Figures), (ErrorKind, String)> {
        let request = AgentRequest {
            client: &self.client,
            token: self.token.as_ref(),
            timeout: self.timeout,
        };
        let body = request.get(agent, METRICS_PATH, ANSWER_LIMIT).await?;
        let (element, figures) = element::split_agent_answer(&body)
            .map_err(|why| (ErrorKind::Decode, why.to_string()))?;
        Ok((Bytes::from(element), figures))
    }
}

/// A GET the coordinator makes to an agent (its metrics each round, its info on demand): with
/// the token, under a deadline, a 2xx answer read up to a limit.
pub struct AgentRequest<'a> {
    /// The pooled client.
    pub client: &'a reqwest::Client,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<&'a Token>,
    /// The whole request's deadline.
    pub timeout: Duration,
}

impl AgentRequest<'_> {
    /// GETs `path` (relative to the agent's URL) and returns the body, or why not, as a poll
    /// error kind.
    pub async fn get(
        &self,
        agent: &Agent,
        path: &str,
        limit: usize,
    ) -> Result<Bytes, (ErrorKind, String)> {
        let response = self.send(agent_url(agent, path)?).await?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err((
                ErrorKind::Unauthorized,
                format!("the agent answered {status}"),
            ));
        }
        if !status.is_success() {
            return Err((
                ErrorKind::HttpStatus,
                format!("the agent answered {status}"),
            ));
        }
        read(response, limit).await
    }

    /// GETs `url` (with the token, under the deadline): the response whatever its status, or
    /// why there is none.
    pub async fn send(&self, url: reqwest::Url) -> Result<reqwest::Response, (ErrorKind, String)> {
        let mut request = self.client.get(url).timeout(self.timeout);
        if let Some(token) = self.token {
            request = request.header(reqwest::header::AUTHORIZATION, token.header_value());
        }
        request.send().await.map_err(|e| classify(&e))
    }
}

/// `path` on `agent`'s URL.
pub fn agent_url(agent: &Agent, path: &str) -> Result<reqwest::Url, (ErrorKind, String)> {
    agent
        .url
        .base
        .join(path)
        .map_err(|e| (ErrorKind::Connect, e.to_string()))
}

/// The body of `response`, read up to `limit` bytes.
pub async fn read(response: reqwest::Response, limit: usize) -> Result<Bytes, (ErrorKind, String)> {
    http_client::read_body(response, limit)
        .await
        .map_err(|e| match e {
            http_client::BodyError::TooLarge { .. } => (ErrorKind::Decode, e.to_string()),
            http_client::BodyError::Read(e) => classify(&e),
        })
}

/// A request error as a poll error kind.
fn classify(error: &reqwest::Error) -> (ErrorKind, String) {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if http_client::is_tls(error) {
        ErrorKind::Tls
    } else {
        ErrorKind::Connect
    };
    (kind, http_client::describe(error))
}
