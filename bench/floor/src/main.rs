//! The floor of the benchmark: the least a lambda_http function does. It answers every event
//! with a constant 200, on the same current-thread runtime as the function, so that whatever
//! export-job-status costs beyond this is its own work (configuration, SDK client, TLS, the call).

use lambda_http::{service_fn, Body, Error, Request, Response};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"hello":"world"}"#))
            .map_err(Error::from)
    }))
    .await
}
