//! The dashboards people already run, evaluated by a real Prometheus (Debian's `prometheus`,
//! installed by the README's test command) that scrapes node_exporter and our agents:
//!
//! - every query of "Node Exporter Full" (`tests/fixtures/dashboards/node-exporter-full.promql`)
//!   that node_exporter's job answers is answered for our job too, with the host chosen the way
//!   the dashboard chooses it: `label_values(node_uname_info{job="$job"}, nodename)`, then the
//!   instance of that nodename;
//! - every query of NVIDIA's dcgm-exporter dashboard (`dcgm-exporter.promql`) is answered for an
//!   agent on the fake NVML and the fake DCGM, its hosts listed by
//!   `label_values(DCGM_FI_DEV_GPU_TEMP, instance)` and its GPUs by `gpu`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use common::cluster::eventually;
use common::fakes::fake_library;
use common::peers::{Peer, NODE_EXPORTER_UPSTREAM_DEFAULTS};
use common::{repo_dir, Monitor};

/// Scrape interval: short, so that rates have points within a minute.
const SCRAPE: &str = "1s";
/// What the tests give Grafana's `$__rate_interval` (and friends): many scrapes long.
const RATE_INTERVAL: &str = "1m";
/// How long Prometheus may take to have enough scrapes of every job on a loaded machine.
const WARM_UP: Duration = Duration::from_secs(90);

/// A Prometheus scraping the given `(job, port)` targets on 127.0.0.1 every [`SCRAPE`].
fn prometheus(jobs: &[(&str, u16)]) -> Peer {
    let mut config = format!(
        "global:\n  scrape_interval: {SCRAPE}\n  scrape_timeout: {SCRAPE}\nscrape_configs:\n"
    );
    for (job, port) in jobs {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
    }
    Peer::prometheus(&config)
}

/// The result of an instant query, or the error Prometheus gave.
async fn query(prometheus: &Peer, promql: &str) -> Result<Vec<Value>, String> {
    let response = reqwest::Client::new()
        .post(prometheus.url("/api/v1/query"))
        .form(&[("query", promql)])
        .send()
        .await
        .map_err(|e| format!("query {promql}: {e}"))?;
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("query {promql}: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("query {promql}: {body}"));
    }
    let data = &body["data"];
    Ok(match data["resultType"].as_str() {
        Some("vector" | "matrix") => data["result"].as_array().cloned().unwrap_or_default(),
        // A scalar answers unless it is NaN (Grafana shows "No data" for that too).
        Some("scalar") if data["result"][1] != "NaN" => vec![data["result"].clone()],
        _ => Vec::new(),
    })
}

/// Grafana's `label_values(selector, label)`: the values of `label` among the series of
/// `selector` Prometheus holds now.
async fn label_values(prometheus: &Peer, selector: &str, label: &str) -> BTreeSet<String> {
    let series = query(prometheus, &format!("group by ({label}) ({selector})"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.stderr()));
    series
        .iter()
        .filter_map(|s| s["metric"][label].as_str().map(str::to_string))
        .collect()
}

/// Waits until Prometheus holds at least five scrapes of every job in `jobs`, all up.
async fn wait_for_scrapes(prometheus: &Peer, jobs: &[&str]) {
    for job in jobs {
        let promql = format!("count_over_time(up{{job=\"{job}\"}}[{RATE_INTERVAL}]) >= 5 and up{{job=\"{job}\"}} == 1");
        eventually(&format!("five good scrapes of {job}"), WARM_UP, || async {
            match query(prometheus, &promql).await {
                Ok(result) if !result.is_empty() => Ok(()),
                Ok(_) => Err("not yet".to_string()),
                Err(e) => Err(e),
            }
        })
        .await;
    }
}

/// The queries of a dashboard file: one per line, `#` lines and blank lines left out.
fn dashboard(name: &str) -> Vec<String> {
    let path = repo_dir().join("tests/fixtures/dashboards").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `promql` with Grafana's variables replaced: `vars` first, then the interval ones.
fn substitute(promql: &str, vars: &[(&str, &str)]) -> String {
    let mut text = promql.to_string();
    // Longest names first: `$node` must not eat the start of `$nodename`.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in vars {
        text = text.replace(&format!("${{{name}}}"), value);
        text = text.replace(&format!("${name}"), value);
    }
    for interval in ["$__rate_interval", "$__interval", "$__range"] {
        text = text.replace(interval, RATE_INTERVAL);
    }
    assert!(!text.contains('$'), "a variable left in {text}");
    text
}

/// The host variables of Node Exporter Full for `job`: its only nodename, and that nodename's
/// instance.
async fn node_exporter_full_host(prometheus: &Peer, job: &str) -> (String, String) {
    let nodenames = label_values(
        prometheus,
        &format!("node_uname_info{{job=\"{job}\"}}"),
        "nodename",
    )
    .await;
    assert_eq!(nodenames.len(), 1, "{job}: nodenames {nodenames:?}");
    let nodename = nodenames.into_iter().next().unwrap_or_default();
    let instances = label_values(
        prometheus,
        &format!("node_uname_info{{job=\"{job}\",nodename=\"{nodename}\"}}"),
        "instance",
    )
    .await;
    assert_eq!(instances.len(), 1, "{job}: instances {instances:?}");
    (nodename, instances.into_iter().next().unwrap_or_default())
}

