//! The state of `system_monitor top`: the last answers, the sparklines' rings, the connection,
//! and what the keys chose (sort, selection, drill-down, help). No I/O: the poller's updates
//! and the keys come in, [`super::view`] reads it.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::fetch::{Mode, Round, Update};
use super::series::{self, element_in};
use crate::model::wire::{ClusterInfo, Headline, NodeMetrics};

/// Samples kept per series: wider than any sparkline drawn.
const RING: usize = 600;

/// What a key asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    /// Draw again now.
    Redraw,
    /// Drill into this node (`None`: back to the list).
    Focus(Option<String>),
    Quit,
}

/// The coordinator list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// By node name, A to Z.
    #[default]
    Name,
    /// Problems first: offline, degraded, online.
    Status,
    /// Busiest first.
    Cpu,
    Memory,
    Gpu,
    GpuMemory,
    Power,
}

impl SortKey {
    /// The key that picks it, and its name in the header.
    pub const ALL: [(char, SortKey, &str); 7] = [
        ('n', SortKey::Name, "name"),
        ('s', SortKey::Status, "status"),
        ('c', SortKey::Cpu, "CPU"),
        ('m', SortKey::Memory, "memory"),
        ('g', SortKey::Gpu, "GPU"),
        ('v', SortKey::GpuMemory, "GPU memory"),
        ('p', SortKey::Power, "power"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, key, _)| *key == self)
            .map_or("name", |(_, _, name)| name)
    }
}

/// One node of the coordinator list: its figures, summed over its accelerators.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRow {
    /// Node id (or the URL before the first answer).
    pub name: String,
    /// Whether the coordinator has its element (only such a node can be drilled into).
    pub has_data: bool,
    /// `online`, `degraded`, `offline`.
    pub status: String,
    pub data_age_seconds: Option<f64>,
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    /// Mean utilisation of its accelerators that report one.
    pub gpu: Option<f64>,
    /// Accelerators.
    pub gpus: usize,
    pub gpu_memory_used: Option<u64>,
    pub gpu_memory_total: Option<u64>,
    /// W, over its accelerators.
    pub power: Option<f64>,
    /// Why its last poll failed.
    pub error: Option<String>,
}

impl NodeRow {
    /// GPU memory used, percent.
    pub fn gpu_memory_percent(&self) -> Option<f64> {
        match (self.gpu_memory_used, self.gpu_memory_total) {
            (Some(used), Some(total)) if total > 0 => Some(used as f64 / total as f64 * 100.0),
            _ => None,
        }
    }

    fn sort_value(&self, key: SortKey) -> Option<f64> {
        match key {
            SortKey::Cpu => self.cpu,
            SortKey::Memory => self.memory,
            SortKey::Gpu => self.gpu,
            SortKey::GpuMemory => self.gpu_memory_percent(),
            SortKey::Power => self.power,
            SortKey::Name | SortKey::Status => None,
        }
    }
}

/// Whether the server answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// No answer yet.
    Connecting,
    Up,
    /// The last try failed with `error`; the next is at `retry_at`.
    Down {
        error: String,
        retry_at: Instant,
    },
}

/// Recent values of one series, with their sample times (unix ms).
#[derive(Debug, Clone, Default)]
pub struct Ring {
    points: VecDeque<(i64, f64)>,
}

impl Ring {
    fn push(&mut self, at: i64, value: f64) {
        if self.points.back().is_some_and(|&(last, _)| last >= at) {
            return;
        }
        if self.points.len() == RING {
            self.points.pop_front();
        }
        self.points.push_back((at, value));
    }

    /// The last `n` values, oldest first.
    pub fn last(&self, n: usize) -> Vec<f64> {
        let skip = self.points.len().saturating_sub(n);
        self.points.iter().skip(skip).map(|&(_, v)| v).collect()
    }
}

/// Everything the view shows.
#[derive(Debug)]
pub struct App {
    /// The server, as given.
    pub url: String,
    /// What it is, once it answered.
    pub mode: Option<Mode>,
    pub connection: Connection,
    /// The last `/api/system/metrics` array of the node shown: the agent's, or the drilled-into
    /// node's (kept when the server goes away; empty until the first round of a drill-down).
    pub metrics: Bytes,
    /// The coordinator's nodes, in [`App::sort`] order.
    pub rows: Vec<NodeRow>,
    pub sort: SortKey,
    /// The selected row's node.
    pub selected: Option<String>,
    /// The node drilled into, on a coordinator.
    pub focus: Option<String>,
    /// Sparkline series of the node shown (the agent, or the focused node).
    pub rings: BTreeMap<String, Ring>,
    /// The key help is open.
    pub help: bool,
    /// When the last answer came.
    pub updated: Option<Instant>,
}

