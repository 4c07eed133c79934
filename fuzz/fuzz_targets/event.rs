//! An arbitrary Lambda event through everything the function does with one: its own event
//! parsing (`lambda::Incoming`), lambda_http's conversion to a request, the handler with the
//! real SDK client (its HTTP client answers in-process), and lambda_http's conversion of the
//! response to the event source's shape.
//!
//! Input: `event [0x00 selector upstream...]`. The event is JSON (the seeds are events/); JSON
//! text never holds a raw 0x00, so what follows one says how HealthLake answers (see
//! `Upstream::decode`). Without it HealthLake answers with a running job for the ids asked.
//!
//! Checked on every response: the status is one the contract has, the Content-Type and body
//! match it (JSON document, problem+json, or empty for HEAD, 204 and 304), the headers the
//! contract requires are there, no account secret that HealthLake sent comes back, and every log
//! line is a JSON object without them. A panic anywhere aborts (libFuzzer's panic hook), even
//! one the handler would turn into a 500.
#![no_main]

use aws_credential_types::Credentials;
use aws_sdk_healthlake::config::Region;
use aws_sdk_healthlake::types::JobStatus;
use aws_smithy_http_client::test_util::infallible_client_fn;
use export_job_status::aws::sdk_config_loader;
use export_job_status::config::{AllowedOrigins, Config};
use export_job_status::handler::{handle, App};
use export_job_status::job::is_terminal;
use export_job_status::lambda::{answer, Incoming, Outcome};
use lambda_http::http::{self, Method};
use lambda_http::{Adapter, Body, Context, LambdaEvent, Request, Response};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

const ACCOUNT: &str = "210987654321";
const ROLE_ARN: &str = "arn:aws:iam::210987654321:role/FuzzSecretRole";
const KEY_ID: &str = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
const KMS_ARN: &str = "arn:aws:kms:us-east-1:210987654321:key/0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";
const PROBLEM: &str = "urn:problem-type:export-job-status:";

/// How HealthLake answers this input's call.
#[derive(Clone)]
enum Upstream {
    /// 200 with a job for the ids asked: a status, message and output URI from the input.
    Job {
        status: String,
        message: Option<String>,
        uri: Option<String>,
        submit: f64,
        end: Option<f64>,
    },
    /// An awsJson error with this code.
    Error { http: u16, code: String },
    /// Any status, any body.
    Raw { http: u16, body: Vec<u8> },
}

impl Upstream {
    fn decode(tail: Option<&[u8]>) -> Upstream {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let Some((&sel, rest)) = tail.and_then(<[u8]>::split_first) else {
            return Upstream::Job {
                status: "IN_PROGRESS".into(),
                message: Some(format!("Exporting as {ROLE_ARN} for account {ACCOUNT}")),
                uri: Some(format!("s3://exports-{ACCOUNT}/healthlake/")),
                submit: 1_700_000_000.123,
                end: None,
            };
        };
        match sel % 4 {
            0 => Upstream::Raw {
                http: 200,
                body: rest.to_vec(),
            },
            1 => {
                let mut parts = rest.splitn(3, |&b| b == 0).map(lossy);
                // Ordinary, far-future, before-year-0 and fractional times, by the selector's bits.
                let submit = match (sel >> 2) & 3 {
                    0 => 1_700_000_000.123,
                    1 => 1e20,
                    2 => -1e11,
                    _ => f64::from(sel) * 1e7 + 0.999_999_9,
                };
                Upstream::Job {
                    status: parts.next().unwrap_or_default(),
                    message: parts.next(),
                    uri: parts.next(),
                    submit,
                    end: (sel & 0x10 != 0).then_some(submit + 60.5),
                }
            }
            2 => Upstream::Error {
                http: [400, 403, 404, 409, 413, 429, 500, 502, 503, 504][usize::from(sel / 4) % 10],
                code: lossy(rest),
            },
            _ => match rest {
                [hi, lo, body @ ..] => Upstream::Raw {
                    http: 100 + u16::from_be_bytes([*hi, *lo]) % 500,
                    body: body.to_vec(),
                },
                _ => Upstream::Raw {
                    http: 500,
                    body: Vec::new(),
                },
            },
        }
    }

