//! What a caller is told about an export job: HealthLake's answer checked, reduced to the
//! documented fields (with `redact` applied to HealthLake's own text), rendered once, and trimmed
//! for each kind of caller ([`Fields`]).

pub mod redact;

use crate::error::UpstreamError;
use crate::ids::{DatastoreId, JobId};
use aws_sdk_healthlake::types::{ExportJobProperties, JobStatus, OutputDataConfig};
use aws_smithy_types::DateTime;
use redact::{scrub, scrub_s3};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Statuses after which a job never changes. CANCEL_FAILED is not one: the cancel failed, so the
/// job goes on towards COMPLETED or FAILED. An unknown (newer than this build) status is treated
/// as running: it is passed through, never cached, and pollers keep polling.
pub fn is_terminal(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Completed
            | JobStatus::CompletedWithErrors
            | JobStatus::Failed
            | JobStatus::CancelCompleted
    )
}

/// Which fields an answer may carry. The caches hold the whole document, keyed by datastore and
/// job; [`Fields::restrict`] trims it for each caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fields {
    All,
    /// Without `outputS3Uri` (the customer's bucket and prefix layout), and without S3 locations
    /// or the bucket's name in `message`.
    WithoutOutputUri,
}

impl Fields {
    /// The answer this caller may be told: the cached document as it is, or rendered again
    /// without what the caller may not see (its own body, so its own ETag).
    pub(crate) fn restrict(self, rendered: Arc<RenderedJob>) -> Arc<RenderedJob> {
        match self {
            Fields::All => rendered,
            Fields::WithoutOutputUri => rendered.without_output_location().map_or(rendered, Arc::new),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JobView {
    pub(crate) datastore_id: String,
    pub(crate) job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) job_name: Option<String>,
    pub(crate) status: String,
    pub(crate) terminal: bool,
    pub(crate) submitted_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    #[serde(rename = "outputS3Uri", skip_serializing_if = "Option::is_none")]
    pub(crate) output_s3_uri: Option<String>,
    /// Seconds since the Unix epoch, for the poll hint; not part of the document.
    #[serde(skip)]
    pub(crate) submitted_epoch: i64,
}

/// A job view rendered to bytes once, with what the response headers need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenderedJob {
    /// What `body` says, so that a narrower answer drops members from the document itself.
    pub(crate) view: JobView,
    pub(crate) body: String,
    pub(crate) etag: String,
    pub(crate) terminal: bool,
    /// Seconds since the Unix epoch, for the poll hint.
    pub(crate) submitted_epoch: i64,
}

impl JobView {
    /// Builds the view from HealthLake's answer. The SDK fills required fields that the wire
    /// answer lacked with defaults (empty strings, the epoch, "no value was set"): those, and an
    /// answer about another job, are a broken upstream, not a job.
    pub(crate) fn from_sdk(
        datastore: &DatastoreId,
        job: &JobId,
        p: &ExportJobProperties,
    ) -> Result<Self, UpstreamError> {
        let status = p.job_status();
        let submitted = p.submit_time();
        if p.job_id() != job.as_str()
            || p.datastore_id() != datastore.as_str()
            || !is_status_word(status.as_str())
            || submitted.secs() == 0 && submitted.subsec_nanos() == 0
        {
            return Err(UpstreamError::malformed());
        }
        let output_s3_uri = match p.output_data_config() {
            Some(OutputDataConfig::S3Configuration(s3)) => Some(scrub(s3.s3_uri())),
            _ => None,
        };
        let view = JobView {
            datastore_id: datastore.to_string(),
            job_id: job.to_string(),
            job_name: p.job_name().map(str::to_owned),
            status: status.as_str().to_owned(),
            terminal: is_terminal(status),
            submitted_at: rfc3339_millis(submitted).ok_or_else(UpstreamError::malformed)?,
            ended_at: match p.end_time() {
                Some(t) => Some(rfc3339_millis(t).ok_or_else(UpstreamError::malformed)?),
                None => None,
            },
            message: p.message().map(scrub),
            output_s3_uri,
            submitted_epoch: submitted.secs(),
        };
        Ok(view)
    }

    pub(crate) fn render(self) -> RenderedJob {
        let body = serde_json::to_string(&self).expect("a JobView always serializes");
        RenderedJob {
            etag: etag_of(body.as_bytes()),
            body,
            terminal: self.terminal,
            submitted_epoch: self.submitted_epoch,
            view: self,
        }
    }

