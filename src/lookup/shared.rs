//! The fleet's tiers, on when `STATUS_TABLE` names a DynamoDB table (docs/fleet.md has the
//! design and the numbers). An answer is looked for in this environment's memory, then in the
//! shared table, and only then asked of HealthLake:
//! - a terminal job's answer is kept in both tiers and never asked again;
//! - a running job's answer is fresh for the refresh interval; when it is stale, one environment
//!   takes a short lease on the job's item and refreshes it while the others go on serving the
//!   last answer;
//! - a job HealthLake does not know is remembered as missing for the refresh interval too, so a
//!   job that appears later is found within that time, as a status change would be;
//! - every request sent to HealthLake takes a token of the fleet-wide budget ([`budget`]), where
//!   a job the fleet has never answered (a caller's guess, maybe) is a miss that draws first on
//!   its caller's own bucket and then on what refreshes leave, and a throttled call backs the
//!   whole fleet off;
//! - a request with nothing to serve waits for the holder's answer (reading the item again after
//!   100 ms, 200 ms, ... ) or for the budget's next slot, never spinning on writes;
//! - when HealthLake throttles or fails transiently, or the budget is spent, an answer no older
//!   than `MAX_STALE_SECS` is served with its age;
//! - when the table fails, the environment answers from its memory only (stale answers with
//!   their age, else 429) and never calls HealthLake, so the fleet's bound holds; it says so once
//!   in the log.

mod budget;
mod table;

use super::memory::TerminalCache;
use super::{healthlake, now_ms, served, Served, Spent};
use crate::config::{Config, FleetConfig};
use crate::error::{Error, UpstreamError, UpstreamKind};
use crate::ids::{DatastoreId, JobId};
use crate::job::{JobView, RenderedJob};
use budget::{Rate, Take};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use table::{JobItem, Table, TableError, CLOCK_SKEW_MS};

/// After a failed table call, the table is left alone this long: a table that times out would
/// otherwise add its whole time budget to every request.
const TABLE_PAUSE_MS: i64 = 1_000;
/// While another environment refreshes the job, how long to wait before reading its item again:
/// about one HealthLake answer, then twice that, and so on up to [`WAIT_MAX`].
const WAIT_FIRST: Duration = Duration::from_millis(100);
const WAIT_MAX: Duration = Duration::from_millis(800);
/// A terminal answer read from the table is served from memory this long, then read again: the
/// table is input, so nothing it says is kept for the life of the environment.
const TABLE_TERMINAL_TRUST_MS: i64 = 60_000;
/// Jobs remembered in memory (about 1 KiB each).
const RECENT_CAPACITY: usize = 512;

type Key = (DatastoreId, JobId);

/// What this environment remembers of a job.
#[derive(Clone)]
enum Known {
    Job(Arc<RenderedJob>),
    /// HealthLake said there is no such job.
    Missing,
}

#[derive(Clone)]
struct Remembered {
    known: Known,
    /// When HealthLake was read.
    checked_ms: i64,
    /// Served from memory until then.
    fresh_until_ms: i64,
}

pub(crate) struct Shared {
    table: Table,
    refresh_ms: i64,
    max_stale_ms: i64,
    lease_ms: i64,
    rate: Rate,
    /// HealthLake calls one request may make, each with its own token.
    max_calls: u32,
    /// Running jobs' last answers, recent misses and terminal answers read from the table.
    recent: Mutex<HashMap<Key, Remembered>>,
    table_paused_until: AtomicI64,
    table_failing: AtomicBool,
}

/// What one try at the shared tier came to.
enum Step {
    Done(Result<Served, Error>),
    /// Nothing to serve yet: another environment is refreshing, or the budget is spent. Look
    /// again after this long.
    Wait(Duration),
    /// The table failed: go on without it.
    WithoutTable,
}

/// What one request knows while it looks: the freshest running answer seen (to serve when
/// HealthLake cannot be asked), and what it has spent.
struct Look<'a> {
    spent: &'a mut Spent,
    ds: &'a DatastoreId,
    job: &'a JobId,
    /// Partner key id, IAM principal id or "anonymous": whose misses these are.
    caller: &'a str,
    deadline: Instant,
    stale: Option<(Arc<RenderedJob>, i64)>,
    wait: Duration,
}

