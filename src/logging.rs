//! JSON log lines through tracing, one object per line, for CloudWatch. The level comes from
//! Lambda's own `AWS_LAMBDA_LOG_LEVEL` (advanced logging controls), else `RUST_LOG`, else INFO.
//! The SDK's crates are held at WARN: their debug output is not for production logs.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

pub fn init() {
    let level = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let sdk_level = level.min(LevelFilter::WARN);
    let filter = Targets::new()
        .with_default(level)
        .with_target("aws_smithy_runtime", sdk_level)
        .with_target("aws_smithy_runtime_api", sdk_level)
        .with_target("aws_config", sdk_level)
        .with_target("aws_sdk_healthlake", sdk_level)
        .with_target("hyper_util", sdk_level)
        .with_target("rustls", sdk_level);
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
        .try_init();
}
