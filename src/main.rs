//! The Lambda entry point: configuration, the SDK client and the cache are built once per
//! execution environment and lent to every invocation.

use aws_sdk_healthlake::Client;
use export_job_status::config::Config;
use export_job_status::handler::App;
use export_job_status::{logging, runtime, upstream};

const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_HEALTHLAKE";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    // An empty value means unset, as for our own variables: `sam local invoke` without
    // `--env-vars` gives every declared variable "", which the SDK would take as an endpoint.
    // Still single-threaded here (current-thread runtime, nothing spawned), so this is sound.
    if std::env::var_os(ENDPOINT_VAR).is_some_and(|v| v.is_empty()) {
        std::env::remove_var(ENDPOINT_VAR);
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "start-up stopped");
            std::process::exit(1);
        }
    };
    let sdk = upstream::sdk_config_loader(&config)
        .credentials_provider(upstream::EnvironmentFirst::default())
        .load()
        .await;
    upstream::preconnect(&sdk).await;
    let app: &'static App = Box::leak(Box::new(App::new(Client::new(&sdk), config)));
    runtime::run(app).await
}
