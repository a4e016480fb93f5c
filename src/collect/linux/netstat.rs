//! node_exporter's `netstat` collector: the kernel's IP, ICMP, TCP and UDP counters from
//! /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6, as untyped
//! `node_netstat_<Protocol>_<Field>` families, those that `--collector.netstat.fields` names.

use std::sync::Arc;

use regex_lite::Regex;

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// One field the filter keeps: its place in its header and its family's name and help.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// Index among the header's words (the values line has the same words).
    pub position: usize,
    /// `node_netstat_<Protocol>_<Field>`.
    pub name: Arc<str>,
    /// `Statistic <Protocol><Field>.`, node_exporter's help.
    pub help: Arc<str>,
}

/// What the filter keeps of one header, remembered with the header's text: the kernel writes the
/// same headers every time, so names are built and the pattern matched once, not every sample.
#[derive(Debug, Default)]
struct Layout {
    /// The header as last seen: a `Protocol: Field Field …` line of netstat or snmp, or
    /// snmp6's names joined by newlines.
    header: String,
    /// Words in the header (the values line must have as many).
    words: usize,
    /// The kept fields, by position.
    fields: Vec<Field>,
}

/// The family name and help of `protocol`'s `field`, when `fields` keeps it.
pub(crate) fn select(
    fields: &Regex,
    protocol: &str,
    field: &str,
    position: usize,
) -> Option<Field> {
    let key = format!("{protocol}_{field}");
    fields.is_match(&key).then(|| Field {
        position,
        name: format!("node_netstat_{key}").into(),
        help: format!("Statistic {protocol}{field}.").into(),
    })
}

/// The (header, values) line pairs of /proc/net/netstat or /proc/net/snmp, each header
/// `Protocol: Field …` with its values line `Protocol: 1 …` below it.
pub(crate) fn line_pairs(text: &str) -> impl Iterator<Item = Result<(&str, &str), String>> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    std::iter::from_fn(move || {
        let header = lines.next()?;
        Some(
            lines
                .next()
                .map(|values| (header, values))
                .ok_or_else(|| format!("no values under {header:?}")),
        )
    })
}

/// The protocol of a header (`TcpExt:` → `TcpExt`).
fn protocol_of(header: &str) -> Result<&str, String> {
    let first = header.split(' ').next().unwrap_or_default();
    first
        .strip_suffix(':')
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("no `Protocol:` at the start of {header:?}"))
}

/// snmp6's `Ip6InReceives 2` lines split as node_exporter splits them: the protocol runs to the
/// first `6` (`Ip6`, `Icmp6`, `UdpLite6`), the field is the rest. Lines without a `6` or a
/// value are skipped, as there.
pub(crate) fn snmp6_fields(text: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    text.lines().filter_map(|line| {
        let mut words = line.split_ascii_whitespace();
        let (name, value) = (words.next()?, words.next()?);
        let six = name.find('6')?;
        Some((&name[..=six], &name[six + 1..], value))
    })
}

/// One kept value: its field and the value.
type Value = (Field, f64);

/// Parses a kept field's value as node_exporter does (a float).
fn value_of(field: &Field, word: &str) -> Result<f64, String> {
    word.parse()
        .map_err(|_| format!("invalid value {word:?} for {}", field.name))
}

/// Appends the kept values of a netstat or snmp text to `out`, reusing and updating `layouts`
/// (one per header, in file order).
fn netstat_values(
    text: &str,
    fields: &Regex,
    layouts: &mut Vec<Layout>,
    out: &mut Vec<Value>,
) -> Result<(), String> {
    for (index, pair) in line_pairs(text).enumerate() {
        let (header, values) = pair?;
        if layouts.len() <= index {
            layouts.push(Layout::default());
        }
        let layout = &mut layouts[index];
        if layout.header != header {
            let protocol = protocol_of(header)?;
            layout.header = header.to_string();
            layout.words = header.split(' ').count();
            layout.fields = header
                .split(' ')
                .enumerate()
                .skip(1)
                .filter_map(|(position, field)| select(fields, protocol, field, position))
                .collect();
        }
        // Split on single spaces, as node_exporter does: the counts must agree.
        let mut kept = layout.fields.iter().peekable();
        let mut words = 0;
        for (position, word) in values.split(' ').enumerate() {
            words += 1;
            if let Some(field) = kept.next_if(|f| f.position == position) {
                out.push((field.clone(), value_of(field, word)?));
            }
        }
        if words != layout.words {
            let protocol = protocol_of(header)?;
            return Err(format!("field count mismatch for {protocol}"));
        }
    }
    Ok(())
}

