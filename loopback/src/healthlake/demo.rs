//! The demo data: one datastore with one job per HealthLake JobStatus, plus a job that moves
//! through its statuses, one that does not exist, one that is always throttled and one slower
//! than any upstream budget. The local run
//! serves it, and the tests that check `events/` and the local run load the same data, so what
//! the README promises is what is tested.

use super::{job, Reply, StandIn};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The demo datastore. Real ids are 32 hex digits; a readable one keeps the curl lines short.
pub const DATASTORE: &str = "demo-datastore";

/// Longer than the largest upstream budget the function accepts (29 s), so the slow job always
/// ends in the function's own 504, whatever `UPSTREAM_TIMEOUT_MS` says.
pub const SLOW_DELAY: Duration = Duration::from_secs(30);

/// The job that moves on its own, for the web page to watch.
pub const MOVING_JOB: &str = "job-moving";

/// The moving job's run, from its first request: long enough in each running status for a poller
/// that waits the function's shortest `Retry-After` (2 s) to see it twice (a 304 the second
/// time), with room for slow requests in IN_PROGRESS; short enough to watch to the end in about
/// ten seconds.
pub const MOVING_STEPS: [(Duration, &str); 3] = [
    (Duration::ZERO, "SUBMITTED"),
    (Duration::from_secs(3), "IN_PROGRESS"),
    (Duration::from_secs(8), "COMPLETED"),
];

/// How a demo job answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A job in this HealthLake JobStatus.
    Status(&'static str),
    /// A job that moves through these statuses, each from its offset past the job's first call.
    Moving(&'static [(Duration, &'static str)]),
    /// No such job: ResourceNotFoundException.
    Missing,
    /// ThrottlingException on every attempt.
    Throttled,
    /// Answers after `SLOW_DELAY`.
    Slow,
}

#[derive(Debug, Clone, Copy)]
pub struct DemoJob {
    pub id: &'static str,
    pub behaviour: Behaviour,
    /// The function's HTTP status for a GET of this job.
    pub http_status: u16,
}

const fn status(id: &'static str, s: &'static str) -> DemoJob {
    DemoJob {
        id,
        behaviour: Behaviour::Status(s),
        http_status: 200,
    }
}

pub const JOBS: [DemoJob; 14] = [
    status("job-submitted", "SUBMITTED"),
    status("job-queued", "QUEUED"),
    status("job-in-progress", "IN_PROGRESS"),
    status("job-completed", "COMPLETED"),
    status("job-completed-with-errors", "COMPLETED_WITH_ERRORS"),
    status("job-failed", "FAILED"),
    status("job-cancel-submitted", "CANCEL_SUBMITTED"),
    status("job-cancel-in-progress", "CANCEL_IN_PROGRESS"),
    status("job-cancel-completed", "CANCEL_COMPLETED"),
    status("job-cancel-failed", "CANCEL_FAILED"),
    DemoJob {
        id: MOVING_JOB,
        behaviour: Behaviour::Moving(&MOVING_STEPS),
        http_status: 200,
    },
    DemoJob {
        id: "job-missing",
        behaviour: Behaviour::Missing,
        http_status: 404,
    },
    DemoJob {
        id: "job-throttled",
        behaviour: Behaviour::Throttled,
        http_status: 429,
    },
    DemoJob {
        id: "job-slow",
        behaviour: Behaviour::Slow,
        http_status: 504,
    },
];

/// Scripts every demo job into `standin`. Jobs were submitted a minute before and ended ones ended
/// ten seconds before, so the timestamps and the `Retry-After` hint look like a live system's.
pub fn load(standin: &StandIn) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64().floor());
    for demo in JOBS {
        let reply = match demo.behaviour {
            Behaviour::Status(s) => Reply::Job(dated(job(DATASTORE, demo.id, s), now)),
            Behaviour::Moving(steps) => Reply::moving(DATASTORE, demo.id, steps),
            // Not scripted: the stand-in answers ResourceNotFoundException for unknown jobs.
            Behaviour::Missing => continue,
            Behaviour::Throttled => Reply::error(400, "ThrottlingException"),
            Behaviour::Slow => Reply::delayed(
                SLOW_DELAY,
                Reply::Job(dated(job(DATASTORE, demo.id, "IN_PROGRESS"), now)),
            ),
        };
        standin.script(DATASTORE, demo.id, vec![reply]);
    }
}

fn dated(mut props: serde_json::Value, now: f64) -> serde_json::Value {
    props["SubmitTime"] = json!(now - 60.0);
    if props.get("EndTime").is_some() {
        props["EndTime"] = json!(now - 10.0);
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_job_per_status_and_unique_ids() {
        let statuses: Vec<_> = JOBS
            .iter()
            .filter_map(|j| match j.behaviour {
                Behaviour::Status(s) => Some(s),
                _ => None,
            })
            .collect();
        assert_eq!(
            statuses,
            [
                "SUBMITTED",
                "QUEUED",
                "IN_PROGRESS",
                "COMPLETED",
                "COMPLETED_WITH_ERRORS",
                "FAILED",
                "CANCEL_SUBMITTED",
                "CANCEL_IN_PROGRESS",
                "CANCEL_COMPLETED",
                "CANCEL_FAILED"
            ]
        );
        let mut ids: Vec<_> = JOBS.iter().map(|j| j.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), JOBS.len());
    }
}
