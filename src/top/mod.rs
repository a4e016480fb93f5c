//! `system_monitor top`: a terminal view of an agent (CPU per core, memory, disks, network,
//! accelerators, with sparklines) or of a coordinator (one row per node, sortable, with a
//! drill-down into a node), read from their REST API.
//!
//! A poller thread ([`fetch`]) asks the server every `--refresh` and sends what it got to the
//! drawing thread; the view's state ([`app`]) takes those answers and the keys, and [`view`]
//! draws it, a pure function of the state (tested on ratatui's `TestBackend`). When the server
//! goes away, the last data stays on screen, greyed, under "disconnected — retrying", and the
//! poller tries again with a growing backoff.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::watch;

use crate::auth::{AuthError, Token, TokenKind};
use crate::http_client::{self, ClientError, ClientOptions};
use crate::tls::{TlsError, TrustRoots};

pub mod app;
pub mod fetch;
pub mod format;
pub mod series;
pub mod view;

pub use app::App;

/// What `system_monitor top` shows and how it reaches it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's REST base URL (agent or coordinator).
    pub url: String,
    /// Time between two fetches.
    pub refresh: Duration,
    /// The read token's file; without it, `SYSTEM_MONITOR_AUTH_TOKEN` if set.
    pub auth_token_file: Option<PathBuf>,
    /// The CA bundle an https server is verified against; default the system's roots.
    pub tls_ca: Option<PathBuf>,
}

/// Why the view could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// stdout is not a terminal: there is nothing to draw on.
    #[error("the terminal view needs a terminal (stdout is not one)")]
    NotATerminal,
    #[error(transparent)]
    Token(#[from] AuthError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// How long the drawing thread has to quit after a signal before the process exits without it.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How often the screen is redrawn without news (ages and "retrying in" count on).
const TICK: Duration = Duration::from_millis(250);

/// Runs the view until `q` (or Ctrl-C); the terminal is restored on every way out, a panic
/// included.
pub fn run(options: Options) -> Result<(), TopError> {
    if !std::io::stdout().is_terminal() {
        return Err(TopError::NotATerminal);
    }
    let token = Token::load(TokenKind::Auth, options.auth_token_file.as_deref())?;
    let roots = options
        .tls_ca
        .as_deref()
        .map(|ca| TrustRoots::load(Some(ca)))
        .transpose()?;
    let client = http_client::build(&ClientOptions {
        max_idle_per_host: 2,
        roots,
        ..ClientOptions::default()
    })?;
    let base = options.url.trim_end_matches('/').to_string();
    let poller = fetch::Poller::new(client, base.clone(), token, options.refresh);
    let (updates, received) = mpsc::channel();
    let (focus, focused) = watch::channel(None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("top-poller".into())
        .spawn(move || {
            let signalled = runtime.block_on(async move {
                let stop = updates.clone();
                tokio::select! {
                    _ = poller.run(updates, focused) => false,
                    _ = signal::stop() => { let _ = stop.send(fetch::Update::Stop); true }
                }
            });
            if signalled {
                // The drawing thread quits on `Stop` within a frame and gives the terminal back.
                // After a hang-up it may never see it: a hung-up terminal reads as end of file at
                // once, and crossterm reads it again and again inside `event::poll`. There is no
                // terminal to give back then, so the process ends here.
                std::thread::sleep(STOP_GRACE);
                std::process::exit(0);
            }
        })?;

    let mut screen = Screen::enter()?;
    let mut app = App::new(base);
    let mut drawn: Option<Instant> = None;
    loop {
        let mut news = false;
        while let Ok(update) = received.try_recv() {
            if matches!(update, fetch::Update::Stop) {
                return Ok(());
            }
            app.apply(update, Instant::now());
            news = true;
        }
        if news || drawn.is_none_or(|at| at.elapsed() >= TICK) {
            let now = Instant::now();
            screen.terminal.draw(|frame| view::draw(frame, &app, now))?;
            drawn = Some(now);
        }
        if !event::poll(Duration::from_millis(50))? {
            continue;
        }
        match event::read()? {
            Event::Key(key) if key.kind != KeyEventKind::Release => match app.key(key) {
                app::Action::Quit => break,
                app::Action::Focus(node) => {
                    focus.send_replace(node);
                    drawn = None;
                }
                app::Action::Redraw => drawn = None,
                app::Action::None => {}
            },
            Event::Resize(..) => drawn = None,
            _ => {}
        }
    }
    drop(screen);
    Ok(())
}

/// SIGTERM, SIGHUP (the terminal closed) or SIGINT: quit, giving the terminal back.
#[cfg(unix)]
mod signal {
    use tokio::signal::unix::{signal, SignalKind};

    pub async fn stop() {
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// Ctrl-C is a key in raw mode; nothing else to wait for.
#[cfg(not(unix))]
mod signal {
    pub async fn stop() {
        std::future::pending::<()>().await
    }
}

/// The terminal in raw mode on the alternate screen, given back when dropped (ratatui's panic
/// hook gives it back on a panic).
struct Screen {
    terminal: ratatui::DefaultTerminal,
}

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        match ratatui::try_init() {
            Ok(mut terminal) => {
                // The first frames may come before the first answer: start from a blank screen.
                terminal.clear()?;
                Ok(Screen { terminal })
            }
            Err(e) => {
                ratatui::restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}
