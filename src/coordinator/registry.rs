//! The coordinator's registry: every known agent keyed by its normalised URL, each holding its
//! latest element as raw JSON bytes plus the parsed [`Figures`], and an index by node id (an
//! agent found by DNS has no node id until its first answer). Written by discovery, registration
//! and the poller; read by the APIs.
//!
//! Locking: one `RwLock` over the two maps (changed only when membership or a node id changes),
//! and one `Mutex` per agent (each poll touches only its own). Order: maps, then one agent.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use tokio::sync::watch;

use super::element::Figures;
use crate::model::unix_ms;

/// A node's state as the APIs report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The last poll succeeded and its data is fresh.
    Online,
    /// The last poll failed, but the last good data is younger than `--offline-after`.
    Degraded,
    /// No good data for `--offline-after` (or never).
    Offline,
}

impl Status {
    /// The name in JSON and in `/metrics` labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Degraded => "degraded",
            Status::Offline => "offline",
        }
    }

    /// All statuses, in reporting order.
    pub const ALL: [Status; 3] = [Status::Online, Status::Degraded, Status::Offline];
}

/// Whether a node is a polled agent or the coordinator's own host (`--sample-self`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The coordinator's own host.
    Master,
    /// An agent.
    Worker,
}

impl Role {
    /// The name in `/api/cluster/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }
}

/// An agent's base URL, checked and normalised so that the same agent found by two means
/// (static list, DNS, registration) is one entry.
#[derive(Debug, Clone)]
pub struct AgentUrl {
    /// `scheme://host:port`: the registry key.
    pub key: Arc<str>,
    /// The same as a URL, to join API paths to.
    pub base: reqwest::Url,
    /// The host when it is an IP address (registrations must name one).
    pub ip: Option<IpAddr>,
}

impl AgentUrl {
    /// Checks `text`: http or https, a host that can be connected to (not 0.0.0.0, ::, a
    /// multicast or broadcast address), a port other than 0, no credentials, query or fragment,
    /// no path.
    pub fn parse(text: &str) -> Result<AgentUrl, String> {
        let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme {:?}: only http and https",
                crate::model::echo(url.scheme())
            ));
        }
        let host = url.host_str().ok_or("no host")?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in the URL are not accepted".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a query or fragment is not accepted".into());
        }
        if !matches!(url.path(), "" | "/") {
            return Err("the URL must be the agent's base (no path)".into());
        }
        let port = url.port_or_known_default().ok_or("no port")?;
        if port == 0 {
            return Err("port 0 cannot be connected to".into());
        }
        let key = format!("{}://{host}:{port}", url.scheme());
        let base = reqwest::Url::parse(&key).map_err(|e| e.to_string())?;
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
        if let Some(ip) = ip {
            let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
            if ip.is_unspecified() || ip.is_multicast() || broadcast {
                return Err(format!(
                    "host {ip} is not an address an agent can be polled at"
                ));
            }
        }
        Ok(AgentUrl {
            key: key.into(),
            base,
            ip,
        })
    }

    /// `scheme://ip:port` for an address found by DNS.
    pub fn from_addr(scheme: &str, ip: IpAddr, port: u16) -> AgentUrl {
        let key = format!("{scheme}://{}", std::net::SocketAddr::new(ip, port));
        // A scheme and a socket address always make a valid URL.
        let base =
            reqwest::Url::parse(&key).unwrap_or_else(|e| unreachable!("{key:?} is not a URL: {e}"));
        AgentUrl {
            key: key.into(),
            base,
            ip: Some(ip),
        }
    }
}

/// Settings the registry needs to tell statuses.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// Without fresh data this long, a node is offline.
    pub offline_after: Duration,
    /// Most agents known at once.
    pub max_nodes: usize,
    /// The heartbeat the agents are told; a registration lapses after 3 of them missed.
    pub heartbeat: Duration,
}

/// Heartbeats an agent may miss before its registration lapses.
const MISSED_HEARTBEATS: u32 = 3;

