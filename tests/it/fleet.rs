//! The shared tier against a real DynamoDB-compatible server (moto, started here on loopback):
//! in-process through the handler for what one answer must look like, and through processes of
//! the compiled binary for what must hold across a fleet (one refresh per job, a dead lease
//! holder replaced, one budget for all) and for a table that fails.

use crate::binary::{posted, rest_event, rest_header, Function, DEADLINE};
use crate::common::*;
use aws_credential_types::Credentials;
use aws_sdk_healthlake::config::Region;
use export_job_status::aws;
use export_job_status::config::{Config, FleetConfig};
use export_job_status::handler::{handle, App};
use lambda_http::http::Method;
use lambda_http::{Body, Response};
use loopback::healthlake::{job, Reply, StandIn};
use loopback::moto::Moto;
use loopback::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const TABLE: &str = "export-job-status";

fn fleet_config(f: impl FnOnce(&mut FleetConfig)) -> Config {
    let mut config = Config {
        status_table: Some(TABLE.into()),
        ..Config::default()
    };
    // moto under a loaded test machine is far slower than DynamoDB: these tests are about
    // behaviour, not the table's time budget (a_failing_table_never_fails_a_request is).
    config.fleet.table_timeout = Duration::from_secs(3);
    f(&mut config.fleet);
    config
}

/// One execution environment in-process: HealthLake at the stand-in, the table at `dynamodb`.
async fn environment(standin: &StandIn, dynamodb: &str, config: Config) -> App {
    let sdk = aws::sdk_config_loader(&config)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret-key", None, None, "tests"))
        .load()
        .await;
    let healthlake = aws_sdk_healthlake::Client::from_conf(
        aws_sdk_healthlake::config::Builder::from(&sdk)
            .endpoint_url(standin.url())
            .build(),
    );
    let with_table = sdk.to_builder().endpoint_url(dynamodb).build();
    App::new(healthlake, config).with_fleet(&with_table)
}

async fn poll(app: &App, job: &str) -> Response<Body> {
    handle(app, get(&job_path(DS, job))).await
}

async fn poll_if_none_match(app: &App, job: &str, etag: &str) -> Response<Body> {
    let mut req = request(Method::GET, &job_path(DS, job));
    req.headers_mut().insert("if-none-match", etag.parse().unwrap());
    handle(app, req).await
}

