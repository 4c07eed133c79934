//! The request's log line is also its metrics: a CloudWatch Embedded Metric Format (EMF) document,
//! from which CloudWatch Logs extracts the metrics with no API call and no extra line.
//!
//! The handler logs one event per request with `target: TARGET`; [`EmfLayer`] writes it as a JSON
//! line with the `_aws` member that declares which of its members are metrics (see [`METRICS`])
//! and under which dimensions. The dimensions are few and low-cardinality: the function's name and
//! the request's outcome. Everything else (request, datastore, job and trace ids) stays a plain
//! member, searchable in Logs Insights but never a dimension.
//!
//! Written by hand on serde_json rather than with an EMF crate: docs/operations.md has the
//! measurements behind that choice.

use serde_json::{json, Map, Value};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};

/// The target of the events that become EMF lines. The JSON log layer leaves them to this one.
pub const TARGET: &str = "export_job_status::emf";
pub const NAMESPACE_VAR: &str = "METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "ExportJobStatus";
/// Dimension names: the function (so that several stacks can share a namespace) and the outcome.
pub const FUNCTION_NAME: &str = "FunctionName";
pub const OUTCOME: &str = "Outcome";
/// The function name where `AWS_LAMBDA_FUNCTION_NAME` is unset (the local run).
pub const LOCAL_FUNCTION_NAME: &str = "local";

/// CloudWatch units used here (a subset of the ones EMF allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// A metric a request line may carry, as a numeric member of that name.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    /// Published per outcome as well as in total (costs one CloudWatch metric per outcome seen).
    pub by_outcome: bool,
}

const fn metric(name: &'static str, unit: Unit, by_outcome: bool) -> Metric {
    Metric {
        name,
        unit,
        by_outcome,
    }
}

/// Every metric a line can declare. A line declares those it carries as numbers, so one that
/// never called HealthLake has no upstream latency rather than a zero. Adding a metric (a cache
/// tier, stale answers) is a row here and a field of that name where the event is logged.
pub const METRICS: &[Metric] = &[
    // Added to every line by the layer.
    metric("Requests", Unit::Count, true),
    metric("ColdStart", Unit::Count, false),
    // Logged by the handler.
    metric("ServerErrors", Unit::Count, false),
    metric("Latency", Unit::Milliseconds, false),
    metric("UpstreamLatency", Unit::Milliseconds, false),
    metric("UpstreamCalls", Unit::Count, false),
    metric("MemoryCacheHits", Unit::Count, false),
    // With the shared tier (docs/fleet.md): answered from the table, or a stale answer served.
    metric("SharedTableHits", Unit::Count, false),
    metric("StaleAnswers", Unit::Count, false),
];

/// `METRICS_NAMESPACE` as CloudWatch accepts it: 1 to 255 of letters, digits and `.-_/#: `, and
/// not in the `AWS/` space, which belongs to AWS services.
pub fn parse_namespace(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = (1..=255).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#: ".contains(c))
        && !v.starts_with("AWS/");
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{v:?} is not a CloudWatch namespace (1 to 255 letters, digits and .-_/#: , not starting with AWS/)"
        ))
    }
}

/// Writes the events of [`TARGET`] as EMF lines to `writer`.
pub struct EmfLayer<W> {
    namespace: String,
    function_name: String,
    writer: W,
    /// Set until the first request line of the process: that one is the cold start.
    cold: AtomicBool,
}

impl<W> EmfLayer<W> {
    pub fn new(namespace: String, function_name: String, writer: W) -> Self {
        EmfLayer {
            namespace,
            function_name,
            writer,
            cold: AtomicBool::new(true),
        }
    }

