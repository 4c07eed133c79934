//! The command line: four flags, parsed by hand.

pub const DEFAULT_PORT: u16 = 3000;
/// A fixed port, so that `events/env.json` (for `sam local invoke`) and `cargo lambda watch` can
/// point the function at the stand-in that a running local server has started.
pub const DEFAULT_HEALTHLAKE_PORT: u16 = 9911;
/// Vite's, the port a local web app most often has, and so the origin a developer expects.
pub const DEFAULT_PAGE_PORT: u16 = 5173;

pub const USAGE: &str = "\
Runs the export-job-status function as a local HTTP server on 127.0.0.1.

Usage: cargo run -p local -- [--port PORT] [--page-port PORT] [--healthlake-port PORT | --aws]

Options:
  --port PORT             where the function listens (default 3000; 0 picks a free port)
  --page-port PORT        where the reference web page (web/) is served, as http://localhost:PORT,
                          another origin than the function's (default 5173, or a free port if
                          5173 is taken; 0 picks a free port)
  --healthlake-port PORT  where the loopback HealthLake stand-in with the demo jobs listens
                          (default 9911, or a free port if 9911 is taken; 0 picks a free port)
  --aws                   no stand-in: call the real HealthLake with the default AWS credential
                          and region chain (AWS_PROFILE, AWS_REGION, ...)
  -h, --help              print this help

The function reads ALLOWED_ORIGINS, ALLOWED_DATASTORE_IDS, UPSTREAM_TIMEOUT_MS and
UPSTREAM_MAX_ATTEMPTS from the environment, as in Lambda.
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub port: u16,
    pub page: PortChoice,
    /// `None` with `--aws`: no stand-in at all.
    pub healthlake: Option<PortChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The default port, or any free one if it is taken.
    Preferred(u16),
    /// Asked for on the command line: this one or fail.
    Exactly(u16),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Args),
    Help,
}

/// Parses the arguments after the program name. The error is one line for the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut port = DEFAULT_PORT;
    let mut healthlake_port = None;
    let mut page = PortChoice::Preferred(DEFAULT_PAGE_PORT);
    let mut aws = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--flag=value` and `--flag value` alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a port number"))
                .and_then(|v| {
                    v.parse::<u16>()
                        .map_err(|_| format!("{name}: {v:?} is not a port number (0 to 65535)"))
                })
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--port" => port = value("--port")?,
            "--page-port" => page = PortChoice::Exactly(value("--page-port")?),
            "--healthlake-port" => healthlake_port = Some(value("--healthlake-port")?),
            "--aws" if inline.is_none() => aws = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    let healthlake = match (aws, healthlake_port) {
        (true, Some(_)) => {
            return Err("--aws calls the real HealthLake: it takes no --healthlake-port".to_owned())
        }
        (true, None) => None,
        (false, Some(p)) => Some(PortChoice::Exactly(p)),
        (false, None) => Some(PortChoice::Preferred(DEFAULT_HEALTHLAKE_PORT)),
    };
    Ok(Command::Run(Args {
        port,
        page,
        healthlake,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(
            parse_strs(&[]),
            Ok(Command::Run(Args {
                port: 3000,
                page: PortChoice::Preferred(5173),
                healthlake: Some(PortChoice::Preferred(9911))
            }))
        );
        assert_eq!(
            parse_strs(&["--port", "8080", "--healthlake-port=0", "--page-port", "0"]),
            Ok(Command::Run(Args {
                port: 8080,
                page: PortChoice::Exactly(0),
                healthlake: Some(PortChoice::Exactly(0))
            }))
        );
        assert_eq!(
            parse_strs(&["--aws", "--port=0", "--page-port=8000"]),
            Ok(Command::Run(Args {
                port: 0,
                page: PortChoice::Exactly(8000),
                healthlake: None
            }))
        );
        assert_eq!(parse_strs(&["--port", "1", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn events_env_file_points_at_the_default_standin_port() {
        let env = include_str!("../../events/env.json");
        assert!(
            env.contains(&format!(
                "\"AWS_ENDPOINT_URL_HEALTHLAKE\": \"http://host.docker.internal:{DEFAULT_HEALTHLAKE_PORT}\""
            )),
            "{env}"
        );
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        for (args, says) in [
            (&["--prot", "1"][..], "unknown argument \"--prot\""),
            (&["--port"], "--port needs a port number"),
            (&["--port", "70000"], "\"70000\" is not a port number"),
            (&["--page-port"], "--page-port needs a port number"),
            (&["--port=abc"], "\"abc\" is not a port number"),
            (&["--aws=yes"], "unknown argument \"--aws=yes\""),
            (&["--aws", "--healthlake-port", "1"], "takes no --healthlake-port"),
            (&["serve"], "unknown argument \"serve\""),
        ] {
            let err = parse_strs(args).unwrap_err();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
