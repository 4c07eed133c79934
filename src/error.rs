//! Everything that can go wrong with a request, in one enum. `response::problem` turns it into
//! the caller's answer in exactly one place; nothing here carries text from AWS.

use crate::ids::IdError;
use lambda_http::http::StatusCode;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An id in the path is not a valid id.
    InvalidId {
        param: &'static str,
        reason: IdError,
    },
    /// The path is not `/datastores/{datastoreId}/export-jobs/{jobId}`.
    NoRoute,
    MethodNotAllowed,
    /// The Lambda event is not an HTTP event.
    NotAnHttpEvent,
    /// An HTTP event whose request could not be read (lambda_http rejected it or panicked on it).
    UnreadableRequest,
    /// A datastore outside `ALLOWED_DATASTORE_IDS`: answered like a missing one, so the list
    /// itself is not disclosed.
    DatastoreNotAllowed,
    Upstream(UpstreamError),
    /// The handler panicked.
    Internal,
}

/// A failed HealthLake call: what it means for the caller, and the error code for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub kind: UpstreamKind,
    /// The service's error code (`ThrottlingException`) or our name for a local failure
    /// (`timeout`, `dispatch`): for the log line only, never for the response.
    pub code: Cow<'static, str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// ValidationException.
    Rejected,
    /// ResourceNotFoundException.
    NotFound,
    /// Throttled after the SDK's retries.
    Throttled,
    /// Our own role could not call HealthLake: access denied, bad or expired credentials.
    Credentials,
    /// ServiceUnavailable.
    Unavailable,
    /// InternalServerException, an unparseable answer, a broken connection, anything unmodelled.
    BadGateway,
    /// The upstream budget or the Lambda deadline ran out.
    Timeout,
}

impl UpstreamError {
    pub fn new(kind: UpstreamKind, code: impl Into<Cow<'static, str>>) -> Self {
        UpstreamError {
            kind,
            code: code.into(),
        }
    }

    /// An answer that parsed but is not a usable job description.
    pub fn malformed() -> Self {
        Self::new(UpstreamKind::BadGateway, "MalformedResponse")
    }
}

/// Seconds a throttled or unavailable caller should wait: HealthLake allows about ten calls a
/// second per account, so a second is enough to get a new slot.
pub const RETRY_AFTER_BUSY_SECS: u32 = 1;

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidId { .. } | Error::NotAnHttpEvent | Error::UnreadableRequest => {
                StatusCode::BAD_REQUEST
            }
            Error::NoRoute | Error::DatastoreNotAllowed => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Upstream(u) => match u.kind {
                UpstreamKind::Rejected => StatusCode::BAD_REQUEST,
                UpstreamKind::NotFound => StatusCode::NOT_FOUND,
                UpstreamKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
                UpstreamKind::Credentials => StatusCode::INTERNAL_SERVER_ERROR,
                UpstreamKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamKind::BadGateway => StatusCode::BAD_GATEWAY,
                UpstreamKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    /// The last segment of the problem `type` URI: stable, documented, one per cause.
    pub fn slug(&self) -> &'static str {
        match self {
            Error::InvalidId { .. } => "invalid-parameter",
            Error::NoRoute => "no-route",
            Error::MethodNotAllowed => "method-not-allowed",
            Error::NotAnHttpEvent => "not-an-http-event",
            Error::UnreadableRequest => "unreadable-request",
            Error::DatastoreNotAllowed => "job-not-found",
            Error::Internal => "internal-error",
            Error::Upstream(u) => match u.kind {
                UpstreamKind::Rejected => "upstream-rejected",
                UpstreamKind::NotFound => "job-not-found",
                UpstreamKind::Throttled => "throttled",
                UpstreamKind::Credentials => "upstream-access",
                UpstreamKind::Unavailable => "upstream-unavailable",
                UpstreamKind::BadGateway => "bad-gateway",
                UpstreamKind::Timeout => "upstream-timeout",
            },
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            Error::InvalidId { .. } => "Invalid path parameter",
            Error::NoRoute => "Not found",
            Error::MethodNotAllowed => "Method not allowed",
            Error::NotAnHttpEvent => "Not an HTTP event",
            Error::UnreadableRequest => "Unreadable request",
            Error::DatastoreNotAllowed => "Export job not found",
            Error::Internal => "Internal error",
            Error::Upstream(u) => match u.kind {
                UpstreamKind::Rejected => "Request rejected by HealthLake",
                UpstreamKind::NotFound => "Export job not found",
                UpstreamKind::Throttled => "Too many requests",
                UpstreamKind::Credentials => "Service not authorized",
                UpstreamKind::Unavailable => "HealthLake unavailable",
                UpstreamKind::BadGateway => "Bad answer from HealthLake",
                UpstreamKind::Timeout => "HealthLake timed out",
            },
        }
    }

    /// Our own words; the ids in them are the caller's own input.
    pub fn detail(&self) -> String {
        match self {
            Error::InvalidId { param, reason } => format!("{param} {reason}."),
            Error::NoRoute => {
                "The path is not /datastores/{datastoreId}/export-jobs/{jobId}.".to_owned()
            }
            Error::MethodNotAllowed => "Use GET, HEAD or OPTIONS.".to_owned(),
            Error::NotAnHttpEvent => "This function answers API Gateway, function URL and ALB HTTP events only.".to_owned(),
            Error::UnreadableRequest => "The HTTP request in the event could not be read (for example a Host header or a body that cannot be decoded).".to_owned(),
            Error::DatastoreNotAllowed => {
                "No such export job in this datastore, or the datastore is not served here.".to_owned()
            }
            Error::Internal => "The function failed unexpectedly. Quote the requestId when reporting it.".to_owned(),
            Error::Upstream(u) => match u.kind {
                UpstreamKind::Rejected => "HealthLake rejected the datastore or job id.".to_owned(),
                UpstreamKind::NotFound => {
                    "No such export job in this datastore, or the datastore is not served here.".to_owned()
                }
                UpstreamKind::Throttled => "HealthLake is throttling status calls; retry after the Retry-After delay.".to_owned(),
                UpstreamKind::Credentials => "The function is not allowed to call HealthLake; this is a deployment problem, not a problem with the request.".to_owned(),
                UpstreamKind::Unavailable => "HealthLake is temporarily unavailable; retry after the Retry-After delay.".to_owned(),
                UpstreamKind::BadGateway => "HealthLake could not be reached or gave an answer that could not be used.".to_owned(),
                UpstreamKind::Timeout => "HealthLake did not answer in time.".to_owned(),
            },
        }
    }

    /// A `Retry-After` hint, where waiting helps.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::Upstream(UpstreamError {
                kind: UpstreamKind::Throttled | UpstreamKind::Unavailable,
                ..
            }) => Some(RETRY_AFTER_BUSY_SECS),
            _ => None,
        }
    }

    /// The upstream error code, for the log.
    pub fn upstream_code(&self) -> Option<&str> {
        match self {
            Error::Upstream(u) => Some(&u.code),
            _ => None,
        }
    }
}

impl From<UpstreamError> for Error {
    fn from(e: UpstreamError) -> Self {
        Error::Upstream(e)
    }
}
