//! Draws `system_monitor top` from its [`App`] state: a title line with the connection, the
//! node view (CPU per core, memory, disk totals with the devices and filesystems below them,
//! network, accelerators, with sparklines) or the coordinator's node list, a key line, and the
//! help on top. A pure function of the state and the time, so that tests draw it on ratatui's
//! `TestBackend`.

use std::time::Instant;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::app::{App, Connection, NodeRow};
use super::fetch::Mode;
use super::format::{bytes, celsius, percent, rate, sparkline, watts};
use crate::model::wire::NodeMetrics;

mod disk;

/// Width of one core's cell: ` 12 100.0% ` and its sparkline.
const CORE_CELL: usize = 30;
/// Sparkline width inside a core's cell.
const CORE_SPARK: usize = 16;

/// The keys, as the help shows them.
pub const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?", "this help (any key closes it)"),
    ("↑ ↓, k j", "select a node (coordinator)"),
    ("PgUp PgDn Home End", "move further"),
    ("Enter, →", "drill down into the selected node"),
    ("Esc, ←", "back to the node list"),
    (
        "n s c m g v p",
        "sort by name, status, CPU, memory, GPU, GPU memory, power",
    ),
];

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App, now: Instant) {
    let [title, status, body, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(title_line(app)), title);
    frame.render_widget(Paragraph::new(status_line(app, now)), status);
    let dim = matches!(app.connection, Connection::Down { .. });
    match app.mode {
        None => {
            let text = match &app.connection {
                Connection::Down { .. } => "no answer yet",
                _ => "connecting…",
            };
            frame.render_widget(Paragraph::new(text), body);
        }
        Some(Mode::Coordinator) if app.focus.is_none() => node_list(frame, body, app, dim),
        Some(_) => match app.element_of(app.shown_node()) {
            Some(element) => node_view(frame, body, app, &element, dim),
            // Drilled in, before the node's first round.
            None if app.metrics.is_empty() => frame.render_widget(
                Paragraph::new(format!(
                    "loading node {}… (Esc: back)",
                    app.shown_node().unwrap_or("this node")
                )),
                body,
            ),
            None => frame.render_widget(
                Paragraph::new(format!(
                    "no data for {} (Esc: back)",
                    app.shown_node().unwrap_or("this node")
                )),
                body,
            ),
        },
    }
    frame.render_widget(Paragraph::new(key_line(app)).style(dim_style()), keys);
    if app.help {
        help(frame, frame.area());
    }
}

fn dim_style() -> Style {
    Style::default().fg(Color::DarkGray)
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn title_line(app: &App) -> Line<'static> {
    let what = match (app.mode, &app.focus) {
        (None, _) => String::new(),
        (Some(Mode::Agent), _) => "agent".to_string(),
        (Some(Mode::Coordinator), None) => {
            let online = app.rows.iter().filter(|r| r.status == "online").count();
            format!("coordinator: {} nodes, {online} online", app.rows.len())
        }
        (Some(Mode::Coordinator), Some(node)) => format!("coordinator › node {node}"),
    };
    Line::from(vec![
        Span::styled("system_monitor top", bold()),
        Span::raw(format!("  {}  ", app.url)),
        Span::styled(what, Style::default().fg(Color::Cyan)),
    ])
}

fn status_line(app: &App, now: Instant) -> Line<'static> {
    match &app.connection {
        Connection::Connecting => Line::from("connecting…"),
        Connection::Up => {
            let age = app.age(now).map_or(0.0, |a| a.as_secs_f64());
            Line::styled(
                format!("connected, updated {age:.1} s ago"),
                Style::default().fg(Color::Green),
            )
        }
        Connection::Down { error, retry_at } => {
            let wait = retry_at.saturating_duration_since(now).as_secs_f64();
            Line::styled(
                format!("disconnected — retrying in {wait:.0} s: {error}"),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            )
        }
    }
}

fn key_line(app: &App) -> String {
    if app.listing() {
        format!(
            "q quit  ? help  ↑↓ select  Enter drill down  sort: n s c m g v p (by {})",
            app.sort.name()
        )
    } else if app.focus.is_some() {
        "q quit  ? help  Esc back".to_string()
    } else {
        "q quit  ? help".to_string()
    }
}

/// A block with a title, grey when the data is old.
fn block(title: String, dim: bool) -> Block<'static> {
    let block = Block::bordered().title(title);
    if dim {
        block.style(dim_style())
    } else {
        block
    }
}

