//! The fleet load test (docs/fleet.md): N processes of the release binary, each under its own
//! loopback Lambda Runtime API, one HealthLake stand-in that enforces HealthLake's quota (a token
//! bucket of 10 calls a second) and whose running jobs change name every second, and, for the
//! shared tier, one moto server with the function's table. An async driver (one task per
//! execution environment, as Lambda gives an environment one event at a time) paces polls to
//! the target rate; pollers send back the ETag they last saw, as the API's clients do.
//!
//! It runs the memory tier alone (no `STATUS_TABLE`), then the shared tier, then the shared tier
//! again while one more caller floods made-up job ids from environments of its own (issue 20:
//! the other callers must stay fresh, and HealthLake within the budget), and prints for each:
//! polls/s, HealthLake calls/s, throttled calls, the share of polls answered 200 or 304, p50 and
//! p99 latency, and p99 staleness of running jobs (how long ago the answer's version of the job
//! was superseded at HealthLake), over the whole run and once warm; for the flood, its polls/s,
//! what they were answered, and how many of them reached HealthLake.
//!
//! `cargo build --release -p export-job-status && cargo run --release -p bench --bin fleet -- --help`

use loopback::healthlake::{job, Reply, StandIn};
use loopback::moto::Moto;
use loopback::runtime_api::{self, Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const TABLE: &str = "export-job-status-fleet";
/// A running job's name changes this often at HealthLake.
const VERSION_PERIOD: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(10);
/// The IAM principals that poll (the web apps) and that floods, as API Gateway names them.
const POLLER: &str = "AROAFLEETPOLLER00001";
const FLOODER: &str = "AROAFLEETFLOODER0001";

const USAGE: &str = "\
usage: fleet --function PATH [--envs N] [--running N] [--finished N] [--polls-per-sec N]
             [--secs N] [--warm-secs N] [--only memory|shared|flood]
             [--flood-per-sec N] [--flood-envs N] [-- VAR=VALUE...]

  --function PATH       the export-job-status release binary (target/release/export-job-status)
  --envs N              execution environments, one process each (8)
  --running N           running jobs, each renamed every second at HealthLake (20)
  --finished N          finished jobs (20)
  --polls-per-sec N     the target poll rate for the whole fleet (1000)
  --secs N              how long each tier is driven (30)
  --warm-secs N         the first seconds left out of the \"once warm\" figures (5)
  --only TIER           run one tier only
  --flood-per-sec N     the flooding caller's rate of made-up job ids, in the flood phase (50)
  --flood-envs N        execution environments serving the flood (2)
  VAR=VALUE             extra environment for the function (REFRESH_INTERVAL_MS=2000 ...)
";

struct Args {
    function: String,
    envs: usize,
    running: usize,
    finished: usize,
    rate: f64,
    secs: u64,
    warm_secs: u64,
    only: Option<String>,
    flood_rate: f64,
    flood_envs: usize,
    extra: Vec<(String, String)>,
}

fn args() -> Args {
    let mut a = Args {
        function: String::new(),
        envs: 8,
        running: 20,
        finished: 20,
        rate: 1000.0,
        secs: 30,
        warm_secs: 5,
        only: None,
        flood_rate: 50.0,
        flood_envs: 2,
        extra: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let mut extra = false;
    while let Some(arg) = it.next() {
        if extra {
            let (k, v) = arg.split_once('=').unwrap_or_else(|| panic!("{arg}: VAR=VALUE"));
            a.extra.push((k.into(), v.into()));
            continue;
        }
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--function" => a.function = value(),
            "--envs" => a.envs = value().parse().expect("--envs N"),
            "--running" => a.running = value().parse().expect("--running N"),
            "--finished" => a.finished = value().parse().expect("--finished N"),
            "--polls-per-sec" => a.rate = value().parse().expect("--polls-per-sec N"),
            "--secs" => a.secs = value().parse().expect("--secs N"),
            "--warm-secs" => a.warm_secs = value().parse().expect("--warm-secs N"),
            "--only" => a.only = Some(value()),
            "--flood-per-sec" => a.flood_rate = value().parse().expect("--flood-per-sec N"),
            "--flood-envs" => a.flood_envs = value().parse().expect("--flood-envs N"),
            "--" => extra = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}\n{USAGE}"),
        }
    }
    assert!(!a.function.is_empty(), "--function PATH is required\n{USAGE}");
    a
}

