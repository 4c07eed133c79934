//! The compiled `export-job-status` binary under the loopback Lambda Runtime API, calling the
//! loopback HealthLake: the harness of the end-to-end, fault and security tests.

use crate::emf;
use loopback::healthlake::StandIn;
use loopback::runtime_api::{self, Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use loopback::runtime_api::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN};
/// A caller's own SigV4 header, as API Gateway passes it through for IAM-authorized routes.
pub const CALLER_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIACALLEREXAMPLE000/20231114/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=callersignature0000";
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The binary, running as in a Lambda execution environment. Killed when dropped, whatever the
/// test's outcome; its stdout and stderr are collected line by line.
pub struct Function {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Function {
    /// Starts the binary with only the variables Lambda sets for a custom runtime, the loopback
    /// endpoints, static test credentials and `extra`; variables in `without` are left out.
    pub fn start(
        api: &RuntimeApi,
        healthlake: &StandIn,
        extra: &[(&str, &str)],
        without: &[&str],
    ) -> Function {
        let mut env: Vec<(&str, String)> = runtime_api::lambda_environment(api, &healthlake.url());
        env.retain(|(k, _)| !without.contains(k));
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));

        let mut child = command()
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the function binary");
        let (stdout, out_reader) = collect_lines(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = collect_lines(child.stderr.take().expect("piped stderr"));
        Function {
            child,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn output(&self) -> Vec<String> {
        let mut all = self.stdout();
        all.extend(self.stderr());
        all
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("query the child")
    }

    /// Waits for the process to exit, then for the readers to drain its pipes.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                for reader in self.readers.drain(..) {
                    reader.join().expect("a reader thread");
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The log lines on stdout, each of which must be a JSON object, and each request line a
    /// valid EMF document (see [`emf::check_line`]).
    pub fn log_lines(&self) -> Vec<Value> {
        self.stdout()
            .iter()
            .map(|l| match serde_json::from_str(l) {
                Ok(v @ Value::Object(_)) => {
                    emf::check_line(&v);
                    v
                }
                _ => panic!("a log line that is not a JSON object: {l}"),
            })
            .collect()
    }

    /// The `message: "request"` log lines, once there are `count` (the reader may lag the
    /// answer by a moment), or whatever there is after 5 s.
    pub fn request_lines(&self, count: usize) -> Vec<Value> {
        self.lines_where(count, |l| l["message"] == "request")
    }

    /// The log lines that `pred` picks, once there are `count`, or whatever there is after 5 s.
    pub fn lines_where(&self, count: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = self.log_lines().into_iter().filter(&pred).collect();
            if lines.len() >= count || Instant::now() >= until {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        self.exited().is_none()
    }

    /// A field of /proc/<pid>/status, in kB (VmRSS, VmHWM).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Stops or resumes the process, as Lambda freezes an execution environment between events.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test: the one named by `EXPORT_JOB_STATUS_BINARY` (the artifact `sam build`
/// made, in CI), else the one cargo built for this test run.
pub fn path() -> std::path::PathBuf {
    std::env::var_os("EXPORT_JOB_STATUS_BINARY")
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_export-job-status").into())
        .into()
}

/// The command that starts [`path`]: the binary itself, or the binary run through
/// `EXPORT_JOB_STATUS_RUNNER` when that is set (an emulator and its arguments, split on
/// whitespace: `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the arm64 artifact).
pub fn command() -> Command {
    let binary = path();
    let runner = std::env::var("EXPORT_JOB_STATUS_RUNNER").unwrap_or_default();
    let mut runner = runner.split_whitespace();
    match runner.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(runner).arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

/// Reads `pipe` on its own thread until it closes, so the child never blocks on a full pipe.
fn collect_lines(pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (lines, reader)
}

// ---- Events as each source sends them: the sample events of `events/`, aimed elsewhere ----

/// A sample event of `events/`.
fn sample(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// An API Gateway REST API event (payload 1.0) for `method` on the route, with a caller's
/// Authorization header.
pub fn rest_event(request_id: &str, method: &str, ds: &str, job: &str) -> Value {
    let mut e = sample("rest-running-200.json");
    let path = format!("/datastores/{ds}/export-jobs/{job}");
    e["path"] = json!(path);
    e["httpMethod"] = json!(method);
    e["pathParameters"] = json!({"datastoreId": ds, "jobId": job});
    e["headers"]["Authorization"] = json!(CALLER_AUTHORIZATION);
    e["multiValueHeaders"]["Authorization"] = json!([CALLER_AUTHORIZATION]);
    let ctx = &mut e["requestContext"];
    ctx["httpMethod"] = json!(method);
    ctx["requestId"] = json!(request_id);
    ctx["path"] = json!(format!("/v1{path}"));
    e
}

/// An API Gateway HTTP API event (payload 2.0) for GET on the route: path parameters already
/// decoded, with a caller's Authorization header.
pub fn http_api_event(request_id: &str, ds: &str, job: &str) -> Value {
    let mut e = sample("http-running-200.json");
    let path = format!("/datastores/{ds}/export-jobs/{job}");
    e["rawPath"] = json!(path);
    e["pathParameters"] = json!({"datastoreId": ds, "jobId": job});
    e["headers"]["authorization"] = json!(CALLER_AUTHORIZATION);
    e["requestContext"]["http"]["path"] = json!(path);
    e["requestContext"]["requestId"] = json!(request_id);
    e
}

/// A Lambda function URL event for GET `raw_path`, as the client encoded it.
pub fn function_url_event(request_id: &str, raw_path: &str) -> Value {
    let mut e = sample("function-url-running-200.json");
    e["rawPath"] = json!(raw_path);
    e["requestContext"]["http"]["path"] = json!(raw_path);
    e["requestContext"]["requestId"] = json!(request_id);
    e
}

/// An Application Load Balancer event (multi-value headers off) for GET `path`, with this Host.
pub fn alb_event(path: &str, host: &str) -> Value {
    json!({
        "requestContext": {"elb": {
            "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/export-status/0123456789abcdef"
        }},
        "httpMethod": "GET",
        "path": path,
        "queryStringParameters": {},
        "headers": {
            "accept": "application/json",
            "host": host,
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

/// The Host of an internal ALB.
pub const ALB_HOST: &str = "internal-export-status-0123456789.us-east-1.elb.amazonaws.com";

// ---- Reading what the function posted ----

pub const PROBLEM_TYPE_PREFIX: &str = "urn:problem-type:export-job-status:";

/// What the function posted as its response; fails on an invocation error or no answer.
pub fn posted(outcome: Outcome, what: &str) -> Value {
    match outcome {
        Outcome::Response(v) => v,
        other => panic!("{what}: expected a posted response, got {other:?}"),
    }
}

pub fn body_of(resp: &Value) -> Value {
    let text = resp["body"]
        .as_str()
        .unwrap_or_else(|| panic!("no text body: {resp}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// The problem `type` slug of a posted response.
pub fn slug(resp: &Value) -> String {
    let body = body_of(resp);
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix(PROBLEM_TYPE_PREFIX))
        .unwrap_or_else(|| panic!("not a problem: {body}"))
        .to_owned()
}

/// How one event source's response looks: its members, and where it keeps a header.
pub struct Shape {
    pub members: &'static [&'static str],
    header: fn(&Value, &str) -> Option<String>,
}

pub const REST: Shape = Shape {
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
pub const V2: Shape = Shape {
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
pub const ALB: Shape = Shape {
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
    pub fn header(&self, resp: &Value, name: &str) -> Option<String> {
        assert_eq!(keys(resp), self.members, "{resp}");
        (self.header)(resp, name)
    }
}

/// The names of an object's members, sorted.
pub fn keys(v: &Value) -> Vec<&str> {
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
pub fn rest_header(resp: &Value, name: &str) -> Option<String> {
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

// ---- What the function must never do ----

/// What no line the function prints may carry: its credentials, a caller's or its own
/// signature, HealthLake's error text, the job's role and key, the account.
pub const SECRETS: &[&str] = &[
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    "AWS4-HMAC-SHA256",
    "Signature=",
    "Credential=",
    "callersignature",
    "request by",
    "arn:aws:iam",
    loopback::healthlake::SECRET_ACCOUNT,
    loopback::healthlake::SECRET_ROLE_ARN,
    loopback::healthlake::SECRET_KMS_KEY,
];
/// Headers whose names alone must not appear in a log line (their values are secrets).
const SECRET_HEADERS: &[&str] = &["authorization", "x-amz-security-token", "x-amz-date"];

/// Fails if any line carries a secret.
pub fn assert_no_secrets(lines: &[String]) {
    for line in lines {
        let lower = line.to_ascii_lowercase();
        for secret in SECRETS {
            assert!(!line.contains(secret), "a log line carries {secret:?}: {line}");
        }
        for header in SECRET_HEADERS {
            assert!(!lower.contains(header), "a log line carries {header}: {line}");
        }
    }
}

/// Every event was answered with a response: no invocation error, no init error.
pub fn assert_never_errored(api: &RuntimeApi) {
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

// ---- What the request lines' metrics must say ----

/// The namespace the function's metrics go to unless `METRICS_NAMESPACE` says otherwise: the
/// template's default too.
pub const NAMESPACE: &str = "ExportJobStatus";

/// What a request line must say, as the test that made the request knows it.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub request_id: &'a str,
    pub status: u16,
    /// The problem type's slug, or `ok`, `not-modified`.
    pub outcome: &'a str,
    /// HTTP requests HealthLake received for this request (as the stand-in counted them), or
    /// None where the request never called it.
    pub upstream_calls: Option<usize>,
    /// Whether the memory cache answered, or None where it was not asked.
    pub memory_hit: Option<bool>,
}

impl<'a> Expected<'a> {
    /// A request answered without asking the cache (bad input, no route, ...).
    pub fn local(request_id: &'a str, status: u16, outcome: &'a str) -> Self {
        Expected {
            request_id,
            status,
            outcome,
            upstream_calls: None,
            memory_hit: None,
        }
    }

    /// A request that missed the cache and called HealthLake `calls` times.
    pub fn upstream(request_id: &'a str, status: u16, outcome: &'a str, calls: usize) -> Self {
        Expected {
            upstream_calls: Some(calls),
            memory_hit: Some(false),
            ..Self::local(request_id, status, outcome)
        }
    }
}

/// Checks a request line's metrics against what the test did: the outcome as a dimension, one
/// request, a server error exactly for 5xx, a latency, the upstream calls the stand-in received
/// (and an upstream latency exactly when there were calls), the cache's answer, all in `namespace`
/// under the function's name.
pub fn assert_request_metrics(line: &Value, want: &Expected, namespace: &str) {
    let doc = emf::validate(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let ctx = format!("{}: {line}", want.request_id);
    assert_eq!(line["request_id"], want.request_id, "{ctx}");
    assert_eq!(line["status"], want.status, "{ctx}");
    assert_eq!(line["Outcome"], want.outcome, "{ctx}");
    assert_eq!(line["FunctionName"], runtime_api::FUNCTION_NAME, "{ctx}");
    for m in &doc.metrics {
        assert_eq!(m.namespace, namespace, "{ctx}");
        assert_eq!(m.dimensions["FunctionName"], runtime_api::FUNCTION_NAME, "{ctx}");
        if let Some(outcome) = m.dimensions.get("Outcome") {
            assert_eq!(outcome, want.outcome, "{ctx}");
        }
    }
    assert_eq!(doc.value("Requests"), Some(1.0), "{ctx}");
    assert_eq!(
        doc.dimension_sets("Requests"),
        [vec!["FunctionName", "Outcome"], vec!["FunctionName"]],
        "{ctx}"
    );
    assert_eq!(
        doc.value("ServerErrors"),
        Some(if want.status >= 500 { 1.0 } else { 0.0 }),
        "{ctx}"
    );
    // Stamped when the request was answered: now, give or take the test's own time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(now_ms.abs_diff(doc.timestamp_ms) < 60_000, "{ctx}");
    let cold = doc.value("ColdStart");
    assert!(cold == Some(0.0) || cold == Some(1.0), "{ctx}");
    if line["message"] == "request" {
        assert!(doc.value("Latency").is_some_and(|ms| ms >= 0.0), "{ctx}");
    }
    assert_eq!(
        doc.value("UpstreamCalls"),
        want.upstream_calls.map(|n| n as f64),
        "{ctx}"
    );
    assert_eq!(
        doc.declares("UpstreamLatency"),
        want.upstream_calls.is_some(),
        "{ctx}"
    );
    assert_eq!(
        doc.value("MemoryCacheHits"),
        want.memory_hit.map(|hit| if hit { 1.0 } else { 0.0 }),
        "{ctx}"
    );
    for name in [
        "ColdStart",
        "ServerErrors",
        "Latency",
        "UpstreamCalls",
        "UpstreamLatency",
    ] {
        if doc.declares(name) {
            assert_eq!(doc.dimension_sets(name), [vec!["FunctionName"]], "{name}: {ctx}");
        }
    }
}

/// Exactly the first request line of the process is its cold start.
pub fn assert_one_cold_start(lines: &[Value]) {
    let cold: Vec<f64> = lines
        .iter()
        .filter(|l| l.get("_aws").is_some())
        .map(|l| {
            l["ColdStart"]
                .as_f64()
                .unwrap_or_else(|| panic!("no ColdStart: {l}"))
        })
        .collect();
    assert!(!cold.is_empty());
    assert_eq!(cold[0], 1.0, "{lines:#?}");
    assert!(cold[1..].iter().all(|c| *c == 0.0), "{cold:?}");
}
