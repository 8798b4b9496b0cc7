//! Challenge sessions and the challenges answered with them: opaque, sealed with the master
//! key, bound to pool, client, user and challenge, expiring after the client's
//! AuthSessionValidity, and usable once.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{SessionUse, UserKey};
use crate::{AdminGrant, Client, Directory, MfaMethod, Pool, Tokens, User, UserStatus, attributes};

/// A challenge the caller must answer before getting tokens.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub name: String,
    pub session: String,
    pub parameters: BTreeMap<String, String>,
}

/// What a sign-in step answers: tokens, or the next challenge.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    Tokens(Tokens),
    Challenge(Challenge),
}

/// RespondToAuthChallenge and its admin twin.
#[derive(Debug, Clone, Default)]
pub struct ChallengeAnswer {
    pub client_id: String,
    pub challenge: String,
    pub session: Option<String>,
    pub responses: BTreeMap<String, String>,
}

/// What a Session carries, sealed.
#[derive(Serialize, Deserialize)]
pub(crate) struct SessionState {
    id: String,
    pub pool: String,
    pub client: String,
    pub sub: String,
    challenge: String,
    expires: i64,
}

impl SessionState {
    /// The session as used up by the write that ends its step.
    pub(crate) fn spend(&self) -> Result<Spend> {
        let id = hex::decode(&self.id).map_err(|_| invalid_session())?;
        Ok(Spend {
            id,
            expires: self.expires,
        })
    }
}

/// A session to use up together with a write (`store::SessionUse`): the answer's effect and
/// the session's use land together, so a failure between them leaves the answer retryable.
pub(crate) struct Spend {
    id: Vec<u8>,
    expires: i64,
}

impl Spend {
    pub(crate) fn as_use(&self) -> SessionUse<'_> {
        SessionUse {
            id: &self.id,
            expires: self.expires,
        }
    }
}

const CONTEXT: &[u8] = b"auth-session/v1";

/// Sessions start with letters: a Base64url string may start with `-`, which the aws CLI would
/// take for an option (`--session -x…` fails there).
const SESSION_PREFIX: &str = "CgS1";

pub(crate) fn invalid_session() -> Error {
    Error::not_authorized("Invalid session for the user, session is expired.")
}

