//! What the function says about itself: the log (`logging`), the metrics in each request's log
//! line (`metrics`, CloudWatch's Embedded Metric Format) and a panic as one JSON line
//! (`panic_log`).

pub mod logging;
pub mod metrics;
pub mod panic_log;
