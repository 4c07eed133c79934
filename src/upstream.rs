//! The one upstream call: HealthLake `DescribeFHIRExportJob`, with the SDK's standard retries,
//! bounded by a time budget, and every failure classified for the caller.

use crate::config::Config;
use crate::error::{UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_healthlake::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_healthlake::operation::describe_fhir_export_job::DescribeFHIRExportJobError;
use aws_sdk_healthlake::types::ExportJobProperties;
use aws_sdk_healthlake::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{dyn_dispatch_hint, Intercept};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod https;
mod trust;

/// Connecting to a regional endpoint takes milliseconds; a connect that takes longer is better
/// retried than waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Throttling retries back off from here (with jitter), so that all attempts fit the budget.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The SDK configuration loader for this function: the default credential and region chain (so
/// `AWS_ENDPOINT_URL_HEALTHLAKE` and the Lambda role work as the SDK defines them), standard
/// retries bounded by `UPSTREAM_MAX_ATTEMPTS`, and the upstream budget as the operation timeout.
/// Tests add an endpoint and credentials to the same loader.
pub fn sdk_config_loader(config: &Config) -> ConfigLoader {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(config.max_attempts)
                .with_initial_backoff(INITIAL_BACKOFF),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(config.upstream_timeout)
                .build(),
        );
    // Lambda always sets AWS_REGION, which the default region chain would find first anyway;
    // taking it here spares start-up building that chain (profile files, an IMDS client).
    match std::env::var("AWS_REGION") {
        Ok(region) if !region.is_empty() => loader.region(Region::new(region)),
        _ => loader,
    }
}

/// Credentials as the SDK's default chain finds them, the environment first, but with the rest
/// of that chain (profiles, web identity through STS, containers, IMDS) built only if the
/// environment has none. In Lambda it always has them: the role's keys are in
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. aws-config builds the
/// whole chain at start-up, an STS client with its endpoint rules included, for nothing.
#[derive(Debug, Default)]
pub struct EnvironmentFirst {
    rest: tokio::sync::OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for EnvironmentFirst {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            match EnvironmentVariableCredentialsProvider::new()
                .provide_credentials()
                .await
            {
                // As in the default chain: only "none here" moves on to the next source.
                Err(CredentialsError::CredentialsNotLoaded(_)) => {
                    let rest = self
                        .rest
                        .get_or_init(|| {
                            DefaultCredentialsChain::builder()
                                .configure(ProviderConfig::default().with_http_client(https_client()))
                                .build()
                        })
                        .await;
                    rest.provide_credentials().await
                }
                found => found,
            }
        })
    }
}

/// An SDK client made on first use. Making any client parses its service's table of endpoint
/// partitions (about 415,000 instructions; bench/README.md), which a cold start that never calls
/// the service should not pay: with the shared tier on, most never call HealthLake, and only
/// API-key callers need partner scoping's client.
pub(crate) type LazyClient<T> = std::sync::LazyLock<T, Box<dyn FnOnce() -> T + Send>>;

pub(crate) fn lazy<T>(make: impl FnOnce() -> T + Send + 'static) -> LazyClient<T> {
    std::sync::LazyLock::new(Box::new(make))
}

/// Starts connecting now to what the first request calls first, for it to use: the status
/// table's DynamoDB when the shared tier is on, else HealthLake. See [`crate::warmup`].
pub async fn preconnect(sdk: &aws_config::SdkConfig, config: &Config) {
    let endpoint = match config.fleet.table {
        Some(_) => crate::warmup::dynamodb_endpoint(sdk).await,
        None => crate::warmup::healthlake_endpoint(sdk).await,
    };
    if let Some(endpoint) = endpoint {
        crate::warmup::start(endpoint, https::tls_connector(Some(CONNECT_TIMEOUT)));
    }
}

/// The HTTPS client the SDK uses: see [`https`] for what it is and why it is ours.
pub(crate) fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(https::HttpsClient::default())
}

/// Describes one export job within `budget`, which the caller has already capped by the Lambda
/// deadline. Also says how many HTTP requests the call sent, retries included: each one counts
/// against HealthLake's quota.
pub(crate) async fn describe_export_job(
    client: &Client,
    datastore: &DatastoreId,
    job: &JobId,
    budget: Duration,
) -> (Result<ExportJobProperties, UpstreamError>, u32) {
    describe_export_job_with(client, datastore, job, budget, None).await
}

/// As [`describe_export_job`], with at most `max_attempts` attempts instead of the configured
/// number: the fleet tier makes one when it has an answer to fall back on (docs/fleet.md).
/// Returns the answer and how many requests went on the wire.
pub(crate) async fn describe_export_job_with(
    client: &Client,
    datastore: &DatastoreId,
    job: &JobId,
    budget: Duration,
    max_attempts: Option<u32>,
) -> (Result<ExportJobProperties, UpstreamError>, u32) {
    let attempts = CountAttempts::default();
    let mut call = client
        .describe_fhir_export_job()
        .datastore_id(datastore.as_str())
        .job_id(job.as_str())
        .customize()
        .interceptor(attempts.clone());
    if let Some(n) = max_attempts {
        call = call.config_override(
            aws_sdk_healthlake::Config::builder().retry_config(
                RetryConfig::standard()
                    .with_max_attempts(n)
                    .with_initial_backoff(INITIAL_BACKOFF),
            ),
        );
    }
    let call = call.send();
    let result = match tokio::time::timeout(budget, call).await {
        Err(_elapsed) => Err(UpstreamError::new(UpstreamKind::Timeout, "Timeout")),
        Ok(Err(err)) => Err(classify(&err)),
        Ok(Ok(out)) => out.export_job_properties.ok_or_else(UpstreamError::malformed),
    };
    (result, attempts.0.load(Ordering::Relaxed))
}

