//! An AWS Lambda function that reports the state of an AWS HealthLake FHIR export job.
//!
//! A request flows `lambda_event` (the Lambda event in, its answer out) → `handler` → `route`
//! (where the ids are) → `ids` (are they valid) → `cache` or `upstream` (HealthLake) → `job`
//! (what to tell, with `redact`) → `response` (the HTTP answer). `scope` decides who may read
//! which datastore, and which fields they are told. With `STATUS_TABLE` set, `fleet` stands
//! between the handler and `upstream`: the shared tier and the fleet-wide HealthLake budget
//! (docs/fleet.md). `error` is the one enum for everything that can go wrong, and its table of
//! answers. Around them: `event_source` (which source an unreadable event came from, to answer in
//! its shape), `metrics` (the request line as EMF), `logging`, `panic_log` (a panic is one JSON
//! line) and `warmup` (the first request's connection opened during start-up).
//!
//! Modules are public where the local run, the tests, the benchmark or the fuzzers need them;
//! everything else is `pub(crate)`, so that the compiler points at dead code.

mod cache;
pub mod config;
pub mod error;
pub mod event_source;
pub mod fleet;
pub mod handler;
pub mod ids;
pub mod job;
pub mod lambda_event;
pub mod logging;
pub mod metrics;
pub mod panic_log;
pub mod redact;
mod response;
pub mod route;
mod scope;
pub mod upstream;
pub mod warmup;
