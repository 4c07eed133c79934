//! Everything that can go wrong with a request, in one enum, and the one table of what each case
//! means: [`Error::case`] is the only place where a status, problem type, title, detail or extra
//! header is chosen. `reply` renders a case as RFC 9457 problem+json and the log line takes
//! its slug; nothing here carries text from AWS.

use crate::ids::IdError;
use lambda_http::http::header::{self, HeaderName};
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
    /// A datastore outside `ALLOWED_DATASTORE_IDS`: answered like a missing job, so the list
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
    /// (`Timeout`, `ConnectionError`): for the log line only, never for the response.
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

impl UpstreamKind {
    /// Every kind, for the tests that hold the table against openapi.yaml.
    pub const ALL: [UpstreamKind; 7] = [
        UpstreamKind::Rejected,
        UpstreamKind::NotFound,
        UpstreamKind::Throttled,
        UpstreamKind::Credentials,
        UpstreamKind::Unavailable,
        UpstreamKind::BadGateway,
        UpstreamKind::Timeout,
    ];
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

/// One row of the error table.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub status: StatusCode,
    /// The last segment of the problem `type` URI: stable, documented, one per cause.
    pub slug: &'static str,
    pub title: &'static str,
    /// Our own words; the ids in them are the caller's own input.
    pub detail: Cow<'static, str>,
    /// Headers this answer carries besides those every answer has.
    pub headers: &'static [(HeaderName, &'static str)],
}

/// Throttled and unavailable callers wait a second: HealthLake allows about ten calls a second
/// per account, so a second is enough to get a new slot.
const RETRY_SOON: &[(HeaderName, &str)] = &[(header::RETRY_AFTER, "1")];
/// The methods the route answers, for `Allow` (405 and the preflight).
pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";
const ALLOW: &[(HeaderName, &str)] = &[(header::ALLOW, ALLOWED_METHODS)];
const NO_HEADERS: &[(HeaderName, &str)] = &[];

impl Error {
    /// The error table: what the caller is told for each case.
    pub fn case(&self) -> Case {
        use StatusCode as S;
        use UpstreamKind as U;
        let (status, slug, title, detail, headers): (_, _, _, Cow<'static, str>, _) = match self {
            Error::InvalidId { param, reason } => (
                S::BAD_REQUEST,
                "invalid-parameter",
                "Invalid path parameter",
                format!("{param} {reason}.").into(),
                NO_HEADERS,
            ),
            Error::NotAnHttpEvent => (
                S::BAD_REQUEST,
                "not-an-http-event",
                "Not an HTTP event",
                "This function answers API Gateway, function URL and ALB HTTP events only.".into(),
                NO_HEADERS,
            ),
            Error::UnreadableRequest => (
                S::BAD_REQUEST,
                "unreadable-request",
                "Unreadable request",
                "The HTTP request in the event could not be read (for example a Host header or a body that cannot be decoded).".into(),
                NO_HEADERS,
            ),
            Error::NoRoute => (
                S::NOT_FOUND,
                "no-route",
                "Not found",
                "The path is not /datastores/{datastoreId}/export-jobs/{jobId}.".into(),
                NO_HEADERS,
            ),
            // One answer for both, so that a 404 does not tell which datastores are served.
            Error::DatastoreNotAllowed
            | Error::Upstream(UpstreamError {
                kind: U::NotFound, ..
            }) => (
                S::NOT_FOUND,
                "job-not-found",
                "Export job not found",
                "No such export job in this datastore, or the datastore is not served here.".into(),
                NO_HEADERS,
            ),
            Error::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "Use GET, HEAD or OPTIONS.".into(),
                ALLOW,
            ),
            Error::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
                "The function failed unexpectedly. Quote the requestId when reporting it.".into(),
                NO_HEADERS,
            ),
            Error::Upstream(UpstreamError {
                kind: U::Rejected, ..
            }) => (
                S::BAD_REQUEST,
                "upstream-rejected",
                "Request rejected by HealthLake",
                "HealthLake rejected the datastore or job id.".into(),
                NO_HEADERS,
            ),
            Error::Upstream(UpstreamError {
                kind: U::Throttled, ..
            }) => (
                S::TOO_MANY_REQUESTS,
                "throttled",
                "Too many requests",
                "HealthLake is throttling status calls; retry after the Retry-After delay.".into(),
                RETRY_SOON,
            ),
            Error::Upstream(UpstreamError {
                kind: U::Credentials, ..
            }) => (
                S::INTERNAL_SERVER_ERROR,
                "upstream-access",
                "Service not authorized",
                "The function is not allowed to call HealthLake; this is a deployment problem, \
                 not a problem with the request."
                    .into(),
                NO_HEADERS,
            ),
            Error::Upstream(UpstreamError {
                kind: U::Unavailable, ..
            }) => (
                S::SERVICE_UNAVAILABLE,
                "upstream-unavailable",
                "HealthLake unavailable",
                "HealthLake is temporarily unavailable; retry after the Retry-After delay.".into(),
                RETRY_SOON,
            ),
            Error::Upstream(UpstreamError {
                kind: U::BadGateway, ..
            }) => (
                S::BAD_GATEWAY,
                "bad-gateway",
                "Bad answer from HealthLake",
                "HealthLake could not be reached or gave an answer that could not be used.".into(),
                NO_HEADERS,
            ),
            Error::Upstream(UpstreamError { kind: U::Timeout, .. }) => (
                S::GATEWAY_TIMEOUT,
                "upstream-timeout",
                "HealthLake timed out",
                "HealthLake did not answer in time.".into(),
                NO_HEADERS,
            ),
        };
        Case {
            status,
            slug,
            title,
            detail,
            headers,
        }
    }

    /// The upstream error code, for the log.
    pub fn upstream_code(&self) -> Option<&str> {
        match self {
            Error::Upstream(u) => Some(&u.code),
            _ => None,
        }
    }

    /// One error of every case, for the tests that hold the table against the documents.
    pub fn every_case() -> Vec<Error> {
        let mut all = vec![
            Error::InvalidId {
                param: "jobId",
                reason: IdError::Empty,
            },
            Error::NoRoute,
            Error::MethodNotAllowed,
            Error::NotAnHttpEvent,
            Error::UnreadableRequest,
            Error::DatastoreNotAllowed,
            Error::Internal,
        ];
        all.extend(UpstreamKind::ALL.map(|k| Error::Upstream(UpstreamError::new(k, "Test"))));
        // Fails to compile when a variant is added, so that it is added above too.
        for e in &all {
            match e {
                Error::InvalidId { .. }
                | Error::NoRoute
                | Error::MethodNotAllowed
                | Error::NotAnHttpEvent
                | Error::UnreadableRequest
                | Error::DatastoreNotAllowed
                | Error::Upstream(_)
                | Error::Internal => {}
            }
        }
        all
    }
}

impl From<UpstreamError> for Error {
    fn from(e: UpstreamError) -> Self {
        Error::Upstream(e)
    }
}
