//! Closing connections that stall: one that neither sends nor takes a byte for
//! [`STALLED_AFTER`] while no request of it is being handled — a caller trickling a request head
//! (slowloris), a kept-alive connection left idle, a client that stopped reading its response —
//! is closed, so such callers cannot use up the server's sockets (nginx closes these after 60 s
//! too: `client_header_timeout`, `keepalive_timeout`, `send_timeout`).
//!
//! Nothing is timed per request: each connection's I/O stamps a coarse clock (seconds) into its
//! [`Watch`], and a sweep per thread, once a second, closes the connections whose stamp is too
//! old. hyper's own `header_read_timeout` arms a timer for every request head and forces an extra
//! read after it, which cost about 7 % of the gateway's CPU per request.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::AbortHandle;

#[cfg(not(test))]
pub const STALLED_AFTER: Duration = Duration::from_secs(60);
#[cfg(test)]
pub const STALLED_AFTER: Duration = Duration::from_secs(2);

const SWEEP_EVERY: Duration = Duration::from_secs(1);

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Seconds since [`STARTED`], advanced by the sweeps (reading it costs no clock call).
static NOW_S: AtomicU32 = AtomicU32::new(0);

fn tick() -> u32 {
    let now = u32::try_from(STARTED.elapsed().as_secs()).unwrap_or(u32::MAX);
    NOW_S.fetch_max(now, Ordering::Relaxed);
    now
}

/// One connection's last sign of life, and how many of its requests are being handled.
#[derive(Default)]
pub struct Watch {
    last_io_s: AtomicU32,
    handling: AtomicU32,
}

impl Watch {
    pub fn new() -> Arc<Self> {
        let w = Arc::new(Self::default());
        w.stamp();
        w
    }

    fn stamp(&self) {
        let now = NOW_S.load(Ordering::Relaxed);
        if self.last_io_s.load(Ordering::Relaxed) != now {
            self.last_io_s.store(now, Ordering::Relaxed);
        }
    }

    /// Marks a request as being handled until the guard drops: waiting for a slow upstream is
    /// not a stall of the caller's.
    pub fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }

    fn stalled(&self, now: u32, limit: u32) -> bool {
        self.handling.load(Ordering::Relaxed) == 0
            && now.saturating_sub(self.last_io_s.load(Ordering::Relaxed)) >= limit
    }
}

pub struct Handling(Arc<Watch>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
        // The answer is ready: the time to send it starts now.
        self.0.stamp();
    }
}

thread_local! {
    static WATCHED: RefCell<Vec<(Arc<Watch>, AbortHandle)>> = const { RefCell::new(Vec::new()) };
}

/// Puts a connection's task under this thread's sweep.
pub fn watch(watch: Arc<Watch>, task: AbortHandle) {
    WATCHED.with(|w| w.borrow_mut().push((watch, task)));
}

/// The sweep of this thread's connections; runs until the runtime ends.
pub async fn sweep() {
    let limit = u32::try_from(STALLED_AFTER.as_secs()).unwrap_or(u32::MAX);
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = tick();
        WATCHED.with(|w| {
            w.borrow_mut().retain(|(watch, task)| {
                if task.is_finished() {
                    return false;
                }
                if watch.stalled(now, limit) {
                    tracing::debug!("closing a stalled connection");
                    task.abort();
                    return false;
                }
                true
            })
        });
    }
}

/// A connection's socket that stamps its [`Watch`] whenever bytes move.
pub struct Watched<T> {
    io: T,
    watch: Arc<Watch>,
}

impl<T> Watched<T> {
    pub fn new(io: T, watch: Arc<Watch>) -> Self {
        Self { io, watch }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.stamp();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.stamp();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.stamp();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_stalled_only_when_silent_and_not_handling_a_request() {
        let w = Watch::new();
        let at = w.last_io_s.load(Ordering::Relaxed);
        assert!(!w.stalled(at + 1, 2));
        assert!(w.stalled(at + 2, 2));
        let handling = w.handling();
        assert!(!w.stalled(at + 100, 2), "a request in hand is no stall");
        drop(handling);
        assert!(w.stalled(at + 100, 2));
    }
}
