//! Local and agent mode: one sampler, the REST and gRPC servers, the portfile, and the watchers
//! that end the process (signals, parent gone, TearDown) — all stopped by one shutdown token.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::Token;
use crate::collect::{spawn_sampler, Sampler};
use crate::config::Config;
use crate::model::Snapshot;
use crate::serve::{self, AppState};
use crate::tls::Identity;

/// How often `--parent-pid` is checked.
const PARENT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why the agent could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot listen for {what} on {addr}: port {port} is already in use")]
    PortInUse {
        what: &'static str,
        addr: SocketAddr,
        port: u16,
    },
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the portfile {path}: {source}")]
    Portfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Register(#[from] crate::register::RegisterError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Server(String),
}

/// The agent with its ports bound, ready to [`run`](BoundAgent::run).
pub struct BoundAgent {
    config: Config,
    rest: Option<TcpListener>,
    grpc: TcpListener,
    token: Option<Token>,
    /// `--tls-cert`/`--tls-key`, read: both servers speak TLS.
    tls: Option<Identity>,
}

/// Reads the token and the TLS files, and binds the REST and gRPC ports of `config`. Fails with
/// the file named when one cannot be used, with the port named when one is taken.
pub async fn bind(config: Config) -> Result<BoundAgent, AgentError> {
    let token = Token::load(config.auth_token_file.as_deref())?;
    let tls = Identity::from_config(&config.tls)?;
    let rest = if config.rest_enabled {
        Some(listen("REST", SocketAddr::new(config.bind, config.rest_port)).await?)
    } else {
        None
    };
    let grpc = listen("gRPC", SocketAddr::new(config.bind, config.grpc_port)).await?;
    Ok(BoundAgent {
        config,
        rest,
        grpc,
        token,
        tls,
    })
}

/// Binds `addr` for `what`, naming the port when it is taken.
pub async fn listen(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AgentError> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            AgentError::PortInUse {
                what,
                addr,
                port: addr.port(),
            }
        } else {
            AgentError::Bind { what, addr, source }
        }
    })
}

impl BoundAgent {
    /// The REST address, when REST is served.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    /// Samples and serves until `shutdown` is cancelled (or the parent dies, or TearDown), then
    /// lets in-flight requests finish and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let config = self.config;
        let collect = Arc::new(config.collect.clone());
        let mut tasks = tokio::task::JoinSet::new();
        let (baseline, snapshots) =
            start_sampling(&config, Arc::clone(&collect), &shutdown, &mut tasks).await?;

        let state = AppState {
            snapshots,
            baseline,
            interval: config.collect.interval,
            shutdown: shutdown.clone(),
            teardown_allowed: config.is_child() && config.bind.is_loopback(),
            collect,
            started_at: SystemTime::now(),
        };

        let rest_port = self
            .rest
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let grpc_port = self
            .grpc
            .local_addr()
            .map_err(|e| AgentError::Server(format!("gRPC listener: {e}")))?
            .port();

        if let Some(listener) = self.rest {
            let app = serve::rest::router(state.clone());
            let stop = shutdown.clone();
            let token = self.token.clone();
            let tls = self.tls.clone();
            tasks.spawn(async move {
                let served = serve::http_serve(listener, app, token, tls, stop.clone()).await;
                if let Err(e) = served {
                    tracing::error!("REST server failed: {e}");
                    stop.cancel();
                }
            });
        }
        {
            let state = state.clone();
            let stop = shutdown.clone();
            let listener = self.grpc;
            let token = self.token.clone();
            let tls = self.tls.clone();
            tasks.spawn(async move {
                if let Err(e) = serve::grpc_serve(listener, state, token, tls, stop.clone()).await {
                    tracing::error!("gRPC server failed: {e}");
                    stop.cancel();
                }
            });
        }
        if let Some(pid) = config.parent_pid {
            tasks.spawn(watch_parent(pid, shutdown.clone()));
        }

        if let Some(register) = &config.register {
            let registration = crate::register::Registration::new(
                register,
                &config,
                rest_port,
                self.token.clone(),
            );
            match registration {
                Ok(registration) => {
                    tasks.spawn(registration.run(shutdown.clone()));
                }
                Err(e) => {
                    shutdown.cancel();
                    while tasks.join_next().await.is_some() {}
                    return Err(e.into());
                }
            }
        }

