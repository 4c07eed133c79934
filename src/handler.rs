//! The handler: one HTTP request in, one HTTP response out, whatever happens. The only module
//! that combines the stages: `route` (where the ids are), `access` (may this caller read this
//! datastore, and which fields), `lookup` (the answer, from memory, the fleet's table or
//! HealthLake) and `reply` (the HTTP answer). Tests call it directly; `main` lends it the clients,
//! the configuration and the caches built once at start-up.

use crate::access::{Access, Caller};
use crate::config::Config;
use crate::error::{Error, UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use crate::lookup::{self, Lookup, Spent};
use crate::reply::{self, Reply};
use crate::telemetry::metrics;
use crate::{aws, route};
use futures_util::FutureExt;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept back from the Lambda deadline so that our 504 reaches the caller before Lambda stops us.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// Everything a request needs that outlives it: built once per execution environment.
pub struct App {
    config: Config,
    /// Who may read which datastore.
    access: Access,
    /// Where answers come from.
    lookup: Lookup,
}

impl App {
    /// With this HealthLake client, memory only, and no partner mappings (API-key callers read
    /// nothing): what in-process tests start from.
    pub fn new(client: aws_sdk_healthlake::Client, config: Config) -> Self {
        App {
            access: Access::new(config.access.clone(), None),
            lookup: Lookup::new(aws::lazy(move || client)),
            config,
        }
    }

    /// The app as Lambda runs it: every client built from `sdk` (`aws`), HealthLake's when first
    /// needed, with the shared tier and partner mappings on `STATUS_TABLE` when that is set.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        let partners = config.status_table.clone().map(|t| (aws::partner_table(sdk), t));
        App {
            access: Access::new(config.access.clone(), partners),
            lookup: Lookup::new(aws::healthlake(sdk)),
            config,
        }
        .with_fleet(sdk)
    }

    /// As [`App::new`], with the shared tier on `STATUS_TABLE` through a DynamoDB client built
    /// from `sdk`; without the variable, unchanged.
    pub fn with_fleet(mut self, sdk: &aws_config::SdkConfig) -> Self {
        if let Some(table) = self.config.status_table.clone() {
            let client = aws::status_table(sdk, &self.config);
            self.lookup = self.lookup.with_shared(&self.config, client, table);
        }
        self
    }
}

/// What the request's log line says besides status and timings.
#[derive(Default)]
struct Trace {
    datastore_id: Option<DatastoreId>,
    job_id: Option<JobId>,
    upstream_ms: Option<f64>,
    /// HTTP requests sent to HealthLake, retries included.
    upstream_calls: Option<u32>,
    /// Whether the memory cache answered, where it was asked.
    memory_cache_hit: Option<bool>,
    /// With the shared tier: which tier answered (memory, table, healthlake, stale).
    tier: Option<&'static str>,
    /// "granted", or why the caller was refused (`access::Denial`).
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
    let (resp, upstream_code, slug) = match outcome {
        Ok(Ok(resp)) => (resp, None, None),
        Ok(Err(err)) => (
            reply.problem(&err),
            err.upstream_code().map(str::to_owned),
            Some(err.case().slug),
        ),
        Err(_panic) => (
            reply.problem(&Error::Internal),
            None,
            Some(Error::Internal.case().slug),
        ),
    };
    let status = resp.status();
    // The request's log line, which is also its metrics (see `metrics`).
    tracing::info!(
        target: metrics::TARGET,
        request_id = %reply.request_id,
        method = %req.method(),
        datastore_id = trace.datastore_id.as_ref().map(DatastoreId::as_str),
        job_id = trace.job_id.as_ref().map(JobId::as_str),
        caller_kind = caller.kind(),
        caller_id = caller.id(),
        partner = trace.partner.as_deref(),
        access = trace.access,
        status = status.as_u16(),
        upstream_error = upstream_code.as_deref(),
        trace_id = xray_root(&req),
        tier = trace.tier,
        Outcome = slug.unwrap_or(if status == StatusCode::NOT_MODIFIED { "not-modified" } else { "ok" }),
        ServerErrors = u8::from(status.is_server_error()),
        Latency = started.elapsed().as_secs_f64() * 1000.0,
        UpstreamLatency = trace.upstream_ms,
        UpstreamCalls = trace.upstream_calls,
        MemoryCacheHits = trace.memory_cache_hit.map(u8::from),
        SharedTableHits = trace.tier.map(|t| u8::from(t == "table")),
        StaleAnswers = trace.tier.map(|t| u8::from(t == "stale")),
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
    let raw = route::match_route(req, app.config.base_path.as_deref()).ok_or(Error::NoRoute)?;
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
    let grant = app.access.authorize(caller, &datastore).await.map_err(|denial| {
        trace.access = Some(denial.as_str());
        Error::DatastoreNotAllowed
    })?;
    trace.access = Some("granted");
    trace.partner = grant.partner;

    let budget = upstream_budget(app.config.upstream_timeout, req);
    let mut spent = Spent::default();
    let served = app
        .lookup
        .answer(
            &datastore,
            &job,
            caller.id().unwrap_or("anonymous"),
            budget,
            &mut spent,
        )
        .await;
    if spent.asked {
        trace.upstream_ms = Some(spent.ms);
        trace.upstream_calls = Some(spent.calls);
    }
    // Memory is asked first: an error means it had no answer.
    let served = served.inspect_err(|_| trace.memory_cache_hit = Some(false))?;
    trace.memory_cache_hit = Some(served.tier == "memory");
    trace.tier = app.lookup.shared().then_some(served.tier);
    // The caches hold the whole document; what this caller may not see goes here.
    let rendered = grant.fields.restrict(served.rendered);
    let resp = reply.job(&rendered, req.headers().get(header::IF_NONE_MATCH), now_epoch());
    Ok(match served.checked_ms {
        Some(checked) => reply::as_of(resp, &lookup::checked_at(checked), lookup::age_secs(checked)),
        // A terminal answer this environment did not read from HealthLake itself is kept by the
        // caller for a minute, not a day: the table is input, not truth.
        None if !served.verified => reply::not_immutable(resp),
        None => resp,
    })
}

/// The problem answer to an event that never reached the handler (not an HTTP event, or one
/// lambda_http cannot read), as an HTTP response for `lambda` to shape.
pub fn refusal(request_id: &str, err: &Error) -> Response<Body> {
    Reply::for_request(
        &Request::new(Body::Empty),
        request_id.to_owned(),
        &crate::config::AllowedOrigins::None,
    )
    .problem(err)
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

/// The X-Ray trace id of the invocation (the `Root` of Lambda's trace header), to find the
/// request's trace from its log line.
fn xray_root(req: &Request) -> Option<&str> {
    let header = req.lambda_context_ref()?.xray_trace_id.as_deref()?;
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