/// One agent (or the coordinator's own node).
#[derive(Debug)]
pub struct Agent {
    /// Where it is polled.
    pub url: AgentUrl,
    /// Worker or master.
    pub role: Role,
    /// Set while a poll of this agent is in flight, so that an overlapping round skips it.
    pub(super) in_flight: AtomicBool,
    /// Everything that changes.
    state: Mutex<AgentState>,
}

/// How a registered agent described itself.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Its node id (its answers must carry the same).
    pub node_id: Arc<str>,
    /// Its `--node-label`s.
    pub labels: BTreeMap<String, String>,
    /// Its version.
    pub version: String,
    /// Its last registration (heartbeat).
    pub at: Instant,
    /// The same, unix ms.
    pub at_ms: i64,
}

/// The latest good answer of an agent.
#[derive(Debug, Clone)]
pub struct Data {
    /// The element's JSON object, exactly as the agent sent it.
    pub element: Bytes,
    /// What the cluster view needs from it.
    pub figures: Figures,
    /// When its sample timestamp last moved (a stalled agent's data ages even if it answers).
    pub fresh_at: Instant,
    /// The same, unix ms (`lastHeartbeat`).
    pub fresh_at_ms: i64,
    /// Registry-wide sequence of this data, for WatchMetrics to send each change once.
    pub sequence: u64,
}

#[derive(Debug, Default)]
struct AgentState {
    /// From `--agents`/`--agents-file`: never forgotten.
    is_static: bool,
    /// The `--discover-dns` targets that returned it.
    dns: Vec<Arc<str>>,
    /// Its registration, if it registered.
    registration: Option<Registered>,
    /// The node id it is (or wants to be) indexed under.
    node_id: Option<Arc<str>>,
    /// Whether `by_node[node_id]` is this agent.
    indexed: bool,
    /// Removed from the maps (its last source let go of it): a poll still in flight on the
    /// poller's thread must not index it again.
    forgotten: bool,
    /// Its latest good answer.
    data: Option<Data>,
    /// Why the last poll failed; `None` after a good one.
    last_error: Option<String>,
    /// `/api/system/info`, fetched on demand and kept a while.
    info: Option<(Instant, Bytes)>,
    /// Whether it was last said to be answering (`Some(true)`) or offline (`Some(false)`); None
    /// before the first poll. Changes are logged once each.
    announced: Option<bool>,
}

impl AgentState {
    fn status(&self, now: Instant, offline_after: Duration) -> Status {
        match &self.data {
            Some(data) if now.saturating_duration_since(data.fresh_at) < offline_after => {
                if self.last_error.is_some() {
                    Status::Degraded
                } else {
                    Status::Online
                }
            }
            _ => Status::Offline,
        }
    }

    /// Whether this node is alive: fresh data, or a registration younger than `offline_after`
    /// (the time a new agent gets to answer its first poll).
    fn live(&self, now: Instant, offline_after: Duration) -> bool {
        self.status(now, offline_after) != Status::Offline
            || self
                .registration
                .as_ref()
                .is_some_and(|r| now.saturating_duration_since(r.at) < offline_after)
    }

    fn has_source(&self) -> bool {
        self.is_static || !self.dns.is_empty() || self.registration.is_some()
    }
}

