//! The screen drawn on ratatui's `TestBackend` from fixed answers: the numbers shown are the
//! element's, the list follows the sort key, help and the disconnected state show.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::draw;
use crate::model::wire::{
    headline_array_json, Accelerator, AcceleratorMemory, ClusterInfo, ClusterNode, Core, Cpu, Disk,
    Memory, Network, NodeMetrics, Swap,
};
use crate::top::app::{Action, App, SortKey};
use crate::top::fetch::{Mode, Round, Update};
use crate::top::format::{bytes, percent, rate};

fn element(node: &str, cpu: f64, memory_used: u64, gpu: Option<f64>) -> NodeMetrics<'static> {
    NodeMetrics {
        node_id: Cow::Owned(node.to_string()),
        timestamp: 1_795_616_620_272,
        cpu: Some(Cpu {
            overall: cpu,
            cores: (0..8)
                .map(|i| Core {
                    id: i,
                    usage: 10.0 * i as f64 + 0.5,
                    frequency: Some(2900.0),
                    temperature: None,
                })
                .collect(),
            load_average: [0.52, 0.61, 0.7],
            processes: 312,
            threads: 1024,
        }),
        memory: Some(Memory {
            usage: memory_used as f64 / 16_084_897_792.0 * 100.0,
            used: memory_used,
            total: 16_084_897_792,
            swap: Swap {
                used: 0,
                total: 2_147_479_552,
                percentage: 0.0,
            },
            ..Memory::default()
        }),
        disk: Some(Disk {
            usage: 57.1,
            used: 280_000_000_000,
            total: 490_000_000_000,
            io_read: 1_048_576.0,
            io_write: 524_288.0,
            iops: 42.0,
        }),
        network: Some(Network {
            bytes_in: 2048.0,
            bytes_out: 1024.0,
            packets_in: 12.0,
            packets_out: 9.0,
            connections: Some(17),
        }),
        accelerators: gpu
            .map(|u| Accelerator {
                id: Cow::Borrowed("0"),
                name: Cow::Borrowed("NVIDIA H100"),
                utilization: Some(u),
                memory: AcceleratorMemory {
                    used: Some(10 * 1024 * 1024 * 1024),
                    total: Some(80 * 1024 * 1024 * 1024),
                    percentage: Some(12.5),
                    reserved: None,
                },
                temperature: Some(62.0),
                power: Some(300.0),
                ..Accelerator::default()
            })
            .into_iter()
            .collect(),
        ..NodeMetrics::default()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("encode"))
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).expect("test terminal");
    terminal
        .draw(|frame| draw(frame, app, Instant::now()))
        .expect("draw");
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn agent_app(e: &NodeMetrics<'_>) -> App {
    let mut app = App::new("http://127.0.0.1:8080".into());
    app.apply(
        Update::Round(Round {
            mode: Mode::Agent,
            metrics: json(&[e]),
            cluster: None,
            focus: None,
        }),
        Instant::now(),
    );
    app
}

#[test]
fn the_agent_view_shows_the_elements_numbers() {
    let e = element("worker-01", 12.5, 6_643_777_536, Some(45.0));
    let text = screen(&agent_app(&e));
    assert!(text.contains("agent"), "{text}");
    assert!(text.contains("worker-01"), "{text}");
    assert!(text.contains("overall  12.5%"), "{text}");
    assert!(text.contains("load 0.52 0.61 0.70"), "{text}");
    for i in 0..8 {
        assert!(
            text.contains(&format!(
                "{i:>4} {:>6}",
                percent(Some(10.0 * i as f64 + 0.5))
            )),
            "core {i}:\n{text}"
        );
    }
    let m = e.memory.as_ref().expect("memory");
    let memory = format!(
        "used {} / {} ({})",
        bytes(m.used),
        bytes(m.total),
        percent(Some(m.usage))
    );
    assert_eq!(memory, "used 6.2 GiB / 15.0 GiB (41.3%)");
    assert!(text.contains(&memory), "{text}");
    let d = e.disk.as_ref().expect("disk");
    let disk = format!(
        "used {} / {} ({})",
        bytes(d.used),
        bytes(d.total),
        percent(Some(d.usage))
    );
    assert_eq!(disk, "used 260.8 GiB / 456.3 GiB (57.1%)");
    assert!(text.contains(&disk), "{text}");
    // The write rate's sparkline fits in the disk box.
    let write = text
        .lines()
        .find_map(|l| l.split_once("write 512.0 KiB/s"))
        .map(|(_, after)| after.to_string())
        .unwrap_or_default();
    assert!(write.contains('█'), "{text}");
    assert!(text.contains(&rate(1_048_576.0)), "{text}");
    assert!(text.contains("connections 17"), "{text}");
    assert!(text.contains("NVIDIA H100"), "{text}");
    assert!(text.contains("util  45.0%"), "{text}");
    assert!(text.contains("10.0 GiB / 80.0 GiB (12.5%)"), "{text}");
    assert!(text.contains("300 W"), "{text}");
    assert!(text.contains("connected"), "{text}");
}

