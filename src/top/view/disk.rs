//! The rows of the node view's Disk box below its totals: the block devices (read and write
//! rates, utilisation) and the filesystems (mount, used / size, use with a bar), as many as
//! the box holds; a section cut short says how many rows it left out, as btop does.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use crate::model::wire::{DiskDevice, Filesystem, NodeMetrics};
use crate::top::format::{bytes, percent, rate};

/// Width of a rate column (`1023.9 MiB/s`).
const RATE: usize = 12;
/// Width of a percent column (`100.0%`).
const PERCENT: usize = 6;
/// Width of a size column (`1023.9 GiB`).
const SIZE: usize = 10;
/// The name column's width: at least this, more on a wide box …
const MIN_NAME: usize = 8;
/// … up to this.
const MAX_NAME: usize = 24;
/// The widest use bar.
const MAX_BAR: usize = 20;

/// Lines [`lines`] would draw given all the room it wants: a heading per non-empty section
/// and a row per device and filesystem.
pub fn wanted(e: &NodeMetrics<'_>) -> usize {
    let (devices, filesystems) = (e.disks.len(), e.filesystems.len());
    devices + filesystems + usize::from(devices > 0) + usize::from(filesystems > 0)
}

/// The device and filesystem rows of `e` in `height` lines of `width` characters: the devices
/// counted in the totals first, then the others, in the agent's order (the same for the
/// filesystems).
pub fn lines(e: &NodeMetrics<'_>, width: usize, height: usize) -> Vec<Line<'static>> {
    let devices = counted_first(&e.disks, |d| d.counted_in_total);
    let filesystems = counted_first(&e.filesystems, |f| f.counted_in_total);
    let (d, f) = (devices.len(), filesystems.len());
    if height == 0 || d + f == 0 {
        return Vec::new();
    }
    if height == 1 && d > 0 && f > 0 {
        // No room for a heading and a row of each: say what there is.
        return vec![Line::styled(
            format!("{d} devices, {f} filesystems"),
            heading(),
        )];
    }
    let (show_devices, show_filesystems) = share(height, d, f);
    let name = width.saturating_sub(41).clamp(MIN_NAME, MAX_NAME);
    let mut out = Vec::new();
    if d > 0 {
        let columns = format!(
            "{:<name$} {:>RATE$} {:>RATE$} {:>PERCENT$}",
            "DEVICE", "READ", "WRITE", "UTIL"
        );
        out.push(heading_line(columns, d - show_devices, width));
        out.extend(devices[..show_devices].iter().map(|d| device_row(d, name)));
    }
    if f > 0 {
        let columns = format!(
            "{:<name$} {:>SIZE$}   {:>SIZE$} {:>PERCENT$}",
            "MOUNT", "USED", "SIZE", "USE"
        );
        out.push(heading_line(columns, f - show_filesystems, width));
        out.extend(
            filesystems[..show_filesystems]
                .iter()
                .map(|fs| filesystem_row(fs, name, width)),
        );
    }
    out
}

/// How many devices and filesystems `height` lines show, with a heading for each non-empty
/// section: all when they fit; otherwise about half the rows each, a section that needs less
/// giving the rest to the other.
fn share(height: usize, devices: usize, filesystems: usize) -> (usize, usize) {
    let headings = usize::from(devices > 0) + usize::from(filesystems > 0);
    if devices + filesystems + headings <= height {
        return (devices, filesystems);
    }
    let rows = height.saturating_sub(headings);
    let shown_filesystems = filesystems.min(rows - devices.min(rows / 2));
    (devices.min(rows - shown_filesystems), shown_filesystems)
}

/// `items` with those `counted` first, each part in its own order.
fn counted_first<T>(items: &[T], counted: impl Fn(&T) -> bool) -> Vec<&T> {
    let (mut first, rest): (Vec<&T>, Vec<&T>) = items.iter().partition(|i| counted(i));
    first.extend(rest);
    first
}

fn heading() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// A section's column titles, and how many of its rows did not fit (`+2 more`, or `+2` where
/// `width` is short, the titles cut to make room for it).
fn heading_line(columns: String, hidden: usize, width: usize) -> Line<'static> {
    if hidden == 0 {
        return Line::styled(columns, heading());
    }
    let titles = columns.chars().count();
    let more = match format!("  +{hidden} more") {
        long if titles + long.chars().count() <= width => long,
        _ => format!(" +{hidden}"),
    };
    let titles = titles.min(width.saturating_sub(more.chars().count()));
    Line::from(vec![
        Span::styled(columns.chars().take(titles).collect::<String>(), heading()),
        Span::styled(more, Style::default().fg(Color::Yellow)),
    ])
}

fn device_row(d: &DiskDevice<'_>, name: usize) -> Line<'static> {
    Line::from(format!(
        "{:<name$} {:>RATE$} {:>RATE$} {:>PERCENT$}",
        cut(&d.device, name),
        rate(d.io_read),
        rate(d.io_write),
        percent(Some(d.utilization)),
    ))
}

fn filesystem_row(fs: &Filesystem<'_>, name: usize, width: usize) -> Line<'static> {
    let mount = cut(&fs.mountpoint, name);
    if fs.state != "ok" {
        let why = fs.error.as_deref().unwrap_or_default();
        return Line::styled(
            format!("{mount:<name$} {}: {why}", fs.state),
            Style::default().fg(Color::Red),
        );
    }
    let figures = format!(
        "{mount:<name$} {:>SIZE$} / {:>SIZE$} {:>PERCENT$}",
        bytes(fs.used),
        bytes(fs.size),
        percent(Some(fs.usage)),
    );
    let room = width.saturating_sub(figures.chars().count() + 1);
    let mut spans = vec![Span::raw(figures)];
    if fs.readonly {
        spans.push(Span::raw(" ro"));
    } else if room >= 4 {
        spans.push(Span::raw(" "));
        spans.push(bar(fs.usage, room.min(MAX_BAR)));
    }
    Line::from(spans)
}

/// A bar of `width` cells, `share` percent of it full; yellow from 75 %, red from 90 %.
fn bar(share: f64, width: usize) -> Span<'static> {
    let share = if share.is_finite() {
        share.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let full = ((share / 100.0 * width as f64).round() as usize).min(width);
    let color = if share >= 90.0 {
        Color::Red
    } else if share >= 75.0 {
        Color::Yellow
    } else {
        Color::Green
    };
    Span::styled(
        format!("{}{}", "■".repeat(full), "·".repeat(width - full)),
        Style::default().fg(color),
    )
}

/// `text` in at most `width` characters, `…` marking a cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_shared_between_the_sections() {
        // Everything fits.
        assert_eq!(share(6, 2, 2), (2, 2));
        // Half each, the filesystems taking an odd row.
        assert_eq!(share(7, 10, 10), (2, 3));
        // A short section gives its rest to the other.
        assert_eq!(share(7, 1, 10), (1, 4));
        assert_eq!(share(7, 10, 1), (4, 1));
        // Headings only, or one section.
        assert_eq!(share(2, 3, 3), (0, 0));
        assert_eq!(share(3, 0, 5), (0, 2));
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(cut("/var/lib/docker", 8), "/var/li…");
        assert_eq!(cut("/boot", 8), "/boot");
    }
}
