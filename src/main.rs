//! `system_monitor`: parses flags, sets up logging and signals, and hands over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

use system_monitor::cli::{self, generate, Command, LogFormat, SnapshotFormat};
use system_monitor::collect::{self, Sampler};
use system_monitor::model::wire;
use system_monitor::serve::prometheus;

fn main() -> ExitCode {
    // Flags, SYSTEM_MONITOR_* variables and the --config file; usage errors print a message and
    // exit with code 2.
    let cli = cli::parse();
    let mut stdout = std::io::stdout().lock();
    let generated = match &cli.command {
        Some(Command::Completions(args)) => Some(generate::completions(args.shell, &mut stdout)),
        Some(Command::Man(args)) => Some(generate::man(args.subcommand.as_deref(), &mut stdout)),
        _ => None,
    };
    drop(stdout);
    if let Some(result) = generated {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ generate::GenerateError::UnknownSubcommand { .. }) => {
                eprintln!("system_monitor: error: {e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("system_monitor: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The terminal view draws on the screen that log lines would go to: it logs nothing.
    if let Some(Command::Top(args)) = &cli.command {
        let options = args.options(cli.serve.rest_api_port, &cli.cluster);
        return match system_monitor::top::run(options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("system_monitor top: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing(cli.verbose, cli.operator.log_format);
    let hostname = collect::hostname(&cli.config("").collect);
    let config = cli.config(&hostname);
    let result = match &cli.command {
        Some(Command::Snapshot(args)) => snapshot(&config, args.format),
        Some(Command::Coordinator(args)) => coordinate(config, args.config()),
        Some(Command::Completions(_) | Command::Man(_) | Command::Top(_)) | None => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("system_monitor: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already holds
/// (our errors mostly name their cause in their own message).
fn one_line(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Logs to stderr: our crate at info by default (where it serves, what it found, failures as they
/// begin and end; per-request and per-sample lines are debug), `-v` debug, `-vv` trace, or
/// `RUST_LOG`. Colour only on a terminal, and never with `NO_COLOR` set (no-color.org): log
/// files, journald and `kubectl logs` get plain text. `--log-format json`: one JSON object per
/// line, the event's fields at the top level beside `timestamp`, `level`, `target` and
/// `message` (what Loki, Elasticsearch and Cloud Logging parse without a pattern), never coloured.
fn init_tracing(verbose: u8, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let (filter, refused) = log_filter(verbose, std::env::var("RUST_LOG").ok());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .finish()
            .with(filter)
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .finish()
            .with(filter)
            .init(),
    }
    if let Some(error) = refused {
        tracing::warn!("RUST_LOG ignored ({error}): logging at the level of -v");
    }
}

/// What is logged: `RUST_LOG`'s `target=level` directives (as `env_logger` reads them: `debug`,
/// `system_monitor=trace,hyper=debug`) when set and valid, else our crate at the level of `-v`
/// and everything else at warn. Also the reason a set `RUST_LOG` was not used. A directive list
/// rather than `EnvFilter`'s span filters: those need a regex engine, about 200 KB of machine
/// code in every process for a filter nobody sets (bench/RESULTS.md, issue 10).
fn log_filter(verbose: u8, rust_log: Option<String>) -> (Targets, Option<String>) {
    let default = match verbose {
        0 => LevelFilter::INFO,
        1 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let fallback = Targets::new()
        .with_target("system_monitor", default)
        .with_default(LevelFilter::WARN);
    match rust_log.filter(|s| !s.trim().is_empty()) {
        None => (fallback, None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (fallback, Some(format!("{directives:?}: {e}"))),
        },
    }
}

/// Whether to colour the log: on a terminal, unless `NO_COLOR` is set to anything but "".
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `system_monitor snapshot`: two samples one interval apart (so rates are real), printed as
/// `/api/system/metrics` serves them, or in `format`.
fn snapshot(config: &system_monitor::config::Config, format: SnapshotFormat) -> anyhow::Result<()> {
    let mut sampler = Sampler::from_config(config.node_id.to_string(), &config.collect);
    sampler.sample();
    std::thread::sleep(config.collect.interval);
    let snapshot = sampler.sample();
    match format {
        SnapshotFormat::Json => {
            let array = [wire::NodeMetrics::of(&snapshot)];
            println!("{}", serde_json::to_string_pretty(&array)?);
        }
        SnapshotFormat::Model => println!("{}", serde_json::to_string_pretty(&*snapshot)?),
        SnapshotFormat::Prometheus => {
            print!(
                "{}",
                prometheus::encode(&snapshot, prometheus::Format::Text)
            );
        }
    }
    Ok(())
}

fn serve(config: system_monitor::config::Config) -> anyhow::Result<()> {
    one_malloc_arena();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(64)
        .thread_name("system_monitor")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let agent = system_monitor::agent::bind(config).await?;
        tokio::spawn(stop_on_signal(shutdown.clone()));
        agent.run(shutdown).await?;
        Ok(())
    })
}

/// Has glibc's allocator serve every thread from one arena. By default each thread that allocates
/// gets an arena of its own (up to 8 per core), and each holds a few hundred KiB of pages it
/// keeps; the agent's threads allocate little and seldom at once, so the lock contention arenas
/// avoid does not arise, and one arena takes ~0.5 MiB off its resident memory (bench/RESULTS.md).
/// The coordinator, which parses every agent's answer on all cores, keeps the default. Called
/// before the runtime starts its threads; `MALLOC_ARENA_MAX` in the environment still wins.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// `system_monitor coordinator`: one worker thread per core (it parses every agent's answer).
fn coordinate(
    config: system_monitor::config::Config,
    coordinator: system_monitor::config::CoordinatorConfig,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("system_monitor")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let bound = system_monitor::coordinator::bind(config, coordinator).await?;
        tokio::spawn(stop_on_signal(shutdown.clone()));
        bound.run(shutdown).await?;
        Ok(())
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM (Ctrl-C on Windows).
async fn stop_on_signal(shutdown: CancellationToken) {
    signal::terminated().await;
    tracing::info!("signal received; shutting down");
    shutdown.cancel();
}

#[cfg(unix)]
mod signal {
    use tokio::signal::unix::{signal, SignalKind};

    pub async fn terminated() {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

#[cfg(not(unix))]
mod signal {
    pub async fn terminated() {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The four functions of glibc's `libm.so.6` that the binary calls (pco's compression choices,
/// tokio's scheduler statistics and hickory's server timing call `pow`, `exp`, `log2` and
/// `log10`), defined here from the `libm` crate (Rust's port of musl's) so that the linker does
/// not link `libm.so.6` at all: its 0.9 MB of code was otherwise mapped into the process, and
/// about 0.6 MiB of it counted in the agent's resident memory (bench/RESULTS.md, issue 10). A
/// call to any other libm function brings the library back; `.ci/run` fails when it does.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod math {
    #[no_mangle]
    extern "C" fn pow(x: f64, y: f64) -> f64 {
        libm::pow(x, y)
    }

    #[no_mangle]
    extern "C" fn exp(x: f64) -> f64 {
        libm::exp(x)
    }

    #[no_mangle]
    extern "C" fn log2(x: f64) -> f64 {
        libm::log2(x)
    }

    #[no_mangle]
    extern "C" fn log10(x: f64) -> f64 {
        libm::log10(x)
    }
}

#[cfg(test)]
mod tests {
    use super::{colour, log_filter};
    use tracing::level_filters::LevelFilter;
    use tracing::Level;

    /// Whether `filter` lets an event of `level` from `target` through.
    fn logs(filter: &tracing_subscriber::filter::Targets, target: &str, level: Level) -> bool {
        filter.would_enable(target, &level)
    }

    #[test]
    fn the_log_level_follows_v_unless_rust_log_says_otherwise() {
        let (quiet, refused) = log_filter(0, None);
        assert!(refused.is_none());
        assert!(logs(&quiet, "system_monitor::agent", Level::INFO));
        assert!(!logs(&quiet, "system_monitor::agent", Level::DEBUG));
        assert!(logs(&quiet, "hyper::proto", Level::WARN));
        assert!(!logs(&quiet, "hyper::proto", Level::INFO));

        let (v, _) = log_filter(1, None);
        assert!(logs(&v, "system_monitor::serve", Level::DEBUG));
        assert!(!logs(&v, "system_monitor::serve", Level::TRACE));
        let (vv, _) = log_filter(2, Some(" ".into()));
        assert!(logs(&vv, "system_monitor::serve", Level::TRACE));
        assert!(!logs(&vv, "h2", Level::INFO));

        let (rust_log, refused) =
            log_filter(0, Some("hyper=debug,system_monitor::history=trace".into()));
        assert!(refused.is_none());
        assert!(logs(&rust_log, "hyper::proto::h1", Level::DEBUG));
        assert!(logs(
            &rust_log,
            "system_monitor::history::log",
            Level::TRACE
        ));
        assert!(!logs(&rust_log, "system_monitor::agent", Level::ERROR));
        let (bare, _) = log_filter(0, Some("debug".into()));
        assert!(logs(&bare, "anything", Level::DEBUG));
        assert_eq!(bare.default_level(), Some(LevelFilter::DEBUG));
    }

    #[test]
    fn a_bad_rust_log_is_reported_and_v_is_used() {
        let (filter, refused) = log_filter(1, Some("system_monitor=loud".into()));
        let refused = refused.expect("a bad directive is reported");
        assert!(refused.contains("system_monitor=loud"), "{refused}");
        assert!(logs(&filter, "system_monitor::agent", Level::DEBUG));
        assert!(!logs(&filter, "hyper", Level::INFO));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }
}
