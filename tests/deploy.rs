//! The shipped deployment manifests stay in step with the flags: every container's `args:` list
//! in `deploy/kubernetes/*.yaml` must be accepted by the real command line parser.

use std::path::PathBuf;

use clap::Parser;
use system_monitor::cli::Cli;

/// The `args:` lists of a manifest, one `Vec` per container (`- ARG` lines under `args:`).
fn container_args(manifest: &str) -> Vec<Vec<String>> {
    let mut lists = Vec::new();
    let mut lines = manifest.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "args:" {
            continue;
        }
        let mut args = Vec::new();
        while let Some(arg) = lines.peek().and_then(|l| l.trim().strip_prefix("- ")) {
            args.push(arg.trim_matches('"').to_string());
            lines.next();
        }
        lists.push(args);
    }
    lists
}

#[test]
fn kubernetes_manifests_use_flags_the_binary_accepts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let manifest = std::fs::read_to_string(&path).expect("readable manifest");
        for args in container_args(&manifest) {
            // Kubernetes expands $(NODE_NAME) from the pod's environment.
            let argv = std::iter::once("system_monitor".to_string())
                .chain(args.iter().map(|a| a.replace("$(NODE_NAME)", "node-1")));
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{}: {args:?} is refused:\n{e}", path.display());
            }
            checked += 1;
        }
    }
    // The agent DaemonSet and the coordinator Deployment.
    assert!(
        checked >= 2,
        "only {checked} container argument lists found"
    );
}

#[test]
fn the_parser_sees_every_argument() {
    let lists = container_args("args:\n  - --a\n  - \"--b=1\"\nenv:\n  - name: X\n");
    assert_eq!(lists, [vec!["--a".to_string(), "--b=1".to_string()]]);
}
