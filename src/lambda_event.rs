//! Lambda events in, answers out: takes any event from the Runtime API, lets lambda_http turn HTTP events into
//! requests and responses into the shape their source expects, and answers everything else with
//! a 400 in the API Gateway shape, so that no event ever becomes an invocation error.

use crate::config::AllowedOrigins;
use crate::error::Error;
use crate::handler::{self, App};
use crate::response::Reply;
use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyResponse;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Body, Request, Service};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::{Deserialize, Deserializer, Serialize};
use std::convert::Infallible;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// An event lambda_http can read, or anything else.
pub enum Incoming {
    Http(Box<LambdaRequest>),
    Other,
}

impl<'de> Deserialize<'de> for Incoming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(LambdaRequest::deserialize(value).map_or(Incoming::Other, |r| Incoming::Http(Box::new(r))))
    }
}

/// Either lambda_http's response for the event's source, or our answer to a non-HTTP event.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Outcome<R> {
    Http(R),
    NotHttp(Box<ApiGatewayProxyResponse>),
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
        Incoming::Http(req) => {
            let request_id = context.request_id.clone();
            // lambda_http panics on some events it has deserialized: a Host header with a bad
            // port (`Url::parse(..).unwrap()` in its request conversion). Found by fuzzing; such
            // an event is answered as one it cannot read, not failed as an invocation.
            catch_unwind(AssertUnwindSafe(|| http.call(LambdaEvent::new(*req, context))))
                .map_err(|_panic| not_http(&request_id))
        }
        Incoming::Other => Err(not_http(&context.request_id)),
    };
    async move {
        match answer {
            Ok(fut) => fut.await.map(Outcome::Http),
            Err(resp) => Ok(Outcome::NotHttp(resp)),
        }
    }
}

fn not_http(request_id: &str) -> Box<ApiGatewayProxyResponse> {
    let req = Request::new(Body::Empty);
    let resp = Reply::for_request(&req, request_id.to_owned(), &AllowedOrigins::None)
        .problem(&Error::NotAnHttpEvent);
    let (parts, body) = resp.into_parts();
    let mut out = Box::<ApiGatewayProxyResponse>::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Text(t) => Some(Body::Text(t)),
        _ => None,
    };
    tracing::info!(
        request_id,
        status = out.status_code,
        "request is not an HTTP event"
    );
    out
}
