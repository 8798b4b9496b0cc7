//! The gateway benchmark's fixed-rate (open-loop) load: `rate` GETs a second at evenly spaced
//! planned times over kept-alive connections, latencies counted from each request's planned
//! time (wrk2's model), so a stall shows up in the percentiles instead of hiding them.
//!
//! One sender thread sleeps until each planned time and writes the request on any idle
//! connection; one reader thread, polling every connection (epoll through mio), takes the
//! answers: two threads, so the generator's own scheduling adds little to the tail. An earlier
//! version paced with tokio's timer, which fires on 1 ms ticks: at 15,000/s it sent fifteen
//! requests at once every millisecond, and the bursts queued in the proxy under test (a direct
//! GET showed a p50 of 1.2 ms from the planned time, of which 0.1 ms was the request). A thread's
//! sleep wakes within the kernel's timer slack (50 µs).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

/// How long to wait for the last answers once everything is sent.
const DRAIN: Duration = Duration::from_secs(30);

/// When a connection's current request was planned and when it went out.
#[derive(Clone, Copy)]
struct InFlight {
    planned: Instant,
    counted_from: Instant,
}

struct Pool {
    /// Connections waiting for a request, the longest idle first: every connection carries an
    /// equal share, as in wrk2 (most recently used first sent nearly everything over a few
    /// connections, and so to whichever of the server's threads held them).
    idle: VecDeque<usize>,
    /// Connections that failed and are gone.
    dead: usize,
    /// Whether the sender waits for a connection (only then is it woken: a wake-up is a
    /// system call, and most answers come back while the sender sleeps until its next time).
    waiting: bool,
}

struct Shared {
    pool: Mutex<Pool>,
    freed: Condvar,
    in_flight: Vec<Mutex<Option<InFlight>>>,
}

impl Shared {
    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection closed while idle is no longer handed out.
    fn drop_idle(&self, conn: usize) {
        let mut p = self.pool();
        if let Some(at) = p.idle.iter().position(|&c| c == conn) {
            p.idle.remove(at);
            p.dead += 1;
        }
    }

    fn give_back(&self, conn: usize, ok: bool) {
        let mut p = self.pool();
        if ok {
            p.idle.push_back(conn);
        } else {
            p.dead += 1;
        }
        if p.waiting {
            self.freed.notify_one();
        }
    }
}

/// What one reader saw: latencies (ms) from the planned time and from the send, and failures;
/// `at` holds each answered request's planned time (ms from `started`), in `lat`'s order.
struct Seen {
    at: Vec<f64>,
    lat: Vec<f64>,
    sent_lat: Vec<f64>,
    errors: usize,
    started: Instant,
}

impl Seen {
    /// Room for `expected` answers from the start: vectors doubling as they filled copied
    /// megabytes at 2^k answers (0.1, 0.2, 0.4, … 6.6 s into a run at 20,000/s) and held up the
    /// reading for milliseconds each time, a stall charged to every request in flight, direct
    /// runs included (`--trace` showed the slow requests bunched at exactly those times).
    fn new(started: Instant, expected: usize) -> Self {
        Self {
            at: Vec::with_capacity(expected),
            lat: Vec::with_capacity(expected),
            sent_lat: Vec::with_capacity(expected),
            errors: 0,
            started,
        }
    }
}

/// How much load: requests a second, for how long, over how many kept-alive connections.
pub struct Load {
    pub rate: u64,
    pub seconds: f64,
    pub connections: usize,
}

