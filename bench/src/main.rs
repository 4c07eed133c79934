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

use args::USAGE;

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
    let (world, roots) = runs::World::start(&args, &out);
    runs::verification_check(&args.builds, &world);
    let results = runs::collect(&args, &world, &out);

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
