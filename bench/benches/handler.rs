//! The handler's own work per request, in-process: an API Gateway event's bytes in, the bytes
//! Lambda gets back out, through the same steps as `lambda_event::run` (event parsing, lambda_http's
//! adapter, the handler, the response's serialization). HealthLake's answer comes from an
//! in-process HTTP client (a canned awsJson body), so the SDK still builds, signs and parses the
//! call. Logging is off (no subscriber): the end-to-end benchmark's warm figures include it.
//!
//! `cargo bench -p bench --bench handler`

use aws_sdk_healthlake::config::Region;
use aws_smithy_http_client::test_util::infallible_client_fn;
use criterion::{criterion_group, criterion_main, Criterion};
use export_job_status::config::Config;
use export_job_status::handler::{self, App};
use export_job_status::lambda::{Incoming, Outcome};
use lambda_http::{Adapter, Request, Service};
use lambda_runtime::{service_fn, Context, LambdaEvent};
use std::convert::Infallible;
use std::hint::black_box;

const DS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const RUNNING: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const DONE: &str = "1f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn event(job: &str) -> Vec<u8> {
    let path = format!("/datastores/{DS}/export-jobs/{job}");
    serde_json::json!({
        "resource": "/datastores/{datastoreId}/export-jobs/{jobId}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json", "Host": "abc123defg.execute-api.us-east-1.amazonaws.com"},
        "multiValueHeaders": {"Accept": ["application/json"], "Host": ["abc123defg.execute-api.us-east-1.amazonaws.com"]},
        "pathParameters": {"datastoreId": DS, "jobId": job},
        "requestContext": {
            "resourcePath": "/datastores/{datastoreId}/export-jobs/{jobId}",
            "httpMethod": "GET", "path": format!("/Prod{path}"), "accountId": "000000000000",
            "stage": "Prod", "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            // Signed by an IAM role: under AWS_IAM an event with no caller reads nothing.
            "identity": {"sourceIp": "203.0.113.10", "user": "AROABENCHCALLER00001:bench"},
            "apiId": "abc123defg"
        },
        "isBase64Encoded": false
    })
    .to_string()
    .into_bytes()
}

/// The app, with a client whose HTTP layer answers in-process: the running job says
/// IN_PROGRESS (never cached), the other COMPLETED (cached after its first call).
fn app(rt: &tokio::runtime::Runtime) -> &'static App {
    let http = infallible_client_fn(|req| {
        let body = std::str::from_utf8(req.body().bytes().unwrap_or_default()).unwrap_or_default();
        let (job, status) = if body.contains(DONE) {
            (DONE, "COMPLETED")
        } else {
            (RUNNING, "IN_PROGRESS")
        };
        let props = loopback::healthlake::job(DS, job, status);
        http::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.0")
            .body(serde_json::json!({ "ExportJobProperties": props }).to_string())
            .unwrap()
    });
    let config = Config::default();
    let sdk = rt.block_on(
        export_job_status::aws::sdk_config_loader(&config)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_healthlake::config::Credentials::new(
                "AKIDBENCH",
                "secret",
                Some("token".into()),
                None,
                "bench",
            ))
            .http_client(http)
            .load(),
    );
    Box::leak(Box::new(App::new(aws_sdk_healthlake::Client::new(&sdk), config)))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = app(&rt);
    let mut adapter = Adapter::from(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(handler::handle(app, req).await)
    }));
    // What lambda_event::run does with one event, minus the Runtime API's HTTP.
    let mut one = |bytes: &[u8]| -> Vec<u8> {
        let outcome = match serde_json::from_slice::<Incoming>(bytes).unwrap() {
            Incoming::Http { request, .. } => {
                let fut = adapter.call(LambdaEvent::new(*request, Context::default()));
                Outcome::Http(rt.block_on(fut).unwrap())
            }
            Incoming::Unreadable(_) | Incoming::Other => {
                unreachable!("the benchmark sends HTTP events it can read")
            }
        };
        serde_json::to_vec(&outcome).unwrap()
    };
    let (running, done) = (event(RUNNING), event(DONE));
    assert!(String::from_utf8(one(&running)).unwrap().contains("IN_PROGRESS"));
    assert!(String::from_utf8(one(&done)).unwrap().contains("COMPLETED"));

    let mut group = c.benchmark_group("handler");
    group.bench_function("running job: event → SDK call (in-process) → response", |b| {
        b.iter(|| one(black_box(&running)))
    });
    group.bench_function("terminal job: cache hit", |b| b.iter(|| one(black_box(&done))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
