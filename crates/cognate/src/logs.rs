//! Where the server's log lines go: standard error, batched.
//!
//! The gateway writes an access-log line per request; one `write` system call per line cost
//! about 5 % of the gateway's CPU under load. Lines are gathered in memory and written together
//! at least every 50 ms, at once for warnings and errors, and when the process ends normally
//! ([`flush`]). On a terminal every line is written as it comes.
//!
//! The gateway's access-log lines skip `tracing`'s formatter when the log is plain text and
//! batched ([`access_log`]): [`AccessLine`] writes the very line that formatter would (a test
//! compares the two): with the batch keeping its capacity, 13 % less CPU per gateway request
//! (`bench/gateway`, docs/performance.md).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::{AccessEntry, AccessLog, TracingAccessLog};

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
    // The next batch starts at full size: growing it again line by line cost copies.
    let batch = match PENDING.lock() {
        Ok(mut p) if !p.is_empty() => {
            std::mem::replace(&mut *p, Vec::with_capacity(BATCH_BYTES + 4096))
        }
        _ => return,
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&batch);
    let _ = err.flush();
}

/// Adds `buf` to the pending lines; writes the batch once it is large enough.
fn append(buf: &[u8]) -> std::io::Result<()> {
    let full = match PENDING.lock() {
        Ok(mut p) => {
            p.extend_from_slice(buf);
            p.len() >= BATCH_BYTES
        }
        Err(_) => return std::io::stderr().write_all(buf),
    };
    if full {
        flush();
    }
    Ok(())
}

/// Set when the log is plain text gathered in batches: then access-log lines are written by
/// [`AccessLine`].
static PLAIN_BATCHED: AtomicBool = AtomicBool::new(false);

/// Where the gateway's access-log lines go: [`AccessLine`] when the log is plain text and
/// batched, `tracing` otherwise (JSON lines, a terminal's colours).
pub fn access_log() -> Arc<dyn AccessLog> {
    if PLAIN_BATCHED.load(Ordering::Relaxed) {
        Arc::new(AccessLine)
    } else {
        Arc::new(TracingAccessLog)
    }
}

/// Writes the `gateway request` line itself, as `tracing`'s text formatter would, into the
/// pending lines. The log's filter (`COGNATE_LOG`) still decides whether it is written.
pub struct AccessLine;

impl AccessLog for AccessLine {
    fn record(&self, e: &AccessEntry<'_>) {
        if !tracing::enabled!(target: "gateway", tracing::Level::INFO) {
            return;
        }
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let written = LINE.with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            line.clear();
            access_line(&mut line, SystemTime::now(), e);
            append(line.as_bytes()).is_ok()
        });
        if !written {
            TracingAccessLog.record(e);
        }
    }
}

/// `tracing`'s text line for the `gateway request` event: timestamp, level, target, message,
/// then each field as `name=value` (strings quoted and escaped as `Debug` does).
fn access_line(out: &mut String, now: SystemTime, e: &AccessEntry<'_>) {
    timestamp(out, now);
    out.push_str("  INFO gateway: gateway request method=");
    out.push_str(e.method.as_str());
    for (name, value) in [
        (" path=", e.path),
        (" api=", e.api),
        (" stage=", e.stage),
        (" route=", e.route),
    ] {
        out.push_str(name);
        quoted(out, value);
    }
    let _ = write!(out, " status={} latency_ms={:?}", e.status, e.latency_ms);
    for (name, value) in [
        (" sub=", e.sub),
        (" api_key=", e.api_key),
        (" refused=", e.refused),
        (" request_id=", e.request_id),
    ] {
        out.push_str(name);
        quoted(out, value);
    }
    out.push('\n');
}

/// A string as `Debug` writes it; plain ASCII without quotes or backslashes needs no escaping.
fn quoted(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// `2026-12-06T04:53:41.123456Z` (UTC, microseconds), as `tracing`'s default timer writes it.
fn timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = gateway::usage::civil(days);
    // Digits written directly: `write!` with seven padded fields was a third of the line's cost.
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, rest / 3600, 2);
    out.push(':');
    digits(out, rest / 60 % 60, 2);
    out.push(':');
    digits(out, rest % 60, 2);
    out.push('.');
    digits(out, i64::from(since.subsec_micros()), 6);
    out.push('Z');
}

