//! The compiled `export-job-status` binary under the loopback Lambda Runtime API, calling the
//! loopback HealthLake: the harness of the end-to-end, fault and security tests.
#![allow(dead_code)] // each test binary uses its own part of this

use loopback::healthlake::StandIn;
use loopback::runtime_api::{self, Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ACCESS_KEY_ID: &str = "AKIAFAULTTESTEXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "faultSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const SESSION_TOKEN: &str = "faultSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE";
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
        let mut env: Vec<(&str, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API", api.host_port()),
            ("AWS_LAMBDA_FUNCTION_NAME", runtime_api::FUNCTION_NAME.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
            ("AWS_ENDPOINT_URL_HEALTHLAKE", healthlake.url()),
            // No profile, no instance metadata: nothing on this machine can supply credentials.
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ];
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

    /// The log lines on stdout, each of which must be a JSON object.
    pub fn log_lines(&self) -> Vec<Value> {
        self.stdout()
            .iter()
            .map(|l| match serde_json::from_str(l) {
                Ok(v @ Value::Object(_)) => v,
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

/// The binary under test: the one cargo built for this test run, or the one named by
/// `EXPORT_JOB_STATUS_BINARY` (the artifact cargo-lambda built, as `sam build` does), run
/// through `EXPORT_JOB_STATUS_RUNNER` when that is set (an emulator and its arguments, split on
/// whitespace: `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the arm64 artifact).
pub fn command() -> Command {
    let binary = std::env::var_os("EXPORT_JOB_STATUS_BINARY")
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_export-job-status").into());
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
