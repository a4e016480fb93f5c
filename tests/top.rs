//! `system_monitor top` in a real terminal: tmux runs it (160×50) against agents on fixture
//! trees and a coordinator; the test reads the screen with `capture-pane` and types with
//! `send-keys`, waiting for each screen with a deadline. It checks that the numbers shown are
//! the API's (the disks and filesystems row by row; the accelerators of a fixture's sysfs, two
//! AMD GPUs and an NPU), that the sparklines start from the history the agent serves (and,
//! drilled into a node, the coordinator), that `?` shows the keys, that a sort key changes the
//! order, that Enter drills into a node and Esc comes back, that a server killed shows as
//! disconnected and a restarted one is read again, and that `q` (or SIGTERM) exits with status 0
//! and leaves the terminal as it found it.
//!
//! tmux is installed by `scripts/test.sh` (Debian's package); without it these tests fail and
//! say so.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::closed_port::ClosedPort;
use common::cluster::{agent, coordinator, eventually, free_port, get, Process, DEADLINE};
use common::BIN;
use system_monitor::top::format::{bytes, percent, rate, sparkline};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A tmux server of its own (its own socket), with one session running `top`. Killed on drop.
struct Tmux {
    socket: String,
    /// Holds `pid`, the file `top`'s process id is written to.
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `system_monitor top --url URL` in a 160×50 session; when it exits, the shell
    /// prints its status and whether the terminal is back in canonical mode with echo.
    fn start(name: &str, url: &str) -> Tmux {
        Self::start_with(name, url, &[])
    }

    /// [`Tmux::start`] with more flags for `top` (e.g. `--refresh 1h`).
    fn start_with(name: &str, url: &str, flags: &[&str]) -> Tmux {
        let flags = flags.join(" ");
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
            if Path::new(dir).join("tmux").is_file() {
                let socket = format!("system-monitor-top-{}-{name}", std::process::id());
                let dir = tempfile::tempdir().expect("temporary directory");
                let pidfile = dir.path().join("pid").display().to_string();
                // The inner shell writes its pid and becomes `top`.
                let script = format!(
                    "sh -c 'echo $$ > {pidfile}; exec env -u SYSTEM_MONITOR_AUTH_TOKEN {BIN} top --url {url} {flags}'; \
                     echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '; \
                     echo; echo DONE; sleep 600"
                );
                let tmux = Tmux { socket, dir };
                tmux.run(&[
                    "new-session",
                    "-d",
                    "-s",
                    "top",
                    "-x",
                    "160",
                    "-y",
                    "50",
                    "sh",
                    "-c",
                    &script,
                ]);
                return tmux;
            }
        }
        panic!(
            "tmux is not installed. Run the test command from the README (./scripts/test.sh), \
             which installs the Debian package `tmux`."
        );
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The visible screen.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Types `keys` (tmux key names: `q`, `Enter`, `Escape`, `Down`, `?`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend(keys);
        self.run(&args);
    }

