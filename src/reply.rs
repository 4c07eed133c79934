//! Turning an outcome into the HTTP answer: the job document, 304, the CORS preflight, and every
//! error as RFC 9457 problem+json. Headers common to all answers are added in `finish`.

use crate::config::AllowedOrigins;
use crate::error::Error;
use crate::job::RenderedJob;
use lambda_http::http::header::{self, HeaderMap, HeaderValue};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::error::ALLOWED_METHODS as ALLOW;
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Problem `type` URIs are this plus the error's slug (see README, "Errors").
pub const PROBLEM_TYPE_PREFIX: &str = "urn:problem-type:export-job-status:";
/// A terminal job never changes: let the caller keep it for a day.
const CACHE_TERMINAL: &str = "private, max-age=86400, immutable";
/// A terminal answer that came from the shared table, not from HealthLake in this environment.
const CACHE_TERMINAL_FROM_TABLE: &str = "private, max-age=60";
/// Headers a browser may send on the real request (SigV4, API keys, conditional GET).
const CORS_ALLOW_HEADERS: &str =
    "authorization, content-type, if-none-match, x-amz-content-sha256, x-amz-date, x-amz-security-token, x-api-key";
const CORS_MAX_AGE_SECS: &str = "600";

/// What every answer to one request shares, read from the request once.
#[derive(Debug, Clone)]
pub struct Reply {
    pub request_id: String,
    head: bool,
    cors: bool,
    /// The request's `Origin`, when CORS is on and the origin is allowed.
    allowed_origin: Option<HeaderValue>,
}

impl Reply {
    pub fn for_request(req: &Request, request_id: String, origins: &AllowedOrigins) -> Self {
        let allowed_origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| o.to_str().is_ok_and(|o| origins.allows(o)))
            .cloned();
        Reply {
            request_id,
            head: req.method() == Method::HEAD,
            cors: origins.enabled(),
            allowed_origin,
        }
    }

    /// 200 with the job document, or 304 when `If-None-Match` already has it.
    pub fn job(
        &self,
        job: &RenderedJob,
        if_none_match: Option<&HeaderValue>,
        now_epoch: i64,
    ) -> Response<Body> {
        let fresh = if_none_match.is_some_and(|v| etag_matches(v, &job.etag));
        let (status, body) = if fresh {
            (StatusCode::NOT_MODIFIED, Body::Empty)
        } else {
            (StatusCode::OK, Body::Text(job.body.clone()))
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        if !fresh {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        h.insert(header::ETAG, header_value(&job.etag));
        if job.terminal {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_TERMINAL));
        } else {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from(poll_after_secs(job.submitted_epoch, now_epoch)),
            );
        }
        self.finish(resp)
    }

    /// The answer to OPTIONS: a CORS preflight when the origin is allowed, else just `Allow`.
    pub fn options(&self) -> Response<Body> {
        let mut resp = Response::new(Body::Empty);
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        if self.allowed_origin.is_some() {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(CORS_MAX_AGE_SECS),
            );
        }
        self.finish(resp)
    }

    /// Every error, in one place: problem+json with the error table's words.
    pub fn problem(&self, err: &Error) -> Response<Body> {
        let case = err.case();
        let body = Problem {
            type_: format!("{PROBLEM_TYPE_PREFIX}{}", case.slug),
            title: case.title,
            status: case.status.as_u16(),
            detail: &case.detail,
            request_id: &self.request_id,
        };
        let body = serde_json::to_string(&body).expect("a Problem always serializes");
        let mut resp = Response::new(Body::Text(body));
        *resp.status_mut() = case.status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in case.headers {
            h.insert(name, HeaderValue::from_static(value));
        }
        self.finish(resp)
    }

    fn finish(&self, mut resp: Response<Body>) -> Response<Body> {
        let h: &mut HeaderMap = resp.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.cors {
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = &self.allowed_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("ETag, Retry-After, Age"),
            );
        }
        if self.head {
            *resp.body_mut() = Body::Empty;
        }
        resp
    }
}

/// Marks an answer about a running job that was not read from HealthLake for this request: its
/// `Age` (RFC 9111, whole seconds) and, in a 200's body, `checkedAt`, when HealthLake was read.
/// The ETag stays the one of the job's state, so a poller still gets 304 while nothing changed.
pub fn as_of(mut resp: Response<Body>, checked_at: &str, age_secs: u64) -> Response<Body> {
    resp.headers_mut()
        .insert(header::AGE, HeaderValue::from(age_secs));
    if let Body::Text(body) = resp.body_mut() {
        // The job document is one JSON object rendered by us: the member goes before its end.
        if body.ends_with('}') {
            body.pop();
            body.push_str(",\"checkedAt\":\"");
            body.push_str(checked_at);
            body.push_str("\"}");
        }
    }
    resp
}

/// A terminal job's answer that the caller may keep for a minute rather than a day.
pub fn not_immutable(mut resp: Response<Body>) -> Response<Body> {
    if resp.headers().get(header::CACHE_CONTROL) == Some(&HeaderValue::from_static(CACHE_TERMINAL)) {
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_TERMINAL_FROM_TABLE),
        );
    }
    resp
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    request_id: &'a str,
}

/// How long a poller should wait before asking again: a tenth of the job's age, between 2 and
/// 30 seconds. Young jobs get prompt updates; long exports do not spend the account's ~10
/// calls per second on polls that cannot show progress.
pub fn poll_after_secs(submitted_epoch: i64, now_epoch: i64) -> u32 {
    let age = now_epoch.saturating_sub(submitted_epoch).max(0);
    (age / 10).clamp(2, 30) as u32
}

/// `If-None-Match` per RFC 9110: `*`, or a list of tags compared weakly.
fn etag_matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).expect("our own header values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_hint_grows_with_the_job_age() {
        assert_eq!(poll_after_secs(1000, 1000), 2);
        assert_eq!(poll_after_secs(1000, 1005), 2);
        assert_eq!(poll_after_secs(1000, 1150), 15);
        assert_eq!(poll_after_secs(1000, 100_000), 30);
        assert_eq!(poll_after_secs(1000, 10), 2); // clock skew
    }

    #[test]
    fn if_none_match_follows_rfc_9110() {
        let tag = "\"abc\"";
        for (header, fresh) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ] {
            assert_eq!(
                etag_matches(&HeaderValue::from_static(header), tag),
                fresh,
                "{header}"
            );
        }
    }
}
