//! The lockout after repeated failed sign-ins, as Cognito documents it: from the fifth failure
//! on, sign-ins are refused for 2^(n-5) seconds (n failures), at most 15 minutes; attempts during
//! a lockout are refused without counting; a complete sign-in, or 15 minutes without a failure,
//! starts the count again. Wrong passwords, SRP proofs and authenticator codes all count.
//!
//! A node checks one user's credentials one at a time ([`SignInGuards`]) and reads the user's
//! count after it got its turn, so parallel guesses cannot all pass the check before the first
//! failure is counted: 50 at once are 5 evaluated and 45 refused. Across nodes, each node adds
//! at most the one attempt it has in flight.
//!
//! The re-read is skipped when this node has counted or cleared no failure since the first read
//! ([`SignInGuards::changes`]): then that read is as current as a second one would be, and a
//! correct password costs one user read instead of two.
//!
//! A wrong password or SRP proof is answered before its failure is written
//! ([`Directory::count_failure_after_answer`]): the write keeps the user's turn until it is
//! committed, so the count stays exact, but the answer does not wait for it.
//!
//! A name nobody has (PreventUserExistenceErrors) is counted and locked out the same way, under
//! its keyed stand-in `sub` ([`Failing::Nobody`], `unknown_names`), with a turn of its own, so
//! that neither the answers nor their timing tell it from a user's (security checklist A1;
//! `bench/signin/existence.py`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::store::Failure;
use crate::{Directory, Millis, SignInFailures, Store, User};

/// One turn per user at checking a credential on this node.
#[derive(Default)]
pub(crate) struct SignInGuards {
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Failure counts written (counted, locked or cleared) by this node so far, for any user.
    changed: AtomicU64,
    /// Held (shared) by every failure count still being written after its answer; taken whole
    /// by [`SignInGuards::settle`].
    writing: Arc<tokio::sync::RwLock<()>>,
}

/// Holds the user's turn; the last holder removes the entry.
pub(crate) struct Turn {
    guards: Arc<SignInGuards>,
    sub: String,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl SignInGuards {
    /// A mark to compare later: unchanged means this node wrote no failure count in between.
    pub(crate) fn changes(&self) -> u64 {
        self.changed.load(Ordering::SeqCst)
    }

    /// Called after a failure count was written, before the writer's turn ends.
    fn changed(&self) {
        self.changed.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for `sub`'s turn.
    pub(crate) async fn turn(self: &Arc<Self>, sub: &str) -> Turn {
        let lock = {
            let mut map = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(sub.to_string()).or_default().clone()
        };
        Turn {
            guards: self.clone(),
            sub: sub.to_string(),
            held: Some(lock.lock_owned().await),
        }
    }

    /// Waits until every failure count answered before it was written has been written, at
    /// most `limit`.
    pub(crate) async fn settle(&self, limit: std::time::Duration) -> bool {
        tokio::time::timeout(limit, self.writing.write())
            .await
            .is_ok()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.held = None;
        let mut map = self.guards.turns.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map's own reference left: nobody holds or waits for this user.
        if map
            .get(&self.sub)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.sub);
        }
    }
}

/// Whose sign-in failed: a user, or a name nobody has, known by its
/// [`crate::srp_auth::nobody_key`] (counted and locked out alike, security checklist A1).
pub(crate) enum Failing<'a> {
    User(&'a User),
    Nobody(&'a str),
}

/// Who a failure is counted against, owned, for the task that writes it.
enum Counted {
    User(String),
    Nobody(String),
}

impl From<Failing<'_>> for Counted {
    fn from(who: Failing<'_>) -> Self {
        match who {
            Failing::User(u) => Counted::User(u.sub.clone()),
            Failing::Nobody(key) => Counted::Nobody(key.to_string()),
        }
    }
}

/// Adds a failure to the count and locks the user (or name) out when the count calls for it.
async fn count_failure(
    store: &dyn Store,
    turns: &SignInGuards,
    pool_id: &str,
    who: &Counted,
    now: Millis,
) -> Result<()> {
    let failure = Failure {
        now,
        forget_before: now - FORGET_AFTER_MS,
        lock_for: lock_ms,
    };
    let written = match who {
        Counted::User(sub) => store.count_sign_in_failure(pool_id, sub, failure).await,
        Counted::Nobody(key) => store.count_nobody_failure(pool_id, key, failure).await,
    };
    // Even after an error: the count may have been written, so the next attempt must read it.
    turns.changed();
    written.map(|_| ()).map_err(Into::into)
}

