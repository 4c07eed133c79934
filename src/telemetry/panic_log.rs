//! A panic is one JSON log line at ERROR, like everything else the function logs, instead of
//! Rust's default multi-line text on stderr. It says where the panic happened and nothing else:
//! a formatted panic message can carry the event's data (an `unwrap` prints the error it got),
//! so only a message that is static text in the code is kept.

use std::panic::PanicHookInfo;

/// Replaces the default panic hook. Call after `logging::init`, which the line goes through.
pub fn install() {
    std::panic::set_hook(Box::new(log));
}

fn log(info: &PanicHookInfo<'_>) {
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let message = info.payload().downcast_ref::<&'static str>().copied();
    tracing::error!(location = location.as_deref(), panic_message = message, "panic");
}
