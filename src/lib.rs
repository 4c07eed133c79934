//! An AWS Lambda function that reports the state of an AWS HealthLake FHIR export job.
//!
//! # The map
//!
//! A request goes down the page and its answer comes back up:
//!
//! | layer | modules | job |
//! |---|---|---|
//! | entry | `lambda` | Lambda events in, answers out, in the shape of the event's source |
//! | handler | `handler` | one request, one response: the only module that combines the stages |
//! | stages | `route`, `access`, `lookup`, `reply` | where the ids are; who may read what; the answer from memory, the fleet's table or HealthLake; the HTTP answer |
//! | the document | `job` | the job as callers are told it, trimmed per caller (`job::redact` scrubs HealthLake's text) |
//! | base | `aws`, `config`, `telemetry`, `error`, `ids` | every AWS client and the SDK's configuration; every variable; logging, metrics, the panic line; the one error enum and its table; the two ids |
//!
//! # The rule
//!
//! A module imports only from its own layer's base or below: the base imports only base modules
//! further down its row's order (`aws` → `config` → `telemetry` → `error` → `ids`); `job`
//! imports the base; a stage imports the base and `job`, never another stage; only `handler`
//! imports the stages, and only `lambda` imports `handler`. `tests/it/layers.rs` reads the `use
//! crate::` lines and fails on a circle or an arrow against this rule.
//!
//! Modules are public where the local run, the tests, the benchmark or the fuzzers need them;
//! everything else is `pub(crate)`, so that the compiler points at dead code.

// Entry and handler.
pub mod handler;
pub mod lambda;

// Stages.
mod access;
mod lookup;
mod reply;
pub mod route;

// The document.
pub mod job;

// Base.
pub mod aws;
pub mod config;
pub mod error;
pub mod ids;
pub mod telemetry;

/// What the benchmark and tests read the clock with (epoch milliseconds, as the shared table).
pub use lookup::now_ms;