/// `n` in decimal, zero-padded to `width` (as `{n:0width$}`; every value here is non-negative:
/// a time before 1970 is written as 1970).
fn digits(out: &mut String, n: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    while v > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend(buf[start..].iter().map(|&b| char::from(b)));
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

    /// For a plain-text log: access-log lines are written by [`AccessLine`] when batched.
    pub fn plain_text(self) -> Self {
        PLAIN_BATCHED.store(!self.direct, Ordering::Relaxed);
        self
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
        append(buf)?;
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

    /// The tests that write into the one `PENDING` buffer take turns.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn lines_wait_until_flushed_and_then_leave_together() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Captures what a `tracing` subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// The line the server's text subscriber (as `main` builds it) writes for `e`.
    fn traced(e: &AccessEntry<'_>) -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || TracingAccessLog.record(e));
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn access_lines_are_the_lines_tracing_writes() {
        let get = http::Method::GET;
        let patch = http::Method::PATCH;
        let plain = AccessEntry {
            method: &get,
            path: "/prod/items/42",
            api: "pets",
            stage: "prod",
            route: "GET /items/{id}",
            status: 200,
            latency_ms: 0.123_456_7,
            sub: "5f1c7a2e-0000-4000-8000-000000000001",
            api_key: "k1",
            refused: "",
            request_id: "0f0e0d0c-0b0a-4908-8706-050403020100",
        };
        // Quotes, backslashes, control characters, non-ASCII and a combining mark (which
        // `Debug` escapes) must come out exactly as tracing writes them.
        let odd = AccessEntry {
            method: &patch,
            path: "/a \"b\"\\c\t/é\u{301}/😀",
            sub: "",
            api_key: "",
            refused: "MissingAuthenticationToken",
            status: 403,
            latency_ms: 1e-7,
            ..plain
        };
        for e in [plain, odd] {
            let theirs = traced(&e);
            let mut ours = String::new();
            access_line(&mut ours, SystemTime::now(), &e);
            let (their_time, their_rest) = theirs.split_once(' ').unwrap();
            let (our_time, our_rest) = ours.split_once(' ').unwrap();
            assert_eq!(our_rest, their_rest);
            assert_eq!(
                our_time.len(),
                their_time.len(),
                "{our_time} / {their_time}"
            );
        }
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let mut out = String::new();
            timestamp(
                &mut out,
                UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999),
            );
            out
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_765_000_000, 123_456), "2025-12-06T05:46:40.123456Z");
        assert_eq!(at(1_709_251_199, 7), "2024-02-29T23:59:59.000007Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000000Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        // A year past four digits is written whole, as `{:04}` writes it.
        assert_eq!(at(253_402_300_800, 10), "10000-01-01T00:00:00.000010Z");
    }

    #[test]
    fn access_lines_follow_the_log_filter() {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let get = http::Method::GET;
        let e = AccessEntry {
            method: &get,
            path: "/p",
            api: "a",
            stage: "s",
            route: "GET /p",
            status: 200,
            latency_ms: 1.0,
            sub: "",
            api_key: "",
            refused: "",
            request_id: "unique-request-id-for-the-filter-test",
        };
        let quiet = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,gateway=warn"))
            .with_writer(Capture::default())
            .finish();
        tracing::subscriber::with_default(quiet, || AccessLine.record(&e));
        let pending = String::from_utf8_lossy(&PENDING.lock().unwrap()).to_string();
        assert!(!pending.contains("unique-request-id-for-the-filter-test"));
        let loud = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(Capture::default())
            .finish();
        tracing::subscriber::with_default(loud, || AccessLine.record(&e));
        let mut pending = PENDING.lock().unwrap();
        let text = String::from_utf8_lossy(&pending).to_string();
        pending.clear();
        assert!(text.contains("request_id=\"unique-request-id-for-the-filter-test\""));
    }
}