/// One node: CPU (overall and per core), memory, disk (totals, then the devices and the
/// filesystems as far as the screen has room), network, accelerators.
pub fn node_view(frame: &mut Frame, area: Rect, app: &App, e: &NodeMetrics<'_>, dim: bool) {
    let spark = |path: &str, width: usize, max: Option<f64>| {
        let values = app
            .rings
            .get(path)
            .map(|r| r.last(width))
            .unwrap_or_default();
        sparkline(&values, width, max)
    };
    let cores = e.cpu.as_ref().map_or(0, |c| c.cores.len());
    let columns = ((area.width as usize).saturating_sub(2) / CORE_CELL).max(1);
    let core_lines = cores.div_ceil(columns) as u16;
    let accelerators = e.accelerators.len().max(1) as u16;
    let cpu_height = core_lines.saturating_add(4);
    // Memory and disk: two lines of totals, and the disk's rows where the screen has room for
    // them after the CPU, the network and one line per accelerator (and the boxes' borders).
    let spare = area.height.saturating_sub(
        cpu_height
            .saturating_add(accelerators)
            .saturating_add(2 + 3 + 2),
    );
    let wanted = u16::try_from(2 + disk::wanted(e)).unwrap_or(u16::MAX);
    let middle_height = wanted.min(spare).max(2) + 2;
    let [cpu_area, middle, net_area, accel_area] = Layout::vertical([
        Constraint::Length(cpu_height),
        Constraint::Length(middle_height),
        Constraint::Length(3),
        Constraint::Min(accelerators.saturating_add(2)),
    ])
    .areas(area);

    // CPU.
    let inner_width = (area.width as usize).saturating_sub(2);
    let mut lines = Vec::new();
    if let Some(cpu) = &e.cpu {
        let [l1, l5, l15] = cpu.load_average;
        lines.push(Line::from(vec![
            Span::styled(
                format!("overall {:>6} ", percent(Some(cpu.overall))),
                bold(),
            ),
            Span::raw(format!(
                "load {l1:.2} {l5:.2} {l15:.2}  processes {}  threads {}",
                cpu.processes, cpu.threads
            )),
        ]));
        let width = inner_width.saturating_sub(2);
        lines.push(Line::from(spark("cpu.overall", width, Some(100.0))));
        for chunk in cpu
            .cores
            .iter()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(columns)
        {
            let mut spans = Vec::new();
            for (i, core) in chunk {
                spans.push(Span::raw(format!(
                    "{:>4} {:>6} {} ",
                    core.id,
                    percent(Some(core.usage)),
                    spark(&format!("cpu.cores.{i}.usage"), CORE_SPARK, Some(100.0))
                )));
            }
            lines.push(Line::from(spans));
        }
    }
    let title = format!(
        "{} — CPU ({cores} cores)",
        if e.hostname.is_empty() || e.hostname == e.node_id {
            e.node_id.to_string()
        } else {
            format!("{} ({})", e.node_id, e.hostname)
        }
    );
    frame.render_widget(Paragraph::new(lines).block(block(title, dim)), cpu_area);

    // Memory and disk, side by side, as tall as the disk's rows want and the screen allows.
    let [memory_area, disk_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(middle);
    let half = (memory_area.width as usize).saturating_sub(2);
    let rows = (middle.height as usize).saturating_sub(2);
    let mut lines = Vec::new();
    if let Some(m) = &e.memory {
        lines.push(Line::from(format!(
            "used {} / {} ({})",
            bytes(m.used),
            bytes(m.total),
            percent(Some(m.usage))
        )));
        let swap = format!(
            "swap {} / {} ({})",
            bytes(m.swap.used),
            bytes(m.swap.total),
            percent(Some(m.swap.percentage)),
        );
        if rows > 2 {
            // Room below: the sparkline gets a line of its own, the box's width.
            lines.push(Line::from(swap));
            lines.push(Line::from(spark("memory.usage", half, Some(100.0))));
        } else {
            lines.push(Line::from(format!(
                "{swap}  {}",
                spark("memory.usage", half.saturating_sub(40).min(60), Some(100.0))
            )));
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("Memory".into(), dim)),
        memory_area,
    );
    let disk_width = (disk_area.width as usize).saturating_sub(2);
    let mut lines = Vec::new();
    if let Some(d) = &e.disk {
        lines.push(Line::from(format!(
            "used {} / {} ({})  iops {:.0}",
            bytes(d.used),
            bytes(d.total),
            percent(Some(d.usage)),
            d.iops
        )));
        let w = (disk_width.saturating_sub(40) / 2).clamp(4, 20);
        lines.push(Line::from(format!(
            "read {:>11} {}  write {:>11} {}",
            rate(d.io_read),
            spark("disk.ioRead", w, None),
            rate(d.io_write),
            spark("disk.ioWrite", w, None)
        )));
    }
    let rows_left = rows.saturating_sub(lines.len());
    lines.extend(disk::lines(e, disk_width, rows_left));
    frame.render_widget(
        Paragraph::new(lines).block(block("Disk".into(), dim)),
        disk_area,
    );

    // Network.
    let line = match &e.network {
        Some(n) => format!(
            "in {:>11} {}  out {:>11} {}  packets in {:.0}/s out {:.0}/s  connections {}",
            rate(n.bytes_in),
            spark("network.bytesIn", 24, None),
            rate(n.bytes_out),
            spark("network.bytesOut", 24, None),
            n.packets_in,
            n.packets_out,
            n.connections.map_or("-".to_string(), |c| c.to_string())
        ),
        None => String::new(),
    };
    frame.render_widget(
        Paragraph::new(line).block(block("Network".into(), dim)),
        net_area,
    );

    // Accelerators.
    let mut lines = Vec::new();
    for (i, a) in e.accelerators.iter().enumerate() {
        let memory = match (a.memory.used, a.memory.total) {
            (Some(used), Some(total)) => format!(
                "{} / {} ({})",
                bytes(used),
                bytes(total),
                percent(a.memory.percentage)
            ),
            _ => "-".to_string(),
        };
        lines.push(Line::from(format!(
            "{:>2} {:<24.24} util {:>6} {}  mem {memory:<28} {:>5} {:>6}{}",
            a.index,
            a.name,
            percent(a.utilization),
            spark(&format!("accelerators.{i}.utilization"), 20, Some(100.0)),
            celsius(a.temperature),
            watts(a.power),
            a.error
                .as_deref()
                .map_or(String::new(), |e| format!("  error: {e}"))
        )));
    }
    if lines.is_empty() {
        lines.push(Line::from("none"));
    }
    frame.render_widget(
        Paragraph::new(lines).block(block(
            format!("Accelerators ({})", e.accelerators.len()),
            dim,
        )),
        accel_area,
    );
}

/// The coordinator's nodes, one row each, in the chosen order.
pub fn node_list(frame: &mut Frame, area: Rect, app: &App, dim: bool) {
    let header = Row::new(
        [
            "NODE", "STATUS", "AGE", "CPU", "MEM", "GPUS", "GPU", "GPU MEM", "POWER", "ERROR",
        ]
        .map(|h| Cell::from(h).style(bold())),
    );
    let selected = app.selected_index();
    let rows = app.rows.iter().enumerate().map(|(i, row)| {
        let mut style = match row.status.as_str() {
            "offline" => Style::default().fg(Color::Red),
            "degraded" => Style::default().fg(Color::Yellow),
            _ => Style::default(),
        };
        if dim {
            style = dim_style();
        }
        if Some(i) == selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        Row::new(row_cells(row)).style(style)
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(24),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(7),
            Constraint::Length(24),
            Constraint::Length(8),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(block(format!("Nodes (sorted by {})", app.sort.name()), dim));
    frame.render_widget(table, area);
}

/// The cells of one node's row.
pub fn row_cells(row: &NodeRow) -> Vec<String> {
    let gpu_memory = match (row.gpu_memory_used, row.gpu_memory_total) {
        (Some(used), Some(total)) => format!("{} / {}", bytes(used), bytes(total)),
        _ => "-".to_string(),
    };
    vec![
        row.name.clone(),
        row.status.clone(),
        row.data_age_seconds
            .map_or("-".to_string(), |a| format!("{a:.1}s")),
        percent(row.cpu),
        percent(row.memory),
        row.gpus.to_string(),
        percent(row.gpu),
        gpu_memory,
        watts(row.power),
        row.error.clone().unwrap_or_default(),
    ]
}

/// The keys, in a box over the middle of the screen.
fn help(frame: &mut Frame, area: Rect) {
    let width = 84.min(area.width);
    let height = (HELP.len() as u16 + 4).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:>20}  "), bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title("Keys (? or Esc closes)")),
        popup,
    );
}

#[cfg(test)]
mod tests;
