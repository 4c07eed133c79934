//! The fleet's tiers, on when `STATUS_TABLE` names a DynamoDB table (docs/fleet.md has the
//! design and the numbers). An answer is looked for in this environment's memory, then in the
//! shared table, and only then asked of HealthLake:
//! - a terminal job's answer is kept in both tiers and never asked again;
//! - a running job's answer is fresh for the refresh interval; when it is stale, one environment
//!   takes a short lease on the job's item and refreshes it while the others go on serving the
//!   last answer;
//! - every HealthLake call draws on the fleet-wide budget ([`budget`]), and a throttled call
//!   backs the whole fleet off;
//! - when HealthLake throttles or fails transiently, or the budget is spent, an answer no older
//!   than `MAX_STALE_SECS` is served with its age;
//! - when the table fails, the environment goes on with its memory and direct calls within a
//!   budget of its own, and says so once in the log.

mod budget;
mod table;

use crate::cache::TerminalCache;
use crate::config::{Config, FleetConfig};
use crate::error::{Error, UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use crate::job::{JobView, RenderedJob};
use crate::upstream;
use budget::{LocalBudget, Rate, Take};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use table::{Table, TableError};

/// After a failed table call, the table is left alone this long: a table that times out would
/// otherwise add its whole time budget to every request.
const TABLE_PAUSE_MS: i64 = 1_000;
/// How often an environment with nothing to serve looks again while another one refreshes the
/// job or the budget is spent.
const WAIT_STEP: Duration = Duration::from_millis(50);
/// Running jobs remembered in memory (about 1 KiB each).
const RECENT_CAPACITY: usize = 512;

/// An answer, and when HealthLake was read for it (`None` for a terminal job: it cannot be stale).
pub(crate) struct Served {
    pub(crate) rendered: Arc<RenderedJob>,
    pub(crate) checked_ms: Option<i64>,
    /// How long this request's HealthLake call took and how many requests it sent, if it made one.
    pub(crate) upstream: Option<(f64, u32)>,
    /// Which tier answered: memory, table or healthlake; for the log line.
    pub(crate) tier: &'static str,
}

type Key = (DatastoreId, JobId);

pub(crate) struct Shared {
    table: Table,
    refresh_ms: i64,
    max_stale_ms: i64,
    lease_ms: i64,
    rate: Rate,
    local: LocalBudget,
    /// Running jobs' last answers in this environment, with when HealthLake was read.
    recent: Mutex<HashMap<Key, (Arc<RenderedJob>, i64)>>,
    table_paused_until: AtomicI64,
    table_failing: AtomicBool,
}

/// What one try at the shared tier came to.
enum Step {
    Done(Result<Served, Error>),
    /// Nothing to serve yet: another environment is refreshing, or the budget is spent.
    Wait,
    /// The table failed or gave garbage: go on without it.
    WithoutTable {
        overwrite: bool,
    },
}

impl Shared {
    pub(crate) fn new(client: aws_sdk_dynamodb::Client, table_name: String, config: &Config) -> Self {
        let f: &FleetConfig = &config.fleet;
        let rate = Rate::per_second(f.upstream_rate);
        Shared {
            table: Table::new(client, table_name, f.table_timeout),
            refresh_ms: f.refresh_interval.as_millis() as i64,
            max_stale_ms: f.max_stale.as_millis() as i64,
            // Longer than the holder can take (its HealthLake budget and two table calls), so a
            // live holder keeps it; a dead one's expires soon after.
            lease_ms: (config.upstream_timeout + 2 * f.table_timeout).as_millis() as i64 + 250,
            rate,
            local: LocalBudget::new(rate),
            recent: Mutex::new(HashMap::new()),
            table_paused_until: AtomicI64::new(0),
            table_failing: AtomicBool::new(false),
        }
    }

    /// The answer for one job within `budget` (already capped by the Lambda deadline).
    pub(crate) async fn lookup(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        budget: Duration,
    ) -> Result<Served, Error> {
        if let Some(hit) = terminal.get(ds, job) {
            return Ok(served(hit, None, "memory"));
        }
        let deadline = Instant::now() + budget;
        let mut stale = self.remembered(ds, job);
        if let Some((r, checked)) = &stale {
            if now_ms() - checked < self.refresh_ms {
                return Ok(served(r.clone(), Some(*checked), "memory"));
            }
        }
        let mut overwrite = false;
        while self.table_paused_until.load(Ordering::Relaxed) <= now_ms() {
            match self
                .try_shared(client, terminal, ds, job, deadline, &mut stale)
                .await
            {
                Step::Done(result) => return result,
                Step::WithoutTable { overwrite: o } => {
                    overwrite = o;
                    break;
                }
                Step::Wait if Instant::now() + WAIT_STEP < deadline => tokio::time::sleep(WAIT_STEP).await,
                Step::Wait => return Err(UpstreamError::new(UpstreamKind::Throttled, "NoAnswerYet").into()),
            }
        }
        self.without_table(client, terminal, ds, job, deadline, stale, overwrite)
            .await
    }

    async fn try_shared(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        deadline: Instant,
        stale: &mut Option<(Arc<RenderedJob>, i64)>,
    ) -> Step {
        let item = match self.table.read_job(ds, job).await {
            Ok(item) => item,
            Err(e) if e.0.starts_with("MalformedItem") => {
                tracing::warn!(error = %e, datastore_id = ds.as_str(), job_id = job.as_str(), "shared table item not used");
                return Step::WithoutTable { overwrite: true };
            }
            Err(e) => {
                self.table_failed(&e);
                return Step::WithoutTable { overwrite: false };
            }
        };
        self.table_ok();
        if let (Some(r), Some(checked)) = (item.rendered, item.checked_ms) {
            let r = Arc::new(r);
            if r.terminal {
                terminal.insert_if_terminal(ds, job, r.clone());
                return Step::Done(Ok(served(r, None, "table")));
            }
            self.remember(ds, job, r.clone(), checked);
            if now_ms() - checked < self.refresh_ms {
                return Step::Done(Ok(served(r, Some(checked), "table")));
            }
            if stale.as_ref().is_none_or(|(_, c)| checked > *c) {
                *stale = Some((r, checked));
            }
        }
        let now = now_ms();
        let until = now + self.lease_ms;
        match self
            .table
            .lease_job(ds, job, now, until, now - self.refresh_ms)
            .await
        {
            Err(e) => {
                self.table_failed(&e);
                Step::WithoutTable { overwrite: false }
            }
            Ok(true) => {
                self.refresh(client, terminal, ds, job, deadline, stale, until)
                    .await
            }
            // Another environment is refreshing it (or just has): serve what there is meanwhile.
            Ok(false) => match self.servable(stale) {
                Some(s) => Step::Done(Ok(s)),
                None => Step::Wait,
            },
        }
    }

    /// Holding the lease: ask HealthLake within the fleet's budget and share the answer.
    #[allow(clippy::too_many_arguments)]
    async fn refresh(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        deadline: Instant,
        stale: &Option<(Arc<RenderedJob>, i64)>,
        lease_until: i64,
    ) -> Step {
        let take = match budget::take_shared(&self.table, self.rate, now_ms()).await {
            Ok(take) => take,
            Err(e) => {
                self.table_failed(&e);
                self.local.take(now_ms())
            }
        };
        if take == Take::Spent {
            // Give the lease back so that whoever asks once the budget has room may refresh.
            let _ = self.table.release_job(ds, job, lease_until, now_ms()).await;
            return match self.servable(stale) {
                Some(s) => Step::Done(Ok(s)),
                None => Step::Wait,
            };
        }
        match self.call(client, ds, job, deadline, stale.is_some()).await {
            Ok((rendered, checked, upstream)) => {
                if let Err(e) = self.table.store_job(ds, job, &rendered, checked, false).await {
                    self.table_failed(&e);
                }
                Step::Done(Ok(self.keep(terminal, ds, job, rendered, checked, upstream)))
            }
            Err(err) => {
                let now = now_ms();
                let mut retry_at = now;
                if is_throttled(&err) {
                    retry_at = now + budget::THROTTLE_BACKOFF_MS;
                    if let Err(e) = budget::back_off_shared(&self.table, self.rate, now).await {
                        self.table_failed(&e);
                    }
                }
                let _ = self.table.release_job(ds, job, lease_until, retry_at).await;
                Step::Done(self.fall_back(stale, err))
            }
        }
    }

    /// The table is failing (or its item for this job is garbage): memory and direct calls
    /// within this environment's own budget.
    #[allow(clippy::too_many_arguments)]
    async fn without_table(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        deadline: Instant,
        stale: Option<(Arc<RenderedJob>, i64)>,
        overwrite: bool,
    ) -> Result<Served, Error> {
        if self.local.take(now_ms()) == Take::Spent {
            return self.fall_back(
                &stale,
                UpstreamError::new(UpstreamKind::Throttled, "LocalBudgetSpent").into(),
            );
        }
        match self.call(client, ds, job, deadline, stale.is_some()).await {
            Ok((rendered, checked, upstream)) => {
                if overwrite {
                    // The item was garbage: replace it (the table itself answered).
                    let _ = self.table.store_job(ds, job, &rendered, checked, true).await;
                }
                Ok(self.keep(terminal, ds, job, rendered, checked, upstream))
            }
            Err(err) => {
                if is_throttled(&err) {
                    self.local.back_off(now_ms());
                }
                self.fall_back(&stale, err)
            }
        }
    }

    /// One HealthLake call within what is left of the budget. With an answer to fall back on, a
    /// failure is not retried: the stale answer is served and the next refresh comes soon.
    async fn call(
        &self,
        client: &aws_sdk_healthlake::Client,
        ds: &DatastoreId,
        job: &JobId,
        deadline: Instant,
        have_fallback: bool,
    ) -> Result<(Arc<RenderedJob>, i64, (f64, u32)), Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(UpstreamError::new(UpstreamKind::Timeout, "DeadlineTooClose").into());
        }
        let started = Instant::now();
        let attempts = have_fallback.then_some(1);
        let (answer, calls) = upstream::describe_export_job_with(client, ds, job, left, attempts).await;
        let upstream_ms = started.elapsed().as_secs_f64() * 1000.0;
        let view = JobView::from_sdk(ds, job, &answer?)?;
        Ok((Arc::new(view.render()), now_ms(), (upstream_ms, calls)))
    }

    fn keep(
        &self,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        rendered: Arc<RenderedJob>,
        checked: i64,
        upstream: (f64, u32),
    ) -> Served {
        let mut s = if rendered.terminal {
            terminal.insert_if_terminal(ds, job, rendered.clone());
            served(rendered, None, "healthlake")
        } else {
            self.remember(ds, job, rendered.clone(), checked);
            served(rendered, Some(checked), "healthlake")
        };
        s.upstream = Some(upstream);
        s
    }

    /// A stale answer if the failure is one worth riding out and the answer is young enough.
    fn fall_back(&self, stale: &Option<(Arc<RenderedJob>, i64)>, err: Error) -> Result<Served, Error> {
        let transient = matches!(
            &err,
            Error::Upstream(UpstreamError {
                kind: UpstreamKind::Throttled
                    | UpstreamKind::Unavailable
                    | UpstreamKind::BadGateway
                    | UpstreamKind::Timeout,
                ..
            })
        );
        match self.servable(stale) {
            Some(s) if transient => Ok(s),
            _ => Err(err),
        }
    }

    fn servable(&self, stale: &Option<(Arc<RenderedJob>, i64)>) -> Option<Served> {
        stale
            .as_ref()
            .filter(|(_, checked)| now_ms() - checked <= self.max_stale_ms)
            .map(|(r, checked)| served(r.clone(), Some(*checked), "stale"))
    }

    fn remembered(&self, ds: &DatastoreId, job: &JobId) -> Option<(Arc<RenderedJob>, i64)> {
        self.lock_recent().get(&(ds.clone(), job.clone())).cloned()
    }

    fn remember(&self, ds: &DatastoreId, job: &JobId, rendered: Arc<RenderedJob>, checked: i64) {
        let mut recent = self.lock_recent();
        if recent.len() >= RECENT_CAPACITY {
            let too_old = now_ms() - self.max_stale_ms;
            recent.retain(|_, (_, c)| *c >= too_old);
            if recent.len() >= RECENT_CAPACITY {
                recent.clear();
            }
        }
        let entry = recent
            .entry((ds.clone(), job.clone()))
            .or_insert_with(|| (rendered.clone(), checked));
        if entry.1 <= checked {
            *entry = (rendered, checked);
        }
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Arc<RenderedJob>, i64)>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logged once when the table starts failing, once when it is back.
    fn table_failed(&self, e: &TableError) {
        self.table_paused_until
            .store(now_ms() + TABLE_PAUSE_MS, Ordering::Relaxed);
        if !self.table_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "shared table failing: answering from memory and direct calls within this environment's budget");
        }
    }

    fn table_ok(&self) {
        if self.table_failing.swap(false, Ordering::Relaxed) {
            tracing::info!("shared table answering again");
        }
    }
}

