//! Network interface counters from /proc/net/dev and established TCP connections from
//! /proc/net/tcp and /proc/net/tcp6.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regex_lite::Regex;

use crate::collect::linux::NameFilter;
use crate::collect::{read_into, CollectError, Collector, HostPaths};
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
    let io = |source| CollectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut count = EstablishedCount::default();
    let mut filled = 0;
    loop {
        let read = file.read(&mut chunk[filled..]).map_err(io)?;
        if read == 0 {
            break;
        }
        filled += read;
        let Some(end) = chunk[..filled].iter().rposition(|&b| b == b'\n') else {
            if filled == chunk.len() {
                return Err(CollectError::parse(
                    path,
                    "a row longer than the read buffer",
                ));
            }
            continue;
        };
        count
            .feed(&chunk[..end])
            .map_err(|m| CollectError::parse(path, m))?;
        // Keep the partial line after the last newline for the next read.
        chunk.copy_within(end + 1..filled, 0);
        filled -= end + 1;
    }
    count
        .feed(&chunk[..filled])
        .map_err(|m| CollectError::parse(path, m))?;
    Ok(Some(count.established))
}

/// Reads interface counters and TCP connection counts each sample.
pub struct NetworkCollector {
    /// <procfs>/net/dev.
    net_dev: PathBuf,
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
        let interfaces = self.interfaces()?;
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
mod tests {
    use super::*;
    use crate::config::CollectConfig;

    use crate::collect::linux::fixture;

    fn collect(paths: HostPaths) -> (NetworkStats, Result<(), CollectError>) {
        let config = CollectConfig::default();
        let mut collector = NetworkCollector::new(
            paths,
            config.netdev_aggregate_exclude,
            config.tcp_scan_interval,
        );
        let mut snapshot = Snapshot::default();
        let result = collector.collect(&mut snapshot);
        (snapshot.network.unwrap_or_default(), result)
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn parses_every_counter_of_a_row() {
        let row = parse_net_dev_line(
            "  eno1: 918223412233 712233412    0 1203    0     0          0    412233 \
             412990234112 402213998    0    0    0     0       0          0",
        )
        .unwrap();
        assert_eq!(row.name, "eno1");
        let s = row.to_stats(true);
        assert_eq!(s.receive_bytes_total, 918_223_412_233);
        assert_eq!(s.receive_drop_total, 1203);
        assert_eq!(s.receive_multicast_total, 412_233);
        assert_eq!(s.transmit_bytes_total, 412_990_234_112);
        assert_eq!(s.transmit_packets_total, 402_213_998);

        let counters: Vec<String> = (1..=16).map(|i| i.to_string()).collect();
        let line = format!("eth0:{}", counters.join(" "));
        let glued = parse_net_dev_line(&line).unwrap();
        assert_eq!(glued.name, "eth0");
        assert_eq!(glued.counters, std::array::from_fn(|i| i as u64 + 1));
    }

    #[test]
    fn malformed_interface_rows_are_errors() {
        assert!(parse_net_dev_line("eth0 1 2 3")
            .unwrap_err()
            .contains("no `name:`"));
        assert!(parse_net_dev_line("eth0: 1 2 3")
            .unwrap_err()
            .contains("fewer than 16"));
        assert!(
            parse_net_dev_line("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x")
                .unwrap_err()
                .contains("\"x\"")
        );
        assert!(parse_net_dev_line(": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16").is_err());

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        std::fs::write(dir.path().join("net/dev"), "h1\nh2\n  lo: 1 2\n").unwrap();
        let (net, result) = collect(HostPaths::new(dir.path(), "/sys", "/"));
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("net/dev") && err.contains("interface row 1"),
            "{err}"
        );
        assert!(net.interfaces.is_empty());
    }

    #[test]
    fn counts_established_rows_only() {
        let table = b"  sl  local_address rem_address   st tx_queue\n\
            0: 00000000:0016 00000000:0000 0A 00000000:00000000\n\
            1: 0100007F:1F90 0100007F:C800 01 00000000:00000000\n\
            2: 0100007F:C800 0100007F:1F90 01 00000000:00000000\n\
            3: 0100007F:C802 0100007F:1F90 06 00000000:00000000\n\
            \n";
        assert_eq!(count_established(table), Ok(2));
        assert_eq!(
            count_established(b"  sl  local_address rem_address   st\n"),
            Ok(0)
        );
        assert_eq!(count_established(b""), Ok(0));
        // "01" must be the whole state word, not a prefix of it.
        assert_eq!(count_established(b"h\n 0: a b 011 c\n 1: a b 10 c"), Ok(0));
        assert!(count_established(b"header\n   0: 0100007F:1F90\n")
            .unwrap_err()
            .contains("row 1"));
    }

    #[test]
    fn streaming_matches_whole_table_across_chunk_boundaries() {
        let table = read(&fixture("server").join("proc/net/tcp"));
        let whole = count_established(&table).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tcp");
        std::fs::write(&path, &table).unwrap();
        // Chunks smaller than the file and not aligned to rows split lines across reads.
        for size in [160, 200, 333, 1000, TCP_CHUNK_BYTES] {
            let mut chunk = vec![0; size];
            assert_eq!(
                count_established_in(&path, &mut chunk).unwrap(),
                Some(whole),
                "{size}"
            );
        }
        let mut tiny = vec![0; 64];
        let err = count_established_in(&path, &mut tiny)
            .unwrap_err()
            .to_string();
        assert!(err.contains("longer than the read buffer"), "{err}");
        let missing = dir.path().join("tcp6");
        assert_eq!(count_established_in(&missing, &mut tiny).unwrap(), None);
    }

