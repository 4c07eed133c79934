//! Lambda events in, answers out: takes any event from the Runtime API, lets lambda_http turn
//! HTTP events into requests and responses into the shape their source expects, and answers
//! everything else itself with a 400 (in its source's shape where the event is an HTTP event that
//! could not be read), so that no event ever becomes an invocation error.

mod source;

use crate::error::Error;
use crate::handler::{self, App};
use crate::telemetry::metrics;
use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Request, Service};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::{Deserialize, Deserializer, Serialize};
use source::{Shaped, Source};
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An event lambda_http can read, an HTTP event it cannot, or anything else.
pub enum Incoming {
    Http {
        request: Box<LambdaRequest>,
        source: Source,
    },
    Unreadable(Source),
    Other,
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let source = Source::of(&value);
        Ok(match LambdaRequest::deserialize(value) {
            Ok(request) => Incoming::Http {
                source: source.unwrap_or_else(|| Source::of_request(&request)),
                request: Box::new(request),
            },
            Err(_) => source.map_or(Incoming::Other, Incoming::Unreadable),
        })
    }
}

/// Either lambda_http's response for the event's source, or our own answer to an event that
/// never reached the handler.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Outcome<R> {
    Http(R),
    Refused(Box<Shaped>),
}

/// Serves invocations until the Runtime API goes away.
pub async fn run(app: &'static App) -> Result<(), lambda_runtime::Error> {
    let mut http = Adapter::from(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(handler::handle(app, req).await)
    }));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Incoming>| {
        answer(&mut http, event)
    }))
    .await
}

/// One event in, the answer to post out, never an error. `http` is lambda_http's adapter around
/// the handler: it turns the event into a request and the response into the source's shape.
pub fn answer<H>(
    http: &mut H,
    event: LambdaEvent<Incoming>,
) -> impl Future<Output = Result<Outcome<H::Response>, Infallible>>
where
    H: Service<LambdaEvent<LambdaRequest>, Error = Infallible>,
{
    let LambdaEvent { payload, context } = event;
    let answer = match payload {
        Incoming::Http { request, source } => {
            let request_id = context.request_id.clone();
            // lambda_http panics on some events it has deserialized: a Host it cannot turn into
            // a URI, an undecodable base64 body. Such an event is answered as one it cannot
            // read, not failed as an invocation (the release profile keeps panic = "unwind").
            catch_unwind(AssertUnwindSafe(|| {
                http.call(LambdaEvent::new(*request, context))
            }))
            .map_err(|_panic| unreadable(source, &request_id))
        }
        Incoming::Unreadable(source) => Err(unreadable(source, &context.request_id)),
        Incoming::Other => Err(not_http(&context.request_id)),
    };
    async move {
        match answer {
            Ok(fut) => fut.await.map(Outcome::Http),
            Err(resp) => Ok(Outcome::Refused(resp)),
        }
    }
}

fn unreadable(source: Source, request_id: &str) -> Box<Shaped> {
    let out = source.shape(handler::refusal(request_id, &Error::UnreadableRequest));
    // A request line like the handler's, metrics included.
    tracing::info!(
        target: metrics::TARGET,
        request_id,
        status = out.status_code(),
        Outcome = Error::UnreadableRequest.case().slug,
        ServerErrors = 0u8,
        "request could not be read"
    );
    Box::new(out)
}

/// Not an HTTP event: there is no source to shape the answer for, so it is API Gateway's 1.0
/// shape with plain `headers`, which a direct invoke can read as well as anything.
fn not_http(request_id: &str) -> Box<Shaped> {
    let (parts, body) = handler::refusal(request_id, &Error::NotAnHttpEvent).into_parts();
    let mut out = ApiGatewayProxyResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Text(t) => Some(Body::Text(t)),
        _ => None,
    };
    // A request line like the handler's, metrics included.
    tracing::info!(
        target: metrics::TARGET,
        request_id,
        status = out.status_code,
        Outcome = Error::NotAnHttpEvent.case().slug,
        ServerErrors = 0u8,
        "request is not an HTTP event"
    );
    Box::new(Shaped::Rest(out))
}
