//! Routing the event: finds the two ids of `GET /datastores/{datastoreId}/export-jobs/{jobId}`
//! in any HTTP event lambda_http understands, undoes percent-encoding where the event source
//! left it, and parses them into ids.
//!
//! As strict as the gateway in front: without path parameters the whole path must be the route,
//! after the event's stage and the configured `BASE_PATH` only, so that a prefix rule upstream (an
//! ALB listener rule, an HTTP API route with an authorizer) cannot be walked around. A datastore id
//! in the path is plain: ASCII letters, digits, `-`, `.` and `_` (RFC 3986's unreserved characters,
//! which no client encodes), never percent-encoded: IAM
//! authorizes the path as the client encoded it, so an encoded datastore id would reach HealthLake
//! in another form than the one the caller's policy was matched on. HealthLake's own rule allows
//! more (`%`, spaces, any letter); real data store ids are 32 hex digits, and none of them is lost.

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
/// whole path, which after the stage and `base_path` must be exactly the route.
pub(crate) fn match_route<'r>(req: &'r Request, base_path: Option<&str>) -> Option<RawIds<'r>> {
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
    let path = strip_segments(path, stage(req)).unwrap_or(path);
    let path = match base_path {
        Some(base) => strip_segments(path, Some(base.trim_start_matches('/')))?,
        None => path,
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.strip_prefix('/')?.split('/');
    let (datastores, ds, jobs, job) = (
        segments.next()?,
        segments.next()?,
        segments.next()?,
        segments.next()?,
    );
    (segments.next().is_none() && datastores == "datastores" && jobs == "export-jobs").then(|| RawIds {
        datastore: Cow::Owned(ds.to_owned()),
        job: Cow::Owned(job.to_owned()),
        encoded,
    })
}

/// The event's stage where the path may carry it (an HTTP API's named stage, a REST API's).
fn stage(req: &Request) -> Option<&str> {
    let stage = match req.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => ctx.stage.as_deref(),
        RequestContext::ApiGatewayV2(ctx) => ctx.stage.as_deref(),
        _ => None,
    }?;
    (!stage.is_empty() && stage != "$default").then_some(stage)
}

/// `path` without the leading segments `prefix` (given without its leading slash), if it has them.
fn strip_segments<'p>(path: &'p str, prefix: Option<&str>) -> Option<&'p str> {
    let rest = path.strip_prefix('/')?.strip_prefix(prefix?)?;
    rest.starts_with('/').then_some(rest)
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
        let plain = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
        if !self.datastore.is_empty() && !self.datastore.chars().all(plain) {
            // An empty id keeps its own, clearer error below.
            if let Err(reason @ (IdError::BadChar { .. } | IdError::TooLong { .. })) =
                decode(&self.datastore, self.encoded).and_then(|s| DatastoreId::parse(&s).map(|_| ()))
            {
                // Outside HealthLake's rule anyway: say which character, as for a job id.
                return Err(Error::InvalidId {
                    param: "datastoreId",
                    reason,
                });
            }
            return Err(Error::InvalidId {
                param: "datastoreId",
                reason: IdError::NotPlain,
            });
        }
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
        ids_under(req, None)
    }

    fn ids_under(req: &Request, base: Option<&str>) -> Option<(String, String)> {
        match_route(req, base).map(|r| (r.datastore.into_owned(), r.job.into_owned()))
    }

    #[test]
    fn matches_the_whole_path_after_the_stage_and_the_base_path_only() {
        let want = Some(("ds1".to_owned(), "job1".to_owned()));
        assert_eq!(ids(&get("/datastores/ds1/export-jobs/job1")), want);
        assert_eq!(ids(&get("/datastores/ds1/export-jobs/job1/")), want);
        // Any other prefix is another path: a rule upstream that allows `/datastores/ds1/...`
        // must not serve ds2 through `/datastores/ds1/x/datastores/ds2/...`.
        assert_eq!(ids(&get("/Prod/datastores/ds1/export-jobs/job1")), None);
        assert_eq!(ids(&get("/datastores/ds1/x/datastores/ds2/export-jobs/j")), None);
        assert_eq!(ids(&get("/datastores/ds1/export-jobs/job1/extra")), None);
        assert_eq!(
            ids_under(
                &get("/v1/health/datastores/ds1/export-jobs/job1/"),
                Some("/v1/health")
            ),
            want
        );
        assert_eq!(
            ids_under(&get("/datastores/ds1/export-jobs/job1"), Some("/v1/health")),
            None
        );
        assert_eq!(
            ids_under(
                &get("/v1/healthy/datastores/ds1/export-jobs/job1"),
                Some("/v1/health")
            ),
            None
        );
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
        let params: HashMap<String, String> = [("datastoreId", "pds"), ("jobId", "p%20job")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let req = get("/something/else").with_path_parameters(QueryMap::from(params));
        let raw = match_route(&req, None).unwrap();
        assert_eq!((raw.datastore.as_ref(), raw.job.as_ref()), ("pds", "p%20job"));
        assert_eq!(raw.parse().unwrap().1.as_str(), "p job");
    }

    #[test]
    fn decodes_exactly_once() {
        let raw = RawIds {
            datastore: "a-b".into(),
            job: "x%2520y%2Fz".into(),
            encoded: true,
        };
        let (ds, job) = raw.parse().unwrap();
        assert_eq!((ds.as_str(), job.as_str()), ("a-b", "x%20y/z"));
        let raw = RawIds {
            datastore: "ds".into(),
            job: "a%20b".into(),
            encoded: false,
        };
        assert_eq!(raw.parse().unwrap().1.as_str(), "a%20b");
    }

    #[test]
    fn a_datastore_id_is_plain_ascii_and_never_percent_encoded() {
        for (datastore, encoded) in [
            ("d%73", true),
            ("ds%2525", true),
            ("ds%25", false),
            ("a%", true),
            ("a:b", false),
            ("a+b", true),
            ("a b", false),
            ("データ", false),
        ] {
            let raw = RawIds {
                datastore: datastore.into(),
                job: "j".into(),
                encoded,
            };
            assert_eq!(
                raw.parse(),
                Err(Error::InvalidId {
                    param: "datastoreId",
                    reason: IdError::NotPlain
                }),
                "{datastore}"
            );
        }
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
            datastore: "ds".into(),
            job: "%FF".into(),
            encoded: true,
        };
        assert_eq!(
            raw.parse(),
            Err(Error::InvalidId {
                param: "jobId",
                reason: IdError::NotUtf8
            })
        );
    }
}
