//! A Lambda Runtime API stand-in on loopback: the HTTP API through which Lambda hands a custom
//! runtime its events and takes back its answers. A function binary started with
//! `AWS_LAMBDA_RUNTIME_API` set to [`RuntimeApi::host_port`] runs exactly as it does in Lambda.
//!
//! The paths are the real ones (version `2018-06-01`):
//! - `GET  /runtime/invocation/next` blocks until an event is queued, then answers with the event
//!   and the headers `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` (epoch ms),
//!   `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id`;
//! - `POST /runtime/invocation/{id}/response` and `POST /runtime/invocation/{id}/error` take the
//!   function's answer (202; an unknown or already answered id gets 400);
//! - `POST /runtime/init/error` takes a start-up failure.
//!
//! [`RuntimeApi::invoke`] queues an event and blocks until the function has answered it. Every
//! invocation keeps its timestamps (queued, taken, answered, deadline), and the first `/next` poll
//! is recorded, so that a benchmark can measure start-up and per-event latency from outside.
//! Like Lambda, one event is handed to one poller. A poll whose connection closes (its process was
//! killed) is dropped with the connection and takes no event with it, so a new process can be
//! started against the same API. Unlike Lambda, nothing is enforced at the deadline: the
//! stand-in only reports when the answer came.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, Notify};

/// Matches `AWS_LAMBDA_FUNCTION_NAME` in the function's environment; the account is fictitious.
pub const FUNCTION_NAME: &str = "export-job-status";
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:export-job-status";
/// The role's credentials in [`lambda_environment`]: static, fictitious, and never to be logged.
pub const ACCESS_KEY_ID: &str = "AKIAFAULTTESTEXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "faultSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const SESSION_TOKEN: &str = "faultSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE";

/// The environment Lambda gives a custom runtime (its variables, the role's credentials as
/// environment variables), with HealthLake at `healthlake_url` and nothing on this machine
/// able to supply other credentials. The test harness and the benchmark start every build with
/// exactly this, plus what they add.
pub fn lambda_environment(api: &RuntimeApi, healthlake_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.host_port()),
        ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{FUNCTION_NAME}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".into(),
        ),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN.into()),
        ("AWS_ENDPOINT_URL_HEALTHLAKE", healthlake_url.into()),
        // No profile, no instance metadata: nothing here can supply other credentials.
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("TZ", ":UTC".into()),
    ]
}

/// How long [`RuntimeApi::invoke`] waits for the function to take a queued event (its start-up
/// included, for the first one) before giving up on it.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past the deadline [`RuntimeApi::invoke`] still waits for an answer.
pub const ANSWER_GRACE: Duration = Duration::from_secs(2);

const PREFIX: &str = "/2018-06-01/runtime/";

/// What the function posted for one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The body of `/invocation/{id}/response`: JSON, or a JSON string if it was not JSON.
    Response(Value),
    /// The body of `/invocation/{id}/error` (lambda_runtime posts `errorType` and `errorMessage`).
    Error(Value),
    /// Nothing in time: the event was not taken within [`DELIVERY_TIMEOUT`], or not answered
    /// within the deadline plus [`ANSWER_GRACE`].
    NoAnswer,
}

/// One event's life, as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The `Lambda-Runtime-Aws-Request-Id` the event was handed out with.
    pub request_id: String,
    /// When [`RuntimeApi::invoke`] queued it.
    pub queued: Instant,
    /// When a `/next` poll took it.
    pub delivered: Option<Instant>,
    /// The deadline the function was given: the moment of delivery plus the invoke's budget.
    pub deadline: Option<Instant>,
    /// When the response or error arrived.
    pub answered: Option<Instant>,
    pub outcome: Outcome,
}

struct Queued {
    request_id: String,
    event: Bytes,
    budget: Duration,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    invocations: Vec<Invocation>,
    first_poll: Option<Instant>,
    /// Every body posted to `/invocation/{id}/error`, by request id, accepted or not.
    error_posts: Vec<(String, Value)>,
    init_errors: Vec<Value>,
}