fn served(rendered: Arc<RenderedJob>, checked_ms: Option<i64>, tier: &'static str) -> Served {
    Served {
        rendered,
        checked_ms,
        upstream: None,
        tier,
    }
}

fn is_throttled(err: &Error) -> bool {
    matches!(
        err,
        Error::Upstream(UpstreamError {
            kind: UpstreamKind::Throttled,
            ..
        })
    )
}

/// The shared tier's DynamoDB client: the function's SDK configuration (HTTPS client,
/// credentials, region, `AWS_ENDPOINT_URL_DYNAMODB`), with one attempt per call and the table's
/// own time budget, so that a failing table costs a request little.
pub(crate) fn dynamodb_client(sdk: &aws_config::SdkConfig, config: &Config) -> aws_sdk_dynamodb::Client {
    let t = config.fleet.table_timeout;
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(t)
                .operation_timeout(t)
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// `checkedAt` in a job document: RFC 3339 with milliseconds, as the job's own times.
pub(crate) fn checked_at(checked_ms: i64) -> String {
    crate::job::rfc3339_millis(&aws_smithy_types::DateTime::from_millis(checked_ms)).unwrap_or_default()
}

/// `Age` in whole seconds (RFC 9111), never negative whatever the clocks did.
pub(crate) fn age_secs(checked_ms: i64) -> u64 {
    (now_ms() - checked_ms).max(0) as u64 / 1_000
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
