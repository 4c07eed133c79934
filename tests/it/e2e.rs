//! End to end: the compiled `export-job-status` binary, started the way Lambda starts a custom
//! runtime (`AWS_LAMBDA_RUNTIME_API` and the function's environment, nothing else), fed real
//! event shapes through the loopback Runtime API, calling the loopback HealthLake with the real
//! SDK client. What the function posts back is checked exactly, and so is what it logs. Each test
//! is one execution environment; `faults` has the one that outlives everything.

use crate::binary::*;
use crate::common::{job_path, DS};
use loopback::healthlake::{self, Reply, StandIn};
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::time::Duration;

/// One execution environment at the most verbose log level, so that the log checks cover every
/// crate's output, and what each test expects it to have logged.
struct Environment {
    healthlake: StandIn,
    api: RuntimeApi,
    function: Function,
    logs: Vec<Logged>,
}

impl Environment {
    fn start() -> Environment {
        Environment::start_with(&[])
    }

    fn start_with(extra: &[(&str, &str)]) -> Environment {
        let healthlake = StandIn::start();
        let api = RuntimeApi::start();
        let mut env = vec![("AWS_LAMBDA_LOG_LEVEL", "TRACE")];
        env.extend_from_slice(extra);
        let function = Function::start(&api, &healthlake, &env, &[]);
        Environment {
            healthlake,
            api,
            function,
            logs: Vec::new(),
        }
    }

    /// Posts `event` and returns the answer, expecting a log line with `request_id`, `status`
    /// and the ids.
    fn ask(&mut self, event: Value, expect: Logged) -> Value {
        let inv = self.api.invoke_timed(event, DEADLINE);
        let resp = posted(inv.outcome, &expect.request_id);
        self.logs.push(expect);
        resp
    }

    /// The process still runs, never failed an invocation, logged one line per request (and
    /// nothing else on stderr), and no line carries a secret.
    fn finish(mut self) {
        assert_eq!(self.function.exited(), None, "the function exited");
        assert_never_errored(&self.api);
        assert_request_logs(&self.function, &self.logs);
        assert_one_cold_start(&self.function.log_lines());
        assert_no_secrets(&self.function.output());
        assert_eq!(self.function.stderr(), Vec::<String>::new());
    }
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
    assert_eq!(body["type"], format!("{PROBLEM_TYPE_PREFIX}{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"], request_id, "{body}");
    body
}

/// An expected log line: the request id it carries, its status, the ids if they parsed, and
/// what its metrics say (see [`Expected`]).
struct Logged {
    request_id: String,
    status: u16,
    ids: Option<(&'static str, String)>,
    outcome: &'static str,
    upstream_calls: Option<usize>,
    memory_hit: Option<bool>,
}

/// A line with outcome `ok`, answered before the cache, until said otherwise.
fn logged(request_id: &str, status: u16, job: Option<&str>) -> Logged {
    Logged {
        request_id: request_id.to_owned(),
        status,
        ids: job.map(|j| (DS, j.to_owned())),
        outcome: "ok",
        upstream_calls: None,
        memory_hit: None,
    }
}

impl Logged {
    fn outcome(self, outcome: &'static str) -> Self {
        Logged { outcome, ..self }
    }

    /// Missed the cache and called HealthLake `calls` times.
    fn upstream(self, calls: usize) -> Self {
        Logged {
            upstream_calls: Some(calls),
            memory_hit: Some(false),
            ..self
        }
    }

