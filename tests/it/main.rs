//! The integration tests, in one binary.
//!
//! - `common`: the function's handler in-process, with the real SDK client pointed at the loopback
//!   HealthLake stand-in; `binary`: the compiled function under a loopback Lambda Runtime API, as
//!   Lambda runs it.
//! - In-process: `contract` (the HTTP contract, every row of the error table), `events` (the
//!   sample events of `events/`), `properties` (property tests).
//! - The compiled binary: `e2e` (every event source), `fail_closed` (issue 20: items that lie, the
//!   quota, routing, S3 names), `faults`, `log_secrets`, `scoping` (partner
//!   and IAM callers, with moto's DynamoDB from `loopback::moto`), `unreadable` (events lambda_http
//!   cannot read), `corpus` (public events from tests/corpus/).
//! - `warmup`: the HealthLake connection opened during start-up.
//! - `fleet`: the shared tier against moto (a DynamoDB-compatible server it starts), in-process
//!   and across processes of the binary.
//! - The documents: `template` (the SAM template's IAM), `problems` (openapi.yaml against the
//!   error table), `docs` (the tables of README.md and docs/ against the code and the template).
//! - The code: `layers` (src/'s modules import only down the layers that src/lib.rs maps).
//! - `operations`: the trace header, and the template's alarms and dashboard against the metrics
//!   a run emits (with and without the shared tier, on moto); `emf`: the Embedded Metric Format check every request line of `binary` passes.

mod binary;
mod common;
mod emf;

mod contract;
mod corpus;
mod docs;
mod e2e;
mod events;
mod fail_closed;
mod faults;
mod fleet;
mod layers;
mod log_secrets;
mod operations;
mod problems;
mod properties;
mod scoping;
mod template;
mod unreadable;
mod warmup;
