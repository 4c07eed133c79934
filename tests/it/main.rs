//! The integration tests, in one binary.
//!
//! - `common`: the function's handler in-process, with the real SDK client pointed at the loopback
//!   HealthLake stand-in; `binary`: the compiled function under a loopback Lambda Runtime API, as
//!   Lambda runs it.
//! - In-process: `contract` (the HTTP contract, every row of the error table), `events` (the
//!   sample events of `events/`), `properties` (property tests).
//! - The compiled binary: `e2e` (every event source), `faults`, `log_secrets`, `scoping` (partner
//!   and IAM callers, with moto's DynamoDB from `dynamodb`), `unreadable` (events lambda_http
//!   cannot read), `corpus` (public events from tests/corpus/).
//! - The documents: `template` (the SAM template's IAM), `problems` (openapi.yaml against the
//!   error table).

mod binary;
mod common;
mod dynamodb;

mod contract;
mod corpus;
mod e2e;
mod events;
mod faults;
mod log_secrets;
mod problems;
mod properties;
mod scoping;
mod template;
mod unreadable;
