//! Events from outside the project (tests/corpus/, README there says where each comes from)
//! through the compiled binary: as published, then rewritten onto our route with a valid, a
//! percent-encoded and an invalid id. Whatever an event is, the function posts an answer in its
//! source's shape, keeps running, and logs only JSON lines on stdout.
//!
//! The binary is the one the harness is given (tests/it/binary.rs): .ci/run runs this against
//! the artifact cargo-lambda builds, as `sam build` does.

use crate::binary::{posted, slug, Function, DEADLINE};
use crate::common::DS;
use loopback::healthlake::StandIn;
use loopback::runtime_api::{Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const JOB: &str = "job-1";
const ROUTE: &str = "/datastores/{datastoreId}/export-jobs/{jobId}";

/// The source an event names by the members each one always sends (the test's own reading of
/// the event shapes, independent of the function's).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Rest,
    V2,
    Alb { multi_value: bool },
}

fn source_of(event: &Value) -> Option<Source> {
    let context = event.get("requestContext")?;
    if context.get("elb").is_some() {
        Some(Source::Alb {
            multi_value: event.get("multiValueHeaders").is_some_and(|v| !v.is_null()),
        })
    } else if event["version"] == "2.0" && context.get("http").is_some() {
        Some(Source::V2)
    } else if event.get("httpMethod").is_some() {
        Some(Source::Rest)
    } else {
        None
    }
}

fn corpus() -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/corpus")
        .flat_map(|dir| std::fs::read_dir(dir.unwrap().path()).into_iter().flatten())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap().display().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, event)
        })
        .collect()
}

/// The event as a GET of our route, the ids as a client would put them in the URL
/// (`raw_*`: percent-encoding left in) and as API Gateway hands over decoded path parameters.
fn onto_route(event: &Value, source: Source, raw_ds: &str, raw_job: &str, ds: &str, job: &str) -> Value {
    let mut e = event.clone();
    let raw_path = format!("/datastores/{raw_ds}/export-jobs/{raw_job}");
    match source {
        Source::Rest => {
            e["httpMethod"] = json!("GET");
            e["path"] = json!(raw_path);
            e["resource"] = json!(ROUTE);
            // REST APIs pass path parameters as the client encoded them.
            e["pathParameters"] = json!({"datastoreId": raw_ds, "jobId": raw_job});
            e["requestContext"]["httpMethod"] = json!("GET");
            e["requestContext"]["resourcePath"] = json!(ROUTE);
            if e["requestContext"].get("path").is_some() {
                e["requestContext"]["path"] = json!(raw_path);
            }
        }
        Source::V2 => {
            e["rawPath"] = json!(raw_path);
            e["requestContext"]["http"]["method"] = json!("GET");
            e["requestContext"]["http"]["path"] = json!(format!("/datastores/{ds}/export-jobs/{job}"));
            let function_url = e["requestContext"]["domainName"]
                .as_str()
                .is_some_and(|d| d.contains(".lambda-url."));
            if function_url {
                e["routeKey"] = json!("$default");
                e.as_object_mut().unwrap().remove("pathParameters");
            } else {
                // HTTP APIs decode path parameters.
                e["routeKey"] = json!(format!("GET {ROUTE}"));
                e["requestContext"]["routeKey"] = json!(format!("GET {ROUTE}"));
                e["pathParameters"] = json!({"datastoreId": ds, "jobId": job});
            }
        }
        Source::Alb { .. } => {
            e["httpMethod"] = json!("GET");
            e["path"] = json!(raw_path);
        }
    }
    e
}

