//! Per-caller scoping, end to end: the compiled binary under the loopback Runtime API, the
//! partner mapping in a real DynamoDB-compatible server (moto, see tests/common/dynamodb.rs), the
//! loopback HealthLake counting calls. A partner key reads exactly its mapped datastores, through
//! any event shape; every refusal is the same 404 as an unserved datastore, with no HealthLake
//! call; the log line says who asked and never carries the key's value or an account id.

use crate::binary::{
    alb_event, assert_no_secrets, body_of, http_api_event, posted, rest_event, rest_header, slug, Function,
    DEADLINE,
};
use crate::common::job_path;
use loopback::healthlake::StandIn;
use loopback::moto::Moto;
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::time::Duration;

const TABLE: &str = "export-status";
/// Served by the deployment; partner A is mapped to it.
const DS_A: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// Served by the deployment; partner A is not mapped to it.
const DS_B: &str = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
/// Not served by the deployment at all.
const DS_C: &str = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const KEY_A: &str = "pk4partnr1";
/// What a partner sends in `x-api-key`: API Gateway passes it on in the header and in
/// `identity.apiKey`. It must never be logged or echoed.
const KEY_A_VALUE: &str = "KeyValueSecretPartnerA0123456789abcdefgh";
const KEY_UNMAPPED: &str = "pk4nomap99";
const IAM_PRINCIPAL: &str = "AROAEXAMPLEROLEID0001";
const CALLER_ACCOUNT: &str = "111122223333";
/// For the refresh tests: a mapping change shows within this.
const REFRESH_MS: u64 = 200;

/// A REST API event from a partner: its key's value in `x-api-key` and `identity.apiKey`, the
/// key's id in `identity.apiKeyId`, no SigV4 header.
fn key_event(request_id: &str, method: &str, key_id: &str, ds: &str, job: &str) -> Value {
    let mut event = rest_event(request_id, method, ds, job);
    for headers in ["headers", "multiValueHeaders"] {
        let headers = event[headers].as_object_mut().expect("headers");
        headers.remove("Authorization");
        headers.insert("x-api-key".into(), json!(KEY_A_VALUE));
    }
    event["multiValueHeaders"]["x-api-key"] = json!([KEY_A_VALUE]);
    event["requestContext"]["identity"] = json!({
        "apiKey": KEY_A_VALUE,
        "apiKeyId": key_id,
        "sourceIp": "203.0.113.10"
    });
    event
}

/// A REST API event signed by an IAM role's session, as API Gateway describes the caller.
fn iam_event(request_id: &str, ds: &str, job: &str) -> Value {
    let mut event = rest_event(request_id, "GET", ds, job);
    let session = format!("{IAM_PRINCIPAL}:app-session");
    event["requestContext"]["identity"] = json!({
        "accountId": CALLER_ACCOUNT,
        "caller": session,
        "user": session,
        "userArn": format!("arn:aws:sts::{CALLER_ACCOUNT}:assumed-role/StatusReader/app-session"),
        "accessKey": "ASIACALLEREXAMPLE000",
        "sourceIp": "203.0.113.10"
    });
    event
}

/// An HTTP API (payload 2.0) event, with a partner's key in a header and a forged
/// `identity.apiKeyId` in its context: neither makes it an API-key caller.
fn http_api_key_event(request_id: &str, ds: &str, job: &str) -> Value {
    let mut event = http_api_event(request_id, ds, job);
    event["headers"]["x-api-key"] = json!(KEY_A_VALUE);
    event["requestContext"]["identity"] = json!({"apiKeyId": KEY_A});
    event
}

/// A partner item as docs/partners.md tells operators to write it.
/// (DynamoDB's JSON wire format, as `aws dynamodb put-item --item` takes it.)
fn partner_item(key_id: &str, datastores: &[&str], label: &str) -> Value {
    json!({
        "pk": {"S": format!("apikey#{key_id}")},
        "datastores": {"SS": datastores},
        "label": {"S": label},
    })
}

fn healthlake() -> StandIn {
    let hl = StandIn::start();
    hl.put_job(DS_A, "job-a", "COMPLETED");
    hl.put_job(DS_B, "job-b", "COMPLETED");
    hl.put_job(DS_C, "job-c", "COMPLETED");
    hl
}

