//! The reference web page (`web/`), served on its own origin (`http://localhost:5173`), so that
//! every request it makes to the function on 127.0.0.1 is a cross-origin request that the browser
//! checks against the function's CORS answers, as from a web app in production. The files are
//! compiled into the local run only: the Lambda binary never carries them.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::net::TcpListener;

const HTML: &str = "text/html; charset=utf-8";
/// Browsers run a module script only when it is served as JavaScript.
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Path, content type, content.
const FILES: [(&str, &str, &str); 4] = [
    ("/", HTML, include_str!("../../web/index.html")),
    ("/index.html", HTML, include_str!("../../web/index.html")),
    ("/poll.js", JAVASCRIPT, include_str!("../../web/poll.js")),
    ("/page.js", JAVASCRIPT, include_str!("../../web/page.js")),
];

/// Serves until the process ends.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub fn answer<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let file = FILES.iter().find(|(path, _, _)| *path == req.uri().path());
    let (status, content_type, body) = match (req.method(), file) {
        (&Method::GET | &Method::HEAD, Some((_, content_type, body))) => {
            (StatusCode::OK, *content_type, *body)
        }
        (&Method::GET | &Method::HEAD, None) => (StatusCode::NOT_FOUND, "text/plain", "Not found\n"),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "Method not allowed\n",
        ),
    };
    let body = if req.method() == Method::HEAD { "" } else { body };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always revalidated, so an edited page shows after a rebuild without a hard reload.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, uri: &str) -> Response<Full<Bytes>> {
        answer(&Request::builder().method(method).uri(uri).body(()).unwrap())
    }

    #[test]
    fn serves_the_page_and_its_modules_as_what_they_are() {
        let page = get(Method::GET, "/?api=http://127.0.0.1:3000&job=job-moving");
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()[CONTENT_TYPE], HTML);
        for (path, _, body) in FILES {
            if path.ends_with(".js") {
                assert_eq!(get(Method::GET, path).headers()[CONTENT_TYPE], JAVASCRIPT);
                // Every module the page loads is one we serve.
                for import in body.lines().filter_map(|l| l.split("from '.").nth(1)) {
                    let import = import.split('\'').next().unwrap();
                    assert!(
                        FILES.iter().any(|(p, _, _)| *p == import),
                        "{path} imports {import}"
                    );
                }
            }
        }
        assert!(FILES[0].2.contains("<script type=\"module\" src=\"/page.js\">"));
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(get(Method::GET, "/Cargo.toml").status(), 404);
        assert_eq!(get(Method::GET, "/../web/poll.js").status(), 404);
        let post = get(Method::POST, "/");
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        assert_eq!(get(Method::HEAD, "/poll.js").status(), 200);
    }
}
