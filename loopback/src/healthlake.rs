//! A HealthLake stand-in on loopback. It speaks the service's wire protocol, awsJson1_0, for the
//! one operation the function uses: `POST /` with `X-Amz-Target: HealthLake.DescribeFHIRExportJob`,
//! a JSON body with `DatastoreId` and `JobId`, answers as `application/x-amz-json-1.0`, and errors
//! as `{"__type": ..., "message": ...}` with the service's HTTP codes. The real SDK client reaches
//! it through `AWS_ENDPOINT_URL_HEALTHLAKE` (or an endpoint override), signs, retries and times
//! out against it exactly as against AWS.
//!
//! Each job has a script of replies: each call takes the next one, and the last one repeats. Error
//! messages deliberately carry an ARN and an account id, so that tests can prove they never leak.

pub mod demo;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const TARGET: &str = "HealthLake.DescribeFHIRExportJob";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// What error messages from the stand-in carry, and what must never reach a caller.
pub const SECRET_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/HealthLakeExportRole";
pub const SECRET_KMS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
pub const SECRET_ACCOUNT: &str = "123456789012";

/// One answer to one call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with `{"ExportJobProperties": <this>}`.
    Job(Value),
    /// 200 with this whole body, verbatim (a body without required members, or not JSON).
    Raw(String),
    /// An error: HTTP status and the `__type` code.
    Error { status: u16, code: String },
    /// Waits, then answers.
    Delayed(Duration, Box<Reply>),
    /// Sends 200 and its headers, then never a byte of the body.
    HangAfterHeaders,
    /// 200 with a body of this many bytes of JSON-ish filler, streamed.
    Huge(usize),
    /// Closes the connection without answering.
    Drop,
    /// A job that moves on with time (see `Reply::moving`).
    Moving(Arc<Moving>),
}

impl Reply {
    pub fn error(status: u16, code: &str) -> Reply {
        Reply::Error {
            status,
            code: code.to_owned(),
        }
    }

    pub fn delayed(delay: Duration, then: Reply) -> Reply {
        Reply::Delayed(delay, Box::new(then))
    }

    /// A job that moves through `steps`: each `(after, status)` holds from `after` past the first
    /// call that gets this reply, so whoever asks first watches the whole run. The job was
    /// submitted at that first call and, once in a terminal status, ended when it got there.
    pub fn moving(datastore: &str, job: &str, steps: &[(Duration, &'static str)]) -> Reply {
        assert!(
            steps.first().is_some_and(|(after, _)| after.is_zero()),
            "the first step starts at once"
        );
        assert!(steps.windows(2).all(|w| w[0].0 < w[1].0), "steps come in order");
        Reply::Moving(Arc::new(Moving {
            datastore: datastore.to_owned(),
            job: job.to_owned(),
            steps: steps.to_vec(),
            first_call: OnceLock::new(),
        }))
    }
}

/// The state of a `Reply::moving` job; clones of the reply share its clock.
#[derive(Debug)]
pub struct Moving {
    datastore: String,
    job: String,
    steps: Vec<(Duration, &'static str)>,
    first_call: OnceLock<SystemTime>,
}

impl Moving {
    /// `ExportJobProperties` as of `now`, the clock starting at the first call.
    fn now(&self) -> Value {
        let now = SystemTime::now();
        self.props_at(*self.first_call.get_or_init(|| now), now)
    }

    fn props_at(&self, first_call: SystemTime, now: SystemTime) -> Value {
        let elapsed = now.duration_since(first_call).unwrap_or_default();
        let (after, status) = self
            .steps
            .iter()
            .rev()
            .find(|(after, _)| *after <= elapsed)
            .unwrap_or(&self.steps[0]);
        // Epoch seconds with milliseconds, as HealthLake sends them.
        let epoch = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
        };
        let mut props = job(&self.datastore, &self.job, status);
        props["SubmitTime"] = json!(epoch(first_call));
        if props.get("EndTime").is_some() {
            props["EndTime"] = json!(epoch(first_call + *after));
        }
        props
    }
}

/// `ExportJobProperties` as HealthLake returns it, with the members a real job has: the role, a
/// KMS key, and timestamps as epoch seconds. Terminal statuses get an `EndTime`.
pub fn job(datastore: &str, job: &str, status: &str) -> Value {
    let mut v = json!({
        "JobId": job,
        "JobName": format!("export-{job}"),
        "JobStatus": status,
        "SubmitTime": 1_700_000_000.123,
        "DatastoreId": datastore,
        "DataAccessRoleArn": SECRET_ROLE_ARN,
        "OutputDataConfig": {"S3Configuration": {"S3Uri": "s3://exports/healthlake/", "KmsKeyId": SECRET_KMS_KEY}},
    });
    if matches!(
        status,
        "COMPLETED" | "COMPLETED_WITH_ERRORS" | "FAILED" | "CANCEL_COMPLETED"
    ) {
        v["EndTime"] = json!(1_700_000_360.5);
    }
    if matches!(status, "FAILED" | "COMPLETED_WITH_ERRORS") {
        v["Message"] = json!(format!("Access denied writing as {SECRET_ROLE_ARN}"));
    }
    v
}

/// A call as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Call {
    pub target: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub datastore_id: Option<String>,
    pub job_id: Option<String>,
}

#[derive(Default)]
struct State {
    /// By job id: the datastore it lives in, the script, and how far the script has run.
    jobs: HashMap<String, (String, Vec<Reply>, usize)>,
    calls: Vec<Call>,
    connections: Vec<JoinHandle<()>>,
}

/// A running stand-in. It serves on its own thread, so it works from sync and async tests alike,
/// and stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

impl StandIn {
    /// Starts on 127.0.0.1 with a free port.
    pub fn start() -> StandIn {
        Self::start_on("127.0.0.1:0".parse().expect("a socket address"))
    }

