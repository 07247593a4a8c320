//! Logs: where they go, in which format and from which level (`[log]`).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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

/// Bytes of log lines waiting to be written past which loggers wait (nothing is dropped); from
/// half of it the thread writes at once.
const WAITING_BYTES: usize = 1 << 20;

/// How long the thread gathers lines after the first one before it writes them: a line is written
/// at most this late.
const GATHER: Duration = Duration::from_millis(5);

/// Logs go to standard error: standard output belongs to the console destination and to the
/// commands' own output. Text on a terminal, JSON lines otherwise (or as `[log] format` says);
/// `RUST_LOG` overrides `[log] level`. Lines are written by a thread of their own, so that a
/// request never waits for standard error; none is dropped (past `WAITING_BYTES` waiting, the
/// logging waits instead). Keep the guard until the end: dropping it writes what is left.
pub fn init(log: &LogConfig) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    let (writer, guard) = Lines::start(std::io::stderr(), GATHER);
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

/// Where loggers put their lines: one buffer that a thread of its own empties into the output, in
/// one `write` for whatever came in the `GATHER` after a first line. A logger wakes the thread
/// only when it sleeps, or to write at once: for an error, or when half of `WAITING_BYTES` waits.
/// (Warnings are gathered too: an unrouted event has one each.) `tracing-appender`'s queue, used
/// before, woke its thread for each line, which then spun and yielded waiting for the next: 1.5
/// to 2.9 µs of CPU per accepted event against 0.2 to 0.3 for this, measured per thread under
/// `wrk`.
struct Lines(Arc<Shared>);

struct Shared {
    waiting: Mutex<Waiting>,
    /// The thread waits on it for lines.
    more: Condvar,
    /// Loggers wait on it for room.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    bytes: Vec<u8>,
    /// The thread waits for lines (and needs waking).
    asleep: bool,
    /// An error, or half of `WAITING_BYTES`, waits: the thread writes without gathering more.
    write_now: bool,
    /// The guard is dropped: the thread writes what is left and ends.
    closing: bool,
}

