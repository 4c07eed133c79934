//! Shared by the integration tests: the real SDK client, pointed at the loopback stand-in.

use aws_credential_types::Credentials;
use aws_sdk_healthlake::config::Region;
use export_job_status::aws;
use export_job_status::config::Config;
use export_job_status::handler::App;
use lambda_http::http::{self, Method};
use lambda_http::{Body, Request, Response};
use loopback::healthlake::StandIn;
use serde_json::Value;

pub const DS: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// An app whose client is built by the function's own loader, with the stand-in as endpoint
/// and static test credentials (the machine's own AWS settings are never read).
pub async fn app(standin: &StandIn, config: Config) -> App {
    let sdk = aws::sdk_config_loader(&config)
        .endpoint_url(standin.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "secret-key",
            Some("session-token".into()),
            None,
            "tests",
        ))
        .load()
        .await;
    App::new(aws_sdk_healthlake::Client::new(&sdk), config)
}

/// The IAM principal that in-process requests are signed by, as API Gateway names it.
pub const TEST_PRINCIPAL: &str = "AIDAINPROCESSTEST001";

/// A request as a REST API hands it over after SigV4 authentication: with the caller's identity
/// (under `AUTH_MODE=AWS_IAM`, the default, an event without one reads nothing).
pub fn request(method: Method, path: &str) -> Request {
    use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let mut ctx = ApiGatewayProxyRequestContext::default();
    ctx.identity.user = Some(TEST_PRINCIPAL.to_owned());
    anonymous(method, path).with_request_context(RequestContext::ApiGatewayV1(ctx))
}

/// A plain HTTP request with no caller identity, as the local server receives it.
pub fn anonymous(method: Method, path: &str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(path)
        .body(Body::Empty)
        .unwrap()
}

pub fn get(path: &str) -> Request {
    request(Method::GET, path)
}

pub fn job_path(ds: &str, job: &str) -> String {
    format!("/datastores/{ds}/export-jobs/{job}")
}

pub fn body_json(resp: &Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}")),
        other => panic!("expected a text body, got {other:?}"),
    }
}

pub fn header<'a>(resp: &'a Response<Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Fails if a response carries anything that identifies the account or comes from AWS's words.
pub fn assert_no_leak(resp: &Response<Body>) {
    let mut all = format!("{:?}", resp.headers());
    if let Body::Text(t) = resp.body() {
        all.push_str(t);
    }
    for secret in [
        "arn:aws",
        loopback::healthlake::SECRET_ACCOUNT,
        "1234abcd-12ab",
        "request by",
        "secret-key",
        "session-token",
        "AKIDTEST",
    ] {
        assert!(!all.contains(secret), "response leaks {secret:?}: {all}");
    }
}
