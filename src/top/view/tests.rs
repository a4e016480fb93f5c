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
    DiskDevice, Filesystem, Memory, Network, NodeMetrics, Swap,
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
        disks: [
            ("sda", 1_048_576.0, 0.0, 12.5, true),
            ("loop0", 0.0, 0.0, 0.0, false),
            ("nvme0n1", 0.0, 524_288.0, 3.0, true),
        ]
        .into_iter()
        .map(
            |(device, io_read, io_write, utilization, counted_in_total)| DiskDevice {
                device: Cow::Borrowed(device),
                io_read,
                io_write,
                utilization,
                counted_in_total,
                ..DiskDevice::default()
            },
        )
        .collect(),
        filesystems: vec![
            filesystem("/", 200_000_000_000, 400_000_000_000),
            filesystem("/boot/efi", 6_000_000, 535_805_952),
            Filesystem {
                readonly: true,
                counted_in_total: false,
                ..filesystem("/snap/core22/1033", 77_725_696, 77_725_696)
            },
            Filesystem {
                state: Cow::Borrowed("timed_out"),
                error: Some(Cow::Borrowed("statfs took over 1s")),
                ..filesystem("/mnt/nfs", 0, 0)
            },
        ],
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

fn filesystem(mountpoint: &'static str, used: u64, size: u64) -> Filesystem<'static> {
    Filesystem {
        device: Cow::Borrowed("/dev/sda1"),
        mountpoint: Cow::Borrowed(mountpoint),
        fstype: Cow::Borrowed("ext4"),
        size,
        used,
        avail: size - used,
        usage: if size == 0 {
            0.0
        } else {
            used as f64 / size as f64 * 100.0
        },
        state: Cow::Borrowed("ok"),
        counted_in_total: true,
        ..Filesystem::default()
    }
}

fn json<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("encode"))
}

fn screen(app: &App) -> String {
    screen_of(app, 160, 50)
}

fn screen_of(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
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

/// The right half of each line: the Disk box, beside the Memory box.
fn disk_box(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| {
            let half = l.chars().count() / 2;
            l.chars().skip(half).collect()
        })
        .collect()
}

/// The Disk box's row that starts with `name`.
fn disk_row(text: &str, name: &str) -> Option<String> {
    disk_box(text)
        .into_iter()
        .find(|l| l.starts_with(&format!("│{name} ")))
}

/// Whether `row` has each of `parts`, in this order.
fn in_order(row: &str, parts: &[&str]) -> bool {
    let mut rest = row;
    parts.iter().all(|part| match rest.find(part) {
        Some(at) => {
            rest = &rest[at + part.len()..];
            true
        }
        None => false,
    })
}

#[test]
fn the_disk_box_lists_the_devices_and_the_filesystems() {
    let e = element("worker-01", 12.5, 6_643_777_536, Some(45.0));
    let text = screen(&agent_app(&e));
    let rows: Vec<String> = disk_box(&text);
    let at = |name: &str| {
        rows.iter()
            .position(|l| l.starts_with(&format!("│{name} ")))
            .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
    };
    // The devices counted in the totals first, then the others; the same for filesystems.
    assert!(
        at("DEVICE") < at("sda") && at("sda") < at("nvme0n1"),
        "{text}"
    );
    assert!(
        at("nvme0n1") < at("loop0") && at("loop0") < at("MOUNT"),
        "{text}"
    );
    assert!(at("MOUNT") < at("/") && at("/") < at("/boot/efi"), "{text}");
    assert!(at("/mnt/nfs") < at("/snap/core22/1033"), "{text}");
    assert!(!text.contains("more"), "everything fits:\n{text}");
    for d in &e.disks {
        let row = disk_row(&text, &d.device).unwrap_or_default();
        let figures = [
            rate(d.io_read),
            rate(d.io_write),
            percent(Some(d.utilization)),
        ];
        let figures: Vec<&str> = figures.iter().map(String::as_str).collect();
        assert!(in_order(&row, &figures), "{figures:?} in {row:?}");
    }
    let root = disk_row(&text, "/").unwrap_or_default();
    assert!(
        in_order(&root, &["186.3 GiB", "/", "372.5 GiB", "50.0%", "■", "·"]),
        "{root:?}"
    );
    let efi = disk_row(&text, "/boot/efi").unwrap_or_default();
    assert!(
        in_order(&efi, &["5.7 MiB", "/", "511.0 MiB", "1.1%"]),
        "{efi:?}"
    );
    let snap = disk_row(&text, "/snap/core22/1033").unwrap_or_default();
    assert!(in_order(&snap, &["100.0%", " ro"]), "{snap:?}");
    let nfs = disk_row(&text, "/mnt/nfs").unwrap_or_default();
    assert!(nfs.contains("timed_out: statfs took over 1s"), "{nfs:?}");
    // The totals stay on top, the accelerators below.
    assert!(
        text.contains("used 260.8 GiB / 456.3 GiB (57.1%)"),
        "{text}"
    );
    assert!(text.contains("NVIDIA H100"), "{text}");
}

