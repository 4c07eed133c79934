//! Where an answer comes from: this environment's memory of finished jobs (`memory`), the fleet's
//! shared tier when `STATUS_TABLE` is set (`shared`: the table, the lease, the fleet-wide
//! budget; docs/fleet.md), and HealthLake itself (`healthlake`, the one call). The handler asks
//! [`Lookup::answer`] and never needs to know which one answered.

mod healthlake;
mod memory;
mod shared;

use crate::aws::LazyClient;
use crate::config::Config;
use crate::error::Error;
use crate::ids::{DatastoreId, JobId};
use crate::job::{JobView, RenderedJob};
use memory::TerminalCache;
use shared::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An answer, and where it came from.
pub(crate) struct Served {
    pub(crate) rendered: Arc<RenderedJob>,
    /// When HealthLake was read for a running job's answer served by the shared tier (for `Age`);
    /// `None` for a terminal job (it cannot be stale) and without the tier.
    pub(crate) checked_ms: Option<i64>,
    /// Which tier answered: memory, table, healthlake or stale; for the log line.
    pub(crate) tier: &'static str,
    /// Whether this environment read the answer from HealthLake itself (or from its memory of
    /// that): only then is a terminal answer sent as immutable.
    pub(crate) verified: bool,
}

/// What one request spent on HealthLake, whatever came of it: for the log line.
#[derive(Debug, Default)]
pub(crate) struct Spent {
    /// Whether HealthLake was asked at all (a call that could not be signed sends nothing).
    pub(crate) asked: bool,
    pub(crate) ms: f64,
    /// HTTP requests sent, retries included: each one counts against HealthLake's quota.
    pub(crate) calls: u32,
}

pub(crate) struct Lookup {
    client: LazyClient<aws_sdk_healthlake::Client>,
    memory: TerminalCache,
    shared: Option<Shared>,
}

impl Lookup {
    /// Memory and HealthLake only.
    pub(crate) fn new(client: LazyClient<aws_sdk_healthlake::Client>) -> Lookup {
        Lookup {
            client,
            memory: TerminalCache::default(),
            shared: None,
        }
    }

    /// The same, with the shared tier on the status table `name`.
    pub(crate) fn with_shared(
        self,
        config: &Config,
        client: aws_sdk_dynamodb::Client,
        name: String,
    ) -> Lookup {
        Lookup {
            shared: Some(Shared::new(client, name, config)),
            ..self
        }
    }

    /// Whether the shared tier is on (the log line's `tier` says which tier answered only then).
    pub(crate) fn shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The answer for one job, for `caller` (whose share of the budget a miss draws on), within
    /// `budget`: the time HealthLake may take, or why there is none left before the Lambda
    /// deadline (memory and the table may still answer).
    pub(crate) async fn answer(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        caller: &str,
        budget: Result<Duration, Error>,
        spent: &mut Spent,
    ) -> Result<Served, Error> {
        if let Some(shared) = &self.shared {
            let budget = budget.unwrap_or(Duration::ZERO);
            return shared
                .lookup(&self.client, &self.memory, (ds, job), caller, budget, spent)
                .await;
        }
        if let Some(hit) = self.memory.get(ds, job) {
            return Ok(served(hit, None, "memory", true));
        }
        let budget = budget?;
        let started = Instant::now();
        let (answer, calls) = healthlake::describe_export_job(&self.client, ds, job, budget).await;
        spent.asked = true;
        spent.ms = started.elapsed().as_secs_f64() * 1000.0;
        spent.calls = calls;
        let rendered = Arc::new(JobView::from_sdk(ds, job, &answer?)?.render());
        self.memory.insert_if_terminal(ds, job, rendered.clone());
        Ok(served(rendered, None, "healthlake", true))
    }
}

fn served(rendered: Arc<RenderedJob>, checked_ms: Option<i64>, tier: &'static str, verified: bool) -> Served {
    Served {
        rendered,
        checked_ms,
        tier,
        verified,
    }
}

/// `checkedAt` in a job document: RFC 3339 with milliseconds, as the job's own times.
pub(crate) fn checked_at(checked_ms: i64) -> String {
    crate::job::rfc3339_millis(&aws_smithy_types::DateTime::from_millis(checked_ms)).unwrap_or_default()
}

/// `Age` in whole seconds (RFC 9111), never negative whatever the clocks did.
pub(crate) fn age_secs(checked_ms: i64) -> u64 {
    now_ms().saturating_sub(checked_ms).max(0) as u64 / 1_000
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