#[test]
fn sparklines_grow_with_samples_and_history() {
    let mut e = element("worker-01", 0.0, 1, None);
    let mut app = agent_app(&e);
    for (i, cpu) in [25.0, 50.0, 100.0].into_iter().enumerate() {
        e.timestamp += 1000 * (i as i64 + 1);
        e.cpu.as_mut().expect("cpu").overall = cpu;
        app.apply(
            Update::Round(Round {
                mode: Mode::Agent,
                metrics: json(&[&e]),
                cluster: None,
                focus: None,
            }),
            Instant::now(),
        );
    }
    assert!(screen(&app).contains("▁▃▅█"), "{}", screen(&app));
    // History before the first live sample goes in front; a sample already there is not doubled.
    let history = [(1, 100.0), (2, 100.0), (e.timestamp, 0.0)];
    app.apply(
        Update::History {
            node: None,
            series: [("cpu.overall".to_string(), history.to_vec())].into(),
        },
        Instant::now(),
    );
    assert!(screen(&app).contains("██▁▃▅█"), "{}", screen(&app));
}

fn cluster(nodes: &[(&str, &str)]) -> Bytes {
    json(&ClusterInfo {
        nodes: nodes
            .iter()
            .map(|(name, status)| ClusterNode {
                id: Some(Cow::Borrowed(name)),
                name: Cow::Borrowed(name),
                status: Cow::Borrowed(status),
                data_age_seconds: Some(0.5),
                ..ClusterNode::default()
            })
            .collect(),
        ..ClusterInfo::default()
    })
}

/// The coordinator's headline array (`?view=headline`) of `elements`.
fn headlines<T: serde::Serialize>(elements: &T) -> Bytes {
    Bytes::from(headline_array_json(&json(elements)).expect("headlines"))
}

fn coordinator_app() -> App {
    let mut app = App::new("http://127.0.0.1:9000".into());
    let elements = [
        element("alpha", 10.0, 8_000_000_000, None),
        element("bravo", 90.0, 2_000_000_000, Some(75.0)),
        element("charlie", 50.0, 12_000_000_000, Some(5.0)),
    ];
    app.apply(
        Update::Round(Round {
            mode: Mode::Coordinator,
            metrics: headlines(&elements),
            cluster: Some(cluster(&[
                ("alpha", "online"),
                ("bravo", "degraded"),
                ("charlie", "online"),
                ("delta", "offline"),
            ])),
            focus: None,
        }),
        Instant::now(),
    );
    app
}

