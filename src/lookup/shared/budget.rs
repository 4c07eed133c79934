//! The fleet-wide HealthLake budget: a rate limiter (GCRA, the single-number form of a token
//! bucket) kept in one item of the shared table, so that every execution environment draws from
//! the same allowance. The item holds `tat`, the "theoretical arrival time" in epoch
//! milliseconds: a call is allowed when pushing `tat` one interval further keeps it within the
//! burst tolerance of now. Each take is one conditional update (two when the bucket was busy), so
//! no environment ever reads and then writes a stale value. A throttled call pushes `tat` past
//! now for everyone: the shared back-off.
//!
//! Two kinds of call draw on it. A *refresh* (a job the table already knows) may use the whole
//! burst tolerance; a *miss* (a job the fleet has no answer for: a caller's input, which a caller
//! can make up at will) only half of it. So misses get what refreshes leave. And each caller has
//! a bucket of its own ([`caller_key`]) that counts the job ids it asked about that HealthLake did
//! not know: a caller over [`Rate::per_caller`] of those is refused misses until it is back under,
//! so a caller guessing ids gets a bounded share, and one asking about real jobs, however many, is
//! never held back by it.

use super::table::{Table, TableError, Updated};
use aws_sdk_dynamodb::types::AttributeValue;

/// The item's key: one budget per table, whatever the datastore (HealthLake's quota is per
/// account and region).
pub(crate) const BUDGET_KEY: &str = "budget#healthlake";
/// Callers' own buckets: `budget#caller#<partner key id, IAM principal id or "anonymous">`.
const CALLER_PREFIX: &str = "budget#caller#";
/// How long the fleet stays off HealthLake after a throttled call: its bucket refills in a second.
pub(crate) const THROTTLE_BACKOFF_MS: i64 = 1_000;

/// The limiter's two numbers, from the configured rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// Milliseconds between calls at the steady rate, rounded up so the rate is never exceeded.
    pub(crate) interval_ms: i64,
    /// How far ahead of now `tat` may run: about half a second of calls may go at once.
    pub(crate) tolerance_ms: i64,
}

impl Rate {
    pub(crate) fn per_second(rate: u32) -> Rate {
        let rate = i64::from(rate.max(1));
        let interval_ms = (1_000 + rate - 1) / rate;
        Rate {
            interval_ms,
            tolerance_ms: interval_ms.max(500),
        }
    }

    /// One caller's ids that HealthLake did not know: half the fleet's rate (at least one a
    /// second), with a burst of two seconds' worth (a few mistyped ids cost nothing), so that a
    /// caller guessing job ids leaves the other half to everyone else.
    pub(crate) fn per_caller(fleet: Rate) -> Rate {
        let interval_ms = (fleet.interval_ms * 2).min(1_000);
        Rate {
            interval_ms,
            tolerance_ms: 2_000,
        }
    }

