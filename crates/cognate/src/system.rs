//! The real clock and random source; the only place besides `main` that touches the system.

use std::time::{SystemTime, UNIX_EPOCH};

use userpool::{Clock, Millis, Random};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
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
