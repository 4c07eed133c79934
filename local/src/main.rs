//! The local run: the function as an HTTP server on 127.0.0.1, calling a loopback HealthLake
//! stand-in preloaded with demo jobs, or (with `--aws`) the real HealthLake. Requests go through
//! the same handler, SDK client, validation and error mapping as in Lambda. The reference web page
//! is served on another origin, so that a browser meets the function's CORS answers.

mod args;
mod banner;
mod page;
mod server;
mod upstream;

use args::{Args, Command, PortChoice, DEFAULT_PAGE_PORT, USAGE};
use banner::Upstream;
use export_job_status::config::Config;
use export_job_status::handler::App;
use export_job_status::telemetry::logging;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

/// With the stand-in and no ALLOWED_ORIGINS set, CORS is on for the page and for a typical local
/// web app (Vite's dev server, where the page is unless that port is taken).
fn demo_allowed_origins(page_origin: &str) -> String {
    let vite = format!("http://localhost:{DEFAULT_PAGE_PORT}");
    if page_origin == vite {
        vite
    } else {
        format!("{page_origin},{vite}")
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    logging::init();
    let demo = args.healthlake.is_some();
    let page_listener = bind_page(args.page).await?;
    let page_port = page_listener
        .local_addr()
        .map_err(|e| format!("no local address for the page: {e}"))?
        .port();
    // The page's origin names the host as a browser does: localhost, not 127.0.0.1.
    let page_origin = format!("http://localhost:{page_port}");
    let origins_defaulted = demo && std::env::var("ALLOWED_ORIGINS").map_or(true, |v| v.trim().is_empty());
    let config = Config::from_lookup(|name| {
        let value = std::env::var(name).ok();
        match name {
            "ALLOWED_ORIGINS" if origins_defaulted => Some(demo_allowed_origins(&page_origin)),
            // Nothing in front of the local server authenticates a caller, and it listens on
            // loopback only: it serves every request, as AUTH_MODE=NONE says.
            "AUTH_MODE" if value.as_deref().is_none_or(|v| v.trim().is_empty()) => Some("NONE".to_owned()),
            _ => value,
        }
    })
    .map_err(|e| e.to_string())?;

    // The stand-in lives as long as `_standin`: to the end of the process.
    let (client, upstream, _standin) = match args.healthlake {
        Some(port) => {
            let standin = upstream::start_standin(port)?;
            let client = upstream::standin_client(&config, &standin).await;
            let wanted_port = match port {
                PortChoice::Preferred(p) if p != standin.addr().port() => Some(p),
                _ => None,
            };
            let url = standin.url();
            (client, Upstream::StandIn { url, wanted_port }, Some(standin))
        }
        None => {
            let (client, region) = upstream::aws_client(&config).await?;
            (client, Upstream::Aws { region }, None)
        }
    };

    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    print!(
        "{}",
        banner::render(addr, &page_origin, &upstream, &config, origins_defaulted)
    );
    tokio::spawn(page::serve(page_listener));
    server::serve(listener, Arc::new(App::new(client, config))).await;
    Ok(())
}

/// The page's listener on 127.0.0.1, where `localhost` reaches it.
async fn bind_page(port: PortChoice) -> Result<tokio::net::TcpListener, String> {
    let bind = |p| tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, p)));
    match port {
        PortChoice::Exactly(p) => bind(p).await,
        // Another local run, or the developer's own web app, may hold the default port.
        PortChoice::Preferred(p) => match bind(p).await {
            Ok(listener) => Ok(listener),
            Err(_) => bind(0).await,
        },
    }
    .map_err(|e| format!("cannot listen on 127.0.0.1 for the web page: {e}"))
}
