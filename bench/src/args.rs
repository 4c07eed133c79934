//! The command line: the flags, their defaults, and the builds they name.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: bench --function PATH --floor PATH [--naive PATH] [--python PATH] [--variant NAME=PATH]...
             [--throttle | --memory MB] [--cold N] [--warm N] [--smoke] [--ca-only] [--out DIR]
             [--status-table miss|hit] [--breakdown]

  --function PATH      the export-job-status release binary
  --floor PATH         the hello-world lambda_http binary built with the same profile
  --naive PATH         the naive SDK peer (bench/naive: lambda_http + aws-sdk-healthlake, defaults)
  --python PATH        a python with boto3 and awslambdaric (bench/python/requirements.txt);
                       runs bench/python/app.py under awslambdaric
  --variant NAME=PATH  another build of the function, measured side by side (levers)
  --throttle           run every process under Lambda's CPU share at 128 MB (--memory 128)
  --memory MB          run every process under Lambda's CPU share at MB of memory: a cgroup CPU
                       quota of MB/1769 of a vCPU per 20 ms period, a fresh cgroup per start;
                       says so and runs unthrottled if no cgroup can be made
  --init-unthrottled   with --throttle/--memory: no quota until the first poll (a model of a
                       start-up phase that gets more CPU than the invocations)
  --cold N             cold starts per build (default 15; 11 with --throttle or --memory)
  --warm N             warm invocations measured per build (default 500, after 50 unmeasured;
                       0: cold starts only)
  --smoke              1 cold start and 20 warm invocations: checks that everything runs
  --ca-only            trust only this run's CA, not the system bundle plus the CA
  --function-ca-only   the same for --function alone: how a build with compiled-in roots is
                       measured (in Lambda it reads no trust file; here it reads a one-certificate
                       one), while variants and peers read the system bundle plus the CA
  --breakdown          also run the function without the DNS lookup (HealthLake by address) and
                       without the lookup and TLS (plain HTTP): what those cost it
  --status-table MODE  the function (and variants) as the template deploys them: with the shared
                       status table (STATUS_TABLE), on moto's DynamoDB server behind the same TLS
                       front (run scripts/moto.sh first). `miss`: the job's item is deleted before
                       every start, so each first request takes the whole path (table, lease,
                       budget, HealthLake, write-back); `hit`: the item stays fresh (the first
                       start writes it, REFRESH_INTERVAL_MS is 300000), so the first request is
                       answered from the table, as in a fleet that is already running
  --out DIR            report.md, report.json, logs and zips (default target/bench)
";

pub struct Args {
    pub builds: Vec<Build>,
    /// The Lambda memory size whose CPU share the processes run at; None: unthrottled.
    pub memory: Option<u32>,
    pub init_unthrottled: bool,
    pub cold: usize,
    pub warm: usize,
    pub ca_only: bool,
    pub function_ca_only: bool,
    pub status_table: Option<TableMode>,
    pub out: PathBuf,
}

#[derive(Clone, PartialEq)]
pub enum Role {
    Function,
    Floor,
    Naive,
    Python,
    Variant,
}

#[derive(Clone)]
pub struct Build {
    pub name: String,
    pub role: Role,
    /// The binary, or the python interpreter.
    pub path: PathBuf,
    pub endpoint: Endpoint,
}

/// How a build reaches HealthLake. Only `--breakdown` uses anything but a name.
#[derive(Clone, Copy, PartialEq)]
pub enum Endpoint {
    /// `https://localhost:PORT`: a DNS lookup, then TLS, as in Lambda.
    Name,
    /// `https://127.0.0.1:PORT`: TLS without the lookup.
    Address,
    /// `http://` to the stand-in itself: neither.
    Plain,
}

pub fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut function, mut floor, mut naive, mut python) = (None, None, None, None);
    let mut variants = Vec::new();
    let (mut cold, mut warm, mut ca_only, mut memory) = (None, 500, false, None);
    let (mut init_unthrottled, mut function_ca_only, mut status_table) = (false, false, None);
    let mut breakdown = false;
    let mut out = PathBuf::from("target/bench");
    let num = |v: Option<String>| v.and_then(|v| v.parse::<usize>().ok()).ok_or("expected a number");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--function" => function = args.next().map(PathBuf::from),
            "--floor" => floor = args.next().map(PathBuf::from),
            "--naive" => naive = args.next().map(PathBuf::from),
            "--python" => python = args.next().map(PathBuf::from),
            "--variant" => {
                let v = args.next().ok_or("--variant NAME=PATH")?;
                let (name, path) = v.split_once('=').ok_or("--variant NAME=PATH")?;
                variants.push((name.to_owned(), PathBuf::from(path)));
            }
            "--throttle" => memory = Some(128),
            "--init-unthrottled" => init_unthrottled = true,
            "--memory" => memory = Some(num(args.next())?.clamp(1, 10_240) as u32),
            "--cold" => cold = Some(num(args.next())?.max(1)),
            "--warm" => warm = num(args.next())?,
            "--smoke" => (cold, warm) = (Some(1), 20),
            "--ca-only" => ca_only = true,
            "--function-ca-only" => function_ca_only = true,
            "--status-table" => {
                status_table = Some(match args.next().as_deref() {
                    Some("miss") => TableMode::Miss,
                    Some("hit") => TableMode::Hit,
                    _ => return Err("--status-table miss|hit".into()),
                })
            }
            "--breakdown" => breakdown = true,
            "--out" => out = args.next().map(PathBuf::from).ok_or("--out DIR")?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let build = |name: &str, role: Role, path: PathBuf, endpoint: Endpoint| Build {
        name: name.into(),
        role,
        path,
        endpoint,
    };
    let function = function.ok_or("--function is required")?;
    let mut builds = vec![
        build(
            "floor (hello-world lambda_http)",
            Role::Floor,
            floor.ok_or("--floor is required")?,
            Endpoint::Name,
        ),
        build(
            "export-job-status",
            Role::Function,
            function.clone(),
            Endpoint::Name,
        ),
    ];
    if breakdown {
        builds.extend([
            build(
                "export-job-status, no DNS lookup",
                Role::Variant,
                function.clone(),
                Endpoint::Address,
            ),
            build(
                "export-job-status, no DNS lookup, no TLS",
                Role::Variant,
                function,
                Endpoint::Plain,
            ),
        ]);
    }
    builds.extend(
        variants
            .into_iter()
            .map(|(name, path)| build(&name, Role::Variant, path, Endpoint::Name)),
    );
    if let Some(path) = naive {
        builds.push(build(
            "naive SDK function (defaults)",
            Role::Naive,
            path,
            Endpoint::Name,
        ));
    }
    if let Some(path) = python {
        builds.push(build(
            "Python peer (boto3, awslambdaric)",
            Role::Python,
            path,
            Endpoint::Name,
        ));
    }
    for b in &mut builds {
        // Absolute, but not through symlinks: a venv's python must stay the venv's.
        b.path = std::path::absolute(&b.path).map_err(|e| format!("{}: {e}", b.path.display()))?;
    }
    Ok(Args {
        builds,
        cold: cold.unwrap_or(if memory.is_some() { 11 } else { 15 }),
        memory,
        init_unthrottled,
        warm,
        ca_only,
        function_ca_only,
        status_table,
        out,
    })
}

#[derive(Clone, Copy, PartialEq)]
pub enum TableMode {
    Miss,
    Hit,
}
