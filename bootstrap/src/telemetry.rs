//! Logging: `tracing` with a text or JSON formatter, filtered by `QUDAG_LOG_LEVEL`.

use std::io::Write;

use tracing_subscriber::EnvFilter;
pub use tracing_subscriber::fmt::MakeWriter;

use crate::settings::{LogFormat, LoggingSettings};

/// Install the global subscriber writing to `writer` (stdout in production; a buffer in
/// tests). Returns `false` if a subscriber was already installed.
pub fn init<W>(settings: &LoggingSettings, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // The level was validated with the settings, so this parse cannot fail in practice;
    // fall back to `info` rather than run without logs.
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match settings.format {
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init().is_ok()
        }
        LogFormat::Text => builder.with_ansi(false).try_init().is_ok(),
    }
}

/// A writer for [`init`] that writes each log line to stdout and never panics when stdout
/// is closed.
pub fn stdout() -> impl for<'a> MakeWriter<'a> + Send + Sync + 'static {
    || StdoutLine
}

/// Stdout, ignoring write errors (a closed pipe must not take the server down).
#[derive(Debug)]
pub struct StdoutLine;

impl Write for StdoutLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stdout().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}
