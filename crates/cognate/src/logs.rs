//! Where the server's log lines go: standard error, batched.
//!
//! The gateway writes an access-log line per request; one `write` system call per line cost
//! about 5 % of the gateway's CPU under load. Lines are gathered in memory and written together
//! at least every 50 ms, at once for warnings and errors, and when the process ends normally
//! ([`flush`]). On a terminal every line is written as it comes.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Lines not written yet.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// Held while writing to standard error, so that batches leave in the order they were taken.
static OUT: Mutex<()> = Mutex::new(());

/// Past this many bytes a batch is written by the line that filled it.
const BATCH_BYTES: usize = 64 * 1024;
const INTERVAL: Duration = Duration::from_millis(50);

/// Writes every pending line now.
pub fn flush() {
    let Ok(_out) = OUT.lock() else { return };
    let batch = match PENDING.lock() {
        Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
        _ => return,
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&batch);
    let _ = err.flush();
}

/// The `MakeWriter` for the log subscriber.
#[derive(Clone, Copy)]
pub struct Logs {
    direct: bool,
}

impl Logs {
    /// Batched unless standard error is a terminal; starts the thread that writes batches.
    pub fn new() -> Self {
        let direct = std::io::stderr().is_terminal();
        if !direct {
            let started = std::thread::Builder::new()
                .name("cognate-logs".into())
                .spawn(|| {
                    loop {
                        std::thread::sleep(INTERVAL);
                        flush();
                    }
                });
            if started.is_err() {
                return Self { direct: true };
            }
        }
        Self { direct }
    }
}

/// One event's writer: appends to the pending lines, or writes through.
pub struct Line {
    through: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.through {
            flush();
            let _out = OUT.lock();
            return std::io::stderr().write(buf);
        }
        let full = match PENDING.lock() {
            Ok(mut p) => {
                p.extend_from_slice(buf);
                p.len() >= BATCH_BYTES
            }
            Err(_) => return std::io::stderr().write(buf),
        };
        if full {
            flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            through: self.direct,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            through: self.direct || *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_until_flushed_and_then_leave_together() {
        let logs = Logs { direct: false };
        let mut line = logs.make_writer();
        line.write_all(b"first line\n").unwrap();
        logs.make_writer().write_all(b"second line\n").unwrap();
        assert!(
            PENDING
                .lock()
                .unwrap()
                .ends_with(b"first line\nsecond line\n")
        );
        flush();
        assert!(PENDING.lock().unwrap().is_empty());
    }
}
