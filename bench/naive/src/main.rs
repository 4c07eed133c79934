//! The naive SDK peer of the benchmark: what a new user writes after `cargo lambda new`, calling
//! HealthLake the way the SDK's README shows, with every default. No tuning on purpose: this is
//! the yardstick for what export-job-status adds on top of the SDK (warm CPU) and what its
//! start-up work saves (the first answer).

use aws_sdk_healthlake::Client;
use lambda_http::{run, service_fn, tracing, Body, Error, Request, RequestExt, Response};
use serde_json::json;

async fn handler(client: &Client, event: Request) -> Result<Response<Body>, Error> {
    let params = event.path_parameters();
    let (Some(datastore), Some(job)) = (params.first("datastoreId"), params.first("jobId")) else {
        return Ok(Response::builder()
            .status(400)
            .body("missing path parameter".into())?);
    };
    let out = client
        .describe_fhir_export_job()
        .datastore_id(datastore)
        .job_id(job)
        .send()
        .await?;
    let props = out.export_job_properties.ok_or("no export job properties")?;
    let body = json!({
        "datastoreId": datastore,
        "jobId": props.job_id,
        "jobName": props.job_name,
        "status": props.job_status.as_str(),
        "submittedAt": props.submit_time.to_string(),
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string().into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let client = Client::new(&config);
    run(service_fn(|event: Request| handler(&client, event))).await
}