/// The node names in the order the screen lists them.
fn order(text: &str) -> Vec<&'static str> {
    let mut found: Vec<(usize, &'static str)> = ["alpha", "bravo", "charlie", "delta"]
        .into_iter()
        .filter_map(|n| text.find(&format!("│{n} ")).map(|at| (at, n)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

#[test]
fn the_coordinator_list_shows_each_node_and_sorts_by_key() {
    let mut app = coordinator_app();
    let text = screen(&app);
    assert!(text.contains("coordinator: 4 nodes, 2 online"), "{text}");
    assert_eq!(
        order(&text),
        ["alpha", "bravo", "charlie", "delta"],
        "{text}"
    );
    let bravo = text
        .lines()
        .find(|l| l.contains("│bravo "))
        .expect("bravo row");
    for cell in [
        "degraded",
        "90.0%",
        "12.4%",
        "75.0%",
        "10.0 GiB / 80.0 GiB",
        "300 W",
    ] {
        assert!(bravo.contains(cell), "{cell} in {bravo}");
    }
    for (key, sort, expected) in [
        ('c', SortKey::Cpu, ["bravo", "charlie", "alpha", "delta"]),
        ('m', SortKey::Memory, ["charlie", "alpha", "bravo", "delta"]),
        ('g', SortKey::Gpu, ["bravo", "charlie", "alpha", "delta"]),
        ('s', SortKey::Status, ["delta", "bravo", "alpha", "charlie"]),
        ('n', SortKey::Name, ["alpha", "bravo", "charlie", "delta"]),
    ] {
        assert_eq!(app.key(key_char(key)), Action::Redraw);
        assert_eq!(app.sort, sort);
        let text = screen(&app);
        assert_eq!(order(&text), expected, "sort {key}:\n{text}");
    }
}

fn key_char(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

#[test]
fn enter_drills_into_the_selected_node_and_esc_goes_back() {
    let mut app = coordinator_app();
    assert_eq!(app.key(key(KeyCode::Down)), Action::Redraw);
    assert_eq!(app.selected.as_deref(), Some("bravo"));
    assert_eq!(
        app.key(key(KeyCode::Enter)),
        Action::Focus(Some("bravo".into()))
    );
    // The list had the nodes' headlines only: the node's element comes with the next round.
    let text = screen(&app);
    assert!(text.contains("loading node bravo"), "{text}");
    let statuses = cluster(&[("alpha", "online"), ("bravo", "degraded")]);
    app.apply(
        Update::Round(Round {
            mode: Mode::Coordinator,
            metrics: json(&[element("bravo", 90.0, 2_000_000_000, Some(75.0))]),
            cluster: Some(statuses),
            focus: Some("bravo".into()),
        }),
        Instant::now(),
    );
    let text = screen(&app);
    assert!(text.contains("node bravo"), "{text}");
    assert!(text.contains("overall  90.0%"), "{text}");
    assert!(text.contains("NVIDIA H100"), "{text}");
    // Drilled in, the rounds bring the node's element only; a round of the list fetched
    // before the key is not shown.
    let mut bravo = element("bravo", 33.0, 2_000_000_000, Some(75.0));
    bravo.timestamp += 1000;
    let statuses = cluster(&[("alpha", "offline"), ("bravo", "online")]);
    app.apply(
        Update::Round(Round {
            mode: Mode::Coordinator,
            metrics: headlines(&[element("alpha", 1.0, 1, None)]),
            cluster: Some(statuses.clone()),
            focus: None,
        }),
        Instant::now(),
    );
    assert!(screen(&app).contains("overall  90.0%"));
    app.apply(
        Update::Round(Round {
            mode: Mode::Coordinator,
            metrics: json(&[&bravo]),
            cluster: Some(statuses),
            focus: Some("bravo".into()),
        }),
        Instant::now(),
    );
    assert!(screen(&app).contains("overall  33.0%"), "{}", screen(&app));
    assert_eq!(app.key(key(KeyCode::Esc)), Action::Focus(None));
    let text = screen(&app);
    assert!(text.contains("Nodes (sorted by name)"), "{text}");
    // The list kept its figures; the statuses moved on.
    let alpha = text
        .lines()
        .find(|l| l.contains("│alpha "))
        .expect("alpha row");
    assert!(
        alpha.contains("offline") && alpha.contains("10.0%"),
        "{alpha}"
    );
    // A node without data (offline, never heard from) is not drilled into.
    app.key(key(KeyCode::End));
    assert_eq!(app.selected.as_deref(), Some("delta"));
    assert_eq!(app.key(key(KeyCode::Enter)), Action::None);
}

#[test]
fn help_and_quit_keys() {
    let mut app = coordinator_app();
    assert_eq!(app.key(key_char('?')), Action::Redraw);
    let text = screen(&app);
    assert!(text.contains("Keys (? or Esc closes)"), "{text}");
    assert!(text.contains("drill down into the selected node"), "{text}");
    assert_eq!(app.key(key(KeyCode::Esc)), Action::Redraw);
    assert!(!screen(&app).contains("Keys (? or Esc closes)"));
    assert_eq!(app.key(key_char('q')), Action::Quit);
    assert_eq!(
        app.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
        Action::Quit
    );
}

#[test]
fn a_server_gone_away_shows_with_the_last_data() {
    let e = element("worker-01", 12.5, 6_643_777_536, None);
    let mut app = agent_app(&e);
    app.apply(
        Update::Down {
            error: "connection refused".into(),
            retry_in: Duration::from_secs(4),
        },
        Instant::now(),
    );
    let text = screen(&app);
    assert!(text.contains("disconnected — retrying in"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        text.contains("overall  12.5%"),
        "the last data stays:\n{text}"
    );
    app.apply(
        Update::Round(Round {
            mode: Mode::Agent,
            metrics: json(&[&e]),
            cluster: None,
            focus: None,
        }),
        Instant::now(),
    );
    assert!(screen(&app).contains("connected, updated"));
}
