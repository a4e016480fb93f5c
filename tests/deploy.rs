//! The shipped deployments stay in step with the flags: every container's `args:` list in
//! `deploy/kubernetes/` (the kustomize base and its overlays) and the `ExecStart=` lines of
//! `deploy/systemd/` must be accepted by the real command line parser. (The Helm chart these
//! manifests are generated from is rendered, and its arguments run, by tests/python/deploy.)

use std::path::{Path, PathBuf};

use clap::Parser;
use system_monitor::cli::Cli;

/// The `args:` lists of a manifest, one `Vec` per container (`- ARG` lines under `args:`,
/// comments skipped).
fn container_args(manifest: &str) -> Vec<Vec<String>> {
    let mut lists = Vec::new();
    let mut lines = manifest.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "args:" {
            continue;
        }
        let mut args = Vec::new();
        while let Some(next) = lines.peek().map(|l| l.trim()) {
            if next.starts_with('#') {
                lines.next();
                continue;
            }
            let Some(arg) = next.strip_prefix("- ") else {
                break;
            };
            args.push(arg.trim_matches(|c| c == '"' || c == '\'').to_string());
            lines.next();
        }
        lists.push(args);
    }
    lists
}

/// Every `.yaml` file under `dir`, recursively, in a stable order.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn parse(argv: impl IntoIterator<Item = String>, what: &str) {
    let argv: Vec<String> = std::iter::once("system_monitor".to_string())
        .chain(argv)
        .collect();
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("{what}: {:?} is refused:\n{e}", &argv[1..]);
    }
}

#[test]
fn kubernetes_manifests_use_flags_the_binary_accepts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut checked = 0;
    for path in yaml_files(&dir) {
        let manifest = std::fs::read_to_string(&path).expect("readable manifest");
        for args in container_args(&manifest) {
            // Kubernetes expands $(NODE_NAME) and $(POD_NAME) from the pod's environment.
            let argv = args.iter().map(|a| {
                a.replace("$(NODE_NAME)", "node-1")
                    .replace("$(POD_NAME)", "coordinator-0")
            });
            parse(argv, &path.display().to_string());
            checked += 1;
        }
    }
    // The agent DaemonSet and the coordinator Deployment of the base (the GPU overlay changes
    // no arguments today).
    assert!(
        checked >= 2,
        "only {checked} container argument lists found"
    );
}

/// `ExecStart=` of a unit, continuation lines joined, split on whitespace (no quoting is used).
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn systemd_units_use_flags_the_binary_accepts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd");
    for unit in [
        "system-monitor.service",
        "system-monitor-coordinator.service",
    ] {
        let text = std::fs::read_to_string(dir.join(unit)).expect("readable unit");
        let argv = exec_start(&text);
        assert_eq!(argv[0], "/usr/local/bin/system_monitor", "{unit}");
        // %d is the credentials directory; $AGENT_ARGS and the like are empty by default.
        let args = argv[1..]
            .iter()
            .filter(|a| !a.starts_with('$'))
            .map(|a| a.replace("%d", "/run/credentials/system-monitor.service"));
        parse(args, unit);
    }
}

#[test]
fn the_parser_sees_every_argument() {
    let lists = container_args("args:\n  - --a\n  # why\n  - \"--b=1\"\nenv:\n  - name: X\n");
    assert_eq!(lists, [vec!["--a".to_string(), "--b=1".to_string()]]);
    let unit = "[Service]\nExecStart=/usr/local/bin/system_monitor --a \\\n    --b %d/x $ARGS\n";
    assert_eq!(
        exec_start(unit),
        [
            "/usr/local/bin/system_monitor",
            "--a",
            "--b",
            "%d/x",
            "$ARGS"
        ]
    );
}