        if let Some(path) = &config.portfile {
            if let Err(e) = write_portfile(path, grpc_port, rest_port) {
                shutdown.cancel();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        }
        tracing::info!(
            node_id = config.node_id,
            rest = ?rest_port,
            grpc = grpc_port,
            "system_monitor serving"
        );

        shutdown.cancelled().await;
        while tasks.join_next().await.is_some() {}
        tracing::info!("system_monitor stopped");
        Ok(())
    }
}

/// Takes the first sample (before anything is served, so no request ever sees an empty
/// snapshot), then samples every interval on a dedicated thread, stopped and joined by a task in
/// `tasks` once `shutdown` is cancelled. Returns the first snapshot and the latest-snapshot
/// receiver.
pub async fn start_sampling(
    config: &Config,
    collect: Arc<crate::config::CollectConfig>,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(Arc<Snapshot>, watch::Receiver<Arc<Snapshot>>), AgentError> {
    let node_id = config.node_id.clone();
    let (sampler, first) = tokio::task::spawn_blocking(move || {
        let mut sampler = Sampler::from_config(node_id, &collect);
        let first = sampler.sample();
        (sampler, first)
    })
    .await
    .map_err(|e| AgentError::Server(format!("first sample failed: {e}")))?;
    let (publish, snapshots) = watch::channel(Arc::clone(&first));
    // The sampler thread stops when `stop_sampler` is dropped, which the task below does on
    // shutdown; the thread is joined before the tasks are.
    let (stop_sampler, sampler_stopped) = std::sync::mpsc::channel::<()>();
    let sampler = spawn_sampler(sampler, config.collect.interval, publish, sampler_stopped)
        .map_err(|e| AgentError::Server(format!("cannot start the sampler thread: {e}")))?;
    let stop = shutdown.clone();
    tasks.spawn(async move {
        stop.cancelled().await;
        drop(stop_sampler);
        let _ = tokio::task::spawn_blocking(move || sampler.join()).await;
    });
    Ok((first, snapshots))
}

/// Writes the portfile atomically (a temporary file beside it, then a rename), so a reader never
/// sees a half-written one: first line `sock=<grpc port>`, then `rest=<rest port>` when REST is on.
pub fn write_portfile(
    path: &Path,
    grpc_port: u16,
    rest_port: Option<u16>,
) -> Result<(), AgentError> {
    let error = |source| AgentError::Portfile {
        path: path.to_path_buf(),
        source,
    };
    let mut text = format!("sock={grpc_port}\n");
    if let Some(rest) = rest_port {
        text.push_str(&format!("rest={rest}\n"));
    }
    let name = path
        .file_name()
        .map_or_else(|| "portfile".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(error(e));
    }
    Ok(())
}

/// Cancels `shutdown` once process `pid` is gone.
async fn watch_parent(pid: u32, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(PARENT_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !parent::alive(pid) {
            tracing::info!(pid, "parent process is gone; shutting down");
            shutdown.cancel();
            return;
        }
    }
}

#[cfg(unix)]
mod parent {
    /// Whether a process with this pid exists (signal 0: EPERM still means it exists).
    pub fn alive(pid: u32) -> bool {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        }
    }
}

#[cfg(not(unix))]
mod parent {
    /// Whether a process with this pid exists.
    pub fn alive(pid: u32) -> bool {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let Ok(mut system) = System::new() else {
            // Cannot tell: keep running rather than exit on a guess.
            return true;
        };
        let pid = Pid::from_u32(pid);
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing(),
        );
        system.process(pid).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portfile_has_sock_then_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ports");
        write_portfile(&path, 4242, Some(8080)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sock=4242\nrest=8080\n"
        );
        write_portfile(&path, 1, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sock=1\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn portfile_in_missing_directory_is_a_clear_error() {
        let err = write_portfile(Path::new("/nonexistent/dir/ports"), 1, None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dir/ports"), "{err}");
    }

    #[test]
    fn own_process_is_alive() {
        assert!(parent::alive(std::process::id()));
        assert!(!parent::alive(u32::MAX - 1));
    }
}