fn start(api: &RuntimeApi, hl: &StandIn, extra: &[(&str, &str)]) -> Function {
    let mut env = vec![("ALLOWED_DATASTORE_IDS", format!("{DS_A},{DS_B}"))];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Function::start(api, hl, &env, &[])
}

/// A refusal, and the same answer as a datastore that is not served (bar the request id).
fn assert_refused(resp: &Value, what: &str) {
    assert_eq!(resp["statusCode"], 404, "{what}: {resp}");
    assert_eq!(slug(resp), "job-not-found", "{what}");
    let mut b = body_of(resp);
    b["requestId"] = Value::Null;
    assert_eq!(
        b,
        json!({
            "type": "urn:problem-type:export-job-status:job-not-found",
            "title": "Export job not found",
            "status": 404,
            "detail": "No such export job in this datastore, or the datastore is not served here.",
            "requestId": null
        }),
        "{what}"
    );
}

/// The log lines that match, once there are `count` (the pipe reader may lag the answer), or
/// whatever there is after 5 s.
fn lines_where(function: &Function, count: usize, matches: impl Fn(&Value) -> bool) -> Vec<Value> {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<Value> = function.log_lines().into_iter().filter(|l| matches(l)).collect();
        if found.len() >= count || std::time::Instant::now() >= until {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every line the function wrote: none may carry the key's value or the caller's account, nor
/// anything of the shared secret list.
fn assert_no_secret_in(function: &Function) {
    assert_no_secrets(&function.output());
    for line in function.output() {
        for secret in [KEY_A_VALUE, CALLER_ACCOUNT, "arn:aws:sts", "x-api-key"] {
            assert!(!line.contains(secret), "a log line carries {secret:?}: {line}");
        }
    }
}

#[test]
fn a_partner_key_reads_its_mapped_datastores_and_nothing_else_through_any_event_shape() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    moto.put_item(TABLE, partner_item(KEY_A, &[DS_A], "Acme Health"));
    let hl = healthlake();
    let api = RuntimeApi::start();
    let url = moto.url();
    let function = start(
        &api,
        &hl,
        &[
            ("AUTH_MODE", "API_KEY"),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
        ],
    );

    // The mapped datastore: the job, without outputS3Uri (the default for API-key callers).
    let ok = posted(
        api.invoke(key_event("r-allowed", "GET", KEY_A, DS_A, "job-a"), DEADLINE),
        "allowed",
    );
    assert_eq!(ok["statusCode"], 200, "{ok}");
    let job = body_of(&ok);
    assert_eq!(job["status"], "COMPLETED");
    assert!(
        job.get("outputS3Uri").is_none(),
        "outputS3Uri reached a partner: {job}"
    );
    assert_eq!(hl.calls_for("job-a"), 1);
    assert!(!ok.to_string().contains(KEY_A_VALUE), "the answer echoes the key");

    // Another served datastore, an unserved one, HEAD, a key without a mapping: refused, and
    // HealthLake never asked.
    let refusals = [
        ("r-other", key_event("r-other", "GET", KEY_A, DS_B, "job-b")),
        (
            "r-other-head",
            key_event("r-other-head", "HEAD", KEY_A, DS_B, "job-b"),
        ),
        ("r-unserved", key_event("r-unserved", "GET", KEY_A, DS_C, "job-c")),
        (
            "r-unmapped",
            key_event("r-unmapped", "GET", KEY_UNMAPPED, DS_A, "job-a"),
        ),
        // An API-key deployment: events without a key id read nothing, whatever their shape.
        ("r-iam", iam_event("r-iam", DS_A, "job-a")),
        ("r-http-api", http_api_key_event("r-http-api", DS_A, "job-a")),
        ("r-alb", alb_event(&job_path(DS_A, "job-a"), "status.example.com")),
    ];
    for (what, event) in &refusals {
        let resp = posted(api.invoke(event.clone(), DEADLINE), what);
        if what.ends_with("head") {
            assert_eq!(resp["statusCode"], 404, "{what}: {resp}");
        } else {
            assert_refused(&resp, what);
        }
    }
    assert_eq!(
        hl.calls_for("job-b") + hl.calls_for("job-c"),
        0,
        "HealthLake asked for a refused datastore"
    );
    assert_eq!(hl.calls_for("job-a"), 1, "HealthLake asked for a refused caller");
    // The refusal of an unserved datastore is the refusal HealthLake's own not-found gets.
    hl.script(
        DS_A,
        "job-gone",
        vec![loopback::healthlake::Reply::error(
            400,
            "ResourceNotFoundException",
        )],
    );
    let gone = posted(
        api.invoke(key_event("r-gone", "GET", KEY_A, DS_A, "job-gone"), DEADLINE),
        "gone",
    );
    assert_refused(&gone, "a job HealthLake does not know");
    assert_eq!(rest_header(&gone, "cache-control"), Some("no-store".into()));

    // Who asked: the key's id (and the partner's label), never its value.
    let lines = function.request_lines(9);
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id}: {lines:#?}"))
            .clone()
    };
    let allowed = by_id("r-allowed");
    assert_eq!(allowed["caller_kind"], "api-key");
    assert_eq!(allowed["caller_id"], KEY_A);
    assert_eq!(allowed["partner"], "Acme Health");
    assert_eq!(allowed["access"], "granted");
    assert_eq!(by_id("r-other")["access"], "not-mapped");
    assert_eq!(by_id("r-other")["caller_id"], KEY_A);
    // An unserved datastore is refused before the mapping is consulted.
    assert_eq!(by_id("r-unserved")["caller_id"], KEY_A);
    assert!(by_id("r-unserved").get("access").is_none());
    assert_eq!(by_id("r-unmapped")["access"], "no-mapping");
    assert_eq!(by_id("r-unmapped")["caller_id"], KEY_UNMAPPED);
    assert_eq!(by_id("r-iam")["access"], "no-api-key");
    assert_eq!(by_id("r-iam")["caller_kind"], "iam");
    assert_eq!(by_id("r-http-api")["access"], "no-api-key");
    // The sample HTTP API event is signed by an IAM role (authorizer.iam): still not a key.
    assert_eq!(by_id("r-http-api")["caller_kind"], "iam");
    assert_no_secret_in(&function);
}