impl App {
    pub fn new(url: String) -> Self {
        Self {
            url,
            mode: None,
            connection: Connection::Connecting,
            metrics: Bytes::new(),
            rows: Vec::new(),
            sort: SortKey::default(),
            selected: None,
            focus: None,
            rings: BTreeMap::new(),
            help: false,
            updated: None,
        }
    }

    /// Takes the poller's news.
    pub fn apply(&mut self, update: Update, now: Instant) {
        match update {
            Update::Round(round) => self.round(round, now),
            Update::History { node, series } => {
                if node == self.focus {
                    self.backfill(series);
                }
            }
            Update::Down { error, retry_in } => {
                self.connection = Connection::Down {
                    error,
                    retry_at: now + retry_in,
                };
            }
            // The loop quits on it.
            Update::Stop => {}
        }
    }

    fn round(&mut self, round: Round, now: Instant) {
        if self.mode != Some(round.mode) {
            self.rings.clear();
            self.focus = None;
        }
        self.mode = Some(round.mode);
        self.connection = Connection::Up;
        self.updated = Some(now);
        if round.mode == Mode::Coordinator && round.focus != self.focus {
            // Fetched for the view the keys just left.
            return;
        }
        match (&round.cluster, &self.focus) {
            // The list: its rows are the nodes' headlines.
            (Some(cluster), None) => {
                self.rows = rows(cluster, &round.metrics);
                self.sort_rows();
                return;
            }
            // Drilled in: the metrics are the node's only; the list keeps its figures, the
            // statuses and ages move on.
            (Some(cluster), Some(_)) => self.refresh_statuses(cluster),
            (None, _) => {}
        }
        self.metrics = round.metrics;
        record(&mut self.rings, &self.metrics, self.focus.as_deref());
    }

