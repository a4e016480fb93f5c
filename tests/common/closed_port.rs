//! A port that refuses connections for as long as a test needs it to.
//!
//! Nextest runs tests side by side, each binding port 0 for its servers. A port a test merely
//! released (bound, then dropped; or its agent killed) may be handed to another test's server
//! a moment later, and a coordinator polling "the dead agent" then finds a live one. A socket
//! that is bound and never listens keeps the port: connections to it are refused, and the
//! kernel gives it to no one else until the socket is dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use socket2::{Domain, Socket, Type};

/// A bound, non-listening TCP socket: its address refuses connections while this lives.
pub struct ClosedPort {
    socket: Socket,
    address: SocketAddr,
}

impl ClosedPort {
    /// A fresh port on `host`.
    pub fn new(host: Ipv4Addr) -> ClosedPort {
        Self::bind(SocketAddr::from((host, 0)))
    }

    /// Takes `address` back from a process that just exited. Its accepted connections may
    /// linger in TIME_WAIT, hence SO_REUSEADDR (which still refuses while anything listens).
    pub fn hold(address: SocketAddr) -> ClosedPort {
        Self::bind(address)
    }

    fn bind(address: SocketAddr) -> ClosedPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        if address.port() != 0 {
            socket.set_reuse_address(true).expect("SO_REUSEADDR");
        }
        socket
            .bind(&address.into())
            .unwrap_or_else(|e| panic!("bind {address}: {e}"));
        let address = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("a bound IPv4 address");
        ClosedPort { socket, address }
    }

    /// Its address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://address`.
    pub fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Starts listening on the same port (a server that comes up later), with no moment in
    /// which another test could take it.
    pub fn listen(self) -> TcpListener {
        self.socket.listen(128).expect("listen");
        self.socket.into()
    }
}