/// Counts the requests an operation puts on the wire (a request that could not be signed is not
/// sent, and not counted).
#[derive(Debug, Clone, Default)]
struct CountAttempts(Arc<AtomicU32>);

#[dyn_dispatch_hint]
impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

type DescribeError = SdkError<DescribeFHIRExportJobError, aws_smithy_runtime_api::http::Response>;

/// Maps an SDK error to what it means for the caller. The error's message is never read.
pub(crate) fn classify(err: &DescribeError) -> UpstreamError {
    use DescribeFHIRExportJobError as Modelled;
    use UpstreamKind::*;
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let kind = match e.err() {
                Modelled::ValidationException(_) => Rejected,
                Modelled::ResourceNotFoundException(_) => NotFound,
                Modelled::ThrottlingException(_) => Throttled,
                Modelled::InternalServerException(_) => BadGateway,
                unmodelled => kind_of_unmodelled(unmodelled.code(), status),
            };
            let code = e.err().code().map_or_else(|| format!("HTTP {status}"), log_safe);
            UpstreamError::new(kind, code)
        }
        SdkError::TimeoutError(_) => UpstreamError::new(Timeout, "Timeout"),
        SdkError::DispatchFailure(d) if d.is_timeout() => UpstreamError::new(Timeout, "ConnectTimeout"),
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if caused_by_credentials(err) => {
            UpstreamError::new(Credentials, "CredentialsError")
        }
        SdkError::DispatchFailure(d) if d.is_io() => UpstreamError::new(BadGateway, "ConnectionError"),
        SdkError::DispatchFailure(_) => UpstreamError::new(BadGateway, "DispatchFailure"),
        SdkError::ResponseError(_) => UpstreamError::new(BadGateway, "UnparseableResponse"),
        SdkError::ConstructionFailure(_) => UpstreamError::new(BadGateway, "ConstructionFailure"),
        _ => UpstreamError::new(BadGateway, "Unknown"),
    }
}

/// Errors HealthLake's model leaves out of this operation: the common errors that AWS's request
/// front end returns for every JSON service (signing, credentials, availability), by code, and
/// anything else by its HTTP status.
fn kind_of_unmodelled(code: Option<&str>, status: u16) -> UpstreamKind {
    use UpstreamKind::*;
    match code {
        // Our own role or credentials: a deployment problem, so 500 rather than a 4xx.
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "ExpiredTokenException"
            | "RequestExpired"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException"
            | "NotAuthorized",
        ) => Credentials,
        Some("ServiceUnavailable" | "ServiceUnavailableException") => Unavailable,
        Some("InternalFailure") => BadGateway,
        _ => match status {
            429 => Throttled,
            503 => Unavailable,
            504 => Timeout,
            _ => BadGateway,
        },
    }
}

fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// An error code is a token (`ThrottlingException`); anything else from the wire is replaced
/// before it reaches a log line.
pub(crate) fn log_safe(code: &str) -> String {
    let ok = code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.#-".contains(&b));
    if ok {
        code.to_owned()
    } else {
        "Unrecognized".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DescribeFHIRExportJobError as Modelled;

    /// An SDK service error as the SDK builds it from HealthLake's answer.
    fn answer(code: &str, status: u16) -> DescribeError {
        use aws_sdk_healthlake::types::error::*;
        use aws_smithy_types::error::ErrorMetadata;
        let meta = ErrorMetadata::builder().code(code).build();
        let err = match code {
            "ValidationException" => {
                Modelled::ValidationException(ValidationException::builder().meta(meta).build())
            }
            "ResourceNotFoundException" => {
                Modelled::ResourceNotFoundException(ResourceNotFoundException::builder().meta(meta).build())
            }
            "ThrottlingException" => {
                Modelled::ThrottlingException(ThrottlingException::builder().meta(meta).build())
            }
            "InternalServerException" => {
                Modelled::InternalServerException(InternalServerException::builder().meta(meta).build())
            }
            _ => Modelled::generic(meta),
        };
        let raw = aws_smithy_runtime_api::http::Response::new(
            status.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::empty(),
        );
        SdkError::service_error(err, raw)
    }

    #[test]
    fn codes_map_to_the_contract() {
        use UpstreamKind::*;
        let kind = |code, status| classify(&answer(code, status)).kind;
        assert_eq!(kind("ValidationException", 400), Rejected);
        assert_eq!(kind("ResourceNotFoundException", 400), NotFound);
        assert_eq!(kind("ThrottlingException", 400), Throttled);
        assert_eq!(kind("AccessDeniedException", 400), Credentials);
        assert_eq!(kind("UnrecognizedClientException", 400), Credentials);
        assert_eq!(kind("ExpiredTokenException", 400), Credentials);
        assert_eq!(kind("InvalidSignatureException", 400), Credentials);
        assert_eq!(kind("InternalServerException", 500), BadGateway);
        assert_eq!(kind("ServiceUnavailableException", 503), Unavailable);
        assert_eq!(kind("SomethingNewException", 400), BadGateway);
        assert_eq!(kind("SomethingNewException", 503), Unavailable);
        assert_eq!(kind("SomethingNewException", 429), Throttled);
        assert_eq!(
            classify(&answer("ThrottlingException", 400)).code,
            "ThrottlingException"
        );
    }

    #[test]
    fn only_token_like_codes_reach_the_log() {
        assert_eq!(log_safe("ThrottlingException"), "ThrottlingException");
        assert_eq!(
            log_safe("arn:aws:iam::123456789012:role/x was denied"),
            "Unrecognized"
        );
        assert_eq!(log_safe(&"A".repeat(65)), "Unrecognized");
    }
}
