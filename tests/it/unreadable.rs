//! HTTP events the function cannot read as requests, through the compiled binary: lambda_http
//! panics turning some of them into requests (a Host it cannot parse, an undecodable base64
//! body) and rejects others (a member of the wrong type). Each is answered 400
//! `unreadable-request` in its source's shape, the process keeps running, and a panic is one
//! JSON line at ERROR.
//!
//! The panics only turn into answers while the binary unwinds: a build with panic = "abort"
//! (cargo-lambda's default when the release profile leaves `panic` unset) dies here with
//! SIGABRT and posts nothing. .ci/run runs this against the artifacts cargo-lambda builds.

use crate::binary::{alb_event, posted, rest_event, slug, Function, DEADLINE};
use crate::common::{job_path, DS};
use loopback::healthlake::StandIn;
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};

const BAD_HOST: &str = "app.example.com:99999";
const BAD_BASE64: &str = "not*base64*at*all";

fn content_type(resp: &Value, member: &str) -> Option<String> {
    match &resp[member]["content-type"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn is_empty(resp: &Value, member: &str) -> bool {
    resp.get(member)
        .is_none_or(|m| m.is_null() || m.as_object().is_some_and(|o| o.is_empty()))
}

fn body(resp: &Value) -> Value {
    serde_json::from_str(resp["body"].as_str().expect("a body")).expect("a JSON body")
}

fn v2_event(body: &str) -> Value {
    let path = job_path(DS, "job-1");
    json!({
        "version": "2.0",
        "routeKey": "GET /datastores/{datastoreId}/export-jobs/{jobId}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "def456ghij.execute-api.us-east-1.amazonaws.com"},
        "pathParameters": {"datastoreId": DS, "jobId": "job-1"},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "def456ghij",
            "domainName": "def456ghij.execute-api.us-east-1.amazonaws.com",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
            "requestId": "v2-unreadable",
            "routeKey": "GET /datastores/{datastoreId}/export-jobs/{jobId}",
            "stage": "$default",
            "timeEpoch": 1_700_000_000_000_i64
        },
        "body": body,
        "isBase64Encoded": true
    })
}

#[test]
fn unreadable_http_events_are_answered_in_their_sources_shape() {
    let healthlake = StandIn::start();
    healthlake.put_job(DS, "job-1", "IN_PROGRESS");
    let api = RuntimeApi::start();
    let mut function = Function::start(&api, &healthlake, &[], &[]);
    let path = job_path(DS, "job-1");

    // ALB, multi-value headers off: `headers` and a status description.
    let resp = posted(api.invoke(alb_event(&path, BAD_HOST), DEADLINE), "ALB");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(resp["statusDescription"], "400 Bad Request", "{resp}");
    assert_eq!(
        content_type(&resp, "headers").as_deref(),
        Some("application/problem+json")
    );
    assert!(is_empty(&resp, "multiValueHeaders"), "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");

    // ALB, multi-value headers on: the event carries `multiValueHeaders`, so does the answer.
    // (lambda_http reads the Host of such an event from nowhere, so the body is what is bad.)
    let mut event = alb_event(&path, "internal.example.com");
    event["body"] = json!(BAD_BASE64);
    event["isBase64Encoded"] = json!(true);
    let headers = event.as_object_mut().unwrap().remove("headers").unwrap();
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    event["multiValueHeaders"] = Value::Object(multi);
    event["multiValueQueryStringParameters"] = json!({});
    let resp = posted(api.invoke(event, DEADLINE), "ALB multi-value");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(resp["statusDescription"], "400 Bad Request", "{resp}");
    assert_eq!(
        content_type(&resp, "multiValueHeaders").as_deref(),
        Some("application/problem+json")
    );
    assert!(is_empty(&resp, "headers"), "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");

    // HTTP API (payload 2.0) with a body that is not base64: the 2.0 shape.
    let resp = posted(api.invoke(v2_event(BAD_BASE64), DEADLINE), "HTTP API");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(
        content_type(&resp, "headers").as_deref(),
        Some("application/problem+json")
    );
    assert!(is_empty(&resp, "multiValueHeaders"), "{resp}");
    assert!(resp.get("statusDescription").is_none(), "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");

    // REST API with the same body: the 1.0 shape.
    let mut event = rest_event("rest-unreadable", "GET", DS, "job-1");
    event["body"] = json!(BAD_BASE64);
    event["isBase64Encoded"] = json!(true);
    let resp = posted(api.invoke(event, DEADLINE), "REST");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(
        content_type(&resp, "multiValueHeaders").as_deref(),
        Some("application/problem+json")
    );
    assert!(resp.get("statusDescription").is_none(), "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");

    // A REST event lambda_http will not deserialize (headers that are not a map): no panic,
    // still the 1.0 shape and the same problem.
    let mut event = rest_event("rest-bad-member", "GET", DS, "job-1");
    event["headers"] = json!("not a map");
    let resp = posted(api.invoke(event, DEADLINE), "REST, wrong member");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(
        content_type(&resp, "multiValueHeaders").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(slug(&resp), "unreadable-request");
    let inv = api.invocations().pop().unwrap();
    assert_eq!(body(&resp)["requestId"], inv.request_id.as_str());

    // Not an HTTP event at all: that, and nothing else, is `not-an-http-event`.
    let resp = posted(api.invoke(json!({"Records": []}), DEADLINE), "not HTTP");
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(slug(&resp), "not-an-http-event");

    // And the same process still answers a good request.
    let resp = posted(
        api.invoke(rest_event("after", "GET", DS, "job-1"), DEADLINE),
        "after",
    );
    assert_eq!(resp["statusCode"], 200, "{resp}");
    assert!(function.running(), "the function exited");
    assert!(api.error_posts().is_empty(), "{:?}", api.error_posts());
}

#[test]
fn a_panic_is_one_json_line_at_error_and_an_answer() {
    let healthlake = StandIn::start();
    let api = RuntimeApi::start();
    let mut function = Function::start(&api, &healthlake, &[], &[]);

    let resp = posted(
        api.invoke(alb_event(&job_path(DS, "job-1"), BAD_HOST), DEADLINE),
        "bad host",
    );
    assert_eq!(resp["statusCode"], 400, "{resp}");
    assert_eq!(slug(&resp), "unreadable-request");
    let request_id = api.invocations().pop().unwrap().request_id;

    // A next request, whose line comes after everything the panic made the function log.
    let resp = posted(
        api.invoke(alb_event("/elsewhere", "internal.example.com"), DEADLINE),
        "next",
    );
    assert_eq!(resp["statusCode"], 404, "{resp}");
    let lines = function.lines_where(3, |_| true);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[2]["message"], "request", "{lines:#?}");

    // So the panic left exactly two lines: its own, then the answer's.
    let (panic, answer) = (&lines[0], &lines[1]);
    assert_eq!(panic["level"], "ERROR", "{panic}");
    assert_eq!(panic["message"], "panic", "{panic}");
    assert!(
        panic["location"].as_str().is_some_and(|l| l.contains(".rs:")),
        "{panic}"
    );
    // Where, not what: nothing of the event is in it.
    let text = panic.to_string();
    for event_data in [BAD_HOST, "99999", DS, "job-1", "InvalidPort"] {
        assert!(!text.contains(event_data), "{event_data} in {text}");
    }
    assert_eq!(answer["level"], "INFO", "{answer}");
    assert_eq!(answer["message"], "request could not be read", "{answer}");
    assert_eq!(answer["request_id"], request_id.as_str(), "{answer}");
    assert_eq!(answer["status"], 400, "{answer}");
    // Rust's default report (several lines of text on stderr) is gone.
    assert_eq!(function.stderr(), Vec::<String>::new());
    assert!(function.running(), "the function exited");
}
