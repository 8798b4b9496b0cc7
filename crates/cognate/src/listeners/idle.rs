//! Closing connections that stall: one that neither sends nor takes a byte for
//! [`STALLED_AFTER`] while no request of it is being handled — a caller trickling a request head
//! (slowloris), a kept-alive connection left idle, a client that stopped reading its response —
//! is closed, so such callers cannot use up the server's sockets (nginx's defaults for the same
//! cases are of that order: `client_header_timeout` and `send_timeout` 60 s, `keepalive_timeout`
//! 75 s).
//!
//! Nothing is timed per request: each connection's I/O stamps a coarse clock (seconds) into its
//! [`Watch`], and a sweep per [`Registry`], once a second, closes the connections whose stamp is
//! too old: their socket's next read or write fails, and the HTTP server drops the connection.
//! (hyper's own `header_read_timeout` arms a timer for every request head and forces an extra
//! read after it, which cost about 7 % of the gateway's CPU per request.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// One connection's last sign of life, how many of its requests are being handled, and whether
/// the sweep has closed it.
#[derive(Default)]
pub struct Watch {
    last_io_s: AtomicU32,
    handling: AtomicU32,
    closed: AtomicBool,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl Watch {
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

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
        self.writer.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
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

/// The connections of one listener (or of one of its threads), swept together.
#[derive(Default)]
pub struct Registry(Mutex<Vec<Arc<Watch>>>);

impl Registry {
    /// `io` under this registry's sweep; the [`Watch`] marks its requests being handled.
    pub fn watch<T>(&self, io: T) -> (Watched<T>, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        watch.stamp();
        if let Ok(mut all) = self.0.lock() {
            all.push(watch.clone());
        }
        (
            Watched {
                io,
                watch: watch.clone(),
            },
            watch,
        )
    }

    /// Closes the stalled connections once a second; runs until its runtime ends.
    pub async fn sweep(self: Arc<Self>) {
        let limit = u32::try_from(STALLED_AFTER.as_secs()).unwrap_or(u32::MAX);
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.sweep_once(tick(), limit);
        }
    }

    fn sweep_once(&self, now: u32, limit: u32) {
        let Ok(mut all) = self.0.lock() else { return };
        all.retain(|watch| {
            // Only the registry holds it: the connection is gone.
            if Arc::strong_count(watch) == 1 {
                return false;
            }
            if watch.stalled(now, limit) {
                tracing::debug!("closing a stalled connection");
                watch.close();
                return false;
            }
            true
        });
    }
}

/// A connection's socket that stamps its [`Watch`] whenever bytes move, and fails once the
/// sweep has closed it.
pub struct Watched<T> {
    io: T,
    watch: Arc<Watch>,
}

fn stalled_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection stalled")
}

impl<T> Watched<T> {
    pub fn watch(&self) -> &Arc<Watch> {
        &self.watch
    }

    /// Ready(`res`) stamps when `moved`; Pending waits on `waker` too, so a close wakes it.
    fn after<R>(
        &self,
        res: Poll<io::Result<R>>,
        moved: impl FnOnce(&R) -> bool,
        waker: &AtomicWaker,
        cx: &Context<'_>,
    ) -> Poll<io::Result<R>> {
        match res {
            Poll::Ready(Ok(r)) => {
                if moved(&r) {
                    self.watch.stamp();
                }
                Poll::Ready(Ok(r))
            }
            Poll::Pending => {
                waker.register(cx.waker());
                // Closed between the check before polling and the registration.
                if self.watch.is_closed() {
                    return Poll::Ready(Err(stalled_error()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.watch.is_closed() {
            return Poll::Ready(Err(stalled_error()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.io).poll_read(cx, buf);
        let after = buf.filled().len();
        let this = &*self;
        this.after(res, |_| after > before, &this.watch.reader, cx)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.watch.is_closed() {
            return Poll::Ready(Err(stalled_error()));
        }
        let res = Pin::new(&mut self.io).poll_write(cx, buf);
        let this = &*self;
        this.after(res, |n| *n > 0, &this.watch.writer, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.watch.is_closed() {
            return Poll::Ready(Err(stalled_error()));
        }
        let res = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        let this = &*self;
        this.after(res, |n| *n > 0, &this.watch.writer, cx)
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
        let registry = Registry::default();
        let (_io, w) = registry.watch(());
        let at = w.last_io_s.load(Ordering::Relaxed);
        assert!(!w.stalled(at + 1, 2));
        assert!(w.stalled(at + 2, 2));
        let handling = w.handling();
        assert!(!w.stalled(at + 100, 2), "a request in hand is no stall");
        registry.sweep_once(at + 100, 2);
        assert!(!w.is_closed());
        drop(handling);
        registry.sweep_once(at + 100, 2);
        assert!(w.is_closed());
    }

    #[test]
    fn connections_that_are_gone_leave_the_registry() {
        let registry = Registry::default();
        let kept = registry.watch(());
        drop(registry.watch(()));
        registry.sweep_once(0, 60);
        assert_eq!(registry.0.lock().unwrap().len(), 1);
        drop(kept);
        registry.sweep_once(0, 60);
        assert!(registry.0.lock().unwrap().is_empty());
    }
}
