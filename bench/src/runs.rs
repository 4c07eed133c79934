//! The runs: the world the builds call, each build's cold starts and warm phase, and their samples.

use crate::args::{Args, Build, Endpoint, Role, TableMode};
use crate::measure;
use crate::quota::{Group, Quota};
use crate::tls;
use loopback::healthlake::StandIn;
use loopback::moto::Moto;
use loopback::runtime_api::{self, Outcome, RuntimeApi};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// A running job: never cached, so every request does the whole path to HealthLake.
const JOB: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const DEADLINE: Duration = Duration::from_secs(10);
const WARMUP: usize = 50;
/// Where Lambda's AL2023 keeps its trust store, and Debian's: the first that exists is the
/// system part of the bundle.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// What the harness serves and where the functions find it.
pub struct World {
    healthlake: StandIn,
    front: tls::HttpsFront,
    bundle: PathBuf,
    /// This run's CA alone, for the function with `--function-ca-only`.
    function_bundle: PathBuf,
    python_app: PathBuf,
    logs: PathBuf,
    /// Where each start gets its CPU quota; None: unthrottled.
    pub quota: Option<Quota>,
    /// With `--status-table`: moto's DynamoDB and its TLS front, and how the job's item is kept.
    table: Option<(Moto, tls::HttpsFront, TableMode)>,
}

impl World {
    /// Makes the CPU quota (with `--throttle`/`--memory`), starts HealthLake behind its TLS front
    /// (and moto's with `--status-table`) and writes the trust bundles into `out`; returns the
    /// world and how many roots the bundle trusts.
    pub fn start(args: &Args, out: &Path) -> (World, usize) {
        let quota = args.memory.and_then(|mb| match Quota::for_memory(mb, args.init_unthrottled) {
            Ok(q) => {
                println!("CPU quota: {}", q.describe());
                Some(q)
            }
            Err(why) => {
                eprintln!(
                    "\n*** cannot make a cgroup with a CPU quota ({why}): falling back to the UNTHROTTLED run ***\n"
                );
                None
            }
        });

        let healthlake = StandIn::start();
        healthlake.put_job(DS, JOB, "IN_PROGRESS");
        let pki = tls::Pki::generate();
        let system = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists());
        let bundle = out.join("ca-bundle.pem");
        let roots = pki.write_bundle(if args.ca_only { None } else { system }, &bundle);
        let front = tls::HttpsFront::start(&pki, healthlake.addr());
        let function_bundle = if args.function_ca_only {
            let only = out.join("ca-only.pem");
            pki.write_bundle(None, &only);
            only
        } else {
            bundle.clone()
        };
        let table = args.status_table.map(|mode| {
            let moto = Moto::start();
            moto.create_table(TABLE);
            let front = tls::HttpsFront::start(&pki, moto.addr());
            println!(
                "status table {TABLE} on moto's DynamoDB at https://localhost:{}; the first request {}",
                front.port(),
                match mode {
                    TableMode::Miss =>
                        "finds no item: table, lease, the caller's bucket, budget, HealthLake, write-back",
                    TableMode::Hit => "finds a fresh item (after the first start): the table alone",
                }
            );
            (moto, front, mode)
        });
        let world = World {
            table,
            healthlake,
            front,
            bundle,
            function_bundle,
            python_app: Path::new(env!("CARGO_MANIFEST_DIR")).join("python"),
            logs: out.join("logs"),
            quota,
        };
        println!(
            "HealthLake over HTTPS at https://localhost:{}; trust bundle {} ({roots} certificates)",
            world.front.port(),
            world.bundle.display()
        );
        (world, roots)
    }
}

const TABLE: &str = "export-job-status-bench";

/// One cold start, and for the last one the warm phase.
#[derive(Default, Clone)]
pub struct ColdStart {
    pub init: Duration,
    pub init_cpu: Duration,
    pub first_cpu: Duration,
    pub first_cpu_schedstat: Duration,
    pub first_call: Duration,
    /// Quota periods in which the process was throttled, up to its first answer.
    pub throttled: u64,
    /// Page faults up to the first answer.
    pub faults: u64,
}

