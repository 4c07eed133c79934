//! An AWS Lambda function that reports the state of an AWS HealthLake FHIR export job.
//!
//! A request flows `runtime` (the Lambda event) → `handler` → `route` (where the ids are) →
//! `ids` (are they valid) → `cache` or `upstream` (HealthLake) → `job` (what to tell) →
//! `response` (the HTTP answer). `error` is the one enum for everything that can go wrong.

pub mod cache;
pub mod config;
pub mod error;
pub mod handler;
pub mod ids;
pub mod job;
pub mod logging;
pub mod response;
pub mod route;
pub mod runtime;
pub mod upstream;
pub mod warmup;