    /// A document that this function rendered earlier and another process kept (the shared
    /// table), read as untrusted input: it must parse as a job document with no member of any
    /// other name, be about `datastore` and `job`, say the same about terminality as its status,
    /// and carry a submit time that is `submitted_epoch`. HealthLake's text in it is scrubbed
    /// again. The caller serves what [`JobView::render`] makes of it, never the stored text.
    pub(crate) fn from_stored(
        body: &str,
        datastore: &DatastoreId,
        job: &JobId,
        submitted_epoch: i64,
    ) -> Option<JobView> {
        let mut view: JobView = serde_json::from_str(body).ok()?;
        let submitted = PrimitiveDateTime::parse(&view.submitted_at, RFC3339_MILLIS)
            .ok()?
            .assume_utc();
        let time_ok = |t: &str| PrimitiveDateTime::parse(t, RFC3339_MILLIS).is_ok();
        let ok = view.datastore_id == datastore.as_str()
            && view.job_id == job.as_str()
            && is_status_word(&view.status)
            && view.terminal == is_terminal(&JobStatus::from(view.status.as_str()))
            && submitted.unix_timestamp() == submitted_epoch
            && view.ended_at.as_deref().is_none_or(time_ok)
            && view.job_name.as_deref().is_none_or(|n| n.chars().count() <= 64);
        if !ok {
            return None;
        }
        view.message = view.message.as_deref().map(scrub);
        view.output_s3_uri = view.output_s3_uri.as_deref().map(scrub);
        view.submitted_epoch = submitted_epoch;
        Some(view)
    }
}

impl RenderedJob {
    /// This document for a caller who may not know where the export went: without
    /// `outputS3Uri`, and with S3 locations and the bucket's name out of `message`. Rendered
    /// again from the view (so the ETag is the one every environment renders), or `None` when
    /// there is nothing to take out.
    pub(crate) fn without_output_location(&self) -> Option<RenderedJob> {
        let mut view = self.view.clone();
        let uri = view.output_s3_uri.take();
        let bucket = uri.as_deref().and_then(bucket_of);
        view.message = view.message.as_deref().map(|m| scrub_s3(m, bucket));
        (view != self.view).then(|| view.render())
    }
}

/// The bucket of an `s3://bucket/prefix` URI.
fn bucket_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("s3://")?;
    let bucket = rest.split('/').next()?;
    (!bucket.is_empty()).then_some(bucket)
}

/// HealthLake's statuses are upper-case words joined by underscores; anything else (including
/// the SDK's "no value was set") means the answer was not a real status.
fn is_status_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// RFC 3339 in UTC with exactly three fractional digits. HealthLake sends epoch seconds as a
/// JSON number (1700000000.123 arrives as ...122999906 ns), so round to the nearest millisecond.
pub fn rfc3339_millis(t: &DateTime) -> Option<String> {
    let nanos = i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos());
    let millis = (nanos + 500_000).div_euclid(1_000_000);
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .ok()
        // RFC 3339 years are four digits: a time before year 0 is not one to pass on.
        .filter(|t| t.year() >= 0)?
        .format(RFC3339_MILLIS)
        .ok()
}