#[test]
fn the_mapping_is_read_again_while_the_function_runs_and_every_revocation_takes_effect() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    // Malformed from the first read: the key reads nothing, the process goes on.
    let mut bad = partner_item("pk4badfrst", &[DS_A], "Bad");
    bad["datastores"] = json!({"S": DS_A});
    moto.put_item(TABLE, bad);
    let hl = healthlake();
    let api = RuntimeApi::start();
    let url = moto.url();
    let refresh = REFRESH_MS.to_string();
    let function = start(
        &api,
        &hl,
        &[
            ("AUTH_MODE", "API_KEY"),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
            ("PARTNER_REFRESH_MS", &refresh),
        ],
    );
    let wait = || std::thread::sleep(Duration::from_millis(REFRESH_MS + 150));
    let mut n = 0;
    let mut ask = |key: &str, ds: &str, job: &str| {
        n += 1;
        posted(
            api.invoke(key_event(&format!("r{n}"), "GET", key, ds, job), DEADLINE),
            "ask",
        )
    };

    assert_refused(&ask("pk4badfrst", DS_A, "job-a"), "malformed at the first read");
    let malformed = |item: &str| {
        lines_where(&function, 1, |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("malformed partner mapping"))
                && l["item"] == item
        })
    };
    let first = malformed("apikey#pk4badfrst");
    assert_eq!(first.len(), 1, "{:#?}", function.output());
    assert!(
        first[0]["reason"].as_str().unwrap().contains("String Set"),
        "{}",
        first[0]
    );

    // A key with no mapping yet; then mapped to B; then moved to A and B.
    let key = "pk4refresh";
    let item_key = json!({"pk": {"S": format!("apikey#{key}")}});
    assert_refused(&ask(key, DS_B, "job-b"), "before the mapping exists");
    moto.put_item(TABLE, partner_item(key, &[DS_B], "Refreshed"));
    wait();
    assert_eq!(
        ask(key, DS_B, "job-b")["statusCode"],
        200,
        "the new mapping within the refresh"
    );
    moto.put_item(TABLE, partner_item(key, &[DS_A, DS_B], "Refreshed"));
    wait();
    assert_eq!(ask(key, DS_A, "job-a")["statusCode"], 200);
    // Revoked as docs/partners.md says, one datastore at a time: B, then A, the last one, which
    // leaves the item without a `datastores` attribute (DynamoDB has no empty sets).
    for (revoked, job, kept) in [(DS_B, "job-b", Some((DS_A, "job-a"))), (DS_A, "job-a", None)] {
        moto.call(
            "UpdateItem",
            &json!({
                "TableName": TABLE,
                "Key": item_key,
                "UpdateExpression": "DELETE datastores :d",
                "ExpressionAttributeValues": {":d": {"SS": [revoked]}}
            }),
        )
        .expect("UpdateItem");
        wait();
        assert_refused(&ask(key, revoked, job), "a revoked datastore");
        if let Some((ds, job)) = kept {
            assert_eq!(
                ask(key, ds, job)["statusCode"],
                200,
                "the datastore still granted"
            );
        }
    }
    let item = moto
        .call("GetItem", &json!({"TableName": TABLE, "Key": item_key}))
        .expect("GetItem");
    assert!(
        item["Item"].get("datastores").is_none(),
        "the set is gone: {item}"
    );

    // Granted again, then a revoking write with a typo: malformed refuses, never "the last
    // good one".
    moto.put_item(TABLE, partner_item(key, &[DS_A], "Refreshed"));
    wait();
    assert_eq!(ask(key, DS_A, "job-a")["statusCode"], 200);
    let mut broken = partner_item(key, &[DS_A], "Refreshed");
    broken["datastores"] = json!({"SS": [DS_A, "bad#id"]});
    moto.put_item(TABLE, broken);
    wait();
    assert_refused(&ask(key, DS_A, "job-a"), "a malformed mapping refuses");
    let refused = malformed(&format!("apikey#{key}"));
    assert!(!refused.is_empty(), "{:#?}", function.output());
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("bad#id"),
        "{}",
        refused[0]
    );
    moto.put_item(TABLE, partner_item(key, &[DS_A], "Refreshed"));
    wait();
    assert_eq!(ask(key, DS_A, "job-a")["statusCode"], 200, "fixed, granted again");
    moto.call("DeleteItem", &json!({"TableName": TABLE, "Key": item_key}))
        .expect("DeleteItem");
    wait();
    // job-a is in the terminal cache by now: the cache is consulted only after the mapping.
    assert_refused(&ask(key, DS_A, "job-a"), "after the mapping was deleted");
    assert_eq!(
        hl.calls_for("job-b"),
        1,
        "HealthLake asked for job-b only while it was mapped"
    );
    assert_no_secret_in(&function);
}

