//! Tracing for the pool: spans for start-up, each job and each release. Off unless a filter
//! is configured (`config :dspex_native, trace: "debug"`) or `DSPEX_TRACE` is set. Each line
//! is formatted on the traced thread and handed to the event queue (see [`crate::events`]:
//! bounded, never blocking), so it reaches Logger at its level instead of raw stderr.

use std::io;
use std::sync::Once;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::events::{self, Event, Level};

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
        // Logger adds the time and the level.
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(Lines)
            .without_time()
            .with_level(false)
            .with_thread_names(true)
            .with_ansi(false);
        let _ = tracing_subscriber::registry()
            .with(env_filter)
            .with(lines)
            .try_init();
    });
}

/// Makes one [`Line`] per traced event (the formatter writes each event once).
struct Lines;

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::new(Level::Info, "")
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        let level = match *meta.level() {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warning,
            tracing::Level::INFO => Level::Info,
            _ => Level::Debug,
        };
        Line::new(level, meta.target())
    }
}

/// One formatted event, emitted when the formatter is done with it.
struct Line {
    level: Level,
    target: String,
    text: Vec<u8>,
}

impl Line {
    fn new(level: Level, target: &str) -> Line {
        Line {
            level,
            target: target.to_owned(),
            text: Vec::new(),
        }
    }
}

impl io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let message = String::from_utf8_lossy(&self.text).trim_end().to_owned();
        if !message.is_empty() {
            events::emit(Event::Trace {
                level: self.level,
                target: std::mem::take(&mut self.target),
                message,
            });
        }
    }
}