/// Dropping it writes the lines still waiting and ends the thread.
pub struct LogGuard {
    lines: Lines,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lines {
    /// The loggers' end, and the guard of the thread that writes to `out`, gathering lines for
    /// `gather` after a first one.
    fn start(mut out: impl Write + Send + 'static, gather: Duration) -> (Self, LogGuard) {
        let lines = Lines(Arc::new(Shared {
            waiting: Mutex::new(Waiting::default()),
            more: Condvar::new(),
            room: Condvar::new(),
        }));
        let shared = lines.0.clone();
        let thread = std::thread::Builder::new()
            .name("logs".into())
            .spawn(move || {
                let mut writing = Vec::new();
                loop {
                    {
                        let mut waiting = lock(&shared.waiting);
                        while waiting.bytes.is_empty() && !waiting.closing {
                            waiting.asleep = true;
                            waiting = shared
                                .more
                                .wait(waiting)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                        waiting.asleep = false;
                        if waiting.bytes.is_empty() {
                            return;
                        }
                        // More lines come in the next few milliseconds when any do: one write
                        // and one wake-up for them all.
                        waiting = shared
                            .more
                            .wait_timeout_while(waiting, gather, |w| !w.closing && !w.write_now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                        waiting.write_now = false;
                        std::mem::swap(&mut writing, &mut waiting.bytes);
                    }
                    shared.room.notify_all();
                    // Nowhere to report a failed write to but the output that failed.
                    let _ = out.write_all(&writing).and_then(|()| out.flush());
                    writing.clear();
                    writing.shrink_to(WAITING_BYTES);
                }
            })
            .expect("start the logs thread");
        let guard = LogGuard {
            lines: Lines(lines.0.clone()),
            thread: Some(thread),
        };
        (lines, guard)
    }
}

fn lock(waiting: &Mutex<Waiting>) -> MutexGuard<'_, Waiting> {
    // A logger that panicked mid-line leaves whole bytes behind: the buffer is still usable.
    waiting.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A logger's end for one line: written at once when it is an error.
struct Line<'a> {
    lines: &'a Lines,
    urgent: bool,
}

impl Write for Line<'_> {
    /// Takes a whole line (the formatter writes each event in one call).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &self.lines.0;
        let mut waiting = lock(&shared.waiting);
        while waiting.bytes.len() >= WAITING_BYTES && !waiting.closing {
            waiting = shared
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        waiting.bytes.extend_from_slice(line);
        let write_now = self.urgent || waiting.bytes.len() >= WAITING_BYTES / 2;
        // Woken once: a gathering thread already told to write needs no second call.
        let wake = std::mem::take(&mut waiting.asleep) || (write_now && !waiting.write_now);
        waiting.write_now |= write_now;
        drop(waiting);
        if wake {
            shared.more.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            lines: self,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line<'a> {
        Line {
            lines: self,
            urgent: *meta.level() == tracing::Level::ERROR,
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        lock(&self.lines.0.waiting).closing = true;
        self.lines.0.more.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// An output that keeps what it gets and the size of each write, holds its first write until
    /// `gate` says go, and says on `written` when it wrote.
    #[derive(Default)]
    struct Kept {
        bytes: Arc<Mutex<Vec<u8>>>,
        sizes: Arc<Mutex<Vec<usize>>>,
        gate: Option<mpsc::Receiver<()>>,
        written: Option<mpsc::Sender<()>>,
    }

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            self.sizes.lock().unwrap().push(bytes.len());
            if let Some(written) = &self.written {
                let _ = written.send(());
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_and_a_full_queue_makes_loggers_wait() {
        let (go, gate) = mpsc::channel();
        let kept = Kept {
            gate: Some(gate),
            ..Kept::default()
        };
        let (bytes, sizes) = (kept.bytes.clone(), kept.sizes.clone());
        let (lines, guard) = Lines::start(kept, GATHER);
        let lines = Arc::new(lines);
        let line = |logger: usize, n: usize| format!("{{\"logger\":{logger},\"n\":{n:08}}}\n");
        let per_logger = 2 * WAITING_BYTES / line(0, 0).len();
        let loggers: Vec<_> = (0..2)
            .map(|logger| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for n in 0..per_logger {
                        lines
                            .make_writer()
                            .write_all(line(logger, n).as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        // The output holds its first write: the lines pile up to the limit, then the loggers
        // wait for room instead of dropping any.
        while lock(&lines.0.waiting).bytes.len() < WAITING_BYTES {
            std::thread::yield_now();
        }
        assert!(loggers.iter().all(|l| !l.is_finished()), "loggers wait");
        go.send(()).unwrap();
        for logger in loggers {
            logger.join().unwrap();
        }
        drop(guard);
        let written = String::from_utf8(bytes.lock().unwrap().clone()).unwrap();
        for logger in 0..2 {
            let theirs: Vec<&str> = written
                .lines()
                .filter(|l| l.starts_with(&format!("{{\"logger\":{logger},")))
                .collect();
            assert_eq!(theirs.len(), per_logger, "logger {logger}: none dropped");
            for (n, l) in theirs.iter().enumerate() {
                assert_eq!(format!("{l}\n"), line(logger, n), "whole and in order");
            }
        }
        assert_eq!(written.lines().count(), 2 * per_logger, "no broken line");
        let most = sizes.lock().unwrap().iter().copied().max().unwrap();
        assert!(
            most < WAITING_BYTES + line(0, 0).len(),
            "never more waiting than the limit and one line: {most}"
        );
    }

    #[test]
    fn an_error_is_written_without_waiting_for_more_lines() {
        let (written, writes) = mpsc::channel();
        let kept = Kept {
            written: Some(written),
            ..Kept::default()
        };
        let bytes = kept.bytes.clone();
        // Gathering for a minute: only a line that ends the gathering is written before it.
        let (lines, guard) = Lines::start(kept, Duration::from_secs(60));
        let mut info = Line {
            lines: &lines,
            urgent: false,
        };
        let mut error = Line {
            lines: &lines,
            urgent: true,
        };
        info.write_all(b"info\n").unwrap();
        error.write_all(b"error\n").unwrap();
        writes
            .recv_timeout(Duration::from_secs(30))
            .expect("written long before the minute is over");
        assert_eq!(&bytes.lock().unwrap()[..], b"info\nerror\n", "in order");
        drop(guard);
    }
}