impl Directory {
    /// State a client carries between two calls (a Session, an SRP SECRET_BLOCK), sealed with
    /// the master key under `context`.
    pub(crate) fn seal_state<T: Serialize>(&self, context: &[u8], state: &T) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(state).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.vault.seal(&json, context)?)
    }

    /// The state [`Self::seal_state`] sealed, or `None` for anything else (forged, altered,
    /// sealed under another context or key).
    pub(crate) fn open_state<T: serde::de::DeserializeOwned>(
        &self,
        context: &[u8],
        sealed: &[u8],
    ) -> Option<T> {
        let json = self.vault.open(sealed, context).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// Uses up the single-use state whose random id (hex) is `id`; false when it already was.
    pub(crate) async fn use_once(&self, id: &str, expires: i64) -> Result<bool> {
        let Ok(id) = hex::decode(id) else {
            return Ok(false);
        };
        Ok(self.store.use_session(&id, expires).await?)
    }

    /// A sealed session for `challenge` of `user` on `client`.
    pub(crate) fn new_session(
        &self,
        client: &Client,
        user: &User,
        challenge: &str,
    ) -> Result<String> {
        let minutes = client.config.auth_session_validity.clamp(3, 15);
        let state = SessionState {
            id: hex::encode(self.random_bytes::<16>()),
            pool: client.pool_id.clone(),
            client: client.client_id.clone(),
            sub: user.sub.clone(),
            challenge: challenge.to_string(),
            expires: self.now() + minutes * 60_000,
        };
        let sealed = URL_SAFE_NO_PAD.encode(self.seal_state(CONTEXT, &state)?);
        Ok(format!("{SESSION_PREFIX}{sealed}"))
    }

    /// Opens a session issued for `challenge` that has not expired. It may have been used:
    /// the write that ends its step uses it up (`Spend`).
    pub(crate) fn open_session(&self, session: &str, challenge: &str) -> Result<SessionState> {
        let sealed = URL_SAFE_NO_PAD
            .decode(session.strip_prefix(SESSION_PREFIX).unwrap_or(session))
            .map_err(|_| invalid_session())?;
        let state: SessionState = self
            .open_state(CONTEXT, &sealed)
            .ok_or_else(invalid_session)?;
        if state.challenge != challenge || state.expires <= self.now() {
            return Err(invalid_session());
        }
        Ok(state)
    }

    /// [`Self::open_session`] for answers that may be retried (MFA codes): refused at once when
    /// already used, before the answer is looked at.
    pub(crate) async fn open_unused_session(
        &self,
        session: &str,
        challenge: &str,
    ) -> Result<SessionState> {
        let state = self.open_session(session, challenge)?;
        let id = hex::decode(&state.id).map_err(|_| invalid_session())?;
        if self.store.session_used(&id).await? {
            return Err(invalid_session());
        }
        Ok(state)
    }

    /// Refuses a session issued to another client.
    pub(crate) fn check_session_client(&self, state: &SessionState, client: &Client) -> Result<()> {
        if state.client != client.client_id || state.pool != client.pool_id {
            return Err(invalid_session());
        }
        Ok(())
    }

    /// Uses the session up with no write beside it; refused when it already was.
    pub(crate) async fn use_up(&self, spend: &Spend) -> Result<()> {
        let used = spend.as_use();
        if !self.store.use_session(used.id, used.expires).await? {
            return Err(invalid_session());
        }
        Ok(())
    }

    /// NEW_PASSWORD_REQUIRED for a user signing in with a temporary password.
    pub(crate) fn new_password_challenge(
        &self,
        pool: &Pool,
        client: &Client,
        user: &User,
    ) -> Result<Challenge> {
        let missing: Vec<String> = pool
            .config
            .schema
            .iter()
            .filter(|a| a.required && a.name != "sub" && !user.attributes.contains_key(&a.name))
            .map(|a| format!("userAttributes.{}", a.name))
            .collect();
        let json = |v: serde_json::Value| v.to_string();
        let mut parameters = BTreeMap::new();
        parameters.insert("USER_ID_FOR_SRP".to_string(), user.username.clone());
        parameters.insert(
            "requiredAttributes".to_string(),
            json(serde_json::json!(missing)),
        );
        parameters.insert(
            "userAttributes".to_string(),
            json(serde_json::json!(user.attributes)),
        );
        Ok(Challenge {
            name: "NEW_PASSWORD_REQUIRED".into(),
            session: self.new_session(client, user, "NEW_PASSWORD_REQUIRED")?,
            parameters,
        })
    }

    pub async fn respond_to_auth_challenge(&self, answer: ChallengeAnswer) -> Result<AuthOutcome> {
        self.answer(None, answer).await
    }

    pub async fn admin_respond_to_auth_challenge(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        answer: ChallengeAnswer,
    ) -> Result<AuthOutcome> {
        grant.check(pool_id)?;
        self.answer(Some(pool_id), answer).await
    }

    async fn answer(&self, pool_id: Option<&str>, a: ChallengeAnswer) -> Result<AuthOutcome> {
        let username = a
            .responses
            .get("USERNAME")
            .ok_or_else(|| Error::invalid("Missing required parameter USERNAME"))?;
        let secret_hash = a.responses.get("SECRET_HASH").map(String::as_str);
        let (client, pool) = self
            .public_client(&a.client_id, username, secret_hash)
            .await?;
        if pool_id.is_some_and(|p| p != pool.id) {
            return Err(Error::not_found(format!(
                "User pool client {} does not exist.",
                a.client_id
            )));
        }
        match a.challenge.as_str() {
            "NEW_PASSWORD_REQUIRED" => {
                let session = a.session.as_deref().ok_or_else(invalid_session)?;
                let state = self
                    .open_unused_session(session, "NEW_PASSWORD_REQUIRED")
                    .await?;
                self.check_session_client(&state, &client)?;
                // Whatever the answer can be refused for is checked, and the password hashed,
                // before the session is used up: a mistake (a password the policy refuses, an
                // attribute the user may not write) or a busy hashing queue lets the user
                // answer again.
                let (user, answer) = self
                    .new_password_answer(&pool, &state.sub, &a.responses)
                    .await?;
                let spend = state.spend()?;
                let user = self
                    .change_user_spending(&pool, user, &spend, |user| answer.apply(&pool, user))
                    .await?;
                self.second_factor(&pool, &client, &user).await
            }
            "PASSWORD_VERIFIER" => self.srp_verify(&pool, &client, &a.responses).await,
            "SMS_MFA" | "SOFTWARE_TOKEN_MFA" | "EMAIL_OTP" | "SELECT_MFA_TYPE" => {
                let session = a.session.as_deref().ok_or_else(invalid_session)?;
                let state = self.open_unused_session(session, &a.challenge).await?;
                self.check_session_client(&state, &client)?;
                match MfaMethod::parse(&a.challenge) {
                    Some(method) => {
                        self.answer_mfa(&pool, &client, method, &state, &a.responses)
                            .await
                    }
                    None => {
                        self.answer_selection(&pool, &client, &state, &a.responses)
                            .await
                    }
                }
            }
            "MFA_SETUP" => {
                let session = a.session.as_deref().ok_or_else(invalid_session)?;
                self.answer_setup(&pool, &client, session).await
            }
            other => Err(Error::invalid(format!(
                "The challenge {other} is not yet supported by Cognate"
            ))),
        }
    }

    /// The user `sub` as read, and the NEW_PASSWORD_REQUIRED answer `responses` checked against
    /// them and its password hashed: what is left is to apply it.
    async fn new_password_answer(
        &self,
        pool: &Pool,
        sub: &str,
        responses: &BTreeMap<String, String>,
    ) -> Result<(User, NewPassword)> {
        let password = responses
            .get("NEW_PASSWORD")
            .ok_or_else(|| Error::invalid("Missing required parameter NEW_PASSWORD"))?;
        crate::password::check_policy(&pool.config.password_policy, password)?;
        let user = self
            .store
            .find_user(&pool.id, UserKey::Sub(sub))
            .await?
            .ok_or(Error::UserNotFound)?;
        NewPassword::check_status(&user)?;
        let given: Vec<(String, String)> = responses
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("userAttributes.")
                    .map(|n| (n.to_string(), v.clone()))
            })
            .collect();
        let changes = attributes::check_writes(&pool.config, &given, attributes::Writer::Admin)?;
        NewPassword::check(pool, &user, &changes)?;
        let credential = self.credential(pool, &user, password, None).await?;
        Ok((
            user,
            NewPassword {
                changes,
                credential,
            },
        ))
    }
}

