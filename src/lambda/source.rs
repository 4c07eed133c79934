//! Which HTTP source sent an event, read from its JSON alone, so that an event whose request
//! lambda_http cannot read (or panics on) is still answered in the shape that source expects:
//! API Gateway and ALB turn an answer in the wrong shape into a bare 502.

use lambda_http::aws_lambda_events::alb::AlbTargetGroupResponse;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayV2httpResponse};
use lambda_http::request::{LambdaRequest, RequestOrigin};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// API Gateway REST API, or an HTTP API with payload 1.0.
    Rest,
    /// API Gateway HTTP API with payload 2.0, or a function URL.
    V2,
    /// An ALB target group; `multi_value` when it has multi-value headers on (the event then
    /// carries `multiValueHeaders`, and ALB reads only that member of the answer).
    Alb { multi_value: bool },
}

/// The answer to post, in one source's shape.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Shaped {
    Rest(ApiGatewayProxyResponse),
    V2(ApiGatewayV2httpResponse),
    Alb(AlbTargetGroupResponse),
}

impl Source {
    /// The source of `event` by the members each one always sends; `None` for anything else.
    pub fn of(event: &Value) -> Option<Source> {
        let context = event.get("requestContext")?;
        if context.get("elb").is_some() {
            let multi_value = event.get("multiValueHeaders").is_some_and(|v| !v.is_null());
            Some(Source::Alb { multi_value })
        } else if event.get("version").and_then(Value::as_str) == Some("2.0") && context.get("http").is_some()
        {
            Some(Source::V2)
        } else if event.get("httpMethod").is_some() {
            Some(Source::Rest)
        } else {
            None
        }
    }

    /// The source of an event lambda_http has read (for one that [`Source::of`] did not place).
    pub fn of_request(request: &LambdaRequest) -> Source {
        match (request.request_origin(), request) {
            (RequestOrigin::ApiGatewayV2, _) => Source::V2,
            (RequestOrigin::Alb, LambdaRequest::Alb(alb)) => Source::Alb {
                multi_value: !alb.multi_value_headers.is_empty(),
            },
            _ => Source::Rest,
        }
    }

    /// `resp` in this source's shape. Our own answers have text bodies only.
    pub fn shape(self, resp: Response<Body>) -> Shaped {
        let (parts, body) = resp.into_parts();
        let status_code = i64::from(parts.status.as_u16());
        let body = match body {
            Body::Text(t) => Some(Body::Text(t)),
            _ => None,
        };
        match self {
            Source::Rest => {
                let mut out = ApiGatewayProxyResponse::default();
                out.status_code = status_code;
                // API Gateway merges both header members; one is enough.
                out.multi_value_headers = parts.headers;
                out.body = body;
                Shaped::Rest(out)
            }
            Source::V2 => {
                let mut out = ApiGatewayV2httpResponse::default();
                out.status_code = status_code;
                out.headers = parts.headers;
                out.body = body;
                Shaped::V2(out)
            }
            Source::Alb { multi_value } => {
                let mut out = AlbTargetGroupResponse::default();
                out.status_code = status_code;
                out.status_description = Some(format!(
                    "{} {}",
                    parts.status.as_u16(),
                    parts.status.canonical_reason().unwrap_or_default()
                ));
                if multi_value {
                    out.multi_value_headers = parts.headers;
                } else {
                    out.headers = parts.headers;
                }
                out.body = body;
                Shaped::Alb(out)
            }
        }
    }
}

impl Shaped {
    pub fn status_code(&self) -> i64 {
        match self {
            Shaped::Rest(r) => r.status_code,
            Shaped::V2(r) => r.status_code,
            Shaped::Alb(r) => r.status_code,
        }
    }
}
