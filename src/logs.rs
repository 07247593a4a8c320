//! Logs: where they go, in which format and from which level (`[log]`).

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::error::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full filter (`alert_relay=debug`);
    /// `RUST_LOG` wins when set.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

/// Human-readable lines on a terminal, JSON lines for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    Text,
    Json,
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if EnvFilter::try_new(&self.level).is_err() {
            return Err(ConfigError::new(
                "log.level",
                format!(
                    "{:?} is not a level or filter (error, warn, info, debug, trace)",
                    self.level
                ),
            ));
        }
        Ok(())
    }
}

/// Log lines waiting to be written, at most.
const BUFFERED_LINES: usize = 4096;

/// Logs go to standard error: standard output belongs to the console destination and to the
/// commands' own output. Text on a terminal, JSON lines otherwise (or as `[log] format` says);
/// `RUST_LOG` overrides `[log] level`. Lines are written by a thread of their own, several at a
/// time, so that a request never waits for standard error; none is dropped (a full queue makes
/// the logging wait instead). Keep the guard until the end: dropping it writes what is left.
pub fn init(log: &LogConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Lines waiting for the thread; past it, loggers wait (nothing is dropped). The default,
        // 128,000, sets aside 4 MB at start for a queue that a relay never fills.
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("logs")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init();
    } else {
        builder.with_ansi(terminal).init();
    }
    guard
}
