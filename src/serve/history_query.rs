//! The history question as every server takes it — REST's query string
//! (`/api/system/history`) and gRPC v1's `GetHistoryRequest`, agent and coordinator — read into
//! one [`HistoryParams`] and checked by one parser ([`history::Query::new`]); what a refusal is
//! in each protocol ([`HistoryRefusal`]); the agent's answer ([`answer`]); and an answer read
//! back from an agent's JSON ([`answers_from_json`], for the coordinator's gRPC).

use axum::http::StatusCode;
use axum::response::Response;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::json;

use super::http::error;
use super::state::{check_node_query, AppState, Refused, Selected};
use crate::history::flatten::Number;
use crate::history::{self, Answer, HistoryError, QueryError};
use crate::pb::v1::{GetHistoryRequest, HistoryAgg};

/// The question, as sent: REST's query string, or a `GetHistoryRequest` made into one
/// ([`HistoryParams::from_grpc`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryParams {
    /// One id or a comma list, as on `/api/system/metrics`.
    pub node_id: Option<String>,
    /// Unix ms; default `to` − 15 min.
    pub from: Option<i64>,
    /// Unix ms; default now.
    pub to: Option<i64>,
    /// `10s`, `5m`, `1h`, or seconds; default: native resolution up to 1,000 points.
    pub step: Option<String>,
    /// Comma-separated dotted paths (a trailing `*` takes every field under a prefix).
    pub fields: Option<String>,
    /// `mean` (default), `min` or `max`.
    pub agg: Option<String>,
}

/// The latest time a question may name: 9999-12-31T23:59:59.999Z, unix ms.
pub const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// The largest step: a year (a week is all the history there is by default).
pub const MAX_STEP_MS: i64 = 366 * 24 * 3600 * 1000;

/// Why a question is refused (REST 400, gRPC INVALID_ARGUMENT): the bounds this layer puts on
/// times and steps — so that no arithmetic on them can overflow — or the history's own checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    #[error("{which} ({value}) is not a unix time in ms from 0 to {MAX_UNIX_MS} (the year 9999)")]
    Time { which: &'static str, value: i64 },
    #[error("step ({0} ms) is over a year")]
    Step(i64),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl HistoryParams {
    /// The checked question, defaults filled at `now_ms`.
    pub fn query(&self, now_ms: i64) -> Result<history::Query, QuestionError> {
        for (which, value) in [("from", self.from), ("to", self.to)] {
            match value {
                Some(value) if !(0..=MAX_UNIX_MS).contains(&value) => {
                    return Err(QuestionError::Time { which, value })
                }
                _ => {}
            }
        }
        let query = history::Query::new(
            self.from,
            self.to,
            self.step.as_deref(),
            self.fields.as_deref(),
            self.agg.as_deref(),
            now_ms,
        )?;
        match query.step_ms {
            Some(step) if step > MAX_STEP_MS => Err(QuestionError::Step(step)),
            _ => Ok(query),
        }
    }

    /// A gRPC request as the REST question it is: empty strings and lists are parameters not
    /// given, `fields` joined with commas, `agg` by its name (an unknown number is kept as
    /// text, for the parser to refuse as REST refuses an unknown name).
    pub fn from_grpc(request: &GetHistoryRequest) -> HistoryParams {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let agg = match HistoryAgg::try_from(request.agg) {
            Ok(HistoryAgg::Unspecified) => None,
            Ok(HistoryAgg::Mean) => Some("mean".to_string()),
            Ok(HistoryAgg::Min) => Some("min".to_string()),
            Ok(HistoryAgg::Max) => Some("max".to_string()),
            Err(_) => Some(request.agg.to_string()),
        };
        HistoryParams {
            node_id: text(&request.node_id),
            from: request.from_unix_ms,
            to: request.to_unix_ms,
            step: text(&request.step),
            fields: (!request.fields.is_empty()).then(|| request.fields.join(",")),
            agg,
        }
    }
}

/// Why a history question is not answered, in either protocol.
#[derive(Debug)]
pub enum HistoryRefusal<'q> {
    /// The node id rule refused it (400 or 404; INVALID_ARGUMENT or NOT_FOUND).
    Node(Refused<'q>),
    /// The question (400, INVALID_ARGUMENT).
    Question(QuestionError),
    /// The answer: too many points (400, INVALID_ARGUMENT), or a store that could not be
    /// read (500, INTERNAL).
    History(HistoryError),
}

impl HistoryRefusal<'_> {
    /// The REST answer: a JSON error.
    pub fn response(self) -> Response {
        match self {
            Self::Node(refused) => refused.response(),
            Self::Question(e) => question_error(&e),
            Self::History(e) => history_error(&e),
        }
    }

    /// The gRPC status: the REST error's `error` and `detail`, as `"<error>: <detail>"`.
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::Node(refused) => refused.status(),
            Self::Question(e) => question_status(e),
            Self::History(e) => history_status(e),
        }
    }
}

