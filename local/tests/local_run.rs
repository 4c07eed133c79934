//! The local run as a user meets it: the compiled binary, started with flags, answering real HTTP
//! requests on loopback from its stand-in's demo jobs.

use loopback::healthlake::demo::{self, Behaviour};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_local");

/// The running binary; killed when dropped.
struct LocalRun {
    child: Child,
    addr: SocketAddr,
    banner: String,
    /// Everything printed after the banner: the function's JSON log lines.
    logs: Arc<Mutex<Vec<String>>>,
}

impl LocalRun {
    fn start(envs: &[(&str, &str)]) -> LocalRun {
        Self::start_with(
            &["--port", "0", "--healthlake-port", "0", "--page-port", "0"],
            envs,
        )
    }

    fn start_with(args: &[&str], envs: &[(&str, &str)]) -> LocalRun {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("ALLOWED_ORIGINS")
            .env_remove("ALLOWED_DATASTORE_IDS")
            .env_remove("UPSTREAM_MAX_ATTEMPTS")
            // Must be outranked by the stand-in: if it were used, every call would fail.
            .env("AWS_ENDPOINT_URL_HEALTHLAKE", "http://127.0.0.1:1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the local run");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        for line in lines.by_ref() {
            let line = line.expect("read the banner");
            banner.push_str(&line);
            banner.push('\n');
            if line == "Stop with Ctrl-C." {
                break;
            }
        }
        let addr = banner
            .lines()
            .find_map(|l| l.strip_prefix("export-job-status is listening on http://"))
            .unwrap_or_else(|| panic!("no address in the banner:\n{banner}"))
            .parse()
            .expect("a socket address");
        // Keep draining stdout, so the server never blocks on a full pipe.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        LocalRun {
            child,
            addr,
            banner,
            logs,
        }
    }

    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        call(self.addr, method, path, headers)
    }

    fn get(&self, path: &str) -> Answer {
        self.call("GET", path, &[])
    }

    /// The web page's URL as the banner prints it, and the address it is served from.
    fn page(&self) -> (String, SocketAddr) {
        let url = self
            .banner
            .lines()
            .find_map(|l| l.strip_prefix("Web page: "))
            .unwrap_or_else(|| panic!("no page in the banner:\n{}", self.banner))
            .to_owned();
        let port = url
            .strip_prefix("http://localhost:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("not a localhost URL: {url}"));
        (url, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    Answer::parse(&raw)
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn parse(raw: &str) -> Answer {
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete HTTP answer");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn job_path(job: &str) -> String {
    format!("/datastores/{}/export-jobs/{job}", demo::DATASTORE)
}

#[test]
fn every_demo_job_answers_over_http_as_the_banner_says() {
    // A short budget, so the slow job's 504 comes quickly.
    let run = LocalRun::start(&[("UPSTREAM_TIMEOUT_MS", "400")]);
    assert!(
        run.banner.contains("loopback stand-in with demo jobs"),
        "{}",
        run.banner
    );
    for job in demo::JOBS {
        let line = run
            .banner
            .lines()
            .find(|l| l.contains(&format!("curl -i http://{}{}", run.addr, job_path(job.id))))
            .unwrap_or_else(|| panic!("no curl line for {}:\n{}", job.id, run.banner));
        assert!(line.contains(&format!("# {}", job.http_status)), "{line}");

        let resp = run.get(&job_path(job.id));
        assert_eq!(resp.status, job.http_status, "{}: {resp:?}", job.id);
        let body = resp.json();
        match job.behaviour {
            Behaviour::Status(_) | Behaviour::Moving(_) => {
                // The moving job is asked here for the first time: it starts at its first step.
                let status = match job.behaviour {
                    Behaviour::Moving(steps) => steps[0].1,
                    Behaviour::Status(status) => status,
                    _ => unreachable!(),
                };
                assert_eq!(resp.header("content-type"), Some("application/json"));
                assert_eq!(body["status"], status);
                assert_eq!(body["jobId"], job.id);
                assert_eq!(body["datastoreId"], demo::DATASTORE);
                assert!(resp.header("etag").is_some());
            }
            _ => {
                assert_eq!(resp.header("content-type"), Some("application/problem+json"));
                assert_eq!(body["status"], job.http_status);
                assert!(
                    body["requestId"].as_str().is_some_and(|id| id.len() == 36),
                    "{body}"
                );
            }
        }
    }
    // One JSON log line per request, as in Lambda.
    std::thread::sleep(Duration::from_millis(100));
    let logged = run
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"message\":\"request\""))
        .count();
    assert_eq!(logged, demo::JOBS.len());
}

#[test]
fn the_raw_path_methods_and_cors_behave_as_in_lambda() {
    let run = LocalRun::start(&[]);

    // The path reaches the function as sent: decoded once, then validated.
    let resp = run.get(&job_path("job%2Dqueued"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["jobId"], "job-queued");
    let resp = run.get(&job_path("bad%09id"));
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.json()["type"],
        "urn:problem-type:export-job-status:invalid-parameter"
    );

    let head = run.call("HEAD", &job_path("job-completed"), &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert!(head.header("etag").is_some());

    // The local run turns CORS on for its page and a local web app (Vite's port) when
    // ALLOWED_ORIGINS is not set.
    let (page, _) = run.page();
    let page_origin = page.split("/?").next().unwrap();
    assert!(
        run.banner.contains(&format!(
            "ALLOWED_ORIGINS={page_origin},http://localhost:5173 (the local run's default)"
        )),
        "{}",
        run.banner
    );
    for origin in [page_origin, "http://localhost:5173"] {
        let preflight = run.call(
            "OPTIONS",
            &job_path("job-queued"),
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "if-none-match"),
            ],
        );
        assert_eq!(preflight.status, 204);
        assert_eq!(preflight.header("access-control-allow-origin"), Some(origin));
        assert!(preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET")));
        assert!(preflight
            .header("access-control-allow-headers")
            .is_some_and(|h| h.contains("if-none-match")));
    }

    let delete = run.call("DELETE", &job_path("job-queued"), &[]);
    assert_eq!(delete.status, 405);
    assert_eq!(delete.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(run.get("/somewhere/else").status, 404);
}

#[test]
fn configuration_comes_from_the_environment_as_in_lambda() {
    let run = LocalRun::start(&[
        ("ALLOWED_ORIGINS", "https://app.example.com"),
        ("ALLOWED_DATASTORE_IDS", "another-datastore"),
    ]);
    assert!(run
        .banner
        .contains("ALLOWED_ORIGINS=https://app.example.com ALLOWED_DATASTORE_IDS=another-datastore"));
    // The demo datastore is now outside the allow-list.
    assert_eq!(run.get(&job_path("job-queued")).status, 404);
    let preflight = run.call(
        "OPTIONS",
        &job_path("job-queued"),
        &[
            ("Origin", "http://localhost:5173"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(preflight.header("access-control-allow-origin"), None);
}

#[test]
fn the_web_page_is_served_on_another_origin_and_watches_the_moving_job() {
    let run = LocalRun::start(&[]);
    let (url, page_addr) = run.page();
    assert_ne!(page_addr.port(), run.addr.port());
    let query = format!(
        "/?api=http://{}&datastore={}&job={}",
        run.addr,
        demo::DATASTORE,
        demo::MOVING_JOB
    );
    assert!(url.ends_with(&query), "{url}");
    let index = call(page_addr, "GET", &query, &[]);
    assert_eq!(index.status, 200);
    assert_eq!(index.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(index.body.contains("<script type=\"module\" src=\"/page.js\">"));
    for module in ["/page.js", "/poll.js"] {
        let js = call(page_addr, "GET", module, &[]);
        assert_eq!(js.status, 200, "{module}");
        assert_eq!(js.header("content-type"), Some("text/javascript; charset=utf-8"));
    }
    assert!(call(page_addr, "GET", "/poll.js", &[])
        .body
        .contains("export async function watchExportJob"));
    assert_eq!(call(page_addr, "GET", "/Cargo.toml", &[]).status, 404);
    assert!(run
        .banner
        .contains("job-moving: SUBMITTED → IN_PROGRESS (3 s) → COMPLETED (8 s)"));

    // The page's job moves from its first request, and each status keeps its ETag.
    let first = run.get(&job_path(demo::MOVING_JOB));
    assert_eq!(first.json()["status"], "SUBMITTED");
    assert_eq!(first.header("retry-after"), Some("2"));
    let etag = first.header("etag").unwrap().to_owned();
    let again = run.call("GET", &job_path(demo::MOVING_JOB), &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    std::thread::sleep(demo::MOVING_STEPS[1].0);
    let moved = run.call("GET", &job_path(demo::MOVING_JOB), &[("If-None-Match", &etag)]);
    assert_eq!(moved.status, 200);
    assert_eq!(moved.json()["status"], "IN_PROGRESS");
    assert_eq!(moved.json()["submittedAt"], first.json()["submittedAt"]);
}

#[test]
fn a_page_origin_outside_allowed_origins_is_named_in_the_banner() {
    let run = LocalRun::start(&[("ALLOWED_ORIGINS", "https://app.example.com")]);
    assert!(
        run.banner
            .contains("(its origin is not in ALLOWED_ORIGINS: the browser will refuse"),
        "{}",
        run.banner
    );
}

#[test]
fn a_taken_default_standin_port_moves_the_standin_and_says_so() {
    // Taken either by this listener or by whatever already holds it.
    let _holder = std::net::TcpListener::bind("127.0.0.1:9911");
    let run = LocalRun::start_with(&["--port", "0", "--page-port", "0"], &[]);
    assert!(run.banner.contains("(port 9911 is taken"), "{}", run.banner);
    assert!(
        !run.banner.contains("on http://127.0.0.1:9911 "),
        "{}",
        run.banner
    );
    assert_eq!(run.get(&job_path("job-queued")).status, 200);
}

#[test]
fn bad_flags_get_the_usage_and_exit_code_2() {
    for args in [
        &["--bogus"][..],
        &["--port"],
        &["--port", "http"],
        &["--aws", "--healthlake-port", "1"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains("Usage: cargo run -p local --"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--healthlake-port PORT"));
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let out = Command::new(BIN)
        .args(["--port", "0", "--healthlake-port", "0"])
        .env("UPSTREAM_TIMEOUT_MS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration: UPSTREAM_TIMEOUT_MS"));
}
