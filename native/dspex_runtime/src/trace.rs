//! Tracing for the pool: spans for start-up, each job and each release. Off unless a filter
//! is configured (`config :dspex_native, trace: "debug"`) or `DSPEX_TRACE` is set; events
//! go to standard error.

use std::sync::Once;

pub const ENV_VAR: &str = "DSPEX_TRACE";

static INIT: Once = Once::new();

/// Installs the subscriber once; a later call or an empty filter does nothing.
pub fn init(filter: Option<&str>) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var(ENV_VAR).ok())
        .filter(|f| !f.trim().is_empty());
    let Some(filter) = filter else { return };
    INIT.call_once(|| {
        let env_filter = tracing_subscriber::EnvFilter::try_new(&filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            .with_writer(std::io::stderr)
            .with_thread_names(true)
            .with_ansi(false)
            .try_init();
    });
}
