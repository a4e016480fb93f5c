//! node_exporter's `sockstat` collector: sockets in use per protocol and the memory they hold,
//! from /proc/net/sockstat and /proc/net/sockstat6, as `node_sockstat_<PROTOCOL>_<state>` gauges.

use std::sync::Arc;

use crate::collect::{CollectError, Collector, HostPaths, KeptFile};
use crate::model::{KernelFamily, KernelMetricKind, Snapshot};

/// One protocol line of a sockstat file (`TCP: inuse 5 orphan 0 tw 0 alloc 5 mem 110`), with
/// the fields node_exporter reports; a field the line lacks is `None` (not reported).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Protocol<'a> {
    pub name: &'a str,
    /// Always reported (0 when the line lacks it), as node_exporter does.
    pub inuse: i64,
    pub orphan: Option<i64>,
    pub tw: Option<i64>,
    pub alloc: Option<i64>,
    /// Pages.
    pub mem: Option<i64>,
    /// Bytes (the FRAG lines).
    pub memory: Option<i64>,
}

/// A parsed sockstat file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sockstat<'a> {
    /// `sockets: used N` (only the IPv4 file has it).
    pub used: Option<i64>,
    pub protocols: Vec<Protocol<'a>>,
}

/// Parses a sockstat file as node_exporter's procfs does: each line a `NAME:` and key/value
/// pairs, split on single spaces; unknown keys are ignored.
pub(crate) fn parse(text: &str) -> Result<Sockstat<'_>, String> {
    let mut stat = Sockstat::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 3 {
            return Err(format!("malformed sockstat line: {line:?}"));
        }
        if fields.len().is_multiple_of(2) {
            return Err(format!(
                "odd number of fields in key/value pairs of {line:?}"
            ));
        }
        let name = fields[0].strip_suffix(':').unwrap_or(fields[0]);
        let mut protocol = Protocol {
            name,
            ..Protocol::default()
        };
        let mut used = 0;
        for pair in fields[1..].chunks_exact(2) {
            let value: i64 = pair[1]
                .parse()
                .map_err(|_| format!("{:?} is not a number in {line:?}", pair[1]))?;
            match pair[0] {
                "used" => used = value,
                "inuse" => protocol.inuse = value,
                "orphan" => protocol.orphan = Some(value),
                "tw" => protocol.tw = Some(value),
                "alloc" => protocol.alloc = Some(value),
                "mem" => protocol.mem = Some(value),
                "memory" => protocol.memory = Some(value),
                _ => {}
            }
        }
        if name == "sockets" {
            stat.used = Some(used);
        } else {
            stat.protocols.push(protocol);
        }
    }
    Ok(stat)
}

/// Family names and helps by protocol and state, built once: the files name the same protocols
/// every sample.
#[derive(Debug, Default)]
pub(crate) struct Names(Vec<(String, &'static str, Arc<str>, Arc<str>)>);

impl Names {
    /// `node_sockstat_<protocol>_<state>` and its help.
    fn of(&mut self, protocol: &str, state: &'static str) -> (Arc<str>, Arc<str>) {
        let known = self
            .0
            .iter()
            .find(|(p, s, _, _)| p == protocol && *s == state);
        let (_, _, name, help) = match known {
            Some(entry) => entry,
            None => {
                self.0.push((
                    protocol.to_string(),
                    state,
                    format!("node_sockstat_{protocol}_{state}").into(),
                    format!("Number of {protocol} sockets in state {state}.").into(),
                ));
                &self.0[self.0.len() - 1]
            }
        };
        (Arc::clone(name), Arc::clone(help))
    }
}

/// Appends the families of one file to `out`; `page_size` turns `mem` pages into `mem_bytes`.
pub(crate) fn push_families(
    stat: &Sockstat<'_>,
    page_size: i64,
    names: &mut Names,
    out: &mut Vec<KernelFamily>,
) {
    if let Some(used) = stat.used {
        out.push(KernelFamily::single(
            "node_sockstat_sockets_used",
            "Number of IPv4 sockets in use.",
            KernelMetricKind::Gauge,
            used as f64,
        ));
    }
    for p in &stat.protocols {
        let states = [
            ("inuse", Some(p.inuse)),
            ("orphan", p.orphan),
            ("tw", p.tw),
            ("alloc", p.alloc),
            ("mem", p.mem),
            ("memory", p.memory),
            (
                "mem_bytes",
                p.mem.map(|pages| pages.saturating_mul(page_size)),
            ),
        ];
        for (state, value) in states {
            let Some(value) = value else { continue };
            let (name, help) = names.of(p.name, state);
            out.push(KernelFamily::single(
                name,
                help,
                KernelMetricKind::Gauge,
                value as f64,
            ));
        }
    }
}

/// Reads both files each sample, kept open.
pub struct SockstatCollector {
    /// <procfs>/net/sockstat and <procfs>/net/sockstat6; either may be absent (IPv4 or IPv6
    /// disabled), which is not an error.
    files: [KeptFile; 2],
    /// The page size `mem` is counted in.
    page_size: i64,
    /// The families' names.
    names: Names,
}

impl SockstatCollector {
    pub fn new(paths: &HostPaths) -> Self {
        Self {
            files: [
                KeptFile::new(paths.proc("net/sockstat")),
                KeptFile::new(paths.proc("net/sockstat6")),
            ],
            page_size: i64::try_from(rustix::param::page_size()).unwrap_or(4096),
            names: Names::default(),
        }
    }
}

impl Collector for SockstatCollector {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut families = Vec::new();
        for file in &mut self.files {
            let Some(text) = file.read_if_present()? else {
                continue;
            };
            let stat = match parse(text) {
                Ok(stat) => stat,
                Err(m) => return Err(CollectError::parse(file.path(), m)),
            };
            push_families(&stat, self.page_size, &mut self.names, &mut families);
        }
        families.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.kernel_families.extend(families);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