#[test]
fn an_unreachable_or_missing_table_refuses_api_key_callers_without_crashing() {
    let hl = healthlake();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}");
    let api = RuntimeApi::start();
    let mut function = start(
        &api,
        &hl,
        &[
            ("AUTH_MODE", "API_KEY"),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
        ],
    );
    for n in 0..2 {
        let resp = posted(
            api.invoke(key_event(&format!("u{n}"), "GET", KEY_A, DS_A, "job-a"), DEADLINE),
            "unreachable",
        );
        assert_refused(&resp, "table unreachable");
    }
    let unreadable = lines_where(&function, 2, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("partner mapping could not be read"))
    });
    assert_eq!(
        unreadable.len(),
        2,
        "one line per failed read: {:#?}",
        function.output()
    );
    assert_eq!(unreadable[0]["item"], format!("apikey#{KEY_A}"));
    assert_eq!(unreadable[0]["level"], "ERROR");
    assert_eq!(function.request_lines(2)[0]["access"], "mapping-unavailable");
    assert!(function.running());
    assert_eq!(hl.calls_for("job-a"), 0);
    drop(function);

    // API_KEY without a table: said at start-up, and every key reads nothing.
    let api = RuntimeApi::start();
    let mut function = start(&api, &hl, &[("AUTH_MODE", "API_KEY")]);
    let resp = posted(
        api.invoke(key_event("n0", "GET", KEY_A, DS_A, "job-a"), DEADLINE),
        "no table",
    );
    assert_refused(&resp, "no table");
    let warned = lines_where(&function, 1, |l| {
        l["level"] == "WARN" && l["message"].as_str().unwrap().contains("STATUS_TABLE is not set")
    });
    assert_eq!(warned.len(), 1, "{:#?}", function.output());
    assert!(function.running());
    assert_eq!(hl.calls_for("job-a"), 0);
    assert_no_secret_in(&function);
}

