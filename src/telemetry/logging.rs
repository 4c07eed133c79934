//! JSON log lines through tracing, one object per line, for CloudWatch. The level comes from
//! Lambda's own `AWS_LAMBDA_LOG_LEVEL` (advanced logging controls), else `RUST_LOG`, else INFO.
//! It applies to this crate only: every other crate is held at WARN whatever the level, because
//! at DEBUG and TRACE the runtime logs raw events (a caller's `Authorization` header) and the
//! SDK logs signing details.
//!
//! The request lines (target `metrics::TARGET`) are not logs but metrics: `metrics::EmfLayer`
//! writes them whatever the level, so that a quieter log never blinds the alarms.

use super::metrics::{self, EmfLayer};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

pub fn init() {
    let level = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::WARN))
        .with_target(env!("CARGO_CRATE_NAME"), level)
        .with_target(metrics::TARGET, LevelFilter::OFF);
    let emf = EmfLayer::from_env(std::io::stdout)
        .with_filter(Targets::new().with_target(metrics::TARGET, LevelFilter::INFO));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    // A second init (tests) is harmless.
    let _ = tracing_subscriber::registry()
        .with(json.with_filter(filter))
        .with(emf)
        .try_init();
}
