//! node_exporter parity, measured against the real one: node_exporter 1.5 (Debian's
//! `prometheus-node-exporter`, installed by the README's test command) and our agent run on this
//! machine at once, and every metric family node_exporter's default collectors emit must be
//! emitted by ours with the same name, type and label names (ours add `node`), and the same
//! series. Values that both read from the same kernel file must agree.
//!
//! node_exporter's Go runtime families (`go_*`), its HTTP handler's (`promhttp_*`) and its build
//! info are its own business, not the host's, and are not expected from us.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::peers::{parse_exposition, strip, Family, Peer, NODE_EXPORTER_UPSTREAM_DEFAULTS};
use common::Monitor;

/// Families that describe node_exporter itself, not the host.
fn own_family(name: &str) -> bool {
    name.starts_with("go_") || name.starts_with("promhttp_") || name == "node_exporter_build_info"
}

/// Families whose series are the exporter's own and differ by design: collector names (ours are
/// not node_exporter's list), and `process_*` (each exporter's own process).
fn series_differ_by_design(name: &str) -> bool {
    name.starts_with("node_scrape_collector_") || name.starts_with("process_")
}

/// Our labels that node_exporter does not have.
const OURS: &[&str] = &["node"];

async fn exposition(url: &str) -> BTreeMap<String, Family> {
    let response = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "{url}");
    parse_exposition(&response.text().await.expect("exposition body"))
}

/// The sample time of our exposition, from `system_monitor_sample_timestamp_seconds`.
fn sample_time(families: &BTreeMap<String, Family>) -> f64 {
    families["system_monitor_sample_timestamp_seconds"].samples[0].1
}

#[tokio::test(flavor = "multi_thread")]
async fn every_node_exporter_family_is_ours_with_the_same_type_labels_and_series() {
    let theirs_peer = Peer::node_exporter(NODE_EXPORTER_UPSTREAM_DEFAULTS);
    let agent = Monitor::start::<&str>(&[]);
    let theirs = exposition(&theirs_peer.url("/metrics")).await;
    let ours = exposition(&agent.url("/metrics")).await;

    let mut problems = Vec::new();
    for (name, family) in theirs.iter().filter(|(n, _)| !own_family(n)) {
        let Some(mine) = ours.get(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if mine.kind != family.kind {
            problems.push(format!(
                "{name}: type {} (theirs {})",
                mine.kind, family.kind
            ));
        }
        let (their_labels, my_labels) = (family.label_names(&[]), mine.label_names(OURS));
        if their_labels != my_labels {
            problems.push(format!(
                "{name}: labels {my_labels:?} (theirs {their_labels:?})"
            ));
            continue;
        }
        if series_differ_by_design(name) {
            continue;
        }
        let series = |f: &Family, without: &[&str]| -> BTreeSet<BTreeMap<String, String>> {
            f.samples.iter().map(|(l, _)| strip(l, without)).collect()
        };
        let (their_series, my_series) = (series(family, &[]), series(mine, OURS));
        if their_series != my_series {
            let only_theirs: Vec<_> = their_series.difference(&my_series).collect();
            let only_mine: Vec<_> = my_series.difference(&their_series).collect();
            problems.push(format!(
                "{name}: series only theirs {only_theirs:?}, only ours {only_mine:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences from node_exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Counters are compared by bracketing: ours before node_exporter's scrape, ours from a sample
/// taken after it. A counter read from the same kernel file must lie between the two. Info
/// metrics (value 1, the facts in the labels) and the gauges that cannot move while the test runs
/// must be equal.
#[tokio::test(flavor = "multi_thread")]
async fn values_read_from_the_same_kernel_files_agree() {
    let theirs_peer = Peer::node_exporter(NODE_EXPORTER_UPSTREAM_DEFAULTS);
    let agent = Monitor::start::<&str>(&[]);

    let before = exposition(&agent.url("/metrics")).await;
    let scraped_at = now_seconds();
    let theirs = exposition(&theirs_peer.url("/metrics")).await;
    let scraped_until = now_seconds();
    let after = common::cluster::eventually(
        "a sample taken after node_exporter's scrape",
        common::cluster::DEADLINE,
        || async {
            let ours = exposition(&agent.url("/metrics")).await;
            if sample_time(&ours) > scraped_until {
                Ok(ours)
            } else {
                Err(format!("sample at {}", sample_time(&ours)))
            }
        },
    )
    .await;
    assert!(sample_time(&before) <= scraped_at);

    let mut compared = 0;
    let mut families_compared = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, family) in theirs.iter().filter(|(n, _)| !own_family(n)) {
        if series_differ_by_design(name) {
            continue;
        }
        let (Some(low), Some(high)) = (before.get(name), after.get(name)) else {
            continue; // the parity test reports missing families
        };
        let monotonic = family.kind == "counter" || is_kernel_counter(name);
        let fixed = name.ends_with("_info") || FIXED_GAUGES.contains(&name.as_str());
        if !monotonic && !fixed {
            continue;
        }
        for (labels, value) in &family.samples {
            let (Some(lo), Some(hi)) = (low.value(labels, OURS), high.value(labels, OURS)) else {
                continue; // the parity test reports missing series
            };
            compared += 1;
            families_compared.insert(name.as_str());
            // The same reading can differ in its last bit: node_exporter scales microseconds
            // as `v * 1e-6` (27.844134999999998), we as `v / 1e6` (27.844135).
            let slack = value.abs().max(1.0) * 1e-12;
            let ok = if monotonic {
                lo <= value + slack && *value <= hi + slack
            } else {
                (lo - value).abs() <= slack && (hi - value).abs() <= slack
            };
            if !ok {
                problems.push(format!(
                    "{name}{labels:?}: node_exporter {value}, ours {lo} before and {hi} after"
                ));
            }
        }
    }
    // The comparison must have reached one family of each kind of kernel file.
    let required = [
        "node_cpu_seconds_total",
        "node_context_switches_total",
        "node_disk_read_bytes_total",
        "node_network_receive_bytes_total",
        "node_netstat_Tcp_InSegs",
        "node_vmstat_pgfault",
        "node_softnet_processed_total",
        "node_memory_MemTotal_bytes",
        "node_filesystem_size_bytes",
        "node_uname_info",
        "node_os_info",
        "node_network_info",
        "node_time_clocksource_current_info",
    ];
    let missed: Vec<_> = required
        .iter()
        .filter(|f| !families_compared.contains(*f))
        .collect();
    assert!(missed.is_empty(), "never compared: {missed:?}");
    assert!(
        problems.is_empty(),
        "{} of {compared} values disagree:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Untyped families node_exporter copies from counters in the kernel's files.
fn is_kernel_counter(name: &str) -> bool {
    (name.starts_with("node_netstat_")
        && !name.ends_with("_CurrEstab")
        && !name.ends_with("Ip_Forwarding"))
        || name.starts_with("node_vmstat_")
}

/// Gauges that stay put while the test runs.
const FIXED_GAUGES: &[&str] = &[
    "node_boot_time_seconds",
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_readonly",
    "node_network_mtu_bytes",
    "node_network_speed_bytes",
    "node_network_iface_id",
    "node_network_protocol_type",
    "node_cpu_scaling_frequency_min_hertz",
    "node_cpu_scaling_frequency_max_hertz",
    "node_os_version",
    "node_filefd_maximum",
    "node_entropy_pool_size_bits",
    "node_nf_conntrack_entries_limit",
    "node_selinux_enabled",
    "node_time_zone_offset_seconds",
];

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
