//! End to end: the compiled `export-job-status` binary, started the way Lambda starts a custom
//! runtime (`AWS_LAMBDA_RUNTIME_API` and the function's environment, nothing else), fed real
//! event shapes through the loopback Runtime API, calling the loopback HealthLake with the real
//! SDK client. What the function posts back is checked exactly, and so is what it logs.

mod binary;
mod common;

use binary::{
    assert_one_cold_start, assert_request_metrics, Expected, Function, ACCESS_KEY_ID, CALLER_AUTHORIZATION,
    SECRET_ACCESS_KEY, SESSION_TOKEN,
};
use common::{job_path, DS};
use loopback::healthlake::{self, Reply, StandIn};
use loopback::runtime_api::{Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::time::Duration;

/// Lambda's timeout for ordinary events: long enough never to be what decides the answer.
const DEADLINE: Duration = Duration::from_secs(10);
const PROBLEM: &str = "urn:problem-type:export-job-status:";

// ---- Events as each source sends them ----

/// API Gateway REST API (payload 1.0), stage `Prod`, through the proxy resource.
fn rest_event(request_id: &str, ds: &str, job: &str) -> Value {
    let path = job_path(ds, job);
    json!({
        "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
        "path": path,
        "httpMethod": "GET",
        "headers": {
            "Accept": "application/json",
            "Authorization": CALLER_AUTHORIZATION,
            "Host": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "User-Agent": "curl/8.5.0",
            "X-Forwarded-Proto": "https"
        },
        "multiValueHeaders": {
            "Accept": ["application/json"],
            "Authorization": [CALLER_AUTHORIZATION],
            "Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"],
            "User-Agent": ["curl/8.5.0"],
            "X-Forwarded-Proto": ["https"]
        },
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"datastoreId": ds, "jobId": job},
        "stageVariables": null,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "httpMethod": "GET",
            "path": format!("/Prod{path}"),
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": "Prod",
            "domainPrefix": "abc123defg",
            "requestTimeEpoch": 1_700_000_000_000_i64,
            "requestTime": "14/Nov/2023:22:13:20 +0000",
            "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123defg"
        },
        "body": null,
        "isBase64Encoded": false
    })
}

/// The payload 2.0 shape shared by HTTP APIs and function URLs.
fn v2_event(request_id: &str, domain: &str, route_key: &str, raw_path: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "authorization": CALLER_AUTHORIZATION,
            "host": domain,
            "user-agent": "curl/8.5.0",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "000000000000",
            "apiId": domain.split('.').next().unwrap_or_default(),
            "domainName": domain,
            "domainPrefix": domain.split('.').next().unwrap_or_default(),
            "http": {
                "method": "GET",
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "curl/8.5.0"
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": "14/Nov/2023:22:13:20 +0000",
            "timeEpoch": 1_700_000_000_000_i64
        },
        "isBase64Encoded": false
    })
}

/// API Gateway HTTP API (payload 2.0): path parameters already decoded.
fn http_api_event(request_id: &str, ds: &str, job: &str) -> Value {
    let mut event = v2_event(
        request_id,
        "def456ghij.execute-api.us-east-1.amazonaws.com",
        "GET /datastores/{datastoreId}/export-jobs/{jobId}",
        &job_path(ds, job),
    );
    event["pathParameters"] = json!({"datastoreId": ds, "jobId": job});
    event
}

/// A Lambda function URL: the 2.0 shape, no path parameters, the path as the client encoded it.
fn function_url_event(request_id: &str, raw_path: &str) -> Value {
    v2_event(
        request_id,
        "abcdefg.lambda-url.us-east-1.on.aws",
        "$default",
        raw_path,
    )
}

