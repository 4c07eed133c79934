//! Routing the event: finds the two ids of `GET /datastores/{datastoreId}/export-jobs/{jobId}`
//! in any HTTP event lambda_http understands, undoes percent-encoding where the event source
//! left it, and parses them into ids.

use crate::error::Error;
use crate::ids::{DatastoreId, IdError, JobId};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// The ids as the event carries them, not yet decoded or checked.
#[derive(Debug, PartialEq, Eq)]
pub struct RawIds<'a> {
    pub datastore: Cow<'a, str>,
    pub job: Cow<'a, str>,
    /// Whether the event source left percent-encoding in place.
    pub encoded: bool,
}

/// Finds our route in `req`: from `pathParameters` when the event has both, otherwise from the
/// last four segments of the path, so that a stage or base-path prefix changes nothing.
pub(crate) fn match_route(req: &Request) -> Option<RawIds<'_>> {
    let encoded = source_keeps_encoding(req);
    if let Some(params) = req.path_parameters_ref() {
        if let (Some(ds), Some(job)) = (params.first("datastoreId"), params.first("jobId")) {
            return Some(RawIds {
                datastore: Cow::Borrowed(ds),
                job: Cow::Borrowed(job),
                encoded,
            });
        }
    }
    let raw = req.raw_http_path();
    let path = if raw.is_empty() { req.uri().path() } else { raw };
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.rsplit('/');
    let (job, jobs, ds, datastores) = (
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
    );
    (datastores == "datastores" && jobs == "export-jobs").then(|| RawIds {
        datastore: Cow::Owned(ds.to_owned()),
        job: Cow::Owned(job.to_owned()),
        encoded,
    })
}

/// HTTP APIs (payload 2.0) hand over the path and its parameters already decoded; REST APIs,
/// function URLs, ALB and a plain HTTP request (the local server) keep the client's encoding.
/// Function URL events share the HTTP API shape and are told apart by their domain.
fn source_keeps_encoding(req: &Request) -> bool {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .domain_name
            .as_deref()
            .is_some_and(|d| d.contains(".lambda-url.")),
        _ => true,
    }
}

impl RawIds<'_> {
    /// Decodes (once, where needed) and parses both ids; the error names the parameter.
    pub fn parse(&self) -> Result<(DatastoreId, JobId), Error> {
        let datastore = decode(&self.datastore, self.encoded)
            .and_then(|s| DatastoreId::parse(&s))
            .map_err(|reason| Error::InvalidId {
                param: "datastoreId",
                reason,
            })?;
        let job = decode(&self.job, self.encoded)
            .and_then(|s| JobId::parse(&s))
            .map_err(|reason| Error::InvalidId {
                param: "jobId",
                reason,
            })?;
        Ok((datastore, job))
    }
}

fn decode(s: &str, encoded: bool) -> Result<Cow<'_, str>, IdError> {
    if encoded {
        percent_decode_str(s).decode_utf8().map_err(|_| IdError::NotUtf8)
    } else {
        Ok(Cow::Borrowed(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::aws_lambda_events::query_map::QueryMap;
    use std::collections::HashMap;

    fn get(path: &str) -> Request {
        lambda_http::http::Request::builder()
            .uri(path)
            .body(Default::default())
            .unwrap()
    }

    fn ids(req: &Request) -> Option<(String, String)> {
        match_route(req).map(|r| (r.datastore.into_owned(), r.job.into_owned()))
    }

    #[test]
    fn takes_the_last_four_segments_whatever_the_prefix() {
        let want = Some(("ds1".to_owned(), "job1".to_owned()));
        assert_eq!(ids(&get("/datastores/ds1/export-jobs/job1")), want);
        assert_eq!(ids(&get("/Prod/datastores/ds1/export-jobs/job1")), want);
        assert_eq!(ids(&get("/v1/health/datastores/ds1/export-jobs/job1/")), want);
        assert_eq!(ids(&get("/datastores/ds1/export-jobs")), None);
        assert_eq!(ids(&get("/datastores/ds1/import-jobs/job1")), None);
        assert_eq!(ids(&get("/")), None);
        assert_eq!(
            ids(&get("/datastores//export-jobs/job1")),
            Some((String::new(), "job1".to_owned()))
        );
    }

    #[test]
    fn prefers_path_parameters() {
        let params: HashMap<String, String> = [("datastoreId", "p%20ds"), ("jobId", "pjob")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let req = get("/something/else").with_path_parameters(QueryMap::from(params));
        let raw = match_route(&req).unwrap();
        assert_eq!((raw.datastore.as_ref(), raw.job.as_ref()), ("p%20ds", "pjob"));
        assert_eq!(raw.parse().unwrap().0.as_str(), "p ds");
    }

    #[test]
    fn decodes_exactly_once() {
        let raw = RawIds {
            datastore: "a%2520b".into(),
            job: "x%2Fy".into(),
            encoded: true,
        };
        let (ds, job) = raw.parse().unwrap();
        assert_eq!((ds.as_str(), job.as_str()), ("a%20b", "x/y"));
        let raw = RawIds {
            datastore: "a%20b".into(),
            job: "j".into(),
            encoded: false,
        };
        assert_eq!(raw.parse().unwrap().0.as_str(), "a%20b");
    }

    #[test]
    fn errors_name_the_parameter() {
        let raw = RawIds {
            datastore: "ok".into(),
            job: "bad%09tab".into(),
            encoded: true,
        };
        assert!(matches!(
            raw.parse(),
            Err(Error::InvalidId { param: "jobId", .. })
        ));
        let raw = RawIds {
            datastore: "%FF".into(),
            job: "j".into(),
            encoded: true,
        };
        assert_eq!(
            raw.parse(),
            Err(Error::InvalidId {
                param: "datastoreId",
                reason: IdError::NotUtf8
            })
        );
    }
}