    pub fn start_on(addr: SocketAddr) -> StandIn {
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let (addr, stop) =
            crate::spawn_server("loopback-healthlake", addr, move |stream| serve(stream, &served));
        StandIn {
            addr,
            state,
            stop: Some(stop),
        }
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL_HEALTHLAKE`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the replies for `job` in `datastore`. A call for the job in another datastore, or for
    /// an unknown job, gets `ResourceNotFoundException`.
    pub fn script(&self, datastore: &str, job: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a script needs at least one reply");
        self.lock()
            .jobs
            .insert(job.to_owned(), (datastore.to_owned(), replies, 0));
    }

    /// Shorthand: the job answers with this status on every call.
    pub fn put_job(&self, datastore: &str, job_id: &str, status: &str) {
        self.script(
            datastore,
            job_id,
            vec![Reply::Job(job(datastore, job_id, status))],
        );
    }

    /// Every call received so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls asked for `job`.
    pub fn calls_for(&self, job: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.job_id.as_deref() == Some(job))
            .count()
    }

    /// Closes every open connection, as a server does with idle ones while a Lambda execution
    /// environment is frozen: the client's pooled connection is dead when it next wakes.
    pub fn close_connections(&self) {
        for conn in self.lock().connections.drain(..) {
            conn.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves one connection, keeping its task so that `close_connections` can end it.
fn serve(stream: tokio::net::TcpStream, state: &Arc<Mutex<State>>) {
    let conn_state = state.clone();
    let task = tokio::spawn(async move {
        let service = service_fn(move |req| answer(conn_state.clone(), req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.connections.retain(|c| !c.is_finished());
    s.connections.push(task);
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn answer(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (target, content_type, authorization) = (
        header("x-amz-target"),
        header("content-type"),
        header("authorization"),
    );
    let post_root = req.method() == hyper::Method::POST && req.uri().path() == "/";
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let member = |name: &str| input.get(name).and_then(Value::as_str).map(str::to_owned);
    let call = Call {
        target: target.clone(),
        content_type: content_type.clone(),
        authorization: authorization.clone(),
        datastore_id: member("DatastoreId"),
        job_id: member("JobId"),
    };

    let reply = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.calls.push(call.clone());
        if !post_root || target.as_deref() != Some(TARGET) {
            Reply::error(400, "UnknownOperationException")
        } else if !content_type
            .as_deref()
            .is_some_and(|c| c.starts_with(CONTENT_TYPE))
        {
            Reply::error(400, "SerializationException")
        } else if !authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential="))
        {
            Reply::error(400, "MissingAuthenticationTokenException")
        } else if call.datastore_id.is_none() || call.job_id.is_none() {
            Reply::error(400, "ValidationException")
        } else {
            match s.jobs.get_mut(call.job_id.as_deref().unwrap_or_default()) {
                Some((ds, script, next)) if Some(ds.as_str()) == call.datastore_id.as_deref() => {
                    let reply = script[(*next).min(script.len() - 1)].clone();
                    *next += 1;
                    reply
                }
                _ => Reply::error(400, "ResourceNotFoundException"),
            }
        }
    };
    render(reply).await
}

async fn render(reply: Reply) -> Result<Response<Body>, std::io::Error> {
    let full = |status: u16, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", CONTENT_TYPE)
            .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")
            .body(Full::new(Bytes::from(body)).boxed())
            .expect("a valid response")
    };
    let mut reply = reply;
    loop {
        return Ok(match reply {
            Reply::Delayed(delay, then) => {
                tokio::time::sleep(delay).await;
                reply = *then;
                continue;
            }
            Reply::Job(props) => full(200, json!({ "ExportJobProperties": props }).to_string()),
            Reply::Moving(moving) => full(
                200,
                json!({ "ExportJobProperties": moving.now() }).to_string(),
            ),
            Reply::Raw(body) => full(200, body),
            Reply::Error { status, code } => full(
                status,
                json!({
                    "__type": format!("com.amazonaws.healthlake#{code}"),
                    "message": format!("{code}: request by {SECRET_ROLE_ARN} in account {SECRET_ACCOUNT} failed"),
                })
                .to_string(),
            ),
            Reply::HangAfterHeaders => streamed(Never.boxed()),
            Reply::Huge(len) => streamed(Filler { left: len }.boxed()),
            Reply::Drop => return Err(std::io::Error::other("dropped on purpose")),
        });
    }
}

fn streamed(body: Body) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", CONTENT_TYPE)
        .body(body)
        .expect("a valid response")
}

/// A body that never sends a byte.
struct Never;

impl hyper::body::Body for Never {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

/// A body of `left` spaces, made as it is sent so that the stand-in itself stays small.
struct Filler {
    left: usize,
}

impl hyper::body::Body for Filler {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const CHUNK: usize = 64 * 1024;
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: [(Duration, &str); 3] = [
        (Duration::ZERO, "SUBMITTED"),
        (Duration::from_secs(3), "IN_PROGRESS"),
        (Duration::from_secs(7), "COMPLETED"),
    ];

    fn moving(reply: &Reply) -> &Moving {
        match reply {
            Reply::Moving(m) => m,
            other => panic!("not a moving job: {other:?}"),
        }
    }

    #[test]
    fn a_moving_job_follows_its_steps_from_the_first_call() {
        let reply = Reply::moving("ds", "job", &STEPS);
        let m = moving(&reply);
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let at = |ms| m.props_at(start, start + Duration::from_millis(ms));
        for (ms, status) in [
            (0, "SUBMITTED"),
            (2_999, "SUBMITTED"),
            (3_000, "IN_PROGRESS"),
            (6_999, "IN_PROGRESS"),
            (7_000, "COMPLETED"),
            (60_000, "COMPLETED"),
        ] {
            let props = at(ms);
            assert_eq!(props["JobStatus"], status, "at {ms} ms");
            assert_eq!(props["JobId"], "job");
            assert_eq!(props["DatastoreId"], "ds");
            assert_eq!(props["SubmitTime"], 1_700_000_000.25, "at {ms} ms");
        }
        assert!(at(6_999).get("EndTime").is_none());
        // Ended when it got there, however late it is asked.
        assert_eq!(at(7_000)["EndTime"], 1_700_000_007.25);
        assert_eq!(at(60_000)["EndTime"], 1_700_000_007.25);
        // Before the first call (a clock step back): the first step.
        assert_eq!(
            m.props_at(start, start - Duration::from_secs(1))["JobStatus"],
            "SUBMITTED"
        );
    }

    #[test]
    fn clones_of_a_moving_reply_share_one_clock() {
        let reply = Reply::moving("ds", "job", &STEPS);
        let copy = reply.clone();
        let first = moving(&reply).now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(moving(&copy).now()["SubmitTime"], first["SubmitTime"]);
    }

    #[test]
    #[should_panic(expected = "the first step starts at once")]
    fn a_moving_job_starts_at_its_first_step() {
        Reply::moving("ds", "job", &STEPS[1..]);
    }
}