fn main() {
    let args = args();
    let standin = StandIn::start();
    standin.limit_rate(10.0, 10.0);
    let mut jobs = Vec::new();
    for n in 0..args.running {
        let id = format!("running{n:02}");
        standin.script(
            DS,
            &id,
            vec![Reply::Versioned(job(DS, &id, "IN_PROGRESS"), VERSION_PERIOD)],
        );
        jobs.push((id, true));
    }
    for n in 0..args.finished {
        let id = format!("finished{n:02}");
        standin.put_job(DS, &id, "COMPLETED");
        jobs.push((id, false));
    }
    println!(
        "fleet: {} environments, {} running + {} finished jobs, HealthLake quota 10 calls/s, target {} polls/s, {} s a tier ({} s warm-up left out of \"warm\")",
        args.envs, args.running, args.finished, args.rate, args.secs, args.warm_secs
    );
    let extra: Vec<(String, String)> = args.extra.clone();
    let only = |tier: &str| args.only.as_deref().is_none_or(|o| o == tier);
    if only("memory") {
        let r = run_tier(&args, &standin, &jobs, &extra, false);
        report("memory tier alone", &r);
    }
    for (tier, flood) in [("shared", false), ("flood", true)] {
        if !only(tier) {
            continue;
        }
        // A table of its own for each phase: each starts as cold as the first.
        let moto = Moto::start();
        moto.create_table(TABLE);
        let mut env = extra.clone();
        env.push(("STATUS_TABLE".into(), TABLE.into()));
        env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), moto.url()));
        let r = run_tier(&args, &standin, &jobs, &env, flood);
        report(
            if flood {
                "shared tier (moto), one more caller flooding made-up job ids"
            } else {
                "shared tier (moto)"
            },
            &r,
        );
    }
}

#[derive(Default)]
struct Sample {
    at: f64,
    latency_us: u64,
    status: u64,
    /// For a running job: how long ago the answer's version was superseded, ms (0: current).
    staleness_ms: Option<u64>,
}

/// By job: the ETag last seen and the version of the job it came with.
type Seen = HashMap<String, (String, Option<u128>)>;

struct Results {
    /// The flooding caller's answers, by status, and how many of its ids reached HealthLake.
    flood: Option<(HashMap<u64, usize>, usize)>,
    elapsed: f64,
    warm_elapsed: f64,
    samples: Vec<Sample>,
    calls: usize,
    throttled: usize,
    warm_calls: usize,
    warm_throttled: usize,
}

