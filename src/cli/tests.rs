//! Tests of `cli`.

use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn tracklab_launcher_flags_are_accepted() {
    let cli = Cli::try_parse_from([
        "system_monitor",
        "--portfile",
        "/tmp/p",
        "--enable-rest-api",
        "--rest-api-port",
        "9090",
        "--listen-on-localhost",
        "--node-id",
        "worker-01",
        "--enable-dcgm-profiling",
        "--parent-pid",
        "42",
        "-v",
    ])
    .unwrap();
    let config = cli.config("host");
    assert_eq!(config.node_id, "worker-01");
    assert_eq!(config.node_id_origin, NodeIdOrigin::Flag);
    assert_eq!(config.rest_port, 9090);
    assert_eq!(config.parent_pid, Some(42));
    assert!(config.is_child());
    assert!(config.collect.enable_dcgm_profiling);
    assert_eq!(cli.verbose, 1);
    assert!(config.bind.is_loopback());
}

#[test]
fn without_node_id_the_hostname_names_the_node_and_the_config_says_so() {
    let cli = Cli::try_parse_from([
        "system_monitor",
        "--portfile",
        "/tmp/p",
        "--rest-api-port",
        "8888",
        "--verbose",
    ])
    .unwrap();
    let config = cli.config("my host");
    assert_eq!(config.node_id, "my-host");
    assert_eq!(config.node_id_origin, NodeIdOrigin::Hostname);
    // Given, even when it is the hostname: the node is named.
    let cli = Cli::try_parse_from(["system_monitor", "--node-id", "my-host"]).unwrap();
    assert_eq!(cli.config("my-host").node_id_origin, NodeIdOrigin::Flag);
}

#[test]
fn snapshot_takes_collector_flags() {
    let cli =
        Cli::try_parse_from(["system_monitor", "snapshot", "--path.procfs", "/host/proc"]).unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::Snapshot(SnapshotArgs {
            format: SnapshotFormat::Json
        }))
    ));
    assert_eq!(
        cli.config("h").collect.paths.procfs,
        PathBuf::from("/host/proc")
    );
}

