//! Every sample event in events/ goes through the handler, against a stand-in holding the local
//! run's demo jobs and with the configuration of events/env.json, and must get the status its
//! file name documents (`rest-running-200.json`: 200), under each Lambda context the documented
//! tools give it. A file that names no status fails, so no fixture goes untested.

use crate::common::*;
use export_job_status::config::Config;
use export_job_status::handler::handle;
use lambda_http::{Body, Context, RequestExt};
use loopback::healthlake::{demo, StandIn};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const ENV_FILE: &str = "env.json";
/// The function's logical id in template.yaml: `sam local invoke --env-vars` keys on it.
const FUNCTION_ID: &str = "ExportJobStatusFunction";
/// The situations each event form must cover.
const SITUATIONS: [&str; 7] = [
    "running",
    "terminal",
    "not-found",
    "invalid-id",
    "head",
    "preflight",
    "wrong-method",
];

/// The Lambda contexts an event meets: none (a test calling the handler), a real deadline ten
/// seconds ahead (Lambda, `sam local invoke`), and the fixed `Lambda-Runtime-Deadline-Ms: 600000`
/// that `cargo lambda watch` sends, which is not a deadline at all.
fn contexts() -> [(&'static str, Option<Context>); 3] {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let with_deadline = |deadline| {
        let mut ctx = Context::default();
        ctx.request_id = "a3f9c8e0-0000-4000-8000-000000000001".to_owned();
        ctx.deadline = deadline;
        Some(ctx)
    };
    [
        ("no context", None),
        ("Lambda's deadline", with_deadline(now_ms + 10_000)),
        ("cargo lambda watch's deadline", with_deadline(600_000)),
    ]
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// `rest-running-200.json` → ("rest-running", 200).
fn documented(name: &str) -> Option<(&str, u16)> {
    let stem = name.strip_suffix(".json")?;
    let (situation, status) = stem.rsplit_once('-')?;
    let status = status.parse().ok().filter(|s| (100..600).contains(s))?;
    Some((situation, status))
}

/// The function's variables from events/env.json.
fn env_file_variables() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(events_dir().join(ENV_FILE)).unwrap();
    let env: Value = serde_json::from_str(&text).expect("env.json is JSON");
    let obj = env.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        [FUNCTION_ID],
        "env.json is keyed by the function's logical id"
    );
    obj[FUNCTION_ID].as_object().unwrap().clone()
}

#[test]
fn the_env_file_sets_only_variables_the_template_declares() {
    // SAM silently ignores --env-vars entries that the function's Environment does not declare.
    let template =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap();
    assert!(template.contains(&format!("\n  {FUNCTION_ID}:\n")));
    for (name, value) in env_file_variables() {
        assert!(value.is_string(), "{name}: SAM wants strings");
        assert!(
            template.contains(&format!("\n          {name}: ")),
            "{name} is not declared in the function's Environment in template.yaml"
        );
    }
}

#[tokio::test]
async fn every_event_gets_the_status_its_name_documents() {
    let standin = StandIn::start();
    demo::load(&standin);
    // The configuration sam local invoke would give the function, pointed at our stand-in.
    let vars = env_file_variables();
    assert!(vars.contains_key("AWS_ENDPOINT_URL_HEALTHLAKE"));
    let config = Config::from_lookup(|name| vars.get(name).and_then(Value::as_str).map(str::to_owned))
        .expect("env.json is a valid configuration");
    let app = app(&standin, config).await;

    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ENV_FILE)
        .collect();
    names.sort();
    let mut covered = BTreeSet::new();
    for name in &names {
        let (situation, status) =
            documented(name).unwrap_or_else(|| panic!("events/{name} documents no status (name-NNN.json)"));
        covered.insert(situation.to_owned());
        let text = std::fs::read_to_string(events_dir().join(name)).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap();
        for (what, context) in contexts() {
            let mut req = lambda_http::request::from_str(&text)
                .unwrap_or_else(|e| panic!("events/{name} is not an HTTP event lambda_http reads: {e}"));
            if let Some(context) = context {
                req = req.with_lambda_context(context);
            }
            let resp = handle(&app, req).await;
            assert_eq!(resp.status(), status, "events/{name} with {what}");
        }
        let req = lambda_http::request::from_str(&text).unwrap();
        let resp = handle(&app, req).await;
        assert_no_leak(&resp);
        let content_type = header(&resp, "content-type");
        if status >= 400 {
            assert_eq!(content_type, Some("application/problem+json"), "events/{name}");
            let request_id = event["requestContext"]["requestId"].as_str().unwrap();
            assert_eq!(body_json(&resp)["requestId"], request_id, "events/{name}");
        }
        if situation.ends_with("-running") || situation.ends_with("-terminal") {
            assert_eq!(content_type, Some("application/json"), "events/{name}");
            let body = body_json(&resp);
            assert_eq!(
                body["terminal"],
                situation.ends_with("-terminal"),
                "events/{name}"
            );
            assert_eq!(body["datastoreId"], demo::DATASTORE);
        }
        if situation.ends_with("-head") {
            assert!(matches!(resp.body(), Body::Empty), "events/{name}");
            assert!(header(&resp, "etag").is_some(), "events/{name}");
        }
        if situation.ends_with("-preflight") {
            let origin = event["headers"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("origin"))
                .and_then(|(_, v)| v.as_str());
            assert!(origin.is_some(), "events/{name} has no Origin");
            assert_eq!(
                header(&resp, "access-control-allow-origin"),
                origin,
                "events/{name}"
            );
        }
        if situation.ends_with("-wrong-method") {
            assert_eq!(
                header(&resp, "allow"),
                Some("GET, HEAD, OPTIONS"),
                "events/{name}"
            );
        }
    }

    for form in ["rest", "http"] {
        for situation in SITUATIONS {
            assert!(
                covered.contains(&format!("{form}-{situation}")),
                "no events/{form}-{situation}-NNN.json"
            );
        }
    }
    assert!(covered.iter().any(|s| s.starts_with("function-url-")));
}

#[test]
fn names_without_a_status_are_refused() {
    assert_eq!(documented("rest-running-200.json"), Some(("rest-running", 200)));
    assert_eq!(documented("rest-running.json"), None);
    assert_eq!(documented("rest-running-2000.json"), None);
    assert_eq!(documented("rest-running-200.yaml"), None);
}