    /// Status, age and error of the listed nodes from `/api/cluster/info`.
    fn refresh_statuses(&mut self, cluster: &[u8]) {
        let Ok(info) = serde_json::from_slice::<ClusterInfo<'_>>(cluster) else {
            return;
        };
        for row in &mut self.rows {
            if let Some(node) = info.nodes.iter().find(|n| n.name == row.name.as_str()) {
                row.status = node.status.to_string();
                row.data_age_seconds = node.data_age_seconds;
                row.error = node.error.clone();
            }
        }
    }

    /// Puts history before the live samples of each series.
    fn backfill(&mut self, series: BTreeMap<String, Vec<(i64, f64)>>) {
        for (path, points) in series {
            let ring = self.rings.entry(path).or_default();
            let first_live = ring.points.front().map_or(i64::MAX, |&(t, _)| t);
            let mut merged: VecDeque<(i64, f64)> = points
                .into_iter()
                .filter(|&(t, _)| t < first_live)
                .collect();
            merged.extend(ring.points.drain(..));
            while merged.len() > RING {
                merged.pop_front();
            }
            ring.points = merged;
        }
    }

    /// The node whose element the node view shows: the agent's (`None`) or the focused one.
    pub fn shown_node(&self) -> Option<&str> {
        self.focus.as_deref()
    }

    /// The element of `node` in the last metrics array (the first one for `None`).
    pub fn element_of(&self, node: Option<&str>) -> Option<NodeMetrics<'_>> {
        element_in(&self.metrics, node)
    }

    /// Whether the list of nodes is on screen (a coordinator, no drill-down).
    pub fn listing(&self) -> bool {
        self.mode == Some(Mode::Coordinator) && self.focus.is_none()
    }

    /// The selected row's index.
    pub fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        self.rows.iter().position(|r| r.name == name)
    }

    fn sort_rows(&mut self) {
        let key = self.sort;
        self.rows.sort_by(|a, b| {
            let by_name = a.name.cmp(&b.name);
            match key {
                SortKey::Name => by_name,
                SortKey::Status => status_rank(&a.status)
                    .cmp(&status_rank(&b.status))
                    .then(by_name),
                _ => {
                    // Busiest first; nodes without the figure last.
                    let (x, y) = (a.sort_value(key), b.sort_value(key));
                    match (x, y) {
                        (Some(x), Some(y)) => y.total_cmp(&x).then(by_name),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => by_name,
                    }
                }
            }
        });
        if self.selected_index().is_none() {
            self.selected = self.rows.first().map(|r| r.name.clone());
        }
    }

    fn move_selection(&mut self, by: isize) -> Action {
        if self.rows.is_empty() {
            return Action::None;
        }
        let last = self.rows.len() - 1;
        let at = self.selected_index().unwrap_or(0);
        let to = at.saturating_add_signed(by).min(last);
        self.selected = Some(self.rows[to].name.clone());
        Action::Redraw
    }

    /// Takes a key.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => return Action::Quit,
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => {
                self.help = !self.help;
                return Action::Redraw;
            }
            KeyCode::Esc if self.help => {
                self.help = false;
                return Action::Redraw;
            }
            _ => {}
        }
        if self.help {
            // Any other key closes the help.
            self.help = false;
            return Action::Redraw;
        }
        if self.focus.is_some() {
            return match key.code {
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => {
                    self.focus = None;
                    self.rings.clear();
                    Action::Focus(None)
                }
                _ => Action::None,
            };
        }
        if !self.listing() {
            return Action::None;
        }
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-10),
            KeyCode::PageDown => self.move_selection(10),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.move_selection(isize::MAX / 2),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                let row = self.selected_index().map(|i| &self.rows[i]);
                match row {
                    Some(row) if row.has_data => {
                        self.focus = Some(row.name.clone());
                        self.rings.clear();
                        // The list had only headlines: the node's element comes with the next
                        // round, which the focus change asks for at once.
                        self.metrics = Bytes::new();
                        Action::Focus(self.focus.clone())
                    }
                    _ => Action::None,
                }
            }
            KeyCode::Char(c) => match SortKey::ALL.iter().find(|(k, _, _)| *k == c) {
                Some(&(_, sort, _)) => {
                    self.sort = sort;
                    self.sort_rows();
                    Action::Redraw
                }
                None => Action::None,
            },
            _ => Action::None,
        }
    }

    /// How long ago the last answer came.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.updated.map(|at| now.saturating_duration_since(at))
    }
}

/// Adds `node`'s values in `metrics` to the rings.
fn record(rings: &mut BTreeMap<String, Ring>, metrics: &[u8], node: Option<&str>) {
    if let Some(element) = element_in(metrics, node) {
        for (path, value) in series::values(&element) {
            rings
                .entry(path)
                .or_default()
                .push(element.timestamp, value);
        }
    }
}

fn status_rank(status: &str) -> u8 {
    match status {
        "offline" => 0,
        "degraded" => 1,
        "online" => 2,
        _ => 3,
    }
}

/// The coordinator list from `/api/cluster/info` and the headline array
/// (`/api/system/metrics?view=headline`); unreadable answers make no rows.
pub fn rows(cluster: &[u8], headlines: &[u8]) -> Vec<NodeRow> {
    let Ok(info) = serde_json::from_slice::<ClusterInfo<'_>>(cluster) else {
        return Vec::new();
    };
    let headlines: Vec<Headline<'_>> = serde_json::from_slice(headlines).unwrap_or_default();
    info.nodes
        .iter()
        .map(|node| {
            let headline = node
                .id
                .as_deref()
                .and_then(|id| headlines.iter().find(|h| h.node_id == id));
            let row = NodeRow {
                name: node.name.to_string(),
                has_data: headline.is_some(),
                status: node.status.to_string(),
                data_age_seconds: node.data_age_seconds,
                error: node.error.clone(),
                ..NodeRow::default()
            };
            match headline {
                Some(h) => with_figures(row, h),
                None => row,
            }
        })
        .collect()
}

/// `row` with the figures of its node's headline.
fn with_figures(row: NodeRow, headline: &Headline<'_>) -> NodeRow {
    let gpus = &headline.accelerator_summary;
    NodeRow {
        cpu: Some(headline.cpu.overall),
        memory: Some(headline.memory.usage),
        gpus: usize::try_from(gpus.count).unwrap_or(usize::MAX),
        gpu: gpus.utilization,
        gpu_memory_used: gpus.memory_used,
        gpu_memory_total: gpus.memory_total,
        power: gpus.power,
        ..row
    }
}
