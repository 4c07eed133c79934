//! The shared table (DynamoDB): one item per job the fleet has answered, plus the budget item.
//! Every call has its own small time budget and no retries: a table that is slow or failing is
//! one the function goes on without, never one it waits for.
//!
//! A job item (`pk = "job#<datastoreId>#<jobId>"`; `#` cannot occur in either id):
//! - `body` (S): the job document as rendered from HealthLake's answer;
//! - `submitted` (N): the job's submit time, epoch seconds, for the poll hint;
//! - `checkedAt` (N): when HealthLake was read, epoch milliseconds;
//! - `missingAt` (N, instead of the three above): when HealthLake said there is no such job;
//! - `leaseUntil` (N, optional): until when one environment is refreshing it, epoch ms;
//! - `expiresAt` (N): the table's TTL, epoch seconds;
//! - `v` (N): this layout's version, 1.
//!
//! The table is input, not truth: an item is used only if every member is there with its type,
//! no time lies in the future (beyond a small clock skew), and its body parses as a job document
//! with no member of any other name, for exactly the job asked about, that says the same about
//! terminality as its status does (`JobView::from_stored`). What is served is that document
//! rendered again, never the stored text. Anything else is treated as no item (and logged), and
//! is overwritten by the next refresh.

use crate::aws;
use crate::ids::{DatastoreId, JobId};
use crate::job::{JobView, RenderedJob};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

const LAYOUT_VERSION: &str = "1";
/// A job document is about a kilobyte; anything far larger is not one of ours.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How far ahead of this clock another environment's may run: a time later than now plus this
/// is a lie, not a skew.
pub(crate) const CLOCK_SKEW_MS: i64 = 5_000;
/// Terminal jobs never change: keep them for a week.
pub(crate) const TERMINAL_TTL_DAYS: i64 = 7;
/// A running job's item outlives any answer worth serving; it is rewritten on every refresh.
pub(crate) const RUNNING_TTL_DAYS: i64 = 1;

pub(crate) struct Table {
    client: Client,
    name: String,
    timeout: Duration,
}

/// Why a table call did not give an answer: for the log line only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableError(pub String);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the table knows about one job.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct JobItem {
    pub(crate) rendered: Option<RenderedJob>,
    pub(crate) checked_ms: Option<i64>,
    /// When HealthLake last said there is no such job.
    pub(crate) missing_ms: Option<i64>,
    pub(crate) lease_until_ms: Option<i64>,
}

/// What a conditional update came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Updated {
    Done,
    /// The condition did not hold; the item as it was, when the table said.
    NotNow(Option<HashMap<String, AttributeValue>>),
}

impl Table {
    pub(crate) fn new(client: Client, name: String, timeout: Duration) -> Self {
        Table {
            client,
            name,
            timeout,
        }
    }

