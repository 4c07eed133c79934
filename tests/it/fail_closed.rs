//! Where the function used to fail open (issue 20's security read), each through the compiled
//! binary on moto's DynamoDB, as the finding was reproduced: table items that lied, a caller that
//! could spend the account's HealthLake quota, a path walked around a prefix rule, a percent-encoded
//! datastore id, and S3 names in a partner's `message`. The revocation finding is in `scoping`.

use crate::binary::{alb_event, body_of, posted, rest_event, rest_header, slug, Function, DEADLINE};
use crate::common::{job_path, DS};
use loopback::healthlake::{job, Reply, StandIn};
use loopback::moto::Moto;
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TABLE: &str = "export-job-status";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn start(api: &RuntimeApi, hl: &StandIn, moto: &Moto, extra: &[(&str, &str)]) -> Function {
    let url = moto.url();
    let mut env = vec![
        ("STATUS_TABLE", TABLE),
        ("AWS_ENDPOINT_URL_DYNAMODB", url.as_str()),
        // Room for a slow moto on a loaded machine: these tests are about what is served.
        ("TABLE_TIMEOUT_MS", "3000"),
    ];
    env.extend_from_slice(extra);
    Function::start(api, hl, &env, &[])
}

/// A job item as another writer could leave it: `body` verbatim, `checkedAt` as given.
fn job_item(job: &str, body: &str, checked_at: i64) -> Value {
    json!({
        "pk": {"S": format!("job#{DS}#{job}")},
        "body": {"S": body},
        "submitted": {"N": "1700000000"},
        "checkedAt": {"N": checked_at.to_string()},
        "expiresAt": {"N": (now_ms() / 1000 + 86_400).to_string()},
        "v": {"N": "1"},
    })
}

fn running_body(job: &str) -> String {
    format!(
        r#"{{"datastoreId":"{DS}","jobId":"{job}","jobName":"export-{job}","status":"IN_PROGRESS","terminal":false,"submittedAt":"2023-11-14T22:13:20.123Z"}}"#
    )
}

#[test]
fn a_table_item_that_lies_is_never_served_and_is_replaced_from_healthlake() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    let hl = StandIn::start();
    // Stamped a year ahead: it would be fresh for ever. i64::MIN: the age must not wrap.
    let cases = [
        (
            "job-future",
            running_body("job-future"),
            now_ms() + 365 * 86_400_000,
        ),
        ("job-min", running_body("job-min"), i64::MIN),
        // A member of another name passed through to every caller.
        (
            "job-extra",
            running_body("job-extra").replace(r#""status""#, r#""note":"call 555-0100","status""#),
            now_ms(),
        ),
    ];
    for (job_id, body, checked) in &cases {
        hl.put_job(DS, job_id, "COMPLETED");
        moto.put_item(TABLE, job_item(job_id, body, *checked));
    }
    let api = RuntimeApi::start();
    let _f = start(&api, &hl, &moto, &[]);
    for (job_id, _, _) in &cases {
        let resp = posted(api.invoke(rest_event("r", "GET", DS, job_id), DEADLINE), job_id);
        assert_eq!(resp["statusCode"], 200, "{job_id}: {resp}");
        let body = body_of(&resp);
        assert_eq!(
            body["status"], "COMPLETED",
            "{job_id}: HealthLake's answer, not the item's"
        );
        assert!(body.get("note").is_none(), "{job_id}: {body}");
        assert_eq!(hl.calls_for(job_id), 1, "{job_id}");
        let item = moto
            .call(
                "GetItem",
                &json!({"TableName": TABLE, "Key": {"pk": {"S": format!("job#{DS}#{job_id}")}}}),
            )
            .expect("GetItem");
        let stored = item["Item"]["body"]["S"].as_str().unwrap_or_default().to_owned();
        assert!(
            stored.contains("COMPLETED"),
            "{job_id}: the item was overwritten: {item}"
        );
    }
}

