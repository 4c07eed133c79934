//! Everything AWS, built in one place: the SDK configuration (our HTTPS client and trust store,
//! credentials, region, retries, time budgets), every client the function makes from it
//! (HealthLake, the status table for the shared tier, the status table for partner mappings), the
//! start-up connection (`warmup`), and the one rule for an SDK error's code in a log line.

use crate::config::Config;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use std::time::Duration;

mod https;
mod trust;
pub mod warmup;

/// Connecting to a regional endpoint takes milliseconds; a connect that takes longer is better
/// retried than waited for.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Throttling retries back off from here (with jitter), so that all attempts fit the budget.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// A partner mapping read is one GetItem that DynamoDB answers in milliseconds: bounded well below
/// the HealthLake budget, so that an unreachable table costs an API-key caller a second, not the
/// request.
const MAPPING_TIMEOUT: Duration = Duration::from_millis(1_000);
/// Partner mappings are read on a connection of their own whose connect is bounded tighter than
/// HealthLake's, inside the read's one second.
const MAPPING_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

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

/// HealthLake's client, made on first use.
pub fn healthlake(sdk: &SdkConfig) -> LazyClient<aws_sdk_healthlake::Client> {
    let sdk = sdk.clone();
    lazy(move || aws_sdk_healthlake::Client::new(&sdk))
}

/// The shared tier's DynamoDB client: one attempt per call and the table's own time budget
/// (`TABLE_TIMEOUT_MS`), so that a failing table costs a request little. Made at start-up: with
/// the shared tier on, the first request calls the table first.
pub(crate) fn status_table(sdk: &SdkConfig, config: &Config) -> aws_sdk_dynamodb::Client {
    let t = config.fleet.table_timeout;
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(t)
                .operation_timeout(t)
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// Partner mappings' DynamoDB client, made when the first API-key caller comes: the SDK's retries
/// within one second in all.
pub(crate) fn partner_table(sdk: &SdkConfig) -> LazyClient<aws_sdk_dynamodb::Client> {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(MAPPING_CONNECT_TIMEOUT)
                .operation_timeout(MAPPING_TIMEOUT)
                .build(),
        )
        .build();
    lazy(move || aws_sdk_dynamodb::Client::from_conf(conf))
}

/// Starts connecting now to what the first request calls first, for it to use: the status
/// table's DynamoDB when the shared tier is on, else HealthLake. See [`warmup`].
pub async fn preconnect(sdk: &SdkConfig, config: &Config) {
    let endpoint = match config.status_table {
        Some(_) => warmup::dynamodb_endpoint(sdk).await,
        None => warmup::healthlake_endpoint(sdk).await,
    };
    if let Some(endpoint) = endpoint {
        warmup::start(endpoint, https::tls_connector(Some(CONNECT_TIMEOUT)));
    }
}

/// The HTTPS client the SDK uses: see [`https`] for what it is and why it is ours.
pub(crate) fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(https::HttpsClient::default())
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

/// The service's error code, or what kind of failure it was: for the log, never AWS's message.
/// The one rule for every client's failures in a log line.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(e) => e.err().code().map_or_else(|| "Unrecognized".to_owned(), log_safe),
        SdkError::TimeoutError(_) => "Timeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "ConnectTimeout".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "ConnectionError".to_owned(),
        SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        SdkError::ResponseError(_) => "UnparseableResponse".to_owned(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
        _ => "Unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