    /// A strongly consistent read: the lease and the freshness it decides on must be current.
    pub(crate) async fn get(&self, pk: &str) -> Result<Option<HashMap<String, AttributeValue>>, TableError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send();
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(TableError("Timeout".into())),
            Ok(Err(e)) => Err(TableError(aws::error_code(&e))),
            Ok(Ok(out)) => Ok(out.item),
        }
    }

    /// One conditional update. `Ok(false)`: the condition did not hold, nothing was written.
    pub(crate) async fn update(
        &self,
        pk: &str,
        update: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, TableError> {
        Ok(self.update_or_read(pk, update, condition, values).await? == Updated::Done)
    }

    /// As [`Table::update`], and when the condition does not hold, the item as it was (DynamoDB
    /// returns it with the failure, at no extra call).
    pub(crate) async fn update_or_read(
        &self,
        pk: &str,
        update: &str,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<Updated, TableError> {
        let mut call = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        for (name, value) in values {
            call = call.expression_attribute_values(*name, value.clone());
        }
        match tokio::time::timeout(self.timeout, call.send()).await {
            Err(_) => Err(TableError("Timeout".into())),
            Ok(Ok(_)) => Ok(Updated::Done),
            Ok(Err(e)) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Updated::NotNow(c.item.clone()))
                }
                _ => Err(TableError(aws::error_code(&e))),
            },
        }
    }

    pub(crate) async fn read_job(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        now_ms: i64,
    ) -> Result<JobItem, TableError> {
        let item = self.get(&job_key(ds, job)).await?.unwrap_or_default();
        decode(ds, job, &item, now_ms)
    }

    /// Takes the lease on refreshing `job` until `until_ms`, if no one holds it (a lease that
    /// ends after `until_ms` and a clock skew is no lease anyone took) and, with `stale_before_ms`, the answer is
    /// still older than that (an environment may have refreshed it meanwhile). Without it (the
    /// item was unusable), only the lease is looked at.
    pub(crate) async fn lease_job(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        now_ms: i64,
        until_ms: i64,
        stale_before_ms: Option<i64>,
    ) -> Result<bool, TableError> {
        let lease_free = "(attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseUntil > :maxLease)";
        let mut values = vec![
            (":until", num(until_ms)),
            (":maxLease", num(until_ms + CLOCK_SKEW_MS)),
            (":now", num(now_ms)),
            (":exp", num(expires_in_days(now_ms, RUNNING_TTL_DAYS))),
        ];
        let condition = match stale_before_ms {
            Some(stale_before) => {
                values.push((":staleBefore", num(stale_before)));
                format!(
                    "{lease_free} AND (attribute_not_exists(checkedAt) OR checkedAt < :staleBefore) \
                     AND (attribute_not_exists(missingAt) OR missingAt < :staleBefore)"
                )
            }
            None => lease_free.to_owned(),
        };
        self.update(
            &job_key(ds, job),
            "SET leaseUntil = :until, expiresAt = if_not_exists(expiresAt, :exp)",
            Some(&condition),
            &values,
        )
        .await
    }

    /// HealthLake said there is no such job: remembered for the fleet (a refresh interval, as a
    /// job's answer), unless the table knows the job, and any lease ends.
    pub(crate) async fn store_missing(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        checked_ms: i64,
        overwrite: bool,
    ) -> Result<bool, TableError> {
        self.update(
            &job_key(ds, job),
            "SET missingAt = :checked, expiresAt = :exp, v = :v REMOVE leaseUntil",
            (!overwrite).then_some("attribute_not_exists(body)"),
            &[
                (":checked", num(checked_ms)),
                (":exp", num(expires_in_days(checked_ms, RUNNING_TTL_DAYS))),
                (":v", AttributeValue::N(LAYOUT_VERSION.into())),
            ],
        )
        .await
    }

    /// Gives a lease back early (HealthLake failed): the next try may come at `retry_at_ms`.
    pub(crate) async fn release_job(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        held_until_ms: i64,
        retry_at_ms: i64,
    ) -> Result<bool, TableError> {
        self.update(
            &job_key(ds, job),
            "SET leaseUntil = :retry",
            Some("leaseUntil = :mine"),
            &[(":retry", num(retry_at_ms)), (":mine", num(held_until_ms))],
        )
        .await
    }

    /// Stores a fresh answer, unless the table already has a newer one (`overwrite`: whatever it
    /// has, for an item found unusable); ends any lease.
    pub(crate) async fn store_job(
        &self,
        ds: &DatastoreId,
        job: &JobId,
        rendered: &RenderedJob,
        checked_ms: i64,
        overwrite: bool,
    ) -> Result<bool, TableError> {
        let days = if rendered.terminal {
            TERMINAL_TTL_DAYS
        } else {
            RUNNING_TTL_DAYS
        };
        self.update(
            &job_key(ds, job),
            "SET body = :body, submitted = :submitted, checkedAt = :checked, expiresAt = :exp, v = :v \
             REMOVE leaseUntil, missingAt",
            (!overwrite).then_some("attribute_not_exists(checkedAt) OR checkedAt < :checked"),
            &[
                (":body", AttributeValue::S(rendered.body.clone())),
                (":submitted", num(rendered.submitted_epoch)),
                (":checked", num(checked_ms)),
                (":exp", num(expires_in_days(checked_ms, days))),
                (":v", AttributeValue::N(LAYOUT_VERSION.into())),
            ],
        )
        .await
    }
}

pub(crate) fn job_key(ds: &DatastoreId, job: &JobId) -> String {
    format!("job#{}#{}", ds.as_str(), job.as_str())
}

