//! The cold-start and warm-cost benchmark. Each build is started exactly as Lambda starts a
//! custom runtime (a fresh process, a cleared environment with Lambda's variables, a loopback
//! Runtime API) and calls HealthLake over HTTPS on loopback: the loopback stand-in behind a TLS
//! front whose CA this run generates, trusted only through `SSL_CERT_FILE` (Rust) or
//! `AWS_CA_BUNDLE` (Python). Builds take turns, cold start by cold start, so that drift on a
//! busy machine spreads over all of them; the table compares them within this one run.
//!
//! `bench/run` builds everything and runs this; see `--help` and the README's Performance section.

mod args;
mod measure;
mod quota;
mod report;
mod runs;
mod tls;

use args::{Role, TableMode, USAGE};
use loopback::healthlake::StandIn;
use loopback::moto::Moto;
use quota::Quota;
use runs::{
    cold_start, slug, stop, verification_check, warm_phase, Results, Running, World, DS, JOB, SYSTEM_BUNDLES,
    TABLE,
};
use std::path::Path;

fn main() {
    let args = match args::parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}\n");
            }
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(args.out.join("logs")).expect("create the output folder");
    let out = std::fs::canonicalize(&args.out).expect("output folder");
    let quota = args.memory.and_then(|mb| match Quota::for_memory(mb, args.init_unthrottled) {
        Ok(q) => {
            println!("CPU quota: {}", q.describe());
            Some(q)
        }
        Err(why) => {
            eprintln!(
                "\n*** cannot make a cgroup with a CPU quota ({why}): falling back to the UNTHROTTLED run ***\n"
            );
            None
        }
    });

    let healthlake = StandIn::start();
    healthlake.put_job(DS, JOB, "IN_PROGRESS");
    let pki = tls::Pki::generate();
    let system = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists());
    let bundle = out.join("ca-bundle.pem");
    let roots = pki.write_bundle(if args.ca_only { None } else { system }, &bundle);
    let front = tls::HttpsFront::start(&pki, healthlake.addr());
    let function_bundle = if args.function_ca_only {
        let only = out.join("ca-only.pem");
        pki.write_bundle(None, &only);
        only
    } else {
        bundle.clone()
    };
    let table = args.status_table.map(|mode| {
        let moto = Moto::start();
        moto.create_table(TABLE);
        let front = tls::HttpsFront::start(&pki, moto.addr());
        println!(
            "status table {TABLE} on moto's DynamoDB at https://localhost:{}; the first request {}",
            front.port(),
            match mode {
                TableMode::Miss => "finds no item: table, lease, budget, HealthLake, write-back",
                TableMode::Hit => "finds a fresh item (after the first start): the table alone",
            }
        );
        (moto, front, mode)
    });
    let world = World {
        table,
        healthlake,
        front,
        bundle,
        function_bundle,
        python_app: Path::new(env!("CARGO_MANIFEST_DIR")).join("python"),
        logs: out.join("logs"),
        quota,
    };
    println!(
        "HealthLake over HTTPS at https://localhost:{}; trust bundle {} ({roots} certificates)",
        world.front.port(),
        world.bundle.display()
    );

    verification_check(&args.builds, &world);

    let mut results: Vec<Results> = args.builds.iter().map(|_| Results::default()).collect();
    for (build, res) in args.builds.iter().zip(&mut results) {
        if build.role != Role::Python {
            let scratch = out.join("zip").join(slug(&build.name));
            std::fs::create_dir_all(&scratch).expect("scratch folder");
            let (stripped, zip) = measure::sizes(&build.path, &scratch);
            (res.stripped, res.zip) = (Some(stripped), Some(zip));
        }
    }
    for round in 0..args.cold {
        let keep = round + 1 == args.cold && args.warm > 0;
        let n = args.builds.len();
        let mut running: Vec<Option<Running>> = (0..n).map(|_| None).collect();
        // Each round starts with the next build, so that no build always goes first.
        for i in (0..n).map(|k| (k + round) % n) {
            let (cold, mut process) = cold_start(&args.builds[i], &world);
            results[i].cold.push(cold);
            if keep {
                running[i] = Some(process);
            } else {
                stop(&mut process.child);
            }
        }
        let running: Vec<Running> = running.into_iter().flatten().collect();
        eprint!("\rcold starts: {}/{}", round + 1, args.cold);
        if keep {
            eprint!("; warm invocations...");
            let warm = warm_phase(&args.builds, &world, running, args.warm);
            for (res, w) in results.iter_mut().zip(warm) {
                res.warm = w;
            }
        }
    }
    eprintln!();

    let report = report::report(&args, &results, roots, world.quota.as_ref());
    print!("{report}");
    std::fs::write(out.join("report.md"), &report).expect("write report.md");
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report::to_json(&args, &results, world.quota.as_ref())).expect("json"),
    )
    .expect("write report.json");
    println!("\nwritten: {}", out.join("report.md").display());
}