fn run_tier(
    args: &Args,
    standin: &StandIn,
    jobs: &[(String, bool)],
    env: &[(String, String)],
    flood: bool,
) -> Results {
    let apis: Vec<Rc<RuntimeApi>> = (0..args.envs).map(|_| Rc::new(RuntimeApi::start())).collect();
    let flood_apis: Vec<Rc<RuntimeApi>> = (0..if flood { args.flood_envs } else { 0 })
        .map(|_| Rc::new(RuntimeApi::start()))
        .collect();
    let mut children: Vec<Child> = apis
        .iter()
        .chain(&flood_apis)
        .map(|api| start(&args.function, api, standin, env))
        .collect();
    let made_up = |standin: &StandIn| {
        standin
            .calls()
            .iter()
            .filter(|c| c.job_id.as_deref().is_some_and(|j| j.starts_with("made-up")))
            .count()
    };
    let made_up0 = made_up(standin);
    let flood_statuses: Rc<RefCell<HashMap<u64, usize>>> = Rc::default();
    for api in apis.iter().chain(&flood_apis) {
        api.wait_for_first_poll(Duration::from_secs(20))
            .expect("the function started");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (calls0, throttled0) = (standin.call_count(), standin.throttled());
    let started = Instant::now();
    let warm_at = started + Duration::from_secs(args.warm_secs);
    let end = started + Duration::from_secs(args.secs);
    let samples: Rc<RefCell<Vec<Sample>>> = Rc::default();
    // By job: the ETag last seen and the version it came with (a 304 says it is still current).
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let interval = Duration::from_secs_f64(args.envs as f64 / args.rate);
    let mut at_warm = (calls0, throttled0);
    rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut tasks = Vec::new();
                for (e, api) in apis.iter().enumerate() {
                    let (samples, seen, api) = (samples.clone(), seen.clone(), api.clone());
                    let jobs: Vec<(String, bool)> = jobs.to_vec();
                    let first = interval.mul_f64(e as f64 / apis.len() as f64);
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut rng =
                            0x9e37_79b9_7f4a_7c15u64 ^ (e as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
                        // The environments' polls spread over one interval.
                        let mut next = Instant::now() + first;
                        while Instant::now() < end {
                            tokio::time::sleep_until(next.into()).await;
                            next += interval;
                            if next < Instant::now() {
                                next = Instant::now(); // behind: as fast as this environment goes
                            }
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            let (id, running) = &jobs[(rng % jobs.len() as u64) as usize];
                            let etag = seen.borrow().get(id).cloned();
                            let event = event(id, etag.as_ref().map(|(t, _)| t.as_str()));
                            let sent = Instant::now();
                            let outcome = api.invoke_async(event, DEADLINE).await;
                            let mut s = Sample {
                                at: sent.duration_since(started).as_secs_f64(),
                                latency_us: sent.elapsed().as_micros() as u64,
                                ..Sample::default()
                            };
                            let now_ms = epoch_ms();
                            if let Outcome::Response(resp) = outcome {
                                s.status = resp["statusCode"].as_u64().unwrap_or(0);
                                let version = match s.status {
                                    200 => {
                                        let v = version_of(&resp);
                                        if let Some(tag) = header(&resp, "etag") {
                                            seen.borrow_mut().insert(id.clone(), (tag, v));
                                        }
                                        v
                                    }
                                    304 => etag.and_then(|(_, v)| v),
                                    _ => None,
                                };
                                if *running {
                                    s.staleness_ms = version.map(|v| {
                                        let superseded = (v + 1) * VERSION_PERIOD.as_millis();
                                        now_ms.saturating_sub(superseded) as u64
                                    });
                                }
                            }
                            samples.borrow_mut().push(s);
                        }
                    }));
                }
                // The flood: made-up job ids from one more caller, paced over its environments.
                let flood_interval =
                    Duration::from_secs_f64(flood_apis.len().max(1) as f64 / args.flood_rate);
                for (e, api) in flood_apis.iter().enumerate() {
                    let (statuses, api) = (flood_statuses.clone(), api.clone());
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut next = Instant::now();
                        let mut n = 0u64;
                        while Instant::now() < end {
                            tokio::time::sleep_until(next.into()).await;
                            next = (next + flood_interval).max(Instant::now());
                            n += 1;
                            let event = as_caller(event(&format!("made-up-{e}-{n}"), None), FLOODER);
                            if let Outcome::Response(resp) = api.invoke_async(event, DEADLINE).await {
                                let status = resp["statusCode"].as_u64().unwrap_or(0);
                                *statuses.borrow_mut().entry(status).or_default() += 1;
                            }
                        }
                    }));
                }
                tokio::time::sleep_until(warm_at.into()).await;
                at_warm = (standin.call_count(), standin.throttled());
                for t in tasks {
                    let _ = t.await;
                }
            })
            .await;
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (calls, throttled) = (standin.call_count(), standin.throttled());
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let samples = samples.take();
    Results {
        flood: flood.then(|| (flood_statuses.take(), made_up(standin) - made_up0)),
        elapsed,
        warm_elapsed: (elapsed - args.warm_secs as f64).max(0.001),
        samples,
        calls: calls - calls0,
        throttled: throttled - throttled0,
        warm_calls: calls - at_warm.0,
        warm_throttled: throttled - at_warm.1,
    }
}