#[test]
fn a_terminal_answer_from_the_table_is_not_sent_as_immutable_and_a_partner_never_sees_the_bucket() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    let hl = StandIn::start();
    // Written by another environment: terminal, with the location spelled with a JSON escape
    // and the bucket named in the message.
    let body = format!(
        r#"{{"datastoreId":"{DS}","jobId":"job-done","status":"FAILED","terminal":true,"submittedAt":"2023-11-14T22:13:20.123Z","endedAt":"2023-11-14T22:19:20.500Z","message":"could not write s3://acme-exports/run1/Patient-1.ndjson to bucket acme-exports","outputS3\u0055ri":"s3://acme-exports/run1/"}}"#
    );
    moto.put_item(TABLE, job_item("job-done", &body, now_ms()));
    moto.put_item(
        TABLE,
        json!({"pk": {"S": "apikey#pk4partnr1"}, "datastores": {"SS": [DS]}, "label": {"S": "Acme"}}),
    );
    let api = RuntimeApi::start();
    let _f = start(&api, &hl, &moto, &[]);

    let iam = posted(
        api.invoke(rest_event("i", "GET", DS, "job-done"), DEADLINE),
        "iam",
    );
    assert_eq!(iam["statusCode"], 200, "{iam}");
    assert_eq!(body_of(&iam)["outputS3Uri"], "s3://acme-exports/run1/");
    assert_eq!(
        rest_header(&iam, "cache-control").as_deref(),
        Some("private, max-age=60"),
        "a terminal answer only the table vouches for"
    );

    let mut partner = rest_event("k", "GET", DS, "job-done");
    partner["requestContext"]["identity"] = json!({"apiKeyId": "pk4partnr1", "sourceIp": "203.0.113.10"});
    let partner = posted(api.invoke(partner, DEADLINE), "partner");
    assert_eq!(partner["statusCode"], 200, "{partner}");
    let told = partner["body"].as_str().unwrap();
    assert!(
        !told.contains("acme-exports"),
        "the bucket reached a partner: {told}"
    );
    assert!(!told.contains("s3://"), "{told}");
    assert_eq!(
        body_of(&partner)["message"],
        "could not write [redacted] to bucket [redacted]"
    );
    assert_eq!(hl.calls_for("job-done"), 0, "served from the table");

    // The same from HealthLake itself: the message's S3 names are scrubbed for a partner too.
    let mut failed = job(DS, "job-hl", "FAILED");
    failed["Message"] = json!("Access denied on s3://exports/healthlake/ (bucket exports)");
    hl.script(DS, "job-hl", vec![Reply::Job(failed)]);
    let mut partner = rest_event("k2", "GET", DS, "job-hl");
    partner["requestContext"]["identity"] = json!({"apiKeyId": "pk4partnr1", "sourceIp": "203.0.113.10"});
    let partner = posted(api.invoke(partner, DEADLINE), "partner from HealthLake");
    assert_eq!(
        body_of(&partner)["message"],
        "Access denied on [redacted] (bucket [redacted])",
        "{partner}"
    );
    let iam = posted(
        api.invoke(rest_event("i2", "GET", DS, "job-hl"), DEADLINE),
        "iam again",
    );
    assert_eq!(
        rest_header(&iam, "cache-control").as_deref(),
        Some("private, max-age=86400, immutable"),
        "read from HealthLake by this environment"
    );
}

#[test]
fn the_path_must_be_the_route_and_a_datastore_id_is_never_percent_encoded() {
    let hl = StandIn::start();
    hl.put_job(DS, "job1", "COMPLETED");
    hl.put_job("ds2", "job1", "COMPLETED");
    let api = RuntimeApi::start();
    let _f = Function::start(&api, &hl, &[("AUTH_MODE", "NONE")], &[]);
    // An ALB rule that forwards /datastores/<DS>/* must not serve ds2.
    let walked = format!("/datastores/{DS}/x/datastores/ds2/export-jobs/job1");
    let resp = posted(
        api.invoke(alb_event(&walked, "status.example.com"), DEADLINE),
        "walked",
    );
    assert_eq!(
        (resp["statusCode"].as_u64(), slug(&resp).as_str()),
        (Some(404), "no-route"),
        "{resp}"
    );
    let prefixed = format!("/anything{}", job_path(DS, "job1"));
    let resp = posted(
        api.invoke(alb_event(&prefixed, "status.example.com"), DEADLINE),
        "prefixed",
    );
    assert_eq!(resp["statusCode"], 404, "{resp}");
    // IAM matched the encoded path: the decoded id must not reach HealthLake.
    let encoded_ds = format!("%{:02X}{}", DS.as_bytes()[0], &DS[1..]);
    let mut rest = rest_event("enc", "GET", &encoded_ds, "job1");
    rest["path"] = json!(job_path(&encoded_ds, "job1"));
    let resp = posted(api.invoke(rest, DEADLINE), "encoded");
    assert_eq!(
        (resp["statusCode"].as_u64(), slug(&resp).as_str()),
        (Some(400), "invalid-parameter"),
        "{resp}"
    );
    assert!(
        body_of(&resp)["detail"]
            .as_str()
            .unwrap()
            .starts_with("datastoreId "),
        "{resp}"
    );
    assert_eq!(hl.calls_for("job1"), 0, "nothing reached HealthLake");
}

/// Drives `api` with `event(n)` until `until`, one invocation at a time as Lambda does.
fn drive(api: &RuntimeApi, until: Instant, event: impl Fn(usize) -> Value) -> Vec<u64> {
    let mut statuses = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let resp = posted(api.invoke(event(n), DEADLINE), "drive");
        statuses.push(resp["statusCode"].as_u64().unwrap_or(0));
        n += 1;
    }
    statuses
}

/// As [`drive`], with when each answer came.
fn drive_timed(api: &RuntimeApi, until: Instant, event: impl Fn(usize) -> Value) -> Vec<(Instant, u64)> {
    let mut answers = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let resp = posted(api.invoke(event(n), DEADLINE), "drive");
        answers.push((Instant::now(), resp["statusCode"].as_u64().unwrap_or(0)));
        n += 1;
    }
    answers
}

