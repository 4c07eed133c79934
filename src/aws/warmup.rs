//! Connecting (DNS, TCP, TLS) during start-up instead of in the first request, to the service
//! that request calls first: HealthLake, or with the shared tier on, the status table's DynamoDB
//! (a cold environment in a running fleet mostly answers from the table and never calls
//! HealthLake; bench/README.md has the numbers). At start-up a task begins the connection to the
//! endpoint the client will call; the first request that needs a new connection there takes it,
//! made or still in the making, instead of starting its own. Start-up does not wait for it, so a
//! first request that calls no one (a bad id, a cached job) is not held up, and a failure costs
//! nothing but the attempt: it is not an error, and the first request then connects as it always
//! would.

use aws_config::SdkConfig;
use hyper::Uri;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower_service::Service;

/// What the HTTPS connector hands hyper.
pub type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection made at start-up and not used within this long may have been closed by the far
/// side (or the environment frozen in between): the request connects afresh instead.
const MAX_AGE: Duration = Duration::from_secs(5);
/// Turns of the runtime this task waits before starting (see `start`).
const YIELDS_BEFORE_CONNECTING: usize = 4;
/// Bounds the whole attempt (the TCP connect has its own timeout, the TLS handshake none).
const ATTEMPT_LIMIT: Duration = Duration::from_secs(2);

struct Pending {
    scheme: String,
    authority: String,
    task: JoinHandle<Option<(Stream, Instant)>>,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

/// The endpoint the HealthLake client will call, as the SDK resolves it: a configured endpoint
/// URL, else the regional one. None if it cannot tell (then nothing is pre-connected).
pub async fn healthlake_endpoint(sdk: &SdkConfig) -> Option<Uri> {
    use aws_sdk_healthlake::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let params = Params::builder()
        .set_region(sdk.region().map(|r| r.to_string()))
        .use_fips(sdk.use_fips().unwrap_or(false))
        .use_dual_stack(sdk.use_dual_stack().unwrap_or(false))
        .set_endpoint(configured("AWS_ENDPOINT_URL_HEALTHLAKE", sdk))
        .build()
        .ok()?;
    let resolved = DefaultResolver::new().resolve_endpoint(&params).await.ok()?;
    resolved.url().parse().ok()
}

/// The same for the DynamoDB client of the status table.
pub async fn dynamodb_endpoint(sdk: &SdkConfig) -> Option<Uri> {
    use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let params = Params::builder()
        .set_region(sdk.region().map(|r| r.to_string()))
        .use_fips(sdk.use_fips().unwrap_or(false))
        .use_dual_stack(sdk.use_dual_stack().unwrap_or(false))
        .set_endpoint(configured("AWS_ENDPOINT_URL_DYNAMODB", sdk))
        .build()
        .ok()?;
    let resolved = DefaultResolver::new().resolve_endpoint(&params).await.ok()?;
    resolved.url().parse().ok()
}

/// The service's endpoint URL variable, else the SDK configuration's endpoint for every service.
fn configured(variable: &str, sdk: &SdkConfig) -> Option<String> {
    std::env::var(variable)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// Starts connecting to `endpoint` with `connector` (the one the client's pool uses) in a task
/// of the current runtime.
pub fn start<C>(endpoint: Uri, mut connector: C)
where
    C: Service<Uri, Response = Stream> + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    let (Some(scheme), Some(authority)) = (endpoint.scheme_str(), endpoint.authority()) else {
        return;
    };
    let (scheme, authority) = (scheme.to_owned(), authority.as_str().to_owned());
    let task = tokio::spawn(async move {
        // Let the runtime send its first poll for an event before this task's first steps (the
        // DNS thread, the socket, the ClientHello). On this single-threaded runtime the main
        // task is then connecting to the Runtime API (on loopback), and a yielded task runs
        // again only after the I/O driver has been polled: a few turns are enough for the
        // connection to be made and the poll written. If they are not, this starts a little
        // early, which is all the harm.
        for _ in 0..YIELDS_BEFORE_CONNECTING {
            tokio::task::yield_now().await;
        }
        match tokio::time::timeout(ATTEMPT_LIMIT, connector.call(endpoint)).await {
            Ok(Ok(stream)) => Some((stream, Instant::now())),
            Ok(Err(err)) => {
                let err: BoxError = err.into();
                tracing::debug!(error = %err, "pre-connect failed; the first request connects");
                None
            }
            Err(_) => None,
        }
    });
    let mut slot = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    *slot = Some(Pending {
        scheme,
        authority,
        task,
    });
}

/// The pre-connected stream for `uri`'s origin, once: None if there is none, it failed or it
/// is too old.
async fn take(uri: &Uri) -> Option<Stream> {
    let task = {
        let mut slot = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        let matches = slot.as_ref().is_some_and(|p| {
            Some(p.scheme.as_str()) == uri.scheme_str()
                && Some(p.authority.as_str()) == uri.authority().map(|a| a.as_str())
        });
        if !matches {
            return None;
        }
        slot.take()?.task
    };
    match task.await {
        Ok(Some((stream, made))) if made.elapsed() < MAX_AGE => Some(stream),
        _ => None,
    }
}

/// The pool's connector: the pre-connected stream when there is one for the origin, else
/// `inner`'s new connection.
#[derive(Clone, Debug)]
pub struct Warmed<C> {
    pub inner: C,
}

impl<C> Service<Uri> for Warmed<C>
where
    C: Service<Uri, Response = Stream> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            if let Some(stream) = take(&uri).await {
                return Ok(stream);
            }
            inner.call(uri).await.map_err(Into::into)
        })
    }
}