    /// Waits until the screen satisfies `check` (which says what is missing otherwise).
    async fn wait(&self, what: &str, check: impl Fn(&str) -> Result<(), String>) -> String {
        let until = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            match check(&screen) {
                Ok(()) => return screen,
                Err(missing) if Instant::now() > until => {
                    panic!("{what}: not within {DEADLINE:?}: {missing}\nscreen:\n{screen}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits until the screen contains every one of `texts`.
    async fn wait_for(&self, what: &str, texts: &[&str]) -> String {
        self.wait(what, |screen| {
            match texts.iter().find(|t| !screen.contains(**t)) {
                Some(missing) => Err(format!("no {missing:?}")),
                None => Ok(()),
            }
        })
        .await
    }

    /// Quits with `q` and checks the exit status and the terminal left behind.
    async fn quit(&self) {
        self.keys(&["q"]);
        self.ended().await;
    }

    /// Waits for `top` to exit, and checks the exit status and the terminal left behind.
    async fn ended(&self) {
        let screen = self.wait_for("top exits", &["DONE"]).await;
        assert!(screen.contains("EXIT=0"), "exit status:\n{screen}");
        // Canonical mode and echo are back (raw mode turns both off).
        let modes = screen
            .lines()
            .find(|l| l.contains("icanon"))
            .unwrap_or_default();
        let words: Vec<&str> = modes.split_whitespace().collect();
        assert!(
            words.contains(&"icanon") && words.contains(&"echo"),
            "terminal modes after exit: {modes:?}\n{screen}"
        );
        // The alternate screen was left: the view is no longer on screen.
        assert!(!screen.contains("system_monitor top"), "{screen}");
        let alternate = self.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
        assert_eq!(alternate.trim(), "0", "still on the alternate screen");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The API's `/api/system/metrics` array.
async fn metrics(server: &Process, query: &str) -> Vec<Value> {
    let reply = get(&server.url(&format!("/api/system/metrics{query}")), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json().as_array().cloned().unwrap_or_default()
}

/// The memory line the node view shows for `element`.
fn memory_line(element: &Value) -> String {
    let m = &element["memory"];
    format!(
        "used {} / {} ({})",
        bytes(m["used"].as_u64().unwrap_or(u64::MAX)),
        bytes(m["total"].as_u64().unwrap_or(u64::MAX)),
        percent(m["usage"].as_f64())
    )
}

/// The core cells the node view shows for `element` (`  3   0.0%`).
fn core_cells(element: &Value) -> Vec<String> {
    element["cpu"]["cores"]
        .as_array()
        .map(|cores| {
            cores
                .iter()
                .map(|c| {
                    format!(
                        "{:>4} {:>6}",
                        c["id"].as_u64().unwrap_or(u64::MAX),
                        percent(c["usage"].as_f64())
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The Disk box's rows for `element`: each device's name with its read and write rates and
/// utilisation (the fixture's counters stand still), each filesystem's mount with its size
/// (those the box shows whole, with a name of up to 24 characters). Not the space used: the
/// fixture's mounts are directories of the disk the tests run on, whose use moves.
fn disk_rows(element: &Value) -> Vec<(String, Vec<String>)> {
    let list = |key: &str| element[key].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut rows: Vec<(String, Vec<String>)> = list("disks")
        .iter()
        .map(|d| {
            let figures = [
                rate(d["ioRead"].as_f64().unwrap_or(f64::NAN)),
                rate(d["ioWrite"].as_f64().unwrap_or(f64::NAN)),
                percent(d["utilization"].as_f64()),
            ];
            (text(&d["device"]), figures.to_vec())
        })
        .collect();
    rows.extend(
        list("filesystems")
            .iter()
            .filter(|f| f["state"] == "ok" && text(&f["mountpoint"]).chars().count() <= 24)
            .map(|f| {
                let size = bytes(f["size"].as_u64().unwrap_or(u64::MAX));
                (text(&f["mountpoint"]), vec![" / ".to_string(), size])
            }),
    );
    assert!(rows.len() > 2, "the fixture has disks: {element}");
    rows
}

/// The node names in the order the list shows them.
fn order(screen: &str, names: &[&str]) -> Vec<String> {
    let mut found: Vec<(usize, String)> = names
        .iter()
        .filter_map(|n| screen.find(&format!("│{n} ")).map(|at| (at, n.to_string())))
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

/// The bars of the CPU's overall sparkline (the line under `overall`), oldest first.
fn overall_bars(screen: &str) -> String {
    let mut lines = screen.lines().skip_while(|l| !l.contains("│overall "));
    lines.next();
    lines
        .next()
        .map(|l| l.chars().filter(|c| ('▁'..='█').contains(c)).collect())
        .unwrap_or_default()
}

/// `node`'s `cpu.overall` in `server`'s `/api/system/history`, oldest first, without the
/// nulls (as the view reads it): (unix ms, value). A coordinator answers 404 until it has
/// polled the node once.
async fn cpu_history(server: &Process, node: &str) -> Result<Vec<(i64, f64)>, String> {
    let path = format!("/api/system/history?node_id={node}&fields=cpu.overall");
    let reply = get(&server.url(&path), None).await;
    if reply.status != 200 {
        return Err(format!("{}: {}", reply.status, reply.body));
    }
    let answer = &reply.json()[0];
    let times = answer["timestamps"].as_array().cloned().unwrap_or_default();
    let values = answer["series"]["cpu.overall"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(times
        .iter()
        .zip(&values)
        .filter_map(|(t, v)| Some((t.as_i64()?, v.as_f64()?)))
        .collect())
}

/// Waits until `server`'s history has `n` samples of `node`'s `cpu.overall`, and until the
/// element its `/api/system/metrics{query}` serves (what `top`'s round reads) is no older than
/// the last of them: the view's ring then holds at least these samples, whether back-filled or
/// live. Returns how many there were.
async fn history_before_top(server: &Process, node: &str, query: &str, n: usize) -> usize {
    let history = eventually(&format!("{n} samples of {node}"), DEADLINE, || async {
        let history = cpu_history(server, node).await?;
        if history.len() >= n {
            Ok(history)
        } else {
            Err(format!("{} samples", history.len()))
        }
    })
    .await;
    let last = history.last().map_or(0, |&(t, _)| t);
    eventually("the metrics as new as the history", DEADLINE, || async {
        let reply = get(&server.url(&format!("/api/system/metrics{query}")), None).await;
        let elements: Value = serde_json::from_str(&reply.body).unwrap_or_default();
        match elements[0]["timestamp"].as_i64() {
            Some(t) if t >= last => Ok(()),
            t => Err(format!("element at {t:?}, history to {last}")),
        }
    })
    .await;
    history.len()
}

/// Waits until the overall CPU sparkline on screen has a bar for each of the `before` samples
/// `server` had of `node` when `top` started — with one refresh an hour, only one of them could
/// come live — and checks them against the history `server` serves now: the view's ring is the
/// history up to its one live sample, which is in the history too.
async fn assert_backfilled(tmux: &Tmux, server: &Process, node: &str, before: usize) {
    let screen = tmux
        .wait("the CPU sparkline back-filled from the history", |s| {
            let bars = overall_bars(s).chars().count();
            if bars >= before {
                Ok(())
            } else {
                Err(format!("{bars} bars, {before} samples in the history"))
            }
        })
        .await;
    let bars = overall_bars(&screen);
    let drawn = bars.chars().count();
    let history: Vec<f64> = cpu_history(server, node)
        .await
        .unwrap_or_else(|e| panic!("{node}'s history: {e}"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let one_of_the_prefixes =
        (before..=history.len()).any(|n| sparkline(&history[..n], drawn, Some(100.0)) == bars);
    assert!(
        one_of_the_prefixes,
        "{bars:?} is not the start of the history {history:?}\n{screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_backfills_its_sparklines_from_the_agents_history() {
    let monitor = agent("server", "top-history", LOCAL, &["--interval", "250ms"]);
    let before = history_before_top(&monitor, "top-history", "", 8).await;
    // One round an hour: one live sample, the rest of the sparkline is history.
    let tmux = Tmux::start_with("history", &monitor.base(), &["--refresh", "1h"]);
    assert_backfilled(&tmux, &monitor, "top-history", before).await;
    tmux.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_drills_into_a_node_with_its_history_through_a_coordinator() {
    let node = agent("server", "top-drill", LOCAL, &["--interval", "250ms"]);
    let agents = node.base();
    let hub = coordinator(&["--agents", agents.as_str(), "--poll-interval", "250ms"]);
    // The node's history through the coordinator, and its element there (the list's one round
    // has it, so Enter drills in; the drill-down's round is no older than the history).
    let before = history_before_top(&hub, "top-drill", "?node_id=top-drill", 8).await;
    let tmux = Tmux::start_with("drill", &hub.base(), &["--refresh", "1h"]);
    tmux.wait_for(
        "the node list",
        &["coordinator: 1 nodes, 1 online", "│top-drill "],
    )
    .await;
    tmux.keys(&["Enter"]);
    tmux.wait_for("the node view", &["node top-drill", "Esc back"])
        .await;
    assert_backfilled(&tmux, &hub, "top-drill", before).await;
    tmux.quit().await;
}

/// The accelerator line the node view shows for `a` of `/api/system/metrics`: its name, then
/// `util` and `mem` as the view writes them.
fn accelerator_parts(a: &Value) -> [String; 3] {
    let memory = &a["memory"];
    let memory = match (memory["used"].as_u64(), memory["total"].as_u64()) {
        (Some(used), Some(total)) => format!(
            "{} / {} ({})",
            bytes(used),
            bytes(total),
            percent(memory["percentage"].as_f64())
        ),
        _ => "-".to_string(),
    };
    let name: String = a["name"].as_str().unwrap_or("?").chars().take(24).collect();
    [
        name,
        format!("util {:>6}", percent(a["utilization"].as_f64())),
        format!("mem {memory}"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_accelerators_an_agent_reports() {
    // Two AMD GPUs and an Intel NPU in the fixture's sysfs, read by the real collectors.
    let monitor = agent(
        "accel/workstation",
        "top-accel",
        LOCAL,
        &["--interval", "250ms"],
    );
    // Every utilization in (the NPU's is a rate: it needs a second sample).
    let accelerators = eventually("the accelerators' utilization", DEADLINE, || async {
        let element = metrics(&monitor, "").await.remove(0);
        let accelerators = element["accelerators"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if accelerators.len() == 3 && accelerators.iter().all(|a| a["utilization"].is_number()) {
            Ok(accelerators)
        } else {
            Err(format!("{accelerators:?}"))
        }
    })
    .await;
    let lines: Vec<[String; 3]> = accelerators.iter().map(accelerator_parts).collect();
    let tmux = Tmux::start("accel", &monitor.base());
    tmux.wait("each accelerator with the API's figures", |screen| {
        if !screen.contains("Accelerators (3)") {
            return Err("no \"Accelerators (3)\"".into());
        }
        for parts in &lines {
            let found = screen.lines().any(|l| {
                let mut rest = l;
                parts.iter().all(|part| match rest.find(part.as_str()) {
                    Some(at) => {
                        rest = &rest[at + part.len()..];
                        true
                    }
                    None => false,
                })
            });
            if !found {
                return Err(format!("no line with {parts:?}"));
            }
        }
        Ok(())
    })
    .await;
    tmux.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_an_agent_and_survives_its_restart() {
    let port = free_port(&[LOCAL]).to_string();
    let extra = ["--rest-api-port", port.as_str()];
    let mut monitor = agent("server", "top-agent", LOCAL, &extra);
    let element = metrics(&monitor, "").await.remove(0);
    let tmux = Tmux::start("agent", &monitor.base());

    let memory = memory_line(&element);
    let cores = core_cells(&element);
    assert!(!cores.is_empty(), "the fixture has cores: {element}");
    let overall = format!("overall {:>6}", percent(element["cpu"]["overall"].as_f64()));
    let screen = tmux
        .wait("the agent view with the API's numbers", |screen| {
            let mut wanted = vec!["connected", "agent", "top-agent", &memory, &overall];
            wanted.extend(cores.iter().map(String::as_str));
            match wanted.iter().find(|t| !screen.contains(**t)) {
                Some(missing) => Err(format!("no {missing:?}")),
                None => Ok(()),
            }
        })
        .await;
    for section in ["Memory", "Disk", "Network", "Accelerators"] {
        assert!(screen.contains(section), "{section}:\n{screen}");
    }
    // The Disk box lists every device and filesystem of the fixture (160×50 has room).
    for (name, figures) in disk_rows(&element) {
        let row = screen
            .lines()
            .find_map(|l| l.split_once(&format!("│{name} ")).map(|(_, row)| row))
            .unwrap_or_else(|| panic!("no row {name:?}:\n{screen}"));
        let mut rest = row;
        for figure in &figures {
            let at = rest
                .find(figure.as_str())
                .unwrap_or_else(|| panic!("{name}: {figures:?} in {row:?}"));
            rest = &rest[at + figure.len()..];
        }
    }

    tmux.keys(&["?"]);
    tmux.wait_for("help", &["Keys (? or Esc closes)", "drill down"])
        .await;
    tmux.keys(&["Escape"]);
    tmux.wait("help closed", |s| {
        if s.contains("Keys (? or Esc closes)") {
            Err("help still open".into())
        } else {
            Ok(())
        }
    })
    .await;

    monitor.kill_holding_port();
    tmux.wait_for("the agent gone", &["disconnected — retrying", &memory])
        .await;
    drop(monitor);
    let _restarted = agent("server", "top-agent", LOCAL, &extra);
    tmux.wait("reconnected", |s| {
        if s.contains("connected, updated") && !s.contains("disconnected") {
            Ok(())
        } else {
            Err("not reconnected".into())
        }
    })
    .await;
    tmux.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_lists_a_coordinators_nodes_sorts_and_drills_down() {
    // top-node-a's memory is the less used (2.8 % against 16.2 %): the memory order is not
    // the name order.
    let a = agent("captured-vm", "top-node-a", LOCAL, &[]);
    let b = agent("server", "top-node-b", LOCAL, &[]);
    let port = free_port(&[LOCAL]).to_string();
    let agents = format!("{},{}", a.base(), b.base());
    let extra = [
        "--rest-api-port",
        port.as_str(),
        "--agents",
        agents.as_str(),
    ];
    let mut hub = coordinator(&extra);
    let names = ["top-node-a", "top-node-b"];
    // Both nodes polled before the view starts, so the API's figures are the view's.
    let until = Instant::now() + DEADLINE;
    let elements = loop {
        let elements = metrics(&hub, "").await;
        if elements.len() == 2 {
            break elements;
        }
        assert!(Instant::now() < until, "coordinator polls both agents");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let memory_of = |name: &str| {
        elements
            .iter()
            .find(|e| e["node_id"] == name)
            .and_then(|e| e["memory"]["usage"].as_f64())
            .unwrap_or_else(|| panic!("{name} in {elements:?}"))
    };
    let tmux = Tmux::start("coordinator", &hub.base());
    let screen = tmux
        .wait_for(
            "the node list",
            &["coordinator: 2 nodes, 2 online", "Nodes (sorted by name)"],
        )
        .await;
    for name in names {
        let row = screen
            .lines()
            .find(|l| l.contains(&format!("│{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{screen}"));
        let memory = percent(Some(memory_of(name)));
        assert!(row.contains("online"), "{row}");
        assert!(row.contains(&memory), "memory {memory} in {row}");
    }
    assert_eq!(order(&screen, &names), names);

    // Memory: the fuller node first. The fixtures differ, so the order is checked both ways.
    let mut by_memory = names.to_vec();
    by_memory.sort_by(|x, y| memory_of(y).total_cmp(&memory_of(x)));
    assert_ne!(
        by_memory, names,
        "the fixtures' memory order is the name order"
    );
    tmux.keys(&["m"]);
    tmux.wait("sorted by memory", |s| {
        if s.contains("sorted by memory") && order(s, &names) == by_memory {
            Ok(())
        } else {
            Err(format!("order {:?}", order(s, &names)))
        }
    })
    .await;
    tmux.keys(&["n"]);
    tmux.wait("sorted by name", |s| {
        if s.contains("sorted by name") && order(s, &names) == names {
            Ok(())
        } else {
            Err(format!("order {:?}", order(s, &names)))
        }
    })
    .await;

    // Drill down into the second node: its element, as the coordinator serves it.
    let element = metrics(&hub, "?node_id=top-node-b").await.remove(0);
    tmux.keys(&["Down", "Enter"]);
    let memory = memory_line(&element);
    tmux.wait_for(
        "the node view of top-node-b",
        &["node top-node-b", &memory, "Esc back"],
    )
    .await;
    tmux.keys(&["Escape"]);
    tmux.wait_for("back to the list", &["Nodes (sorted by name)"])
        .await;

    hub.kill_holding_port();
    tmux.wait_for("the coordinator gone", &["disconnected — retrying"])
        .await;
    drop(hub);
    let _restarted = coordinator(&extra);
    tmux.wait("reconnected", |s| {
        if s.contains("coordinator: 2 nodes") && !s.contains("disconnected") {
            Ok(())
        } else {
            Err("not reconnected".into())
        }
    })
    .await;
    tmux.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_waits_for_a_server_that_is_not_there_and_quits_on_sigterm() {
    // A port that refuses connections.
    let closed = ClosedPort::new(LOCAL);
    let tmux = Tmux::start("absent", &closed.base());
    tmux.wait_for("no server", &["disconnected — retrying", "no answer yet"])
        .await;
    let pid = std::fs::read_to_string(tmux.dir.path().join("pid")).expect("top's pid");
    let sent = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    tmux.ended().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ends_when_its_terminal_hangs_up() {
    let closed = ClosedPort::new(LOCAL);
    let tmux = Tmux::start("hangup", &closed.base());
    tmux.wait_for("no server", &["disconnected — retrying"])
        .await;
    let pid = std::fs::read_to_string(tmux.dir.path().join("pid")).expect("top's pid");
    let proc_dir = Path::new("/proc").join(pid.trim());
    // Closing the server closes the pane's terminal: `top` gets SIGHUP, and reads of the
    // terminal return end of file from then on (crossterm would read them for ever).
    tmux.run(&["kill-server"]);
    let until = Instant::now() + DEADLINE;
    loop {
        let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent.
        let state = state
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        if matches!(state, None | Some("Z")) {
            break;
        }
        assert!(
            Instant::now() < until,
            "top still runs {DEADLINE:?} after its terminal hung up (state {state:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