/// A NEW_PASSWORD_REQUIRED answer: the attributes it writes and the new password's credential.
struct NewPassword {
    changes: BTreeMap<String, String>,
    credential: crate::PasswordCredential,
}

impl NewPassword {
    /// Refuses the answer if `user` no longer needs a new password.
    fn check_status(user: &User) -> Result<()> {
        if user.status != UserStatus::ForceChangePassword {
            return Err(Error::not_authorized("Invalid session for the user."));
        }
        Ok(())
    }

    /// [`NewPassword::check_status`], and refuses the answer if `user` would lack a required
    /// attribute after `changes`.
    fn check(pool: &Pool, user: &User, changes: &BTreeMap<String, String>) -> Result<()> {
        Self::check_status(user)?;
        let mut attributes = user.attributes.clone();
        attributes.extend(changes.clone());
        attributes::check_required(&pool.config, &attributes)
    }

    /// Makes `user` what the answer makes them: confirmed, with the new password and the
    /// attributes given.
    fn apply(&self, pool: &Pool, user: &mut User) -> Result<()> {
        Self::check(pool, user, &self.changes)?;
        user.attributes.extend(self.changes.clone());
        user.password = Some(self.credential.clone());
        user.status = UserStatus::Confirmed;
        Ok(())
    }
}