#[test]
fn bad_values_are_rejected() {
    for args in [
        &["system_monitor", "--rest-api-port", "70000"][..],
        &["system_monitor", "--interval", "0"],
        &["system_monitor", "--node-id", "a/b"],
        &[
            "system_monitor",
            "--collector.diskstats.device-exclude",
            "(",
        ],
        &["system_monitor", "--no-such-flag"],
        &["system_monitor", "--dcgm-address", "gpu-host:99999"],
        &["system_monitor", "--dcgm-address", "unix:"],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn coordinator_flags() {
    let cli = Cli::try_parse_from([
        "system_monitor",
        "coordinator",
        "--agents",
        "http://10.0.0.1:8080,http://10.0.0.2:8080",
        "--agents",
        "https://node-3:8443",
        "--discover-dns",
        "agents.monitoring.svc.cluster.local:8080",
        "--dns-server",
        "10.96.0.10:53",
        "--poll-interval",
        "2s",
        "--allow-register-cidr",
        "10.0.0.0/8",
        "--allow-register-cidr",
        "fd00::1",
        "--sample-self",
        // Serving and security flags are global: they follow the subcommand.
        "--rest-api-port",
        "9000",
        "--bind",
        "0.0.0.0",
        "--auth-token-file",
        "/etc/token",
        "--cluster-token-file",
        "/etc/cluster-token",
        "--node-id",
        "coord",
    ])
    .unwrap();
    let Some(Command::Coordinator(args)) = &cli.command else {
        panic!("not the coordinator: {:?}", cli.command);
    };
    let c = args.config();
    assert_eq!(c.agents.len(), 3);
    assert_eq!(
        c.dns_names,
        [("agents.monitoring.svc.cluster.local".to_string(), 8080)]
    );
    assert_eq!(c.dns_server, Some("10.96.0.10:53".parse().unwrap()));
    assert_eq!(c.poll_interval, Duration::from_secs(2));
    assert_eq!(c.offline_after, Duration::from_secs(6), "3 poll intervals");
    assert_eq!(c.poll_timeout, Duration::from_secs(2));
    assert_eq!((c.poll_concurrency, c.max_nodes), (512, 20_000));
    assert_eq!(c.allow_register_cidrs.len(), 2);
    assert!(c.sample_self);
    let config = cli.config("h");
    assert_eq!(config.rest_port, 9000);
    assert_eq!(config.node_id, "coord");
    assert_eq!(config.auth_token_file, Some(PathBuf::from("/etc/token")));
    assert_eq!(
        config.cluster_token_file,
        Some(PathBuf::from("/etc/cluster-token"))
    );
    assert!(config.register.is_none());
}

#[test]
fn agent_registration_flags() {
    let cli = Cli::try_parse_from([
        "system_monitor",
        "--coordinator",
        "http://coordinator:9000",
        "--node-label",
        "rack=r1",
        "--node-label",
        "gpu=h100",
        "--register-interval",
        "5s",
        "--cluster-token-file",
        "/etc/cluster-token",
    ])
    .unwrap();
    let config = cli.config("h");
    assert_eq!(
        config.cluster_token_file,
        Some(PathBuf::from("/etc/cluster-token"))
    );
    assert_eq!(config.auth_token_file, None);
    let register = config.register.unwrap();
    assert_eq!(register.coordinator, "http://coordinator:9000");
    assert_eq!(register.advertise_url, None);
    assert_eq!(
        register.labels,
        [("rack".into(), "r1".into()), ("gpu".into(), "h100".into())]
    );
    assert_eq!(config.register_interval, Duration::from_secs(5));
}

#[test]
fn bad_cluster_values_are_rejected() {
    for args in [
        &[
            "system_monitor",
            "coordinator",
            "--agents",
            "ftp://10.0.0.1",
        ][..],
        &["system_monitor", "coordinator", "--agents", "not a url"],
        &["system_monitor", "coordinator", "--discover-dns", "agents"],
        &[
            "system_monitor",
            "coordinator",
            "--discover-dns",
            "agents:0",
        ],
        &["system_monitor", "coordinator", "--discover-dns", "a b:80"],
        &[
            "system_monitor",
            "coordinator",
            "--allow-register-cidr",
            "10.0.0.0/33",
        ],
        &["system_monitor", "coordinator", "--poll-concurrency", "0"],
        &["system_monitor", "coordinator", "--dns-server", "resolver"],
        &["system_monitor", "--coordinator", "gopher://x"],
        &["system_monitor", "--node-label", "a=b"],
        &[
            "system_monitor",
            "--coordinator",
            "http://c",
            "--node-label",
            "nolabel",
        ],
        &[
            "system_monitor",
            "--coordinator",
            "http://c",
            "--node-label",
            "a/b=c",
        ],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn tls_flags_go_together_before_and_after_the_subcommand() {
    let cli = Cli::try_parse_from([
        "system_monitor",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--tls-ca",
        "ca.pem",
    ])
    .unwrap();
    let tls = cli.config("h").tls;
    let identity = tls.identity.unwrap();
    assert_eq!(identity.cert, PathBuf::from("c.pem"));
    assert_eq!(identity.key, PathBuf::from("k.pem"));
    assert_eq!(tls.ca, Some(PathBuf::from("ca.pem")));

    let cli = Cli::try_parse_from([
        "system_monitor",
        "coordinator",
        "--tls-ca",
        "ca.pem",
        "--tls-key",
        "k.pem",
        "--tls-cert",
        "c.pem",
    ])
    .unwrap();
    assert!(cli.config("h").tls.identity.is_some());

    let cli = Cli::try_parse_from(["system_monitor", "--tls-ca", "ca.pem"]).unwrap();
    let tls = cli.config("h").tls;
    assert!(tls.identity.is_none(), "a CA alone serves no TLS");
    assert!(Cli::try_parse_from(["system_monitor"])
        .unwrap()
        .config("h")
        .tls
        .ca
        .is_none());

    for args in [
        &["system_monitor", "--tls-cert", "c.pem"][..],
        &["system_monitor", "--tls-key", "k.pem"],
        &["system_monitor", "coordinator", "--tls-cert", "c.pem"],
        &["system_monitor", "coordinator", "--tls-key", "k.pem"],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn browser_flags_before_and_after_the_subcommand() {
    let cli = Cli::try_parse_from(["system_monitor"]).unwrap();
    let browser = cli.config("h").browser;
    assert!(browser.cors_allow_origins.is_empty(), "no CORS by default");
    assert!(browser.allowed_hosts.is_empty());

    let cli = Cli::try_parse_from([
        "system_monitor",
        "--cors-allow-origin",
        "http://localhost:3000",
        "--cors-allow-origin",
        "HTTPS://UI.Example:443",
        "--allowed-host",
        "Node1.Lab.",
        "--allowed-host",
        "[fd00::1]",
        "--allowed-host",
        "10.0.0.5",
    ])
    .unwrap();
    let browser = cli.config("h").browser;
    // As browsers send Origin: lowercase, no default port.
    assert_eq!(
        browser.cors_allow_origins,
        ["http://localhost:3000", "https://ui.example"]
    );
    assert_eq!(browser.allowed_hosts, ["node1.lab", "fd00::1", "10.0.0.5"]);

    let cli = Cli::try_parse_from([
        "system_monitor",
        "coordinator",
        "--cors-allow-origin",
        "http://127.0.0.1:8000",
        "--allowed-host",
        "coordinator.lab",
    ])
    .unwrap();
    let browser = cli.config("h").browser;
    assert_eq!(browser.cors_allow_origins, ["http://127.0.0.1:8000"]);
    assert_eq!(browser.allowed_hosts, ["coordinator.lab"]);
}

#[test]
fn bad_browser_values_are_rejected() {
    for origin in [
        "*",
        "null",
        "localhost:3000",
        "http://localhost:3000/",
        "http://localhost:3000/app",
        "http://localhost:3000?x",
        "http://u@localhost:3000",
        "file:///tmp/x",
    ] {
        let err = Cli::try_parse_from(["system_monitor", "--cors-allow-origin", origin]);
        assert_eq!(err.unwrap_err().exit_code(), 2, "{origin}");
    }
    for host in [
        "",
        "a b",
        "node:8080",
        "http://node",
        "a..b",
        "*.lab",
        "[node]",
    ] {
        let err = Cli::try_parse_from(["system_monitor", "--allowed-host", host]);
        assert_eq!(err.unwrap_err().exit_code(), 2, "{host:?}");
    }
}

#[test]
fn urls_with_port_0_or_unusable_advertised_urls_are_rejected() {
    for args in [
        &["system_monitor", "--coordinator", "http://10.0.0.1:0"][..],
        &[
            "system_monitor",
            "coordinator",
            "--agents",
            "http://10.0.0.1:0",
        ],
        &[
            "system_monitor",
            "--coordinator",
            "http://c:9000",
            "--advertise-url",
            "http://10.0.0.2:0",
        ],
        &[
            "system_monitor",
            "--coordinator",
            "http://c:9000",
            "--advertise-url",
            "http://10.0.0.2:8080/metrics",
        ],
        &[
            "system_monitor",
            "--coordinator",
            "http://c:9000",
            "--advertise-url",
            "http://0.0.0.0:8080",
        ],
    ] {
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
    let err = Cli::try_parse_from(["system_monitor", "--coordinator", "http://10.0.0.1:0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("port 0"), "{err}");
    let cli = Cli::try_parse_from([
        "system_monitor",
        "--coordinator",
        "http://c:9000",
        "--advertise-url",
        "https://10.0.0.2:8443/",
    ])
    .unwrap();
    let register = cli.config("h").register.unwrap();
    assert_eq!(
        register.advertise_url.as_deref(),
        Some("https://10.0.0.2:8443/")
    );
}

#[test]
fn top_reads_the_local_agent_unless_given_a_url() {
    let options = |args: &[&str]| {
        let cli = Cli::try_parse_from(args).unwrap();
        let Some(Command::Top(top)) = &cli.command else {
            panic!("not top: {:?}", cli.command);
        };
        top.options(cli.serve.rest_api_port, &cli.cluster)
    };
    let local = options(&["system_monitor", "top"]);
    assert_eq!(local.url, "http://127.0.0.1:8080");
    assert_eq!(local.refresh, Duration::from_secs(1));
    let port = options(&["system_monitor", "top", "--rest-api-port", "9100"]);
    assert_eq!(port.url, "http://127.0.0.1:9100");
    let given = options(&[
        "system_monitor",
        "top",
        "--url",
        "https://coordinator:9000",
        "--refresh",
        "500ms",
        "--auth-token-file",
        "/etc/token",
        "--tls-ca",
        "/etc/ca.pem",
    ]);
    assert_eq!(given.url, "https://coordinator:9000");
    assert_eq!(given.refresh, Duration::from_millis(500));
    assert_eq!(given.auth_token_file, Some(PathBuf::from("/etc/token")));
    assert_eq!(given.tls_ca, Some(PathBuf::from("/etc/ca.pem")));
    assert!(Cli::try_parse_from(["system_monitor", "top", "--url", "ftp://x"]).is_err());
}
