//! The HTTP contract, through the real handler and the real SDK client against the loopback
//! HealthLake stand-in: every JobStatus, every row of the error table, caching and headers.

use crate::common::*;
use export_job_status::config::{AllowedOrigins, Config};
use export_job_status::handler::handle;
use lambda_http::http::Method;
use lambda_http::Body;
use loopback::healthlake::{job, Reply, StandIn};
use std::time::{Duration, Instant};

const STATUSES: [(&str, bool); 10] = [
    ("SUBMITTED", false),
    ("QUEUED", false),
    ("IN_PROGRESS", false),
    ("COMPLETED", true),
    ("COMPLETED_WITH_ERRORS", true),
    ("FAILED", true),
    ("CANCEL_SUBMITTED", false),
    ("CANCEL_IN_PROGRESS", false),
    ("CANCEL_COMPLETED", true),
    ("CANCEL_FAILED", false),
];

#[tokio::test]
async fn every_job_status_is_reported_verbatim_with_its_terminal_flag() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    for (status, terminal) in STATUSES.iter().chain(&[("SOME_FUTURE_STATUS", false)]) {
        let id = format!("job-{}", status.to_lowercase().replace('_', "-"));
        standin.put_job(DS, &id, status);
        let resp = handle(&app, get(&job_path(DS, &id))).await;
        assert_eq!(resp.status(), 200, "{status}");
        assert_eq!(header(&resp, "content-type"), Some("application/json"));
        let body = body_json(&resp);
        assert_eq!(body["status"], *status);
        assert_eq!(body["terminal"], *terminal, "{status}");
        assert_eq!(body["datastoreId"], DS);
        assert_eq!(body["jobId"], id.as_str());
        assert_eq!(body["jobName"], format!("export-{id}"));
        assert_eq!(body["submittedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["outputS3Uri"], "s3://exports/healthlake/");
        if *terminal {
            assert_eq!(body["endedAt"], "2023-11-14T22:19:20.500Z");
            assert!(header(&resp, "cache-control").unwrap().contains("max-age"));
            assert_eq!(header(&resp, "retry-after"), None);
        } else {
            assert!(
                body.get("endedAt").is_none(),
                "absent fields are omitted, not null"
            );
            assert_eq!(header(&resp, "cache-control"), Some("no-store"));
            assert!(header(&resp, "retry-after").unwrap().parse::<u32>().unwrap() >= 2);
        }
        assert!(header(&resp, "etag").is_some());
        assert_no_leak(&resp);
    }
    // The request was signed awsJson1_0, as HealthLake requires.
    let call = &standin.calls()[0];
    assert_eq!(call.target.as_deref(), Some("HealthLake.DescribeFHIRExportJob"));
    assert_eq!(call.content_type.as_deref(), Some("application/x-amz-json-1.0"));
    assert!(call
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"));
}

#[tokio::test]
async fn a_failed_jobs_message_is_passed_without_the_role_arn() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    standin.put_job(DS, "failed", "FAILED");
    let resp = handle(&app, get(&job_path(DS, "failed"))).await;
    assert_eq!(body_json(&resp)["message"], "Access denied writing as [redacted]");
    assert_no_leak(&resp);
}

/// Every row of the error table: the HealthLake answer, and the status and problem type we give.
#[tokio::test]
async fn every_upstream_failure_maps_to_the_contract() {
    let standin = StandIn::start();
    let config = Config {
        max_attempts: 2,
        upstream_timeout: Duration::from_millis(1500),
        ..Config::default()
    };
    let app = app(&standin, config).await;
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "validation",
            Reply::error(400, "ValidationException"),
            400,
            "upstream-rejected",
        ),
        (
            "not-found",
            Reply::error(400, "ResourceNotFoundException"),
            404,
            "job-not-found",
        ),
        (
            "throttled",
            Reply::error(400, "ThrottlingException"),
            429,
            "throttled",
        ),
        (
            "denied",
            Reply::error(403, "AccessDeniedException"),
            500,
            "upstream-access",
        ),
        (
            "unrecognized",
            Reply::error(400, "UnrecognizedClientException"),
            500,
            "upstream-access",
        ),
        (
            "expired",
            Reply::error(400, "ExpiredTokenException"),
            500,
            "upstream-access",
        ),
        (
            "bad-signature",
            Reply::error(400, "InvalidSignatureException"),
            500,
            "upstream-access",
        ),
        (
            "internal",
            Reply::error(500, "InternalServerException"),
            502,
            "bad-gateway",
        ),
        (
            "unavailable",
            Reply::error(503, "ServiceUnavailable"),
            503,
            "upstream-unavailable",
        ),
        (
            "unmodelled",
            Reply::error(400, "BrandNewException"),
            502,
            "bad-gateway",
        ),
        (
            "not-json",
            Reply::Raw("<html>oops</html>".into()),
            502,
            "bad-gateway",
        ),
        (
            "missing-members",
            Reply::Raw(r#"{"ExportJobProperties":{"JobName":"x"}}"#.into()),
            502,
            "bad-gateway",
        ),
        ("empty-object", Reply::Raw("{}".into()), 502, "bad-gateway"),
        ("dropped", Reply::Drop, 502, "bad-gateway"),
        (
            "slow",
            Reply::delayed(Duration::from_secs(10), Reply::Job(job(DS, "slow", "QUEUED"))),
            504,
            "upstream-timeout",
        ),
    ];
    for (id, reply, status, slug) in cases {
        standin.script(DS, id, vec![reply]);
        let resp = handle(&app, get(&job_path(DS, id))).await;
        assert_eq!(resp.status(), status, "{id}");
        assert_eq!(
            header(&resp, "content-type"),
            Some("application/problem+json"),
            "{id}"
        );
        let body = body_json(&resp);
        assert_eq!(
            body["type"],
            format!("urn:problem-type:export-job-status:{slug}"),
            "{id}"
        );
        assert_eq!(body["status"], status, "{id}");
        assert!(body["title"].is_string() && body["detail"].is_string(), "{id}");
        assert!(body["requestId"].as_str().is_some_and(|r| !r.is_empty()), "{id}");
        if status == 429 || status == 503 {
            assert_eq!(header(&resp, "retry-after"), Some("1"), "{id}");
        }
        assert_no_leak(&resp);
    }
    // Unknown jobs, and jobs asked for in the wrong datastore, are HealthLake's not-found.
    standin.put_job(DS, "elsewhere", "QUEUED");
    let resp = handle(&app, get(&job_path("otherdatastore", "elsewhere"))).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn throttling_is_retried_within_the_bound_then_answered_429() {
    let standin = StandIn::start();
    let app = app(
        &standin,
        Config {
            max_attempts: 3,
            ..Config::default()
        },
    )
    .await;
    standin.script(DS, "busy", vec![Reply::error(400, "ThrottlingException")]);
    let resp = handle(&app, get(&job_path(DS, "busy"))).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        standin.calls_for("busy"),
        3,
        "standard mode retries up to UPSTREAM_MAX_ATTEMPTS"
    );

    // A throttle that clears on retry is invisible to the caller.
    standin.script(
        DS,
        "blip",
        vec![
            Reply::error(400, "ThrottlingException"),
            Reply::Job(job(DS, "blip", "QUEUED")),
        ],
    );
    let resp = handle(&app, get(&job_path(DS, "blip"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(standin.calls_for("blip"), 2);
}

#[tokio::test]
async fn the_upstream_budget_bounds_the_whole_call() {
    let standin = StandIn::start();
    let app = app(
        &standin,
        Config {
            upstream_timeout: Duration::from_millis(300),
            ..Config::default()
        },
    )
    .await;
    standin.script(DS, "hangs", vec![Reply::HangAfterHeaders]);
    let started = Instant::now();
    let resp = handle(&app, get(&job_path(DS, "hangs"))).await;
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn invalid_ids_get_400_naming_the_parameter_and_never_reach_healthlake() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    for (path, param) in [
        (job_path("bad%09tab", "job"), "datastoreId"),
        (job_path(DS, "e%CC%81"), "jobId"), // a combining mark after e
        (job_path(DS, &"x".repeat(33)), "jobId"),
        (job_path("", "job"), "datastoreId"),
        (job_path(DS, "%FF%FE"), "jobId"),
        (job_path(DS, "a%23b"), "jobId"),
    ] {
        let resp = handle(&app, get(&path)).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body = body_json(&resp);
        assert_eq!(
            body["type"],
            "urn:problem-type:export-job-status:invalid-parameter"
        );
        assert!(
            body["detail"].as_str().unwrap().starts_with(param),
            "{path}: {body}"
        );
    }
    assert!(standin.calls().is_empty(), "invalid input reached HealthLake");
}

#[tokio::test]
async fn percent_encoded_ids_are_decoded_once_before_the_call() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    standin.put_job(DS, "job 1/a%b", "QUEUED");
    let resp = handle(&app, get(&job_path(DS, "job%201%2Fa%25b"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(&resp)["jobId"], "job 1/a%b");
    assert_eq!(standin.calls()[0].job_id.as_deref(), Some("job 1/a%b"));
}

#[tokio::test]
async fn terminal_jobs_are_cached_and_running_jobs_never_are() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    standin.put_job(DS, "done", "COMPLETED");
    standin.put_job(DS, "running", "IN_PROGRESS");
    for _ in 0..3 {
        assert_eq!(handle(&app, get(&job_path(DS, "done"))).await.status(), 200);
        assert_eq!(handle(&app, get(&job_path(DS, "running"))).await.status(), 200);
    }
    assert_eq!(standin.calls_for("done"), 1);
    assert_eq!(standin.calls_for("running"), 3);

    // A job polled until it ends: fresh while running, then served from memory.
    standin.script(
        DS,
        "moving",
        vec![
            Reply::Job(job(DS, "moving", "IN_PROGRESS")),
            Reply::Job(job(DS, "moving", "COMPLETED")),
        ],
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(body_json(&handle(&app, get(&job_path(DS, "moving"))).await)["status"].clone());
    }
    assert_eq!(seen, ["IN_PROGRESS", "COMPLETED", "COMPLETED"]);
    assert_eq!(standin.calls_for("moving"), 2);
}

#[tokio::test]
async fn etag_and_if_none_match_answer_304_without_a_body() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    standin.put_job(DS, "j", "IN_PROGRESS");
    let first = handle(&app, get(&job_path(DS, "j"))).await;
    let etag = header(&first, "etag").unwrap().to_owned();
    let mut again = get(&job_path(DS, "j"));
    again.headers_mut().insert("if-none-match", etag.parse().unwrap());
    let resp = handle(&app, again).await;
    assert_eq!(resp.status(), 304);
    assert!(matches!(resp.body(), Body::Empty));
    assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
    assert_eq!(header(&resp, "cache-control"), Some("no-store"));

    let mut stale = get(&job_path(DS, "j"));
    stale
        .headers_mut()
        .insert("if-none-match", "\"0000000000000000\"".parse().unwrap());
    assert_eq!(handle(&app, stale).await.status(), 200);
}

#[tokio::test]
async fn head_options_and_other_methods() {
    let standin = StandIn::start();
    let config = Config {
        allowed_origins: AllowedOrigins::List(vec!["https://app.example.com".into()]),
        ..Config::default()
    };
    let app = app(&standin, config).await;
    standin.put_job(DS, "j", "QUEUED");
    let path = job_path(DS, "j");

    let get_resp = handle(&app, get(&path)).await;
    let head = handle(&app, request(Method::HEAD, &path)).await;
    assert_eq!(head.status(), 200);
    assert!(matches!(head.body(), Body::Empty));
    assert_eq!(header(&head, "etag"), header(&get_resp, "etag"));
    assert_eq!(header(&head, "content-type"), Some("application/json"));

    let calls_before = standin.calls_for("j");
    let mut preflight = request(Method::OPTIONS, &path);
    preflight
        .headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    preflight
        .headers_mut()
        .insert("access-control-request-method", "GET".parse().unwrap());
    let resp = handle(&app, preflight).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(header(&resp, "access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    assert!(header(&resp, "access-control-allow-headers")
        .unwrap()
        .contains("if-none-match"));
    assert_eq!(header(&resp, "vary"), Some("Origin"));

    let mut from_app = get(&path);
    from_app
        .headers_mut()
        .insert("origin", "https://app.example.com".parse().unwrap());
    let resp = handle(&app, from_app).await;
    assert_eq!(
        header(&resp, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&resp, "access-control-expose-headers"),
        Some("ETag, Retry-After, Age")
    );

    let mut from_elsewhere = get(&path);
    from_elsewhere
        .headers_mut()
        .insert("origin", "https://evil.example.com".parse().unwrap());
    let resp = handle(&app, from_elsewhere).await;
    assert_eq!(header(&resp, "access-control-allow-origin"), None);
    assert_eq!(header(&resp, "vary"), Some("Origin"));

    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let resp = handle(&app, request(method.clone(), &path)).await;
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(header(&resp, "allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(header(&resp, "content-type"), Some("application/problem+json"));
    }
    let resp = handle(&app, get("/datastores/x/import-jobs/y")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        body_json(&resp)["type"],
        "urn:problem-type:export-job-status:no-route"
    );
    assert_eq!(
        standin.calls_for("j"),
        calls_before + 2,
        "only GET and HEAD call HealthLake"
    );
}

#[tokio::test]
async fn datastores_outside_the_allow_list_are_404_without_a_call() {
    let standin = StandIn::start();
    let config = Config::from_lookup(|k| (k == "ALLOWED_DATASTORE_IDS").then(|| DS.to_owned())).unwrap();
    let app = app(&standin, config).await;
    standin.put_job("otherdatastore", "j", "QUEUED");
    let resp = handle(&app, get(&job_path("otherdatastore", "j"))).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        body_json(&resp)["type"],
        "urn:problem-type:export-job-status:job-not-found"
    );
    assert!(standin.calls().is_empty());
}

/// The last row of the error table: a panic anywhere under the handler is still an answer. The
/// only way to make correct code panic is from outside, so the SDK gets an HTTP client that
/// panics (an in-process mock, as no wire answer can do this).
#[tokio::test]
async fn a_panic_under_the_handler_is_a_500_problem_and_the_app_keeps_working() {
    use aws_smithy_http_client::test_util::infallible_client_fn;
    use export_job_status::handler::App;
    let sdk = export_job_status::aws::sdk_config_loader(&Config::default())
        .region(aws_sdk_healthlake::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .http_client(infallible_client_fn(
            |_req| -> lambda_http::http::Response<String> { panic!("connector bug") },
        ))
        .load()
        .await;
    let app = App::new(aws_sdk_healthlake::Client::new(&sdk), Config::default());
    for _ in 0..2 {
        let resp = handle(&app, get(&job_path(DS, "job"))).await;
        assert_eq!(resp.status(), 500);
        assert_eq!(header(&resp, "content-type"), Some("application/problem+json"));
        assert_eq!(
            body_json(&resp)["type"],
            "urn:problem-type:export-job-status:internal-error"
        );
    }
    // Requests that do not reach the client are unaffected.
    assert_eq!(handle(&app, get(&job_path(DS, "bad%09"))).await.status(), 400);
}
