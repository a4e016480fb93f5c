//! Tests of `serve::openapi`: the documents are whole, and every field the encoders write is
//! described (a field added to the wire types without its schema fails here, before
//! schemathesis runs against a server).

use super::*;
use serde_json::Value;

use crate::model::wire::{Info, NodeMetrics};
use crate::model::{self, Snapshot};

fn doc(api: Api) -> Value {
    let bytes = document(api)
        .as_ref()
        .expect("the embedded document is valid JSON");
    serde_json::from_slice(bytes).expect("JSON")
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match item {
                    Value::String(target) if key == "$ref" => out.push(target),
                    other => refs(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

/// The value at a local reference `#/a/b`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[test]
fn both_documents_are_whole_with_local_references() {
    for api in [Api::Agent, Api::Coordinator] {
        let doc = doc(api);
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            assert!(
                resolve(&doc, reference).is_some(),
                "{api:?}: {reference} resolves to nothing"
            );
        }
        // Every path lists its errors and describes its success.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let responses = operation["responses"].as_object().expect("responses");
                // 101: a WebSocket path's success is the upgrade.
                assert!(
                    responses.contains_key("200") || responses.contains_key("101"),
                    "{api:?} {method} {path}"
                );
                for status in ["403", "405", "414", "431"] {
                    assert!(
                        responses.contains_key(status),
                        "{api:?} {method} {path} {status}"
                    );
                }
            }
        }
    }
    let agent = doc(Api::Agent);
    let coordinator = doc(Api::Coordinator);
    assert!(coordinator["paths"]["/api/cluster/register"]["post"].is_object());
    // Every route of each router (serve::rest::router, coordinator::api::router), and no other.
    let paths = |doc: &Value| -> Vec<String> {
        let mut paths: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        paths.sort();
        paths
    };
    assert_eq!(
        paths(&agent),
        [
            "/",
            "/api/health",
            "/api/openapi.json",
            "/api/system/history",
            "/api/system/info",
            "/api/system/metrics",
            "/api/system/stream",
            "/api/system/ws",
            "/metrics",
        ]
    );
    assert_eq!(
        paths(&coordinator),
        [
            "/",
            "/api/cluster/history",
            "/api/cluster/info",
            "/api/cluster/register",
            "/api/health",
            "/api/openapi.json",
            "/api/system/history",
            "/api/system/info",
            "/api/system/metrics",
            "/api/system/ws",
            "/metrics",
        ]
    );
}

