//! The SDK's HTTPS client, built here instead of taken from aws-smithy-http-client: hyper's pooled
//! HTTP/1.1 client over rustls with ring's cryptography, with one trust store per process
//! (`trust`: the roots compiled in, or `SSL_CERT_FILE`/`SSL_CERT_DIR`). The SDK's own client
//! rebuilds the trust store for every client it makes, STS's included: that was half the CPU of
//! a cold start (bench/README.md has the numbers).

use super::warmup::Warmed;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::Limited;
use hyper_util::client::legacy::connect::{capture_connection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use std::error::Error;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Far more than any answer the function reads (a DescribeFHIRExportJob answer is a few kilobytes),
/// far less than its memory. The SDK reads a whole body into memory before parsing it, however
/// long it is, so a broken or hostile far side could otherwise exhaust the function's memory; a
/// longer body fails to read (a response error: retried, then 502).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// As the SDK's own client: idle pooled connections are dropped after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type Pool = Client<Warmed<TlsConnector>, SdkBody>;
pub type TlsConnector = hyper_rustls::HttpsConnector<TcpConnector>;

/// Hands the SDK one connector per distinct timeout setting, each with its own connection pool.
#[derive(Debug, Default)]
pub(crate) struct HttpsClient {
    connectors: Mutex<Vec<(TimeoutKey, SharedHttpConnector)>>,
}

type TimeoutKey = (Option<Duration>, Option<Duration>);

impl HttpClient for HttpsClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self.connectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, found)) = connectors.iter().find(|(k, _)| *k == key) {
            return found.clone();
        }
        let made = SharedHttpConnector::new(Connector::new(key));
        connectors.push((key, made.clone()));
        made
    }
}

#[derive(Debug)]
struct Connector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new((connect_timeout, read_timeout): TimeoutKey) -> Connector {
        let pool = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(Warmed {
                inner: tls_connector(connect_timeout),
            });
        Connector { pool, read_timeout }
    }
}

/// TCP (no Nagle) and then TLS, or plain HTTP for an `http://` endpoint (the tests' stand-ins).
pub fn tls_connector(connect_timeout: Option<Duration>) -> TlsConnector {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(connect_timeout);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config().clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        lend_connection(&mut request);
        let response = self.pool.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(answer) => answer,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
            };
            match response {
                Ok(resp) => HttpResponse::try_from(
                    resp.map(|body| SdkBody::from_body_1_x(Limited::new(body, MAX_ANSWER_BYTES))),
                )
                .map_err(|err| ConnectorError::other(err.into(), None)),
                Err(err) => Err(connector_error(err)),
            }
        })
    }
}

/// Tells the SDK which pooled connection carries `request`, as its own client does: after a
/// transient error (a 5xx, a throttle) the SDK closes that connection so the retry gets a new one,
/// and without this it logs an ERROR line on every such error instead.
fn lend_connection(request: &mut hyper::Request<SdkBody>) {
    let captured = capture_connection(request);
    if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
        smithy.set_connection_retriever(move || {
            captured.connection_metadata().as_ref()?;
            let captured = captured.clone();
            let poison = move || {
                if let Some(conn) = captured.connection_metadata().as_ref() {
                    conn.poison();
                }
            };
            Some(
                ConnectionMetadata::builder()
                    .proxied(false)
                    .poison_fn(poison)
                    .build(),
            )
        });
    }
}

/// Classifies a failure as the SDK's own client does, so that retries and our problem mapping
/// see the same kinds: timeouts, I/O (retried), user errors, the rest.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = chain(&err).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
    });
    let hyper = chain(&err).find_map(|e| e.downcast_ref::<hyper::Error>());
    let io = chain(&err).any(|e| e.is::<std::io::Error>());
    if timed_out {
        ConnectorError::timeout(err.into())
    } else if hyper.is_some_and(hyper::Error::is_user) {
        ConnectorError::user(err.into())
    } else if err.is_connect() || io || hyper.is_some_and(|h| h.is_closed() || h.is_canceled()) {
        ConnectorError::io(err.into())
    } else if hyper.is_some_and(hyper::Error::is_incomplete_message) {
        ConnectorError::other(err.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(err.into(), None)
    }
}

/// `err` and its sources, looking inside `io::Error`s too (their `source` skips the payload).
fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => e.source(),
    })
}

/// rustls with ring, safe protocol versions, and the trust store: made once per process, shared
/// by every connector (a clone shares the verifier and its roots).
fn tls_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(super::trust::store(&|name| std::env::var_os(name)))
            .with_no_client_auth()
    })
}
