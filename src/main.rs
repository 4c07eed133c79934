//! The Lambda entry point: configuration, the SDK client and the cache are built once per
//! execution environment and lent to every invocation.

use export_job_status::config::{Config, ENDPOINT_VARS};
use export_job_status::handler::App;
use export_job_status::telemetry::{logging, panic_log};
use export_job_status::{aws, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    panic_log::install();
    // An empty value means unset, as for our own variables: `sam local invoke` without
    // `--env-vars` gives every declared variable "", which the SDK would take as an endpoint.
    // Still single-threaded here (current-thread runtime, nothing spawned), so this is sound.
    for var in ENDPOINT_VARS {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(var);
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "start-up stopped");
            std::process::exit(1);
        }
    };
    let sdk = aws::sdk_config_loader(&config)
        .credentials_provider(aws::EnvironmentFirst::default())
        .load()
        .await;
    // The first request's connection is opened while start-up goes on (src/warmup.rs).
    aws::preconnect(&sdk, &config).await;
    let app: &'static App = Box::leak(Box::new(App::from_sdk(&sdk, config)));
    lambda::run(app).await
}