/// Checks `value` against `schema` (the subset of JSON Schema the documents use: `$ref`,
/// `type`, `const`, `enum`, `properties`, `required`, `additionalProperties` (false, or the
/// schema of a map's values), `items`, `anyOf`), writing each mismatch to `errors`. Golden
/// files' `<masked>` values pass any type.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = resolve(doc, reference).expect("references resolve");
        return check(doc, target, value, at, errors);
    }
    if let Some(branches) = schema["anyOf"].as_array() {
        let fits = branches.iter().any(|b| {
            let mut e = Vec::new();
            check(doc, b, value, at, &mut e);
            e.is_empty()
        });
        if !fits {
            errors.push(format!("{at}: fits none of anyOf: {value}"));
        }
        return;
    }
    if value == "<masked>" {
        return;
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            errors.push(format!("{at}: {value} is not {constant}"));
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            errors.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !fits {
        errors.push(format!("{at}: {kind} where the schema says {types:?}"));
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            for (key, item) in map {
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => check(doc, property, item, &format!("{at}.{key}"), errors),
                    None if schema["additionalProperties"] == Value::Bool(false) => {
                        errors.push(format!("{at}.{key}: not in the schema"));
                    }
                    None if schema["additionalProperties"].is_object() => check(
                        doc,
                        &schema["additionalProperties"],
                        item,
                        &format!("{at}.{key}"),
                        errors,
                    ),
                    None => {}
                }
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !map.contains_key(name) {
                    errors.push(format!("{at}.{name}: required, missing"));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

fn assert_fits(doc: &Value, schema: &str, value: &Value) {
    let mut errors = Vec::new();
    let schema = resolve(doc, &format!("#/components/schemas/{schema}")).expect("schema");
    check(doc, schema, value, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
}

/// A snapshot whose accelerator has every field set (pods and processes' pods included).
fn full() -> Snapshot {
    let mut s = Snapshot {
        node_id: "n1".into(),
        hostname: "h".into(),
        ..Snapshot::default()
    };
    s.accelerators.push(crate::serve::grpc_v1::tests::h100());
    s.power.push(model::PowerReading {
        source: "dram".into(),
        watts: 1.0,
    });
    s
}

#[test]
fn every_field_the_encoders_write_is_described() {
    let doc = doc(Api::Coordinator);
    let snapshot = full();
    let element = serde_json::to_value(NodeMetrics::of(&snapshot)).unwrap();
    assert_fits(&doc, "NodeMetrics", &element);
    let mut cluster = element.clone();
    cluster["status"] = "online".into();
    cluster["dataAgeSeconds"] = 0.25.into();
    assert_fits(&doc, "ClusterNodeMetrics", &cluster);
    let array = crate::model::wire::metrics_array_json([&snapshot]).unwrap();
    let headlines = crate::model::wire::headline_array_json(&array).unwrap();
    let mut headline = serde_json::from_slice::<Value>(&headlines).unwrap()[0].take();
    assert_fits(&doc, "HeadlineMetrics", &headline);
    headline["status"] = "degraded".into();
    headline["dataAgeSeconds"] = 1.5.into();
    assert_fits(&doc, "ClusterHeadlineMetrics", &headline);
    assert_fits(
        &doc,
        "Info",
        &serde_json::to_value(Info::of(&snapshot)).unwrap(),
    );
    // A field the schema does not know is caught.
    let mut unknown = element;
    unknown["cpu"]["novel"] = 1.into();
    let mut errors = Vec::new();
    let schema = resolve(&doc, "#/components/schemas/NodeMetrics").unwrap();
    check(&doc, schema, &unknown, "$", &mut errors);
    assert_eq!(errors, ["$.cpu.novel: not in the schema"]);
}

#[test]
fn the_golden_outputs_fit_their_schemas() {
    let doc = doc(Api::Agent);
    let golden = |file: &str| -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    };
    for fixture in ["server", "captured-vm", "nvidia", "accel/workstation"] {
        for element in golden(&format!("{fixture}/metrics.json"))
            .as_array()
            .unwrap()
        {
            assert_fits(&doc, "NodeMetrics", element);
        }
        assert_fits(&doc, "Info", &golden(&format!("{fixture}/info.json")));
    }
}

#[test]
fn history_answers_fit_their_schema() {
    use crate::config::HistoryConfig;
    use crate::history::{History, Query};
    use std::time::Duration;

    let history = History::new(&HistoryConfig::default(), Duration::from_secs(1));
    let mut snapshot = full();
    for i in 0..5 {
        snapshot.timestamp_ms = 1_700_000_000_000 + i * 1_000;
        history.append(&NodeMetrics::of(&snapshot));
    }
    let ask = |step: Option<&str>, fields: &str| {
        let query = Query::new(
            Some(1_700_000_000_000),
            Some(1_700_000_004_000),
            step,
            Some(fields),
            None,
            0,
        )
        .unwrap();
        serde_json::to_value([history.query("n1", &query).unwrap()]).unwrap()
    };
    for api in [Api::Agent, Api::Coordinator] {
        let doc = doc(api);
        let schema = &doc["paths"]["/api/system/history"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        for answer in [
            ask(None, "*"),
            ask(Some("2s"), "cpu.overall,memory.used,never.seen"),
        ] {
            assert!(
                answer[0]["series"].as_object().unwrap().len() > 1,
                "{answer}"
            );
            let mut errors = Vec::new();
            check(&doc, schema, &answer, "$", &mut errors);
            assert!(errors.is_empty(), "{api:?}: {errors:#?}");
        }
    }
}