    /// The wire answer to a DescribeFHIRExportJob call whose input was `input`.
    fn answer(&self, input: &[u8]) -> http::Response<Vec<u8>> {
        let input: Value = serde_json::from_slice(input).unwrap_or(Value::Null);
        let (status, body) = match self {
            Upstream::Job {
                status,
                message,
                uri,
                submit,
                end,
            } => {
                let mut props = json!({
                    "JobId": input["JobId"],
                    "DatastoreId": input["DatastoreId"],
                    "JobName": "fuzz",
                    "JobStatus": status,
                    "SubmitTime": submit,
                    "DataAccessRoleArn": ROLE_ARN,
                    "OutputDataConfig": {"S3Configuration": {"S3Uri": uri, "KmsKeyId": KMS_ARN}},
                });
                if let Some(m) = message {
                    props["Message"] = json!(m);
                }
                if let Some(e) = end {
                    props["EndTime"] = json!(e);
                }
                (
                    200,
                    json!({ "ExportJobProperties": props }).to_string().into_bytes(),
                )
            }
            Upstream::Error { http, code } => (
                *http,
                json!({"__type": code, "message": format!("denied for {ROLE_ARN} with {KMS_ARN}")})
                    .to_string()
                    .into_bytes(),
            ),
            Upstream::Raw { http, body } => (*http, body.clone()),
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .body(body)
            .expect("a valid response")
    }
}

/// What outlives one input: the runtime, the SDK client (built once, as in Lambda), the
/// upstream answer for the current input, and the log lines it produced.
struct World {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_healthlake::Client,
    config: Config,
}

static UPSTREAM: Mutex<Option<Upstream>> = Mutex::new(None);
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    // libFuzzer's hook aborts on every panic. lambda_http's request conversion panics on some
    // events (a Host header with a bad port, a body that is not base64), and `lambda::answer`
    // catches exactly that and answers 400; every other panic still aborts.
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_conversion = info.location().is_some_and(|l| {
            (l.file().contains("lambda_http") && l.file().ends_with("request.rs"))
                || (l.file().contains("aws_lambda_events") && l.file().ends_with("encodings/http.rs"))
        });
        if !in_conversion {
            fuzzer_hook(info);
        }
    }));
    // The function's own log format and filter (its crate at TRACE, every other at WARN), into
    // a buffer.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,export_job_status=trace"))
        .with_writer(|| LogSink)
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    // One attempt: retries would only add backoff sleeps to every input.
    let config = Config {
        allowed_origins: AllowedOrigins::List(vec!["https://app.example.com".into()]),
        max_attempts: 1,
        upstream_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let sdk = rt.block_on(
        sdk_config_loader(&config)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDFUZZ",
                "fuzz-secret",
                Some("fuzz-token".into()),
                None,
                "fuzz",
            ))
            .http_client(infallible_client_fn(|req: http::Request<_>| {
                let upstream = UPSTREAM
                    .lock()
                    .unwrap()
                    .clone()
                    .expect("an upstream for this input");
                upstream.answer(req.body().bytes().unwrap_or_default())
            }))
            .load(),
    );
    World {
        rt,
        client: aws_sdk_healthlake::Client::new(&sdk),
        config,
    }
});