pub(crate) fn expires_in_days(now_ms: i64, days: i64) -> i64 {
    now_ms / 1_000 + days * 86_400
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Reads a job item; a malformed one is an error (logged by the caller) and is never served.
pub(crate) fn decode(
    ds: &DatastoreId,
    job: &JobId,
    item: &HashMap<String, AttributeValue>,
    now_ms: i64,
) -> Result<JobItem, TableError> {
    let bad = |what: &str| TableError(format!("MalformedItem({what})"));
    let number = |name: &str| -> Result<Option<i64>, TableError> {
        match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| bad(name)),
            Some(_) => Err(bad(name)),
        }
    };
    // A time from the future would keep the item fresh, or its lease held, for ever.
    let past = |name: &str| -> Result<Option<i64>, TableError> {
        match number(name)? {
            Some(t) if t > now_ms.saturating_add(CLOCK_SKEW_MS) => Err(bad(name)),
            t => Ok(t),
        }
    };
    let lease_until_ms = number("leaseUntil")?;
    let missing_ms = past("missingAt")?;
    if !item.contains_key("body") {
        // Only a lease so far (the first refresh of this job is under way), a job HealthLake
        // did not know, or nothing at all.
        if missing_ms.is_some() && !matches!(item.get("v"), Some(AttributeValue::N(v)) if v == LAYOUT_VERSION)
        {
            return Err(bad("v"));
        }
        return Ok(JobItem {
            missing_ms,
            lease_until_ms,
            ..JobItem::default()
        });
    }
    match item.get("v") {
        Some(AttributeValue::N(v)) if v == LAYOUT_VERSION => {}
        _ => return Err(bad("v")),
    }
    let Some(AttributeValue::S(body)) = item.get("body") else {
        return Err(bad("body"));
    };
    let submitted = number("submitted")?.ok_or_else(|| bad("submitted"))?;
    let checked_ms = past("checkedAt")?.ok_or_else(|| bad("checkedAt"))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(bad("body"));
    }
    let view = JobView::from_stored(body, ds, job, submitted).ok_or_else(|| bad("body"))?;
    Ok(JobItem {
        rendered: Some(view.render()),
        checked_ms: Some(checked_ms),
        missing_ms: None,
        lease_until_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (DatastoreId, JobId) {
        (DatastoreId::parse("ds1").unwrap(), JobId::parse("job1").unwrap())
    }

    fn item(body: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".into(), AttributeValue::S("job#ds1#job1".into())),
            ("body".into(), AttributeValue::S(body.into())),
            ("submitted".into(), num(1_700_000_000)),
            ("checkedAt".into(), num(1_700_000_100_000)),
            ("v".into(), AttributeValue::N("1".into())),
        ])
    }

    const GOOD: &str = r#"{"datastoreId":"ds1","jobId":"job1","status":"IN_PROGRESS","terminal":false,"submittedAt":"2023-11-14T22:13:20.123Z"}"#;
    const NOW: i64 = 1_700_000_200_000;

    fn decode(
        ds: &DatastoreId,
        job: &JobId,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<JobItem, TableError> {
        super::decode(ds, job, item, NOW)
    }

    #[test]
    fn reads_a_good_item() {
        let (ds, job) = ids();
        let got = decode(&ds, &job, &item(GOOD)).unwrap();
        let rendered = got.rendered.unwrap();
        assert_eq!(rendered.body, GOOD);
        assert!(!rendered.terminal);
        assert_eq!(got.checked_ms, Some(1_700_000_100_000));
        assert_eq!(decode(&ds, &job, &HashMap::new()).unwrap().rendered, None);
        // Insignificant white space and member order are the stored text's: the answer is the
        // document rendered again.
        let spaced = GOOD.replace(",", ", ");
        assert_eq!(
            decode(&ds, &job, &item(&spaced)).unwrap().rendered.unwrap().body,
            GOOD
        );
    }

    #[test]
    fn never_serves_a_bad_item() {
        let (ds, job) = ids();
        let another = GOOD.replace("job1", "job2");
        let lying = GOOD.replace(r#""terminal":false"#, r#""terminal":true"#);
        let extra = GOOD.replace(r#""status""#, r#""note":"x","status""#);
        for body in ["", "[]", "{}", "null", &another, &lying, &extra] {
            assert!(decode(&ds, &job, &item(body)).is_err(), "{body}");
        }
        // A time in the future would keep the item fresh for ever; i64::MIN must not wrap.
        for (name, value) in [("checkedAt", NOW + CLOCK_SKEW_MS + 1), ("missingAt", i64::MAX)] {
            let mut it = item(GOOD);
            it.insert(name.into(), num(value));
            assert!(decode(&ds, &job, &it).is_err(), "{name}");
        }
        let mut old = item(GOOD);
        old.insert("checkedAt".into(), num(i64::MIN));
        assert_eq!(decode(&ds, &job, &old).unwrap().checked_ms, Some(i64::MIN));
        for (name, value) in [
            ("v", AttributeValue::N("2".into())),
            ("checkedAt", AttributeValue::S("soon".into())),
            ("submitted", AttributeValue::N("1.5e".into())),
            ("body", AttributeValue::N("1".into())),
            ("leaseUntil", AttributeValue::Bool(true)),
        ] {
            let mut it = item(GOOD);
            it.insert(name.into(), value);
            assert!(decode(&ds, &job, &it).is_err(), "{name}");
        }
        let mut missing = item(GOOD);
        missing.remove("checkedAt");
        assert!(decode(&ds, &job, &missing).is_err());
    }
}