impl Shared {
    pub(crate) fn new(client: aws_sdk_dynamodb::Client, table_name: String, config: &Config) -> Self {
        let f: &FleetConfig = &config.fleet;
        Shared {
            table: Table::new(client, table_name, f.table_timeout),
            refresh_ms: f.refresh_interval.as_millis() as i64,
            max_stale_ms: f.max_stale.as_millis() as i64,
            // Longer than the holder can take (its HealthLake budget and two table calls), so a
            // live holder keeps it; a dead one's expires soon after.
            lease_ms: (config.upstream_timeout + 2 * f.table_timeout).as_millis() as i64 + 250,
            rate: Rate::per_second(f.upstream_rate),
            max_calls: config.max_attempts,
            recent: Mutex::new(HashMap::new()),
            table_paused_until: AtomicI64::new(0),
            table_failing: AtomicBool::new(false),
        }
    }

    /// The answer for one job (`(ds, job)`) within `budget` (already capped by the Lambda
    /// deadline), for `caller` (whose bucket a miss draws on).
    pub(crate) async fn lookup(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        (ds, job): (&DatastoreId, &JobId),
        caller: &str,
        budget: Duration,
        spent: &mut Spent,
    ) -> Result<Served, Error> {
        if let Some(hit) = terminal.get(ds, job) {
            return Ok(served(hit, None, "memory", true));
        }
        let mut look = Look {
            ds,
            job,
            caller,
            deadline: Instant::now() + budget,
            stale: None,
            spent,
            wait: WAIT_FIRST,
        };
        if let Some(r) = self.remembered(ds, job) {
            match r.known {
                Known::Job(j) if now_ms() < r.fresh_until_ms => {
                    let checked = (!j.terminal).then_some(r.checked_ms);
                    return Ok(served(j, checked, "memory", false));
                }
                Known::Missing if now_ms() < r.fresh_until_ms => return Err(not_found()),
                Known::Job(j) if !j.terminal => look.stale = Some((j, r.checked_ms)),
                _ => {}
            }
        }
        loop {
            if self.table_paused_until.load(Ordering::Relaxed) > now_ms() {
                return self.without_table(&look);
            }
            match self.try_shared(client, terminal, &mut look).await {
                Step::Done(result) => return result,
                Step::WithoutTable => return self.without_table(&look),
                Step::Wait(d) if Instant::now() + d < look.deadline => tokio::time::sleep(d).await,
                Step::Wait(_) => {
                    return self.fall_back(
                        &look,
                        UpstreamError::new(UpstreamKind::Throttled, "NoAnswerYet").into(),
                    )
                }
            }
        }
    }

    async fn try_shared(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        look: &mut Look<'_>,
    ) -> Step {
        let (ds, job) = (look.ds, look.job);
        let (item, usable) = match self.table.read_job(ds, job, now_ms()).await {
            Ok(item) => (item, true),
            Err(e) if e.0.starts_with("MalformedItem") => {
                tracing::warn!(error = %e, datastore_id = ds.as_str(), job_id = job.as_str(), "shared table item not used");
                (JobItem::default(), false)
            }
            Err(e) => {
                self.table_failed(&e);
                return Step::WithoutTable;
            }
        };
        self.table_ok();
        let now = now_ms();
        if let (Some(r), Some(checked)) = (item.rendered, item.checked_ms) {
            let r = Arc::new(r);
            if r.terminal {
                self.remember(
                    ds,
                    job,
                    Known::Job(r.clone()),
                    checked,
                    now + TABLE_TERMINAL_TRUST_MS,
                );
                return Step::Done(Ok(served(r, None, "table", false)));
            }
            let fresh_until = checked.saturating_add(self.refresh_ms);
            self.remember(ds, job, Known::Job(r.clone()), checked, fresh_until);
            if now < fresh_until {
                return Step::Done(Ok(served(r, Some(checked), "table", false)));
            }
            if look.stale.as_ref().is_none_or(|(_, c)| checked > *c) {
                look.stale = Some((r, checked));
            }
        } else if let Some(missing) = item.missing_ms {
            let fresh_until = missing.saturating_add(self.refresh_ms);
            if now < fresh_until {
                self.remember(ds, job, Known::Missing, missing, fresh_until);
                return Step::Done(Err(not_found()));
            }
        }
        // A refresh when the table has the job, a miss (a caller's guess, maybe) when it has not.
        let miss = look.stale.is_none();
        let until = now + self.lease_ms;
        // Held by a live environment: no need to ask the table what it just said.
        let held = item
            .lease_until_ms
            .is_some_and(|l| l >= now && l <= until + CLOCK_SKEW_MS);
        let leased = if held && usable {
            Ok(false)
        } else {
            let stale_before = usable.then_some(now - self.refresh_ms);
            self.table.lease_job(ds, job, now, until, stale_before).await
        };
        match leased {
            Err(e) => {
                self.table_failed(&e);
                Step::WithoutTable
            }
            Ok(true) => {
                look.wait = WAIT_FIRST;
                self.refresh(client, terminal, look, until, miss, !usable).await
            }
            // Another environment is refreshing it (or just has): serve what there is
            // meanwhile, or read its answer again in a moment.
            Ok(false) => match self.servable(&look.stale) {
                Some(s) => Step::Done(Ok(s)),
                None => {
                    let wait = look.wait;
                    look.wait = (wait * 2).min(WAIT_MAX);
                    Step::Wait(wait)
                }
            },
        }
    }

