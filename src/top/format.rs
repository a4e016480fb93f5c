//! How `system_monitor top` writes numbers: percents with one decimal, bytes in binary units,
//! rates per second, and text sparklines. Public so that the terminal test reads the screen
//! with the same rules.

/// `41.3%`; `-` for an unknown value.
pub fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.1}%"),
        _ => "-".to_string(),
    }
}

/// `6.2 GiB`, `512 B`: binary units, one decimal above bytes.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    let mut v = value as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `1.0 MiB/s` from bytes per second.
pub fn rate(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "-".to_string();
    }
    format!("{}/s", bytes(value.round() as u64))
}

/// `300 W`; `-` for an unknown value.
pub fn watts(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.0} W"),
        _ => "-".to_string(),
    }
}

/// `62°C`; `-` for an unknown value.
pub fn celsius(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.0}°C"),
        _ => "-".to_string(),
    }
}

/// The eighths of a block, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per value, scaled to `max` (percent series: 100; others: `None`, their own
/// largest value); padded on the left with spaces to `width`, the newest value last.
pub fn sparkline(values: &[f64], width: usize, max: Option<f64>) -> String {
    let values = &values[values.len().saturating_sub(width)..];
    let top = max.unwrap_or_else(|| values.iter().copied().fold(0.0, f64::max));
    let mut out = " ".repeat(width - values.len());
    for &v in values {
        let share = if top > 0.0 && v.is_finite() {
            (v / top).clamp(0.0, 1.0)
        } else {
            0.0
        };
        out.push(BARS[((share * 7.0).round() as usize).min(7)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_documented() {
        assert_eq!(percent(Some(41.25)), "41.2%");
        assert_eq!(percent(Some(f64::NAN)), "-");
        assert_eq!(percent(None), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(6_643_777_536), "6.2 GiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(rate(1_048_576.0), "1.0 MiB/s");
        assert_eq!(watts(Some(299.6)), "300 W");
        assert_eq!(celsius(Some(61.8)), "62°C");
    }

    #[test]
    fn sparklines_scale_and_pad() {
        assert_eq!(sparkline(&[0.0, 50.0, 100.0], 5, Some(100.0)), "  ▁▅█");
        assert_eq!(sparkline(&[1.0, 2.0, 3.0, 4.0], 2, None), "▆█");
        assert_eq!(sparkline(&[], 3, None), "   ");
        assert_eq!(sparkline(&[0.0, 0.0], 2, None), "▁▁");
    }
}
