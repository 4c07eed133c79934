//! Operating the function: its X-Ray trace header reaches HealthLake, and every alarm and
//! dashboard widget in the template names a metric the function really emits (learnt from a run
//! of the compiled binary, not from a list, with and without the shared tier) or one AWS
//! publishes for the resource.

use crate::binary::{self, posted, rest_event, slug, Function, DEADLINE};
use crate::emf::{self, Document};
use loopback::healthlake::{Reply, StandIn};
use loopback::moto::Moto;
use loopback::runtime_api::{RuntimeApi, FUNCTION_NAME};
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const DS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

// ---- Traces ----

/// Lambda hands each invocation its trace header (`Lambda-Runtime-Trace-Id`); every HealthLake
/// call made for that invocation, retries included, carries it as `X-Amzn-Trace-Id`, and the
/// request line names the trace.
#[test]
fn the_healthlake_call_carries_the_invocations_trace_header() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let function = Function::start(&api, &healthlake, &[("UPSTREAM_MAX_ATTEMPTS", "2")], &[]);
    healthlake.put_job(DS, "job-1", "IN_PROGRESS");
    healthlake.script(DS, "busy", vec![Reply::error(400, "ThrottlingException")]);
    let mut traces = Vec::new();
    for (request_id, job) in [("t-1", "job-1"), ("t-2", "busy"), ("t-3", "job-1")] {
        let before = healthlake.calls().len();
        let inv = api.invoke_timed(rest_event(request_id, "GET", DS, job), DEADLINE);
        posted(inv.outcome.clone(), request_id);
        let trace = inv
            .trace_id
            .clone()
            .expect("the invocation was handed a trace id");
        let calls = healthlake.calls()[before..].to_vec();
        assert!(!calls.is_empty(), "{request_id}: no call");
        for call in &calls {
            assert_eq!(call.trace_id.as_deref(), Some(trace.as_str()), "{request_id}");
        }
        traces.push((request_id, trace, calls.len()));
    }
    assert_eq!(traces[1].2, 2, "the retry carries the header too");
    assert_ne!(traces[0].1, traces[2].1, "each invocation has its own trace");

    let lines = function.request_lines(3);
    for (request_id, trace, _) in &traces {
        let line = lines.iter().find(|l| l["request_id"] == *request_id).unwrap();
        let root = trace.split(';').next().unwrap().strip_prefix("Root=").unwrap();
        assert_eq!(line["trace_id"], root, "{line}");
    }
}

// ---- The EMF check itself ----

