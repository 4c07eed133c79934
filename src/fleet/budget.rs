//! The fleet-wide HealthLake budget: a rate limiter (GCRA, the single-number form of a token
//! bucket) kept in one item of the shared table, so that every execution environment draws from
//! the same allowance. The item holds `tat`, the "theoretical arrival time" in epoch
//! milliseconds: a call is allowed when pushing `tat` one interval further keeps it within the
//! burst tolerance of now. Each take is one conditional update (two when the bucket was busy), so
//! no environment ever reads and then writes a stale value. A throttled call pushes `tat` past
//! now for everyone: the shared back-off.
//!
//! When the table cannot be used, the same arithmetic runs in memory for this environment alone.

use crate::fleet::table::{self, Table, TableError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::Mutex;

/// The item's key: one budget per table, whatever the datastore (HealthLake's quota is per
/// account and region).
pub(crate) const BUDGET_KEY: &str = "budget#healthlake";
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    Granted,
    Spent,
}

/// Takes one call from the fleet's budget.
pub(crate) async fn take_shared(table: &Table, rate: Rate, now_ms: i64) -> Result<Take, TableError> {
    let n = |v: i64| AttributeValue::N(v.to_string());
    // An idle bucket (or none yet): start from now.
    let idle = table
        .update(
            BUDGET_KEY,
            "SET tat = :next, expiresAt = :exp",
            Some("attribute_not_exists(tat) OR tat < :now"),
            &[
                (":next", n(now_ms + rate.interval_ms)),
                (":now", n(now_ms)),
                (":exp", n(table::expires_in_days(now_ms, 1))),
            ],
        )
        .await?;
    if idle {
        return Ok(Take::Granted);
    }
    // A busy bucket: one more interval, if that stays within the tolerance.
    let busy = table
        .update(
            BUDGET_KEY,
            "SET tat = tat + :interval",
            Some("tat >= :now AND tat <= :limit"),
            &[
                (":interval", n(rate.interval_ms)),
                (":now", n(now_ms)),
                (":limit", n(now_ms + rate.tolerance_ms - rate.interval_ms)),
            ],
        )
        .await?;
    Ok(if busy { Take::Granted } else { Take::Spent })
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
                (
                    ":exp",
                    AttributeValue::N(table::expires_in_days(now_ms, 1).to_string()),
                ),
            ],
        )
        .await
        .map(|_| ())
}

/// The same limiter for this environment alone, used while the table fails.
#[derive(Debug)]
pub(crate) struct LocalBudget {
    rate: Rate,
    tat: Mutex<i64>,
}

impl LocalBudget {
    pub(crate) fn new(rate: Rate) -> Self {
        LocalBudget {
            rate,
            tat: Mutex::new(0),
        }
    }

    pub(crate) fn take(&self, now_ms: i64) -> Take {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let next = (*tat).max(now_ms) + self.rate.interval_ms;
        if next - now_ms <= self.rate.tolerance_ms {
            *tat = next;
            Take::Granted
        } else {
            Take::Spent
        }
    }

    pub(crate) fn back_off(&self, now_ms: i64) {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        *tat = (*tat).max(now_ms + THROTTLE_BACKOFF_MS + self.rate.tolerance_ms);
    }
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
    fn local_budget_allows_the_rate_and_a_short_burst() {
        let b = LocalBudget::new(Rate::per_second(8));
        let granted = |from: i64, to: i64, step: i64| {
            (from..to)
                .step_by(step as usize)
                .filter(|t| b.take(*t) == Take::Granted)
                .count()
        };
        // A burst at one instant: half a second's worth.
        assert_eq!(granted(0, 100, 1), 4);
        // Then, asked every millisecond for ten seconds, 8 a second.
        let steady = granted(100, 10_100, 1);
        assert!((79..=81).contains(&steady), "{steady}");
        b.back_off(20_000);
        assert_eq!(granted(20_000, 21_000, 1), 0, "nothing during the back-off");
        assert!(granted(21_000, 22_000, 1) > 0);
    }
}
