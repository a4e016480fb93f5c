//! Network interface counters from /proc/net/dev (and each interface's
//! `/sys/class/net/<iface>/statistics/rx_nohandler`, which that file lacks) and TCP connections:
//! the kernel's `CurrEstab` counter from /proc/net/snmp each sample, or, when a scan interval is
//! set, the ESTABLISHED rows of /proc/net/tcp and /proc/net/tcp6 counted that often.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex_lite::Regex;

use crate::collect::linux::netstat::line_pairs;
use crate::collect::linux::{NameFilter, KEPT_INTERFACES};
use crate::collect::{stream_lines, CollectError, Collector, HostPaths, KeptFile};
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

/// The rows of a /proc/net socket table (tcp, tcp6, udp, udp6) fed in pieces of whole lines
/// (what [`crate::collect::stream_lines`] hands over): the header line and blank rows are
/// skipped, and rows are numbered to name a malformed one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SocketRows {
    /// Whether the header line has gone by.
    header_skipped: bool,
    /// Rows seen so far.
    rows: usize,
}

impl SocketRows {
    /// Hands each row of `lines` (whole lines; the last may lack its newline) to `row`, which
    /// says what is wrong with a malformed one ("has no state column"). Scans in place: no
    /// allocation per row.
    pub fn feed<'t>(
        &mut self,
        lines: &'t [u8],
        mut row: impl FnMut(&'t str) -> Result<(), &'static str>,
    ) -> Result<(), String> {
        // The tables are ASCII. As text, splitting into lines uses std's word-at-a-time newline
        // search instead of testing every byte: most of each 150-byte row is never looked at.
        let text = std::str::from_utf8(lines)
            .map_err(|e| format!("not text after row {}: {e}", self.rows))?;
        for line in text.split('\n') {
            if !self.header_skipped {
                self.header_skipped = true;
                continue;
            }
            if line.trim_ascii().is_empty() {
                continue;
            }
            self.rows += 1;
            row(line).map_err(|what| format!("row {} {what}", self.rows))?;
        }
        Ok(())
    }
}

/// Counts established sockets in a /proc/net/tcp or tcp6 table fed in pieces of whole lines.
#[derive(Debug, Default)]
pub(crate) struct EstablishedCount {
    /// The table's rows so far.
    rows: SocketRows,
    /// Rows in state ESTABLISHED.
    pub established: u64,
}

