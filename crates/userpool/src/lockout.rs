//! The lockout after repeated failed sign-ins, as Cognito documents it: from the fifth failure
//! on, sign-ins are refused for 2^(n-5) seconds (n failures), at most 15 minutes; attempts during
//! a lockout are refused without counting; a complete sign-in, or 15 minutes without a failure,
//! starts the count again. Wrong passwords, SRP proofs and authenticator codes all count.

use crate::error::{Error, Result};
use crate::{Directory, Millis, User};

const THRESHOLD: u32 = 5;
const MAX_LOCK_MS: Millis = 15 * 60 * 1000;
const FORGET_AFTER_MS: Millis = 15 * 60 * 1000;

/// How long `failures` failed sign-ins lock the user out, if at all.
fn lock_ms(failures: u32) -> Option<Millis> {
    let over = failures.checked_sub(THRESHOLD)?;
    // 2^over seconds, without overflow: 2^10 s already exceeds the cap.
    let seconds: Millis = 1 << over.min(10);
    Some((seconds * 1000).min(MAX_LOCK_MS))
}

impl Directory {
    /// Refuses a sign-in step of a locked-out user before its answer is looked at.
    pub(crate) fn check_not_locked(&self, user: &User) -> Result<()> {
        if user.failures.locked_until.is_some_and(|t| t > self.now()) {
            return Err(Error::not_authorized("Password attempts exceeded"));
        }
        Ok(())
    }

    /// Counts a failed sign-in step, locking the user out when the count calls for it.
    pub(crate) async fn sign_in_failed(&self, user: &User) -> Result<()> {
        let now = self.now();
        let failures = self
            .store
            .count_sign_in_failure(&user.pool_id, &user.sub, now, now - FORGET_AFTER_MS)
            .await?;
        if let Some(ms) = lock_ms(failures) {
            self.store
                .lock_sign_ins(&user.pool_id, &user.sub, now + ms)
                .await?;
        }
        Ok(())
    }

    /// A complete sign-in forgets earlier failures (no write when there were none).
    pub(crate) async fn sign_in_succeeded(&self, user: &User) -> Result<()> {
        if user.failures != Default::default() {
            self.store
                .clear_sign_in_failures(&user.pool_id, &user.sub)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lockout_starts_at_the_fifth_failure_and_doubles_to_fifteen_minutes() {
        assert_eq!(lock_ms(0), None);
        assert_eq!(lock_ms(4), None);
        assert_eq!(lock_ms(5), Some(1_000));
        assert_eq!(lock_ms(6), Some(2_000));
        assert_eq!(lock_ms(9), Some(16_000));
        assert_eq!(lock_ms(14), Some(512_000));
        assert_eq!(lock_ms(15), Some(MAX_LOCK_MS));
        assert_eq!(lock_ms(u32::MAX), Some(MAX_LOCK_MS));
    }
}