#[derive(Default)]
pub struct Warm {
    pub latencies: Vec<Duration>,
    pub cpu_per_request: Duration,
    pub peak_rss: u64,
}

#[derive(Default)]
pub struct Results {
    pub cold: Vec<ColdStart>,
    pub warm: Warm,
    pub stripped: Option<u64>,
    pub zip: Option<u64>,
}

/// Every build's sizes, then `args.cold` rounds of cold starts (the builds take turns) and,
/// after the last round, the warm phase.
pub fn collect(args: &Args, world: &World, out: &Path) -> Vec<Results> {
    let mut results: Vec<Results> = args.builds.iter().map(|_| Results::default()).collect();
    for (build, res) in args.builds.iter().zip(&mut results) {
        if build.role != Role::Python {
            let scratch = out.join("zip").join(slug(&build.name));
            std::fs::create_dir_all(&scratch).expect("scratch folder");
            let (stripped, zip) = measure::sizes(&build.path, &scratch);
            (res.stripped, res.zip) = (Some(stripped), Some(zip));
        }
    }
    for round in 0..args.cold {
        let keep = round + 1 == args.cold && args.warm > 0;
        let n = args.builds.len();
        let mut running: Vec<Option<Running>> = (0..n).map(|_| None).collect();
        // Each round starts with the next build, so that no build always goes first.
        for i in (0..n).map(|k| (k + round) % n) {
            let (cold, mut process) = cold_start(&args.builds[i], world);
            results[i].cold.push(cold);
            if keep {
                running[i] = Some(process);
            } else {
                stop(&mut process.child);
            }
        }
        let running: Vec<Running> = running.into_iter().flatten().collect();
        eprint!("\rcold starts: {}/{}", round + 1, args.cold);
        if keep {
            eprint!("; warm invocations...");
            let warm = warm_phase(&args.builds, world, running, args.warm);
            for (res, w) in results.iter_mut().zip(warm) {
                res.warm = w;
            }
        }
    }
    eprintln!();
    results
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The function must refuse a server its trust store does not vouch for: started without
/// `SSL_CERT_FILE` (the system store only, as in Lambda) it answers 502 (HealthLake refused), or
/// with the status table 429 (the table refused, and without the table it calls no HealthLake),
/// not 200.
pub fn verification_check(builds: &[Build], world: &World) {
    let Some(function) = builds.iter().find(|b| b.role == Role::Function) else {
        return;
    };
    let api = RuntimeApi::start();
    let mut child = spawn(function, world, &api, false, None);
    let inv = api.invoke_timed(event(), DEADLINE);
    stop(&mut child);
    let status = match &inv.outcome {
        Outcome::Response(v) => v["statusCode"].as_u64(),
        _ => None,
    };
    let refused = if world.table.is_some() { 429 } else { 502 };
    assert_eq!(
        status,
        Some(refused),
        "without SSL_CERT_FILE the function must reject the benchmark's CA: {:?}",
        inv.outcome
    );
    println!(
        "verification: without SSL_CERT_FILE the function rejects the benchmark CA ({refused}); with it, 200"
    );
}

/// The environment Lambda gives a function, pointed at the loopback Runtime API and HealthLake.
fn spawn(build: &Build, world: &World, api: &RuntimeApi, trust_bundle: bool, group: Option<&Group>) -> Child {
    let endpoint = match build.endpoint {
        Endpoint::Name => format!("https://localhost:{}", world.front.port()),
        Endpoint::Address => format!("https://127.0.0.1:{}", world.front.port()),
        Endpoint::Plain => format!("http://{}", world.healthlake.addr()),
    };
    let bundle = world.bundle.to_string_lossy().into_owned();
    let mut env: Vec<(&str, String)> = vec![
        ("AWS_LAMBDA_RUNTIME_API", api.host_port()),
        ("AWS_LAMBDA_FUNCTION_NAME", runtime_api::FUNCTION_NAME.into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/export-job-status".into(),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef".into(),
        ),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "AKIABENCHEXAMPLE0000".into()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "benchSecretKey/K7MDENG/bPxRfiCYEXAMPLEKEY0".into(),
        ),
        (
            "AWS_SESSION_TOKEN",
            "benchSessionToken//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE".into(),
        ),
        ("AWS_ENDPOINT_URL_HEALTHLAKE", endpoint),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
    ];
    if let (Some((_, front, mode)), Role::Function | Role::Variant) = (&world.table, &build.role) {
        env.push(("STATUS_TABLE", TABLE.into()));
        env.push((
            "AWS_ENDPOINT_URL_DYNAMODB",
            format!("https://localhost:{}", front.port()),
        ));
        if *mode == TableMode::Hit {
            env.push(("REFRESH_INTERVAL_MS", "300000".into()));
        }
    }

    if trust_bundle {
        // The breakdown builds are the function too.
        let file = if build.role == Role::Function || build.endpoint != Endpoint::Name {
            &world.function_bundle
        } else {
            &world.bundle
        };
        env.push(("SSL_CERT_FILE", file.to_string_lossy().into_owned()));
    }
    let mut cmd = match build.role {
        Role::Python => {
            let app = world.python_app.to_string_lossy().into_owned();
            env.extend([
                ("AWS_CA_BUNDLE", bundle.clone()),
                ("REQUESTS_CA_BUNDLE", bundle),
                ("LAMBDA_TASK_ROOT", app.clone()),
                ("PYTHONPATH", app),
                // Lambda's task root is read-only: no bytecode cache for the handler.
                ("PYTHONDONTWRITEBYTECODE", "1".into()),
                ("_HANDLER", "app.handler".into()),
            ]);
            let mut cmd = Command::new(&build.path);
            cmd.args(["-m", "awslambdaric", "app.handler"])
                .current_dir(&world.python_app);
            cmd
        }
        _ => {
            env.push(("_HANDLER", "bootstrap".into()));
            Command::new(&build.path)
        }
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(world.logs.join(format!("{}.log", slug(&build.name))))
        .expect("open the log");
    if let Some(group) = group {
        group.enter_on_exec(&mut cmd);
    }
    cmd.env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", build.path.display()))
}

/// API Gateway REST API (payload 1.0): `GET /datastores/{DS}/export-jobs/{JOB}`.
fn event() -> Value {
    let path = format!("/datastores/{DS}/export-jobs/{JOB}");
    json!({
        "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json", "Host": "abc123defg.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Accept": ["application/json"], "Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"]},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": {"datastoreId": DS, "jobId": JOB},
        "stageVariables": null,
        "requestContext": {
            "resourceId": "a1b2c3",
            "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "httpMethod": "GET",
            "path": format!("/Prod{path}"),
            "accountId": "000000000000",
            "protocol": "HTTP/1.1",
            "stage": "Prod",
            "requestTimeEpoch": 1_700_000_000_000_i64,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            // Signed by an IAM role, as API Gateway describes it under AWS_IAM (the default
            // AUTH_MODE, which reads nothing for an event with no caller).
            "identity": {
                "sourceIp": "203.0.113.10",
                "user": "AROABENCHCALLER00001:bench",
                "caller": "AROABENCHCALLER00001:bench"
            },
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123defg"
        },
        "body": null,
        "isBase64Encoded": false
    })
}

