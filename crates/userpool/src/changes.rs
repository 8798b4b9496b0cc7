//! Changes to a stored user without lost updates. A change is made to the user as read and
//! stored only over the revision it was read at (`Store::update_user`); when another request
//! wrote the user meanwhile — a password change that hashed while an attribute changed, two
//! nodes with the same user — it is made again over a fresh read. Two requests that change one
//! user both land, each over the other's result, or the later is refused for what it found.

use std::future::Future;

use crate::Directory;
use crate::challenges::{Spend, invalid_session};
use crate::codes::{CodeMessage, Destination, Sender};
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{SpendingUpdate, UserKey};

/// How many reads a change is tried over before the request is refused: each try is a few
/// milliseconds (nothing slow, such as hashing, is made again), so only a user written by
/// many requests at once runs out.
const ATTEMPTS: usize = 5;

/// `user` as written over its revision: at the next one.
pub(crate) fn as_stored(mut user: User) -> User {
    user.revision += 1;
    user
}

pub(crate) fn concurrent_modification() -> Error {
    Error::ConcurrentModification(
        "The user was changed by another request at the same time; try again.".into(),
    )
}

impl Directory {
    /// Runs `attempt` over the user as read and, each time it finds the user written since
    /// that read (`Ok(None)`), over a fresh read; the user gone is UserNotFound.
    pub(crate) async fn over_fresh_reads<T, F, Fut>(
        &self,
        mut user: User,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(User) -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        for tried in 1..=ATTEMPTS {
            let (pool_id, sub) = (user.pool_id.clone(), user.sub.clone());
            if let Some(done) = attempt(user).await? {
                return Ok(done);
            }
            if tried == ATTEMPTS {
                break;
            }
            user = self
                .store
                .find_user(&pool_id, UserKey::Sub(&sub))
                .await?
                .ok_or(Error::UserNotFound)?;
        }
        Err(concurrent_modification())
    }

    /// Makes `change` to the user and stores it (see the module's text); `change` checks
    /// whatever it relies on in the user it is given, which may be newer than `user`. Returns
    /// the user as stored.
    pub(crate) async fn change_user<F>(
        &self,
        pool: &Pool,
        user: User,
        mut change: F,
    ) -> Result<User>
    where
        F: FnMut(&mut User) -> Result<()>,
    {
        let changed = self
            .change_user_with_code(pool, user, Sender::User, |user| change(user).map(|()| None));
        Ok(changed.await?.0)
    }

    /// [`Directory::change_user`] for the change that answers a challenge: the session is used
    /// up in the transaction that stores the change (a session used before is refused, and
    /// nothing written), so a failure in between leaves the answer to be given again.
    pub(crate) async fn change_user_spending<F>(
        &self,
        pool: &Pool,
        user: User,
        spend: &Spend,
        mut change: F,
    ) -> Result<User>
    where
        F: FnMut(&mut User) -> Result<()>,
    {
        let now = self.now();
        self.over_fresh_reads(user, |mut user| {
            let made = change(&mut user);
            async move {
                made?;
                user.modified = now;
                let written = self
                    .store
                    .update_user_spending(&user, spend.as_use())
                    .await
                    .map_err(|e| self.conflict_error(pool, e))?;
                match written {
                    SpendingUpdate::Written => Ok(Some(as_stored(user))),
                    SpendingUpdate::Stale => Ok(None),
                    SpendingUpdate::SessionUsed => Err(invalid_session()),
                }
            }
        })
        .await
    }

    /// [`Directory::change_user`] for a change that may call for a code (an e-mail to verify,
    /// a password to reset): where `change` returns the code's message and destination, a
    /// fresh code is stored with the change, in one transaction, and sent after it. When the
    /// send limit refuses the code, the change is not written either.
    pub(crate) async fn change_user_with_code<F>(
        &self,
        pool: &Pool,
        user: User,
        sender: Sender,
        mut change: F,
    ) -> Result<(User, Option<CodeDelivery>)>
    where
        F: FnMut(&mut User) -> Result<Option<(CodeMessage, Destination)>>,
    {
        let now = self.now();
        let (user, code) = self
            .over_fresh_reads(user, |mut user| {
                let made = change(&mut user);
                async move {
                    let code = made?;
                    user.modified = now;
                    let Some((message, destination)) = code else {
                        let written = self
                            .store
                            .update_user(&user, false)
                            .await
                            .map_err(|e| self.conflict_error(pool, e))?;
                        return Ok(written.then(|| (as_stored(user), None)));
                    };
                    let stored = self.store_with_code(pool, &user, &message, sender).await?;
                    let code = |fresh| Some((message, fresh, destination));
                    Ok(stored.map(|fresh| (as_stored(user), code(fresh))))
                }
            })
            .await?;
        let Some((message, fresh, destination)) = code else {
            return Ok((user, None));
        };
        let delivery = self
            .deliver_code(pool, &user, message, fresh, destination)
            .await?;
        Ok((user, Some(delivery)))
    }
}
