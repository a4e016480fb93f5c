//! How the coordinator learns its agents besides registration: the static list (`--agents`,
//! `--agents-file`) read once at start, and `--discover-dns NAME:PORT` targets resolved every
//! `--dns-interval` (all addresses of the name: a Kubernetes headless Service over the agent
//! DaemonSet). Writes into the [`Registry`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::dns;
use super::registry::{AgentUrl, Registry};

/// Why the static agent list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("cannot read the agents file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {url:?}: {reason}")]
    BadLine {
        path: PathBuf,
        line: usize,
        url: String,
        reason: String,
    },
    #[error("--agents {url:?}: {reason}")]
    BadFlag { url: String, reason: String },
}

/// The static agents: `--agents` URLs, then the lines of `--agents-file` (one URL per line,
/// blank lines and `#` comments ignored).
pub fn static_agents(flags: &[String], file: Option<&Path>) -> Result<Vec<AgentUrl>, StaticError> {
    let mut urls = Vec::new();
    for url in flags {
        urls.push(AgentUrl::parse(url).map_err(|reason| StaticError::BadFlag {
            url: url.clone(),
            reason,
        })?);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| StaticError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            urls.push(
                AgentUrl::parse(line).map_err(|reason| StaticError::BadLine {
                    path: path.to_path_buf(),
                    line: index + 1,
                    url: line.to_string(),
                    reason,
                })?,
            );
        }
    }
    Ok(urls)
}

/// What the DNS loop needs.
#[derive(Debug, Clone)]
pub struct DnsDiscovery {
    /// `NAME:PORT` targets.
    pub targets: Vec<(String, u16)>,
    /// Time between resolutions.
    pub interval: Duration,
    /// `--dns-server`, else the system resolver.
    pub server: Option<std::net::SocketAddr>,
    /// Scheme of the agents' URLs (`http`; `https` when agents serve TLS).
    pub scheme: &'static str,
}

/// Resolves every target now and each interval until `shutdown`. A failed resolution keeps the
/// agents found before (a DNS outage must not empty the cluster); it is logged once per change.
pub async fn run_dns(
    registry: Arc<Registry>,
    discovery: DnsDiscovery,
    shutdown: CancellationToken,
) {
    let mut last_errors: Vec<Option<String>> = vec![None; discovery.targets.len()];
    loop {
        for ((name, port), last_error) in discovery.targets.iter().zip(&mut last_errors) {
            let source: Arc<str> = format!("{name}:{port}").into();
            match dns::resolve(name, discovery.server).await {
                Ok(addresses) => {
                    let urls = addresses
                        .into_iter()
                        .map(|ip| AgentUrl::from_addr(discovery.scheme, ip, *port))
                        .collect::<Vec<_>>();
                    let found = urls.len();
                    let refused = registry.set_dns(&source, urls);
                    if refused > 0 {
                        tracing::warn!(%source, refused, "--max-nodes reached: DNS agents left out");
                    }
                    if last_error.take().is_some() {
                        tracing::info!(%source, found, "DNS discovery answers again");
                    }
                    tracing::debug!(%source, found, "DNS discovery");
                }
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(%source, "DNS discovery failed (keeping the agents found before): {text}");
                        *last_error = Some(text);
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(discovery.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents");
        std::fs::write(
            &path,
            "# agents\nhttp://10.0.0.1:8080\n\n  http://10.0.0.2:8080/  # rack 2\n",
        )
        .unwrap();
        let urls = static_agents(&["http://10.0.0.3:1".into()], Some(&path)).unwrap();
        let keys: Vec<&str> = urls.iter().map(|u| &*u.key).collect();
        assert_eq!(
            keys,
            [
                "http://10.0.0.3:1",
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080"
            ]
        );
        std::fs::write(&path, "http://10.0.0.1:8080\nftp://x\n").unwrap();
        let err = static_agents(&[], Some(&path)).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }
}