/// A strong ETag over the exact body bytes (FNV-1a, 64 bits): the same body gives the same tag in
/// every execution environment, and any change in the body changes the tag.
fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_healthlake::types::S3Configuration;

    fn ids() -> (DatastoreId, JobId) {
        (DatastoreId::parse("ds1").unwrap(), JobId::parse("job1").unwrap())
    }

    fn props(status: &str) -> aws_sdk_healthlake::types::builders::ExportJobPropertiesBuilder {
        ExportJobProperties::builder()
            .job_id("job1")
            .datastore_id("ds1")
            .job_status(JobStatus::from(status))
            .submit_time(DateTime::from_secs_and_nanos(1_700_000_000, 123_456_789))
    }

    #[test]
    fn terminal_statuses_are_the_documented_ones() {
        for s in ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCEL_COMPLETED"] {
            assert!(is_terminal(&JobStatus::from(s)), "{s}");
        }
        for s in [
            "SUBMITTED",
            "QUEUED",
            "IN_PROGRESS",
            "CANCEL_SUBMITTED",
            "CANCEL_IN_PROGRESS",
            "CANCEL_FAILED",
            "PAUSED",
        ] {
            assert!(!is_terminal(&JobStatus::from(s)), "{s}");
        }
    }

    #[test]
    fn renders_the_documented_fields_and_omits_absent_ones() {
        let (ds, job) = ids();
        let p = props("IN_PROGRESS").build().unwrap();
        let view = JobView::from_sdk(&ds, &job, &p).unwrap();
        assert_eq!(view.submitted_epoch, 1_700_000_000);
        assert_eq!(
            view.render().body,
            r#"{"datastoreId":"ds1","jobId":"job1","status":"IN_PROGRESS","terminal":false,"submittedAt":"2023-11-14T22:13:20.123Z"}"#
        );
    }

    #[test]
    fn passes_optional_fields_and_never_the_role_or_key() {
        let (ds, job) = ids();
        let p = props("COMPLETED")
            .job_name("nightly")
            .end_time(DateTime::from_secs_and_nanos(1_700_000_360, 5_000_000))
            .message("done")
            .data_access_role_arn("arn:aws:iam::123456789012:role/HealthLakeExport")
            .output_data_config(OutputDataConfig::S3Configuration(
                S3Configuration::builder()
                    .s3_uri("s3://exports/nightly/")
                    .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        let body = JobView::from_sdk(&ds, &job, &p).unwrap().render().body;
        assert_eq!(
            body,
            r#"{"datastoreId":"ds1","jobId":"job1","jobName":"nightly","status":"COMPLETED","terminal":true,"submittedAt":"2023-11-14T22:13:20.123Z","endedAt":"2023-11-14T22:19:20.005Z","message":"done","outputS3Uri":"s3://exports/nightly/"}"#
        );
    }

    #[test]
    fn unknown_statuses_pass_through_as_running() {
        let (ds, job) = ids();
        let view = JobView::from_sdk(&ds, &job, &props("PAUSED_FOR_MAINTENANCE").build().unwrap()).unwrap();
        assert_eq!(view.status, "PAUSED_FOR_MAINTENANCE");
        assert!(!view.terminal);
    }

    #[test]
    fn answers_missing_required_fields_are_malformed() {
        let (ds, job) = ids();
        // What the SDK's error correction fills in for absent required members.
        let cases = [
            props("no value was set").build().unwrap(),
            props("QUEUED").job_id("").build().unwrap(),
            props("QUEUED").datastore_id("").build().unwrap(),
            props("QUEUED")
                .submit_time(DateTime::from_secs(0))
                .build()
                .unwrap(),
            props("QUEUED").job_id("another-job").build().unwrap(),
        ];
        for p in cases {
            assert!(JobView::from_sdk(&ds, &job, &p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn timestamps_round_to_milliseconds() {
        let t = |s, n| rfc3339_millis(&DateTime::from_secs_and_nanos(s, n)).unwrap();
        assert_eq!(
            rfc3339_millis(&DateTime::from_secs_f64(1_700_000_000.123)).unwrap(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(t(0, 999_999_999), "1970-01-01T00:00:01.000Z");
        assert_eq!(t(0, 1_499_999), "1970-01-01T00:00:00.001Z");
        assert_eq!(t(1_700_000_000, 0), "2023-11-14T22:13:20.000Z");
        assert_eq!(rfc3339_millis(&DateTime::from_secs(i64::MAX)), None);
    }

    #[test]
    fn a_stored_body_is_read_as_untrusted_and_rendered_again() {
        let (ds, job) = ids();
        let good = props("IN_PROGRESS")
            .message("see arn:aws:iam::123456789012:role/R")
            .build()
            .unwrap();
        let rendered = JobView::from_sdk(&ds, &job, &good).unwrap().render();
        let back = JobView::from_stored(&rendered.body, &ds, &job, 1_700_000_000).unwrap();
        assert_eq!(back.render(), rendered);
        let body = &rendered.body;
        for bad in [
            body.replace(r#""status""#, r#""extra":1,"status""#),
            body.replace(r#""jobId":"job1""#, r#""jobId":"job2""#),
            body.replace(r#""terminal":false"#, r#""terminal":true"#),
            body.replace("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:21.123Z"),
            body.replace("2023-11-14T22:13:20.123Z", "yesterday"),
            body.replace("IN_PROGRESS", "in progress"),
            "{}".to_owned(),
        ] {
            assert!(
                JobView::from_stored(&bad, &ds, &job, 1_700_000_000).is_none(),
                "{bad}"
            );
        }
        // What another writer put there unscrubbed is scrubbed on the way out.
        let raw = body.replace("[redacted]", "arn:aws:iam::123456789012:role/R");
        let view = JobView::from_stored(&raw, &ds, &job, 1_700_000_000).unwrap();
        assert_eq!(view.message.as_deref(), Some("see [redacted]"));
    }

    #[test]
    fn the_output_location_is_dropped_from_the_document_and_the_message() {
        let (ds, job) = ids();
        let p = props("FAILED")
            .message("could not write s3://acme-exports/nightly/x.ndjson to acme-exports")
            .output_data_config(OutputDataConfig::S3Configuration(
                S3Configuration::builder()
                    .s3_uri("s3://acme-exports/nightly/")
                    .kms_key_id("k")
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        let full = JobView::from_sdk(&ds, &job, &p).unwrap().render();
        let narrow = full.without_output_location().unwrap();
        assert!(!narrow.body.contains("outputS3Uri"), "{}", narrow.body);
        assert!(!narrow.body.contains("acme-exports"), "{}", narrow.body);
        assert_ne!(narrow.etag, full.etag);
        // A member name spelled with a JSON escape is the same member: it cannot get past.
        let escaped = full.body.replace("outputS3Uri", "outputS3\\u0055ri");
        let view = JobView::from_stored(&escaped, &ds, &job, 1_700_000_000).unwrap();
        assert!(view
            .render()
            .without_output_location()
            .unwrap()
            .view
            .output_s3_uri
            .is_none());
        let plain = JobView::from_sdk(&ds, &job, &props("QUEUED").build().unwrap())
            .unwrap()
            .render();
        assert_eq!(plain.without_output_location(), None);
    }

    #[test]
    fn etag_follows_the_body() {
        let a = etag_of(b"{\"status\":\"QUEUED\"}");
        assert_eq!(a, etag_of(b"{\"status\":\"QUEUED\"}"));
        assert_ne!(a, etag_of(b"{\"status\":\"IN_PROGRESS\"}"));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 18);
    }
}
