//! Network interface counters from /proc/net/dev (and each interface's
//! `/sys/class/net/<iface>/statistics/rx_nohandler`, which that file lacks) and established TCP
//! connections from /proc/net/tcp and /proc/net/tcp6.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex_lite::Regex;

use crate::collect::linux::{NameFilter, KEPT_INTERFACES};
use crate::collect::{read_into, stream_lines, CollectError, Collector, HostPaths, KeptFile};
use crate::model::{InterfaceStats, NetworkStats, Snapshot};

/// Counters per /proc/net/dev row: 8 receive, then 8 transmit.
const NET_DEV_FIELDS: usize = 16;

/// Chunk size for streaming the TCP tables: a busy host has 100k sockets (15 MB of text), which
/// should not become 15 MB of resident buffer.
const TCP_CHUNK_BYTES: usize = 64 * 1024;

/// The `st` column value of an established socket (TCP_ESTABLISHED, in hex).
const ESTABLISHED: &[u8] = b"01";

/// One /proc/net/dev row, borrowed from the file's text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetDevRow<'a> {
    pub name: &'a str,
    /// The counters in /proc/net/dev order.
    pub counters: [u64; NET_DEV_FIELDS],
}

impl NetDevRow<'_> {
    /// The model entry for this row.
    fn to_stats(&self, counted_in_total: bool) -> InterfaceStats {
        let c = &self.counters;
        InterfaceStats {
            name: self.name.to_string(),
            receive_bytes_total: c[0],
            receive_packets_total: c[1],
            receive_errs_total: c[2],
            receive_drop_total: c[3],
            receive_fifo_total: c[4],
            receive_frame_total: c[5],
            receive_compressed_total: c[6],
            receive_multicast_total: c[7],
            transmit_bytes_total: c[8],
            transmit_packets_total: c[9],
            transmit_errs_total: c[10],
            transmit_drop_total: c[11],
            transmit_fifo_total: c[12],
            transmit_colls_total: c[13],
            transmit_carrier_total: c[14],
            transmit_compressed_total: c[15],
            counted_in_total,
            ..InterfaceStats::default()
        }
    }
}

/// Parses one interface line: `name: 16 counters`.
pub(crate) fn parse_net_dev_line(line: &str) -> Result<NetDevRow<'_>, String> {
    // Old kernels glue large counters to the colon (`eth0:123456`), so split on the colon, not
    // on whitespace; counters never contain one, so the last colon ends the name.
    let (name, numbers) = line
        .rsplit_once(':')
        .ok_or_else(|| format!("no `name:` in {line:?}"))?;
    let mut row = NetDevRow {
        name: name.trim(),
        counters: [0; NET_DEV_FIELDS],
    };
    let mut words = numbers.split_ascii_whitespace();
    for slot in &mut row.counters {
        let word = words
            .next()
            .ok_or_else(|| format!("{} has fewer than {NET_DEV_FIELDS} counters", row.name))?;
        *slot = word
            .parse()
            .map_err(|_| format!("{word:?} is not a counter in {line:?}"))?;
    }
    if row.name.is_empty() {
        return Err(format!("no interface name in {line:?}"));
    }
    Ok(row)
}

/// Parses /proc/net/dev: two header lines, then one line per interface.
pub(crate) fn parse_net_dev(text: &str) -> impl Iterator<Item = Result<NetDevRow<'_>, String>> {
    text.lines()
        .skip(2)
        .filter(|line| !line.trim().is_empty())
        .map(parse_net_dev_line)
}

/// Counts established sockets in a /proc/net/tcp or tcp6 table fed in pieces of whole lines.
#[derive(Debug, Default)]
pub(crate) struct EstablishedCount {
    /// Whether the header line has gone by.
    header_skipped: bool,
    /// Rows seen so far, to name a malformed one.
    rows: usize,
    /// Rows in state ESTABLISHED.
    pub established: u64,
}

impl EstablishedCount {
    /// Counts the rows in `lines` (whole lines; the last may lack its newline). Scans in place:
    /// no allocation per row.
    pub fn feed(&mut self, lines: &[u8]) -> Result<(), String> {
        // The tables are ASCII. As text, splitting into lines uses std's word-at-a-time newline
        // search instead of testing every byte: most of each 150-byte row is never looked at.
        let text = std::str::from_utf8(lines)
            .map_err(|e| format!("not text after row {}: {e}", self.rows))?;
        for line in text.split('\n') {
            if !self.header_skipped {
                self.header_skipped = true;
                continue;
            }
            let line = line.as_bytes();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.rows += 1;
            match fourth_word(line) {
                Some(ESTABLISHED) => self.established += 1,
                Some(_) => {}
                None => return Err(format!("row {} has no state column", self.rows)),
            }
        }
        Ok(())
    }
}

/// The 4th whitespace-separated word of a line (`sl local rem st`): the socket state.
fn fourth_word(line: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    for index in 0..4 {
        while line.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let start = at;
        while line.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
            at += 1;
        }
        if start == at {
            return None;
        }
        if index == 3 {
            return Some(&line[start..at]);
        }
    }
    None
}

/// Established connections in a whole table held in memory (the header line included).
#[cfg(test)]
pub(crate) fn count_established(table: &[u8]) -> Result<u64, String> {
    let mut count = EstablishedCount::default();
    count.feed(table)?;
    Ok(count.established)
}