/// The answer must be a 200 (with the job, from the functions that call HealthLake).
fn check(build: &Build, outcome: &Outcome, world: &World) {
    let ok = match outcome {
        Outcome::Response(v) => {
            v["statusCode"] == 200
                && (build.role == Role::Floor
                    || v["body"].as_str().is_some_and(|b| b.contains("IN_PROGRESS")))
        }
        _ => false,
    };
    assert!(
        ok,
        "{}: unexpected answer {outcome:?}; see {}",
        build.name,
        world.logs.display()
    );
}

/// A function process that has answered its first invocation and waits for the next.
struct Running {
    api: RuntimeApi,
    child: Child,
    /// Its cgroup, removed after the process (fields drop in order).
    _group: Option<Group>,
}

/// Starts `build` cold and serves its first invocation.
fn cold_start(build: &Build, world: &World) -> (ColdStart, Running) {
    if let Some((moto, _, TableMode::Miss)) = &world.table {
        let key = json!({"pk": {"S": format!("job#{DS}#{JOB}")}});
        moto.call("DeleteItem", &json!({"TableName": TABLE, "Key": key}))
            .expect("delete the job's item");
    }
    let api = RuntimeApi::start();
    let group = world.quota.as_ref().map(|q| {
        q.fresh()
            .unwrap_or_else(|e| panic!("make a cgroup for {}: {e}", build.name))
    });
    let started = Instant::now();
    let mut child = spawn(build, world, &api, true, group.as_ref());
    let pid = child.id();
    let Some(first_poll) = api.wait_for_first_poll(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!(
            "{} never polled for an event; see {}",
            build.name,
            world.logs.display()
        );
    };
    if let (Some(group), Some(q)) = (&group, &world.quota) {
        if q.init_unthrottled {
            group.limit().expect("apply the CPU quota");
        }
    }
    let init_cpu = measure::cpu_time(pid);
    let inv = api.invoke_timed(event(), DEADLINE);
    let first_cpu = measure::cpu_time(pid);
    let first_cpu_schedstat = measure::schedstat_sum(pid);
    let faults = measure::page_faults(pid);
    let throttled = group.as_ref().map_or(0, |g| g.throttled().1);
    check(build, &inv.outcome, world);
    let cold = ColdStart {
        init: first_poll - started,
        init_cpu,
        first_cpu,
        first_cpu_schedstat,
        first_call: inv.answered.expect("answered") - inv.delivered.expect("delivered"),
        throttled,
        faults,
    };
    let running = Running {
        api,
        child,
        _group: group,
    };
    (cold, running)
}