impl From<HistoryError> for HistoryRefusal<'_> {
    fn from(e: HistoryError) -> Self {
        Self::History(e)
    }
}

impl From<QuestionError> for HistoryRefusal<'_> {
    fn from(e: QuestionError) -> Self {
        Self::Question(e)
    }
}

/// The `error` of a refused question.
const INVALID_QUESTION: &str = "invalid history query";
/// The `error` of a store that could not be read.
const UNREADABLE: &str = "history unreadable";

/// A refused question as its JSON answer: 400.
pub fn question_error(e: &QuestionError) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        json!({"error": INVALID_QUESTION, "detail": e.to_string()}),
    )
}

/// A refused question as its gRPC status: INVALID_ARGUMENT, the REST 400's text.
pub fn question_status(e: &QuestionError) -> tonic::Status {
    tonic::Status::invalid_argument(format!("{INVALID_QUESTION}: {e}"))
}

/// A history error as its gRPC status: INVALID_ARGUMENT for a refused question (too many
/// points), INTERNAL otherwise; the REST answer's text.
pub fn history_status(e: &HistoryError) -> tonic::Status {
    match e {
        HistoryError::Query(q) => {
            tonic::Status::invalid_argument(format!("{INVALID_QUESTION}: {q}"))
        }
        other => tonic::Status::internal(format!("{UNREADABLE}: {other}")),
    }
}

/// A history error as the JSON answer it gets: 400 for a bad question, 500 (a damaged block:
/// a bug, or memory gone bad) otherwise.
pub fn history_error(e: &HistoryError) -> Response {
    match e {
        HistoryError::Query(q) => error(
            StatusCode::BAD_REQUEST,
            json!({"error": INVALID_QUESTION, "detail": q.to_string()}),
        ),
        other => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": UNREADABLE, "detail": other.to_string()}),
        ),
    }
}

/// The agent's answer to `params` (REST and gRPC alike): the node id rule of
/// `/api/system/metrics`, then the question, checked with `now_ms` for its defaults, answered
/// once per node id asked.
pub fn answer<'q>(
    app: &AppState,
    params: &'q HistoryParams,
    now_ms: i64,
) -> Result<Vec<Answer>, HistoryRefusal<'q>> {
    let own = app.latest().node_id.clone();
    let names: Vec<&str> =
        match check_node_query(params.node_id.as_deref(), &own, app.node_id_origin) {
            Err(refused) => return Err(HistoryRefusal::Node(refused)),
            Ok(Selected::Own) => vec![&own],
            Ok(Selected::As(ids)) => ids,
        };
    let query = params.query(now_ms)?;
    names
        .into_iter()
        .map(|name| Ok(app.history.query(name, &query)?))
        .collect()
}

/// The answers in an agent's `/api/system/history` JSON (an array of
/// `{node_id, from, to, step_ms, timestamps, series}`), series in the order written. The
/// inverse of `Answer`'s `Serialize` (a unit test holds the two together); `native` is not on
/// the wire and reads false.
pub fn answers_from_json(json: &[u8]) -> Result<Vec<Answer>, serde_json::Error> {
    Ok(serde_json::from_slice::<Vec<WireAnswer>>(json)?
        .into_iter()
        .map(|w| w.0)
        .collect())
}

/// [`Answer`] read from JSON.
struct WireAnswer(Answer);

impl<'de> Deserialize<'de> for WireAnswer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            node_id: String,
            from: i64,
            to: i64,
            step_ms: i64,
            timestamps: Vec<i64>,
            series: Series,
        }
        let f = Fields::deserialize(d)?;
        Ok(WireAnswer(Answer {
            node_id: f.node_id,
            from: f.from,
            to: f.to,
            step_ms: f.step_ms,
            native: false,
            timestamps: f.timestamps,
            series: f.series.0,
        }))
    }
}

/// The `series` object, its keys in the order written.
struct Series(Vec<(String, Vec<Option<Number>>)>);

impl<'de> Deserialize<'de> for Series {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Series;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of arrays of numbers or nulls")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Series, A::Error> {
                let mut series = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((name, values)) = map.next_entry::<String, Vec<Option<Value>>>()? {
                    series.push((name, values.into_iter().map(|v| v.map(|v| v.0)).collect()));
                }
                Ok(Series(series))
            }
        }
        d.deserialize_map(InOrder)
    }
}