    /// The namespace from `METRICS_NAMESPACE` (or the default; `Config` stops start-up on a bad
    /// one) and the function's name from Lambda's `AWS_LAMBDA_FUNCTION_NAME`.
    pub fn from_env(writer: W) -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
        let namespace = var(NAMESPACE_VAR)
            .and_then(|v| parse_namespace(&v).ok())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let function_name = var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| LOCAL_FUNCTION_NAME.to_owned());
        Self::new(namespace, function_name, writer)
    }

    /// The whole line for an event whose fields are `fields`, at `now`.
    fn line(&self, mut fields: Map<String, Value>, now: SystemTime) -> Map<String, Value> {
        let timestamp = OffsetDateTime::from(now).format(&Rfc3339).unwrap_or_default();
        fields.insert("timestamp".into(), timestamp.into());
        fields.insert("level".into(), "INFO".into());
        fields.insert(FUNCTION_NAME.into(), self.function_name.clone().into());
        fields.insert("Requests".into(), 1.into());
        let cold = self.cold.swap(false, Ordering::Relaxed);
        fields.insert("ColdStart".into(), u8::from(cold).into());
        let directives = self.directives(&fields);
        let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        fields.insert(
            "_aws".into(),
            json!({"Timestamp": millis, "CloudWatchMetrics": directives}),
        );
        fields
    }

    fn directives(&self, line: &Map<String, Value>) -> Vec<Value> {
        let has_outcome = line.get(OUTCOME).is_some_and(Value::is_string);
        let carried = METRICS
            .iter()
            .filter(|m| line.get(m.name).is_some_and(Value::is_number));
        let (per_outcome, total): (Vec<&Metric>, Vec<&Metric>) =
            carried.partition(|m| m.by_outcome && has_outcome);
        let declare = |ms: Vec<&Metric>| -> Vec<Value> {
            ms.iter()
                .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
                .collect()
        };
        let mut directives = Vec::with_capacity(2);
        if !per_outcome.is_empty() {
            directives.push(json!({
                "Namespace": self.namespace,
                "Dimensions": [[FUNCTION_NAME, OUTCOME], [FUNCTION_NAME]],
                "Metrics": declare(per_outcome),
            }));
        }
        if !total.is_empty() {
            directives.push(json!({
                "Namespace": self.namespace,
                "Dimensions": [[FUNCTION_NAME]],
                "Metrics": declare(total),
            }));
        }
        directives
    }
}

impl<S, W> Layer<S> for EmfLayer<W>
where
    S: Subscriber,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut fields = Map::new();
        event.record(&mut Fields(&mut fields));
        let mut text = Value::Object(self.line(fields, SystemTime::now())).to_string();
        text.push('\n');
        // One write per line, so that lines never interleave; a failed write is dropped as the
        // JSON log layer drops it: logging never fails a request.
        let _ = self.writer.make_writer().write_all(text.as_bytes());
    }
}

/// An event's fields as JSON members: numbers stay numbers, so that they can be metrics.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let out = Capture::default();
        let layer = EmfLayer::new("Test/NS".into(), "fn-1".into(), out.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn an_event_becomes_an_emf_line_and_only_the_first_is_cold() {
        let got = lines(|| {
            tracing::info!(target: TARGET, request_id = "r1", Outcome = "ok", Latency = 1.5, UpstreamCalls = 2u64, "request");
            tracing::info!(target: TARGET, request_id = "r2", Outcome = "throttled", UpstreamLatency = Some(3.0), "request");
            tracing::info!("not a metrics event");
        });
        assert_eq!(got.len(), 2, "{got:#?}");
        let first = &got[0];
        assert_eq!(first["message"], "request");
        assert_eq!(first["request_id"], "r1");
        assert_eq!(
            (&first["ColdStart"], &got[1]["ColdStart"]),
            (&json!(1), &json!(0))
        );
        assert_eq!(first["FunctionName"], "fn-1");
        let aws = &first["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));
        assert_eq!(
            aws["CloudWatchMetrics"],
            json!([
                {"Namespace": "Test/NS", "Dimensions": [["FunctionName", "Outcome"], ["FunctionName"]],
                 "Metrics": [{"Name": "Requests", "Unit": "Count"}]},
                {"Namespace": "Test/NS", "Dimensions": [["FunctionName"]],
                 "Metrics": [{"Name": "ColdStart", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"},
                             {"Name": "UpstreamCalls", "Unit": "Count"}]}
            ])
        );
        let names: Vec<&str> = got[1]["_aws"]["CloudWatchMetrics"][1]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ColdStart", "UpstreamLatency"]);
    }

    #[test]
    fn without_an_outcome_requests_are_counted_in_total_only() {
        let got = lines(|| tracing::info!(target: TARGET, Latency = "not a number", "request"));
        assert_eq!(
            got[0]["_aws"]["CloudWatchMetrics"],
            json!([{"Namespace": "Test/NS", "Dimensions": [["FunctionName"]],
                    "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "ColdStart", "Unit": "Count"}]}])
        );
    }

    #[test]
    fn namespaces_as_cloudwatch_takes_them() {
        for ok in ["ExportJobStatus", "Team/Export-Jobs_1", "a.b#c: d"] {
            assert_eq!(parse_namespace(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "AWS/Lambda", "with\"quote", &"x".repeat(256), "é"] {
            assert!(parse_namespace(bad).is_err(), "{bad}");
        }
    }
}