fuzz_target!(|data: &[u8]| {
    let world = &*WORLD;
    let (event, tail) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    *UPSTREAM.lock().unwrap() = Some(Upstream::decode(tail));
    LOGS.lock().unwrap().clear();

    let Ok(incoming) = serde_json::from_slice::<Incoming>(event) else {
        return;
    };
    // A fresh cache per input keeps every input reproducible on its own.
    let app = App::new(world.client.clone(), world.config.clone());
    let mut adapter = Adapter::from(lambda_http::service_fn(|req: Request| async {
        let method = req.method().clone();
        let resp = handle(&app, req).await;
        check(&method, &resp);
        Ok::<_, Infallible>(resp)
    }));
    let mut context = Context::default();
    context.request_id = "fuzz-request".into();
    let outcome = world
        .rt
        .block_on(answer(&mut adapter, LambdaEvent::new(incoming, context)))
        .expect("infallible");
    // The answer the runtime posts, in the event source's shape.
    let shaped = serde_json::to_value(&outcome).expect("the answer serializes");
    assert!(shaped["statusCode"].is_u64(), "{shaped}");
    if let Outcome::Refused(_) = outcome {
        assert_eq!(shaped["statusCode"], 400);
        let body: Value = serde_json::from_str(shaped["body"].as_str().expect("a body")).expect("JSON");
        assert!(
            [
                format!("{PROBLEM}not-an-http-event"),
                format!("{PROBLEM}unreadable-request")
            ]
            .iter()
            .any(|t| body["type"] == *t),
            "{body}"
        );
        assert_eq!(body["requestId"], "fuzz-request");
    }

    let secrets_in_input = [ACCOUNT, KEY_ID].iter().any(|s| contains(data, s.as_bytes()));
    let shaped = shaped.to_string();
    if !secrets_in_input {
        for secret in [ACCOUNT, KEY_ID, ROLE_ARN, KMS_ARN] {
            assert!(!shaped.contains(secret), "the response leaks {secret}: {shaped}");
        }
    }
    let logs = std::mem::take(&mut *LOGS.lock().unwrap());
    for line in logs.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let parsed: Value = serde_json::from_slice(line).expect("a log line is JSON");
        assert!(parsed.is_object());
        for secret in [
            "fuzz-secret",
            "fuzz-token",
            "Signature=",
            ROLE_ARN,
            KMS_ARN,
            "denied for",
        ] {
            assert!(
                !contains(line, secret.as_bytes()) || contains(event, secret.as_bytes()),
                "a log line carries {secret}: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
});

/// The contract for one response to a request with `method`.
fn check(method: &Method, resp: &Response<Body>) {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    };
    assert!(
        [200, 204, 304, 400, 404, 405, 429, 500, 502, 503, 504].contains(&status),
        "status {status}"
    );
    assert_eq!(header("x-content-type-options"), Some("nosniff"));
    let empty = *method == Method::HEAD || status == 204 || status == 304;
    let text = match resp.body() {
        Body::Empty if empty => None,
        Body::Text(t) if !empty => Some(t.as_str()),
        other => panic!("{method} {status}: body {other:?}"),
    };
    match status {
        200 | 304 => {
            let etag = header("etag").expect("an ETag");
            assert!(
                etag.len() == 18
                    && etag.starts_with('"')
                    && etag.ends_with('"')
                    && etag[1..17]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{etag}"
            );
            assert!(header("cache-control").is_some());
            if status == 200 {
                assert_eq!(header("content-type"), Some("application/json"));
            }
            if let Some(text) = text {
                check_job(text, header("retry-after"));
            }
        }
        204 => assert_eq!(header("allow"), Some("GET, HEAD, OPTIONS")),
        _ => {
            assert_eq!(header("content-type"), Some("application/problem+json"));
            assert_eq!(header("cache-control"), Some("no-store"));
            if status == 405 {
                assert_eq!(header("allow"), Some("GET, HEAD, OPTIONS"));
            }
            if status == 429 || status == 503 {
                assert_eq!(header("retry-after"), Some("1"));
            }
            if let Some(text) = text {
                let p: Value = serde_json::from_str(text).expect("a problem is JSON");
                let obj = p.as_object().expect("a problem is an object");
                let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                keys.sort_unstable();
                assert_eq!(keys, ["detail", "requestId", "status", "title", "type"]);
                assert_eq!(p["status"], status);
                let slug = p["type"]
                    .as_str()
                    .and_then(|t| t.strip_prefix(PROBLEM))
                    .expect("type");
                assert!(!slug.is_empty() && slug.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
                // The handler turns a panic into internal-error; none may happen here.
                assert_ne!(slug, "internal-error");
                assert!(p["requestId"].as_str().is_some_and(|r| !r.is_empty()));
            }
        }
    }
}

fn check_job(text: &str, retry_after: Option<&str>) {
    let job: Value = serde_json::from_str(text).expect("a job is JSON");
    let obj = job.as_object().expect("a job is an object");
    for key in obj.keys() {
        assert!(
            [
                "datastoreId",
                "jobId",
                "jobName",
                "status",
                "terminal",
                "submittedAt",
                "endedAt",
                "message",
                "outputS3Uri"
            ]
            .contains(&key.as_str()),
            "{key}"
        );
    }
    let status = job["status"].as_str().expect("a status");
    assert!(
        !status.is_empty()
            && status
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    );
    let terminal = is_terminal(&JobStatus::from(status));
    assert_eq!(job["terminal"], terminal);
    assert_eq!(retry_after.is_some(), !terminal);
    for id in ["datastoreId", "jobId"] {
        let n = job[id].as_str().expect("an id").chars().count();
        assert!((1..=32).contains(&n));
    }
    for key in ["submittedAt", "endedAt"] {
        if let Some(t) = job.get(key) {
            let t = t.as_str().expect("a timestamp");
            let b = t.as_bytes();
            assert!(
                b.len() == 24
                    && b.iter().enumerate().all(|(i, c)| match i {
                        4 | 7 => *c == b'-',
                        10 => *c == b'T',
                        13 | 16 => *c == b':',
                        19 => *c == b'.',
                        23 => *c == b'Z',
                        _ => c.is_ascii_digit(),
                    }),
                "{t}"
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