/// `n` warm invocations; returns their latencies and the CPU they cost the process.
fn invoke_warm(build: &Build, world: &World, running: &Running, n: usize) -> (Vec<Duration>, Duration) {
    let pid = running.child.id();
    let before = measure::cpu_time(pid);
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let inv = running.api.invoke_timed(event(), DEADLINE);
        check(build, &inv.outcome, world);
        latencies.push(inv.answered.expect("answered") - inv.delivered.expect("delivered"));
    }
    (latencies, measure::cpu_time(pid) - before)
}

/// The warm phase: every build's process stays up, and they take turns in batches, so that
/// whatever else the machine does at the time weighs on all of them alike.
fn warm_phase(builds: &[Build], world: &World, mut running: Vec<Running>, n: usize) -> Vec<Warm> {
    const BATCH: usize = 50;
    for (build, r) in builds.iter().zip(&running) {
        invoke_warm(build, world, r, WARMUP);
    }
    let mut warm: Vec<Warm> = builds.iter().map(|_| Warm::default()).collect();
    let mut cpu = vec![Duration::ZERO; builds.len()];
    let mut done = 0;
    while done < n {
        let batch = BATCH.min(n - done);
        for (i, (build, r)) in builds.iter().zip(&running).enumerate() {
            let (latencies, used) = invoke_warm(build, world, r, batch);
            warm[i].latencies.extend(latencies);
            cpu[i] += used;
        }
        done += batch;
    }
    for (i, r) in running.iter_mut().enumerate() {
        warm[i].cpu_per_request = cpu[i] / n as u32;
        warm[i].peak_rss = measure::peak_rss(r.child.id());
        stop(&mut r.child);
    }
    warm
}

/// SIGTERM, then SIGKILL if the process is still there after a second (a profiler under which
/// the function runs gets the chance to write its output).
fn stop(child: &mut Child) {
    // SAFETY: a plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}