fn as_principal(mut event: Value, principal: &str) -> Value {
    let session = format!("{principal}:session");
    event["requestContext"]["identity"]["user"] = json!(session);
    event["requestContext"]["identity"]["caller"] = json!(session);
    event
}

#[test]
fn one_caller_flooding_made_up_job_ids_gets_its_share_and_the_others_stay_fresh() {
    let moto = Moto::start();
    moto.create_table(TABLE);
    let hl = StandIn::start();
    hl.put_job(DS, "job-run", "IN_PROGRESS");
    let api_flood: Vec<RuntimeApi> = (0..3).map(|_| RuntimeApi::start()).collect();
    let api_poll = RuntimeApi::start();
    let env = [("UPSTREAM_RATE_PER_SEC", "8"), ("REFRESH_INTERVAL_MS", "500")];
    let _functions: Vec<Function> = api_flood
        .iter()
        .chain([&api_poll])
        .map(|api| start(api, &hl, &moto, &env))
        .collect();
    for api in api_flood.iter().chain([&api_poll]) {
        api.wait_for_first_poll(Duration::from_secs(10)).expect("started");
    }
    let made_up = || {
        hl.calls()
            .iter()
            .filter(|c| c.job_id.as_deref().is_some_and(|j| j.starts_with("made-up")))
            .count()
    };
    let started = Instant::now();
    let until = started + Duration::from_secs(12);
    // Every 50 ms: how many made-up ids have reached HealthLake, and how often the running job
    // has been read.
    let (flood, polls, samples) = std::thread::scope(|s| {
        let flooders: Vec<_> = api_flood
            .iter()
            .enumerate()
            .map(|(w, api)| {
                s.spawn(move || {
                    drive_timed(api, until, |n| {
                        as_principal(
                            rest_event("f", "GET", DS, &format!("made-up-{w}-{n}")),
                            "AROAFLOODER000000001",
                        )
                    })
                })
            })
            .collect();
        let poller = s.spawn(|| {
            drive(&api_poll, until, |_| {
                std::thread::sleep(Duration::from_millis(100));
                rest_event("p", "GET", DS, "job-run")
            })
        });
        let mut samples = Vec::new();
        while Instant::now() < until {
            samples.push((Instant::now(), made_up(), hl.calls_for("job-run")));
            std::thread::sleep(Duration::from_millis(50));
        }
        let flood: Vec<(Instant, u64)> = flooders.into_iter().flat_map(|f| f.join().unwrap()).collect();
        (flood, poller.join().unwrap(), samples)
    });
    // Once the caller's burst is spent it is refused (429); from then on its rate binds.
    let refused_at = flood
        .iter()
        .filter(|(_, status)| *status == 429)
        .map(|(at, _)| *at)
        .min()
        .expect("the flooding caller was never refused: its made-up ids all reached HealthLake");
    let window_end = refused_at + Duration::from_secs(4);
    assert!(
        window_end <= until,
        "refused only after {:?}",
        refused_at - started
    );
    let at = |t: Instant| {
        *samples
            .iter()
            .rev()
            .find(|(when, _, _)| *when <= t)
            .unwrap_or(&samples[0])
    };
    let (_, made_up_from, refreshes_from) = at(refused_at);
    let (_, made_up_to, refreshes_to) = at(window_end);
    let (made_up_in_window, refreshes_in_window) = (made_up_to - made_up_from, refreshes_to - refreshes_from);
    // 4 a second (half of 8), plus what its three environments have in flight at either end of
    // the window, and a slot's slack.
    let allowed = 4.0 * 4.0 + 2.0 * 3.0 + 2.0;
    eprintln!(
        "flood: {} made-up ids sent, {} reached HealthLake; refused from {:.1} s on, then {made_up_in_window} \
         in 4 s (at most {allowed}); the other caller: {} polls, {refreshes_in_window} refreshes of its \
         running job in those 4 s",
        flood.len(),
        made_up(),
        (refused_at - started).as_secs_f64(),
        polls.len(),
    );
    assert!(
        (made_up_in_window as f64) <= allowed,
        "{made_up_in_window} made-up ids reached HealthLake in the 4 s after the caller was first refused, at most {allowed}"
    );
    assert!(flood.iter().all(|(_, s)| *s == 404 || *s == 429), "{flood:?}");
    // The other caller's running job: answered every time, and refreshed all along (every
    // 500 ms, less a slot's slack).
    assert!(polls.iter().all(|s| *s == 200), "{polls:?}");
    assert!(
        refreshes_in_window >= 6,
        "{refreshes_in_window} refreshes of the running job in 4 s"
    );

    // A job HealthLake does not know, asked again and again: one call a refresh interval.
    let before = hl.calls_for("job-gone");
    let statuses = drive(&api_poll, Instant::now() + Duration::from_millis(400), |_| {
        rest_event("g", "GET", DS, "job-gone")
    });
    assert!(
        statuses.len() >= 3 && statuses.iter().all(|s| *s == 404),
        "{statuses:?}"
    );
    assert_eq!(hl.calls_for("job-gone") - before, 1, "remembered as missing");
}