#[test]
fn iam_callers_are_logged_by_principal_id_and_answers_never_cross_caller_kinds() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    moto.put_item(TABLE, partner_item(KEY_A, &[DS_A], "Acme Health"));
    let hl = healthlake();
    let api = RuntimeApi::start();
    let url = moto.url();
    // An IAM deployment that also sees API-key events (both kinds through one process, one cache).
    let function = start(
        &api,
        &hl,
        &[
            ("AUTH_MODE", "AWS_IAM"),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
        ],
    );
    let iam = posted(api.invoke(iam_event("i1", DS_A, "job-a"), DEADLINE), "iam");
    assert_eq!(iam["statusCode"], 200, "{iam}");
    assert_eq!(body_of(&iam)["outputS3Uri"], "s3://exports/healthlake/");
    let iam_etag = rest_header(&iam, "etag").expect("an ETag");

    // The same terminal job for a partner: its own rendering, without outputS3Uri, its own tag;
    // the IAM caller's tag does not make it a 304.
    let mut partner = key_event("k1", "GET", KEY_A, DS_A, "job-a");
    partner["headers"]["If-None-Match"] = json!(iam_etag);
    partner["multiValueHeaders"]["If-None-Match"] = json!([iam_etag]);
    let partner = posted(api.invoke(partner, DEADLINE), "partner");
    assert_eq!(partner["statusCode"], 200, "{partner}");
    assert!(body_of(&partner).get("outputS3Uri").is_none());
    assert_ne!(rest_header(&partner, "etag"), Some(iam_etag.clone()));

    // The whole document is cached once; each kind of caller gets its own rendering of it.
    let iam_again = posted(api.invoke(iam_event("i2", DS_A, "job-a"), DEADLINE), "iam again");
    assert_eq!(iam_again["body"], iam["body"]);
    let partner_again = posted(
        api.invoke(key_event("k2", "GET", KEY_A, DS_A, "job-a"), DEADLINE),
        "again",
    );
    assert_eq!(partner_again["body"], partner["body"]);
    assert_eq!(
        hl.calls_for("job-a"),
        1,
        "one HealthLake call for both kinds of caller"
    );
    // In an IAM deployment an API-key event is still scoped by its mapping.
    assert_refused(
        &posted(
            api.invoke(key_event("k3", "GET", KEY_A, DS_B, "job-b"), DEADLINE),
            "k3",
        ),
        "unmapped datastore in an IAM deployment",
    );
    assert_eq!(hl.calls_for("job-b"), 0);

    let lines = function.request_lines(5);
    let i1 = lines.iter().find(|l| l["request_id"] == "i1").unwrap();
    assert_eq!(i1["caller_kind"], "iam");
    assert_eq!(
        i1["caller_id"], IAM_PRINCIPAL,
        "the principal's unique id, no session name"
    );
    assert_eq!(i1["access"], "granted");
    let i2 = lines.iter().find(|l| l["request_id"] == "i2").unwrap();
    assert_eq!(i2["MemoryCacheHits"], 1, "answered from the memory cache");
    assert_no_secret_in(&function);
    drop(function);

    // API_KEY_OUTPUT_S3_URI=include: partners are told the output location too.
    let api = RuntimeApi::start();
    let _function = start(
        &api,
        &hl,
        &[
            ("AUTH_MODE", "API_KEY"),
            ("STATUS_TABLE", TABLE),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
            ("API_KEY_OUTPUT_S3_URI", "include"),
        ],
    );
    let told = posted(
        api.invoke(key_event("k4", "GET", KEY_A, DS_A, "job-a"), DEADLINE),
        "include",
    );
    assert_eq!(body_of(&told)["outputS3Uri"], "s3://exports/healthlake/");
}