/// An Application Load Balancer target group (multi-value headers off).
fn alb_event(path: &str) -> Value {
    json!({
        "requestContext": {"elb": {
            "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/export-status/0123456789abcdef"
        }},
        "httpMethod": "GET",
        "path": path,
        "queryStringParameters": {},
        "headers": {
            "accept": "application/json",
            "host": "internal-export-status-0123456789.us-east-1.elb.amazonaws.com",
            "user-agent": "curl/8.5.0",
            "x-amzn-trace-id": "Root=1-6553f0a0-0123456789abcdef01234567",
            "x-forwarded-for": "10.0.0.10",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https"
        },
        "body": "",
        "isBase64Encoded": false
    })
}

// ---- Reading what the function posted ----

fn posted_response(outcome: &Outcome, what: &str) -> Value {
    match outcome {
        Outcome::Response(v) => v.clone(),
        other => panic!("{what}: expected a posted response, got {other:?}"),
    }
}

fn body_of(resp: &Value) -> Value {
    let text = resp["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no text body: {resp}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// How one event source's response looks: its members, and where it keeps a header.
struct Shape {
    members: &'static [&'static str],
    header: fn(&Value, &str) -> Option<String>,
}

const REST: Shape = Shape {
    members: &[
        "body",
        "headers",
        "isBase64Encoded",
        "multiValueHeaders",
        "statusCode",
    ],
    header: rest_header,
};
/// HTTP APIs and function URLs.
const V2: Shape = Shape {
    members: &[
        "body",
        "cookies",
        "headers",
        "isBase64Encoded",
        "multiValueHeaders",
        "statusCode",
    ],
    header: v2_header,
};
const ALB: Shape = Shape {
    members: &[
        "body",
        "headers",
        "isBase64Encoded",
        "multiValueHeaders",
        "statusCode",
        "statusDescription",
    ],
    header: alb_header,
};

impl Shape {
    /// Checks that `resp` has exactly this shape and returns its header `name`.
    fn header(&self, resp: &Value, name: &str) -> Option<String> {
        assert_eq!(keys(resp), self.members, "{resp}");
        (self.header)(resp, name)
    }
}

/// The names of an object's members, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// A header of a REST API response: `headers` stays empty, everything is in `multiValueHeaders`
/// (API Gateway would otherwise merge the two into duplicates).
fn rest_header(resp: &Value, name: &str) -> Option<String> {
    assert_eq!(
        resp["headers"],
        json!({}),
        "REST responses carry multiValueHeaders only: {resp}"
    );
    match &resp["multiValueHeaders"][name] {
        Value::Null => None,
        Value::Array(values) if values.len() == 1 => values[0].as_str().map(str::to_owned),
        other => panic!("{name} is not one value: {other}"),
    }
}

/// A header of a payload 2.0 response: single-valued `headers`, nothing in `multiValueHeaders`.
fn v2_header(resp: &Value, name: &str) -> Option<String> {
    assert_eq!(
        resp["multiValueHeaders"],
        json!({}),
        "2.0 responses carry single-valued headers only: {resp}"
    );
    resp["headers"][name].as_str().map(str::to_owned)
}

/// A header of an ALB response, which fills both fields alike so that either setting of the
/// target group's multi-value headers works.
fn alb_header(resp: &Value, name: &str) -> Option<String> {
    let single = resp["headers"][name].as_str().map(str::to_owned);
    let multi = resp["multiValueHeaders"][name][0].as_str().map(str::to_owned);
    assert_eq!(
        single, multi,
        "{name} differs between headers and multiValueHeaders"
    );
    single
}

/// A problem+json answer in `shape`: status, type, and the request id a caller can quote.
fn assert_problem(resp: &Value, shape: &Shape, status: u16, slug: &str, request_id: &str) -> Value {
    assert_eq!(resp["statusCode"], status, "{resp}");
    assert_eq!(
        shape.header(resp, "content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(shape.header(resp, "cache-control").as_deref(), Some("no-store"));
    let body = body_of(resp);
    assert_eq!(body["type"], format!("{PROBLEM}{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"], request_id, "{body}");
    body
}

/// An expected log line: the request id it carries, its status, the ids if they parsed, and
/// what its metrics must say.
struct Logged {
    request_id: String,
    status: u16,
    ids: Option<(&'static str, &'static str)>,
    outcome: &'static str,
    upstream_calls: Option<usize>,
    memory_hit: Option<bool>,
}

/// A request that called HealthLake `calls` times after missing the cache.
fn logged(
    request_id: &str,
    status: u16,
    ids: Option<(&'static str, &'static str)>,
    outcome: &'static str,
    calls: usize,
) -> Logged {
    Logged {
        request_id: request_id.to_owned(),
        status,
        ids,
        outcome,
        upstream_calls: Some(calls),
        memory_hit: Some(false),
    }
}

/// A request answered before the cache (bad input).
fn logged_local(request_id: &str, status: u16, outcome: &'static str) -> Logged {
    Logged {
        upstream_calls: None,
        memory_hit: None,
        ..logged(request_id, status, None, outcome, 0)
    }
}

/// A request the memory cache answered.
fn logged_cached(request_id: &str, ids: (&'static str, &'static str)) -> Logged {
    Logged {
        upstream_calls: None,
        memory_hit: Some(true),
        ..logged(request_id, 200, Some(ids), "ok", 0)
    }
}

/// Every HTTP request left exactly one JSON line, with its request id, status and ids.
fn assert_request_logs(function: &Function, expected: &[Logged]) {
    let requests = function.request_lines(expected.len());
    assert_eq!(
        requests.len(),
        expected.len(),
        "one line per HTTP request: {requests:#?}"
    );
    for want in expected {
        let mine: Vec<&Value> = requests
            .iter()
            .filter(|l| l["request_id"] == want.request_id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "lines for {}: {requests:#?}", want.request_id);
        let line = mine[0];
        assert_eq!(line["status"], want.status, "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        let metrics = Expected {
            request_id: &want.request_id,
            status: want.status,
            outcome: want.outcome,
            upstream_calls: want.upstream_calls,
            memory_hit: want.memory_hit,
        };
        assert_request_metrics(line, &metrics, binary::NAMESPACE);
        match want.ids {
            Some((ds, job)) => {
                assert_eq!(line["datastore_id"], ds, "{line}");
                assert_eq!(line["job_id"], job, "{line}");
            }
            None => assert!(line.get("job_id").is_none(), "{line}"),
        }
    }
}

/// Nothing the function printed carries its credentials, a signature, or HealthLake's words.
fn assert_no_secrets_logged(function: &Function) {
    for line in function.output() {
        for secret in [
            SECRET_ACCESS_KEY,
            SESSION_TOKEN,
            "AWS4-HMAC-SHA256",
            "Signature=",
            healthlake::SECRET_ACCOUNT,
            "arn:aws:iam",
        ] {
            assert!(!line.contains(secret), "a log line carries {secret:?}: {line}");
        }
        assert!(
            !line.to_ascii_lowercase().contains("authorization"),
            "a log line carries an Authorization header: {line}"
        );
    }
}

fn assert_never_errored(api: &RuntimeApi) {
    assert!(api.error_posts().is_empty(), "{:?}", api.error_posts());
    for inv in api.invocations() {
        assert!(
            matches!(inv.outcome, Outcome::Response(_)),
            "invocation {} was not answered with a response: {:?}",
            inv.request_id,
            inv.outcome
        );
    }
    assert!(api.init_errors().is_empty(), "{:?}", api.init_errors());
}

// ---- The tests ----

/// One execution environment, one process: every event source, problems through each, upstream
/// faults, and a non-HTTP event. The process keeps serving throughout and never reports an
/// invocation error.
#[test]
fn one_process_answers_every_event_source_and_fault() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    // At the most verbose level, so that the log checks below cover every crate's output.
    let mut function = Function::start(&api, &healthlake, &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")], &[]);
    let mut logs = Vec::new();

    // API Gateway REST API: a finished job, then the same job served from the function's cache.
    healthlake.put_job(DS, "job-rest", "COMPLETED");
    let resp = posted_response(
        &api.invoke(rest_event("rest-1", DS, "job-rest"), DEADLINE),
        "REST",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["isBase64Encoded"], false);
    assert_eq!(
        keys(&resp["multiValueHeaders"]),
        ["cache-control", "content-type", "etag", "x-content-type-options"]
    );
    assert_eq!(
        REST.header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        REST.header(&resp, "cache-control").as_deref(),
        Some("private, max-age=86400, immutable")
    );
    let etag = REST.header(&resp, "etag").expect("an ETag");
    let body = body_of(&resp);
    assert_eq!(
        (&body["status"], &body["terminal"]),
        (&json!("COMPLETED"), &json!(true))
    );
    assert_eq!(
        (&body["datastoreId"], &body["jobId"]),
        (&json!(DS), &json!("job-rest"))
    );
    logs.push(logged("rest-1", 200, Some((DS, "job-rest")), "ok", 1));

    let again = posted_response(
        &api.invoke(rest_event("rest-2", DS, "job-rest"), DEADLINE),
        "again",
    );
    assert_eq!(again["statusCode"], 200);
    assert_eq!(REST.header(&again, "etag"), Some(etag));
    assert_eq!(
        healthlake.calls_for("job-rest"),
        1,
        "a terminal job is cached across invocations"
    );
    logs.push(logged_cached("rest-2", (DS, "job-rest")));

    // The binary signed with the environment's credentials, for the environment's region.
    let call = &healthlake.calls()[0];
    assert_eq!(call.target.as_deref(), Some(healthlake::TARGET));
    let auth = call.authorization.as_deref().unwrap_or_default();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/healthlake/aws4_request"), "{auth}");

    // API Gateway HTTP API: a running job, in the 2.0 response shape.
    healthlake.put_job(DS, "job-http", "IN_PROGRESS");
    let resp = posted_response(
        &api.invoke(http_api_event("http-1", DS, "job-http"), DEADLINE),
        "HTTP API",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["cookies"], json!([]));
    assert_eq!(
        keys(&resp["headers"]),
        [
            "cache-control",
            "content-type",
            "etag",
            "retry-after",
            "x-content-type-options"
        ]
    );
    assert_eq!(
        V2.header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(V2.header(&resp, "cache-control").as_deref(), Some("no-store"));
    let retry_after = V2
        .header(&resp, "retry-after")
        .and_then(|s| s.parse::<u32>().ok());
    assert!(retry_after.is_some_and(|s| s >= 2), "{resp}");
    let body = body_of(&resp);
    assert_eq!(
        (&body["status"], &body["terminal"]),
        (&json!("IN_PROGRESS"), &json!(false))
    );
    logs.push(logged("http-1", 200, Some((DS, "job-http")), "ok", 1));

    // A function URL: the id arrives percent-encoded in rawPath and is decoded exactly once.
    healthlake.put_job(DS, "job 1", "QUEUED");
    let event = function_url_event("url-1", &job_path(DS, "job%201"));
    let resp = posted_response(&api.invoke(event, DEADLINE), "function URL");
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(
        V2.header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(body_of(&resp)["jobId"], "job 1");
    let last_call = healthlake.calls().pop().expect("a call");
    assert_eq!(last_call.job_id.as_deref(), Some("job 1"));
    logs.push(logged("url-1", 200, Some((DS, "job 1")), "ok", 1));

    // An ALB target group.
    healthlake.put_job(DS, "job-alb", "FAILED");
    let inv = api.invoke_timed(alb_event(&job_path(DS, "job-alb")), DEADLINE);
    let resp = posted_response(&inv.outcome, "ALB");
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(resp["statusDescription"], "200 OK");
    assert_eq!(
        ALB.header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    let body = body_of(&resp);
    assert_eq!(
        (&body["status"], &body["terminal"]),
        (&json!("FAILED"), &json!(true))
    );
    logs.push(logged(&inv.request_id, 200, Some((DS, "job-alb")), "ok", 1));

    // A problem through each source: an invalid jobId, in that source's shape, with the request
    // id a caller can quote (API Gateway's where the event has one, else Lambda's).
    let too_long = "x".repeat(33);
    let bad_path = job_path(DS, &too_long);
    let calls_before = healthlake.calls().len();
    let cases = [
        (Some("rest-bad"), rest_event("rest-bad", DS, &too_long), &REST),
        (Some("http-bad"), http_api_event("http-bad", DS, &too_long), &V2),
        (Some("url-bad"), function_url_event("url-bad", &bad_path), &V2),
        (None, alb_event(&bad_path), &ALB),
    ];
    for (event_request_id, event, shape) in cases {
        let inv = api.invoke_timed(event, DEADLINE);
        let request_id = event_request_id.unwrap_or(&inv.request_id);
        let resp = posted_response(&inv.outcome, request_id);
        let body = assert_problem(&resp, shape, 400, "invalid-parameter", request_id);
        assert!(
            body["detail"].as_str().is_some_and(|d| d.starts_with("jobId ")),
            "{body}"
        );
        logs.push(logged_local(request_id, 400, "invalid-parameter"));
    }
    assert_eq!(
        healthlake.calls().len(),
        calls_before,
        "invalid ids never reach HealthLake"
    );

    // Not an HTTP event: answered, not failed, with a 400 in the REST shape and Lambda's id.
    let inv = api.invoke_timed(json!({"hello": "world"}), DEADLINE);
    let resp = posted_response(&inv.outcome, "non-HTTP event");
    assert_eq!(keys(&resp), REST.members);
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(resp["headers"]["content-type"], "application/problem+json");
    let body = body_of(&resp);
    assert_eq!(body["type"], format!("{PROBLEM}not-an-http-event"));
    assert_eq!(body["requestId"], inv.request_id.as_str());
    let non_http_request_id = inv.request_id.clone();

    // Throttled on every attempt: the SDK's retries, then 429 with Retry-After.
    healthlake.script(DS, "job-busy", vec![Reply::error(400, "ThrottlingException")]);
    let resp = posted_response(
        &api.invoke(rest_event("rest-busy", DS, "job-busy"), DEADLINE),
        "busy",
    );
    assert_problem(&resp, &REST, 429, "throttled", "rest-busy");
    assert_eq!(REST.header(&resp, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        healthlake.calls_for("job-busy"),
        3,
        "the default UPSTREAM_MAX_ATTEMPTS"
    );
    logs.push(logged("rest-busy", 429, Some((DS, "job-busy")), "throttled", 3));

    // HealthLake slower than the Lambda deadline: a 504 posted before the deadline, not a
    // Lambda timeout.
    let slow = Reply::delayed(
        Duration::from_secs(10),
        Reply::Job(healthlake::job(DS, "job-slow", "QUEUED")),
    );
    healthlake.script(DS, "job-slow", vec![slow]);
    let inv = api.invoke_timed(
        rest_event("rest-slow", DS, "job-slow"),
        Duration::from_millis(1500),
    );
    let resp = posted_response(&inv.outcome, "slow upstream");
    assert_problem(&resp, &REST, 504, "upstream-timeout", "rest-slow");
    let (delivered, answered) = (inv.delivered.unwrap(), inv.answered.unwrap());
    let deadline = inv.deadline.unwrap();
    assert!(
        answered < deadline,
        "answered {:?} after the deadline",
        answered - deadline
    );
    assert!(
        answered - delivered >= Duration::from_secs(1),
        "gave up after {:?}, well before the deadline",
        answered - delivered
    );
    logs.push(logged(
        "rest-slow",
        504,
        Some((DS, "job-slow")),
        "upstream-timeout",
        1,
    ));

    // After all that, the same process still serves.
    healthlake.put_job(DS, "job-last", "SUBMITTED");
    let resp = posted_response(
        &api.invoke(rest_event("rest-last", DS, "job-last"), DEADLINE),
        "last",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(body_of(&resp)["status"], "SUBMITTED");
    logs.push(logged("rest-last", 200, Some((DS, "job-last")), "ok", 1));
    assert_eq!(function.exited(), None, "the function exited");
    assert_never_errored(&api);

    assert_request_logs(&function, &logs);
    let lines = function.log_lines();
    let non_http: Vec<&Value> = lines
        .iter()
        .filter(|l| l["request_id"] == non_http_request_id.as_str())
        .collect();
    assert_eq!(non_http.len(), 1, "{lines:#?}");
    assert_eq!(non_http[0]["status"], 400);
    assert_request_metrics(
        non_http[0],
        &Expected::local(&non_http_request_id, 400, "not-an-http-event"),
        binary::NAMESPACE,
    );
    assert_one_cold_start(&lines);
    assert_no_secrets_logged(&function);
    // Everything the function says goes through the JSON log: no panic, no stray print.
    assert_eq!(function.stderr(), Vec::<String>::new());
}

/// Without credentials in the environment the SDK cannot sign: a 500 problem that names our
/// deployment as the cause, no unsigned call, and the process goes on serving.
#[test]
fn missing_credentials_are_a_500_upstream_access_problem() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let mut function = Function::start(
        &api,
        &healthlake,
        &[],
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
    );
    healthlake.put_job(DS, "job-1", "QUEUED");
    for request_id in ["nocreds-1", "nocreds-2"] {
        let resp = posted_response(
            &api.invoke(rest_event(request_id, DS, "job-1"), DEADLINE),
            request_id,
        );
        assert_problem(&resp, &REST, 500, "upstream-access", request_id);
    }
    assert!(healthlake.calls().is_empty(), "an unsigned request went out");
    assert_eq!(function.exited(), None);
    assert_never_errored(&api);

    let requests = function.request_lines(2);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for line in &requests {
        assert_eq!(line["status"], 500, "{line}");
        assert_eq!(line["upstream_error"], "CredentialsError", "{line}");
        // Nothing went out: a request that cannot be signed is not sent.
        let request_id = line["request_id"].as_str().unwrap();
        let want = Expected::upstream(request_id, 500, "upstream-access", 0);
        assert_request_metrics(line, &want, binary::NAMESPACE);
    }
    assert_no_secrets_logged(&function);
}

/// Bad configuration stops start-up, before the first event is taken, naming the variable.
#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let mut function = Function::start(&api, &healthlake, &[("UPSTREAM_TIMEOUT_MS", "abc")], &[]);
    let status = function
        .wait_exit(Duration::from_secs(10))
        .expect("the function should stop on bad configuration");
    assert!(!status.success(), "{status}");
    assert_eq!(api.first_poll(), None, "it took events with a bad configuration");
    let output = function.output();
    assert!(
        output
            .iter()
            .any(|l| l.contains("UPSTREAM_TIMEOUT_MS") && l.contains("abc")),
        "{output:#?}"
    );
}

/// `sam local invoke` without `--env-vars` hands the function every declared variable, unset
/// ones as "". An empty `AWS_ENDPOINT_URL_HEALTHLAKE` counts as unset, so the SDK's next source
/// applies: here the generic `AWS_ENDPOINT_URL`, pointed at the loopback stand-in.
#[test]
fn an_empty_endpoint_variable_counts_as_unset() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let mut function = Function::start(
        &api,
        &healthlake,
        &[
            ("AWS_ENDPOINT_URL_HEALTHLAKE", ""),
            ("AWS_ENDPOINT_URL", &healthlake.url()),
        ],
        &[],
    );
    healthlake.put_job(DS, "job-1", "QUEUED");
    let resp = posted_response(
        &api.invoke(rest_event("empty-endpoint", DS, "job-1"), DEADLINE),
        "empty",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(healthlake.calls_for("job-1"), 1);
    assert_eq!(function.exited(), None);
    let lines = function.request_lines(1);
    let want = Expected::upstream("empty-endpoint", 200, "ok", 1);
    assert_request_metrics(&lines[0], &want, binary::NAMESPACE);
}