    #[test]
    fn server_fixture_end_to_end() {
        let (net, result) = collect(HostPaths::fixture(fixture("server")));
        result.unwrap();
        let names: Vec<_> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lo",
                "eno1",
                "eno2",
                "ens1f0",
                "bond0",
                "ib0",
                "docker0",
                "veth1a2b3c",
                "cni0",
                "flannel.1",
                "cali123"
            ]
        );
        let counted: Vec<_> = net
            .interfaces
            .iter()
            .filter(|i| i.counted_in_total)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(counted, ["eno1", "eno2", "ens1f0", "bond0", "ib0"]);
        let ib0 = &net.interfaces[5];
        assert_eq!(ib0.receive_bytes_total, 98_122_341_220_012);
        assert_eq!(ib0.transmit_packets_total, 41_199_812_230);
        // Cross-check against each table counted on its own.
        let dir = fixture("server").join("proc/net");
        let v4 = count_established(&read(&dir.join("tcp"))).unwrap();
        let v6 = count_established(&read(&dir.join("tcp6"))).unwrap();
        assert_eq!((v4, v6), (7, 3));
        assert_eq!(net.tcp_established, Some(10));
    }

    #[test]
    fn captured_vm_end_to_end() {
        let (net, result) = collect(HostPaths::fixture(fixture("captured-vm")));
        result.unwrap();
        let names: Vec<_> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        assert!(!net.interfaces[0].counted_in_total);
        assert!(net.interfaces[3].counted_in_total);
        assert!(net.interfaces[3].receive_bytes_total > 0);
        let dir = fixture("captured-vm").join("proc/net");
        let expected = count_established(&read(&dir.join("tcp"))).unwrap()
            + count_established(&read(&dir.join("tcp6"))).unwrap();
        assert_eq!(net.tcp_established, Some(expected));
    }

    #[test]
    fn tcp_tables_are_scanned_once_per_scan_interval() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        std::fs::create_dir_all(proc.join("net")).unwrap();
        let server = fixture("server").join("proc/net");
        std::fs::copy(server.join("dev"), proc.join("net/dev")).unwrap();
        std::fs::copy(server.join("tcp"), proc.join("net/tcp")).unwrap();
        let exclude = CollectConfig::default().netdev_aggregate_exclude;
        let paths = HostPaths::new(proc, "/sys", "/");
        let mut hourly =
            NetworkCollector::new(paths.clone(), exclude.clone(), Duration::from_secs(3600));
        let mut every = NetworkCollector::new(paths, exclude, Duration::ZERO);
        let count = |c: &mut NetworkCollector| {
            let mut snapshot = Snapshot::default();
            c.collect(&mut snapshot).unwrap();
            snapshot.network.unwrap().tcp_established
        };
        assert_eq!(count(&mut hourly), Some(7));
        assert_eq!(count(&mut every), Some(7));
        // The table changes: the hourly collector keeps its last count, the other sees the change.
        std::fs::write(
            proc.join("net/tcp"),
            "  sl  local_address rem_address   st\n",
        )
        .unwrap();
        assert_eq!(count(&mut hourly), Some(7));
        assert_eq!(count(&mut every), Some(0));
    }

    #[test]
    fn missing_tcp_tables() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path();
        std::fs::create_dir_all(proc.join("net")).unwrap();
        let server = fixture("server").join("proc/net");
        std::fs::copy(server.join("dev"), proc.join("net/dev")).unwrap();
        let paths = || HostPaths::new(proc, "/sys", "/");

        let (net, result) = collect(paths());
        result.unwrap();
        assert_eq!(net.tcp_established, None);

        std::fs::copy(server.join("tcp"), proc.join("net/tcp")).unwrap();
        let (net, _) = collect(paths());
        assert_eq!(net.tcp_established, Some(7), "IPv6 disabled: IPv4 alone");

        // A corrupt table loses the count, not the interfaces; the collector still succeeds.
        std::fs::write(proc.join("net/tcp6"), "header\n 0: short\n").unwrap();
        let (net, result) = collect(paths());
        assert!(matches!(result, Err(CollectError::Partial(ref m)) if m.contains("tcp6")));
        assert_eq!(net.tcp_established, None);
        assert_eq!(net.interfaces.len(), 11);
    }

    #[test]
    fn live_counters_do_not_decrease_and_connections_are_seen() {
        let paths = HostPaths::default();
        if !paths.proc("net/dev").exists() {
            return; // Not Linux with procfs.
        }
        let (first, result) = collect(paths.clone());
        result.unwrap();
        // Hold an established loopback connection (both ends) while sampling.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (second, result) = collect(paths);
        result.unwrap();
        for now in &second.interfaces {
            let Some(before) = first.interfaces.iter().find(|i| i.name == now.name) else {
                continue;
            };
            assert!(
                now.receive_bytes_total >= before.receive_bytes_total,
                "{}",
                now.name
            );
            assert!(
                now.transmit_bytes_total >= before.transmit_bytes_total,
                "{}",
                now.name
            );
            assert!(
                now.receive_packets_total >= before.receive_packets_total,
                "{}",
                now.name
            );
        }
        let established = second.tcp_established.unwrap();
        let rows: usize = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| t.lines().count().saturating_sub(1))
            .sum();
        assert!(established >= 2, "our own connection: {established}");
        // Other sockets come and go between the two reads; allow some slack.
        assert!(
            established <= rows as u64 + 64,
            "{established} > {rows} rows"
        );
        drop((client, server));
    }
}