#[test]
fn a_smaller_terminal_shows_the_disk_rows_that_fit() {
    let e = element("worker-01", 12.5, 6_643_777_536, Some(45.0));
    let app = agent_app(&e);
    // 100×26: room for two rows of each section under their headings, names cut to 8.
    let text = screen_of(&app, 100, 26);
    for shown in ["sda", "nvme0n1", "/", "/boot/e…"] {
        assert!(disk_row(&text, shown).is_some(), "{shown}:\n{text}");
    }
    for hidden in ["loop0", "/mnt/nfs", "/snap/core22/1033"] {
        assert!(disk_row(&text, hidden).is_none(), "{hidden}:\n{text}");
    }
    // How many rows were left out, after the column titles (short in a narrow box).
    let device = disk_row(&text, "DEVICE").unwrap_or_default();
    assert!(in_order(&device, &["UTIL", "+1"]), "{device:?}");
    let mount = disk_row(&text, "MOUNT").unwrap_or_default();
    assert!(in_order(&mount, &["USE", "+2"]), "{mount:?}");
    let wide = screen_of(&app, 160, 26);
    let device = disk_row(&wide, "DEVICE").unwrap_or_default();
    assert!(in_order(&device, &["UTIL", "+1 more"]), "{wide}");
    assert!(
        text.contains("NVIDIA H100"),
        "the accelerators stay:\n{text}"
    );

    // 80×21: the totals only; the network and accelerator boxes keep their lines.
    let text = screen_of(&app, 80, 21);
    assert!(text.contains("used 260.8 GiB"), "{text}");
    assert!(
        !text.contains("DEVICE") && !text.contains("MOUNT"),
        "{text}"
    );
    assert!(
        text.contains("Network") && text.contains("NVIDIA H100"),
        "{text}"
    );

    // A host with hundreds of mounts: the box stops at the screen's room and says how many
    // rows it left out; the boxes below keep their lines.
    let mut many = e.clone();
    many.filesystems = (0..300)
        .map(|_| filesystem("/var/lib/kubelet/pods", 1, 2))
        .collect();
    let text = screen_of(&agent_app(&many), 160, 50);
    let mount = disk_row(&text, "MOUNT").unwrap_or_default();
    let shown = disk_box(&text)
        .iter()
        .filter(|l| l.starts_with("│/var/lib/kubelet/pods "))
        .count();
    assert!(shown > 2, "{text}");
    assert!(mount.contains(&format!("+{} more", 300 - shown)), "{text}");
    assert!(
        text.contains("Network") && text.contains("NVIDIA H100"),
        "{text}"
    );

    // Tiny terminals draw what fits, without panicking.
    for (width, height) in [(40, 10), (20, 5), (1, 1), (160, 4)] {
        screen_of(&app, width, height);
    }
}