/// Streams the table at `path` through `chunk`, counting established sockets; `Ok(None)` when
/// the file does not exist (IPv6 disabled, or no IPv4 in an odd namespace).
fn count_established_in(path: &Path, chunk: &mut [u8]) -> Result<Option<u64>, CollectError> {
    let mut count = EstablishedCount::default();
    let present = stream_lines(path, chunk, |lines| count.feed(lines))?;
    Ok(present.then_some(count.established))
}

/// Reads interface counters and TCP connection counts each sample.
pub struct NetworkCollector {
    /// <procfs>/net/dev.
    net_dev: PathBuf,
    /// <sysfs>/class/net, where each interface's `statistics/rx_nohandler` is.
    class_net: PathBuf,
    /// Per interface, its `statistics/rx_nohandler`: packets dropped for want of a protocol
    /// handler, which node_exporter's netdev reports (through netlink) and /proc/net/dev does
    /// not show. Kept open for the first [`KEPT_INTERFACES`] interfaces seen.
    nohandler: HashMap<String, KeptFile>,
    /// <procfs>/net/tcp and <procfs>/net/tcp6.
    tcp_tables: [PathBuf; 2],
    /// Interfaces kept but left out of the aggregate (loopback, virtual NICs).
    aggregate_exclude: NameFilter,
    /// /proc/net/dev's text, kept to reuse its allocation.
    text: String,
    /// Fixed buffer the TCP tables stream through (allocated on first use).
    chunk: Vec<u8>,
    /// How often the TCP tables are scanned. The kernel walks its whole established hash table
    /// for each read (262,144 buckets on a 24 GiB host: about 1 ms per family even with no
    /// sockets), which would be most of a sample's cost if done every second.
    tcp_scan_interval: Duration,
    /// The last scan: when, and the count it found (reused until the next scan is due).
    last_tcp_scan: Option<(Instant, Option<u64>)>,
}

impl NetworkCollector {
    pub fn new(paths: HostPaths, aggregate_exclude: Regex, tcp_scan_interval: Duration) -> Self {
        Self {
            net_dev: paths.proc("net/dev"),
            class_net: paths.sys("class/net"),
            nohandler: HashMap::new(),
            tcp_tables: [paths.proc("net/tcp"), paths.proc("net/tcp6")],
            aggregate_exclude: NameFilter::new(aggregate_exclude),
            text: String::new(),
            chunk: Vec::new(),
            tcp_scan_interval,
            last_tcp_scan: None,
        }
    }

    /// Every interface in /proc/net/dev order.
    fn interfaces(&mut self) -> Result<Vec<InterfaceStats>, CollectError> {
        read_into(&self.net_dev, &mut self.text)?;
        parse_net_dev(&self.text)
            .enumerate()
            .map(|(index, row)| {
                let row = row.map_err(|m| {
                    CollectError::parse(&self.net_dev, format!("interface row {}: {m}", index + 1))
                })?;
                Ok(row.to_stats(!self.aggregate_exclude.is_match(row.name)))
            })
            .collect()
    }

    /// Fills each interface's `receive_nohandler_total` where sysfs has it (kernel 4.6+; a
    /// fixture tree may lack it), and forgets the files of interfaces that are gone.
    fn read_nohandler(&mut self, interfaces: &mut [InterfaceStats]) {
        if self.nohandler.len() > interfaces.len() {
            self.nohandler
                .retain(|name, _| interfaces.iter().any(|i| &i.name == name));
        }
        for interface in interfaces {
            let file = match self.nohandler.get_mut(&interface.name) {
                Some(file) => file,
                None => {
                    let path = self
                        .class_net
                        .join(&interface.name)
                        .join("statistics/rx_nohandler");
                    let file = if self.nohandler.len() < KEPT_INTERFACES {
                        KeptFile::new(path)
                    } else {
                        KeptFile::transient(path)
                    };
                    self.nohandler.entry(interface.name.clone()).or_insert(file)
                }
            };
            interface.receive_nohandler_total = file.read_value().ok().and_then(|v| v.parse().ok());
        }
    }

    /// Established connections over IPv4 and IPv6; None when neither table exists.
    fn tcp_established(&mut self) -> Result<Option<u64>, CollectError> {
        if self.chunk.is_empty() {
            self.chunk = vec![0; TCP_CHUNK_BYTES];
        }
        let mut total = None;
        for path in &self.tcp_tables {
            if let Some(n) = count_established_in(path, &mut self.chunk)? {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        Ok(total)
    }
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut interfaces = self.interfaces()?;
        self.read_nohandler(&mut interfaces);
        let now = Instant::now();
        let due = self
            .last_tcp_scan
            .is_none_or(|(at, _)| now.duration_since(at) >= self.tcp_scan_interval);
        // The interfaces stand on their own: an unreadable TCP table only loses the count.
        let (tcp_established, problem) = match self.last_tcp_scan {
            Some((_, count)) if !due => (count, None),
            _ => match self.tcp_established() {
                Ok(count) => {
                    self.last_tcp_scan = Some((now, count));
                    (count, None)
                }
                Err(e) => {
                    self.last_tcp_scan = None;
                    (None, Some(e))
                }
            },
        };
        snapshot.network = Some(NetworkStats {
            interfaces,
            tcp_established,
            ..NetworkStats::default()
        });
        match problem {
            Some(e) => Err(CollectError::Partial(e.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