impl Agent {
    fn new(url: AgentUrl, role: Role) -> Agent {
        Agent {
            url,
            role,
            in_flight: AtomicBool::new(false),
            state: Mutex::new(AgentState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, AgentState> {
        // A panic while holding it leaves plain data that is still consistent enough to serve.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One node as the APIs see it at one instant.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The agent.
    pub agent: Arc<Agent>,
    /// Its node id, once known.
    pub node_id: Option<Arc<str>>,
    /// Its status now.
    pub status: Status,
    /// Its latest good data.
    pub data: Option<Data>,
    /// Its registration.
    pub registration: Option<Registered>,
    /// Why its last poll failed.
    pub last_error: Option<String>,
}

impl NodeView {
    /// Seconds since the data's sample timestamp last moved.
    pub fn data_age(&self, now: Instant) -> Option<Duration> {
        self.data
            .as_ref()
            .map(|d| now.saturating_duration_since(d.fresh_at))
    }

    /// The last time the node was heard from (good data or a registration), unix ms.
    pub fn last_heartbeat_ms(&self) -> Option<i64> {
        let data = self.data.as_ref().map(|d| d.fresh_at_ms);
        let registered = self.registration.as_ref().map(|r| r.at_ms);
        data.max(registered)
    }
}

/// An agent going offline or coming back, as the poller logs it: once per change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachability {
    /// `node id (url)`, or the URL alone before its first answer.
    pub agent: String,
    /// What changed.
    pub change: Change,
}

/// See [`Reachability`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// It answered for the first time.
    Online,
    /// It answers again after being offline.
    Back,
    /// It went offline (or has not answered yet), and why.
    Offline(String),
}

impl Reachability {
    /// Whether it is bad news (logged as a warning).
    pub fn is_offline(&self) -> bool {
        matches!(self.change, Change::Offline(_))
    }
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agent = &self.agent;
        match &self.change {
            Change::Online => write!(f, "agent {agent} online"),
            Change::Back => write!(f, "agent {agent} back online"),
            Change::Offline(cause) => write!(f, "agent {agent} offline: {cause}"),
        }
    }
}

/// Why a registration was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another live host holds the node id.
    Conflict,
    /// `--max-nodes` reached.
    Full,
}

#[derive(Debug, Default)]
struct Maps {
    /// Every agent, by URL key.
    by_url: HashMap<Arc<str>, Arc<Agent>>,
    /// The agent holding each node id, sorted (the all-nodes answer is in node id order).
    by_node: BTreeMap<Arc<str>, Arc<Agent>>,
}