    /// What a miss may use of the fleet's tolerance: half of it, at least one interval.
    fn for_misses(self) -> Rate {
        Rate {
            tolerance_ms: (self.tolerance_ms / 2).max(self.interval_ms),
            ..self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    Granted,
    /// Nothing now; the next call fits in this many milliseconds (as far as the table said).
    Spent {
        retry_in_ms: i64,
    },
    /// The caller is over its share of ids HealthLake did not know.
    CallerSpent,
}

/// Which bucket a caller's misses draw on.
pub(crate) fn caller_key(caller: &str) -> String {
    format!("{CALLER_PREFIX}{caller}")
}

/// Takes one call for a refresh from the fleet's budget.
pub(crate) async fn take_refresh(table: &Table, rate: Rate, now_ms: i64) -> Result<Take, TableError> {
    take(table, BUDGET_KEY, rate, now_ms).await
}

/// Takes one call for a miss: if the caller is not over its share of ids HealthLake did not
/// know (one read of its bucket), from what refreshes leave of the fleet's budget.
pub(crate) async fn take_miss(
    table: &Table,
    rate: Rate,
    caller: &str,
    now_ms: i64,
) -> Result<Take, TableError> {
    let own = Rate::per_caller(rate);
    let tat = table
        .get(&caller_key(caller))
        .await?
        .and_then(|item| match item.get("tat") {
            Some(AttributeValue::N(t)) => t.parse::<i64>().ok(),
            _ => None,
        });
    match tat {
        // Past its tolerance: refused until `tat` is back within it.
        Some(tat) if tat > now_ms + own.tolerance_ms => Ok(Take::CallerSpent),
        _ => take(table, BUDGET_KEY, rate.for_misses(), now_ms).await,
    }
}

/// Counts one id HealthLake did not know against `caller`: its bucket's `tat` one interval
/// further, from now if it was idle. Unconditional past that: a caller's requests in flight all
/// count, and a caller deep in debt waits it out.
pub(crate) async fn charge_not_found(
    table: &Table,
    rate: Rate,
    caller: &str,
    now_ms: i64,
) -> Result<(), TableError> {
    let own = Rate::per_caller(rate);
    let key = caller_key(caller);
    if !start_if_idle(table, &key, own, now_ms).await? {
        let interval = AttributeValue::N(own.interval_ms.to_string());
        table
            .update(
                &key,
                "SET tat = tat + :interval",
                None,
                &[(":interval", interval)],
            )
            .await?;
    }
    Ok(())
}

/// An idle bucket (or none yet) starts from now, one interval taken. `Ok(false)`: it was busy.
async fn start_if_idle(table: &Table, key: &str, rate: Rate, now_ms: i64) -> Result<bool, TableError> {
    let n = |v: i64| AttributeValue::N(v.to_string());
    table
        .update(
            key,
            "SET tat = :next, expiresAt = :exp",
            Some("attribute_not_exists(tat) OR tat < :now"),
            &[
                (":next", n(now_ms + rate.interval_ms)),
                (":now", n(now_ms)),
                (":exp", n(expires_at(now_ms))),
            ],
        )
        .await
}

/// One GCRA take on the bucket item `key`: one conditional update when the bucket is idle, a
/// second when it is busy.
async fn take(table: &Table, key: &str, rate: Rate, now_ms: i64) -> Result<Take, TableError> {
    if start_if_idle(table, key, rate, now_ms).await? {
        return Ok(Take::Granted);
    }
    let n = |v: i64| AttributeValue::N(v.to_string());
    // A busy bucket: one more interval, if that stays within the tolerance.
    let limit = now_ms + rate.tolerance_ms - rate.interval_ms;
    let busy = table
        .update_or_read(
            key,
            "SET tat = tat + :interval",
            Some("tat >= :now AND tat <= :limit"),
            &[
                (":interval", n(rate.interval_ms)),
                (":now", n(now_ms)),
                (":limit", n(limit)),
            ],
        )
        .await?;
    Ok(match busy {
        Updated::Done => Take::Granted,
        Updated::NotNow(item) => {
            let tat = item.as_ref().and_then(|i| match i.get("tat") {
                Some(AttributeValue::N(t)) => t.parse::<i64>().ok(),
                _ => None,
            });
            Take::Spent {
                // `tat` fell back below the limit by then; with no `tat` (the bucket went idle
                // meanwhile), try again at once.
                retry_in_ms: tat.map_or(0, |tat| tat.saturating_sub(limit).clamp(0, 60_000)),
            }
        }
    })
}

/// Bucket items outlive any `tat` worth keeping by a day (the table's TTL, epoch seconds).
fn expires_at(now_ms: i64) -> i64 {
    super::table::expires_in_days(now_ms, 1)
}

/// After HealthLake throttled: no environment calls it again for [`THROTTLE_BACKOFF_MS`].
pub(crate) async fn back_off_shared(table: &Table, rate: Rate, now_ms: i64) -> Result<(), TableError> {
    let until = now_ms + THROTTLE_BACKOFF_MS + rate.tolerance_ms;
    table
        .update(
            BUDGET_KEY,
            "SET tat = :until, expiresAt = :exp",
            Some("attribute_not_exists(tat) OR tat < :until"),
            &[
                (":until", AttributeValue::N(until.to_string())),
                (":exp", AttributeValue::N(expires_at(now_ms).to_string())),
            ],
        )
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_never_exceeds_the_rate() {
        assert_eq!(Rate::per_second(8).interval_ms, 125);
        assert_eq!(Rate::per_second(3).interval_ms, 334);
        assert_eq!(Rate::per_second(1_000).interval_ms, 1);
        assert_eq!(Rate::per_second(1).tolerance_ms, 1_000);
        assert_eq!(Rate::per_second(8).tolerance_ms, 500);
    }

    #[test]
    fn a_caller_and_misses_get_a_bounded_share() {
        let fleet = Rate::per_second(8);
        let caller = Rate::per_caller(fleet);
        assert_eq!(caller.interval_ms, 250, "half of 8 a second");
        assert_eq!(caller.tolerance_ms, 2_000, "8 at once");
        assert_eq!(Rate::per_caller(Rate::per_second(1)).interval_ms, 1_000);
        assert_eq!(fleet.for_misses().tolerance_ms, 250);
        assert_eq!(Rate::per_second(1).for_misses().tolerance_ms, 1_000);
    }
}
