//! The compiled `export-job-status` binary under the loopback Lambda Runtime API, calling the
//! loopback HealthLake: for the fault and security tests. (tests/lambda_e2e.rs has the full
//! harness with its checks of every event shape; this is the small part those tests need.)
#![allow(dead_code)] // each test binary uses its own part of this

use loopback::healthlake::StandIn;
use loopback::runtime_api::{self, Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ACCESS_KEY_ID: &str = "AKIAFAULTTESTEXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "faultSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const SESSION_TOKEN: &str = "faultSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE";
/// A caller's own SigV4 header, as API Gateway passes it through for IAM-authorized routes.
pub const CALLER_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=AKIACALLEREXAMPLE000/20231114/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=callersignature0000";
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The binary, started as Lambda starts a custom runtime; killed when dropped.
pub struct Function {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Function {
    pub fn start(api: &RuntimeApi, healthlake: &StandIn, extra: &[(&str, &str)]) -> Function {
        let mut child = Command::new(env!("CARGO_BIN_EXE_export-job-status"))
            .env_clear()
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", api.host_port()),
                ("AWS_LAMBDA_FUNCTION_NAME", runtime_api::FUNCTION_NAME.into()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
                ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
                ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
                ("AWS_ENDPOINT_URL_HEALTHLAKE", healthlake.url()),
                ("AWS_CONFIG_FILE", "/dev/null".into()),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ])
            .envs(extra.iter().map(|(k, v)| (*k, *v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the function binary");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Function {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Every line it printed so far, stdout then stderr.
    pub fn output(&self) -> Vec<String> {
        let mut all = self.stdout.lock().unwrap().clone();
        all.extend(self.stderr.lock().unwrap().iter().cloned());
        all
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
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

fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// An API Gateway REST API event (payload 1.0) for `method` on the route, with a caller's
/// Authorization header.
pub fn rest_event(request_id: &str, method: &str, ds: &str, job: &str) -> Value {
    json!({
        "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
        "path": format!("/datastores/{ds}/export-jobs/{job}"),
        "httpMethod": method,
        "headers": {"Authorization": CALLER_AUTHORIZATION, "Host": "abc123defg.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Authorization": [CALLER_AUTHORIZATION], "Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"datastoreId": ds, "jobId": job},
        "stageVariables": null,
        "requestContext": {
            "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "httpMethod": method,
            "stage": "Prod",
            "requestId": request_id,
            "accountId": "000000000000",
            "identity": {"sourceIp": "203.0.113.10"},
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123defg"
        },
        "body": null,
        "isBase64Encoded": false
    })
}

/// An Application Load Balancer event with this path and Host header.
pub fn alb_event(path: &str, host: &str) -> Value {
    json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/export-status/0123456789abcdef"}},
        "httpMethod": "GET",
        "path": path,
        "queryStringParameters": {},
        "headers": {"host": host, "x-forwarded-proto": "https"},
        "body": "",
        "isBase64Encoded": false
    })
}

/// What the function posted as its response; fails on an invocation error or no answer.
pub fn posted(outcome: Outcome, what: &str) -> Value {
    match outcome {
        Outcome::Response(v) => v,
        other => panic!("{what}: expected a posted response, got {other:?}"),
    }
}

/// A header of a posted REST API response (they carry multiValueHeaders only).
pub fn rest_header(resp: &Value, name: &str) -> Option<String> {
    resp["multiValueHeaders"][name][0].as_str().map(str::to_owned)
}

/// The problem `type` slug of a posted response.
pub fn slug(resp: &Value) -> String {
    let body: Value = serde_json::from_str(resp["body"].as_str().expect("a body")).expect("JSON body");
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:problem-type:export-job-status:"))
        .unwrap_or_else(|| panic!("not a problem: {body}"))
        .to_owned()
}