fn start(function: &str, api: &RuntimeApi, standin: &StandIn, extra: &[(String, String)]) -> Child {
    Command::new(function)
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", api.host_port()),
            ("AWS_LAMBDA_FUNCTION_NAME", runtime_api::FUNCTION_NAME.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "AKIAFLEETBENCHEXAMPLE".into()),
            ("AWS_SECRET_ACCESS_KEY", "fleetBenchSecretKeyEXAMPLEKEY".into()),
            ("AWS_ENDPOINT_URL_HEALTHLAKE", standin.url()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ])
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the function")
}

fn event(job: &str, if_none_match: Option<&str>) -> Value {
    let mut headers = json!({"Host": "abc123defg.execute-api.us-east-1.amazonaws.com"});
    if let Some(tag) = if_none_match {
        headers["If-None-Match"] = json!(tag);
    }
    let multi: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
        "path": format!("/datastores/{DS}/export-jobs/{job}"),
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"datastoreId": DS, "jobId": job},
        "stageVariables": null,
        "requestContext": {
            "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "httpMethod": "GET",
            "stage": "v1",
            "requestId": "fleet-bench",
            "accountId": "000000000000",
            "identity": {
                "sourceIp": "203.0.113.10",
                "user": format!("{POLLER}:web-app"),
                "caller": format!("{POLLER}:web-app")
            },
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123defg"
        },
        "body": null,
        "isBase64Encoded": false
    })
}

/// `event` as signed by another IAM principal.
fn as_caller(mut event: Value, principal: &str) -> Value {
    let session = json!(format!("{principal}:session"));
    event["requestContext"]["identity"]["user"] = session.clone();
    event["requestContext"]["identity"]["caller"] = session;
    event
}

fn header(resp: &Value, name: &str) -> Option<String> {
    resp["multiValueHeaders"][name][0].as_str().map(str::to_owned)
}

/// The `-v<n>` the stand-in put at the end of a running job's name.
fn version_of(resp: &Value) -> Option<u128> {
    let body: Value = serde_json::from_str(resp["body"].as_str()?).ok()?;
    body["jobName"].as_str()?.rsplit_once("-v")?.1.parse().ok()
}

fn epoch_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, r: &Results) {
    println!("\n== {name}");
    for (label, from, secs) in [
        ("whole run", 0.0, r.elapsed),
        ("once warm", r.elapsed - r.warm_elapsed, r.warm_elapsed),
    ] {
        let s: Vec<&Sample> = r.samples.iter().filter(|s| s.at >= from).collect();
        let n = s.len().max(1) as f64;
        let ok = s.iter().filter(|s| s.status == 200 || s.status == 304).count();
        let c304 = s.iter().filter(|s| s.status == 304).count();
        let c429 = s.iter().filter(|s| s.status == 429).count();
        let other = s.len() - ok - c429;
        let mut lat: Vec<u64> = s.iter().map(|s| s.latency_us).collect();
        lat.sort_unstable();
        let mut stale: Vec<u64> = s.iter().filter_map(|s| s.staleness_ms).collect();
        stale.sort_unstable();
        let (calls, throttled) = if from == 0.0 {
            (r.calls, r.throttled)
        } else {
            (r.warm_calls, r.warm_throttled)
        };
        println!(
            "{label:>9}: {:7.1} polls/s | HealthLake {:5.1} calls/s, {throttled} throttled | 200/304 {:6.2}% ({c304} 304), 429 {c429}, other {other} | latency p50 {:.1} ms p99 {:.1} ms | staleness of running jobs p50 {} ms p99 {} ms",
            s.len() as f64 / secs,
            calls as f64 / secs,
            100.0 * ok as f64 / n,
            percentile(&lat, 0.50) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0,
            percentile(&stale, 0.50),
            percentile(&stale, 0.99),
        );
    }
    if let Some((statuses, reached)) = &r.flood {
        let total: usize = statuses.values().sum();
        let mut by_status: Vec<_> = statuses.iter().collect();
        by_status.sort();
        println!(
            "    flood: {:7.1} made-up ids/s answered {by_status:?} | {reached} reached HealthLake ({:.2} calls/s)",
            total as f64 / r.elapsed,
            *reached as f64 / r.elapsed,
        );
    }
}