/// `post`: a body to POST instead of a GET. `trace`: a file to get each answered request's
/// planned time and latency (ms, a line each), for seeing when the slow ones happen.
pub fn run(
    url: &str,
    headers: &[(String, String)],
    post: Option<&str>,
    load: Load,
    trace: Option<&std::path::Path>,
) -> Result<()> {
    let Load {
        rate,
        seconds,
        connections,
    } = load;
    let uri: http::Uri = url.parse()?;
    if uri.scheme_str() != Some("http") {
        bail!("the fixed-rate load speaks plain http");
    }
    let authority = uri.authority().context("the url has no host")?.to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = if post.is_some() { "POST" } else { "GET" };
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = post {
        request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    } else {
        request.push_str("\r\n");
    }
    let request = request.into_bytes();

    let total = (rate as f64 * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let connections = connections.max(1);
    // Every connection is open before the clock starts.
    let mut writers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = TcpStream::connect(&authority)?;
        s.set_nodelay(true)?;
        writers.push(s);
    }
    let shared = Arc::new(Shared {
        pool: Mutex::new(Pool {
            idle: (0..connections).collect(),
            dead: 0,
            waiting: false,
        }),
        freed: Condvar::new(),
        in_flight: (0..connections).map(|_| Mutex::new(None)).collect(),
    });
    let mut polled = Vec::with_capacity(connections);
    for w in &writers {
        w.set_nonblocking(true)?;
        polled.push(mio::net::TcpStream::from_std(w.try_clone()?));
    }
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now() + Duration::from_millis(50);
    let reader = {
        let (shared, done) = (shared.clone(), done.clone());
        let expected = usize::try_from(total).unwrap_or(0);
        std::thread::spawn(move || read_answers(polled, &shared, &done, started, expected))
    };

    let mut unsent = 0usize;
    for k in 0..total {
        let planned = started + interval.mul_f64(k as f64);
        let now = Instant::now();
        if now < planned {
            std::thread::sleep(planned - now);
        }
        let Some((conn, waited)) = take_idle(&shared, connections) else {
            unsent = (total - k) as usize;
            break;
        };
        // A request that had to wait for a connection counts from its planned time; one that
        // found a connection idle counts from its send (the generator's own lateness aside).
        let counted_from = if waited { planned } else { Instant::now() };
        *lock(&shared.in_flight[conn]) = Some(InFlight {
            planned,
            counted_from,
        });
        if writers[conn].write_all(&request).is_err() {
            *lock(&shared.in_flight[conn]) = None;
            let _ = writers[conn].shutdown(Shutdown::Both);
            shared.give_back(conn, false);
            unsent += 1;
        }
    }
    // The last answers, then the readers are stopped by closing their connections.
    {
        let deadline = Instant::now() + DRAIN;
        let mut p = shared.pool();
        while p.idle.len() + p.dead < connections && Instant::now() < deadline {
            drop(p);
            std::thread::sleep(Duration::from_millis(10));
            p = shared.pool();
        }
    }
    done.store(true, Ordering::Relaxed);
    let mut seen = reader.join().unwrap_or_else(|_| Seen::new(started, 0));
    // Requests still unanswered after the wait failed.
    seen.errors += shared
        .in_flight
        .iter()
        .filter(|f| lock(f).is_some())
        .count();
    for w in &writers {
        let _ = w.shutdown(Shutdown::Both);
    }
    if let Some(path) = trace {
        let lines: String = seen
            .at
            .iter()
            .zip(&seen.lat)
            .map(|(at, lat)| format!("{at:.3} {lat:.3}\n"))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    report(url, rate, connections, seen, unsent);
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An idle connection, and whether the sender had to wait for one; `None` once all are dead.
fn take_idle(shared: &Shared, connections: usize) -> Option<(usize, bool)> {
    let mut p = shared.pool();
    let mut waited = false;
    loop {
        if let Some(conn) = p.idle.pop_front() {
            return Some((conn, waited));
        }
        if p.dead == connections {
            return None;
        }
        waited = true;
        p.waiting = true;
        p = shared.freed.wait(p).unwrap_or_else(PoisonError::into_inner);
        p.waiting = false;
    }
}

/// Takes every connection's answers until `done`, recording each one's latency.
fn read_answers(
    mut streams: Vec<mio::net::TcpStream>,
    shared: &Shared,
    done: &AtomicBool,
    started: Instant,
    expected: usize,
) -> Seen {
    let mut seen = Seen::new(started, expected);
    let Ok(mut poll) = mio::Poll::new() else {
        seen.errors += 1;
        return seen;
    };
    for (i, s) in streams.iter_mut().enumerate() {
        if poll
            .registry()
            .register(s, mio::Token(i), mio::Interest::READABLE)
            .is_err()
        {
            seen.errors += 1;
            return seen;
        }
    }
    let mut bufs: Vec<Vec<u8>> = (0..streams.len())
        .map(|_| Vec::with_capacity(4096))
        .collect();
    let mut alive = vec![true; streams.len()];
    let mut events = mio::Events::with_capacity(256);
    while !done.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(20)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if alive[i] && !take_answers(&mut streams[i], &mut bufs[i], i, shared, &mut seen) {
                alive[i] = false;
                let _ = poll.registry().deregister(&mut streams[i]);
            }
        }
    }
    seen
}

