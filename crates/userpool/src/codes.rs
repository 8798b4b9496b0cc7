//! One-time codes and the messages that carry them. Codes are six digits, live 24 hours (a
//! password reset's one hour, as AWS documents), allow five wrong tries, and only their keyed
//! hash is stored.

use crate::challenges::{Spend, invalid_session};
use crate::error::{Error, Result};
use crate::model::*;
use crate::store::{CodeAttempt, CodedUpdate, NewCode, Redeem, SendLimit, SpendingCode};
use crate::{Directory, SendError};

pub(crate) const CODE_TTL_MS: Millis = 24 * 3600 * 1000;
/// AWS: "The recovery code is valid for one hour" (Recovering user accounts).
const RESET_CODE_TTL_MS: Millis = 3600 * 1000;
pub(crate) const MAX_ATTEMPTS: u32 = 5;
/// Sends of one code purpose to one user allowed per window: generous enough for any real
/// flow (a resend seconds after sign-up), tight enough to stop a flood.
const SEND_WINDOW_MS: Millis = 3600 * 1000;
const MAX_SENDS_PER_WINDOW: u32 = 20;

pub(crate) fn limit_exceeded() -> Error {
    Error::LimitExceeded("Attempt limit exceeded, please try after some time.".into())
}

/// Where a code goes: the medium, the address, and the attribute it is named by.
pub(crate) type Destination = (Medium, String, &'static str);

/// What a code is for, how long it lives, and the message that carries it.
pub(crate) struct CodeMessage {
    pub purpose: CodePurpose,
    pub kind: MessageKind,
    pub ttl: Millis,
    pub subject: Option<String>,
    /// With `{####}` for the code.
    pub template: String,
}

/// Who asks for a code: a user's own requests are held to the send limit; an administrator's
/// (signed) are not, so that nobody can stop an AdminResetUserPassword or an
/// AdminUpdateUserAttributes by using up the limit with ForgotPassword calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    User,
    Admin,
}

/// A code drawn but not yet stored: its hash goes to the store, the code itself only into the
/// message.
pub(crate) struct FreshCode {
    code: String,
    purpose: CodePurpose,
    hash: Vec<u8>,
    expires: Millis,
}

impl FreshCode {
    /// The row that stores this code for `user`.
    pub(crate) fn row<'a>(&'a self, pool: &'a Pool, user: &'a User) -> NewCode<'a> {
        NewCode {
            pool_id: &pool.id,
            sub: &user.sub,
            purpose: self.purpose,
            hash: &self.hash,
            expires: self.expires,
        }
    }
}

/// The attributes whose values a code of `purpose` is bound to: those of the codes whose answer
/// vouches for an address — a verification code, a sign-in code (a right SMS answer verifies the
/// number) and a sign-up code (confirming verifies where it went; bound to both addresses, as
/// the pool's settings choose which and may change). Once such an attribute changes, a code sent
/// before is refused, so nobody can mark an address verified with a code that reached another.
/// A password-reset code vouches for no address.
pub(crate) fn code_addresses(purpose: CodePurpose) -> &'static [&'static str] {
    match purpose {
        CodePurpose::VerifyEmail | CodePurpose::SignInEmail => &["email"],
        CodePurpose::VerifyPhone | CodePurpose::SignInSms => &["phone_number"],
        CodePurpose::SignUp => &["email", "phone_number"],
        CodePurpose::ForgotPassword => &[],
    }
}

/// Masks a destination as Cognito does in CodeDeliveryDetails: `a***@e***`, `+*******4567`.
pub(crate) fn mask(medium: Medium, destination: &str) -> String {
    match medium {
        Medium::Email => match destination.split_once('@') {
            Some((local, domain)) => {
                let l: String = local.chars().take(1).collect();
                let d: String = domain.chars().take(1).collect();
                format!("{l}***@{d}***")
            }
            None => "***".into(),
        },
        Medium::Sms => {
            let digits: Vec<char> = destination.chars().collect();
            let keep = digits.len().saturating_sub(4);
            let tail: String = digits[keep..].iter().collect();
            format!("+{}{tail}", "*".repeat(keep.saturating_sub(1)))
        }
    }
}

/// Fills a pool template: `{####}` is the code, `{username}` the user name.
pub(crate) fn render(template: &str, code: &str, username: &str) -> String {
    template
        .replace("{####}", code)
        .replace("{username}", username)
}

impl Directory {
    /// A uniformly random six-digit code.
    pub(crate) fn new_code(&self) -> String {
        loop {
            let b: [u8; 4] = self.random_bytes();
            let n = u32::from_be_bytes(b);
            // Reject the top sliver so every code is equally likely.
            if n < u32::MAX - (u32::MAX % 1_000_000) {
                return format!("{:06}", n % 1_000_000);
            }
        }
    }

