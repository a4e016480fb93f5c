use super::*;

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
        timestamp_ms: None,
    }
}

fn error_of(text: &str) -> ParseError {
    parse(text).expect_err(text)
}

#[test]
fn a_node_exporter_textfile_parses_into_its_families() {
    let text = "# HELP node_apt_upgrades_pending Apt packages pending updates by origin.\n\
                # TYPE node_apt_upgrades_pending gauge\n\
                node_apt_upgrades_pending{arch=\"amd64\",origin=\"Debian:bookworm-security\"} 2\n\
                node_apt_upgrades_pending{arch=\"all\",origin=\"Debian:bookworm\"} 1\n\
                \n\
                # a plain comment\n\
                node_reboot_required 0\n";
    let families = parse(text).unwrap();
    assert_eq!(
        families,
        [
            MetricFamily {
                name: "node_apt_upgrades_pending".into(),
                help: Some("Apt packages pending updates by origin.".into()),
                kind: MetricType::Gauge,
                samples: vec![
                    sample(
                        "node_apt_upgrades_pending",
                        &[("arch", "amd64"), ("origin", "Debian:bookworm-security")],
                        2.0
                    ),
                    sample(
                        "node_apt_upgrades_pending",
                        &[("arch", "all"), ("origin", "Debian:bookworm")],
                        1.0
                    ),
                ],
            },
            MetricFamily {
                name: "node_reboot_required".into(),
                help: None,
                kind: MetricType::Untyped,
                samples: vec![sample("node_reboot_required", &[], 0.0)],
            },
        ]
    );
}

#[test]
fn escapes_blanks_special_values_and_timestamps() {
    let text = "# HELP m A \\\\ backslash,\\na newline and \"quotes\".\n\
                \t m { a = \"x\\\\y\\\"z\\nw\" , b=\"\" , } +Inf 1700000000000\n\
                m{a=\"2\"}-Inf\n\
                m{a=\"3\"} NaN\r\n\
                m{a=\"4\"} 1.5e-3 -5\n";
    let families = parse(text).unwrap();
    let m = &families[0];
    assert_eq!(
        m.help.as_deref(),
        Some("A \\ backslash,\na newline and \"quotes\".")
    );
    assert_eq!(
        m.samples[0].labels,
        [
            ("a".to_string(), "x\\y\"z\nw".to_string()),
            ("b".to_string(), String::new())
        ]
    );
    assert_eq!(m.samples[0].value, f64::INFINITY);
    assert_eq!(m.samples[0].timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(m.samples[1].value, f64::NEG_INFINITY);
    assert!(m.samples[2].value.is_nan());
    assert_eq!(m.samples[3].value, 1.5e-3);
    assert_eq!(m.samples[3].timestamp_ms, Some(-5));
}

#[test]
fn summaries_and_histograms_gather_their_suffixed_samples() {
    let text = "# TYPE rpc_seconds summary\n\
                rpc_seconds{quantile=\"0.5\"} 0.1\n\
                rpc_seconds_sum 7\n\
                rpc_seconds_count 70\n\
                # TYPE size_bytes histogram\n\
                size_bytes_bucket{le=\"1024\"} 3\n\
                size_bytes_bucket{le=\"+Inf\"} 4\n\
                size_bytes_sum 5000\n\
                size_bytes_count 4\n\
                other_count 1\n";
    let families = parse(text).unwrap();
    let names: Vec<(&str, MetricType, usize)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind, f.samples.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("rpc_seconds", MetricType::Summary, 3),
            ("size_bytes", MetricType::Histogram, 4),
            ("other_count", MetricType::Untyped, 1),
        ]
    );
    assert_eq!(families[1].samples[2].name, "size_bytes_sum");
}

