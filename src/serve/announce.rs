//! The lines a start logs at the default level: where each server listens, as URLs and
//! addresses a person can paste (agent and coordinator alike).

use std::net::SocketAddr;

/// Where the servers listen.
pub struct Addresses {
    /// The REST server (with `/metrics`), unless `--disable-rest-api`.
    pub rest: Option<SocketAddr>,
    /// The gRPC server.
    pub grpc: SocketAddr,
    /// Whether both speak TLS.
    pub tls: bool,
    /// Whether a bearer token guards them.
    pub token: bool,
}

impl Addresses {
    /// The lines, in order: REST, `/metrics`, gRPC, and the token's rule when there is one.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        match self.rest {
            Some(rest) => {
                let scheme = if self.tls { "https" } else { "http" };
                lines.push(format!(
                    "REST API at {scheme}://{rest}/api/system/metrics (health: /api/health)"
                ));
                lines.push(format!("Prometheus metrics at {scheme}://{rest}/metrics"));
            }
            None => lines.push("REST API and /metrics off (--disable-rest-api)".to_string()),
        }
        let transport = if self.tls { "TLS" } else { "plaintext" };
        lines.push(format!("gRPC at {} ({transport})", self.grpc));
        if self.token {
            lines.push(
                "every API but /api/health needs `Authorization: Bearer <token>`".to_string(),
            );
        }
        lines
    }

    /// Logs [`Addresses::lines`] at info.
    pub fn log(&self) {
        for line in self.lines() {
            tracing::info!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_tls_and_ipv6_is_bracketed() {
        let plain = Addresses {
            rest: Some("127.0.0.1:8080".parse().unwrap()),
            grpc: "127.0.0.1:50051".parse().unwrap(),
            tls: false,
            token: false,
        };
        assert_eq!(
            plain.lines(),
            [
                "REST API at http://127.0.0.1:8080/api/system/metrics (health: /api/health)",
                "Prometheus metrics at http://127.0.0.1:8080/metrics",
                "gRPC at 127.0.0.1:50051 (plaintext)",
            ]
        );
        let secured = Addresses {
            rest: Some("[::1]:8443".parse().unwrap()),
            grpc: "[::1]:50051".parse().unwrap(),
            tls: true,
            token: true,
        };
        assert_eq!(
            secured.lines(),
            [
                "REST API at https://[::1]:8443/api/system/metrics (health: /api/health)",
                "Prometheus metrics at https://[::1]:8443/metrics",
                "gRPC at [::1]:50051 (TLS)",
                "every API but /api/health needs `Authorization: Bearer <token>`",
            ]
        );
        let no_rest = Addresses {
            rest: None,
            ..plain
        };
        assert_eq!(
            no_rest.lines()[0],
            "REST API and /metrics off (--disable-rest-api)"
        );
    }
}