/// All known agents.
#[derive(Debug)]
pub struct Registry {
    maps: RwLock<Maps>,
    settings: RegistrySettings,
    /// Bumped when a poll round ends (and data may have changed): WatchMetrics waits on it.
    rounds: watch::Sender<u64>,
    /// Source of [`Data::sequence`].
    sequence: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new(settings: RegistrySettings) -> Registry {
        Registry {
            maps: RwLock::default(),
            settings,
            rounds: watch::Sender::new(0),
            sequence: AtomicU64::new(0),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of agents known.
    pub fn len(&self) -> usize {
        self.read().by_url.len()
    }

    /// Whether no agent is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds static agents (never forgotten). Returns how many were left out for `--max-nodes`.
    pub fn add_static(&self, urls: impl IntoIterator<Item = AgentUrl>) -> usize {
        let mut maps = self.write();
        let mut refused = 0;
        for url in urls {
            match Self::entry(&mut maps, &self.settings, url, Role::Worker) {
                Some(agent) => agent.state().is_static = true,
                None => refused += 1,
            }
        }
        refused
    }

    /// Adds the coordinator's own node (`--sample-self`) and returns it.
    pub fn add_master(&self, node_id: &str) -> Arc<Agent> {
        let url = AgentUrl::from_addr("http", IpAddr::from([127, 0, 0, 1]), 0);
        let url = AgentUrl {
            key: format!("local:{node_id}").into(),
            ..url
        };
        let agent = Arc::new(Agent::new(url, Role::Master));
        self.write()
            .by_url
            .insert(agent.url.key.clone(), Arc::clone(&agent));
        agent
    }

    /// The entry for `url`, created if there is room.
    fn entry(
        maps: &mut Maps,
        settings: &RegistrySettings,
        url: AgentUrl,
        role: Role,
    ) -> Option<Arc<Agent>> {
        if let Some(agent) = maps.by_url.get(&url.key) {
            return Some(Arc::clone(agent));
        }
        if maps.by_url.len() >= settings.max_nodes {
            return None;
        }
        let agent = Arc::new(Agent::new(url, role));
        maps.by_url
            .insert(agent.url.key.clone(), Arc::clone(&agent));
        Some(agent)
    }

    /// Sets the agents that DNS target `name` resolved to: new ones are added, those no longer
    /// returned lose this source (and are forgotten when it was their last). Returns how many
    /// were left out for `--max-nodes`.
    pub fn set_dns(&self, name: &Arc<str>, urls: Vec<AgentUrl>) -> usize {
        let mut maps = self.write();
        let mut refused = 0;
        let mut keep = std::collections::HashSet::new();
        for url in urls {
            keep.insert(url.key.clone());
            match Self::entry(&mut maps, &self.settings, url, Role::Worker) {
                Some(agent) => {
                    let mut state = agent.state();
                    if !state.dns.contains(name) {
                        state.dns.push(Arc::clone(name));
                    }
                }
                None => refused += 1,
            }
        }
        let gone: Vec<Arc<Agent>> = maps
            .by_url
            .values()
            .filter(|a| !keep.contains(&a.url.key))
            .cloned()
            .collect();
        for agent in gone {
            let forget = {
                let mut state = agent.state();
                let before = state.dns.len();
                state.dns.retain(|n| n != name);
                before != state.dns.len() && !state.has_source() && agent.role == Role::Worker
            };
            if forget {
                Self::forget(&mut maps, &agent);
            }
        }
        refused
    }

    /// Removes `agent` from both maps.
    fn forget(maps: &mut Maps, agent: &Arc<Agent>) {
        maps.by_url.remove(&agent.url.key);
        let mut state = agent.state();
        state.forgotten = true;
        if state.indexed {
            if let Some(id) = &state.node_id {
                maps.by_node.remove(id);
            }
            state.indexed = false;
        }
    }

    /// A registration (or heartbeat) of node `node_id` at `url` from `peer` (already checked
    /// against the URL by the caller). A restarted agent (same node id, same host) replaces its
    /// old entry; another live host holding the id is a conflict.
    pub fn register(
        &self,
        node_id: &str,
        url: AgentUrl,
        peer: IpAddr,
        labels: BTreeMap<String, String>,
        version: String,
        now: Instant,
    ) -> Result<(), Refusal> {
        let offline_after = self.settings.offline_after;
        let mut maps = self.write();
        if let Some(holder) = maps.by_node.get(node_id).cloned() {
            if holder.url.key != url.key {
                if holder.role == Role::Master {
                    return Err(Refusal::Conflict);
                }
                let live = holder.state().live(now, offline_after);
                if live && holder.url.ip != Some(peer) {
                    return Err(Refusal::Conflict);
                }
                // The same host again (a restart on another port) or a dead holder: replace it.
                let forget = {
                    let mut state = holder.state();
                    state.registration = None;
                    state.indexed = false;
                    !state.has_source()
                };
                maps.by_node.remove(node_id);
                if forget {
                    Self::forget(&mut maps, &holder);
                }
            }
        }
        let agent =
            Self::entry(&mut maps, &self.settings, url, Role::Worker).ok_or(Refusal::Full)?;
        let id: Arc<str> = node_id.into();
        let mut state = agent.state();
        if state.node_id.as_deref() != Some(node_id) {
            // The agent at this URL was another node (or none yet): its index and data go.
            if state.indexed {
                if let Some(old) = &state.node_id {
                    maps.by_node.remove(old);
                }
            }
            state.data = None;
            state.info = None;
            state.node_id = Some(Arc::clone(&id));
        }
        state.indexed = true;
        state.registration = Some(Registered {
            node_id: Arc::clone(&id),
            labels,
            version,
            at: now,
            at_ms: unix_ms(SystemTime::now()),
        });
        drop(state);
        maps.by_node.insert(id, Arc::clone(&agent));
        Ok(())
    }

    /// Drops registrations not renewed for 3 heartbeats whose agent is also offline; an agent
    /// with no source left is forgotten.
    pub fn expire(&self, now: Instant) {
        let lapse = self.settings.heartbeat * MISSED_HEARTBEATS;
        let offline_after = self.settings.offline_after;
        let candidates: Vec<Arc<Agent>> = self.read().by_url.values().cloned().collect();
        let mut forget = Vec::new();
        for agent in candidates {
            let mut state = agent.state();
            let lapsed = state
                .registration
                .as_ref()
                .is_some_and(|r| now.saturating_duration_since(r.at) > lapse);
            if lapsed && state.status(now, offline_after) == Status::Offline {
                state.registration = None;
                if !state.has_source() && agent.role == Role::Worker {
                    forget.push(Arc::clone(&agent));
                }
            }
        }
        if !forget.is_empty() {
            let mut maps = self.write();
            for agent in forget {
                // Re-check under the write lock: a registration may have arrived meanwhile.
                if !agent.state().has_source() {
                    Self::forget(&mut maps, &agent);
                }
            }
        }
    }

    /// Records a good answer. Fails (and stores nothing) when the answer's node id contradicts
    /// the agent's registration or is held by another live agent.
    pub fn record_data(
        &self,
        agent: &Arc<Agent>,
        element: Bytes,
        figures: Figures,
        now: Instant,
    ) -> Result<(), String> {
        let id = Arc::clone(&figures.node_id);
        let needs_claim = {
            let state = agent.state();
            if let Some(registered) = &state.registration {
                if registered.node_id != id {
                    return Err(format!(
                        "answers as node {id:?} but registered as {:?}",
                        registered.node_id
                    ));
                }
            }
            !(state.indexed && state.node_id.as_ref() == Some(&id))
        };
        if needs_claim {
            self.claim(agent, &id, now)?;
        }
        let mut state = agent.state();
        let moved = state
            .data
            .as_ref()
            .is_none_or(|d| d.figures.timestamp_ms != figures.timestamp_ms);
        if moved {
            state.data = Some(Data {
                element,
                figures,
                fresh_at: now,
                fresh_at_ms: unix_ms(SystemTime::now()),
                sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            });
        }
        state.last_error = None;
        Ok(())
    }

    /// Makes `agent` the holder of `id`, unless another live agent holds it.
    fn claim(&self, agent: &Arc<Agent>, id: &Arc<str>, now: Instant) -> Result<(), String> {
        let mut maps = self.write();
        if agent.state().forgotten {
            return Ok(());
        }
        if let Some(holder) = maps.by_node.get(id) {
            if !Arc::ptr_eq(holder, agent) {
                if holder.state().live(now, self.settings.offline_after) {
                    return Err(format!("node id {id:?} is already served by another agent"));
                }
                holder.state().indexed = false;
            }
        }
        let mut state = agent.state();
        if state.indexed {
            if let Some(previous) = &state.node_id {
                if previous != id {
                    maps.by_node.remove(previous);
                }
            }
        }
        state.node_id = Some(Arc::clone(id));
        state.indexed = true;
        state.info = None;
        drop(state);
        maps.by_node.insert(Arc::clone(id), Arc::clone(agent));
        Ok(())
    }

    /// Records a failed poll (the agent keeps its last good data until it goes offline).
    pub fn record_failure(&self, agent: &Agent, error: String) {
        agent.state().last_error = Some(error);
    }

    /// Whether `agent` went offline or came back (answering: online or degraded) since the last
    /// call; the poller asks after each poll. Each change is reported once, with its cause.
    pub fn reachability(&self, agent: &Agent, now: Instant) -> Option<Reachability> {
        let offline_after = self.settings.offline_after;
        let mut state = agent.state();
        let answering = state.status(now, offline_after) != Status::Offline;
        let before = state.announced.replace(answering);
        let change = match (before, answering) {
            (None, true) => Change::Online,
            (Some(false), true) => Change::Back,
            (None | Some(true), false) => Change::Offline(match &state.last_error {
                Some(error) => error.clone(),
                None => format!(
                    "no new sample for {}",
                    humantime::format_duration(offline_after)
                ),
            }),
            (Some(true), true) | (Some(false), false) => return None,
        };
        let agent = match &state.node_id {
            Some(id) => format!("{id} ({})", agent.url.key),
            None => agent.url.key.to_string(),
        };
        Some(Reachability { agent, change })
    }

    /// Agents to poll (workers only).
    pub fn workers(&self) -> Vec<Arc<Agent>> {
        self.read()
            .by_url
            .values()
            .filter(|a| a.role == Role::Worker)
            .cloned()
            .collect()
    }

    /// Every node with a node id, in node id order; with `pending`, also the agents not heard
    /// from yet (no node id), after them.
    pub fn nodes(&self, now: Instant, pending: bool) -> Vec<NodeView> {
        let maps = self.read();
        let mut views: Vec<NodeView> = maps
            .by_node
            .values()
            .map(|agent| self.view(agent, now))
            .collect();
        if pending {
            let mut waiting: Vec<NodeView> = maps
                .by_url
                .values()
                .filter(|agent| agent.state().node_id.is_none())
                .map(|agent| self.view(agent, now))
                .collect();
            waiting.sort_by(|a, b| a.agent.url.key.cmp(&b.agent.url.key));
            views.extend(waiting);
        }
        views
    }

    /// The node holding `node_id`.
    pub fn node(&self, node_id: &str, now: Instant) -> Option<NodeView> {
        let maps = self.read();
        maps.by_node.get(node_id).map(|agent| self.view(agent, now))
    }

    fn view(&self, agent: &Arc<Agent>, now: Instant) -> NodeView {
        let state = agent.state();
        NodeView {
            agent: Arc::clone(agent),
            node_id: state.node_id.clone(),
            status: state.status(now, self.settings.offline_after),
            data: state.data.clone(),
            registration: state.registration.clone(),
            last_error: state.last_error.clone(),
        }
    }

    /// Agents per status (all agents, known node id or not).
    pub fn counts(&self, now: Instant) -> [usize; 3] {
        let mut counts = [0; 3];
        for agent in self.read().by_url.values() {
            let status = agent.state().status(now, self.settings.offline_after);
            counts[status as usize] += 1;
        }
        counts
    }

    /// The cached `/api/system/info` of `agent` if younger than `max_age` (or any age, with
    /// `None`).
    pub fn cached_info(
        &self,
        agent: &Agent,
        max_age: Option<Duration>,
        now: Instant,
    ) -> Option<Bytes> {
        let state = agent.state();
        let (at, body) = state.info.as_ref()?;
        let young = max_age.is_none_or(|max| now.saturating_duration_since(*at) < max);
        young.then(|| body.clone())
    }

    /// Keeps `body` as the `/api/system/info` of `agent`.
    pub fn store_info(&self, agent: &Agent, body: Bytes, now: Instant) {
        agent.state().info = Some((now, body));
    }

    /// Tells WatchMetrics streams that a round ended.
    pub fn round_finished(&self) {
        self.rounds.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver woken at the end of each round.
    pub fn rounds(&self) -> watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// The number of rounds finished (wrapping), which names the data of the current one.
    pub fn round(&self) -> u64 {
        *self.rounds.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(RegistrySettings {
            offline_after: Duration::from_secs(3),
            max_nodes: 3,
            heartbeat: Duration::from_secs(10),
        })
    }

    fn figures(id: &str, timestamp_ms: i64) -> Figures {
        Figures {
            node_id: id.into(),
            timestamp_ms,
            hostname: "h".into(),
            cpus: 2,
            cpu_busy_cores: 1.0,
            memory_total_bytes: 10,
            memory_used_bytes: 5,
            accelerators: 0,
            accelerators_busy: 0,
            headline: Bytes::from_static(b"{}"),
        }
    }

    fn url(text: &str) -> AgentUrl {
        AgentUrl::parse(text).unwrap()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn urls_are_normalised() {
        assert_eq!(&*url("http://10.0.0.1:8080/").key, "http://10.0.0.1:8080");
        assert_eq!(&*url("http://10.0.0.1").key, "http://10.0.0.1:80");
        assert_eq!(&*url("https://[::1]:9").key, "https://[::1]:9");
        assert_eq!(url("https://[::ffff:10.0.0.1]:9").ip, Some(A));
        assert_eq!(url("http://node.local:1").ip, None);
        for bad in [
            "ftp://10.0.0.1/",
            "http://u:p@10.0.0.1/",
            "http://10.0.0.1/x",
            "http://10.0.0.1/?a",
            "file:///etc/passwd",
            "10.0.0.1:80",
            "http://10.0.0.1/#f",
            "http://",
            "http://10.0.0.1:0",
            "https://[::1]:0/",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
            "http://224.0.0.1:8080",
            "http://255.255.255.255:8080",
        ] {
            assert!(AgentUrl::parse(bad).is_err(), "{bad}");
        }
        let err = AgentUrl::parse("http://10.0.0.1:0").unwrap_err();
        assert!(err.contains("port 0"), "{err}");
        let err = AgentUrl::parse(&format!("{}://h", "s".repeat(1_000))).unwrap_err();
        assert!(err.len() < 150, "{err}");
    }

    #[test]
    fn registration_conflicts_and_restarts() {
        let r = registry();
        let now = Instant::now();
        let reg = |id: &str, u: &str, peer| {
            r.register(id, url(u), peer, BTreeMap::new(), "1".into(), now)
        };
        assert_eq!(reg("w1", "http://10.0.0.1:1", A), Ok(()));
        // Heartbeat.
        assert_eq!(reg("w1", "http://10.0.0.1:1", A), Ok(()));
        assert_eq!(r.len(), 1);
        // Another live host claiming w1.
        assert_eq!(reg("w1", "http://10.0.0.2:1", B), Err(Refusal::Conflict));
        // The same host on a new port: a restart replaces the old entry.
        assert_eq!(reg("w1", "http://10.0.0.1:2", A), Ok(()));
        assert_eq!(r.len(), 1);
        assert_eq!(
            &*r.node("w1", now).unwrap().agent.url.key,
            "http://10.0.0.1:2"
        );
        // Full.
        assert_eq!(reg("w2", "http://10.0.0.2:1", B), Ok(()));
        assert_eq!(reg("w3", "http://10.0.0.2:2", B), Ok(()));
        assert_eq!(reg("w4", "http://10.0.0.2:3", B), Err(Refusal::Full));
        // Once the holder is dead (no data, registration old), another host may take the id.
        let later = now + Duration::from_secs(5);
        assert_eq!(
            r.register(
                "w1",
                url("http://10.0.0.2:4"),
                B,
                BTreeMap::new(),
                "1".into(),
                later
            ),
            Ok(())
        );
    }

    #[test]
    fn data_claims_node_ids_and_ages() {
        let r = registry();
        let now = Instant::now();
        r.add_static([url("http://10.0.0.1:1"), url("http://10.0.0.2:1")]);
        let workers = r.workers();
        let (a, b) = (&workers[0], &workers[1]);
        assert!(r.nodes(now, false).is_empty());
        assert_eq!(r.nodes(now, true).len(), 2);
        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 1), now)
            .unwrap();
        // The same id from another live agent is refused.
        let err = r
            .record_data(b, Bytes::from_static(b"{}"), figures("n1", 1), now)
            .unwrap_err();
        assert!(err.contains("already served"), "{err}");
        let view = r.node("n1", now).unwrap();
        assert!(Arc::ptr_eq(&view.agent, a));
        assert_eq!(view.status, Status::Online);
        r.record_failure(a, "timeout".into());
        assert_eq!(r.node("n1", now).unwrap().status, Status::Degraded);
        // The same timestamp again does not refresh the data.
        let later = now + Duration::from_secs(4);
        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 1), later)
            .unwrap();
        assert_eq!(r.node("n1", later).unwrap().status, Status::Offline);
        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 2), later)
            .unwrap();
        assert_eq!(r.node("n1", later).unwrap().status, Status::Online);
        assert_eq!(r.counts(later), [1, 0, 1]);
    }

    #[test]
    fn going_offline_and_back_is_reported_once_per_change_with_its_cause() {
        let r = registry();
        let now = Instant::now();
        r.add_static([url("http://10.0.0.1:1"), url("http://10.0.0.2:1")]);
        let workers = r.workers();
        let (a, never) = if &*workers[0].url.key == "http://10.0.0.1:1" {
            (&workers[0], &workers[1])
        } else {
            (&workers[1], &workers[0])
        };
        let change = |agent: &Arc<Agent>, at| r.reachability(agent, at).map(|c| c.to_string());

        // An agent that never answered is reported once, with why.
        r.record_failure(never, "connection refused".into());
        assert_eq!(
            change(never, now).as_deref(),
            Some("agent http://10.0.0.2:1 offline: connection refused")
        );
        r.record_failure(never, "connection refused".into());
        assert_eq!(change(never, now), None);

        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 1), now)
            .unwrap();
        assert_eq!(
            change(a, now).as_deref(),
            Some("agent n1 (http://10.0.0.1:1) online")
        );
        // Failing polls while the data is fresh: degraded, still answering, nothing to say.
        r.record_failure(a, "timed out".into());
        assert_eq!(change(a, now + Duration::from_secs(1)), None);
        let later = now + Duration::from_secs(4);
        r.record_failure(a, "timed out".into());
        assert_eq!(
            change(a, later).as_deref(),
            Some("agent n1 (http://10.0.0.1:1) offline: timed out")
        );
        assert_eq!(change(a, later + Duration::from_secs(1)), None);
        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 2), later)
            .unwrap();
        let back = r.reachability(a, later).unwrap();
        assert!(!back.is_offline());
        assert_eq!(back.to_string(), "agent n1 (http://10.0.0.1:1) back online");
        assert_eq!(change(a, later), None);
        // Answering with the same sample for too long (a stalled agent) is offline too.
        let stalled = later + Duration::from_secs(4);
        r.record_data(a, Bytes::from_static(b"{}"), figures("n1", 2), stalled)
            .unwrap();
        assert_eq!(
            change(a, stalled).as_deref(),
            Some("agent n1 (http://10.0.0.1:1) offline: no new sample for 3s")
        );
    }

    #[test]
    fn dns_sources_come_and_go() {
        let r = registry();
        let name: Arc<str> = "agents:1".into();
        r.set_dns(
            &name,
            vec![url("http://10.0.0.1:1"), url("http://10.0.0.2:1")],
        );
        assert_eq!(r.len(), 2);
        r.set_dns(&name, vec![url("http://10.0.0.2:1")]);
        assert_eq!(r.len(), 1);
        // A static agent stays when DNS drops it.
        r.add_static([url("http://10.0.0.2:1")]);
        r.set_dns(&name, vec![]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_poll_finishing_after_its_agent_was_forgotten_does_not_bring_it_back() {
        let r = registry();
        let name: Arc<str> = "agents:1".into();
        r.set_dns(&name, vec![url("http://10.0.0.1:1")]);
        let in_flight = r.workers().pop().unwrap();
        r.set_dns(&name, vec![]);
        let now = Instant::now();
        r.record_data(&in_flight, Bytes::from_static(b"{}"), figures("n1", 1), now)
            .unwrap();
        assert_eq!(r.len(), 0);
        assert!(r.node("n1", now).is_none());
        assert!(r.nodes(now, true).is_empty());
    }

    #[test]
    fn registered_agents_must_answer_as_themselves() {
        let r = registry();
        let now = Instant::now();
        r.register(
            "w1",
            url("http://10.0.0.1:1"),
            A,
            BTreeMap::new(),
            "1".into(),
            now,
        )
        .unwrap();
        let agent = r.workers().pop().unwrap();
        let err = r
            .record_data(&agent, Bytes::from_static(b"{}"), figures("other", 1), now)
            .unwrap_err();
        assert!(err.contains("registered as"), "{err}");
    }

    #[test]
    fn lapsed_registrations_of_dead_agents_are_forgotten() {
        let r = registry();
        let now = Instant::now();
        r.register(
            "w1",
            url("http://10.0.0.1:1"),
            A,
            BTreeMap::new(),
            "1".into(),
            now,
        )
        .unwrap();
        r.expire(now + Duration::from_secs(29));
        assert_eq!(r.len(), 1);
        r.expire(now + Duration::from_secs(31));
        assert_eq!(r.len(), 0);
        assert!(r.node("w1", now).is_none());
    }
}
