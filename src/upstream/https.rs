//! The SDK's HTTPS client, built here instead of taken from aws-smithy-http-client: hyper's pooled
//! HTTP/1.1 client over rustls with ring's cryptography, and one trust store per process. The
//! SDK's own client decodes the whole system bundle with a constant-time base64 decoder (made for
//! private keys) and rebuilds the trust store for every client it makes, STS's included: that was
//! half the CPU of a cold start. bench/README.md has the numbers.
//!
//! Trust: `SSL_CERT_FILE` and `SSL_CERT_DIR` when either is set (as OpenSSL and
//! rustls-native-certs read them: they replace the built-in roots; the tests trust their own CA
//! this way), else the roots compiled in (webpki-roots: Mozilla's root program, which includes the
//! Amazon and Starfield roots AWS endpoints chain to). Compiled in, they cost nothing at
//! start-up; reading and parsing the system bundle (145 certificates) was about a sixth of a cold
//! start's CPU. The price: new or withdrawn roots arrive with a rebuild, not with the OS image.

use crate::warmup::Warmed;
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
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::error::Error;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Far more than any answer the function reads (a DescribeFHIRExportJob answer is a few kilobytes),
/// far less than its memory. The SDK reads a whole body into memory before parsing it, however
/// long it is, so a broken or hostile far side could otherwise exhaust the function's memory; a
/// longer body fails to read (a response error: retried, then 502).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// As the SDK's own client: idle pooled connections are dropped after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type Pool = Client<Warmed<TlsConnector>, SdkBody>;
pub type TlsConnector = hyper_rustls::HttpsConnector<TcpConnector>;

/// Hands the SDK one connector per distinct timeout setting, each with its own connection pool.
#[derive(Debug, Default)]
pub struct HttpsClient {
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
pub fn tls_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(trust_store(&|name| std::env::var_os(name)))
            .with_no_client_auth()
    })
}

/// The roots, from the variables as `env` reads them, else the compiled-in ones.
fn trust_store(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> RootCertStore {
    let set = |name| env(name).filter(|v| !v.is_empty());
    let (file, dirs) = (set("SSL_CERT_FILE"), set("SSL_CERT_DIR"));
    if file.is_none() && dirs.is_none() {
        return RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
    }
    let mut certs = Vec::new();
    if let Some(file) = file {
        read_pem_file(Path::new(&file), &mut certs);
    }
    for dir in dirs.iter().flat_map(std::env::split_paths) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_file() {
                read_pem_file(&entry.path(), &mut certs);
            }
        }
    }
    let mut store = RootCertStore::empty();
    let (added, _unusable) = store.add_parsable_certificates(certs);
    if added == 0 {
        tracing::warn!("no trusted root certificates found: HTTPS calls will fail");
    }
    store
}

fn read_pem_file(path: &Path, out: &mut Vec<CertificateDer<'static>>) {
    match std::fs::read(path) {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => pem_certificates(text, out),
            Err(_) => pem_certificates(&String::from_utf8_lossy(&bytes), out),
        },
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot read certificates"),
    }
}

/// Every `CERTIFICATE` block of PEM text (other blocks, `TRUSTED CERTIFICATE` included, are
/// skipped), line by line (memchr and memcpy: a system bundle is 200 KB), decoded with
/// aws-smithy-types' vectorized base64.
fn pem_certificates(text: &str, out: &mut Vec<CertificateDer<'static>>) {
    let mut b64: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (&mut b64, line) {
            (None, "-----BEGIN CERTIFICATE-----") => b64 = Some(String::with_capacity(2048)),
            (Some(body), "-----END CERTIFICATE-----") => {
                if let Ok(der) = aws_smithy_types::base64::decode(&*body) {
                    out.push(CertificateDer::from(der));
                }
                b64 = None;
            }
            (Some(_), l) if l.starts_with("-----") => b64 = None, // a broken block
            (Some(body), l) => body.push_str(l),
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of SEQUENCE { INTEGER 1 }: enough to test the PEM layer alone.
    fn sample_der() -> Vec<u8> {
        vec![0x30, 0x03, 0x02, 0x01, 0x01]
    }

    #[test]
    fn reads_certificate_blocks_and_skips_the_rest() {
        let b64 = aws_smithy_types::base64::encode(sample_der());
        let text = format!(
            "junk\n-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n-----END TRUSTED CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n\
             -----BEGIN CERTIFICATE-----\n{b64}\n",
            &b64[..4],
            &b64[4..]
        );
        let mut out = Vec::new();
        pem_certificates(&text, &mut out);
        assert_eq!(out.len(), 1, "one whole, valid CERTIFICATE block");
        assert_eq!(out[0].as_ref(), sample_der().as_slice());
    }

    #[test]
    fn ssl_cert_file_replaces_the_built_in_roots() {
        let dir = std::env::temp_dir().join(format!("ejs-trust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let env = |name: &str| (name == "SSL_CERT_FILE").then(|| empty.clone().into_os_string());
        assert!(
            trust_store(&env).is_empty(),
            "an empty SSL_CERT_FILE trusts nothing"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_compiled_in_roots_are_used_when_nothing_is_set() {
        let store = trust_store(&|_| None);
        assert!(store.len() > 100, "Mozilla's public roots");
        // Amazon Root CA 1, the root of AWS endpoints' chains.
        let amazon = store.roots.iter().any(|r| {
            let subject: &[u8] = r.subject.as_ref();
            subject.windows(16).any(|w| w == b"Amazon Root CA 1")
        });
        assert!(amazon, "the roots AWS endpoints chain to");
    }
}