/// Reads what connection `i` has and records the answers complete in it; false once the
/// connection failed (closed, or an answer that does not parse).
fn take_answers(
    stream: &mut mio::net::TcpStream,
    buf: &mut Vec<u8>,
    i: usize,
    shared: &Shared,
    seen: &mut Seen,
) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return answers_in(buf, i, shared, seen);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // Closed: a request in flight on it failed; an idle connection leaves the pool.
    if lock(&shared.in_flight[i]).take().is_some() {
        seen.errors += 1;
        shared.give_back(i, false);
    } else {
        shared.drop_idle(i);
    }
    false
}

/// Records the complete answers at the front of `buf` and removes them.
fn answers_in(buf: &mut Vec<u8>, i: usize, shared: &Shared, seen: &mut Seen) -> bool {
    loop {
        let (status, used) = match complete_answer(buf) {
            Ok(Some(a)) => a,
            Ok(None) => return buf.len() <= 1 << 20,
            Err(_) => {
                seen.errors += 1;
                let _ = lock(&shared.in_flight[i]).take();
                shared.give_back(i, false);
                return false;
            }
        };
        buf.drain(..used);
        let Some(sent) = lock(&shared.in_flight[i]).take() else {
            // An answer nobody asked for.
            seen.errors += 1;
            continue;
        };
        if (200..300).contains(&status) {
            let at = sent.planned.saturating_duration_since(seen.started);
            seen.at.push(at.as_secs_f64() * 1000.0);
            seen.lat.push(sent.planned.elapsed().as_secs_f64() * 1000.0);
            seen.sent_lat
                .push(sent.counted_from.elapsed().as_secs_f64() * 1000.0);
        } else {
            seen.errors += 1;
        }
        shared.give_back(i, true);
    }
}

/// A complete answer at the front of `buf`: its status and its length (head and body, by
/// length or in chunks without trailers); `None` while it is incomplete.
fn complete_answer(buf: &[u8]) -> Result<Option<(u16, usize)>> {
    let Some(head) = crate::wire::answer_head(buf)? else {
        return Ok(None);
    };
    if head.chunked {
        return Ok(chunked_end(buf, head.len)?.map(|end| (head.status, end)));
    }
    let end = head.len + head.length.unwrap_or(0);
    Ok((buf.len() >= end).then_some((head.status, end)))
}

/// Where a chunked body starting at `at` ends, once all of it is in `buf`.
fn chunked_end(buf: &[u8], mut at: usize) -> Result<Option<usize>> {
    loop {
        let Some(p) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + p])?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)?;
        // The chunk's data and its CRLF; the last chunk is followed by the final CRLF.
        let end = at + p + 2 + size + 2;
        if buf.len() < end {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some(end));
        }
        at = end;
    }
}

fn report(url: &str, rate: u64, connections: usize, mut seen: Seen, unsent: usize) {
    seen.lat.sort_by(f64::total_cmp);
    seen.sent_lat.sort_by(f64::total_cmp);
    let pick = |v: &[f64], q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let (lat, sent) = (&seen.lat, &seen.sent_lat);
    println!(
        "{}",
        json!({
            "measure": "fixed_rate", "url": url, "rate": rate, "connections": connections,
            "requests": lat.len(), "errors": seen.errors + unsent,
            "p50_ms": pick(lat, 0.5), "p90_ms": pick(lat, 0.9), "p99_ms": pick(lat, 0.99),
            "max_ms": pick(lat, 1.0),
            "sent_p50_ms": pick(sent, 0.5), "sent_p90_ms": pick(sent, 0.9),
            "sent_p99_ms": pick(sent, 0.99), "sent_max_ms": pick(sent, 1.0),
        })
    );
}