fn moto_with_table() -> Moto {
    let moto = Moto::start();
    moto.create_table(TABLE);
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_environment_is_answered_from_the_table() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    standin.put_job(DS, "running", "IN_PROGRESS");
    standin.put_job(DS, "done", "COMPLETED");
    let config = fleet_config(|f| f.refresh_interval = Duration::from_secs(30));
    let a = environment(&standin, &moto.url(), config.clone()).await;
    let b = environment(&standin, &moto.url(), config).await;

    let first = poll(&a, "running").await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "age"), Some("0"));
    let second = poll(&b, "running").await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        standin.calls_for("running"),
        1,
        "B must be answered from the table"
    );
    assert!(header(&second, "age").is_some());
    let (one, two) = (body_json(&first), body_json(&second));
    assert_eq!(one["checkedAt"], two["checkedAt"], "both tell the one read");
    assert!(one["checkedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(one["status"], "IN_PROGRESS");
    assert_eq!(header(&first, "etag"), header(&second, "etag"));
    assert_no_leak(&second);

    // The ETag follows the job's state: a poller that has it gets 304 from either environment.
    let etag = header(&first, "etag").unwrap().to_owned();
    assert_eq!(poll_if_none_match(&b, "running", &etag).await.status(), 304);

    // A finished job: kept in both tiers, never asked again, and never marked with an age.
    let done = poll(&a, "done").await;
    assert_eq!(done.status(), 200);
    assert_eq!(header(&done, "age"), None);
    assert!(body_json(&done).get("checkedAt").is_none());
    let from_table = poll(&b, "done").await;
    assert_eq!(body_json(&from_table), body_json(&done));
    assert_eq!(standin.calls_for("done"), 1);
    let item = moto.get_item(TABLE, &format!("job#{DS}#done")).expect("the item");
    let expires: i64 = item["expiresAt"]["N"].as_str().unwrap().parse().unwrap();
    let now = export_job_status::now_ms() / 1000;
    assert!(expires > now + 6 * 86_400, "terminal items are kept for days");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_serves_the_last_answer_with_its_age_and_backs_the_fleet_off() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    standin.script(
        DS,
        "busy",
        vec![
            Reply::Job(job(DS, "busy", "IN_PROGRESS")),
            Reply::error(400, "ThrottlingException"),
            Reply::Job(job(DS, "busy", "COMPLETED")),
        ],
    );
    let config = fleet_config(|f| f.refresh_interval = Duration::from_millis(200));
    let a = environment(&standin, &moto.url(), config.clone()).await;
    let b = environment(&standin, &moto.url(), config).await;

    let fresh = poll(&a, "busy").await;
    let etag = header(&fresh, "etag").unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let stale = poll(&a, "busy").await;
    assert_eq!(stale.status(), 200, "{:?}", stale.body());
    assert_eq!(standin.calls_for("busy"), 2, "one attempt, not the SDK's three");
    assert_eq!(body_json(&stale)["checkedAt"], body_json(&fresh)["checkedAt"]);
    assert!(header(&stale, "age").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(header(&stale, "etag"), Some(etag.as_str()));
    assert_eq!(poll_if_none_match(&a, "busy", &etag).await.status(), 304);

    // The throttle backed the whole fleet off: B, stale too, does not call for a second.
    let during = poll(&b, "busy").await;
    assert_eq!(during.status(), 200);
    assert_eq!(
        standin.calls_for("busy"),
        2,
        "the back-off holds for every environment"
    );

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let after = poll(&b, "busy").await;
    assert_eq!(body_json(&after)["status"], "COMPLETED");
    assert_eq!(standin.calls_for("busy"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_maximum_age_it_answers_as_without_the_tier() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    standin.script(
        DS,
        "old",
        vec![
            Reply::Job(job(DS, "old", "IN_PROGRESS")),
            Reply::error(503, "ServiceUnavailableException"),
        ],
    );
    let config = fleet_config(|f| {
        f.refresh_interval = Duration::from_millis(100);
        f.max_stale = Duration::from_secs(1);
    });
    let a = environment(&standin, &moto.url(), config).await;
    assert_eq!(poll(&a, "old").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let young = poll(&a, "old").await;
    assert_eq!(young.status(), 200, "within MAX_STALE_SECS: the last answer");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let too_old = poll(&a, "old").await;
    assert_eq!(too_old.status(), 503);
    assert_eq!(header(&too_old, "retry-after"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_of_another_shape_or_job_is_never_served_and_is_replaced() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    standin.put_job(DS, "victim", "IN_PROGRESS");
    let other = r#"{"datastoreId":"a1b2c3d4e5f60718293a4b5c6d7e8f90","jobId":"other","status":"COMPLETED","terminal":true,"submittedAt":"2023-11-14T22:13:20.123Z"}"#;
    let now = export_job_status::now_ms();
    for (n, item) in [
        json!({"body": {"S": other}, "submitted": {"N": "1700000000"}, "checkedAt": {"N": now.to_string()}, "v": {"N": "1"}}),
        json!({"body": {"S": "not json"}, "submitted": {"N": "1"}, "checkedAt": {"N": now.to_string()}, "v": {"N": "1"}}),
        json!({"body": {"N": "1"}, "checkedAt": {"S": "now"}}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut item = item;
        item["pk"] = json!({"S": format!("job#{DS}#victim")});
        moto.put_item(TABLE, item);
        let app = environment(&standin, &moto.url(), fleet_config(|_| {})).await;
        let resp = poll(&app, "victim").await;
        assert_eq!(resp.status(), 200, "item {n}");
        let body = body_json(&resp);
        assert_eq!(body["jobId"], "victim", "item {n}");
        assert_eq!(body["status"], "IN_PROGRESS", "item {n}");
        assert_eq!(standin.calls_for("victim"), n + 1, "item {n}: asked HealthLake");
        let repaired = moto.get_item(TABLE, &format!("job#{DS}#victim")).unwrap();
        assert!(
            repaired["body"]["S"].as_str().unwrap().contains(r#""jobId":"victim""#),
            "item {n} replaced: {repaired}"
        );
    }
}

/// A TCP server that takes connections and never answers: a table slower than any budget.
fn silent_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// A server that answers every request with DynamoDB's throttling error.
fn throttling_table() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                use std::io::Write;
                let mut buf = [0u8; 8192];
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {
                    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"throughput exceeded for arn:aws:dynamodb:us-east-1:123456789012:table/x"}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_table_costs_healthlake_nothing_and_every_poll_is_answered_at_once() {
    let standin = StandIn::start();
    standin.put_job(DS, "job1", "IN_PROGRESS");
    let (_silent, slow_url) = silent_server();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let config = fleet_config(|f| {
        f.table_timeout = Duration::from_millis(100);
        f.refresh_interval = Duration::from_millis(100);
    });
    // An environment that knows nothing: no answer to serve, and no HealthLake call, since an
    // environment alone cannot know what the fleet spends. A 429 that says when to come back.
    for (what, url) in [
        ("unreachable", closed),
        ("slow", slow_url),
        ("throttling", throttling_table()),
    ] {
        let app = environment(&standin, &url, config.clone()).await;
        for n in 0..3 {
            let started = Instant::now();
            let resp = poll(&app, "job1").await;
            assert_eq!(resp.status(), 429, "{what} #{n}");
            assert_eq!(header(&resp, "retry-after"), Some("1"), "{what} #{n}");
            assert_no_leak(&resp);
            // One table call's budget at most.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what}: {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    assert_eq!(
        standin.calls_for("job1"),
        0,
        "HealthLake asked without the fleet's budget"
    );

    // An environment that knew the job: its last answer, with its age, while the table is gone.
    let moto = moto_with_table();
    let app = environment(
        &standin,
        &moto.url(),
        fleet_config(|f| {
            f.table_timeout = Duration::from_millis(500);
            f.refresh_interval = Duration::from_millis(100);
        }),
    )
    .await;
    assert_eq!(poll(&app, "job1").await.status(), 200);
    assert_eq!(standin.calls_for("job1"), 1);
    drop(moto);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = poll(&app, "job1").await;
    assert_eq!(resp.status(), 200, "the last answer");
    assert_eq!(header(&resp, "age"), Some("1"));
    assert_eq!(body_json(&resp)["status"], "IN_PROGRESS");
    assert_eq!(standin.calls_for("job1"), 1, "no call without the table");
}

// --- Across processes of the compiled binary ---

fn fleet_env<'a>(moto: &'a Moto, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    let mut env = vec![
        ("STATUS_TABLE", TABLE.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url()),
        // As in fleet_config: room for a slow moto.
        ("TABLE_TIMEOUT_MS", "3000".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

fn start(api: &RuntimeApi, standin: &StandIn, env: &[(&str, String)]) -> Function {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Function::start(api, standin, &env, &[])
}

fn status(resp: &Value) -> u64 {
    resp["statusCode"].as_u64().unwrap()
}

#[test]
fn two_environments_refreshing_one_job_make_one_call() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    // Slow enough that both environments ask while the first call is under way.
    standin.script(
        DS,
        "shared",
        vec![Reply::delayed(
            Duration::from_millis(700),
            Reply::Job(job(DS, "shared", "IN_PROGRESS")),
        )],
    );
    let env = fleet_env(&moto, &[]);
    let (api_a, api_b) = (RuntimeApi::start(), RuntimeApi::start());
    let (_a, _b) = (start(&api_a, &standin, &env), start(&api_b, &standin, &env));
    let (ra, rb) = std::thread::scope(|s| {
        let a = s.spawn(|| api_a.invoke(rest_event("a", "GET", DS, "shared"), DEADLINE));
        let b = s.spawn(|| api_b.invoke(rest_event("b", "GET", DS, "shared"), DEADLINE));
        (posted(a.join().unwrap(), "a"), posted(b.join().unwrap(), "b"))
    });
    assert_eq!((status(&ra), status(&rb)), (200, 200), "{ra} {rb}");
    assert_eq!(
        standin.calls_for("shared"),
        1,
        "one HealthLake call for the fleet: {:?} {:?}",
        _a.stdout(),
        _b.stdout()
    );
    let etag = rest_header(&ra, "etag");
    assert!(etag.is_some(), "{ra}");
    assert_eq!(etag, rest_header(&rb, "etag"), "one answer for both");
}

#[test]
fn a_dead_lease_holder_is_replaced_after_its_lease() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    standin.script(
        DS,
        "orphan",
        vec![
            Reply::delayed(
                Duration::from_secs(60),
                Reply::Job(job(DS, "orphan", "IN_PROGRESS")),
            ),
            Reply::Job(job(DS, "orphan", "IN_PROGRESS")),
        ],
    );
    // Lease: this budget plus two table budgets plus 250 ms, 3.25 s.
    let env = fleet_env(
        &moto,
        &[("UPSTREAM_TIMEOUT_MS", "1000"), ("TABLE_TIMEOUT_MS", "1000")],
    );
    let (api_a, api_b) = (RuntimeApi::start(), RuntimeApi::start());
    let a = start(&api_a, &standin, &env);
    let _b = start(&api_b, &standin, &env);
    std::thread::scope(|s| {
        s.spawn(|| api_a.invoke(rest_event("a", "GET", DS, "orphan"), DEADLINE));
        let until = Instant::now() + Duration::from_secs(10);
        while standin.calls_for("orphan") == 0 {
            assert!(Instant::now() < until, "A never called");
            std::thread::sleep(Duration::from_millis(10));
        }
        let lease_taken = Instant::now();
        a.signal("-KILL"); // dies holding the lease
        let mut answered = None;
        while answered.is_none() && lease_taken.elapsed() < Duration::from_secs(12) {
            let resp = posted(api_b.invoke(rest_event("b", "GET", DS, "orphan"), DEADLINE), "b");
            if status(&resp) == 200 {
                answered = Some(lease_taken.elapsed());
            } else {
                // Waiting for the holder until its own budget is spent: 429; or it took the
                // lease late in that budget and HealthLake could not answer in what was left: 504.
                assert!(
                    [429, 504].contains(&status(&resp)),
                    "while the lease holds: {resp}"
                );
            }
        }
        let after = answered.expect("B took over the lease");
        assert!(
            after >= Duration::from_millis(2_500),
            "not before the lease ends: {after:?}"
        );
        assert!(standin.calls_for("orphan") >= 2, "B asked HealthLake itself");
    });
}

#[test]
fn one_budget_holds_across_processes() {
    let moto = moto_with_table();
    let standin = StandIn::start();
    let jobs: Vec<String> = (0..4).map(|n| format!("job{n}")).collect();
    for j in &jobs {
        standin.put_job(DS, j, "IN_PROGRESS");
    }
    // 2 calls a second for the fleet, each job stale after 100 ms: the budget is what binds.
    let env = fleet_env(
        &moto,
        &[("UPSTREAM_RATE_PER_SEC", "2"), ("REFRESH_INTERVAL_MS", "100")],
    );
    let apis: Vec<RuntimeApi> = (0..3).map(|_| RuntimeApi::start()).collect();
    let _functions: Vec<Function> = apis.iter().map(|api| start(api, &standin, &env)).collect();
    for api in &apis {
        api.wait_for_first_poll(Duration::from_secs(10)).expect("started");
    }
    let started = Instant::now();
    let run = Duration::from_secs(4);
    let statuses: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = apis
            .iter()
            .enumerate()
            .map(|(w, api)| {
                let jobs = &jobs;
                s.spawn(move || {
                    let mut seen = Vec::new();
                    let mut n = w;
                    while started.elapsed() < run {
                        let job = &jobs[n % jobs.len()];
                        n += 1;
                        let resp = posted(api.invoke(rest_event("p", "GET", DS, job), DEADLINE), "poll");
                        seen.push(status(&resp));
                    }
                    seen
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let calls = standin.call_count() as f64;
    // The rate over the run plus the burst tolerance (half a second's worth, at least one call).
    let allowed = 2.0 * elapsed + 1.0;
    assert!(
        calls <= allowed,
        "{calls} calls in {elapsed:.1} s, at most {allowed:.1}"
    );
    // How many more it uses depends on how fast this machine drives the polls.
    assert!(calls >= jobs.len() as f64, "every job was read: {calls} calls");
    // Before a job's first answer, a poll may wait for the budget and get 429; once every job
    // has one, the budget being spent means the last answer, 200.
    let all: Vec<u64> = statuses.iter().flatten().copied().collect();
    assert!(all.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert!(statuses.iter().all(|w| w.last() == Some(&200)), "{statuses:?}");
}

#[test]
fn an_unreachable_table_is_logged_once_and_every_poll_answered() {
    let standin = StandIn::start();
    standin.put_job(DS, "job1", "IN_PROGRESS");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let env = vec![
        ("STATUS_TABLE", TABLE.to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", closed),
        ("REFRESH_INTERVAL_MS", "100".to_owned()),
    ];
    let api = RuntimeApi::start();
    let f = start(&api, &standin, &env);
    for n in 0..6 {
        let resp = posted(api.invoke(rest_event("u", "GET", DS, "job1"), DEADLINE), "poll");
        assert_eq!(status(&resp), 429, "poll {n}: {resp}");
        assert_eq!(rest_header(&resp, "retry-after"), Some("1".into()));
        std::thread::sleep(Duration::from_millis(400));
    }
    let lines = f.request_lines(6);
    assert_eq!(lines.len(), 6);
    assert_eq!(
        standin.calls_for("job1"),
        0,
        "a process without the table never calls HealthLake"
    );
    let failing = f
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shared table failing"))
        })
        .count();
    assert_eq!(failing, 1, "one line for the outage: {:?}", f.stdout());
}

#[test]
fn a_bad_status_table_stops_start_up_naming_it() {
    let standin = StandIn::start();
    let api = RuntimeApi::start();
    let mut f = Function::start(&api, &standin, &[("STATUS_TABLE", "x")], &[]);
    assert!(f.wait_exit(Duration::from_secs(10)).is_some_and(|s| !s.success()));
    assert!(
        f.output().iter().any(|l| l.contains("STATUS_TABLE")),
        "{:?}",
        f.output()
    );
}