const THRESHOLD: u32 = 5;
const MAX_LOCK_MS: Millis = 15 * 60 * 1000;
pub(crate) const FORGET_AFTER_MS: Millis = 15 * 60 * 1000;

/// How long `failures` failed sign-ins lock the user out, if at all.
fn lock_ms(failures: u32) -> Option<Millis> {
    let over = failures.checked_sub(THRESHOLD)?;
    // 2^over seconds, without overflow: 2^10 s already exceeds the cap.
    let seconds: Millis = 1 << over.min(10);
    Some((seconds * 1000).min(MAX_LOCK_MS))
}

impl Directory {
    /// Refuses a sign-in step of a locked-out user (or name nobody has) before its answer is
    /// looked at.
    pub(crate) fn check_not_locked(&self, failures: &SignInFailures) -> Result<()> {
        if failures.locked_until.is_some_and(|t| t > self.now()) {
            return Err(Error::not_authorized("Password attempts exceeded"));
        }
        Ok(())
    }

    /// Counts a failed password or SRP proof after its answer: the count is written by a task of
    /// its own that keeps `turn` until the write is committed, so the next attempt for this user
    /// on this node still sees it, while the refusal goes out as soon as the proof failed — as
    /// soon as one for a user who does not exist (see the module's comment).
    pub(crate) fn count_failure_after_answer(&self, pool_id: &str, who: Failing<'_>, turn: Turn) {
        let (store, turns, now) = (self.store.clone(), self.turns.clone(), self.now());
        let (pool_id, who) = (pool_id.to_string(), Counted::from(who));
        // Taken here, not in the task, so that `settle` cannot begin between the spawn and the
        // task's first poll and miss it; refused only once settling has begun.
        let writing = turns.writing.clone().try_read_owned().ok();
        let task = async move {
            if let Err(e) = count_failure(store.as_ref(), &turns, &pool_id, &who, now).await {
                // The caller was refused either way; the attempt goes uncounted.
                let sub = match &who {
                    Counted::User(sub) => sub.as_str(),
                    Counted::Nobody(_) => "(a name nobody has)",
                };
                tracing::error!(pool_id, sub, error = %e, "could not count a failed sign-in");
            }
            drop((turn, writing));
        };
        tokio::spawn(tracing::Instrument::in_current_span(task));
    }

    /// Waits for the failure counts still being written, at most `limit` (at shutdown); false
    /// when some were still being written then.
    pub async fn settle(&self, limit: std::time::Duration) -> bool {
        self.turns.settle(limit).await
    }

    /// Counts a failed sign-in step, locking the user out when the count calls for it.
    pub(crate) async fn sign_in_failed(&self, user: &User) -> Result<()> {
        let who = Counted::User(user.sub.clone());
        count_failure(
            self.store.as_ref(),
            &self.turns,
            &user.pool_id,
            &who,
            self.now(),
        )
        .await
    }

    /// A complete sign-in forgets earlier failures (no write when there were none).
    pub(crate) async fn sign_in_succeeded(&self, user: &User) {
        if user.failures == Default::default() {
            return;
        }
        // After the tokens are stored: a failure here must not fail the sign-in (its session is
        // used up), and leaves only counts that are forgotten in time anyway.
        let cleared = self
            .store
            .clear_sign_in_failures(&user.pool_id, &user.sub)
            .await;
        // Even after an error: the clearing may have landed, so the next attempt must read it.
        self.turns.changed();
        if let Err(e) = cleared {
            tracing::warn!(pool_id = %user.pool_id, error = %e, "failed sign-ins not cleared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_user_and_the_map_empties() {
        let guards = Arc::new(SignInGuards::default());
        let first = guards.turn("u1").await;
        // Another user is not held up.
        let other = tokio::time::timeout(std::time::Duration::from_millis(50), guards.turn("u2"))
            .await
            .expect("another user's turn is free");
        drop(other);
        // The same user waits until the first turn ends.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), guards.turn("u1")).await;
        assert!(waiting.is_err(), "a second turn of u1 must wait");
        drop(first);
        let second = guards.turn("u1").await;
        drop(second);
        assert!(guards.turns.lock().unwrap().is_empty());
    }

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
