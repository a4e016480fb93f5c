//! Tests of `cli::parse`: every flag's variable, and the precedence of the command line, the
//! config file and the defaults (the environment's part is tested on the binary, in
//! tests/operator.rs, since a test here must not change this process's environment).

use super::*;
use crate::cli::Command;
use std::path::PathBuf;
use std::time::Duration;

/// Every flag of `command` and its subcommands, with the command's name.
fn flags(command: &clap::Command) -> Vec<(String, Arg)> {
    let mut out: Vec<(String, Arg)> = command
        .get_arguments()
        .filter(|a| a.get_long().is_some())
        .map(|a| (command.get_name().to_string(), a.clone()))
        .collect();
    for sub in command.get_subcommands() {
        out.extend(flags(sub));
    }
    out
}

/// The test that makes a flag added later get its variable: it walks the command as the binary
/// builds it (globals propagated into each subcommand) and fails on any long flag but help and
/// version without `SYSTEM_MONITOR_<NAME>`.
#[test]
fn every_flag_has_its_environment_variable() {
    let mut command = command();
    command.build();
    let all = flags(&command);
    assert!(all.len() > 50, "walked {} flags", all.len());
    let mut missing = Vec::new();
    for (owner, arg) in &all {
        let long = arg.get_long().unwrap_or_default();
        if matches!(long, "help" | "version") {
            assert!(arg.get_env().is_none(), "{owner} --{long}");
            continue;
        }
        let env = arg.get_env().and_then(|e| e.to_str()).map(str::to_string);
        if env.as_deref() != Some(env_name(long).as_str()) {
            missing.push(format!("{owner} --{long}: {env:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "flags without their variable: {missing:#?}"
    );
}

#[test]
fn variable_names_are_unique_and_never_the_token_variables() {
    assert_eq!(env_name("rest-api-port"), "SYSTEM_MONITOR_REST_API_PORT");
    assert_eq!(
        env_name("collector.filesystem.mount-timeout"),
        "SYSTEM_MONITOR_COLLECTOR_FILESYSTEM_MOUNT_TIMEOUT"
    );
    assert_eq!(
        env_name("auth-token-file"),
        "SYSTEM_MONITOR_AUTH_TOKEN_FILE"
    );
    let mut command = command();
    command.build();
    let mut by_command: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (owner, arg) in flags(&command) {
        if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
            assert!(
                !matches!(
                    env,
                    "SYSTEM_MONITOR_AUTH_TOKEN" | "SYSTEM_MONITOR_CLUSTER_TOKEN"
                ),
                "{env} holds a token, not a flag"
            );
            by_command.entry(owner).or_default().push(env.to_string());
        }
    }
    for (owner, mut names) in by_command {
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "two flags of {owner} share a variable");
    }
}

/// A config file in a temporary directory.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("system_monitor.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn parse_with(file: &std::path::Path, args: &[&str]) -> Result<Cli, ParseError> {
    let mut all = vec!["system_monitor", "--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    try_parse_from(all)
}

#[test]
fn the_file_fills_what_the_command_line_does_not_give() {
    let (_dir, path) = file(
        r#"
node-id = "file-node"
interval = "1h30m"
rest-api-port = 9100
enable-dcgm-profiling = true
cors-allow-origin = ["http://localhost:3000", "https://ui.example"]
"path.procfs" = "/host/proc"
verbose = 2
[collector.filesystem]
mount-timeout = 0.5
[http]
idle-timeout = "10m"
"#,
    );
    let cli = parse_with(&path, &["--rest-api-port", "9200"]).unwrap();
    let config = cli.config("h");
    assert_eq!(config.node_id, "file-node");
    assert_eq!(config.rest_port, 9200, "the command line wins");
    assert_eq!(config.collect.interval, Duration::from_secs(5400));
    assert!(config.collect.enable_dcgm_profiling);
    assert_eq!(
        config.browser.cors_allow_origins,
        ["http://localhost:3000", "https://ui.example"]
    );
    assert_eq!(config.collect.paths.procfs, PathBuf::from("/host/proc"));
    assert_eq!(config.collect.fs_mount_timeout, Duration::from_millis(500));
    assert_eq!(config.connections.idle_timeout, Duration::from_secs(600));
    assert_eq!(cli.verbose, 2);
    // A repeatable flag on the command line replaces the file's list.
    let cli = parse_with(&path, &["--cors-allow-origin", "http://a.example"]).unwrap();
    assert_eq!(
        cli.config("h").browser.cors_allow_origins,
        ["http://a.example"]
    );
}

#[test]
fn subcommand_keys_apply_to_their_subcommand_and_are_left_alone_by_the_others() {
    let (_dir, path) = file("poll-interval = \"5s\"\nsample-self = true\nnode-id = \"n1\"\n");
    let cli = parse_with(&path, &["coordinator"]).unwrap();
    let Some(Command::Coordinator(args)) = &cli.command else {
        panic!("not the coordinator: {:?}", cli.command);
    };
    assert_eq!(args.poll_interval, Duration::from_secs(5));
    assert!(args.sample_self);
    assert_eq!(cli.config("h").node_id, "n1");
    // The agent ignores the coordinator's keys.
    let cli = parse_with(&path, &[]).unwrap();
    assert!(cli.command.is_none());
    assert_eq!(cli.config("h").node_id, "n1");
}

#[test]
fn a_flag_on_the_command_line_beats_a_key_it_conflicts_with() {
    let (_dir, path) = file("bind = \"0.0.0.0\"\n");
    let cli = parse_with(&path, &["--listen-on-localhost"]).unwrap();
    assert!(cli.config("h").bind.is_loopback());
    let cli = parse_with(&path, &[]).unwrap();
    assert!(cli.config("h").bind.is_unspecified());
    let (_dir, path) = file("disable-rest-api = true\n");
    let cli = parse_with(&path, &["--enable-rest-api"]).unwrap();
    assert!(cli.config("h").rest_enabled);
}

#[test]
fn bad_files_are_errors_naming_the_file_and_the_key() {
    let cases: &[(&str, &[&str], i32)] = &[
        (
            "rest_api_port = 1\n",
            &[
                "unknown key `rest_api_port`",
                "did you mean `rest-api-port`",
            ],
            2,
        ),
        (
            "bogus = 1\n",
            &["unknown key `bogus`", "long flags without `--`"],
            2,
        ),
        (
            "interval = \"soon\"\n",
            &["`interval`", "soon", "is not a duration"],
            2,
        ),
        ("rest-api-port = 70000\n", &["`rest-api-port`", "70000"], 2),
        ("sample-self = \"yes\"\n", &[], 0),
        (
            "enable-dcgm-profiling = \"yes\"\n",
            &["`enable-dcgm-profiling`", "true or false"],
            2,
        ),
        ("interval = [1, 2]\n", &["`interval`", "takes one value"], 2),
        ("node-id = 1979-05-27\n", &["`node-id`", "a date"], 2),
        ("verbose = -1\n", &["`verbose`", "a count"], 2),
        (
            "config = \"/etc/other.toml\"\n",
            &["`config`", "cannot be set"],
            2,
        ),
        (
            "interval = [\n",
            &["not valid TOML", "line 1, column 13"],
            2,
        ),
        (
            "[path]\nprocfs = 1\nbogus = 2\n",
            &["unknown key `path.bogus`"],
            2,
        ),
    ];
    for (text, expected, code) in cases {
        let (_dir, path) = file(text);
        match parse_with(&path, &[]) {
            Ok(_) => assert_eq!(*code, 0, "{text:?} was accepted"),
            Err(ParseError::File(error)) => {
                let message = error.to_string();
                assert!(message.contains(path.to_str().unwrap()), "{message}");
                for part in *expected {
                    assert!(message.contains(part), "{text:?}: {message}");
                }
                assert_eq!(error.exit_code(), *code, "{message}");
            }
            Err(other) => panic!("{text:?}: not a file error: {other}"),
        }
    }
    let missing = tempfile::tempdir().unwrap().path().join("absent.toml");
    let Err(ParseError::File(error)) = parse_with(&missing, &[]) else {
        panic!("a missing file was accepted");
    };
    assert_eq!(error.exit_code(), 1);
    assert!(error.to_string().contains("absent.toml"));
}

#[test]
fn a_key_that_breaks_a_rule_between_flags_is_clap_s_error_with_a_note() {
    let (_dir, path) = file("tls-cert = \"/etc/cert.pem\"\n");
    let Err(ParseError::Clap { error, file }) = parse_with(&path, &[]) else {
        panic!("--tls-cert without --tls-key was accepted");
    };
    assert_eq!(error.exit_code(), 2);
    assert!(error.to_string().contains("--tls-key"), "{error}");
    assert_eq!(file, Some(path));
}

#[test]
fn generators_ignore_the_config_file() {
    let (_dir, path) = file("bogus = 1\n");
    let cli = parse_with(&path, &["completions", "bash"]).unwrap();
    assert!(matches!(cli.command, Some(Command::Completions(_))));
}

#[test]
fn completions_and_manual_pages_come_from_the_same_definitions() {
    use clap::ValueEnum;
    for shell in clap_complete::Shell::value_variants() {
        let mut out = Vec::new();
        crate::cli::generate::completions(*shell, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("kubelet-pod-resources-socket") && text.contains("log-format"),
            "{shell}"
        );
    }
    let mut page = Vec::new();
    crate::cli::generate::man(None, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(".TH system_monitor 1"), "{page}");
    assert!(
        page.contains("SYSTEM_MONITOR_REST_API_PORT"),
        "variables are in the page"
    );
    let mut page = Vec::new();
    crate::cli::generate::man(Some("coordinator"), &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains(".TH system_monitor-coordinator 1"), "{page}");
    assert!(page.contains("poll\\-interval") && page.contains("rest\\-api\\-port"));
    let error = crate::cli::generate::man(Some("nope"), &mut Vec::new()).unwrap_err();
    assert!(
        error.to_string().contains("snapshot, coordinator"),
        "{error}"
    );
}