    /// Answered from the memory cache.
    fn cached(self) -> Self {
        Logged {
            memory_hit: Some(true),
            ..self
        }
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
        assert_request_metrics(line, &metrics, NAMESPACE);
        match &want.ids {
            Some((ds, job)) => {
                assert_eq!(line["datastore_id"], *ds, "{line}");
                assert_eq!(line["job_id"], job.as_str(), "{line}");
            }
            None => assert!(line.get("job_id").is_none(), "{line}"),
        }
    }
}

// ---- The tests ----

/// API Gateway REST API: a finished job, then the same job from the function's cache; the call
/// was signed with the environment's credentials for its region.
/// build.rs links the function position-dependent (no relocations for the loader to apply at
/// start-up: bench/README.md); this holds for the artifact `sam build` makes too (CI runs this
/// test against it), whatever linker cargo-lambda uses.
#[test]
fn the_binary_is_linked_position_dependent() {
    let binary = crate::binary::path();
    let mut header = [0u8; 18];
    std::io::Read::read_exact(
        &mut std::fs::File::open(&binary).expect("open the binary"),
        &mut header,
    )
    .expect("read its ELF header");
    assert_eq!(
        &header[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        binary.display()
    );
    // e_type, little-endian on x86_64 and arm64: 2 is ET_EXEC, 3 ET_DYN (a PIE).
    let e_type = u16::from_le_bytes([header[16], header[17]]);
    assert_eq!(
        e_type,
        2,
        "{} is not a position-dependent executable",
        binary.display()
    );
}

#[test]
fn rest_api_answers_a_terminal_job_and_caches_it() {
    let mut env = Environment::start();
    env.healthlake.put_job(DS, "job-rest", "COMPLETED");
    let resp = env.ask(
        rest_event("rest-1", "GET", DS, "job-rest"),
        logged("rest-1", 200, Some("job-rest")).upstream(1),
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

    let again = env.ask(
        rest_event("rest-2", "GET", DS, "job-rest"),
        logged("rest-2", 200, Some("job-rest")).cached(),
    );
    assert_eq!(again["statusCode"], 200);
    assert_eq!(REST.header(&again, "etag"), Some(etag));
    assert_eq!(
        env.healthlake.calls_for("job-rest"),
        1,
        "a terminal job is cached across invocations"
    );

    let call = &env.healthlake.calls()[0];
    assert_eq!(call.target.as_deref(), Some(healthlake::TARGET));
    let auth = call.authorization.as_deref().unwrap_or_default();
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/healthlake/aws4_request"), "{auth}");
    env.finish();
}

/// API Gateway HTTP API: a running job, in the 2.0 response shape, with a poll hint.
#[test]
fn http_api_answers_a_running_job_in_the_2_0_shape() {
    let mut env = Environment::start();
    env.healthlake.put_job(DS, "job-http", "IN_PROGRESS");
    let resp = env.ask(
        http_api_event("http-1", DS, "job-http"),
        logged("http-1", 200, Some("job-http")).upstream(1),
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
    env.finish();
}

/// A function URL: the id arrives percent-encoded in rawPath and is decoded exactly once.
#[test]
fn a_function_url_id_is_decoded_exactly_once() {
    let mut env = Environment::start();
    env.healthlake.put_job(DS, "job 1", "QUEUED");
    let resp = env.ask(
        function_url_event("url-1", &job_path(DS, "job%201")),
        logged("url-1", 200, Some("job 1")).upstream(1),
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(
        V2.header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(body_of(&resp)["jobId"], "job 1");
    let last_call = env.healthlake.calls().pop().expect("a call");
    assert_eq!(last_call.job_id.as_deref(), Some("job 1"));
    env.finish();
}

/// An ALB target group gets the ALB shape, with its status description; the request id is
/// Lambda's, since the event has none.
#[test]
fn an_alb_event_is_answered_in_the_alb_shape() {
    // An ALB names no caller: under AWS_IAM (the default) it reads nothing, and HealthLake is
    // not asked.
    let mut iam = Environment::start();
    iam.healthlake.put_job(DS, "job-alb", "FAILED");
    let inv = iam
        .api
        .invoke_timed(alb_event(&job_path(DS, "job-alb"), ALB_HOST), DEADLINE);
    iam.logs
        .push(logged(&inv.request_id, 404, Some("job-alb")).outcome("job-not-found"));
    let refused = posted(inv.outcome, "ALB under AWS_IAM");
    assert_eq!(refused["statusCode"], 404, "{refused}");
    assert_eq!(iam.healthlake.calls_for("job-alb"), 0);
    let line = iam.function.request_lines(1).pop().expect("a request line");
    assert_eq!(line["access"], "no-identity", "{line}");
    iam.finish();

    // Behind an ALB that authenticates by itself, the operator says so with AUTH_MODE=NONE.
    let mut env = Environment::start_with(&[("AUTH_MODE", "NONE")]);
    env.healthlake.put_job(DS, "job-alb", "FAILED");
    let inv = env
        .api
        .invoke_timed(alb_event(&job_path(DS, "job-alb"), ALB_HOST), DEADLINE);
    env.logs
        .push(logged(&inv.request_id, 200, Some("job-alb")).upstream(1));
    let resp = posted(inv.outcome, "ALB");
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
    env.finish();
}

/// A problem through each source: an invalid jobId, in that source's shape, with the request
/// id a caller can quote (API Gateway's where the event has one, else Lambda's), and no call.
#[test]
fn an_invalid_id_is_a_400_in_each_sources_shape_and_never_reaches_healthlake() {
    let mut env = Environment::start();
    let too_long = "x".repeat(33);
    let bad_path = job_path(DS, &too_long);
    let cases = [
        (
            Some("rest-bad"),
            rest_event("rest-bad", "GET", DS, &too_long),
            &REST,
        ),
        (Some("http-bad"), http_api_event("http-bad", DS, &too_long), &V2),
        (Some("url-bad"), function_url_event("url-bad", &bad_path), &V2),
        (None, alb_event(&bad_path, ALB_HOST), &ALB),
    ];
    for (event_request_id, event, shape) in cases {
        let inv = env.api.invoke_timed(event, DEADLINE);
        let request_id = event_request_id.unwrap_or(&inv.request_id).to_owned();
        let resp = posted(inv.outcome, &request_id);
        let body = assert_problem(&resp, shape, 400, "invalid-parameter", &request_id);
        assert!(
            body["detail"].as_str().is_some_and(|d| d.starts_with("jobId ")),
            "{body}"
        );
        env.logs
            .push(logged(&request_id, 400, None).outcome("invalid-parameter"));
    }
    assert!(
        env.healthlake.calls().is_empty(),
        "invalid ids never reach HealthLake"
    );
    env.finish();
}

/// Not an HTTP event: answered, not failed, with a 400 in the REST shape, Lambda's request id,
/// and one log line.
#[test]
fn a_non_http_event_is_answered_400_not_failed() {
    let env = Environment::start();
    let inv = env.api.invoke_timed(json!({"hello": "world"}), DEADLINE);
    let resp = posted(inv.outcome, "non-HTTP event");
    assert_eq!(keys(&resp), REST.members);
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(resp["headers"]["content-type"], "application/problem+json");
    let body = body_of(&resp);
    assert_eq!(body["type"], format!("{PROBLEM_TYPE_PREFIX}not-an-http-event"));
    assert_eq!(body["requestId"], inv.request_id.as_str());
    // The line is written before the answer is posted, but the pipe's reader may lag it.
    let mine = env
        .function
        .lines_where(1, |l| l["request_id"] == inv.request_id.as_str());
    assert_eq!(mine.len(), 1, "{:#?}", env.function.output());
    assert_eq!(mine[0]["status"], 400);
    let want = Expected::local(&inv.request_id, 400, "not-an-http-event");
    assert_request_metrics(&mine[0], &want, NAMESPACE);
    env.finish();
}

/// Throttled on every attempt: the SDK's retries, then 429 with Retry-After.
#[test]
fn throttling_is_retried_then_answered_429() {
    let mut env = Environment::start();
    env.healthlake
        .script(DS, "job-busy", vec![Reply::error(400, "ThrottlingException")]);
    let resp = env.ask(
        rest_event("rest-busy", "GET", DS, "job-busy"),
        logged("rest-busy", 429, Some("job-busy"))
            .outcome("throttled")
            .upstream(3),
    );
    assert_problem(&resp, &REST, 429, "throttled", "rest-busy");
    assert_eq!(REST.header(&resp, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        env.healthlake.calls_for("job-busy"),
        3,
        "the default UPSTREAM_MAX_ATTEMPTS"
    );
    env.finish();
}

/// HealthLake slower than the Lambda deadline: a 504 posted before the deadline, not a Lambda
/// timeout; then the same process serves the next event.
#[test]
fn an_upstream_slower_than_the_deadline_is_a_504_before_it() {
    let mut env = Environment::start();
    let slow = Reply::delayed(
        Duration::from_secs(10),
        Reply::Job(healthlake::job(DS, "job-slow", "QUEUED")),
    );
    env.healthlake.script(DS, "job-slow", vec![slow]);
    let inv = env.api.invoke_timed(
        rest_event("rest-slow", "GET", DS, "job-slow"),
        Duration::from_millis(1500),
    );
    env.logs.push(
        logged("rest-slow", 504, Some("job-slow"))
            .outcome("upstream-timeout")
            .upstream(1),
    );
    let (delivered, answered) = (inv.delivered.unwrap(), inv.answered.unwrap());
    let deadline = inv.deadline.unwrap();
    let resp = posted(inv.outcome, "slow upstream");
    assert_problem(&resp, &REST, 504, "upstream-timeout", "rest-slow");
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

    env.healthlake.put_job(DS, "job-last", "SUBMITTED");
    let resp = env.ask(
        rest_event("rest-last", "GET", DS, "job-last"),
        logged("rest-last", 200, Some("job-last")).upstream(1),
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(body_of(&resp)["status"], "SUBMITTED");
    env.finish();
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
        let resp = posted(
            api.invoke(rest_event(request_id, "GET", DS, "job-1"), DEADLINE),
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
        assert_request_metrics(line, &want, NAMESPACE);
    }
    assert_no_secrets(&function.output());
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
    let resp = posted(
        api.invoke(rest_event("empty-endpoint", "GET", DS, "job-1"), DEADLINE),
        "empty",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert_eq!(healthlake.calls_for("job-1"), 1);
    assert_eq!(function.exited(), None);
    let lines = function.request_lines(1);
    let want = Expected::upstream("empty-endpoint", 200, "ok", 1);
    assert_request_metrics(&lines[0], &want, NAMESPACE);
}