/// Appends the kept values of a snmp6 text to `out`, reusing and updating `layout`.
fn snmp6_values(
    text: &str,
    fields: &Regex,
    layout: &mut Layout,
    out: &mut Vec<Value>,
) -> Result<(), String> {
    let same = {
        let mut names = layout.header.split('\n');
        snmp6_fields(text).all(|(protocol, field, _)| {
            names.next().is_some_and(|n| {
                n.len() == protocol.len() + field.len()
                    && n.starts_with(protocol)
                    && n.ends_with(field)
            })
        }) && names.next().is_none()
    };
    if !same {
        layout.header.clear();
        layout.fields.clear();
        for (position, (protocol, field, _)) in snmp6_fields(text).enumerate() {
            if position > 0 {
                layout.header.push('\n');
            }
            layout.header.push_str(protocol);
            layout.header.push_str(field);
            layout
                .fields
                .extend(select(fields, protocol, field, position));
        }
        layout.words = snmp6_fields(text).count();
    }
    let mut kept = layout.fields.iter().peekable();
    for (position, (_, _, value)) in snmp6_fields(text).enumerate() {
        if let Some(field) = kept.next_if(|f| f.position == position) {
            out.push((field.clone(), value_of(field, value)?));
        }
    }
    Ok(())
}

/// The families of `values`, sorted by name; a name seen twice keeps its last value (node_exporter
/// merges the three files protocol by protocol, the later file winning).
fn families(mut values: Vec<Value>) -> Vec<KernelFamily> {
    values.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let mut families: Vec<KernelFamily> = Vec::with_capacity(values.len());
    for (field, value) in values {
        if let Some(last) = families.last_mut().filter(|f| f.name == field.name) {
            *last = KernelFamily::single(field.name, field.help, KernelMetricKind::Untyped, value);
        } else {
            families.push(KernelFamily::single(
                field.name,
                field.help,
                KernelMetricKind::Untyped,
                value,
            ));
        }
    }
    families
}

/// Reads the three files each sample, kept open.
pub struct NetstatCollector {
    /// <procfs>/net/netstat: TcpExt, IpExt, MPTcpExt.
    netstat: KeptFile,
    /// <procfs>/net/snmp: Ip, Icmp, IcmpMsg, Tcp, Udp, UdpLite.
    snmp: KeptFile,
    /// <procfs>/net/snmp6: Ip6, Icmp6, Udp6, UdpLite6; absent where IPv6 is disabled.
    snmp6: KeptFile,
    /// Which `<Protocol>_<Field>` keys are reported.
    fields: Regex,
    /// The headers of netstat, snmp and snmp6 with what they keep.
    layouts: [Vec<Layout>; 2],
    /// snmp6's names with what they keep.
    snmp6_layout: Layout,
}

impl NetstatCollector {
    pub fn new(paths: &HostPaths, fields: Regex) -> Self {
        Self {
            netstat: KeptFile::new(paths.proc("net/netstat")),
            snmp: KeptFile::new(paths.proc("net/snmp")),
            snmp6: KeptFile::new(paths.proc("net/snmp6")),
            fields,
            layouts: [Vec::new(), Vec::new()],
            snmp6_layout: Layout::default(),
        }
    }
}

impl Collector for NetstatCollector {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut values = Vec::new();
        let [netstat_layouts, snmp_layouts] = &mut self.layouts;
        for (file, layouts) in [
            (&mut self.netstat, netstat_layouts),
            (&mut self.snmp, snmp_layouts),
        ] {
            let text = file.read()?;
            netstat_values(text, &self.fields, layouts, &mut values)
                .map_err(|m| CollectError::parse(file.path(), m))?;
        }
        // On systems with IPv6 disabled this file does not exist.
        if let Some(text) = self.snmp6.read_if_present()? {
            snmp6_values(text, &self.fields, &mut self.snmp6_layout, &mut values)
                .map_err(|m| CollectError::parse(self.snmp6.path(), m))?;
        }
        snapshot.kernel_families.extend(families(values));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
