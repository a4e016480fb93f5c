use super::*;

use std::path::Path;

/// A plugin named `name` running `command`.
fn spec(name: &str, command: &str) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        command: command.into(),
    }
}

/// Writes an executable shell script into `dir`; returns its path as a command.
#[cfg(unix)]
fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_good_plugin_gives_its_families() {
    let dir = tempfile::tempdir().unwrap();
    let command = script(
        dir.path(),
        "good.sh",
        "printf '# HELP q_jobs Jobs.\\n# TYPE q_jobs gauge\\nq_jobs{queue=\"b\"} 2\\nq_jobs{queue=\"a\",x=\"1\"} 1\\n'\n",
    );
    let spec = spec("good", &command);
    let text = runtime()
        .block_on(run_once(&spec, Duration::from_secs(20)))
        .unwrap();
    let (families, refused) = families_of(&spec, &text, &HashSet::new()).unwrap();
    assert_eq!(refused, None);
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].source, "plugin good");
    assert_eq!(families[0].family.help.as_deref(), Some("Jobs."));
    // Labels completed as the textfile collector completes them.
    assert_eq!(
        families[0].family.samples[0].labels,
        [("queue".into(), "b".into()), ("x".into(), String::new())]
    );
    assert_eq!(
        exposition::custom_series(&families)
            .into_iter()
            .collect::<Vec<_>>(),
        [
            (r#"q_jobs{queue="a",x="1"}"#.to_string(), 1.0),
            (r#"q_jobs{queue="b",x=""}"#.to_string(), 2.0)
        ]
    );
}

#[cfg(unix)]
#[test]
fn failures_are_named() {
    let rt = runtime();
    let run = |command: &str| rt.block_on(run_once(&spec("p", command), Duration::from_secs(20)));
    let failed = run("echo broken >&2; exit 3").unwrap_err();
    assert!(matches!(failed, PluginError::Exit { .. }), "{failed}");
    assert!(failed.to_string().contains("broken"), "{failed}");
    let garbage = run("echo 'this is { not prometheus'").unwrap();
    let err = families_of(&spec("p", ""), &garbage, &HashSet::new()).unwrap_err();
    assert!(matches!(err, PluginError::Parse(_)), "{err}");
    let with_node = families_of(&spec("p", ""), "a{node=\"x\"} 1\n", &HashSet::new()).unwrap_err();
    assert!(matches!(with_node, PluginError::Refused(_)), "{with_node}");
    let missing = run("/nonexistent/plugin/command").unwrap_err();
    assert!(matches!(missing, PluginError::Exit { .. }), "{missing}");
}

#[cfg(unix)]
#[test]
fn more_than_a_mebibyte_is_cut_and_killed() {
    let started = Instant::now();
    // `yes` writes for ever: only the limit ends the run, well before the timeout.
    let err = runtime()
        .block_on(run_once(
            &spec("big", "yes metric_x"),
            Duration::from_secs(60),
        ))
        .unwrap_err();
    assert!(matches!(err, PluginError::TooLarge), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Whether process `pid` still exists (and is not a zombie).
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_hanging_plugin_is_killed_with_its_grandchildren() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    // The grandchild (a background sleep) writes its pid, then everything hangs.
    let command = format!("sleep 1000 & echo $! > {}; wait", pidfile.display());
    let started = Instant::now();
    let err = runtime()
        .block_on(run_once(
            &spec("hang", &command),
            Duration::from_millis(500),
        ))
        .unwrap_err();
    assert!(matches!(err, PluginError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered at once, but the grandchild is reaped by init: poll briefly.
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "grandchild {pid} outlived the timeout");
}

#[test]
fn shadowing_families_are_left_out_and_named() {
    let reserved: HashSet<String> = ["node_load1".to_string()].into();
    let text = "node_load1 5\nmine 1\n";
    let (families, refused) = families_of(&spec("s", ""), text, &reserved).unwrap();
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].family.name, "mine");
    assert!(refused.unwrap().contains("node_load1"));
}

#[test]
fn duplicate_names_are_refused() {
    let config = PluginConfig {
        exec: vec![spec("a", "true"), spec("a", "false")],
        ..PluginConfig::default()
    };
    let err = Plugins::new(&config).unwrap_err();
    assert!(err.to_string().contains("\"a\""), "{err}");
    assert!(Plugins::new(&PluginConfig::default()).unwrap().is_none());
}

/// A board with one plugin whose slot holds `slot`.
fn board_with(slot: Slot, stale_after: Duration) -> PluginCollector {
    PluginCollector {
        board: Arc::new(Board {
            specs: vec![spec("p", "true")],
            slots: vec![Mutex::new(slot)],
            reserved: OnceLock::new(),
            stale_after,
        }),
    }
}

fn family(name: &str) -> Arc<ForeignFamily> {
    let family = exposition::parse(&format!("{name} 1\n")).unwrap().remove(0);
    Arc::new(ForeignFamily {
        family,
        source: "plugin p".into(),
    })
}

#[test]
fn the_collector_reports_and_drops_stale_series() {
    let report = RunReport {
        ok: false,
        error: Some("it exited with exit status: 1".into()),
        duration: Duration::from_millis(250),
    };
    let fresh = Slot {
        last: Some(report.clone()),
        families: vec![family("mine"), family("theirs")],
        last_success: Some(Instant::now()),
    };
    let mut collector = board_with(fresh, Duration::from_secs(30));
    let mut snapshot = Snapshot {
        foreign_families: vec![family("theirs")],
        ..Snapshot::default()
    };
    collector.collect(&mut snapshot).unwrap();
    let names: Vec<&str> = snapshot
        .foreign_families
        .iter()
        .map(|f| f.family.name.as_str())
        .collect();
    assert_eq!(names, ["theirs", "mine"], "a textfile's family wins");
    let status = snapshot.collector("plugin:p").unwrap();
    assert!(!status.ok);
    let error = status.error.as_deref().unwrap();
    assert!(
        error.contains("exit status") && error.contains("theirs"),
        "{error}"
    );
    let success = &snapshot.kernel_families[0];
    assert_eq!(&*success.name, "system_monitor_plugin_success");
    assert_eq!(success.samples[0].value, 0.0);
    assert_eq!(success.samples[0].labels, [("plugin", "p".to_string())]);
    assert_eq!(snapshot.kernel_families[1].samples[0].value, 0.25);

    let stale = Slot {
        last: Some(report),
        families: vec![family("mine")],
        last_success: Instant::now().checked_sub(Duration::from_secs(31)),
    };
    let mut collector = board_with(stale, Duration::from_secs(30));
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    assert!(snapshot.foreign_families.is_empty(), "stale series dropped");

    let mut collector = board_with(Slot::default(), Duration::from_secs(30));
    let mut snapshot = Snapshot::default();
    collector.collect(&mut snapshot).unwrap();
    let waiting = snapshot.collector("plugin:p").unwrap();
    assert!(waiting.ok, "not run yet is not a failure");
    assert!(snapshot.kernel_families.is_empty());
}
