//! Faults that real deployments meet, each against the loopback HealthLake stand-in: a pooled
//! connection closed while the execution environment was frozen, an upstream that sends headers
//! and then nothing, a body far larger than any real answer, 200 with required members missing,
//! and a burst of throttling. First through the handler in-process, then all of them through
//! one process of the compiled binary, which must outlive them and keep answering.

use crate::binary::{
    alb_event, assert_one_cold_start, assert_request_metrics, posted, rest_event, rest_header, slug,
    Expected, Function, DEADLINE, NAMESPACE,
};
use crate::common::*;
use export_job_status::config::Config;
use export_job_status::handler::handle;
use futures_util::future::join_all;
use loopback::healthlake::{job, Reply, StandIn};
use loopback::runtime_api::{Outcome, RuntimeApi};
use serde_json::json;
use std::time::{Duration, Instant};

/// A real DescribeFHIRExportJob answer is a few kilobytes at most.
const HUGE: usize = 200 * 1024 * 1024;

/// Answers missing a member the contract needs: each is 502, never a job and never a panic.
fn incomplete_answers() -> Vec<(&'static str, String)> {
    let full = job(DS, "incomplete", "QUEUED");
    let without = |member: &str| {
        let mut props = full.clone();
        props.as_object_mut().unwrap().remove(member);
        json!({ "ExportJobProperties": props }).to_string()
    };
    vec![
        ("no-status", without("JobStatus")),
        ("no-submit-time", without("SubmitTime")),
        ("no-job-id", without("JobId")),
        ("no-datastore-id", without("DatastoreId")),
        ("empty-properties", r#"{"ExportJobProperties":{}}"#.to_owned()),
        ("null-properties", r#"{"ExportJobProperties":null}"#.to_owned()),
        ("no-properties", r#"{"Something":"else"}"#.to_owned()),
        ("array", "[]".to_owned()),
    ]
}

// ---- In-process: the handler and the real SDK client ----

/// Lambda freezes an execution environment between events; HealthLake's side closes the idle
/// connection meanwhile. Blocking this test's only runtime thread plays the frozen environment:
/// the client cannot notice the close before it next sends on the pooled connection.
#[tokio::test(flavor = "current_thread")]
async fn a_pooled_connection_closed_while_frozen_is_replaced() {
    let standin = StandIn::start();
    standin.put_job(DS, "j", "IN_PROGRESS");
    // The fault is real: with a single attempt, the request sent on the dead connection fails.
    let single = app(
        &standin,
        Config {
            max_attempts: 1,
            ..Config::default()
        },
    )
    .await;
    assert_eq!(handle(&single, get(&job_path(DS, "j"))).await.status(), 200);
    standin_close_and_freeze(&standin);
    assert_eq!(handle(&single, get(&job_path(DS, "j"))).await.status(), 502);
    // With the SDK's retries (the default three attempts), the retry takes a new connection.
    let app = app(&standin, Config::default()).await;
    for round in 0..5 {
        assert_eq!(
            handle(&app, get(&job_path(DS, "j"))).await.status(),
            200,
            "round {round}"
        );
        standin_close_and_freeze(&standin);
    }
    assert_eq!(handle(&app, get(&job_path(DS, "j"))).await.status(), 200);
}

fn standin_close_and_freeze(standin: &StandIn) {
    standin.close_connections();
    std::thread::sleep(Duration::from_millis(50));
}

#[tokio::test]
async fn headers_then_silence_is_504_within_the_budget() {
    let standin = StandIn::start();
    let budget = Duration::from_millis(800);
    let app = app(
        &standin,
        Config {
            upstream_timeout: budget,
            ..Config::default()
        },
    )
    .await;
    standin.script(DS, "hangs", vec![Reply::HangAfterHeaders]);
    let started = Instant::now();
    let resp = handle(&app, get(&job_path(DS, "hangs"))).await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        body_json(&resp)["type"],
        "urn:problem-type:export-job-status:upstream-timeout"
    );
    assert!(
        took >= budget && took < budget + Duration::from_millis(500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_body_far_larger_than_any_answer_is_502() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    standin.script(DS, "huge", vec![Reply::Huge(HUGE)]);
    let resp = handle(&app, get(&job_path(DS, "huge"))).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        body_json(&resp)["type"],
        "urn:problem-type:export-job-status:bad-gateway"
    );
}

#[tokio::test]
async fn answers_missing_required_members_are_502() {
    let standin = StandIn::start();
    let app = app(&standin, Config::default()).await;
    for (id, body) in incomplete_answers() {
        standin.script(DS, id, vec![Reply::Raw(body)]);
        let resp = handle(&app, get(&job_path(DS, id))).await;
        assert_eq!(resp.status(), 502, "{id}");
        assert_eq!(
            body_json(&resp)["type"],
            "urn:problem-type:export-job-status:bad-gateway",
            "{id}"
        );
        assert_no_leak(&resp);
    }
}

/// Many callers throttled at once, sharing one client (and its retry budget): every one gets
/// 429 with Retry-After, and no request makes more than UPSTREAM_MAX_ATTEMPTS attempts.
#[tokio::test]
async fn a_burst_of_throttling_stays_within_the_attempt_bound() {
    let standin = StandIn::start();
    let max_attempts = 3;
    let app = app(
        &standin,
        Config {
            max_attempts,
            ..Config::default()
        },
    )
    .await;
    let jobs: Vec<String> = (0..40).map(|n| format!("busy-{n}")).collect();
    for id in &jobs {
        standin.script(DS, id, vec![Reply::error(400, "ThrottlingException")]);
    }
    let resps = join_all(jobs.iter().map(|id| handle(&app, get(&job_path(DS, id))))).await;
    for (id, resp) in jobs.iter().zip(&resps) {
        assert_eq!(resp.status(), 429, "{id}");
        assert_eq!(header(resp, "retry-after"), Some("1"), "{id}");
        assert_eq!(
            body_json(resp)["type"],
            "urn:problem-type:export-job-status:throttled"
        );
        let calls = standin.calls_for(id);
        assert!(
            (1..=max_attempts as usize).contains(&calls),
            "{id}: {calls} attempts"
        );
    }
    // Once HealthLake has capacity again, the next caller is served.
    standin.put_job(DS, "after", "QUEUED");
    assert_eq!(handle(&app, get(&job_path(DS, "after"))).await.status(), 200);
}

// ---- One process of the compiled binary, through every fault ----

#[test]
fn one_process_outlives_every_fault_and_keeps_answering() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let mut function = Function::start(
        &api,
        &healthlake,
        &[("UPSTREAM_TIMEOUT_MS", "2000"), ("UPSTREAM_MAX_ATTEMPTS", "3")],
        &[],
    );
    let ok = |request_id: &str, job: &str| {
        healthlake.put_job(DS, job, "IN_PROGRESS");
        let resp = posted(
            api.invoke(rest_event(request_id, "GET", DS, job), DEADLINE),
            request_id,
        );
        assert_eq!(resp["statusCode"], 200, "{request_id}: {resp}");
    };
    ok("warm", "job-ok");

    // Frozen between events while HealthLake closes the pooled connection: the event arrives
    // while the process is stopped, so on waking it sends on the dead connection first.
    function.signal("-STOP");
    healthlake.close_connections();
    std::thread::sleep(Duration::from_millis(100));
    let resp = std::thread::scope(|s| {
        let waiting = s.spawn(|| api.invoke(rest_event("thawed", "GET", DS, "job-ok"), DEADLINE));
        std::thread::sleep(Duration::from_millis(200));
        function.signal("-CONT");
        posted(waiting.join().unwrap(), "after the freeze")
    });
    assert_eq!(resp["statusCode"], 200, "{resp}");

    // Headers, then nothing: the function's 504 within its 2 s budget.
    healthlake.script(DS, "hangs", vec![Reply::HangAfterHeaders]);
    let inv = api.invoke_timed(rest_event("hangs", "GET", DS, "hangs"), DEADLINE);
    let took = inv.answered.unwrap() - inv.delivered.unwrap();
    let resp = posted(inv.outcome, "hangs");
    assert_eq!(
        (resp["statusCode"].as_u64(), slug(&resp).as_str()),
        (Some(504), "upstream-timeout")
    );
    assert!(took < Duration::from_millis(2600), "took {took:?}");

    // 200 MB of body: 502, and the process does not hold it.
    let before = function.memory_kb("VmHWM");
    healthlake.script(DS, "huge", vec![Reply::Huge(HUGE)]);
    let resp = posted(
        api.invoke(rest_event("huge", "GET", DS, "huge"), DEADLINE),
        "huge",
    );
    assert_eq!(
        (resp["statusCode"].as_u64(), slug(&resp).as_str()),
        (Some(502), "bad-gateway")
    );
    let grew_kb = function.memory_kb("VmHWM") - before;
    eprintln!("peak RSS before the huge body: {before} kB; grew by {grew_kb} kB");
    assert!(
        grew_kb < 16 * 1024,
        "peak RSS grew by {grew_kb} kB reading a 200 MB body"
    );

    for (id, body) in incomplete_answers() {
        healthlake.script(DS, id, vec![Reply::Raw(body)]);
        let resp = posted(api.invoke(rest_event(id, "GET", DS, id), DEADLINE), id);
        assert_eq!(
            (resp["statusCode"].as_u64(), slug(&resp).as_str()),
            (Some(502), "bad-gateway"),
            "{id}"
        );
    }

    // A burst of throttled requests.
    for n in 0..10 {
        let id = format!("busy-{n}");
        healthlake.script(DS, &id, vec![Reply::error(400, "ThrottlingException")]);
        let resp = posted(api.invoke(rest_event(&id, "GET", DS, &id), DEADLINE), &id);
        assert_eq!(resp["statusCode"], 429, "{id}");
        assert_eq!(rest_header(&resp, "retry-after").as_deref(), Some("1"));
        assert!((1..=3).contains(&healthlake.calls_for(&id)), "{id}");
    }

    // Found by fuzzing: lambda_http panics turning an event with an unparseable Host into a
    // request. The function answers 400 instead of failing the invocation (unreadable.rs has
    // the shapes and the log line).
    let resp = posted(
        api.invoke(
            alb_event(&job_path(DS, "job-ok"), "app.example.com:99999"),
            DEADLINE,
        ),
        "bad host",
    );
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");

    ok("last", "job-last");
    assert!(function.running(), "the function exited");
    assert_fault_metrics(&function, &healthlake);
    assert!(api.error_posts().is_empty(), "{:?}", api.error_posts());
    assert!(api
        .invocations()
        .iter()
        .all(|i| matches!(i.outcome, Outcome::Response(_))));
}

/// The request lines of the fault run say what happened: each request's outcome and the calls
/// HealthLake received for it.
fn assert_fault_metrics(function: &Function, healthlake: &StandIn) {
    let calls = |job: &str| healthlake.calls_for(job);
    let mut want = vec![
        Expected::upstream("hangs", 504, "upstream-timeout", calls("hangs")),
        Expected::upstream("huge", 502, "bad-gateway", calls("huge")),
        Expected::upstream("last", 200, "ok", calls("job-last")),
    ];
    let incomplete: Vec<String> = incomplete_answers()
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    for id in &incomplete {
        want.push(Expected::upstream(id, 502, "bad-gateway", calls(id)));
    }
    let busy: Vec<String> = (0..10).map(|n| format!("busy-{n}")).collect();
    for id in &busy {
        want.push(Expected::upstream(id, 429, "throttled", calls(id)));
    }
    // warm, thawed, the bad Host, and the rest.
    let lines = function.request_lines(want.len() + 2);
    assert_eq!(lines.len(), want.len() + 2, "{lines:#?}");
    for w in &want {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == w.request_id)
            .unwrap_or_else(|| panic!("no line for {}", w.request_id));
        assert_request_metrics(line, w, NAMESPACE);
    }
    // The thawed request may have sent its first attempt on the dead connection, which
    // HealthLake never saw: the function counts what it sent, the stand-in what it received.
    let by_id = |id: &str| lines.iter().find(|l| l["request_id"] == id).unwrap();
    let warm_and_thawed =
        by_id("warm")["UpstreamCalls"].as_u64().unwrap() + by_id("thawed")["UpstreamCalls"].as_u64().unwrap();
    assert!(
        (calls("job-ok") as u64..=calls("job-ok") as u64 + 1).contains(&warm_and_thawed),
        "{warm_and_thawed} sent, {} received",
        calls("job-ok")
    );
    let all = function.log_lines();
    let bad_host: Vec<&serde_json::Value> = all
        .iter()
        .filter(|l| l["message"] == "request could not be read")
        .collect();
    assert_eq!(bad_host.len(), 1, "{all:#?}");
    let id = bad_host[0]["request_id"].as_str().unwrap();
    assert_request_metrics(
        bad_host[0],
        &Expected::local(id, 400, "unreadable-request"),
        NAMESPACE,
    );
    assert_one_cold_start(&all);
}
