//! Loopback stand-ins for what the function talks to in AWS, for tests, the local run and the
//! benchmark. Nothing here ever reaches a real AWS endpoint.

pub mod healthlake;
pub mod runtime_api;
