//! The report: statistics over the samples, the tables, the targets' verdicts and report.json.

use crate::args::{Args, Role};
use crate::quota::{self, Quota};
use crate::runs::{ColdStart, Results};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::time::Duration;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Nearest-rank percentile.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The medians (over cold starts) and warm figures of one build.
struct Summary {
    init: Duration,
    init_cpu: Duration,
    first_cpu: Duration,
    first_cpu_min: Duration,
    first_cpu_max: Duration,
    first_call: Duration,
    /// Start-up plus first answer, per start: the median, the fastest and the slowest.
    total: Duration,
    total_min: Duration,
    total_max: Duration,
    throttled: u64,
    p50: Duration,
    p99: Duration,
    cpu_warm: Duration,
    rss: u64,
}

fn total(c: &ColdStart) -> Duration {
    c.init + c.first_call
}

fn summarize(r: &Results) -> Summary {
    let pick = |f: fn(&ColdStart) -> Duration| r.cold.iter().map(f).collect::<Vec<_>>();
    let first = pick(|c| c.first_cpu);
    let totals = pick(total);
    let mut throttled: Vec<u64> = r.cold.iter().map(|c| c.throttled).collect();
    throttled.sort_unstable();
    Summary {
        init: median(pick(|c| c.init)),
        init_cpu: median(pick(|c| c.init_cpu)),
        first_cpu: median(first.clone()),
        first_cpu_min: *first.iter().min().expect("a cold start"),
        first_cpu_max: *first.iter().max().expect("a cold start"),
        first_call: median(pick(|c| c.first_call)),
        total: median(totals.clone()),
        total_min: *totals.iter().min().expect("a cold start"),
        total_max: *totals.iter().max().expect("a cold start"),
        throttled: throttled[throttled.len() / 2],
        p50: percentile(&r.warm.latencies, 50.0),
        p99: percentile(&r.warm.latencies, 99.0),
        cpu_warm: r.warm.cpu_per_request,
        rss: r.warm.peak_rss,
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn cpu_line(args: &Args, quota: Option<&Quota>) -> String {
    match (args.memory, quota) {
        (_, Some(q)) => format!("CPU: Lambda's share at {}", q.describe()),
        (Some(mb), None) => {
            format!("CPU: **UNTHROTTLED** (asked for the share at {mb} MB, but no cgroup could be made)")
        }
        (None, None) => "CPU: unthrottled".to_owned(),
    }
}

pub fn report(args: &Args, results: &[Results], roots: usize, quota: Option<&Quota>) -> String {
    let sums: Vec<Summary> = results.iter().map(summarize).collect();
    let find = |role: Role| args.builds.iter().position(|b| b.role == role);
    let floor = find(Role::Floor).map(|i| &sums[i]);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{} cold starts per build (medians), {} warm invocations; HTTPS to HealthLake on loopback, {} trusted roots{}\n{}\n",
        args.cold,
        args.warm,
        roots,
        if args.function_ca_only {
            " (export-job-status: this run's CA alone, as for compiled-in roots)"
        } else {
            ""
        },
        cpu_line(args, quota)
    );
    s.push_str("Cold start, wall time (start-up: exec to the first poll for an event; 1st answer: that event to its answer):\n\n");
    s.push_str("| build | start-up ms | 1st answer ms | start-up + 1st answer ms | (min–max) | × floor | CPU to 1st answer ms | throttled periods |\n");
    s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|\n");
    for (b, m) in args.builds.iter().zip(&sums) {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | **{:.1}** | {:.1}–{:.1} | {} | {:.2} | {} |",
            b.name,
            ms(m.init),
            ms(m.first_call),
            ms(m.total),
            ms(m.total_min),
            ms(m.total_max),
            floor.map_or("–".to_owned(), |f| format!("{:.2}", ratio(m.total, f.total))),
            ms(m.first_cpu),
            m.throttled,
        );
    }
    s.push_str("\nWarm, memory and size:\n\n");
    s.push_str("| build | warm p50 ms | warm p99 ms | CPU per warm request µs | peak RSS MiB | stripped binary MB | zip MB |\n");
    s.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
    for ((b, r), m) in args.builds.iter().zip(results).zip(&sums) {
        let size = |v: Option<u64>| v.map_or("–".to_owned(), |b| format!("{:.2}", mb(b)));
        let _ = writeln!(
            s,
            "| {} | {:.3} | {:.3} | {:.0} | {:.1} | {} | {} |",
            b.name,
            ms(m.p50),
            ms(m.p99),
            m.cpu_warm.as_secs_f64() * 1e6,
            mib(m.rss),
            size(r.stripped),
            size(r.zip),
        );
    }
    s.push_str("\nCPU to the first answer (ms), spread and split:\n\n");
    s.push_str("| build | CPU min | CPU median | CPU max | of which start-up (median) | schedstat check (median) | page faults (median) |\n|---|--:|--:|--:|--:|--:|--:|\n");
    for ((b, r), m) in args.builds.iter().zip(results).zip(&sums) {
        let sched = median(r.cold.iter().map(|c| c.first_cpu_schedstat).collect());
        let mut faults: Vec<u64> = r.cold.iter().map(|c| c.faults).collect();
        faults.sort_unstable();
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            b.name,
            ms(m.first_cpu_min),
            ms(m.first_cpu),
            ms(m.first_cpu_max),
            ms(m.init_cpu),
            ms(sched),
            faults[faults.len() / 2]
        );
    }
    s.push_str(&targets(args, results, &sums, quota));
    s
}

