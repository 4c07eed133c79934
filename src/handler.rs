//! The handler: one HTTP request in, one HTTP response out, whatever happens. Tests call it
//! directly; `main` lends it the client, the configuration and the cache built once at start-up.

use crate::cache::TerminalCache;
use crate::config::Config;
use crate::error::{Error, UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use crate::job::JobView;
use crate::response::Reply;
use crate::scope::{Caller, Scope};
use crate::{route, upstream};
use aws_sdk_healthlake::Client;
use futures_util::FutureExt;
use lambda_http::http::{header, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept back from the Lambda deadline so that our 504 reaches the caller before Lambda stops us.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// Everything a request needs that outlives it: built once per execution environment.
pub struct App {
    client: Client,
    config: Config,
    cache: TerminalCache,
    /// Who may read which datastore; `main` connects it to the status table.
    scope: Scope,
}

impl App {
    pub fn new(client: Client, config: Config) -> Self {
        App {
            client,
            scope: Scope::new(config.scope.clone()),
            config,
            cache: TerminalCache::default(),
        }
    }

    /// Reads partner mappings from `STATUS_TABLE` through a DynamoDB client built from `sdk`
    /// (see `scope`); without this, API-key callers read nothing.
    pub fn connect_status_table(&mut self, sdk: &aws_config::SdkConfig) {
        self.scope.connect(sdk);
    }
}

/// What the request's log line says besides status and timings.
#[derive(Default)]
struct Trace {
    datastore_id: Option<DatastoreId>,
    job_id: Option<JobId>,
    upstream_ms: Option<u64>,
    cache_hit: bool,
    /// "granted", or why the caller was refused (`scope::Denial`).
    access: Option<&'static str>,
    /// The partner's label from its mapping.
    partner: Option<String>,
}

/// Answers one request. Never fails and never panics outward: a panic inside becomes a 500
/// problem, and every request leaves exactly one JSON log line.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let started = Instant::now();
    let reply = Reply::for_request(&req, request_id(&req), &app.config.allowed_origins);
    let mut trace = Trace::default();
    let caller = Caller::of(&req);
    let outcome = AssertUnwindSafe(respond(app, &req, &caller, &reply, &mut trace))
        .catch_unwind()
        .await;
    let (resp, upstream_code) = match outcome {
        Ok(Ok(resp)) => (resp, None),
        Ok(Err(err)) => (reply.problem(&err), err.upstream_code().map(str::to_owned)),
        Err(_panic) => (reply.problem(&Error::Internal), None),
    };
    tracing::info!(
        request_id = %reply.request_id,
        method = %req.method(),
        datastore_id = trace.datastore_id.as_ref().map(DatastoreId::as_str),
        job_id = trace.job_id.as_ref().map(JobId::as_str),
        caller_kind = caller.kind(),
        caller_id = caller.id(),
        partner = trace.partner.as_deref(),
        access = trace.access,
        status = resp.status().as_u16(),
        upstream_error = upstream_code.as_deref(),
        upstream_ms = trace.upstream_ms,
        cache_hit = trace.cache_hit,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

async fn respond(
    app: &App,
    req: &Request,
    caller: &Caller,
    reply: &Reply,
    trace: &mut Trace,
) -> Result<Response<Body>, Error> {
    let raw = route::match_route(req).ok_or(Error::NoRoute)?;
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::OPTIONS => return Ok(reply.options()),
        _ => return Err(Error::MethodNotAllowed),
    }
    let (datastore, job) = raw.parse()?;
    trace.datastore_id = Some(datastore.clone());
    trace.job_id = Some(job.clone());
    if !app.config.datastore_allowed(&datastore) {
        return Err(Error::DatastoreNotAllowed);
    }
    // Refused like a datastore that is not served: the answer tells nothing about what exists.
    let grant = app.scope.authorize(caller, &datastore).await.map_err(|denial| {
        trace.access = Some(denial.as_str());
        Error::DatastoreNotAllowed
    })?;
    trace.access = Some("granted");
    trace.partner = grant.partner;
    let fields = grant.fields;

    let rendered = match app.cache.get(&datastore, &job, fields) {
        Some(hit) => {
            trace.cache_hit = true;
            hit
        }
        None => {
            let budget = upstream_budget(app.config.upstream_timeout, req)?;
            let started = Instant::now();
            let answer = upstream::describe_export_job(&app.client, &datastore, &job, budget).await;
            trace.upstream_ms = Some(started.elapsed().as_millis() as u64);
            let mut view = JobView::from_sdk(&datastore, &job, &answer?)?;
            fields.apply(&mut view);
            let rendered = Arc::new(view.render());
            app.cache
                .insert_if_terminal(&datastore, &job, fields, rendered.clone());
            rendered
        }
    };
    Ok(reply.job(&rendered, req.headers().get(header::IF_NONE_MATCH), now_epoch()))
}

/// Lambda runs an invocation for at most 15 minutes, so a deadline further in the past than that
/// is no deadline: `cargo lambda watch` sends a fixed `Lambda-Runtime-Deadline-Ms: 600000`.
const MAX_LAMBDA_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The configured budget, capped by the time left before the Lambda deadline minus a margin.
fn upstream_budget(configured: Duration, req: &Request) -> Result<Duration, Error> {
    let Some(deadline) = req
        .lambda_context_ref()
        .filter(|c| c.deadline > 0)
        .map(|c| c.deadline())
        .filter(|d| {
            SystemTime::now()
                .duration_since(*d)
                .map_or(true, |late| late < MAX_LAMBDA_TIMEOUT)
        })
    else {
        return Ok(configured);
    };
    match deadline
        .duration_since(SystemTime::now())
        .ok()
        .and_then(|left| left.checked_sub(DEADLINE_MARGIN))
    {
        Some(left) if !left.is_zero() => Ok(configured.min(left)),
        _ => Err(UpstreamError::new(UpstreamKind::Timeout, "DeadlineTooClose").into()),
    }
}

/// API Gateway's request id where the event has one, else the Lambda request id, else (a plain
/// HTTP request to the local server) a process-local counter.
fn request_id(req: &Request) -> String {
    let from_gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    from_gateway
        .filter(|id| !id.is_empty())
        .or_else(|| {
            req.lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|id| !id.is_empty())
        })
        .unwrap_or_else(|| {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            format!("local-{}", NEXT.fetch_add(1, Ordering::Relaxed))
        })
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
