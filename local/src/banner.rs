//! What the local run prints once it listens: where, against what, the web page's address, with
//! which configuration, and the curl lines to try.

use aws_sdk_healthlake::types::JobStatus;
use export_job_status::config::{AllowedOrigins, AuthMode, Config};
use export_job_status::job::is_terminal;
use loopback::healthlake::demo::{self, Behaviour};
use std::fmt::Write;
use std::net::SocketAddr;

pub enum Upstream {
    StandIn {
        url: String,
        /// The port asked for, when it was taken and the stand-in is elsewhere.
        wanted_port: Option<u16>,
    },
    Aws {
        region: String,
    },
}

pub fn render(
    addr: SocketAddr,
    page_origin: &str,
    upstream: &Upstream,
    config: &Config,
    origins_defaulted: bool,
) -> String {
    let base = format!("http://{addr}");
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "export-job-status is listening on {base}");
    let _ = match upstream {
        Upstream::StandIn { url, wanted_port } => {
            let _ = writeln!(
                out,
                "HealthLake: loopback stand-in with demo jobs on {url} (no AWS account is used)"
            );
            match wanted_port {
                Some(port) => writeln!(
                    out,
                    "  (port {port} is taken: events/env.json and `cargo lambda watch` as in the README \
                     expect the stand-in there)"
                ),
                None => Ok(()),
            }
        }
        Upstream::Aws { region } => writeln!(
            out,
            "HealthLake: the real service in {region}, with your default AWS credentials"
        ),
    };
    let _ = match upstream {
        Upstream::StandIn { .. } => writeln!(
            out,
            "Web page: {page_origin}/?api={base}&datastore={}&job={}\n  \
             (watches {1}: {} from its first request)",
            demo::DATASTORE,
            demo::MOVING_JOB,
            moving_run()
        ),
        Upstream::Aws { .. } => writeln!(
            out,
            "Web page: {page_origin}/?api={base}\n  (give it your datastore and job)"
        ),
    };
    if !config.allowed_origins.allows(page_origin) {
        let _ = writeln!(
            out,
            "  (its origin is not in ALLOWED_ORIGINS: the browser will refuse the function's \
             answers; add {page_origin} to see them)"
        );
    }
    let _ = writeln!(out, "Configuration: {}\n", describe(config, origins_defaulted));

    let tries = match upstream {
        Upstream::StandIn { .. } => demo_tries(&base, config),
        Upstream::Aws { .. } => vec![(
            format!("curl -i {base}/datastores/<datastoreId>/export-jobs/<jobId>"),
            "your own job".to_owned(),
        )],
    };
    let _ = writeln!(out, "Try:");
    // Aligned comments, except after the odd long line that would push them all far right.
    let width = tries
        .iter()
        .map(|(cmd, _)| cmd.len())
        .filter(|&len| len <= 100)
        .max()
        .unwrap_or(0);
    for (cmd, what) in tries {
        let _ = writeln!(out, "  {cmd:width$}  # {what}");
    }
    let _ = writeln!(out, "\nStop with Ctrl-C.");
    out
}

/// One curl line per demo job, then the other situations of the contract.
fn demo_tries(base: &str, config: &Config) -> Vec<(String, String)> {
    let job_url = |job: &str| format!("{base}/datastores/{}/export-jobs/{job}", demo::DATASTORE);
    let mut tries: Vec<(String, String)> = demo::JOBS
        .iter()
        .map(|j| {
            let what = match j.behaviour {
                Behaviour::Status(s) if is_terminal(&JobStatus::from(s)) => format!("200 {s}, terminal"),
                Behaviour::Status(s) => format!("200 {s}, still running"),
                Behaviour::Moving(_) => format!("200, {} from its first request", moving_run()),
                Behaviour::Missing => "404, no such job".to_owned(),
                Behaviour::Throttled => format!("429 after {} throttled attempts", config.max_attempts),
                Behaviour::Slow => format!(
                    "504 after the {} ms upstream budget",
                    config.upstream_timeout.as_millis()
                ),
            };
            (format!("curl -i {}", job_url(j.id)), what)
        })
        .collect();
    let origin = match &config.allowed_origins {
        AllowedOrigins::List(list) => list.first().cloned(),
        _ => None,
    }
    .unwrap_or_else(|| "https://app.example.com".to_owned());
    tries.extend([
        (
            format!("curl -i {}", job_url("bad%09id")),
            "400, a tab is not allowed in an id".to_owned(),
        ),
        (
            format!("curl -I {}", job_url("job-completed")),
            "HEAD: the headers of a GET".to_owned(),
        ),
        (
            format!(
                "curl -i -X OPTIONS -H 'Origin: {origin}' -H 'Access-Control-Request-Method: GET' {}",
                job_url("job-queued")
            ),
            "204, CORS preflight".to_owned(),
        ),
        (
            format!("curl -i -X DELETE {}", job_url("job-queued")),
            "405, with Allow".to_owned(),
        ),
    ]);
    tries
}

/// "SUBMITTED → IN_PROGRESS (3 s) → COMPLETED (8 s)": the moving job's run.
fn moving_run() -> String {
    demo::MOVING_STEPS
        .iter()
        .map(|(after, status)| match after.as_secs() {
            0 => (*status).to_owned(),
            secs => format!("{status} ({secs} s)"),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn describe(config: &Config, origins_defaulted: bool) -> String {
    let origins = match &config.allowed_origins {
        AllowedOrigins::None => "(none: CORS off)".to_owned(),
        AllowedOrigins::Any => "*".to_owned(),
        AllowedOrigins::List(list) => list.join(","),
    };
    let default_note = if origins_defaulted {
        " (the local run's default)"
    } else {
        ""
    };
    let datastores = match &config.allowed_datastores {
        None => "(any)".to_owned(),
        Some(set) => {
            let mut ids: Vec<_> = set.iter().map(|d| d.as_str()).collect();
            ids.sort_unstable();
            ids.join(",")
        }
    };
    let auth = match config.access.auth_mode {
        AuthMode::None => "NONE (every caller: nothing in front of the local run authenticates)",
        AuthMode::AwsIam => "AWS_IAM (only events that name an IAM principal)",
        AuthMode::ApiKey => "API_KEY (only partner keys)",
    };
    format!(
        "ALLOWED_ORIGINS={origins}{default_note} ALLOWED_DATASTORE_IDS={datastores} \
         UPSTREAM_TIMEOUT_MS={} UPSTREAM_MAX_ATTEMPTS={} AUTH_MODE={auth}",
        config.upstream_timeout.as_millis(),
        config.max_attempts
    )
}
