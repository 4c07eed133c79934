//! The HealthLake client for the local run, always built by the function's own
//! `upstream::sdk_config_loader`: against the loopback stand-in with the demo jobs, or (with
//! `--aws`) against the real HealthLake through the default credential and region chain.

use crate::args::PortChoice;
use aws_sdk_healthlake::config::{Credentials, Region};
use aws_sdk_healthlake::Client;
use export_job_status::aws::sdk_config_loader;
use export_job_status::config::Config;
use loopback::healthlake::{demo, StandIn};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// The stand-in ignores the region; the SDK needs one to sign.
const REGION: &str = "us-east-1";

/// Starts the stand-in on loopback and loads the demo jobs into it.
pub fn start_standin(port: PortChoice) -> Result<StandIn, String> {
    let addr = |p| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
    let port = match port {
        PortChoice::Exactly(p) => p,
        // A probe rather than a failure: a second local run (or anything else on the port)
        // should not stop this one.
        PortChoice::Preferred(p) if TcpListener::bind(addr(p)).is_ok() => p,
        PortChoice::Preferred(_) => 0,
    };
    if port != 0 {
        TcpListener::bind(addr(port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for the HealthLake stand-in: {e}"))?;
    }
    let standin = StandIn::start_on(addr(port));
    demo::load(&standin);
    Ok(standin)
}

/// A client that reaches only `standin`. The stand-in wants a SigV4-signed request, as
/// HealthLake does, and any static credentials sign one.
pub async fn standin_client(config: &Config, standin: &StandIn) -> Client {
    // An endpoint set in code makes the SDK ignore AWS_ENDPOINT_URL_* from the environment, so
    // demo traffic stays on loopback whatever the shell has set.
    let sdk = sdk_config_loader(config)
        .endpoint_url(standin.url())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("local", "local", None, None, "local-run"))
        .load()
        .await;
    Client::new(&sdk)
}

/// A client for the real HealthLake, configured exactly as in Lambda. Fails early without a
/// region, which the SDK would otherwise report only at the first request.
pub async fn aws_client(config: &Config) -> Result<(Client, String), String> {
    let sdk = sdk_config_loader(config).load().await;
    let region = sdk
        .region()
        .map(ToString::to_string)
        .ok_or("--aws needs a region: set AWS_REGION or a profile with one (AWS_PROFILE)")?;
    Ok((Client::new(&sdk), region))
}