#[test]
fn samples_written_apart_join_their_family_and_empty_families_are_dropped() {
    let text = "# TYPE a counter\na_x 1\n# HELP unused Never sampled.\nb 2\na 3\n";
    let families = parse(text).unwrap();
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    // `a` was declared first, so it comes first; `a_x` is its own family (a counter adds no
    // suffix), and `unused` has no sample.
    assert_eq!(names, ["a", "a_x", "b"]);
    assert_eq!(families[0].samples.len(), 1);
    assert_eq!(families[0].kind, MetricType::Counter);
}

#[test]
fn type_words_are_read_in_any_case() {
    let families = parse("# TYPE g GAUGE\ng 1\n").unwrap();
    assert_eq!(families[0].kind, MetricType::Gauge);
}

#[test]
fn what_expfmt_refuses_is_refused_with_its_line() {
    let cases = [
        ("ok 1\n# HELP ok a\n# HELP ok b\n", 3, "second HELP"),
        ("# TYPE t gauge\n# TYPE t counter\n", 2, "second TYPE"),
        ("t 1\n# TYPE t gauge\n", 2, "before the first sample"),
        ("# TYPE t meter\n", 1, "unknown metric type"),
        ("# HELP 1abc x\n", 1, "invalid metric name"),
        ("1abc 1\n", 1, "invalid metric name"),
        ("m\n", 1, "no value"),
        ("m one\n", 1, "invalid value"),
        ("m 1 2 3\n", 1, "after the value"),
        ("m 1 1.5\n", 1, "invalid timestamp"),
        ("m{a=\"1\",a=\"2\"} 1\n", 1, "duplicate label"),
        ("m{__name__=\"x\"} 1\n", 1, "reserved"),
        ("m{a=1} 1\n", 1, "expected '\"'"),
        ("m{a=\"1\" b=\"2\"} 1\n", 1, "expected ','"),
        ("m{a=\"x\\t\"} 1\n", 1, "invalid escape"),
        ("m{a=\"open} 1\n", 1, "unterminated"),
        ("m{1a=\"x\"} 1\n", 1, "invalid label name"),
        ("# HELP m bad \\t escape\n", 1, "invalid escape"),
        ("# TYPE s summary\ns 1\n", 2, "quantile"),
        ("# TYPE h histogram\nh_bucket 1\n", 2, "\"le\""),
        (
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
            2,
            "not a number",
        ),
        ("# TYPE h histogram\nh 1\n", 2, "needs a suffix"),
    ];
    for (text, line, message) in cases {
        let error = error_of(text);
        assert_eq!(error.line, line, "{text:?}: {error}");
        assert!(
            error.message.contains(message),
            "{text:?}: {error} lacks {message:?}"
        );
    }
}

#[test]
fn empty_and_comment_only_texts_have_no_families() {
    assert_eq!(parse("").unwrap(), []);
    assert_eq!(parse("\n\n# just a comment\n# HELP x y\n").unwrap(), []);
}

#[test]
fn names_follow_the_data_model() {
    assert!(is_metric_name("node_cpu:rate5m"));
    assert!(is_metric_name("_x"));
    assert!(!is_metric_name("9x"));
    assert!(!is_metric_name("a-b"));
    assert!(!is_metric_name(""));
    assert!(is_label_name("le"));
    assert!(!is_label_name("a:b"));
}

#[test]
fn series_keys_sort_labels_and_escape_values() {
    let labels = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(series_key("up", &[]), "up");
    assert_eq!(
        series_key("jobs", &labels(&[("z", "1"), ("a", "x\"y\\z\nw")])),
        r#"jobs{a="x\"y\\z\nw",z="1"}"#
    );
    let families = parse("a 1\nb{k=\"v\"} NaN\nc{x=\"1\"} 2\n").unwrap();
    let shared: Vec<std::sync::Arc<ForeignFamily>> = families
        .into_iter()
        .map(|family| {
            std::sync::Arc::new(ForeignFamily {
                family,
                source: "test".into(),
            })
        })
        .collect();
    let custom = custom_series(&shared);
    assert_eq!(
        custom.into_iter().collect::<Vec<_>>(),
        [("a".to_string(), 1.0), (r#"c{x="1"}"#.to_string(), 2.0)]
    );
}