/// One JSON number as the [`Number`] it was written from: an integer stays one.
struct Value(Number);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Num;
        impl<'de> Visitor<'de> for Num {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value(Number::Unsigned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value(Number::Signed(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value(Number::Float(v)))
            }
        }
        d.deserialize_any(Num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            node_id: "n1".into(),
            from: 1_000,
            to: 5_000,
            step_ms: 1_000,
            native: false,
            timestamps: vec![1_000, 2_000, 3_000],
            series: vec![
                // Out of alphabetical order: the order asked is kept.
                (
                    "memory.used".into(),
                    vec![
                        Some(Number::Unsigned(u64::MAX)),
                        None,
                        Some(Number::Unsigned(7)),
                    ],
                ),
                (
                    "cpu.overall".into(),
                    vec![Some(Number::Float(0.5)), Some(Number::Signed(-3)), None],
                ),
            ],
        }
    }

    #[test]
    fn json_answers_read_back_as_written() {
        let written = serde_json::to_vec(&[answer()]).unwrap();
        let read = answers_from_json(&written).unwrap();
        assert_eq!(read, [answer()]);
        assert!(answers_from_json(br#"[{"node_id":"x"}]"#).is_err());
        assert!(answers_from_json(br#"{"node_id":"x"}"#).is_err());
        let text = r#"[{"node_id":"x","from":0,"to":0,"step_ms":1,"timestamps":[0],"series":{"a":["1"]}}]"#;
        assert!(answers_from_json(text.as_bytes()).is_err());
    }

    #[test]
    fn a_grpc_request_is_the_rest_question() {
        let request = GetHistoryRequest {
            node_id: "a,b".into(),
            from_unix_ms: Some(5),
            to_unix_ms: None,
            step: "10s".into(),
            fields: vec!["cpu.overall".into(), "memory.used,disk.*".into()],
            agg: HistoryAgg::Max as i32,
        };
        let params = HistoryParams::from_grpc(&request);
        assert_eq!(params.node_id.as_deref(), Some("a,b"));
        assert_eq!((params.from, params.to), (Some(5), None));
        assert_eq!(params.step.as_deref(), Some("10s"));
        assert_eq!(
            params.fields.as_deref(),
            Some("cpu.overall,memory.used,disk.*")
        );
        assert_eq!(params.agg.as_deref(), Some("max"));
        let query = params.query(100_000).unwrap();
        assert_eq!(query.agg, history::Agg::Max);
        assert_eq!(query.step_ms, Some(10_000));

        let empty = HistoryParams::from_grpc(&GetHistoryRequest::default());
        assert!(empty.node_id.is_none() && empty.step.is_none() && empty.fields.is_none());
        assert!(empty.agg.is_none());
        // An agg number this build does not know is refused as REST refuses an unknown name.
        let unknown = HistoryParams::from_grpc(&GetHistoryRequest {
            agg: 9,
            ..GetHistoryRequest::default()
        });
        let refusal = HistoryRefusal::Question(unknown.query(0).unwrap_err());
        assert_eq!(refusal.status().code(), tonic::Code::InvalidArgument);
        assert_eq!(
            refusal.status().message(),
            "invalid history query: agg must be mean, min or max, not \"9\""
        );
    }

    #[test]
    fn times_and_steps_are_bounded() {
        let ask = |from: Option<i64>, to: Option<i64>, step: Option<&str>| {
            HistoryParams {
                from,
                to,
                step: step.map(str::to_string),
                ..HistoryParams::default()
            }
            .query(1_700_000_000_000)
        };
        assert!(ask(Some(0), Some(MAX_UNIX_MS), Some("1y")).is_ok());
        assert_eq!(
            ask(Some(i64::MIN), None, None),
            Err(QuestionError::Time {
                which: "from",
                value: i64::MIN
            })
        );
        assert!(matches!(
            ask(None, Some(MAX_UNIX_MS + 1), None),
            Err(QuestionError::Time { which: "to", .. })
        ));
        assert!(matches!(
            ask(None, Some(-1), None),
            Err(QuestionError::Time { .. })
        ));
        assert!(matches!(
            ask(None, None, Some("292000000y")),
            Err(QuestionError::Step(_))
        ));
        assert!(matches!(
            ask(Some(10), Some(5), None),
            Err(QuestionError::Query(QueryError::Order { .. }))
        ));
    }
}
