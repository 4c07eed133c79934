//! The one HealthLake call: `DescribeFHIRExportJob`, with the SDK's standard retries (or one
//! attempt, for the shared tier, where each attempt takes its own budget token), bounded by a time
//! budget, and every failure classified for the caller.

use crate::aws::log_safe;
use crate::error::{UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use aws_config::retry::RetryConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_healthlake::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_healthlake::operation::describe_fhir_export_job::DescribeFHIRExportJobError;
use aws_sdk_healthlake::types::ExportJobProperties;
use aws_sdk_healthlake::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::{dyn_dispatch_hint, Intercept};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
                    .with_initial_backoff(crate::aws::INITIAL_BACKOFF),
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
}