    /// Holding the lease: ask HealthLake within the fleet's budget, one token per request sent,
    /// and share the answer. Gives the lease back on every way out but a stored answer.
    async fn refresh(
        &self,
        client: &aws_sdk_healthlake::Client,
        terminal: &TerminalCache,
        look: &mut Look<'_>,
        lease_until: i64,
        miss: bool,
        overwrite: bool,
    ) -> Step {
        let (ds, job) = (look.ds, look.job);
        loop {
            let now = now_ms();
            let take = if miss {
                budget::take_miss(&self.table, self.rate, look.caller, now).await
            } else {
                budget::take_refresh(&self.table, self.rate, now).await
            };
            let retry_in_ms = match take {
                Err(e) => {
                    self.table_failed(&e);
                    return Step::WithoutTable;
                }
                Ok(Take::Granted) => None,
                Ok(Take::Spent { retry_in_ms }) => Some(retry_in_ms),
                // A caller over its share of unknown ids is guessing: 429 at once, holding
                // nothing (no wait, no lease). A miss has no stale answer to serve.
                Ok(Take::CallerSpent) => {
                    let _ = self.table.release_job(ds, job, lease_until, now_ms()).await;
                    let err = UpstreamError::new(UpstreamKind::Throttled, "CallerBudgetSpent");
                    return Step::Done(Err(err.into()));
                }
            };
            if let Some(retry_in_ms) = retry_in_ms {
                if let Some(s) = self.servable(&look.stale) {
                    let _ = self.table.release_job(ds, job, lease_until, now_ms()).await;
                    return Step::Done(Ok(s));
                }
                // Keep the lease (others wait for this environment's answer) and wait for the
                // budget's next slot, with a little spread so that waiters do not come together.
                let wait = Duration::from_millis((retry_in_ms + jitter_ms(self.rate.interval_ms)) as u64);
                if Instant::now() + wait >= look.deadline {
                    let _ = self.table.release_job(ds, job, lease_until, now_ms()).await;
                    let err = UpstreamError::new(UpstreamKind::Throttled, "BudgetSpent");
                    return Step::Done(self.fall_back(look, err.into()));
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            match self.call(client, look).await {
                Ok(view) => {
                    let checked = now_ms();
                    let rendered = Arc::new(view.render());
                    if let Err(e) = self.table.store_job(ds, job, &rendered, checked, overwrite).await {
                        self.table_failed(&e);
                    }
                    return Step::Done(Ok(self.keep(terminal, ds, job, rendered, checked)));
                }
                Err(err) if is_not_found(&err) => {
                    let checked = now_ms();
                    if let Err(e) =
                        budget::charge_not_found(&self.table, self.rate, look.caller, checked).await
                    {
                        self.table_failed(&e);
                    }
                    if let Err(e) = self.table.store_missing(ds, job, checked, overwrite).await {
                        self.table_failed(&e);
                    }
                    self.remember(ds, job, Known::Missing, checked, checked + self.refresh_ms);
                    return Step::Done(Err(err));
                }
                Err(err) => {
                    let now = now_ms();
                    let throttled = is_throttled(&err);
                    if throttled {
                        if let Err(e) = budget::back_off_shared(&self.table, self.rate, now).await {
                            self.table_failed(&e);
                        }
                    }
                    // Another call, with a token of its own, if it may help and there is time.
                    let backoff = Duration::from_millis(100 * 2u64.pow(look.spent.calls.min(4)));
                    let again = is_transient(&err)
                        && look.stale.is_none()
                        && look.spent.calls < self.max_calls
                        && Instant::now() + backoff < look.deadline;
                    if again {
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    let retry_at = if throttled {
                        now + budget::THROTTLE_BACKOFF_MS
                    } else {
                        now
                    };
                    let _ = self.table.release_job(ds, job, lease_until, retry_at).await;
                    return Step::Done(self.fall_back(look, err));
                }
            }
        }
    }

    /// The table is failing: what this environment remembers, with its age, and no HealthLake
    /// call. An environment on its own cannot know what the rest of the fleet spends, and a
    /// budget of its own for each would multiply the fleet's bound by the number of
    /// environments; so a table outage costs HealthLake nothing, and a poll with nothing to
    /// serve is told to come back (429, `Retry-After`).
    fn without_table(&self, look: &Look<'_>) -> Result<Served, Error> {
        self.fall_back(
            look,
            UpstreamError::new(UpstreamKind::Throttled, "TableUnavailable").into(),
        )
    }

    /// One HealthLake request within what is left of the time budget: one attempt, so that
    /// every request sent has taken its token.
    async fn call(&self, client: &aws_sdk_healthlake::Client, look: &mut Look<'_>) -> Result<JobView, Error> {
        let left = look.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(UpstreamError::new(UpstreamKind::Timeout, "DeadlineTooClose").into());
        }
        let started = Instant::now();
        let (answer, calls) =
            healthlake::describe_export_job_with(client, look.ds, look.job, left, Some(1)).await;
        look.spent.asked = true;
        look.spent.ms += started.elapsed().as_secs_f64() * 1000.0;
        look.spent.calls += calls;
        Ok(JobView::from_sdk(look.ds, look.job, &answer?)?)
    }

    fn keep(
        &self,
        terminal: &TerminalCache,
        ds: &DatastoreId,
        job: &JobId,
        rendered: Arc<RenderedJob>,
        checked: i64,
    ) -> Served {
        if rendered.terminal {
            terminal.insert_if_terminal(ds, job, rendered.clone());
            served(rendered, None, "healthlake", true)
        } else {
            self.remember(
                ds,
                job,
                Known::Job(rendered.clone()),
                checked,
                checked + self.refresh_ms,
            );
            served(rendered, Some(checked), "healthlake", true)
        }
    }

    /// A stale answer if the failure is one worth riding out and the answer is young enough.
    fn fall_back(&self, look: &Look<'_>, err: Error) -> Result<Served, Error> {
        match self.servable(&look.stale) {
            Some(s) if is_transient(&err) => Ok(s),
            _ => Err(err),
        }
    }

    fn servable(&self, stale: &Option<(Arc<RenderedJob>, i64)>) -> Option<Served> {
        stale
            .as_ref()
            .filter(|(_, checked)| now_ms().saturating_sub(*checked) <= self.max_stale_ms)
            .map(|(r, checked)| served(r.clone(), Some(*checked), "stale", false))
    }

    fn remembered(&self, ds: &DatastoreId, job: &JobId) -> Option<Remembered> {
        self.lock_recent().get(&(ds.clone(), job.clone())).cloned()
    }

    fn remember(&self, ds: &DatastoreId, job: &JobId, known: Known, checked_ms: i64, fresh_until_ms: i64) {
        let mut recent = self.lock_recent();
        if recent.len() >= RECENT_CAPACITY {
            let too_old = now_ms().saturating_sub(self.max_stale_ms);
            recent.retain(|_, r| r.checked_ms >= too_old || r.fresh_until_ms > too_old);
            if recent.len() >= RECENT_CAPACITY {
                recent.clear();
            }
        }
        let new = Remembered {
            known,
            checked_ms,
            fresh_until_ms,
        };
        let entry = recent
            .entry((ds.clone(), job.clone()))
            .or_insert_with(|| new.clone());
        if entry.checked_ms <= checked_ms {
            *entry = new;
        }
    }

    fn lock_recent(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Remembered>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logged once when the table starts failing, once when it is back.
    fn table_failed(&self, e: &TableError) {
        self.table_paused_until
            .store(now_ms() + TABLE_PAUSE_MS, Ordering::Relaxed);
        if !self.table_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "shared table failing: answering from memory, without calling HealthLake");
        }
    }

    fn table_ok(&self) {
        if self.table_failing.swap(false, Ordering::Relaxed) {
            tracing::info!("shared table answering again");
        }
    }
}

/// Up to one interval, from the clock's low bits: enough to spread waiters, no RNG needed.
fn jitter_ms(interval_ms: i64) -> i64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::from(d.subsec_nanos()));
    nanos % interval_ms.max(1)
}

fn not_found() -> Error {
    UpstreamError::new(UpstreamKind::NotFound, "RememberedNotFound").into()
}

fn is_not_found(err: &Error) -> bool {
    matches!(
        err,
        Error::Upstream(UpstreamError {
            kind: UpstreamKind::NotFound,
            ..
        })
    )
}

/// A failure worth riding out with a stale answer, or another call.
fn is_transient(err: &Error) -> bool {
    matches!(
        err,
        Error::Upstream(UpstreamError {
            kind: UpstreamKind::Throttled
                | UpstreamKind::Unavailable
                | UpstreamKind::BadGateway
                | UpstreamKind::Timeout,
            ..
        })
    )
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
