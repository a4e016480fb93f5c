//! Network interfaces and connections.

use serde::Serialize;

/// All interfaces, the aggregate rates over physical ones, and TCP connections.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct NetworkStats {
    /// One entry per interface, in /proc/net/dev order.
    pub interfaces: Vec<InterfaceStats>,
    /// Sums over interfaces with `counted_in_total`.
    pub receive_bytes_per_sec: f64,
    pub transmit_bytes_per_sec: f64,
    pub receive_packets_per_sec: f64,
    pub transmit_packets_per_sec: f64,
    /// Sockets in state ESTABLISHED, IPv4 + IPv6, counted in the socket tables: only with
    /// `--collector.tcp.scan-interval` (None otherwise, or when the tables are unreadable).
    pub tcp_established: Option<u64>,
    /// The kernel's `Tcp: CurrEstab` (ESTABLISHED and CLOSE-WAIT, IPv4 + IPv6), read each
    /// sample when the tables are not scanned (None when /proc/net/snmp is missing).
    pub tcp_current_established: Option<u64>,
}

impl NetworkStats {
    /// The connection count the REST element and gRPC show: the scanned ESTABLISHED count where
    /// the tables are scanned, else the kernel's counter.
    pub fn connections(&self) -> Option<u64> {
        self.tcp_established.or(self.tcp_current_established)
    }
}

/// One interface: raw /proc/net/dev counters (and sysfs's rx_nohandler) and the rates derived from
/// them.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct InterfaceStats {
    pub name: String,
    pub receive_bytes_total: u64,
    pub receive_packets_total: u64,
    pub receive_errs_total: u64,
    pub receive_drop_total: u64,
    pub receive_fifo_total: u64,
    pub receive_frame_total: u64,
    pub receive_compressed_total: u64,
    pub receive_multicast_total: u64,
    pub transmit_bytes_total: u64,
    pub transmit_packets_total: u64,
    pub transmit_errs_total: u64,
    pub transmit_drop_total: u64,
    pub transmit_fifo_total: u64,
    pub transmit_colls_total: u64,
    pub transmit_carrier_total: u64,
    pub transmit_compressed_total: u64,
    /// Packets dropped for want of a protocol handler (sysfs `statistics/rx_nohandler`; None
    /// where it is not readable).
    pub receive_nohandler_total: Option<u64>,
    pub receive_bytes_per_sec: f64,
    pub transmit_bytes_per_sec: f64,
    pub receive_packets_per_sec: f64,
    pub transmit_packets_per_sec: f64,
    /// Not loopback or a virtual NIC (veth, docker, cni bridges, …; configurable): counts in the
    /// aggregate rates.
    pub counted_in_total: bool,
}
