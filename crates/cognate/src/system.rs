//! The real clock and random source; the only place besides `main` that touches the system.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use userpool::{Clock, Millis, Random};

/// The system's time, plus an offset that only the development hooks move (so tests can see
/// sessions, codes and lockouts expire without waiting).
#[derive(Default)]
pub struct SystemClock {
    offset: AtomicI64,
}

impl SystemClock {
    /// Moves this server's time forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.offset.fetch_add(ms.max(0), Ordering::SeqCst);
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        wall_ms().saturating_add(self.offset.load(Ordering::SeqCst))
    }
}

/// The system's time in Unix milliseconds, without the development offset (quota periods and
/// the creation times of keys and plans).
pub fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

pub struct SystemRandom;

impl Random for SystemRandom {
    fn fill(&self, buf: &mut [u8]) {
        if aws_lc_rs::rand::fill(buf).is_err() {
            // Without the OS random source no secret can be made safely: stop rather than
            // hand out guessable codes or ids.
            tracing::error!("the system random source failed; stopping");
            std::process::abort();
        }
    }
}