/// The targets, each against this run's peers.
fn targets(args: &Args, results: &[Results], sums: &[Summary], quota: Option<&Quota>) -> String {
    let find = |role: Role| args.builds.iter().position(|b| b.role == role);
    let (Some(f), Some(fl)) = (find(Role::Function), find(Role::Floor)) else {
        return String::new();
    };
    let (fun, floor, res) = (&sums[f], &sums[fl], &results[f]);
    let at = match quota {
        Some(q) => format!("at {} MB", q.memory_mb),
        None => "unthrottled; the targets are at 128 MB".to_owned(),
    };
    // Function and floor start one after the other in every round: their ratio per round.
    let paired: Vec<f64> = results[f]
        .cold
        .iter()
        .zip(&results[fl].cold)
        .map(|(a, b)| ratio(total(a), total(b)))
        .collect();
    let within = paired.iter().filter(|&&r| r <= 2.0).count();
    let worst = paired.iter().copied().fold(0.0, f64::max);
    let mut rows: Vec<(String, String, bool)> = vec![(
        format!("start-up + 1st answer ≤ 2× floor ({at})"),
        format!(
            "{:.1} ms = {:.2}× floor ({:.1} ms); per round ≤ 2× in {within} of {}, worst {worst:.2}×",
            ms(fun.total),
            ratio(fun.total, floor.total),
            ms(floor.total),
            paired.len()
        ),
        ratio(fun.total, floor.total) <= 2.0,
    )];
    for (role, times) in [(Role::Python, 50.0), (Role::Naive, 10.0)] {
        if let Some(p) = find(role) {
            let peer = &sums[p];
            rows.push((
                format!(
                    "start-up + 1st answer ≥ {times}× faster than the {} ({at})",
                    args.builds[p].name
                ),
                format!("{:.1}× ({:.1} ms)", ratio(peer.total, fun.total), ms(peer.total)),
                ratio(peer.total, fun.total) >= times,
            ));
        }
    }
    // Warm CPU and peak RSS come from the warm phase: without one there is nothing to judge.
    if args.warm > 0 {
        if let Some(n) = find(Role::Naive) {
            let naive = &sums[n];
            rows.push((
                "CPU per warm request ≤ the naive SDK function's".into(),
                format!(
                    "{:.0} µs = {:.2}× naive ({:.0} µs)",
                    fun.cpu_warm.as_secs_f64() * 1e6,
                    ratio(fun.cpu_warm, naive.cpu_warm),
                    naive.cpu_warm.as_secs_f64() * 1e6
                ),
                fun.cpu_warm <= naive.cpu_warm,
            ));
        }
        rows.push((
            "peak RSS ≤ 10 MiB".into(),
            format!("{:.1} MiB", mib(fun.rss)),
            mib(fun.rss) <= 10.0,
        ));
    }
    rows.push((
        "stripped binary ≤ 6 MB".into(),
        format!("{:.2} MB", mb(res.stripped.unwrap_or(0))),
        res.stripped.is_some_and(|b| b <= 6_000_000),
    ));
    let mut s = String::from("\n| target | export-job-status | |\n|---|---|---|\n");
    for (what, got, ok) in rows {
        let _ = writeln!(
            s,
            "| {what} | {got} | {} |",
            if ok { "met" } else { "**missed**" }
        );
    }
    s
}

pub fn to_json(args: &Args, results: &[Results], quota: Option<&Quota>) -> Value {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let builds: Vec<Value> = args
        .builds
        .iter()
        .zip(results)
        .map(|(b, r)| {
            let m = summarize(r);
            json!({
                "name": b.name,
                "path": b.path,
                "cold_starts": r.cold.iter().map(|c| json!({
                    "init_us": us(c.init), "init_cpu_us": us(c.init_cpu),
                    "first_response_cpu_us": us(c.first_cpu),
                    "first_response_cpu_schedstat_us": us(c.first_cpu_schedstat),
                    "first_call_us": us(c.first_call),
                    "throttled_periods": c.throttled,
                    "page_faults": c.faults,
                })).collect::<Vec<_>>(),
                "median": {
                    "init_us": us(m.init), "first_response_cpu_us": us(m.first_cpu),
                    "first_call_us": us(m.first_call), "init_plus_first_call_us": us(m.total),
                },
                "warm": {
                    "invocations": r.warm.latencies.len(), "p50_us": us(m.p50), "p99_us": us(m.p99),
                    "cpu_per_request_us": us(m.cpu_warm), "peak_rss_bytes": m.rss,
                },
                "stripped_bytes": r.stripped, "zip_bytes": r.zip,
            })
        })
        .collect();
    json!({
        "cold": args.cold, "warm": args.warm, "ca_only": args.ca_only, "function_ca_only": args.function_ca_only,
        "memory_mb_asked": args.memory,
        "cpu_quota_us_per_period": quota.map(|q| q.quota_us),
        "cpu_period_us": quota.map(|_| quota::PERIOD_US),
        "builds": builds,
    })
}
