//! History helpers: gRPC `GetHistory` and the check that its answer is the REST answer.

use serde_json::Value;

use system_monitor::pb::v1::monitor_service_client::MonitorServiceClient;
use system_monitor::pb::v1::{GetHistoryRequest, NodeHistory};

/// `GetHistory` on the v1 server at `url`.
pub async fn grpc_history(
    url: &str,
    request: GetHistoryRequest,
) -> Result<Vec<NodeHistory>, tonic::Status> {
    let mut client = MonitorServiceClient::connect(url.to_string())
        .await
        .unwrap_or_else(|e| panic!("connect gRPC {url}: {e}"));
    Ok(client.get_history(request).await?.into_inner().nodes)
}

/// Whether bit `i` of a presence bitmap is set (an empty bitmap: every point has a value).
fn present(bitmap: &[u8], i: usize) -> bool {
    bitmap.is_empty() || bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Checks that the gRPC answers are the REST answers (`rest`, the JSON array; its body text
/// `rest_text` for the order of the series): the same nodes, windows, steps and timestamps,
/// the same fields in the same order, each value the same number (integers compared as
/// doubles: exact below 2^53) and each null a point without a value.
pub fn same_answers(rest: &Value, rest_text: &str, grpc: &[NodeHistory]) -> Result<(), String> {
    let rest = rest.as_array().ok_or("REST: not an array")?;
    if rest.len() != grpc.len() {
        return Err(format!("{} REST answers, {} gRPC", rest.len(), grpc.len()));
    }
    let mut at = 0;
    for (r, g) in rest.iter().zip(grpc) {
        let node = &g.node_id;
        if r["node_id"] != g.node_id.as_str()
            || r["from"] != g.from_unix_ms
            || r["to"] != g.to_unix_ms
            || r["step_ms"] != g.step_ms
        {
            return Err(format!("{node}: heads differ: {r} vs {g:?}"));
        }
        let timestamps: Vec<i64> = r["timestamps"]
            .as_array()
            .ok_or("no timestamps")?
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        if timestamps != g.timestamps_unix_ms {
            return Err(format!("{node}: timestamps differ"));
        }
        let series = r["series"].as_object().ok_or("no series")?;
        if series.len() != g.series.len() {
            return Err(format!(
                "{node}: {} REST series, {} gRPC",
                series.len(),
                g.series.len()
            ));
        }
        // The order: each gRPC field's key is found in the REST text after the one before.
        for s in &g.series {
            let key = format!(
                "{}:[",
                serde_json::to_string(&s.field).map_err(|e| e.to_string())?
            );
            match rest_text[at..].find(&key) {
                Some(i) => at += i + key.len(),
                None => return Err(format!("{node}: {} out of REST's order", s.field)),
            }
            let values = series
                .get(&s.field)
                .and_then(Value::as_array)
                .ok_or(format!("{node}: REST has no {}", s.field))?;
            if values.len() != s.values.len() || values.len() != timestamps.len() {
                return Err(format!("{node}: {}: lengths differ", s.field));
            }
            for (i, (rv, gv)) in values.iter().zip(&s.values).enumerate() {
                let same = match rv.as_f64() {
                    Some(v) => present(&s.present, i) && v == *gv,
                    None => rv.is_null() && !present(&s.present, i) && gv.is_nan(),
                };
                if !same {
                    return Err(format!(
                        "{node}: {}[{i}]: REST {rv}, gRPC {gv} (present: {})",
                        s.field,
                        present(&s.present, i)
                    ));
                }
            }
        }
    }
    Ok(())
}
