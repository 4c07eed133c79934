//! No credential, session token, signature, Authorization header or AWS error text reaches a log,
//! on any path: the compiled binary at TRACE, through every row of the error table, the faults,
//! a non-HTTP event and an event lambda_http cannot convert, and a process without credentials.

use crate::binary::*;
use crate::common::{job_path, DS};
use crate::emf;
use loopback::healthlake::{self, Reply, StandIn};
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::time::Duration;

/// The `message: "request"` lines: one per HTTP request, so that the check above saw them.
fn request_lines(function: &Function, want: usize) -> Vec<Value> {
    for _ in 0..250 {
        let lines: Vec<Value> = function
            .output()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["message"] == "request")
            .collect();
        if lines.len() >= want {
            lines.iter().for_each(|l| drop(emf::check_line(l)));
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("fewer than {want} request lines: {:#?}", function.output());
}

#[test]
fn no_secret_reaches_a_log_across_the_error_table() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let function = Function::start(
        &api,
        &healthlake,
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("ALLOWED_DATASTORE_IDS", DS),
            ("UPSTREAM_TIMEOUT_MS", "1000"),
            ("UPSTREAM_MAX_ATTEMPTS", "2"),
        ],
        &[],
    );
    let upstream: Vec<(&str, Reply, u64)> = vec![
        ("ok", Reply::Job(healthlake::job(DS, "ok", "FAILED")), 200),
        ("validation", Reply::error(400, "ValidationException"), 400),
        ("not-found", Reply::error(400, "ResourceNotFoundException"), 404),
        ("throttled", Reply::error(400, "ThrottlingException"), 429),
        ("denied", Reply::error(403, "AccessDeniedException"), 500),
        (
            "unrecognized",
            Reply::error(400, "UnrecognizedClientException"),
            500,
        ),
        ("expired", Reply::error(400, "ExpiredTokenException"), 500),
        (
            "bad-signature",
            Reply::error(400, "InvalidSignatureException"),
            500,
        ),
        ("internal", Reply::error(500, "InternalServerException"), 502),
        ("unavailable", Reply::error(503, "ServiceUnavailable"), 503),
        ("unmodelled", Reply::error(400, "BrandNewException"), 502),
        ("not-json", Reply::Raw("<html>oops</html>".into()), 502),
        (
            "missing",
            Reply::Raw(r#"{"ExportJobProperties":{"JobName":"x"}}"#.into()),
            502,
        ),
        ("dropped", Reply::Drop, 502),
        ("huge", Reply::Huge(8 * 1024 * 1024), 502),
        ("hangs", Reply::HangAfterHeaders, 504),
        (
            "slow",
            Reply::delayed(Duration::from_secs(5), Reply::Raw("{}".into())),
            504,
        ),
    ];
    let mut http_requests = 0;
    let mut outcomes = Vec::new();
    for (id, reply, status) in upstream {
        healthlake.script(DS, id, vec![reply]);
        let resp = posted(api.invoke(rest_event(id, "GET", DS, id), DEADLINE), id);
        assert_eq!(resp["statusCode"], status, "{id}: {resp}");
        let outcome = if status == 200 {
            "ok".to_owned()
        } else {
            slug(&resp)
        };
        outcomes.push((id, status, outcome));
        http_requests += 1;
    }
    let local: Vec<(Value, u64)> = vec![
        (rest_event("bad-id", "GET", DS, "bad\tid"), 400),
        (rest_event("other-ds", "GET", "otherdatastore", "j"), 404),
        (rest_event("post", "POST", DS, "ok"), 405),
        (rest_event("options", "OPTIONS", DS, "ok"), 204),
        (rest_event("head", "HEAD", DS, "ok"), 200),
        (
            alb_event("/datastores/x/import-jobs/y", "internal.example.com"),
            404,
        ),
    ];
    for (event, status) in local {
        let resp = posted(api.invoke(event, DEADLINE), "local");
        assert_eq!(resp["statusCode"], status, "{resp}");
        http_requests += 1;
    }
    for event in [
        json!({"hello": "world"}),
        alb_event(&job_path(DS, "ok"), "app.example.com:99999"),
    ] {
        let resp = posted(api.invoke(event, DEADLINE), "not HTTP, or unreadable");
        assert_eq!(resp["statusCode"], 400, "{resp}");
    }
    let lines = request_lines(&function, http_requests);
    assert_eq!(lines.len(), http_requests, "{lines:#?}");
    // Each row's line says its outcome and the calls HealthLake received for it.
    for (id, status, outcome) in &outcomes {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == *id)
            .expect("a line per row");
        let want = Expected::upstream(id, *status as u16, outcome, healthlake.calls_for(id));
        assert_request_metrics(line, &want, NAMESPACE);
    }
    assert_no_secrets(&function.output());
    // Every row of the table is an answer, not a fault: nothing logged above INFO but the one
    // panic inside lambda_http (the bad Host port). The SDK logs an ERROR after a transient
    // error (5xx) when the HTTPS client has not told it which connection to close.
    let loud: Vec<Value> = function
        .output()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| matches!(l["level"].as_str(), Some("WARN" | "ERROR")))
        .filter(|l| l["message"] != "panic")
        .collect();
    assert!(loud.is_empty(), "{loud:#?}");
    // That panic is one JSON line (the panic hook), not Rust's report on stderr.
    // (The answer's own line follows the panic's: once it is read, so is the panic's.)
    function.lines_where(1, |l| l["message"] == "request could not be read");
    let panics = function.lines_where(0, |l| l["message"] == "panic").len();
    assert_eq!(panics, 1, "{:#?}", function.output());
    assert_eq!(function.stderr(), Vec::<String>::new());
}

#[test]
fn no_secret_reaches_a_log_without_credentials() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    // The session token alone: the SDK's environment provider refuses it without the keys.
    let function = Function::start(
        &api,
        &healthlake,
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", ""),
        ],
        &[],
    );
    healthlake.put_job(DS, "j", "QUEUED");
    let resp = posted(
        api.invoke(rest_event("nocreds", "GET", DS, "j"), DEADLINE),
        "nocreds",
    );
    assert_eq!(resp["statusCode"], 500, "{resp}");
    assert_eq!(slug(&resp), "upstream-access");
    assert_eq!(request_lines(&function, 1).len(), 1);
    assert_no_secrets(&function.output());
}