impl State {
    fn invocation(&mut self, request_id: &str) -> Option<&mut Invocation> {
        self.invocations.iter_mut().find(|i| i.request_id == request_id)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes blocked `invoke` callers (plain threads) when an invocation or the first poll changes.
    changed: Condvar,
    /// Wakes pending `/next` polls (server tasks) when an event is queued.
    queued: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running Runtime API. It serves on its own thread, so that [`invoke`](Self::invoke) can
/// block the caller's thread, and stops when dropped: a function still polling then sees its
/// connection closed and exits, as it does when Lambda shuts an execution environment down.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl RuntimeApi {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start() -> RuntimeApi {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            queued: Notify::new(),
        });
        let served = shared.clone();
        let (addr, stop) = crate::spawn_server(
            "loopback-runtime-api",
            "127.0.0.1:0".parse().expect("a socket address"),
            move |stream| serve(stream, &served),
        );
        RuntimeApi {
            addr,
            shared,
            stop: Some(stop),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, the form Lambda puts in `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event`, to be answered within `deadline` of being taken, and blocks until the
    /// function has posted its answer (or [`Outcome::NoAnswer`], see there).
    pub fn invoke(&self, event: Value, deadline: Duration) -> Outcome {
        self.invoke_timed(event, deadline).outcome
    }

    /// [`invoke`](Self::invoke), returning the whole record with its request id and timestamps.
    pub fn invoke_timed(&self, event: Value, deadline: Duration) -> Invocation {
        let request_id = new_request_id();
        let queued = Instant::now();
        {
            let mut state = self.shared.lock();
            state.queue.push_back(Queued {
                request_id: request_id.clone(),
                event: Bytes::from(event.to_string()),
                budget: deadline,
            });
            state.invocations.push(Invocation {
                request_id: request_id.clone(),
                queued,
                delivered: None,
                deadline: None,
                answered: None,
                outcome: Outcome::NoAnswer,
            });
        }
        self.shared.queued.notify_waiters();

        let mut state = self.shared.lock();
        loop {
            let inv = state.invocation(&request_id).expect("recorded above");
            if inv.answered.is_some() {
                return inv.clone();
            }
            let give_up = match inv.deadline {
                Some(deadline) => deadline + ANSWER_GRACE,
                None => queued + DELIVERY_TIMEOUT,
            };
            let now = Instant::now();
            if now >= give_up {
                let inv = inv.clone();
                // Never taken: withdraw it, so that a later poll does not get a stale event.
                state.queue.retain(|q| q.request_id != request_id);
                return inv;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, give_up - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// When the first `/next` poll arrived: the moment the function finished its start-up.
    pub fn first_poll(&self) -> Option<Instant> {
        self.shared.lock().first_poll
    }

    /// Blocks until the first `/next` poll has arrived, for at most `timeout`.
    pub fn wait_for_first_poll(&self, timeout: Duration) -> Option<Instant> {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.first_poll.is_none())
            .unwrap_or_else(|p| p.into_inner());
        state.first_poll
    }

    /// Every invocation so far, in the order they were queued.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.shared.lock().invocations.clone()
    }

    /// Every `/invocation/{id}/error` post, with its request id, including any the stand-in
    /// refused (a function that answers first and then reports an error shows here).
    pub fn error_posts(&self) -> Vec<(String, Value)> {
        self.shared.lock().error_posts.clone()
    }

    /// The bodies posted to `/init/error`.
    pub fn init_errors(&self) -> Vec<Value> {
        self.shared.lock().init_errors.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Request ids shaped like Lambda's (UUIDs), unique within the test process.
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Serves one connection; its task ends with the runtime when the server stops.
fn serve(stream: tokio::net::TcpStream, shared: &Arc<Shared>) {
    let conn_shared = shared.clone();
    tokio::spawn(async move {
        let service = service_fn(move |req| answer(conn_shared.clone(), req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
}

type Body = Full<Bytes>;

async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let segments: Vec<&str> = match path.strip_prefix(PREFIX) {
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(),
    };
    Ok(match (method, segments.as_slice()) {
        (Method::GET, ["invocation", "next"]) => next(&shared).await,
        (Method::POST, ["invocation", id, "response"]) => {
            record_answer(&shared, id, Outcome::Response(json_or_string(&body)))
        }
        (Method::POST, ["invocation", id, "error"]) => {
            let error = json_or_string(&body);
            shared.lock().error_posts.push((id.to_string(), error.clone()));
            record_answer(&shared, id, Outcome::Error(error))
        }
        (Method::POST, ["init", "error"]) => {
            shared.lock().init_errors.push(json_or_string(&body));
            shared.changed.notify_all();
            accepted()
        }
        _ => problem(StatusCode::NOT_FOUND, "UnknownPath", "No such Runtime API path"),
    })
}

/// Blocks until an event is queued and hands it to this poller.
async fn next(shared: &Shared) -> Response<Body> {
    {
        let mut state = shared.lock();
        if state.first_poll.is_none() {
            state.first_poll = Some(Instant::now());
            shared.changed.notify_all();
        }
    }
    loop {
        // Registered before looking at the queue, so that an event queued in between still wakes us.
        let notified = shared.queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(resp) = take_next(shared) {
            return resp;
        }
        notified.await;
    }
}

fn take_next(shared: &Shared) -> Option<Response<Body>> {
    let mut state = shared.lock();
    let queued = state.queue.pop_front()?;
    let now = Instant::now();
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch");
    let deadline_ms = (epoch + queued.budget).as_millis();
    let inv = state
        .invocation(&queued.request_id)
        .expect("queued events are recorded");
    inv.delivered = Some(now);
    inv.deadline = Some(now + queued.budget);
    shared.changed.notify_all();
    let epoch_secs = epoch.as_secs();
    let serial = queued.request_id.rsplit('-').next().unwrap_or_default();
    Some(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", queued.request_id.as_str())
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", FUNCTION_ARN)
            .header(
                "lambda-runtime-trace-id",
                format!("Root=1-{epoch_secs:08x}-000000000000{serial};Parent={serial:0>16};Sampled=0"),
            )
            .body(Full::new(queued.event))
            .expect("a valid response"),
    )
}

fn record_answer(shared: &Shared, request_id: &str, outcome: Outcome) -> Response<Body> {
    let mut state = shared.lock();
    let Some(inv) = state.invocation(request_id).filter(|i| i.delivered.is_some()) else {
        return problem(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID");
    };
    if inv.answered.is_some() {
        return problem(
            StatusCode::BAD_REQUEST,
            "InvalidStateTransition",
            "The invocation was already answered",
        );
    }
    inv.answered = Some(Instant::now());
    inv.outcome = outcome;
    shared.changed.notify_all();
    accepted()
}

fn json_or_string(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn accepted() -> Response<Body> {
    json_response(StatusCode::ACCEPTED, json!({"status": "OK"}))
}

/// Errors in the Runtime API's own shape.
fn problem(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    json_response(status, json!({"errorMessage": message, "errorType": error_type}))
}

fn json_response(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One HTTP/1.1 exchange over a fresh connection; returns the whole answer as text.
    fn exchange(api: &RuntimeApi, method: &str, path: &str, body: &str) -> String {
        let mut conn = std::net::TcpStream::connect(api.addr()).expect("connect");
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            api.host_port(),
            body.len()
        )
        .expect("send");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("read");
        answer
    }

    fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
        answer.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    #[test]
    fn hands_out_an_event_and_takes_exactly_one_answer() {
        let api = Arc::new(RuntimeApi::start());
        let invoker = api.clone();
        let invocation = std::thread::spawn(move || {
            invoker.invoke_timed(json!({"hello": "world"}), Duration::from_secs(3))
        });

        let next = exchange(&api, "GET", "/2018-06-01/runtime/invocation/next", "");
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(next.ends_with(r#"{"hello":"world"}"#), "{next}");
        let id = header(&next, "lambda-runtime-aws-request-id")
            .expect("a request id")
            .to_owned();
        assert_eq!(
            header(&next, "lambda-runtime-invoked-function-arn"),
            Some(FUNCTION_ARN)
        );
        assert!(header(&next, "lambda-runtime-trace-id").is_some_and(|t| t.starts_with("Root=1-")));
        let deadline_ms: u128 = header(&next, "lambda-runtime-deadline-ms")
            .unwrap()
            .parse()
            .unwrap();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert!(
            (now_ms + 2_000..=now_ms + 3_000).contains(&deadline_ms),
            "{deadline_ms} vs {now_ms}"
        );

        let path = format!("/2018-06-01/runtime/invocation/{id}/response");
        assert!(exchange(&api, "POST", &path, r#"{"statusCode":200}"#).starts_with("HTTP/1.1 202"));
        let inv = invocation.join().unwrap();
        assert_eq!(inv.request_id, id);
        assert_eq!(inv.outcome, Outcome::Response(json!({"statusCode": 200})));
        assert!(api.first_poll().unwrap() <= inv.delivered.unwrap());
        assert!(inv.delivered.unwrap() <= inv.answered.unwrap());

        // A second answer for the same event, or one for an event never handed out, is refused.
        let error = format!("/2018-06-01/runtime/invocation/{id}/error");
        assert!(exchange(&api, "POST", &error, "{}").starts_with("HTTP/1.1 400"));
        assert_eq!(api.error_posts(), vec![(id, json!({}))]);
        let unknown = "/2018-06-01/runtime/invocation/nope/response";
        assert!(exchange(&api, "POST", unknown, "{}").starts_with("HTTP/1.1 400"));
        assert!(exchange(&api, "GET", "/2018-06-01/runtime/other", "").starts_with("HTTP/1.1 404"));
        assert_eq!(api.invocations().len(), 1);
    }
}