/// The harness's EMF check is only worth something if it rejects what CloudWatch would.
#[test]
fn the_emf_check_rejects_each_fault() {
    let good = json!({
        "message": "request", "FunctionName": "f", "Outcome": "ok", "Requests": 1, "Latency": 2.5,
        "_aws": {"Timestamp": 1_700_000_000_000_u64, "CloudWatchMetrics": [
            {"Namespace": "NS", "Dimensions": [["FunctionName", "Outcome"], ["FunctionName"]],
             "Metrics": [{"Name": "Requests", "Unit": "Count"}]},
            {"Namespace": "NS", "Dimensions": [["FunctionName"]],
             "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}]}]}
    });
    let doc = emf::validate(&good).unwrap();
    assert_eq!(doc.metrics.len(), 3);
    assert_eq!(doc.value("Latency"), Some(2.5));
    type Fault = fn(&mut Value);
    let remove = |v: &mut Value, key: &str| drop(v.as_object_mut().unwrap().remove(key));
    let faults: Vec<(&str, Fault)> = vec![
        ("no _aws", |l| drop(l.as_object_mut().unwrap().remove("_aws"))),
        ("seconds", |l| l["_aws"]["Timestamp"] = json!(1_700_000_000)),
        ("bad unit", |l| {
            l["_aws"]["CloudWatchMetrics"][1]["Metrics"][0]["Unit"] = json!("ms")
        }),
        ("metric missing", |l| {
            drop(l.as_object_mut().unwrap().remove("Latency"))
        }),
        ("metric a string", |l| l["Latency"] = json!("2.5")),
        ("dimension missing", |l| {
            drop(l.as_object_mut().unwrap().remove("Outcome"))
        }),
        ("dimension a number", |l| l["FunctionName"] = json!(7)),
        ("no namespace", |l| {
            drop(
                l["_aws"]["CloudWatchMetrics"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("Namespace"),
            )
        }),
        ("no metrics", |l| {
            l["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!([])
        }),
        ("no directive", |l| l["_aws"]["CloudWatchMetrics"] = json!([])),
        ("no dimension set", |l| {
            l["_aws"]["CloudWatchMetrics"][1]["Dimensions"] = json!([])
        }),
    ];
    for (what, fault) in faults {
        let mut bad = good.clone();
        fault(&mut bad);
        assert!(emf::validate(&bad).is_err(), "{what} passed: {bad}");
    }
    // A request line must carry metrics.
    let mut plain = good.clone();
    remove(&mut plain, "_aws");
    assert!(std::panic::catch_unwind(|| emf::check_line(&plain)).is_err());
}

// ---- What the function emits, from a run ----

/// A metric as the template must name it: namespace, name, and its dimensions' names.
type MetricKey = (String, String, BTreeSet<String>);

/// What one run of the binary emitted.
struct Emitted {
    namespace: String,
    metrics: BTreeSet<MetricKey>,
    /// Every value each dimension took.
    dimension_values: BTreeMap<String, BTreeSet<String>>,
}

const RUN_NAMESPACE: &str = "Test/Operations";

/// Runs the binary through one request of every outcome the template names (and more), and
/// collects what CloudWatch would extract from its lines.
fn emitted_by_a_run() -> Emitted {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let function = Function::start(
        &api,
        &healthlake,
        &[
            ("METRICS_NAMESPACE", RUN_NAMESPACE),
            ("UPSTREAM_TIMEOUT_MS", "400"),
            ("UPSTREAM_MAX_ATTEMPTS", "2"),
        ],
        &[],
    );
    healthlake.put_job(DS, "running", "IN_PROGRESS");
    healthlake.put_job(DS, "done", "COMPLETED");
    let scripted = [
        ("throttled", Reply::error(400, "ThrottlingException")),
        ("denied", Reply::error(403, "AccessDeniedException")),
        ("internal", Reply::error(500, "InternalServerException")),
        ("unavailable", Reply::error(503, "ServiceUnavailable")),
        ("rejected", Reply::error(400, "ValidationException")),
        (
            "slow",
            Reply::delayed(Duration::from_secs(2), Reply::Raw("{}".into())),
        ),
    ];
    for (job, reply) in scripted {
        healthlake.script(DS, job, vec![reply]);
    }
    let mut events = Vec::new();
    for job in [
        "running",
        "done",
        "done",
        "throttled",
        "denied",
        "internal",
        "unavailable",
        "rejected",
        "slow",
        "unknown",
    ] {
        events.push(rest_event(job, "GET", DS, job));
    }
    let done = posted(
        api.invoke(rest_event("etag", "GET", DS, "done"), DEADLINE),
        "etag",
    );
    let etag = binary::rest_header(&done, "etag").expect("an ETag");
    let mut not_modified = rest_event("not-modified", "GET", DS, "done");
    not_modified["headers"]["If-None-Match"] = json!(etag);
    not_modified["multiValueHeaders"]["If-None-Match"] = json!([etag]);
    events.push(not_modified);
    events.push(rest_event("bad-id", "GET", DS, "bad\tid"));
    events.push(rest_event("post", "POST", DS, "running"));
    events.push(binary::alb_event("/elsewhere", "internal.example.com"));
    events.push(json!({"hello": "world"}));
    let mut slugs = BTreeSet::new();
    for event in events {
        let resp = posted(api.invoke(event, DEADLINE), "event");
        let status = resp["statusCode"].as_u64().unwrap();
        if status >= 400 {
            slugs.insert(slug(&resp));
        }
    }
    let mut lines = function.log_lines();
    lines.extend(with_the_shared_tier(&healthlake));
    let docs: Vec<(&Value, Document)> = lines
        .iter()
        .filter_map(|l| emf::check_line(l).map(|d| (l, d)))
        .collect();
    assert_eq!(docs.len(), 17, "a line per event: {lines:#?}");

    let mut emitted = Emitted {
        namespace: RUN_NAMESPACE.to_owned(),
        metrics: BTreeSet::new(),
        dimension_values: BTreeMap::new(),
    };
    let mut outcomes = BTreeSet::new();
    for (line, doc) in &docs {
        outcomes.insert(line["Outcome"].as_str().unwrap().to_owned());
        for m in &doc.metrics {
            assert_eq!(m.namespace, RUN_NAMESPACE, "METRICS_NAMESPACE is honoured");
            emitted.metrics.insert((
                m.namespace.clone(),
                m.name.clone(),
                m.dimensions.keys().cloned().collect(),
            ));
            for (k, v) in &m.dimensions {
                emitted
                    .dimension_values
                    .entry(k.clone())
                    .or_default()
                    .insert(v.clone());
            }
        }
    }
    // Every problem the callers saw is an outcome in the metrics, and so are the successes.
    slugs.extend(["ok".to_owned(), "not-modified".to_owned()]);
    assert_eq!(outcomes, slugs);
    emitted
}

/// The lines of an environment with the shared tier (`STATUS_TABLE`, as the template always
/// deploys it) polling a running job once: the shared tier's metrics.
fn with_the_shared_tier(healthlake: &StandIn) -> Vec<Value> {
    const TABLE: &str = "export-job-status";
    let moto = Moto::start();
    moto.create_table(TABLE);
    let api = RuntimeApi::start();
    let function = Function::start(
        &api,
        healthlake,
        &[
            ("METRICS_NAMESPACE", RUN_NAMESPACE),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url()),
            // moto on a loaded test machine is slower than DynamoDB.
            ("TABLE_TIMEOUT_MS", "3000"),
        ],
        &[],
    );
    let resp = posted(
        api.invoke(rest_event("shared", "GET", DS, "running"), DEADLINE),
        "shared",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    // The reader may lag the answer by a moment.
    function.request_lines(1)
}

// ---- The template ----

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("template.yaml is YAML")
}

/// What a `!Ref` or a `${...}` in a `!Sub` stands for here: placeholders for what only exists
/// once deployed.
fn reference(name: &str) -> String {
    match name {
        "MetricsNamespace" => "<namespace>".into(),
        "ExportJobStatusFunction" => "<function>".into(),
        "StageName" => "<stage>".into(),
        "ServerErrorMinRequests" => "20".into(),
        "AWS::StackName" => "STACK".into(),
        "AWS::Region" => "REGION".into(),
        other => match other.strip_suffix(".Arn") {
            Some(resource) => format!("<arn:{resource}>"),
            None => panic!("a reference the test does not know: {other}"),
        },
    }
}

/// `!Sub` text with each `${...}` replaced by its [`reference`].
fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${") + start;
        out.push_str(&reference(&rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A scalar of the template as text: a string, a `!Ref`, or a `!Sub` with a single string.
fn resolve(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Tagged(t) if t.tag == "!Ref" => reference(t.value.as_str().unwrap()),
        Yaml::Tagged(t) if t.tag == "!Sub" => substitute(t.value.as_str().expect("a one-string !Sub")),
        other => panic!("not a value the test can resolve: {other:?}"),
    }
}

/// A metric named by an alarm or a widget: namespace, name, dimensions with their values.
#[derive(Debug)]
struct Named {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, String>,
    what: String,
}

/// The metrics AWS publishes that the template may name, with their dimension names.
const AWS_METRICS: &[(&str, &[&str], &[&str])] = &[
    (
        "AWS/Lambda",
        &[
            "Errors",
            "Throttles",
            "Invocations",
            "Duration",
            "ConcurrentExecutions",
        ],
        &["FunctionName"],
    ),
    (
        "AWS/ApiGateway",
        &["5XXError", "4XXError", "Count", "Latency", "IntegrationLatency"],
        &["ApiName", "Stage"],
    ),
];

/// Fails unless `m` is a metric the run emitted (with dimension values it took, the function
/// named as the template's function), or an AWS metric of this stack's function or API.
fn assert_exists(m: &Named, emitted: &Emitted, api_name: &str) {
    let dim_names: BTreeSet<String> = m.dimensions.keys().cloned().collect();
    if m.namespace == "<namespace>" {
        let key = (emitted.namespace.clone(), m.name.clone(), dim_names);
        assert!(
            emitted.metrics.contains(&key),
            "{}: {} with dimensions {:?} is never emitted; the run emitted {:#?}",
            m.what,
            m.name,
            key.2,
            emitted.metrics
        );
        for (k, v) in &m.dimensions {
            if k == "FunctionName" {
                assert_eq!(v, "<function>", "{}", m.what);
                assert!(emitted.dimension_values[k].contains(FUNCTION_NAME));
            } else {
                assert!(
                    emitted.dimension_values[k].contains(v),
                    "{}: {k}={v} never emitted; the run emitted {:?}",
                    m.what,
                    emitted.dimension_values[k]
                );
            }
        }
        return;
    }
    let (_, names, dims) = AWS_METRICS
        .iter()
        .find(|(ns, _, _)| *ns == m.namespace)
        .unwrap_or_else(|| panic!("{}: namespace {} is neither ours nor known", m.what, m.namespace));
    assert!(
        names.contains(&m.name.as_str()),
        "{}: {} is not an {} metric",
        m.what,
        m.name,
        m.namespace
    );
    let want: BTreeSet<String> = dims.iter().map(|d| d.to_string()).collect();
    assert_eq!(dim_names, want, "{}", m.what);
    for (k, v) in &m.dimensions {
        let expected = match k.as_str() {
            "FunctionName" => "<function>",
            "ApiName" => api_name,
            "Stage" => "<stage>",
            other => panic!("{other}"),
        };
        assert_eq!(v, expected, "{}: {k}", m.what);
    }
}

fn alarm_metrics(name: &str, props: &Yaml) -> Vec<Named> {
    let one = |m: &Yaml, what: String| Named {
        namespace: resolve(&m["Namespace"]),
        name: resolve(&m["MetricName"]),
        dimensions: m["Dimensions"]
            .as_sequence()
            .map(|ds| {
                ds.iter()
                    .map(|d| (resolve(&d["Name"]), resolve(&d["Value"])))
                    .collect()
            })
            .unwrap_or_default(),
        what,
    };
    match props["Metrics"].as_sequence() {
        None => vec![one(props, format!("alarm {name}"))],
        Some(queries) => {
            let ids: BTreeSet<String> = queries.iter().map(|q| resolve(&q["Id"])).collect();
            let mut out = Vec::new();
            for q in queries {
                let id = resolve(&q["Id"]);
                match q.get("Expression") {
                    Some(expr) => assert_ids_exist(&resolve(expr), &ids, &format!("alarm {name}")),
                    None => out.push(one(&q["MetricStat"]["Metric"], format!("alarm {name}/{id}"))),
                }
            }
            out
        }
    }
}

/// Every lower-case identifier in a metric math expression is a query of the same alarm or widget.
fn assert_ids_exist(expr: &str, ids: &BTreeSet<String>, what: &str) {
    for token in expr.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if token.starts_with(|c: char| c.is_ascii_lowercase()) {
            assert!(
                ids.contains(token),
                "{what}: {expr} names {token}, which is not one of {ids:?}"
            );
        }
    }
}

/// A dashboard widget's metrics: `[namespace, name, dim, value, ..., {options}]`, expressions
/// (whose ids must exist), and SEARCH expressions, read as the metric they search.
fn widget_metrics(widget: &Value, what: &str) -> Vec<Named> {
    let rows = widget["properties"]["metrics"].as_array().expect("metrics");
    let ids: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| r.as_array()?.last()?.get("id")?.as_str().map(str::to_owned))
        .collect();
    let mut out = Vec::new();
    for row in rows {
        let row = row.as_array().unwrap();
        if let Some(expr) = row[0].get("expression").and_then(Value::as_str) {
            match expr.strip_prefix("SEARCH('{") {
                Some(search) => out.push(searched(search, what)),
                None => assert_ids_exist(expr, &ids, what),
            }
            continue;
        }
        let strings: Vec<String> = row.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        assert!(
            strings.len() >= 2 && strings.len().is_multiple_of(2),
            "{what}: {row:?}"
        );
        out.push(Named {
            namespace: strings[0].clone(),
            name: strings[1].clone(),
            dimensions: strings[2..]
                .chunks(2)
                .map(|kv| (kv[0].clone(), kv[1].clone()))
                .collect(),
            what: format!("{what}: {}", strings[1]),
        });
    }
    out
}

/// `"ns",Dim1,Dim2} MetricName="X" Dim1="v"', ...)` (what follows `SEARCH('{`): the metric X in
/// that schema, with the dimension values the search pins.
fn searched(search: &str, what: &str) -> Named {
    let (schema, terms) = search.split_once('}').expect("a schema");
    let mut parts = schema.split(',').map(|p| p.trim().trim_matches('"').to_owned());
    let namespace = parts.next().unwrap();
    let dims: Vec<String> = parts.collect();
    let term = |key: &str| {
        let start = terms.find(&format!("{key}=\""))? + key.len() + 2;
        Some(terms[start..start + terms[start..].find('"')?].to_owned())
    };
    let name = term("MetricName").unwrap_or_else(|| panic!("{what}: a SEARCH without MetricName"));
    Named {
        namespace,
        dimensions: dims
            .iter()
            .map(|d| {
                // An unpinned dimension may take any value the function emits.
                let value = term(d).unwrap_or_else(|| "*".into());
                (d.clone(), value)
            })
            .collect(),
        what: format!("{what}: SEARCH {name}"),
        name,
    }
}

#[test]
fn every_alarm_and_widget_names_a_metric_the_function_emits() {
    let mut emitted = emitted_by_a_run();
    // A SEARCH that leaves a dimension open matches whatever the function emits.
    for values in emitted.dimension_values.values_mut() {
        values.insert("*".into());
    }
    let t = template();
    let resources = t["Resources"].as_mapping().unwrap();
    let function = &t["Resources"]["ExportJobStatusFunction"]["Properties"];
    // The namespace the alarms read is the one the function is told to write to.
    assert_eq!(
        resolve(&function["Environment"]["Variables"]["METRICS_NAMESPACE"]),
        "<namespace>"
    );
    assert_eq!(t["Parameters"]["MetricsNamespace"]["Default"], "ExportJobStatus");
    assert_eq!(function["Tracing"], "Active");
    assert_eq!(t["Resources"]["Api"]["Properties"]["TracingEnabled"], true);
    let api_name = resolve(&t["Resources"]["Api"]["Properties"]["DefinitionBody"]["info"]["title"]);

    let mut alarms = Vec::new();
    for (name, resource) in resources {
        let name = name.as_str().unwrap();
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        alarms.push(name.to_owned());
        let props = &resource["Properties"];
        for m in alarm_metrics(name, props) {
            assert_exists(&m, &emitted, &api_name);
        }
        // The optional topic, on firing and on recovery.
        for actions in ["AlarmActions", "OKActions"] {
            let text = format!("{:?}", props[actions]);
            assert!(
                text.contains("HasAlarmTopic") && text.contains("AlarmTopicArn"),
                "{name}: {text}"
            );
        }
    }
    assert_eq!(alarms.len(), 6, "{alarms:?}");

    let dashboards: Vec<&Yaml> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Dashboard")
        .collect();
    assert_eq!(dashboards.len(), 1);
    let body = resolve(&dashboards[0]["Properties"]["DashboardBody"]);
    let body: Value = serde_json::from_str(&body).expect("the dashboard body is JSON");
    let mut widgets_named = 0;
    let mut shown_alarms = BTreeSet::new();
    for (i, widget) in body["widgets"].as_array().unwrap().iter().enumerate() {
        let what = format!("widget {i} {}", widget["properties"]["title"]);
        match widget["type"].as_str() {
            Some("metric") => {
                let named = widget_metrics(widget, &what);
                assert!(!named.is_empty(), "{what} shows no metric");
                for m in &named {
                    assert_exists(m, &emitted, &api_name);
                }
                widgets_named += 1;
            }
            Some("alarm") => {
                for arn in widget["properties"]["alarms"].as_array().unwrap() {
                    let arn = arn.as_str().unwrap();
                    let alarm = arn.strip_prefix("<arn:").and_then(|a| a.strip_suffix('>'));
                    shown_alarms.insert(alarm.unwrap_or_else(|| panic!("{what}: {arn}")).to_owned());
                }
            }
            other => panic!("{what}: widget type {other:?}"),
        }
    }
    assert!(widgets_named >= 6, "{widgets_named} metric widgets");
    assert_eq!(
        shown_alarms,
        alarms.into_iter().collect(),
        "the dashboard shows every alarm"
    );
    // Everything the function emits is on the dashboard.
    let shown: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "metric")
        .flat_map(|w| widget_metrics(w, ""))
        .filter(|m| m.namespace == "<namespace>")
        .map(|m| m.name)
        .collect();
    let all: BTreeSet<String> = emitted.metrics.iter().map(|(_, name, _)| name.clone()).collect();
    assert_eq!(
        shown, all,
        "metrics emitted but not on the dashboard, or the reverse"
    );
}