/// The queries of `queries` that answer for `job`'s host.
async fn answered(prometheus: &Peer, queries: &[String], job: &str) -> BTreeSet<String> {
    let (nodename, instance) = node_exporter_full_host(prometheus, job).await;
    let vars = [
        ("job", job),
        ("nodename", nodename.as_str()),
        ("node", instance.as_str()),
        ("diskdevices", "[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+"),
    ];
    let mut answered = BTreeSet::new();
    for promql in queries {
        let text = substitute(promql, &vars);
        match query(prometheus, &text).await {
            Ok(result) if !result.is_empty() => {
                answered.insert(promql.clone());
            }
            Ok(_) => {}
            Err(e) => panic!("{job}: {e}"),
        }
    }
    answered
}

#[tokio::test(flavor = "multi_thread")]
async fn node_exporter_full_answers_for_our_job_wherever_it_does_for_node_exporter() {
    let node_exporter = Peer::node_exporter(NODE_EXPORTER_UPSTREAM_DEFAULTS);
    let agent = Monitor::start::<&str>(&[]);
    let prometheus = prometheus(&[
        ("node", node_exporter.port),
        ("system-monitor", agent.rest_port),
    ]);
    wait_for_scrapes(&prometheus, &["node", "system-monitor"]).await;

    let queries = dashboard("node-exporter-full.promql");
    let theirs = answered(&prometheus, &queries, "node").await;
    let ours = answered(&prometheus, &queries, "system-monitor").await;
    // The test means something only if node_exporter answers most of the dashboard here.
    assert!(
        theirs.len() * 10 >= queries.len() * 8,
        "node_exporter answers only {} of {} queries; the Prometheus setup is wrong:\n{}",
        theirs.len(),
        queries.len(),
        queries
            .iter()
            .filter(|q| !theirs.contains(*q))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let missing: Vec<_> = theirs.difference(&ours).cloned().collect();
    assert!(
        missing.is_empty(),
        "{} of the {} queries node_exporter answers get no data for our job:\n{}",
        missing.len(),
        theirs.len(),
        missing.join("\n")
    );
    eprintln!(
        "Node Exporter Full: {} queries, node_exporter answers {}, we answer {}",
        queries.len(),
        theirs.len(),
        ours.len()
    );
}

/// A configuration file for a fake vendor library, in `dir`.
fn fake_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a fake's configuration");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn dcgm_exporter_dashboard_answers_for_an_agent_on_fake_nvml_and_dcgm() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let nvml_config = fake_config(dir.path(), "nvml", "devices=2\n");
    let dcgm_config = fake_config(
        dir.path(),
        "dcgm",
        // The fake NVML's UUIDs, so that DCGM's GPUs are matched to NVML's.
        "gpus=2\nuuid.0=GPU-00000000-fake-4000-8000-000000000000\n\
         uuid.1=GPU-00000001-fake-4000-8000-000000000001\n",
    );
    let nvml = fake_library("fake_nvml").to_string_lossy().into_owned();
    let dcgm = fake_library("fake_dcgm").to_string_lossy().into_owned();
    let agent = Monitor::start_with_env(
        &[
            "--nvml-library",
            &nvml,
            "--enable-dcgm-profiling",
            "--dcgm-library",
            &dcgm,
        ],
        &[
            ("FAKE_NVML_CONFIG", nvml_config.as_path()),
            ("FAKE_DCGM_CONFIG", dcgm_config.as_path()),
        ],
    );
    let prometheus = prometheus(&[("gpu", agent.rest_port)]);
    wait_for_scrapes(&prometheus, &["gpu"]).await;

    let instances = label_values(&prometheus, "DCGM_FI_DEV_GPU_TEMP", "instance").await;
    let instance = format!("127.0.0.1:{}", agent.rest_port);
    assert_eq!(
        instances,
        BTreeSet::from([instance.clone()]),
        "the dashboard's host list"
    );
    let gpus = label_values(
        &prometheus,
        &format!("DCGM_FI_DEV_GPU_TEMP{{instance=\"{instance}\"}}"),
        "gpu",
    )
    .await;
    assert_eq!(
        gpus,
        BTreeSet::from(["0".to_string(), "1".to_string()]),
        "the dashboard's GPU list"
    );

    // Grafana's "All" for a multi-value variable: the values joined as a regex.
    let all_gpus = gpus.iter().cloned().collect::<Vec<_>>().join("|");
    let mut unanswered = Vec::new();
    for promql in dashboard("dcgm-exporter.promql") {
        let text = substitute(&promql, &[("instance", &instance), ("gpu", &all_gpus)]);
        let result = query(&prometheus, &text)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Every panel draws one line per GPU (or one aggregate).
        let per_gpu: BTreeSet<_> = result
            .iter()
            .filter_map(|s| s["metric"]["gpu"].as_str().map(str::to_string))
            .collect();
        if result.is_empty() || (!per_gpu.is_empty() && per_gpu != gpus) {
            unanswered.push(format!("{promql} → {result:?}"));
        }
    }
    assert!(
        unanswered.is_empty(),
        "dcgm-exporter dashboard queries without data for both GPUs:\n{}\nagent log:\n{}",
        unanswered.join("\n"),
        agent.stderr()
    );
}