/// The answer is in `source`'s shape: ALB's has a status description and carries its headers
/// in the member the target group reads; REST's in `multiValueHeaders`; 2.0's in `headers`.
fn assert_shape(resp: &Value, source: Source, what: &str) {
    let content_type = |member: &str| -> Option<String> {
        match &resp[member]["content-type"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    let (member, status_description) = match source {
        Source::Rest => ("multiValueHeaders", false),
        Source::V2 => ("headers", false),
        Source::Alb { multi_value: true } => ("multiValueHeaders", true),
        Source::Alb { multi_value: false } => ("headers", true),
    };
    assert!(
        content_type(member).is_some(),
        "{what}: no content-type in {member}: {resp}"
    );
    assert_eq!(
        resp.get("statusDescription").is_some_and(|d| !d.is_null()),
        status_description,
        "{what}: {resp}"
    );
    if source == Source::V2 {
        assert!(
            resp.get("multiValueHeaders")
                .is_none_or(|m| m.as_object().is_none_or(|m| m.is_empty())),
            "{what}: {resp}"
        );
    }
}

fn body(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().expect("a body")).expect("a JSON body")
}

#[test]
fn every_public_event_is_answered_as_published_and_on_our_route() {
    let corpus = corpus();
    assert!(corpus.len() >= 250, "the corpus has {} events", corpus.len());
    let healthlake = StandIn::start();
    healthlake.put_job(DS, JOB, "IN_PROGRESS");
    let api = RuntimeApi::start();
    // The published events come from no authenticated front door (no IAM identity in most):
    // their shapes are what is tested here, so the function serves every caller.
    let mut function = Function::start(&api, &healthlake, &[("AUTH_MODE", "NONE")], &[]);

    let (mut http, mut unreadable, mut not_http) = (0, Vec::new(), 0);
    for (name, event) in &corpus {
        let source = source_of(event);
        let resp = posted(api.invoke(event.clone(), DEADLINE), name);
        let status = resp["statusCode"].as_u64();
        let kind = slug(&resp);
        match source {
            // Not our route, or a request lambda_http cannot read.
            Some(source) => {
                assert_shape(&resp, source, name);
                match (status, kind.as_str()) {
                    (Some(404), "no-route") => http += 1,
                    (Some(400), "unreadable-request") => unreadable.push(name.as_str()),
                    other => panic!("{name} as published: {other:?} {resp}"),
                }
            }
            None => {
                assert_eq!(
                    (status, kind.as_str()),
                    (Some(400), "not-an-http-event"),
                    "{name}: {resp}"
                );
                not_http += 1;
            }
        }
        assert!(function.running(), "{name} as published: the function exited");

        let Some(source) = source else { continue };
        let was_unreadable = kind == "unreadable-request";
        // A REST event with an API key id is a partner's: with no partner mapping here it may
        // read no datastore, which the contract answers like a missing job (src/access/).
        let partner = event["requestContext"]["identity"]["apiKeyId"]
            .as_str()
            .is_some_and(|k| !k.is_empty());
        // Only the job id is encoded: a datastore id with `%` is refused in any form
        // (src/route.rs), which tests/it/binary.rs checks through each source.
        let cases = [
            ("valid", DS, JOB, 200),
            ("percent-encoded", DS, "job%2D1", 200),
            ("invalid", DS, "job*1", 400),
        ];
        for (case, raw_ds, raw_job, want) in cases {
            let what = format!("{name} on our route, {case} id");
            let rewritten = onto_route(event, source, raw_ds, raw_job, DS, &raw_job.replace("%2D", "-"));
            let resp = posted(api.invoke(rewritten, DEADLINE), &what);
            assert_shape(&resp, source, &what);
            let status = resp["statusCode"].as_u64();
            if was_unreadable && status == Some(400) && slug(&resp) == "unreadable-request" {
                // Still carries what made it unreadable (a Host header, a body).
                continue;
            }
            let body = body(&resp);
            if partner && want == 200 {
                assert_eq!(
                    (status, slug(&resp).as_str()),
                    (Some(404), "job-not-found"),
                    "{what}"
                );
                continue;
            }
            assert_eq!(status, Some(want), "{what}: {resp}");
            if want == 200 {
                assert_eq!(
                    (body["datastoreId"].as_str(), body["jobId"].as_str()),
                    (Some(DS), Some(JOB)),
                    "{what}"
                );
            } else {
                assert_eq!(slug(&resp), "invalid-parameter", "{what}");
                assert!(
                    body["detail"].as_str().is_some_and(|d| d.starts_with("jobId ")),
                    "{what}: {body}"
                );
            }
        }
        assert!(function.running(), "{name} on our route: the function exited");
    }
    println!(
        "{} events: {http} HTTP events answered 404 as published, {} unreadable {unreadable:?}, {not_http} not HTTP",
        corpus.len(),
        unreadable.len()
    );
    // Floors, so that a reading of the corpus that finds no HTTP event cannot pass unnoticed.
    assert!(
        http >= 35 && !unreadable.is_empty() && not_http >= 200,
        "{http} {unreadable:?} {not_http}"
    );

    // No invocation error, ever; every answer posted; nothing but JSON log lines, and nothing at
    // all on stderr (a panic's default report would be there).
    assert!(api.error_posts().is_empty(), "{:?}", api.error_posts());
    assert!(api.init_errors().is_empty(), "{:?}", api.init_errors());
    assert!(api
        .invocations()
        .iter()
        .all(|i| matches!(i.outcome, Outcome::Response(_))));
    assert!(function.running(), "the function exited");
    let _ = function.log_lines();
    assert_eq!(function.stderr(), Vec::<String>::new());
}