    /// The keyed hash a code is stored and checked as: bound to its pool, user and purpose, and
    /// to the addresses it vouches for (`code_addresses`).
    pub(crate) fn code_hash(
        &self,
        pool: &Pool,
        user: &User,
        purpose: CodePurpose,
        code: &str,
    ) -> Vec<u8> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.code_key);
        let mut msg = format!("{}\n{}\n{}\n{code}", pool.id, user.sub, purpose.as_str());
        for attribute in code_addresses(purpose) {
            if let Some(address) = user.attribute(attribute) {
                // Each with its length, so no two inputs read alike.
                msg.push_str(&format!("\n{attribute}\n{}\n{address}", address.len()));
            }
        }
        aws_lc_rs::hmac::sign(&key, msg.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// Where a user's codes go: the first auto-verified attribute the user has.
    pub(crate) fn code_destination(pool: &Pool, user: &User) -> Option<Destination> {
        let auto = &pool.config.auto_verified_attributes;
        if auto.iter().any(|a| a == "email")
            && let Some(e) = user.attribute("email")
        {
            return Some((Medium::Email, e.to_string(), "email"));
        }
        if auto.iter().any(|a| a == "phone_number")
            && let Some(p) = user.attribute("phone_number")
        {
            return Some((Medium::Sms, p.to_string(), "phone_number"));
        }
        None
    }

    /// Stores a fresh code for `purpose` and sends it by `medium`, in the pool's verification
    /// message.
    pub(crate) async fn send_code(
        &self,
        pool: &Pool,
        user: &User,
        purpose: CodePurpose,
        kind: MessageKind,
        destination: Destination,
    ) -> Result<CodeDelivery> {
        let message = Self::verification_message(pool, purpose, kind, destination.0);
        self.send_code_in(pool, user, message, destination, None)
            .await
    }

    /// The pool's verification message for a code of `purpose` sent by `medium`.
    pub(crate) fn verification_message(
        pool: &Pool,
        purpose: CodePurpose,
        kind: MessageKind,
        medium: Medium,
    ) -> CodeMessage {
        let v = &pool.config.verification;
        let (subject, template) = match medium {
            Medium::Email => (
                v.email_subject.clone(),
                v.email_message.clone().unwrap_or_default(),
            ),
            Medium::Sms => (None, v.sms_message.clone().unwrap_or_default()),
        };
        CodeMessage {
            purpose,
            kind,
            ttl: match purpose {
                CodePurpose::ForgotPassword => RESET_CODE_TTL_MS,
                _ => CODE_TTL_MS,
            },
            subject,
            template,
        }
    }

    /// A new code for `user`, not yet stored or sent.
    pub(crate) fn fresh_code(&self, pool: &Pool, user: &User, message: &CodeMessage) -> FreshCode {
        let code = self.new_code();
        let hash = self.code_hash(pool, user, message.purpose, &code);
        FreshCode {
            code,
            purpose: message.purpose,
            hash,
            expires: self.now() + message.ttl,
        }
    }

    /// Stores a fresh code and sends it as `message` says; with `spend`, the session of the
    /// challenge step that asks for the code is used up as the code is stored.
    pub(crate) async fn send_code_in(
        &self,
        pool: &Pool,
        user: &User,
        message: CodeMessage,
        destination: Destination,
        spend: Option<&Spend>,
    ) -> Result<CodeDelivery> {
        let fresh = self.fresh_code(pool, user, &message);
        let (code, limit) = (fresh.row(pool, user), self.send_limit());
        let stored = match spend {
            None => self.store.put_code(&code, limit).await?,
            Some(spend) => match self
                .store
                .put_code_spending(&code, limit, spend.as_use())
                .await?
            {
                SpendingCode::Stored => true,
                SpendingCode::LimitReached => false,
                SpendingCode::SessionUsed => return Err(invalid_session()),
            },
        };
        if !stored {
            return Err(limit_exceeded());
        }
        self.deliver_code(pool, user, message, fresh, destination)
            .await
    }

    /// Stores `user` (changed from its read) and a fresh code for them in one transaction:
    /// when the send limit refuses the code, the change is not written either. The code, if
    /// stored, is to be delivered; `None` when the user was stale (nothing written).
    pub(crate) async fn store_with_code(
        &self,
        pool: &Pool,
        user: &User,
        message: &CodeMessage,
        sender: Sender,
    ) -> Result<Option<FreshCode>> {
        let fresh = self.fresh_code(pool, user, message);
        let limit = match sender {
            Sender::User => self.send_limit(),
            Sender::Admin => SendLimit {
                max_sends: u32::MAX,
                ..self.send_limit()
            },
        };
        let written = self
            .store
            .update_user_with_code(user, &fresh.row(pool, user), limit)
            .await
            .map_err(|e| self.conflict_error(pool, e))?;
        match written {
            CodedUpdate::Written => Ok(Some(fresh)),
            CodedUpdate::LimitReached => Err(limit_exceeded()),
            CodedUpdate::Stale => Ok(None),
        }
    }

    fn send_limit(&self) -> SendLimit {
        SendLimit {
            now: self.now(),
            window: SEND_WINDOW_MS,
            max_sends: MAX_SENDS_PER_WINDOW,
        }
    }

    /// Sends a code already stored.
    pub(crate) async fn deliver_code(
        &self,
        pool: &Pool,
        user: &User,
        message: CodeMessage,
        fresh: FreshCode,
        (medium, destination, attribute): Destination,
    ) -> Result<CodeDelivery> {
        self.deliver(Message {
            pool_id: pool.id.clone(),
            username: user.username.clone(),
            medium,
            destination: destination.clone(),
            kind: message.kind,
            subject: message.subject,
            body: render(&message.template, &fresh.code, &user.username),
            secret: fresh.code,
        })
        .await?;
        Ok(CodeDelivery {
            destination: mask(medium, &destination),
            medium,
            attribute: attribute.to_string(),
        })
    }

    pub(crate) async fn deliver(&self, message: Message) -> Result<()> {
        self.sender.send(&message).await.map_err(|SendError(why)| {
            tracing::warn!(pool_id = %message.pool_id, kind = message.kind.as_str(), %why, "message delivery failed");
            Error::CodeDeliveryFailure("Unable to deliver the message to the user.".into())
        })
    }

    /// Tries `user`'s code (as the user is now), changing nothing else.
    pub(crate) async fn redeem(
        &self,
        pool: &Pool,
        user: &User,
        code: (CodePurpose, &str),
    ) -> Result<()> {
        // Nothing to store: never stale.
        self.try_code(pool, user, code, None, false)
            .await
            .map(|_| ())
    }

    /// Tries `user`'s code and, if it matches, makes `change` to the user and stores it in the
    /// same transaction; over fresh reads as [`Directory::change_user`], the code then bound
    /// to the user as they are. With `take_aliases`, the user's aliases are first taken from
    /// whoever else holds them (ForceAliasCreation). Returns the user as stored.
    pub(crate) async fn redeem_and_change<F>(
        &self,
        pool: &Pool,
        user: User,
        (purpose, code): (CodePurpose, &str),
        take_aliases: bool,
        mut change: F,
    ) -> Result<User>
    where
        F: FnMut(&mut User) -> Result<()>,
    {
        let now = self.now();
        self.over_fresh_reads(user, |user| {
            let mut changed = user.clone();
            let made = change(&mut changed);
            async move {
                made?;
                changed.modified = now;
                let code = (purpose, code);
                let stored = self
                    .try_code(pool, &user, code, Some(&changed), take_aliases)
                    .await?;
                Ok(stored.then(|| crate::changes::as_stored(changed)))
            }
        })
        .await
    }

    /// One attempt at `user`'s code, storing `then_store` with it; false when `then_store`
    /// was not stored for being stale (nothing written then).
    async fn try_code(
        &self,
        pool: &Pool,
        user: &User,
        (purpose, code): (CodePurpose, &str),
        then_store: Option<&User>,
        take_aliases: bool,
    ) -> Result<bool> {
        let candidate = self.code_hash(pool, user, purpose, code);
        let attempt = CodeAttempt {
            sub: &user.sub,
            purpose,
            candidate: &candidate,
            now: self.now(),
            max_attempts: MAX_ATTEMPTS,
            then_store,
            take_aliases,
        };
        match self.store.redeem_code(&attempt).await {
            Ok(Redeem::Redeemed) => Ok(true),
            Ok(Redeem::Stale) => Ok(false),
            Ok(Redeem::Mismatch) => Err(Error::CodeMismatch),
            Ok(Redeem::Expired | Redeem::NoCode) => Err(Error::ExpiredCode),
            Ok(Redeem::TooManyAttempts) => Err(limit_exceeded()),
            Err(e) => Err(self.conflict_error(pool, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_masked() {
        assert_eq!(mask(Medium::Email, "alice@example.com"), "a***@e***");
        assert_eq!(mask(Medium::Sms, "+15551234567"), "+*******4567");
    }

    #[test]
    fn templates_fill_code_and_username() {
        assert_eq!(
            render("Hi {username}, code {####}", "123456", "bob"),
            "Hi bob, code 123456"
        );
    }
}
