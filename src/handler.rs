//! The handler: one HTTP request in, one HTTP response out, whatever happens. Tests call it
//! directly; `main` lends it the client, the configuration and the cache built once at start-up.

use crate::cache::TerminalCache;
use crate::config::Config;
use crate::error::{Error, UpstreamError, UpstreamKind};
use crate::fleet::{self, Shared};
use crate::ids::{DatastoreId, JobId};
use crate::job::JobView;
use crate::response::Reply;
use crate::scope::{Caller, Scope};
use crate::upstream::LazyClient;
use crate::{metrics, response, route, upstream};
use aws_sdk_healthlake::Client;
use futures_util::FutureExt;
use lambda_http::http::{header, Method, StatusCode};
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
    client: LazyClient<Client>,
    config: Config,
    cache: TerminalCache,
    /// Who may read which datastore; `from_sdk` connects it to the status table.
    scope: Scope,
    /// The shared tier, when `STATUS_TABLE` is set.
    fleet: Option<Shared>,
}

impl App {
    pub fn new(client: Client, config: Config) -> Self {
        App::with_client(upstream::lazy(move || client), config)
    }

    /// The app as Lambda runs it: every client built from `sdk`, HealthLake's when first needed,
    /// with the shared tier and partner scoping on `STATUS_TABLE` when that is set.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        let for_client = sdk.clone();
        let mut app =
            App::with_client(upstream::lazy(move || Client::new(&for_client)), config).with_fleet(sdk);
        // Partner mappings are read through a DynamoDB client built from `sdk` (see `scope`);
        // without a table, API-key callers read nothing.
        app.scope.connect(sdk);
        app
    }

    fn with_client(client: LazyClient<Client>, config: Config) -> Self {
        App {
            client,
            scope: Scope::new(config.scope.clone()),
            config,
            cache: TerminalCache::default(),
            fleet: None,
        }
    }

    /// With the shared tier on `STATUS_TABLE`, its DynamoDB client built from the same SDK
    /// configuration; without the variable, the app as [`App::new`] makes it.
    pub fn with_fleet(mut self, sdk: &aws_config::SdkConfig) -> Self {
        if let Some(table) = self.config.fleet.table.clone() {
            self.fleet = Some(Shared::new(
                fleet::dynamodb_client(sdk, &self.config),
                table,
                &self.config,
            ));
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
    let grant = app.scope.authorize(caller, &datastore).await.map_err(|denial| {
        trace.access = Some(denial.as_str());
        Error::DatastoreNotAllowed
    })?;
    trace.access = Some("granted");
    trace.partner = grant.partner;
    let fields = grant.fields;

    if let Some(shared) = &app.fleet {
        // Too close to the deadline for HealthLake, memory and the table may still answer.
        let budget = upstream_budget(app.config.upstream_timeout, req).unwrap_or(Duration::ZERO);
        let served = shared
            .lookup(
                &app.client,
                &app.cache,
                &datastore,
                &job,
                caller.id().unwrap_or("anonymous"),
                budget,
            )
            .await?;
        trace.memory_cache_hit = Some(served.tier == "memory");
        trace.upstream_ms = served.upstream.map(|(ms, _)| ms);
        trace.upstream_calls = served.upstream.map(|(_, calls)| calls);
        trace.tier = Some(served.tier);
        let rendered = fields.restrict(served.rendered);
        let resp = reply.job(&rendered, req.headers().get(header::IF_NONE_MATCH), now_epoch());
        return Ok(match served.checked_ms {
            Some(checked) => response::as_of(resp, &fleet::checked_at(checked), fleet::age_secs(checked)),
            // A terminal answer this environment did not read from HealthLake itself is kept
            // by the caller for a minute, not a day: the table is input, not truth.
            None if !served.verified => response::not_immutable(resp),
            None => resp,
        });
    }
    let cached = app.cache.get(&datastore, &job);
    trace.memory_cache_hit = Some(cached.is_some());
    let rendered = match cached {
        Some(hit) => hit,
        None => {
            let budget = upstream_budget(app.config.upstream_timeout, req)?;
            let started = Instant::now();
            let (answer, calls) = upstream::describe_export_job(&app.client, &datastore, &job, budget).await;
            trace.upstream_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            trace.upstream_calls = Some(calls);
            let rendered = Arc::new(JobView::from_sdk(&datastore, &job, &answer?)?.render());
            app.cache.insert_if_terminal(&datastore, &job, rendered.clone());
            rendered
        }
    };
    // Both caches hold the whole document; what this caller may not see goes here.
    let rendered = fields.restrict(rendered);
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