impl EstablishedCount {
    /// Counts the rows in `lines` (whole lines; the last may lack its newline).
    pub fn feed(&mut self, lines: &[u8]) -> Result<(), String> {
        let established = &mut self.established;
        self.rows
            .feed(lines, |row| match fourth_word(row.as_bytes()) {
                Some(ESTABLISHED) => {
                    *established += 1;
                    Ok(())
                }
                Some(_) => Ok(()),
                None => Err("has no state column"),
            })
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
    /// <procfs>/net/dev, kept open.
    net_dev: KeptFile,
    /// <sysfs>/class/net, where each interface's `statistics/rx_nohandler` is.
    class_net: PathBuf,
    /// Per interface, its `statistics/rx_nohandler`: packets dropped for want of a protocol
    /// handler, which node_exporter's netdev reports (through netlink) and /proc/net/dev does
    /// not show. Kept open for the first [`KEPT_INTERFACES`] interfaces seen.
    nohandler: HashMap<String, KeptFile>,
    /// Interfaces kept but left out of the aggregate (loopback, virtual NICs).
    aggregate_exclude: NameFilter,
    /// Where the connection count comes from.
    tcp: TcpCount,
}

/// How TCP connections are counted.
enum TcpCount {
    /// The kernel's `Tcp: CurrEstab` (ESTABLISHED and CLOSE-WAIT, IPv4 and IPv6: what
    /// `netstat -s` calls "connections established") from <procfs>/net/snmp, kept open: a
    /// counter the kernel keeps, so reading it costs the same whatever the number of sockets.
    Counter(KeptFile),
    /// ESTABLISHED rows of the socket tables, counted every `interval`.
    Scan(TableScan),
}

/// The exact count of ESTABLISHED sockets, from /proc/net/tcp and /proc/net/tcp6.
struct TableScan {
    /// <procfs>/net/tcp and <procfs>/net/tcp6.
    tables: [PathBuf; 2],
    /// Fixed buffer the tables stream through (allocated on first use).
    chunk: Vec<u8>,
    /// How often the tables are scanned. The kernel walks its whole established hash table
    /// for each read (262,144 buckets on a 24 GiB host: about 1 ms per family even with no
    /// sockets, 5–8 ms when cold), which would be most of a sample's cost if done every second.
    interval: Duration,
    /// The last scan: when, and the count it found (reused until the next scan is due).
    last: Option<(Instant, Option<u64>)>,
}

impl TableScan {
    /// The count, scanned again when the last scan is older than the interval (or failed).
    fn count(&mut self, now: Instant) -> Result<Option<u64>, CollectError> {
        if let Some((at, count)) = self.last {
            if now.duration_since(at) < self.interval {
                return Ok(count);
            }
        }
        self.last = None;
        if self.chunk.is_empty() {
            self.chunk = vec![0; TCP_CHUNK_BYTES];
        }
        let mut total = None;
        for path in &self.tables {
            if let Some(n) = count_established_in(path, &mut self.chunk)? {
                total = Some(total.unwrap_or(0) + n);
            }
        }
        self.last = Some((now, total));
        Ok(total)
    }
}

/// `Tcp: CurrEstab` of a /proc/net/snmp text.
pub(crate) fn current_established(snmp: &str) -> Result<u64, String> {
    for pair in line_pairs(snmp) {
        let (header, values) = pair?;
        if !header.starts_with("Tcp: ") {
            continue;
        }
        let column = header
            .split(' ')
            .position(|field| field == "CurrEstab")
            .ok_or("no CurrEstab in the Tcp header")?;
        let value = values
            .split(' ')
            .nth(column)
            .ok_or("the Tcp values end before CurrEstab")?;
        return value
            .parse()
            .map_err(|_| format!("invalid CurrEstab {value:?}"));
    }
    Err("no Tcp lines".into())
}

impl NetworkCollector {
    /// A collector counting connections with the kernel's counter, or, with `tcp_scan_interval`,
    /// by scanning the socket tables that often.
    pub fn new(
        paths: HostPaths,
        aggregate_exclude: Regex,
        tcp_scan_interval: Option<Duration>,
    ) -> Self {
        let tcp = match tcp_scan_interval {
            None => TcpCount::Counter(KeptFile::new(paths.proc("net/snmp"))),
            Some(interval) => TcpCount::Scan(TableScan {
                tables: [paths.proc("net/tcp"), paths.proc("net/tcp6")],
                chunk: Vec::new(),
                interval,
                last: None,
            }),
        };
        Self {
            net_dev: KeptFile::new(paths.proc("net/dev")),
            class_net: paths.sys("class/net"),
            nohandler: HashMap::new(),
            aggregate_exclude: NameFilter::new(aggregate_exclude),
            tcp,
        }
    }

    /// Every interface in /proc/net/dev order.
    fn interfaces(&mut self) -> Result<Vec<InterfaceStats>, CollectError> {
        let exclude = &mut self.aggregate_exclude;
        let parsed: Result<Vec<_>, String> = parse_net_dev(self.net_dev.read()?)
            .enumerate()
            .map(|(index, row)| {
                row.map(|row| row.to_stats(!exclude.is_match(row.name)))
                    .map_err(|m| format!("interface row {}: {m}", index + 1))
            })
            .collect();
        parsed.map_err(|m| CollectError::parse(self.net_dev.path(), m))
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
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, snapshot: &mut Snapshot) -> Result<(), CollectError> {
        let mut interfaces = self.interfaces()?;
        self.read_nohandler(&mut interfaces);
        let mut network = NetworkStats {
            interfaces,
            ..NetworkStats::default()
        };
        // The interfaces stand on their own: an unreadable count only loses the count.
        let problem = match &mut self.tcp {
            TcpCount::Counter(snmp) => match snmp.read_if_present() {
                Ok(None) => None,
                Ok(Some(text)) => match current_established(text) {
                    Ok(count) => {
                        network.tcp_current_established = Some(count);
                        None
                    }
                    Err(e) => Some(CollectError::parse(snmp.path(), e)),
                },
                Err(e) => Some(e),
            },
            TcpCount::Scan(scan) => match scan.count(Instant::now()) {
                Ok(count) => {
                    network.tcp_established = count;
                    None
                }
                Err(e) => Some(e),
            },
        };
        snapshot.network = Some(network);
        match problem {
            Some(e) => Err(CollectError::Partial(e.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
