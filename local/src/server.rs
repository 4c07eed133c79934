//! The HTTP side of the local run: each request on the socket becomes the `lambda_http::Request`
//! that Lambda would hand the function, goes through the same `handler::handle`, and its response
//! goes back on the socket.

use bytes::Bytes;
use export_job_status::handler::{self, App};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Context, RequestExt};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

/// The function's Lambda timeout in template.yaml: each request gets the deadline it would have
/// there, so the upstream budget is capped exactly as in Lambda.
pub const LAMBDA_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until the process ends. A broken connection only ends that connection.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(app: &App, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    // The route has no body; one that fails to arrive is treated as none.
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let resp = handler::handle(app, to_lambda(parts, body)).await;
    from_lambda(resp)
}

/// What lambda_http would build from an event for this request: the path exactly as the client
/// sent it (REST APIs and function URLs keep percent-encoding too), and a Lambda context with a
/// request id and a deadline.
pub fn to_lambda(parts: hyper::http::request::Parts, body: Bytes) -> lambda_http::Request {
    let raw_path = parts.uri.path().to_owned();
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut context = Context::default();
    context.request_id = request_id(now);
    context.deadline = (now + LAMBDA_TIMEOUT).as_millis() as u64;
    lambda_http::Request::from_parts(parts, body)
        .with_raw_http_path(raw_path)
        .with_lambda_context(context)
}

pub fn from_lambda(resp: lambda_http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = resp.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bin) => Bytes::from(bin),
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// Shaped like Lambda's request ids (a UUID), unique within the process.
fn request_id(now: Duration) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        now.as_secs() as u32,
        now.subsec_millis(),
        n
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http::{Method, StatusCode};

    #[test]
    fn keeps_the_raw_path_and_gives_a_lambda_context() {
        let (parts, ()) = hyper::Request::builder()
            .method(Method::GET)
            .uri("/datastores/ds/export-jobs/job%201%2Fa?x=1")
            .header("origin", "http://localhost:5173")
            .body(())
            .unwrap()
            .into_parts();
        let req = to_lambda(parts, Bytes::new());
        assert_eq!(req.raw_http_path(), "/datastores/ds/export-jobs/job%201%2Fa");
        assert_eq!(req.headers()["origin"], "http://localhost:5173");
        assert!(matches!(req.body(), Body::Empty));
        let ctx = req.lambda_context_ref().expect("a Lambda context");
        assert_eq!(ctx.request_id.len(), 36);
        let left = ctx.deadline().duration_since(SystemTime::now()).unwrap();
        assert!(left > LAMBDA_TIMEOUT - Duration::from_secs(1) && left <= LAMBDA_TIMEOUT);

        let (parts, ()) = hyper::Request::builder().uri("/").body(()).unwrap().into_parts();
        let other = to_lambda(parts, Bytes::from_static(b"{}"));
        assert_ne!(other.lambda_context_ref().unwrap().request_id, ctx.request_id);
        assert!(matches!(other.body(), Body::Text(t) if t == "{}"));
    }

    #[test]
    fn response_keeps_status_headers_and_body() {
        let resp = lambda_http::Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/problem+json")
            .body(Body::Text("{\"status\":404}".into()))
            .unwrap();
        let out = from_lambda(resp);
        assert_eq!(out.status(), 404);
        assert_eq!(out.headers()["content-type"], "application/problem+json");
        let body = futures_body(out);
        assert_eq!(body, "{\"status\":404}");
    }

    fn futures_body(resp: hyper::Response<Full<Bytes>>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
